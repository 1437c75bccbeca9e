//! The client half of resume mode: [`ResumingSink`], built on acknowledged mode.
//!
//! The sink underneath does the reconnecting and the resending; this layer gives each
//! outbound message its sequence number (in [`ResumingSink::start_send`], the one place
//! numbers are assigned) and envelope, says HELLO first on every connection (the
//! `on_connect_with` hook), reads the server's frames as they arrive ([`ResumeAcks`],
//! the sink's [`Acknowledge`]), and hands the application each message once, in order,
//! with a gap item wherever the server says a range is lost.
//!
//! # Who sees which frame
//! Every inbound frame passes [`ResumeAcks::acked`] first, in the order it arrived, by
//! whichever half of the sink reads: acknowledgements, WELCOME, GAP, BYE and duplicate
//! DATA are consumed there (their effect is on the shared state), and only new, in-order
//! DATA reaches the sink's inbox and [`ResumingSink::poll_next`]. Gaps are told by
//! position: once the application has every message before one. The server never has
//! more DATA in flight than the window HELLO advertises, and the inbox holds that much:
//! it cannot overflow. If frames are lost all the same, the reader notices the hole and
//! asks the server for them again (REPLAY).

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;
use futures_sink::Sink;
use http::HeaderMap;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::{ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::{self, Bytes};

use super::buffer::ReplayBuffer;
use super::frame::{self, Data, Frame, Hello, ResumeViolation, SessionId, Window, PROTOCOL};
use super::inbound::{AckEvery, Arrival, Inbound, PendingGaps};
use crate::ack::Acknowledge;
use crate::connect::MakeConnection;
use crate::error::{shared, BoxError, Error};
use crate::sink::{
    Builder, ConnectInfo, DefaultConnector, Delivery, Half, Outgoing, ReconnectingSink, Undelivered,
};
use crate::request::{headers_hook, Target};
use crate::Message;

/// Violations kept for the reader at most; more are counted in the logs only.
const MAX_VIOLATIONS: usize = 16;

/// Room in the sink's inbox beyond the receive window, for the error items it may queue.
const INBOX_SLACK: usize = 64;

/// Settings of resume mode, for [`Builder::resume`].
///
/// | setting | default | what it does |
/// |---|---|---|
/// | `required` | `true` | a server that does not speak resume mode is an error ([`Error::ResumeUnsupported`]); `false`: plain mode |
/// | `max_unacked_frames` | 1024 | messages in flight until the server acknowledges them (also bounded by the server's window) |
/// | `max_unacked_bytes` | 1 MiB | the same in payload bytes |
/// | `recv_window_frames` | 1024 | the server's messages in flight at once (advertised to it) |
/// | `recv_window_bytes` | 4 MiB | the same in payload bytes |
/// | `ack_delay` | 20 ms | longest wait before acknowledging what the application took |
/// | `ack_timeout` | 30 s | no acknowledgement progress this long: the connection is replaced |
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::ResumeConfig;
///
/// let config = ResumeConfig::new()
///     .required(false)
///     .max_unacked_frames(256)
///     .ack_delay(Duration::from_millis(5));
/// assert!(!config.is_required());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ResumeConfig {
    required: bool,
    max_unacked_frames: usize,
    max_unacked_bytes: usize,
    recv_window_frames: usize,
    recv_window_bytes: usize,
    ack_delay: Duration,
    ack_timeout: Duration,
}

impl Default for ResumeConfig {
    fn default() -> Self {
        ResumeConfig::new()
    }
}

impl ResumeConfig {
    /// The defaults (see the table).
    pub const fn new() -> Self {
        ResumeConfig {
            required: true,
            max_unacked_frames: 1024,
            max_unacked_bytes: 1 << 20,
            recv_window_frames: 1024,
            recv_window_bytes: 4 << 20,
            ack_delay: Duration::from_millis(20),
            ack_timeout: Duration::from_secs(30),
        }
    }

    /// Whether a server that does not choose the `ws-reconnect.v1` subprotocol is an error
    /// ([`Error::ResumeUnsupported`], the default), or is spoken to in plain mode: no
    /// envelope, no resume, the guarantees of acknowledged-less delivery. The choice is
    /// made on the first connection and kept.
    pub const fn required(mut self, value: bool) -> Self {
        self.required = value;
        self
    }

    /// Whether resume mode is required.
    pub const fn is_required(&self) -> bool {
        self.required
    }

    /// Messages sent and not yet acknowledged by the server, at most (at least 1;
    /// default 1024); the server's advertised window may lower it. `poll_ready` waits
    /// beyond it.
    pub const fn max_unacked_frames(mut self, value: usize) -> Self {
        self.max_unacked_frames = if value == 0 { 1 } else { value };
        self
    }

    /// The same in payload bytes (default 1 MiB). One message is always allowed when none
    /// is in flight, however large.
    pub const fn max_unacked_bytes(mut self, value: usize) -> Self {
        self.max_unacked_bytes = value;
        self
    }

