//! A WebSocket client connection that stays up.
//!
//! [`ReconnectingSink`] is one long-lived `Sink<Message>` + `Stream` of messages. When
//! the network drops, the server restarts or a write fails, it reconnects with
//! exponential backoff, resends what was not flushed, and carries on; a refused
//! reconnection is a typed [`Error`], never a silent loss.
//!
//! ```
//! use futures::{SinkExt, StreamExt};
//! use ws_reconnect::{Message, ReconnectingSink};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // A local echo server, so this example runs.
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let url = format!("ws://{}/", listener.local_addr()?);
//! # tokio::spawn(async move {
//! #     while let Ok((tcp, _)) = listener.accept().await {
//! #         tokio::spawn(async move {
//! #             let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
//! #             while let Some(Ok(m)) = ws.next().await {
//! #                 if m.is_text() && ws.send(m).await.is_err() { break; }
//! #             }
//! #         });
//! #     }
//! # });
//! let mut ws = ReconnectingSink::builder()
//!     .on_connect(Message::text("hello")) // sent first on every (re)connection
//!     .connect(&url)
//!     .await?;
//! ws.send(Message::text("ping")).await?;
//! assert_eq!(ws.next().await.transpose()?, Some(Message::text("hello")));
//! assert_eq!(ws.next().await.transpose()?, Some(Message::text("ping")));
//! ws.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Composition
//! A connection is opened by a [`MakeConnection`]: any `tower::Service<Target>` whose
//! response is a WebSocket `Sink + Stream`. The backoff ([`BackoffRetryLayer`]) and the
//! sliding-window reconnect limit ([`ReconnectLimitLayer`]) are tower layers, so tower's
//! own timeouts and rate limits stack with them, and [`ReconnectingSink::new`] takes the
//! whole stack:
//!
//! ```no_run
//! use std::time::Duration;
//! use ws_reconnect::{BackoffRetryLayer, ExponentialBackoff, ReconnectLimitLayer, ReconnectingSink, Target, TungsteniteConnector};
//!
//! # async fn run() -> Result<(), ws_reconnect::Error> {
//! let make = tower::ServiceBuilder::new()
//!     .layer(ReconnectLimitLayer::new(10, Duration::from_secs(3600)))
//!     .layer(BackoffRetryLayer::new(ExponentialBackoff::default()))
//!     .timeout(Duration::from_secs(10))
//!     .service(TungsteniteConnector::default());
//! let mut ws = ReconnectingSink::new(make, Target::new("ws://127.0.0.1:9000/")?);
//! ws.dial().await?;
//! # Ok(()) }
//! ```
//!
//! # Many senders
//! [`ReconnectingSink::spawn`] runs the sink in a task of its own behind a cloneable
//! [`Handle`], so that keepalive, acknowledgements and reconnection go on while nobody
//! polls; [`Handle::deliver`] and [`ReconnectingSink::start_send_outgoing`] return a
//! [`Delivery`] per message, and [`Outgoing::volatile`] marks a message that must not
//! outlive its connection. See [`Handle`] and [`Delivery`].
//!
//! # Delivery guarantee
//! Every message accepted by the sink is either *confirmed* (the peer read it), still
//! held in the sink (resent on the next connection, in order, after the `on_connect`
//! messages; see [`ReconnectingSink::undelivered_count`] and
//! [`ReconnectingSink::take_undelivered`]), or the sink returned an error for the
//! operation that could not deliver it.
//!
//! A flush is not a confirmation: a server that closes (gracefully or not) while a
//! message is on its way discards it. By default ([`ConfirmBy::Pong`]) the sink sends a
//! Ping after each flush, and the peer's Pong, which it sends when it reads the Ping,
//! confirms everything written before: what was flushed but not confirmed when a
//! connection ends is sent again. So a message may arrive twice (the peer read it, then
//! closed before answering the Ping behind it), never not at all, with two exceptions:
//! a peer that drops messages its WebSocket layer had already read (a server that
//! closes with a queue of received messages its application had not taken), and a
//! message the peer read and closed on twice in a row (taken as delivered, so that a
//! server that reads one message per connection does not get it forever; counted in
//! [`Stats::presumed_delivered`]). [`Builder::acknowledged`] closes both gaps.
//!
//! # Logging
//! `tracing` events: `info` for connected, disconnected (with the cause), resent and
//! retrying; `warn` for a refused or failed reconnection, and once for each `NO_PROXY`
//! entry that can never match; `debug` for each attempt.
//! Nothing is logged per message. URLs in events and errors have their user-info and
//! query removed.

// One audited `unsafe` call reads the kernel's send queue (src/connect/meter.rs).
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Doc examples wrap async code in functions that are never called (they need no server).
#![doc(test(attr(deny(warnings), allow(dead_code))))]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod ack;
mod backoff;
mod connect;
mod error;
mod handle;
mod headers;
mod limit;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod progress;
mod raw_url;
mod request;
mod resume;
mod retry;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
mod sink;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub use rustls;
pub use tokio_tungstenite::tungstenite;
/// A WebSocket message (tungstenite's): text, binary, ping, pong, close.
pub use tokio_tungstenite::tungstenite::Message;
/// The payload types of [`Message`], and tungstenite's connection settings (maximum
/// message and frame size, buffer sizes) that [`Builder::websocket_config`] takes.
pub use tokio_tungstenite::tungstenite::{protocol::WebSocketConfig, Bytes, Utf8Bytes};

#[doc(inline)]
pub use crate::ack::Acknowledge;
#[doc(inline)]
pub use crate::backoff::{ExponentialBackoff, ExponentialBackoffBuilder, InvalidBackoff};
#[doc(inline)]
pub use crate::connect::{
    parse_retry_after, MakeConnection, MeteredStream, StatusPolicy, TungsteniteConnection,
    TungsteniteConnector,
};
#[doc(inline)]
pub use crate::error::{BoxError, Error, ProxyFailure, SharedError, SocksReply};
#[doc(inline)]
pub use crate::handle::{Handle, Incoming, Shutdown};
#[doc(inline)]
pub use crate::headers::{HeadersFuture, HeadersLayer, HeadersService};
#[doc(inline)]
pub use crate::limit::{
    ReconnectBudget, ReconnectLimit, ReconnectLimitFuture, ReconnectLimitLayer,
};
#[doc(inline)]
pub use crate::request::{Attempt, ClientRequest, DialKind, Target};
#[doc(inline)]
pub use crate::resume::{
    Gap, GapReason, ResumeBuilder, ResumeConfig, ResumeDelivery, ResumeStats, ResumeViolation,
    ResumingSink, SessionId, PROTOCOL,
};
#[doc(inline)]
pub use crate::retry::{
    BackoffPolicy, BackoffRetry, BackoffRetryFuture, BackoffRetryLayer, IterBackoff,
};
#[doc(inline)]
pub use crate::sink::{
    Builder, CloseAction, ClosePolicy, ConfirmBy, ConnectInfo, ConnectionState, DefaultConnector,
    Delivery, Keepalive, Outgoing, ReconnectingSink, Stats, StatsHandle, Undelivered,
    UndeliveredReason,
};

// The README's examples are compiled as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
