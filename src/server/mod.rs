//! The server half of resume mode (feature `server`): sessions that survive the client's
//! reconnections, over tokio-tungstenite.
//!
//! A [`Server`] keeps one session per client for [`ServerConfig::session_ttl`] after its
//! connection is lost, with a bounded replay buffer, and hands the application one
//! [`Session`] per client: a `Sink` + `Stream` of messages that goes on across the
//! client's reconnections. Every message sent either way is delivered once and in order,
//! or, when that became impossible (the buffer overflowed while the client was away, the
//! session expired, the server restarted), the receiving application gets one typed gap
//! saying which messages, and why. The wire convention is in `docs/resume-protocol.md`;
//! the client is [`ResumingSink`](crate::ResumingSink).
//!
//! ```no_run
//! use futures::{SinkExt, StreamExt};
//! use ws_reconnect::server::{Server, ServerConfig};
//!
//! # async fn run() -> std::io::Result<()> {
//! let (server, mut sessions) = Server::new(ServerConfig::default());
//! tokio::spawn(server.serve(tokio::net::TcpListener::bind("0.0.0.0:9000").await?));
//! while let Some(mut session) = sessions.next().await {
//!     tokio::spawn(async move {
//!         while let Some(item) = session.next().await {
//!             match item {
//!                 Ok(message) => { let _ = session.feed(message).await; }
//!                 Err(e) => eprintln!("session {}: {e}", session.id()),
//!             }
//!         }
//!     });
//! }
//! # Ok(()) }
//! ```
//!
//! # Three ways in
//! - [`Server::serve`] accepts on a `TcpListener`;
//! - [`Server::accept`] takes one accepted stream (plain TCP, or TLS from your acceptor):
//!   it answers the WebSocket handshake, choosing the subprotocol with [`negotiate`], and
//!   refuses (400) a client that does not offer it;
//! - [`Server::attach`] takes a connection that is already upgraded: any `Sink` + `Stream`
//!   of tungstenite [`Message`]s, such as a tokio-tungstenite
//!   `WebSocketStream` you accepted yourself (use [`negotiate`] as the handshake callback).
//!
//! ## With axum
//! Yes, through [`Server::attach`]. axum answers the upgrade itself, so [`Server::accept`]
//! (which does the handshake) is not the way in; and axum's `WebSocket` is its own type,
//! carrying axum's own `Message` (tokio-tungstenite's stream is private to it), so it is
//! not a tokio-tungstenite `WebSocketStream` either. `attach` takes any `Sink` + `Stream`
//! of this crate's [`Message`], so the socket goes in with a conversion each way. axum is
//! not a dependency of this crate: the code below is not compiled with its docs (it was
//! written against axum 0.8). Ask for the subprotocol in the upgrade, and turn away
//! clients that did not offer it:
//!
//! ```ignore
//! use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
//! use futures::{SinkExt, TryStreamExt};
//! use ws_reconnect::{server::Server, Message, PROTOCOL};
//!
//! async fn upgrade(ws: WebSocketUpgrade, server: Server) -> axum::response::Response {
//!     ws.protocols([PROTOCOL]).on_upgrade(move |socket| async move {
//!         if socket.protocol().is_none() {
//!             return; // not a resume client
//!         }
//!         let transport = socket
//!             .map_ok(|m| match m {
//!                 AxMessage::Binary(b) => Message::Binary(b),
//!                 AxMessage::Text(t) => Message::text(t.as_str()),
//!                 AxMessage::Ping(p) => Message::Ping(p),
//!                 AxMessage::Pong(p) => Message::Pong(p),
//!                 AxMessage::Close(_) => Message::Close(None),
//!             })
//!             .with(|m: Message| async move {
//!                 Ok::<_, axum::Error>(match m {
//!                     Message::Binary(b) => AxMessage::Binary(b),
//!                     Message::Close(_) => AxMessage::Close(None),
//!                     Message::Ping(p) => AxMessage::Ping(p),
//!                     Message::Pong(p) => AxMessage::Pong(p),
//!                     other => AxMessage::Binary(other.into_data()),
//!                 })
//!             });
//!         let _ = server.attach(Box::pin(transport)).await;
//!     })
//! }
//! ```
//!
//! # Memory
//! Each session holds at most [`max_unacked_frames`](ServerConfig::max_unacked_frames)
//! and [`max_unacked_bytes`](ServerConfig::max_unacked_bytes) of messages for the client,
//! and at most its receive window of the client's messages not yet acknowledged, those
//! the application has not taken included (a client that sends past it is closed with
//! 1002: [`ResumeViolation::WindowExceeded`](crate::ResumeViolation::WindowExceeded)). A [`global_budget_bytes`](ServerConfig::global_budget_bytes) caps the replay
//! buffers of all sessions together: past it, the sessions detached longest are evicted
//! (their clients are told of the gap when they come back). Ended sessions leave a
//! tombstone of a few bytes ([`max_tombstones`](ServerConfig::max_tombstones)) so that a
//! client that comes back late learns exactly how many messages it missed.
//!
//! # Logging
//! `info` for a new, replaced or expired session and a gap told; `warn` for a client
//! that breaks the protocol or a session that cannot be handed over; `debug` for
//! attaches, detaches and replays. Nothing is logged per message.