    /// How many of the server's messages may be in flight at once (at least 1; default
    /// 1024): advertised in HELLO, and what the sink's inbox holds.
    pub const fn recv_window_frames(mut self, value: usize) -> Self {
        self.recv_window_frames = if value == 0 { 1 } else { value };
        self
    }

    /// The same in payload bytes (default 4 MiB).
    pub const fn recv_window_bytes(mut self, value: usize) -> Self {
        self.recv_window_bytes = value;
        self
    }

    /// The longest wait before acknowledging what the application took (default 20 ms).
    /// The sink acknowledges at once when the reader waits for more, and after a quarter
    /// of the receive window.
    pub const fn ack_delay(mut self, value: Duration) -> Self {
        self.ack_delay = value;
        self
    }

    /// No acknowledgement progress for this long while messages wait for one: the
    /// connection is taken for dead and replaced (default 30 s; see
    /// [`Builder::ack_timeout`]). A server application that does not read for longer
    /// makes the client reconnect and resume: nothing is lost.
    pub const fn ack_timeout(mut self, value: Duration) -> Self {
        self.ack_timeout = value;
        self
    }

    fn recv_window(&self) -> Window {
        Window {
            frames: self.recv_window_frames as u64,
            bytes: self.recv_window_bytes as u64,
        }
    }

    fn ack_every(&self) -> AckEvery {
        AckEvery {
            frames: (self.recv_window_frames as u64 / 4).max(1),
            bytes: (self.recv_window_bytes as u64 / 4).max(1),
        }
    }
}

/// Counters of resume mode, from [`ResumingSink::resume_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResumeStats {
    /// Sessions the server started for this client (1 after the first connection).
    pub sessions: u64,
    /// Connections on which the server resumed the session.
    pub resumed: u64,
    /// Gaps told to the reader.
    pub gaps: u64,
    /// Times the reader asked the server for messages again.
    pub replays: u64,
    /// Duplicate messages dropped (resent by the server after a reconnection).
    pub duplicates: u64,
}

/// What the hello hook, the acknowledgement reader and the sink share.
#[derive(Debug)]
struct Shared {
    session: Option<(SessionId, u64)>,
    /// Messages sent and not yet acknowledged: sequence numbers and lengths (the sink
    /// underneath holds the messages themselves).
    ledger: ReplayBuffer<()>,
    peer_window: Window,
    inbound: Inbound,
    gaps: PendingGaps,
    /// Ask the server to send again from here.
    replay_from: Option<u64>,
    violations: VecDeque<ResumeViolation>,
    /// The server said BYE after the message before this position.
    bye_at: Option<u64>,
    /// The highest acknowledgement seen, carried by DATA or not.
    acked: u64,
    /// An acknowledgement has been owed since then.
    owed_since: Option<Instant>,
    stats: ResumeStats,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Shared {
    fn wake_reader(&mut self) {
        if let Some(waker) = self.reader.take() {
            waker.wake();
        }
    }

    fn wake_writer(&mut self) {
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
    }

    fn violation(&mut self, violation: ResumeViolation) {
        tracing::warn!(%violation, "the server broke the resume protocol");
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push_back(violation);
        }
        self.wake_reader();
    }

    /// Applies a cumulative acknowledgement from the server to the ledger.
    fn acknowledge(&mut self, ack: u64) {
        match self.ledger.ack(ack) {
            Ok(0) => {}
            Ok(_) => self.wake_writer(),
            Err(violation) => self.violation(violation),
        }
        self.acked = self.acked.max(ack.min(self.ledger.next() - 1));
    }

    /// The window in effect: ours, and the server's.
    fn room(&self, config: &ResumeConfig) -> bool {
        let frames = (config.max_unacked_frames as u64).min(self.peer_window.frames.max(1));
        let bytes = (config.max_unacked_bytes as u64).min(self.peer_window.bytes);
        self.ledger.is_empty()
            || ((self.ledger.len() as u64) < frames && (self.ledger.bytes() as u64) < bytes)
    }
}

type Cell = Arc<Mutex<Shared>>;

fn lock(cell: &Cell) -> MutexGuard<'_, Shared> {
    cell.lock().unwrap_or_else(|p| p.into_inner())
}

/// The sink's [`Acknowledge`] in resume mode: DATA frames are tracked by their sequence
/// number, and every inbound frame is read here first (see the [module docs](self)).
struct ResumeAcks {
    cell: Cell,
    plain: Arc<AtomicBool>,
}

impl Acknowledge for ResumeAcks {
    fn id(&mut self, outbound: &Message) -> Option<u64> {
        if self.plain.load(Ordering::Relaxed) {
            return None;
        }
        match outbound {
            Message::Binary(bytes) => frame::data_seq(bytes),
            _ => None,
        }
    }

