//! Opening one WebSocket connection: the [`MakeConnection`] trait and the default
//! tokio-tungstenite connector.
//!
//! A connection factory is any `tower::Service<Target>` whose response is a
//! `Sink<Message> + Stream<Item = Result<Message, E>>`. Because it is a plain tower
//! service, every tower layer stacks on it: our [`BackoffRetryLayer`](crate::BackoffRetryLayer) and
//! [`ReconnectLimitLayer`](crate::ReconnectLimitLayer), tower's timeouts and rate limits,
//! your own logging layer.
//!
//! ```
//! use std::time::Duration;
//! use ws_reconnect::{BackoffRetryLayer, ExponentialBackoff, MakeConnection, ReconnectLimitLayer, TungsteniteConnector};
//!
//! fn assert_make_connection<M: MakeConnection>(_: &M) {}
//!
//! let make = tower::ServiceBuilder::new()
//!     .layer(ReconnectLimitLayer::new(10, Duration::from_secs(3600)))
//!     .layer(BackoffRetryLayer::new(ExponentialBackoff::default()))
//!     .timeout(Duration::from_secs(10))
//!     .service(TungsteniteConnector::default());
//! assert_make_connection(&make);
//! ```

mod handshake;
mod meter;
mod proxy;
mod response;
pub(crate) mod status;
mod tungstenite;

use std::future::Future;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use tower::Service;

pub use self::meter::MeteredStream;
pub use self::status::{parse_retry_after, StatusPolicy};
pub use self::tungstenite::{TungsteniteConnection, TungsteniteConnector};
use crate::error::BoxError;
use crate::request::Target;
use crate::Message;

/// A tower `Service` that opens one WebSocket connection for a [`Target`].
///
/// Sealed, with a blanket implementation for every `tower::Service<Target>` whose
/// response is a `Sink<Message> + Stream<Item = Result<Message, E>>` and whose errors
/// convert into a [`BoxError`] (as every `std::error::Error + Send + Sync` does): implement
/// `Service<Target>` (or stack layers) and you have one.
///
/// ```
/// use std::future::Ready;
/// use std::task::{Context, Poll};
/// use ws_reconnect::{MakeConnection, Target, TungsteniteConnection};
///
/// // A factory that always fails, e.g. to test an application's error handling.
/// #[derive(Clone)]
/// struct Offline;
/// impl tower::Service<Target> for Offline {
///     type Response = TungsteniteConnection;
///     type Error = std::io::Error;
///     type Future = Ready<Result<TungsteniteConnection, std::io::Error>>;
///     fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
///         Poll::Ready(Ok(()))
///     }
///     fn call(&mut self, _: Target) -> Self::Future {
///         std::future::ready(Err(std::io::ErrorKind::NotConnected.into()))
///     }
/// }
/// fn check<M: MakeConnection>(_: M) {}
/// check(Offline);
/// ```
pub trait MakeConnection: sealed::Sealed {
    /// The connection: a sink of outbound and a stream of inbound messages.
    type Connection: Sink<Message, Error = Self::SinkError>
        + Stream<Item = Result<Message, Self::StreamError>>;
    /// The error of the connection's sink half.
    type SinkError: Into<BoxError>;
    /// The error of the connection's stream half.
    type StreamError: Into<BoxError>;
    /// The error of a connection attempt.
    type Error: Into<BoxError>;
    /// The future of a connection attempt.
    type Future: Future<Output = Result<Self::Connection, Self::Error>>;

    /// Whether the factory can take an attempt now (the tower service's `poll_ready`).
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>>;

    /// Starts one connection attempt.
    fn make_connection(&mut self, target: Target) -> Self::Future;
}

mod sealed {
    pub trait Sealed {}
}

impl<S, C, E> sealed::Sealed for S
where
    S: Service<Target, Response = C>,
    S::Error: Into<BoxError>,
    C: Sink<Message> + Stream<Item = Result<Message, E>>,
    <C as Sink<Message>>::Error: Into<BoxError>,
    E: Into<BoxError>,
{
}

impl<S, C, E> MakeConnection for S
where
    S: Service<Target, Response = C>,
    S::Error: Into<BoxError>,
    C: Sink<Message> + Stream<Item = Result<Message, E>>,
    <C as Sink<Message>>::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    type Connection = C;
    type SinkError = <C as Sink<Message>>::Error;
    type StreamError = E;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::poll_ready(self, cx)
    }

    fn make_connection(&mut self, target: Target) -> Self::Future {
        Service::call(self, target)
    }
}