mod closing;
mod conn;
mod error;
mod session;
mod store;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use self::error::{AttachError, SessionError};
pub use self::session::Session;
use self::store::Shared;
use crate::error::BoxError;
use crate::resume::buffer::Limits;
use crate::resume::frame::{Window, PROTOCOL};
use crate::resume::inbound::AckEvery;
use crate::Message;

/// What the server does with a message for a client that is away while the session's
/// replay buffer is full. While a connection is attached, a full buffer always makes
/// [`Session::poll_ready`] wait.
///
/// ```
/// use ws_reconnect::server::{Overflow, ServerConfig};
///
/// // Never drop a message for a client that is away: the application waits instead.
/// let config = ServerConfig::default().overflow(Overflow::Backpressure);
/// # let _ = config;
/// assert_eq!(Overflow::default(), Overflow::DropOldest);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Take the message and drop the oldest unacknowledged ones; the client is told of
    /// the dropped range as one gap when it comes back. The application never waits on
    /// a client that is gone.
    #[default]
    DropOldest,
    /// Wait: `poll_ready` is pending until the client comes back and acknowledges, or the
    /// session expires. Nothing is dropped.
    Backpressure,
}

/// The server's settings.
///
/// | setting | default | what it does |
/// |---|---|---|
/// | `session_ttl` | 30 s | how long a session waits for its client after the connection is lost |
/// | `max_unacked_frames` | 16,384 | messages held for the client until it acknowledges them, per session |
/// | `max_unacked_bytes` | 1 MiB | the same in payload bytes |
/// | `overflow` | [`Overflow::DropOldest`] | a full buffer while the client is away |
/// | `recv_window_frames` | 16,384 | the client's messages in flight at once (advertised to it) |
/// | `recv_window_bytes` | 4 MiB | the same in payload bytes |
/// | `global_budget_bytes` | `None` | cap over every session's buffer; past it, detached sessions are evicted |
/// | `idle_timeout` | 60 s | a connection with nothing from the client this long is taken for dead |
/// | `ack_delay` | 100 ms | longest wait before acknowledging what the application took |
/// | `max_tombstones` | 65,536 | ended sessions remembered for an exact gap |
/// | `max_pending_sessions` | 1024 | new sessions waiting in the [`Sessions`] stream |
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::server::{Overflow, ServerConfig};
///
/// let config = ServerConfig::default()
///     .session_ttl(Duration::from_secs(120))
///     .max_unacked_bytes(256 * 1024)
///     .overflow(Overflow::Backpressure)
///     .global_budget_bytes(Some(512 << 20));
/// assert_eq!(config.get_session_ttl(), Duration::from_secs(120));
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    session_ttl: Duration,
    max_unacked_frames: usize,
    max_unacked_bytes: usize,
    overflow: Overflow,
    recv_window_frames: usize,
    recv_window_bytes: usize,
    global_budget_bytes: Option<usize>,
    idle_timeout: Duration,
    ack_delay: Duration,
    max_tombstones: usize,
    max_pending_sessions: usize,
    websocket_config: WebSocketConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            session_ttl: Duration::from_secs(30),
            max_unacked_frames: 16_384,
            max_unacked_bytes: 1 << 20,
            overflow: Overflow::DropOldest,
            recv_window_frames: 16_384,
            recv_window_bytes: 4 << 20,
            global_budget_bytes: None,
            idle_timeout: Duration::from_secs(60),
            ack_delay: Duration::from_millis(100),
            max_tombstones: 65_536,
            max_pending_sessions: 1024,
            websocket_config: WebSocketConfig::default(),
        }
    }
}