    fn acked(&mut self, inbound: &Message) -> Option<u64> {
        if self.plain.load(Ordering::Relaxed) {
            return None;
        }
        let frame = Frame::from_message(inbound);
        let mut shared = lock(&self.cell);
        // Consumed frames acknowledge what the server last acknowledged: a no-op for the
        // sink, unless a DATA frame carried a newer acknowledgement.
        let frame = match frame {
            Ok(frame) => frame,
            Err(violation) => {
                shared.violation(violation);
                return Some(shared.acked);
            }
        };
        match frame {
            Frame::Data(data) => {
                if let Some(ack) = data.ack {
                    shared.acknowledge(ack);
                }
                match shared.inbound.on_data(data.seq) {
                    Arrival::New => return None,
                    Arrival::Duplicate => shared.stats.duplicates += 1,
                    Arrival::Ahead { expected } => {
                        // Frames were lost on the way here: ask for them again once.
                        if shared.replay_from.is_none() {
                            tracing::debug!(
                                expected,
                                got = data.seq,
                                "a hole in the server's messages"
                            );
                            shared.replay_from = Some(expected);
                            shared.wake_reader();
                        }
                    }
                }
            }
            Frame::Ack(ack) => shared.acknowledge(ack),
            Frame::Welcome(welcome) => {
                let presented = shared.session.map(|(id, _)| id);
                shared.session = Some((welcome.session, welcome.epoch));
                shared.peer_window = welcome.window;
                if welcome.resumed {
                    shared.stats.resumed += 1;
                    tracing::debug!(session = %welcome.session, "session resumed");
                } else {
                    shared.stats.sessions += 1;
                    match presented {
                        Some(old) => {
                            tracing::info!(session = %welcome.session, replaces = %old, "the server started a new session")
                        }
                        None => tracing::debug!(session = %welcome.session, "session started"),
                    }
                }
                shared.wake_writer();
            }
            Frame::Gap(gap) => {
                if let Some(gap) = shared.inbound.on_gap(gap) {
                    shared.gaps.push(gap);
                    shared.wake_reader();
                }
            }
            Frame::Bye => {
                tracing::debug!("the server ended the session");
                shared.bye_at = Some(shared.inbound.received());
                shared.wake_reader();
            }
            Frame::Hello(_) | Frame::Replay(_) => {
                let kind = frame.kind_name();
                shared.violation(ResumeViolation::Unexpected { kind });
            }
        }
        Some(shared.acked)
    }
}

/// The hello of each connection: HELLO with where this client stands, and the
/// acknowledgement of what the application took.
fn hello_hook(
    cell: Cell,
    plain: Arc<AtomicBool>,
    window: Window,
) -> impl FnMut(&ConnectInfo) -> Vec<Message> + Send + 'static {
    move |_info: &ConnectInfo| {
        if plain.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let mut shared = lock(&cell);
        // HELLO asks for everything from `recv_next`: a pending replay is covered.
        shared.replay_from = None;
        let hello = Hello {
            session: shared.session,
            recv_next: shared.inbound.received(),
            send_first: shared.ledger.front(),
            window,
        };
        let mut messages = vec![Frame::Hello(hello).to_message()];
        if let Some(ack) = shared.inbound.owed() {
            shared.inbound.ack_sent(ack);
            shared.owed_since = None;
            messages.push(Frame::Ack(ack).to_message());
        }
        messages
    }
}

/// The `Sec-WebSocket-Protocol` offer, on every attempt until plain mode is chosen.
fn offer_hook(plain: Arc<AtomicBool>) -> Arc<crate::request::HeadersFn> {
    headers_hook(move |_attempt| {
        let plain = plain.load(Ordering::Relaxed);
        async move {
            let mut headers = HeaderMap::new();
            if !plain {
                headers.insert(
                    http::header::SEC_WEBSOCKET_PROTOCOL,
                    http::HeaderValue::from_static(PROTOCOL),
                );
            }
            Ok::<_, BoxError>(headers)
        }
    })
}

/// Whether `error` says the server did not choose the offered subprotocol.
fn is_unsupported(error: &Error) -> bool {
    match error {
        Error::Transport(tungstenite::Error::Protocol(
            ProtocolError::SecWebSocketSubProtocolError(
                SubProtocolError::NoSubProtocol | SubProtocolError::InvalidSubProtocol,
            ),
        )) => true,
        Error::GaveUp { source, .. } => is_unsupported(source),
        _ => false,
    }
}

impl Builder {
    /// Resume mode: nothing lost either way across a reconnection, with a server that
    /// speaks it (this crate's [`server`](crate::server) half, or any implementation of
    /// `docs/resume-protocol.md`). See [`ResumingSink`].
    ///
    /// Resume mode is acknowledged mode with its own envelope: it sets
    /// [`acknowledged`](Self::acknowledged), [`ack_timeout`](Self::ack_timeout),
    /// [`on_connect_with`](Self::on_connect_with) and
    /// [`max_queued_inbound`](Self::max_queued_inbound) itself, and cannot be combined
    /// with `on_connect` messages (HELLO goes first on every connection: send such
    /// messages again after a gap whose [`session_replaced`](crate::Gap::session_replaced)
    /// is true). Do not use [`retain_on_reconnect`](Self::retain_on_reconnect) with it:
    /// a message it drops is a gap for the server.
    ///
    /// ```
    /// use ws_reconnect::{ReconnectingSink, ResumeConfig};
    ///
    /// let ws = ReconnectingSink::builder()
    ///     .header("authorization", "Bearer ...")
    ///     .resume(ResumeConfig::default())
    ///     .build("ws://127.0.0.1:9000/feed")?; // undialed: no I/O yet
    /// assert_eq!(ws.session(), None);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn resume(self, config: ResumeConfig) -> ResumeBuilder {
        ResumeBuilder {
            builder: self,
            config,
        }
    }
}

/// A [`Builder`] in resume mode: builds a [`ResumingSink`]. From [`Builder::resume`].
pub struct ResumeBuilder {
    builder: Builder,
    config: ResumeConfig,
}

impl fmt::Debug for ResumeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumeBuilder")
            .field("builder", &self.builder)
            .field("config", &self.config)
            .finish()
    }
}

/// The parts a resuming sink is made of, before the sink underneath is built.
struct Parts {
    builder: Builder,
    cell: Cell,
    plain: Arc<AtomicBool>,
    config: ResumeConfig,
}

impl ResumeBuilder {
    fn parts(self) -> Result<Parts, Error> {
        if self.builder.has_hello() {
            return Err(Error::Request(shared(
                "resume mode sends HELLO first on every connection: on_connect and \
                 on_connect_with cannot be used with it",
            )));
        }
        let config = self.config;
        let plain = Arc::new(AtomicBool::new(false));
        let cell = Arc::new(Mutex::new(Shared {
            session: None,
            ledger: ReplayBuffer::new(1),
            peer_window: Window::DEFAULT,
            inbound: Inbound::new(1),
            gaps: PendingGaps::default(),
            replay_from: None,
            violations: VecDeque::new(),
            bye_at: None,
            acked: 0,
            owed_since: None,
            stats: ResumeStats::default(),
            reader: None,
            writer: None,
        }));
        let acks = ResumeAcks {
            cell: Arc::clone(&cell),
            plain: Arc::clone(&plain),
        };
        let builder = self
            .builder
            .acknowledged(acks, config.max_unacked_frames)
            .ack_timeout(config.ack_timeout)
            .max_queued_inbound(config.recv_window_frames + INBOX_SLACK)
            .on_connect_with(hello_hook(
                Arc::clone(&cell),
                Arc::clone(&plain),
                config.recv_window(),
            ));
        Ok(Parts {
            builder,
            cell,
            plain,
            config,
        })
    }

    /// An undialed sink for `url`, with the builder's headers: no I/O yet.
    ///
    /// # Errors
    /// As [`Builder::build`]; [`Error::Request`] when the builder has `on_connect`
    /// messages.
    pub fn build(self, url: impl AsRef<str>) -> Result<ResumingSink, Error> {
        let parts = self.parts()?;
        let target = parts.builder.target_for(url)?;
        ResumingSink::build(parts, target)
    }

    /// An undialed sink for a [`Target`] (see [`Builder::build_with`]).
    ///
    /// # Errors
    /// As [`Builder::build_with`] and [`build`](Self::build).
    pub fn build_with(self, target: Target) -> Result<ResumingSink, Error> {
        ResumingSink::build(self.parts()?, target)
    }

    /// Builds and dials `url`.
    ///
    /// # Errors
    /// As [`build`](Self::build) and [`ResumingSink::dial`].
    pub async fn connect(self, url: impl AsRef<str>) -> Result<ResumingSink, Error> {
        let mut sink = self.build(url)?;
        sink.dial().await?;
        Ok(sink)
    }

    /// Builds and dials a [`Target`].
    ///
    /// # Errors
    /// As [`build_with`](Self::build_with) and [`ResumingSink::dial`].
    pub async fn connect_with(self, target: Target) -> Result<ResumingSink, Error> {
        let mut sink = self.build_with(target)?;
        sink.dial().await?;
        Ok(sink)
    }

    /// An undialed sink over a custom connection stack (see [`Builder::build_over`]). The
    /// subprotocol offer is added to the target's request: a stack whose connector builds
    /// its own request must offer `ws-reconnect.v1` itself.
    ///
    /// # Errors
    /// [`Error::Request`] when the builder has `on_connect` messages.
    pub fn build_over<M: MakeConnection>(
        self,
        make: M,
        target: Target,
    ) -> Result<ResumingSink<M>, Error> {
        let parts = self.parts()?;
        let target = target.with_headers_hook(offer_hook(Arc::clone(&parts.plain)));
        let inner = parts.builder.build_over(make, target);
        Ok(ResumingSink::from_parts(
            inner,
            parts.cell,
            parts.plain,
            parts.config,
        ))
    }
}