impl ServerConfig {
    /// How long a session waits for its client once the connection is lost (default
    /// 30 s). A client that comes back later gets a new session and one gap, with
    /// [`GapReason::Expired`](crate::GapReason::Expired).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::server::ServerConfig;
    ///
    /// let config = ServerConfig::default().session_ttl(Duration::from_secs(300));
    /// assert_eq!(config.get_session_ttl(), Duration::from_secs(300));
    /// ```
    pub fn session_ttl(mut self, value: Duration) -> Self {
        self.session_ttl = value;
        self
    }

    /// The session time to live in effect.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::server::ServerConfig;
    ///
    /// assert_eq!(ServerConfig::default().get_session_ttl(), Duration::from_secs(30));
    /// ```
    pub fn get_session_ttl(&self) -> Duration {
        self.session_ttl
    }

    /// Messages held per session until the client acknowledges them (at least 1;
    /// default 16,384).
    ///
    /// ```
    /// use ws_reconnect::server::ServerConfig;
    ///
    /// let config = ServerConfig::default().max_unacked_frames(256);
    /// # let _ = config;
    /// ```
    pub fn max_unacked_frames(mut self, value: usize) -> Self {
        self.max_unacked_frames = value.max(1);
        self
    }

    /// Payload bytes held per session until the client acknowledges them (default
    /// 1 MiB). One message is always taken, however large.
    ///
    /// ```
    /// use ws_reconnect::server::ServerConfig;
    ///
    /// let config = ServerConfig::default().max_unacked_bytes(64 * 1024);
    /// # let _ = config;
    /// ```
    pub fn max_unacked_bytes(mut self, value: usize) -> Self {
        self.max_unacked_bytes = value;
        self
    }

    /// What a full buffer does while the client is away (default [`Overflow::DropOldest`]).
    ///
    /// ```
    /// use ws_reconnect::server::{Overflow, ServerConfig};
    ///
    /// let config = ServerConfig::default().overflow(Overflow::Backpressure);
    /// # let _ = config;
    /// ```
    pub fn overflow(mut self, value: Overflow) -> Self {
        self.overflow = value;
        self
    }

    /// How many of the client's messages may be in flight at once (at least 1; default
    /// 16,384): advertised to the client, and the bound on what waits for the application.
    ///
    /// ```
    /// use ws_reconnect::server::ServerConfig;
    ///
    /// let config = ServerConfig::default().recv_window_frames(128);
    /// # let _ = config;
    /// ```
    pub fn recv_window_frames(mut self, value: usize) -> Self {
        self.recv_window_frames = value.max(1);
        self
    }

    /// The same in payload bytes (default 4 MiB).
    ///
    /// ```
    /// use ws_reconnect::server::ServerConfig;
    ///
    /// let config = ServerConfig::default().recv_window_bytes(1 << 20);
    /// # let _ = config;
    /// ```
    pub fn recv_window_bytes(mut self, value: usize) -> Self {
        self.recv_window_bytes = value;
        self
    }

    /// A cap on the replay buffers of every session together (default `None`: only the
    /// per-session caps). Past it, detached sessions are evicted, the longest detached
    /// first.
    ///
    /// ```
    /// use ws_reconnect::server::ServerConfig;
    ///
    /// // At most 512 MiB of replay buffers over all sessions.
    /// let config = ServerConfig::default().global_budget_bytes(Some(512 << 20));
    /// # let _ = config;
    /// ```
    pub fn global_budget_bytes(mut self, value: Option<usize>) -> Self {
        self.global_budget_bytes = value;
        self
    }

    /// A connection on which nothing arrives for this long is taken for dead and its
    /// session detached (default 60 s; keep it above the client's keepalive interval plus
    /// timeout, 40 s by default). Also the bound on waiting for HELLO.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::server::ServerConfig;
    ///
    /// let config = ServerConfig::default().idle_timeout(Duration::from_secs(90));
    /// # let _ = config;
    /// ```
    pub fn idle_timeout(mut self, value: Duration) -> Self {
        self.idle_timeout = value;
        self
    }