/// A [`ReconnectingSink`] in resume mode: a `Sink<Message>` and a
/// `Stream<Item = Result<Message, Error>>` across which nothing is lost either way, with a
/// server that speaks resume mode. From [`Builder::resume`].
///
/// - Every message accepted is delivered to the server's application once, in order, or
///   the sink reports an error for the operation that could not deliver it. A message
///   stays in the sink until the server acknowledges it (its application took it); after
///   a reconnection the sink says where it stands (HELLO) and sends again what the server
///   lacks; the server drops what it already had.
/// - Every message the server sends is yielded once, in order. When the server cannot
///   deliver a range (its buffer overflowed while this client was away, the session
///   expired, the server restarted), the stream yields one [`Error::Gap`] at that place,
///   then carries on. No loss is silent.
/// - Bounded both ways: at most [`ResumeConfig::max_unacked_frames`] (and the server's
///   window) in flight, `poll_ready` waits beyond; the server never sends more than the
///   receive window ahead of the reader.
/// - `poll_flush` (and so `SinkExt::send`) completes once the server has acknowledged
///   everything sent: use `feed` and flush at the end of a batch for throughput.
///   [`feed_outgoing`](Self::feed_outgoing) gives each message a [`Delivery`] that
///   resolves when the server has it.
/// - `poll_close` tells the server the session is over (BYE), then closes.
///
/// ```
/// use futures::{SinkExt, StreamExt};
/// use ws_reconnect::server::{Server, ServerConfig};
/// use ws_reconnect::{Message, ReconnectingSink, ResumeConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A resume server that echoes, in this process.
/// let (server, mut sessions) = Server::new(ServerConfig::default());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let url = format!("ws://{}/", listener.local_addr()?);
/// tokio::spawn(server.serve(listener));
/// tokio::spawn(async move {
///     while let Some(mut session) = sessions.next().await {
///         tokio::spawn(async move {
///             while let Some(Ok(m)) = session.next().await {
///                 if session.feed(m).await.is_err() { break; }
///             }
///         });
///     }
/// });
///
/// let mut ws = ReconnectingSink::builder()
///     .resume(ResumeConfig::default())
///     .connect(&url)
///     .await?;
/// ws.send(Message::text("ping")).await?; // returns once the server has it
/// assert_eq!(ws.next().await.transpose()?, Some(Message::text("ping")));
/// ws.close().await?;
/// # Ok(())
/// # }
/// ```
///
/// # Through a task
/// [`ReconnectingSink::spawn`]'s `Handle` drives a plain sink; a `ResumingSink` is driven
/// by the caller (split it with `StreamExt::split` to read and write from two tasks).
pub struct ResumingSink<M: MakeConnection = DefaultConnector> {
    inner: ReconnectingSink<M>,
    cell: Cell,
    plain: Arc<AtomicBool>,
    config: ResumeConfig,
    /// A DATA frame taken from the sink while a gap before it is told.
    held: Option<Data>,
    /// An acknowledgement was written and not yet flushed.
    unflushed_ack: bool,
    /// BYE was queued by `close()`.
    bye_queued: bool,
    /// The stream has ended (the server said BYE).
    ended: bool,
}

impl ResumingSink<DefaultConnector> {
    fn build(parts: Parts, target: Target) -> Result<Self, Error> {
        let target = target.with_headers_hook(offer_hook(Arc::clone(&parts.plain)));
        let inner = parts.builder.build_with(target)?;
        Ok(ResumingSink::from_parts(
            inner,
            parts.cell,
            parts.plain,
            parts.config,
        ))
    }
}

impl<M: MakeConnection> ResumingSink<M> {
    fn from_parts(
        inner: ReconnectingSink<M>,
        cell: Cell,
        plain: Arc<AtomicBool>,
        config: ResumeConfig,
    ) -> Self {
        ResumingSink {
            inner,
            cell,
            plain,
            config,
            held: None,
            unflushed_ack: false,
            bye_queued: false,
            ended: false,
        }
    }

    /// Connects (see [`ReconnectingSink::dial`]). A server that does not choose the
    /// `ws-reconnect.v1` subprotocol fails the dial with [`Error::ResumeUnsupported`],
    /// unless [`ResumeConfig::required`] is `false`: then the sink dials again in plain
    /// mode, for good.
    ///
    /// # Errors
    /// As [`ReconnectingSink::dial`], and [`Error::ResumeUnsupported`].
    ///
    /// # Cancellation safety
    /// As [`ReconnectingSink::dial`].
    pub async fn dial(&mut self) -> Result<(), Error> {
        match self.inner.dial().await {
            Err(e) if is_unsupported(&e) => {
                if self.config.required || self.plain.load(Ordering::Relaxed) {
                    return Err(Error::ResumeUnsupported);
                }
                tracing::warn!("the server does not speak resume mode: plain mode from now on");
                self.plain.store(true, Ordering::Relaxed);
                self.inner.dial().await
            }
            other => other,
        }
    }

    /// Whether resume mode is in effect: `false` after falling back to plain mode (see
    /// [`ResumeConfig::required`]).
    pub fn is_resuming(&self) -> bool {
        !self.plain.load(Ordering::Relaxed)
    }

    /// The session the server gave this client; `None` before the first WELCOME.
    pub fn session(&self) -> Option<SessionId> {
        lock(&self.cell).session.map(|(id, _)| id)
    }

    /// The resume counters now.
    pub fn resume_stats(&self) -> ResumeStats {
        lock(&self.cell).stats
    }

    /// Messages sent and not yet acknowledged by the server.
    pub fn unacknowledged_count(&self) -> usize {
        lock(&self.cell).ledger.len()
    }

    /// The sink underneath: its [`state`](ReconnectingSink::state),
    /// [`stats`](ReconnectingSink::stats) and settings.
    pub fn get_ref(&self) -> &ReconnectingSink<M> {
        &self.inner
    }

    /// Takes every message the sink still owes out of it, oldest first, as the
    /// application sent them; they will not be sent. The server is told of the range as
    /// a gap when the sink connects again.
    pub fn take_undelivered(&mut self) -> Vec<Message> {
        let taken = self.inner.take_undelivered();
        let mut shared = lock(&self.cell);
        while shared.ledger.drop_oldest().is_some() {}
        drop(shared);
        taken.into_iter().filter_map(unwrap).collect()
    }

    /// Polls for the next message from the server.
    ///
    /// - `Ready(Some(Ok(m)))`: the next Text or Binary message, each once, in order.
    /// - `Ready(Some(Err(Error::Gap(_))))`: a range the server can never deliver, at its
    ///   place; polling again carries on.
    /// - `Ready(Some(Err(e)))`: as [`ReconnectingSink::poll_next`], and
    ///   [`Error::ResumeViolation`] for a broken frame (the messages from there on are
    ///   asked for again).
    /// - `Ready(None)`: not dialed, closed, failed for good, or the server ended the
    ///   session.
    /// - `Pending`: waiting; what the application took is acknowledged now.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        if self.plain.load(Ordering::Relaxed) {
            return self.inner.poll_next(cx).map_err_item();
        }
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            let replay = {
                let mut shared = lock(&self.cell);
                if let Some(violation) = shared.violations.pop_front() {
                    return Poll::Ready(Some(Err(Error::ResumeViolation(violation))));
                }
                let delivered = shared.inbound.delivered();
                if let Some(gap) = shared.gaps.take_at(delivered) {
                    shared.inbound.pass(&gap);
                    shared.stats.gaps += 1;
                    tracing::info!(%gap, "the reader is told of a gap");
                    return Poll::Ready(Some(Err(Error::Gap(gap))));
                }
                if self.held.is_none() && shared.bye_at.is_some_and(|at| at <= delivered) {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                shared.replay_from.take()
            };
            if let Some(from) = replay {
                self.send_control(Frame::Replay(from), Half::Read, cx);
                lock(&self.cell).stats.replays += 1;
            }
            if let Some(data) = self.held.take() {
                if let Some(message) = self.deliver(data) {
                    self.poll_ack(Half::Read, false, cx);
                    return Poll::Ready(Some(Ok(message)));
                }
                continue;
            }
            match self.inner.poll_next(cx) {
                Poll::Ready(Some(Ok(message))) => match Frame::from_message(&message) {
                    Ok(Frame::Data(data)) => self.held = Some(data),
                    // Everything else was consumed on arrival.
                    Ok(_) | Err(_) => {}
                },
                Poll::Ready(Some(Err(Error::InboundDropped { count }))) => {
                    tracing::warn!(
                        count,
                        "messages were lost before the reader took them: asking again"
                    );
                    self.rewind();
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(map_unsupported(e)))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    self.poll_ack(Half::Read, true, cx);
                    let mut shared = lock(&self.cell);
                    let delivered = shared.inbound.delivered();
                    let more = !shared.violations.is_empty()
                        || shared.replay_from.is_some()
                        || shared.bye_at.is_some_and(|at| at <= delivered)
                        || shared.gaps.ready_at(delivered);
                    if more {
                        continue;
                    }
                    shared.reader = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        }
    }

    /// The application takes `data` if it is the next one; a later one means frames were
    /// lost before the reader took them: they are asked for again.
    fn deliver(&mut self, data: Data) -> Option<Message> {
        let mut shared = lock(&self.cell);
        let delivered = shared.inbound.delivered();
        if data.seq < delivered {
            return None;
        }
        if data.seq > delivered {
            drop(shared);
            tracing::warn!(
                expected = delivered,
                got = data.seq,
                "messages were lost before the reader took them: asking again"
            );
            self.rewind();
            return None;
        }
        let len = data.payload.len();
        shared.inbound.deliver(data.seq, len);
        if shared.owed_since.is_none() {
            shared.owed_since = Some(Instant::now());
        }
        Some(data.into_message())
    }

    /// Frames read from the wire were lost before the application took them: expect them
    /// again from where it stands, and ask the server.
    fn rewind(&mut self) {
        let mut shared = lock(&self.cell);
        let from = shared.inbound.rewind();
        shared.gaps.rewind(from);
        shared.replay_from = Some(from);
    }

    /// Sends an acknowledgement when one is due (`parking`: the reader is about to wait,
    /// so everything taken is acknowledged), and flushes one written before.
    fn poll_ack(&mut self, half: Half, parking: bool, cx: &mut Context<'_>) {
        let ack = {
            let shared = lock(&self.cell);
            let late = shared
                .owed_since
                .is_some_and(|since| since.elapsed() >= self.config.ack_delay);
            if parking || late {
                shared.inbound.owed()
            } else {
                shared.inbound.due(self.config.ack_every())
            }
        };
        if let Some(ack) = ack {
            if self.inner.is_connected() {
                self.send_control(Frame::Ack(ack), half, cx);
                let mut shared = lock(&self.cell);
                shared.inbound.ack_sent(ack);
                shared.owed_since = None;
            }
        } else if self.unflushed_ack && self.inner.poll_flush_written(half, cx).is_ready() {
            self.unflushed_ack = false;
        }
    }

    /// Writes a control frame past the window and flushes it.
    fn send_control(&mut self, frame: Frame, half: Half, cx: &mut Context<'_>) {
        if self.inner.start_send_control(frame.to_message()).is_ok() {
            self.unflushed_ack = self.inner.poll_flush_written(half, cx).is_pending();
        }
    }

    /// Polls until the sink can take a message: connected, with room in the window (ours
    /// and the server's).
    ///
    /// - `Ready(Ok(()))`: call `start_send`.
    /// - `Ready(Err(e))`: as [`ReconnectingSink::poll_ready`]; [`Error::SessionEnded`]
    ///   once the server ended the session.
    /// - `Pending`: reconnecting, flushing, or waiting for acknowledgements.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.plain.load(Ordering::Relaxed) {
            return self.inner.poll_ready(cx).map_err(map_unsupported);
        }
        if self.ended || lock(&self.cell).bye_at.is_some() {
            return Poll::Ready(Err(Error::SessionEnded));
        }
        self.poll_ack(Half::Write, false, cx);
        ready!(self.inner.poll_ready(cx)).map_err(map_unsupported)?;
        loop {
            if lock(&self.cell).room(&self.config) {
                return Poll::Ready(Ok(()));
            }
            // Wait for acknowledgements: the flush reads them.
            match self.inner.poll_flush(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(map_unsupported(e))),
                Poll::Pending => {
                    let mut shared = lock(&self.cell);
                    if shared.room(&self.config) {
                        return Poll::Ready(Ok(()));
                    }
                    shared.writer = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        }
    }

    /// Accepts a message: gives it the next sequence number, and hands it to the sink,
    /// which keeps it until the server acknowledges it.
    ///
    /// # Errors
    /// As [`ReconnectingSink::start_send`]; the message was not taken.
    pub fn start_send(&mut self, message: Message) -> Result<(), Error> {
        let envelope = self.envelope(message)?;
        match envelope {
            Envelope::Plain(message) => self.inner.start_send(message),
            Envelope::Data { message, len, ack } => {
                self.inner.start_send(message)?;
                self.sent(len, ack);
                Ok(())
            }
        }
    }

    /// Accepts a message as [`start_send`](Self::start_send) does, and returns its
    /// [`Delivery`]: `Ok` once the server has acknowledged it (its application took it),
    /// or failed with the message handed back, as the application sent it.
    ///
    /// # Errors
    /// As [`start_send`](Self::start_send).
    pub fn start_send_outgoing(&mut self, message: Message) -> Result<ResumeDelivery, Error> {
        let envelope = self.envelope(message)?;
        let delivery = match envelope {
            Envelope::Plain(message) => self.inner.start_send_outgoing(Outgoing::new(message))?,
            Envelope::Data { message, len, ack } => {
                let delivery = self.inner.start_send_outgoing(Outgoing::new(message))?;
                self.sent(len, ack);
                delivery
            }
        };
        Ok(ResumeDelivery { inner: delivery })
    }

    /// Waits until the sink can take a message, then
    /// [`start_send_outgoing`](Self::start_send_outgoing). It does not flush.
    ///
    /// ```no_run
    /// # async fn run(mut ws: ws_reconnect::ResumingSink) -> Result<(), ws_reconnect::Error> {
    /// use ws_reconnect::Message;
    /// let delivery = ws.feed_outgoing(Message::text("order 7")).await?;
    /// // ... go on sending and reading; the outcome resolves when the server has it:
    /// delivery.await.expect("the server has order 7");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`poll_ready`](Self::poll_ready) and [`start_send`](Self::start_send).
    ///
    /// # Cancellation safety
    /// Dropped before it returns, the message was not taken.
    pub async fn feed_outgoing(&mut self, message: Message) -> Result<ResumeDelivery, Error> {
        poll_fn(|cx| self.poll_ready(cx)).await?;
        self.start_send_outgoing(message)
    }

    /// The message as it goes to the sink.
    fn envelope(&mut self, message: Message) -> Result<Envelope, Error> {
        if self.plain.load(Ordering::Relaxed) {
            return Ok(Envelope::Plain(message));
        }
        if self.ended {
            return Err(Error::SessionEnded);
        }
        let (text, payload) = match message {
            Message::Text(text) => (true, Bytes::from(text)),
            Message::Binary(bytes) => (false, bytes),
            Message::Close(_) | Message::Frame(_) => return Err(Error::UnsupportedMessage),
            ping_or_pong => return Ok(Envelope::Plain(ping_or_pong)),
        };
        let shared = lock(&self.cell);
        let seq = shared.ledger.next();
        let ack = shared.inbound.owed();
        drop(shared);
        let frame = frame::encode_data(seq, ack, text, &payload);
        Ok(Envelope::Data {
            message: Message::Binary(Bytes::from(frame)),
            len: payload.len(),
            ack,
        })
    }

    /// A DATA frame was taken by the sink: it is in flight.
    fn sent(&mut self, len: usize, ack: Option<u64>) {
        let mut shared = lock(&self.cell);
        shared.ledger.push((), len);
        if let Some(ack) = ack {
            shared.inbound.ack_sent(ack);
            shared.owed_since = None;
        }
    }

    /// Polls until every message sent is acknowledged by the server (see
    /// [`ReconnectingSink::poll_flush`]).
    ///
    /// - `Ready(Ok(()))`: the server's application has everything sent so far.
    /// - `Ready(Err(e))`: a reconnection failed; the messages stay.
    /// - `Pending`: writing, reconnecting, or waiting for acknowledgements.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !self.plain.load(Ordering::Relaxed) {
            self.poll_ack(Half::Write, false, cx);
        }
        self.inner.poll_flush(cx).map_err(map_unsupported)
    }

    /// Tells the server the session is over (BYE, after everything sent), then closes as
    /// [`ReconnectingSink::poll_close`] does.
    ///
    /// - `Ready(Ok(()))`: closed, everything delivered.
    /// - `Ready(Err(e))`: as [`ReconnectingSink::poll_close`].
    /// - `Pending`: delivering or closing.
    pub fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if !self.plain.load(Ordering::Relaxed) && !self.bye_queued && !self.ended {
            // After the data: the server ends the session once it delivered it all.
            ready!(self.inner.poll_flush(cx)).map_err(map_unsupported)?;
            if self
                .inner
                .start_send_control(Frame::Bye.to_message())
                .is_ok()
            {
                self.bye_queued = true;
            }
        }
        self.inner.poll_close(cx)
    }
}