    /// The longest the server waits before acknowledging what the application took
    /// (default 100 ms). It acknowledges at once what the client asked for (a PROMPT:
    /// a request, a flush, a quarter of the client's window), and after a quarter of the
    /// receive window; see `docs/resume-protocol.md`, section 6.2.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::server::ServerConfig;
    ///
    /// let config = ServerConfig::default().ack_delay(Duration::from_millis(5));
    /// # let _ = config;
    /// ```
    pub fn ack_delay(mut self, value: Duration) -> Self {
        self.ack_delay = value;
        self
    }

    /// Ended sessions remembered, so that a client that comes back late learns exactly
    /// how many messages it missed (default 65,536; about 40 bytes each).
    ///
    /// ```
    /// use ws_reconnect::server::ServerConfig;
    ///
    /// let config = ServerConfig::default().max_tombstones(10_000);
    /// # let _ = config;
    /// ```
    pub fn max_tombstones(mut self, value: usize) -> Self {
        self.max_tombstones = value;
        self
    }

    /// New sessions that may wait in the [`Sessions`] stream (at least 1; default 1024);
    /// past it, new clients are refused with close code 1013 and try again later.
    ///
    /// ```
    /// use ws_reconnect::server::ServerConfig;
    ///
    /// let config = ServerConfig::default().max_pending_sessions(64);
    /// # let _ = config;
    /// ```
    pub fn max_pending_sessions(mut self, value: usize) -> Self {
        self.max_pending_sessions = value.max(1);
        self
    }

    /// tungstenite's settings for connections [`Server::accept`] upgrades.
    ///
    /// ```
    /// use ws_reconnect::server::ServerConfig;
    /// use ws_reconnect::WebSocketConfig;
    ///
    /// let config = ServerConfig::default()
    ///     .websocket_config(WebSocketConfig::default().max_message_size(Some(1 << 20)));
    /// # let _ = config;
    /// ```
    pub fn websocket_config(mut self, value: WebSocketConfig) -> Self {
        self.websocket_config = value;
        self
    }

    pub(crate) fn out_limits(&self) -> Limits {
        Limits {
            frames: self.max_unacked_frames,
            bytes: self.max_unacked_bytes,
        }
    }

    pub(crate) fn recv_window(&self) -> Window {
        Window {
            frames: self.recv_window_frames as u64,
            bytes: self.recv_window_bytes as u64,
        }
    }

    /// The receive window enforced on arrival: this server's, but never below what a
    /// client assumes before its first WELCOME (it may send that much before it learns
    /// the window).
    pub(crate) fn enforced_window(&self) -> Window {
        let own = self.recv_window();
        Window {
            frames: own.frames.max(Window::DEFAULT.frames),
            bytes: own.bytes.max(Window::DEFAULT.bytes),
        }
    }

    pub(crate) fn ack_every(&self) -> AckEvery {
        AckEvery {
            frames: (self.recv_window_frames as u64 / 4).max(1),
            bytes: (self.recv_window_bytes as u64 / 4).max(1),
        }
    }
}

/// A resume server's counters, from [`Server::stats`].
///
/// ```
/// use ws_reconnect::server::{Server, ServerConfig};
///
/// let (server, _sessions) = Server::new(ServerConfig::default());
/// let stats = server.stats();
/// assert_eq!((stats.sessions, stats.resumed, stats.gaps), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Sessions started (new clients, and clients whose session was gone).
    pub sessions: u64,
    /// Connections that resumed a session.
    pub resumed: u64,
    /// Sessions that expired (the client did not come back within the time to live).
    pub expired: u64,
    /// Sessions evicted to keep within the memory budget.
    pub evicted: u64,
    /// Gaps told to clients.
    pub gaps: u64,
    /// Connections closed for breaking the protocol.
    pub violations: u64,
    /// Sessions alive now.
    pub live_sessions: usize,
    /// Payload bytes held by every session's replay buffer now.
    pub held_bytes: usize,
}

/// A resume server: its session store and epoch. Cheap to clone; every clone serves the
/// same sessions. See the [module docs](self).
///
/// ```
/// use ws_reconnect::server::{Server, ServerConfig};
///
/// let (server, _sessions) = Server::new(ServerConfig::default());
/// let same = server.clone(); // the same sessions
/// assert_eq!(same.epoch(), server.epoch());
/// ```
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