/// How an accepted message goes to the sink.
enum Envelope {
    /// As it is: plain mode, or a Ping or Pong.
    Plain(Message),
    /// A DATA frame, its payload length, and the acknowledgement it carries.
    Data {
        message: Message,
        len: usize,
        ack: Option<u64>,
    },
}

/// The application's message inside a DATA frame; `None` for a control frame.
fn unwrap(message: Message) -> Option<Message> {
    match Frame::from_message(&message) {
        Ok(Frame::Data(data)) => Some(data.into_message()),
        Ok(_) => None,
        Err(_) => Some(message),
    }
}

/// The application's message inside a DATA frame; anything else as it is.
fn original(message: Message) -> Message {
    match Frame::from_message(&message) {
        Ok(Frame::Data(data)) => data.into_message(),
        _ => message,
    }
}

/// A refusal of the subprotocol on a reconnection reads as resume being unsupported.
fn map_unsupported(error: Error) -> Error {
    if is_unsupported(&error) {
        Error::ResumeUnsupported
    } else {
        error
    }
}

trait MapErrItem {
    fn map_err_item(self) -> Self;
}

impl MapErrItem for Poll<Option<Result<Message, Error>>> {
    fn map_err_item(self) -> Self {
        self.map(|item| item.map(|r| r.map_err(map_unsupported)))
    }
}