/// The stream of new sessions, one per client (not per connection: a client that
/// reconnects goes on in its session).
///
/// ```no_run
/// use futures::StreamExt;
/// use ws_reconnect::server::{Server, ServerConfig};
///
/// # async fn run() {
/// let (server, mut sessions) = Server::new(ServerConfig::default());
/// # let _ = server;
/// while let Some(session) = sessions.next().await {
///     println!("a new client: session {}", session.id());
/// }
/// # }
/// ```
pub struct Sessions {
    rx: mpsc::Receiver<Session>,
}

impl Server {
    /// A server with a fresh epoch and no sessions, and the stream its new sessions come
    /// out of.
    ///
    /// ```
    /// use ws_reconnect::server::{Server, ServerConfig};
    /// let (server, _sessions) = Server::new(ServerConfig::default());
    /// assert_eq!(server.session_count(), 0);
    /// ```
    pub fn new(config: ServerConfig) -> (Server, Sessions) {
        let (tx, rx) = mpsc::channel(config.max_pending_sessions);
        let shared = Arc::new(Shared::new(config, tx));
        (Server { shared }, Sessions { rx })
    }

    /// This server's epoch: random, chosen at [`new`](Self::new). A client that presents
    /// a session of another epoch (the server restarted) gets a new session and a gap
    /// with [`GapReason::EpochChanged`](crate::GapReason::EpochChanged).
    ///
    /// ```
    /// use ws_reconnect::server::{Server, ServerConfig};
    ///
    /// let (a, _) = Server::new(ServerConfig::default());
    /// let (b, _) = Server::new(ServerConfig::default());
    /// assert_ne!(a.epoch(), b.epoch()); // as a restarted process would have
    /// ```
    pub fn epoch(&self) -> u64 {
        self.shared.epoch
    }

    /// Sessions alive now, attached or waiting for their client.
    ///
    /// ```
    /// use ws_reconnect::server::{Server, ServerConfig};
    ///
    /// let (server, _sessions) = Server::new(ServerConfig::default());
    /// assert_eq!(server.session_count(), 0);
    /// ```
    pub fn session_count(&self) -> usize {
        self.shared.session_count()
    }

    /// Payload bytes held by every session's replay buffer now.
    ///
    /// ```
    /// use ws_reconnect::server::{Server, ServerConfig};
    ///
    /// let (server, _sessions) = Server::new(ServerConfig::default());
    /// assert_eq!(server.held_bytes(), 0);
    /// ```
    pub fn held_bytes(&self) -> usize {
        self.shared.held()
    }

    /// The server's counters now.
    ///
    /// ```
    /// use ws_reconnect::server::{Server, ServerConfig};
    /// let (server, _sessions) = Server::new(ServerConfig::default());
    /// assert_eq!(server.stats().sessions, 0);
    /// ```
    pub fn stats(&self) -> ServerStats {
        let c = &self.shared.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        ServerStats {
            sessions: get(&c.sessions),
            resumed: get(&c.resumed),
            expired: get(&c.expired),
            evicted: get(&c.evicted),
            gaps: get(&c.gaps),
            violations: get(&c.violations),
            live_sessions: self.shared.session_count(),
            held_bytes: self.shared.held(),
        }
    }

    /// Runs one connection that is already upgraded (the subprotocol negotiated, see
    /// [`negotiate`]): reads HELLO, attaches the connection to the client's session (or a
    /// new one, handed to the [`Sessions`] stream), and carries frames both ways until the
    /// connection ends. Spawn it.
    ///
    /// # Errors
    /// [`AttachError`]: the client broke the protocol (closed with 1002), the new session
    /// could not be handed over (closed with 1013), or the connection failed before
    /// HELLO. A connection that drops later is not an error: the session waits.
    ///
    /// ```no_run
    /// # async fn run(server: ws_reconnect::server::Server, tcp: tokio::net::TcpStream) {
    /// let ws = tokio_tungstenite::accept_hdr_async(tcp, ws_reconnect::server::negotiate)
    ///     .await
    ///     .expect("handshake");
    /// tokio::spawn(server.attach(ws));
    /// # }
    /// ```
    pub fn attach<T, E>(
        &self,
        transport: T,
    ) -> impl Future<Output = Result<(), AttachError>> + Send + 'static
    where
        T: Sink<Message> + Stream<Item = Result<Message, E>> + Unpin + Send + 'static,
        T::Error: Into<BoxError>,
        E: Into<BoxError> + 'static,
    {
        conn::run(Arc::clone(&self.shared), transport)
    }