/// The outcome of one message sent in resume mode: `Ok` once the server has acknowledged
/// it, or failed with the message handed back as the application sent it. From
/// [`ResumingSink::start_send_outgoing`].
#[derive(Debug)]
#[must_use = "a delivery does nothing unless awaited or polled"]
pub struct ResumeDelivery {
    inner: Delivery,
}

impl Future for ResumeDelivery {
    type Output = Result<(), Undelivered>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner)
            .poll(cx)
            .map(|outcome| outcome.map_err(|e| e.map_message(original)))
    }
}

impl<M: MakeConnection + Unpin> Sink<Message> for ResumingSink<M> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ResumingSink::poll_ready(self.get_mut(), cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        ResumingSink::start_send(self.get_mut(), item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ResumingSink::poll_flush(self.get_mut(), cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ResumingSink::poll_close(self.get_mut(), cx)
    }
}

impl<M: MakeConnection + Unpin> Stream for ResumingSink<M> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        ResumingSink::poll_next(self.get_mut(), cx)
    }
}

impl<M: MakeConnection> fmt::Debug for ResumingSink<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = lock(&self.cell);
        f.debug_struct("ResumingSink")
            .field("inner", &self.inner)
            .field("resuming", &!self.plain.load(Ordering::Relaxed))
            .field("session", &shared.session.map(|(id, _)| id))
            .field("unacknowledged", &shared.ledger.len())
            .field("delivered", &(shared.inbound.delivered() - 1))
            .finish_non_exhaustive()
    }
}