    /// Answers the WebSocket handshake on an accepted stream (choosing `ws-reconnect.v1`,
    /// refusing with 400 a client that does not offer it), then runs the connection as
    /// [`attach`](Self::attach) does.
    ///
    /// # Errors
    /// [`AttachError::Handshake`], [`AttachError::NotOffered`], and those of `attach`.
    ///
    /// ```no_run
    /// use ws_reconnect::server::{Server, ServerConfig};
    ///
    /// # async fn run() -> std::io::Result<()> {
    /// let (server, _sessions) = Server::new(ServerConfig::default());
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:9000").await?;
    /// loop {
    ///     let (tcp, _) = listener.accept().await?;
    ///     // A TLS acceptor would wrap `tcp` here.
    ///     let server = server.clone();
    ///     tokio::spawn(async move { server.accept(tcp).await });
    /// }
    /// # }
    /// ```
    pub async fn accept<S>(&self, stream: S) -> Result<(), AttachError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut offered = true;
        // tungstenite's handshake callback type fixes the large error variant.
        #[allow(clippy::result_large_err)]
        let callback = |request: &Request, response: Response| {
            let answer = negotiate(request, response);
            offered = answer.is_ok();
            answer
        };
        let config = Some(self.shared.config.websocket_config);
        match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, config).await {
            Ok(ws) => self.attach(ws).await,
            Err(_) if !offered => Err(AttachError::NotOffered),
            Err(e) => Err(AttachError::Handshake(e)),
        }
    }

    /// Accepts connections on `listener` for ever, each in a task of its own.
    ///
    /// # Errors
    /// Accepting failed (the listener is broken).
    ///
    /// ```no_run
    /// use ws_reconnect::server::{Server, ServerConfig};
    ///
    /// # async fn run() -> std::io::Result<()> {
    /// let (server, _sessions) = Server::new(ServerConfig::default());
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:9000").await?;
    /// tokio::spawn(server.serve(listener));
    /// # Ok(()) }
    /// ```
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        loop {
            let (tcp, peer) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let server = self.clone();
            tokio::spawn(async move {
                if let Err(error) = server.accept(tcp).await {
                    tracing::debug!(%peer, %error, "connection ended");
                }
            });
        }
    }
}

/// The handshake callback for tokio-tungstenite's `accept_hdr_async`: chooses the
/// `ws-reconnect.v1` subprotocol when the client offers it, and refuses the upgrade with
/// 400 otherwise.
///
/// ```
/// use ws_reconnect::server::negotiate;
/// use ws_reconnect::PROTOCOL;
///
/// let request = http::Request::builder()
///     .header("sec-websocket-protocol", format!("chat, {PROTOCOL}"))
///     .body(())
///     .unwrap();
/// let response = negotiate(&request, http::Response::new(())).unwrap();
/// assert_eq!(response.headers()["sec-websocket-protocol"], PROTOCOL);
///
/// let plain = http::Request::builder().body(()).unwrap();
/// assert_eq!(negotiate(&plain, http::Response::new(())).unwrap_err().status(), 400);
/// ```
///
/// # Errors
/// A 400 response when the client does not offer the subprotocol.
#[allow(clippy::result_large_err)]
pub fn negotiate(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    let offered = request
        .headers()
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim() == PROTOCOL);
    if offered {
        response.headers_mut().insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            http::HeaderValue::from_static(PROTOCOL),
        );
        return Ok(response);
    }
    let mut refusal = http::Response::new(Some(format!(
        "this server speaks the {PROTOCOL} subprotocol only"
    )));
    *refusal.status_mut() = http::StatusCode::BAD_REQUEST;
    Err(refusal)
}

impl Stream for Sessions {
    type Item = Session;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Session>> {
        self.rx.poll_recv(cx)
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("epoch", &self.shared.epoch)
            .field("sessions", &self.shared.session_count())
            .field("held_bytes", &self.shared.held())
            .finish()
    }
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}
