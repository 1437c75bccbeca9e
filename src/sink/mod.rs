//! [`ReconnectingSink`]: one `Sink` + `Stream` of messages that survives disconnects.
//!
//! # States
//!
//! ```text
//! state          | meaning                                   | writes          | reads
//! ---------------+-------------------------------------------+-----------------+-----------
//! Idle           | never dialed, or closed by the user       | Err(NotDialed)  | None
//! Disconnected   | a connection attempt is due               | attempt         | attempt
//! Connecting     | an attempt (through the layers) in flight | Pending         | Pending
//! Connected      | up; on_connect + resend written first     | write           | read
//! Refused        | the limiter refused; sleeping until a     | Pending         | Pending
//!                | slot frees                                |                 |
//! Failed         | reconnection failed for good              | attempt again   | None
//! Closing        | user's close(): Close frame being sent    | Err(NotDialed)  | None
//!
//! Idle         -> Disconnected   dial()
//! Disconnected -> Connecting     the factory is ready; attempt started
//! Connecting   -> Connected      attempt succeeded: write on_connect, then resend the outbox
//! Connecting   -> Refused        Err(TooManyReconnects) with a retry time (returned once)
//! Connecting   -> Failed         any other error (returned once)
//! Refused      -> Disconnected   the window frees
//! Failed       -> Disconnected   a write (the seed's WriteMessage reconnects)
//! Connected    -> Disconnected   write/flush error, read error, EOF or Close frame
//! any          -> Closing        close(), after the outbox is flushed
//! Closing      -> Idle           Close frame flushed
//! ```
//!
//! # Delivery
//! A message accepted by `start_send` (that is, `send` got past `poll_ready`) stays in
//! the outbox until a flush that includes it succeeds. If the connection fails first, it is
//! written again to the next connection, after the `on_connect` messages, in order.
//! A message may therefore arrive twice (it was written, but the flush did not confirm it).
//! A message whose flush succeeded is in the kernel's socket buffer; if the connection
//! dies before the peer reads it, it is lost — that is what acknowledged delivery is for.
//! Before each write, frames that have already arrived are processed without waiting,
//! so a Close or EOF the server already sent moves new messages to the next connection.

mod builder;
mod outbox;
mod state;
mod stats;
mod waker;

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;
use futures_sink::Sink;
use rand::Rng;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use self::builder::Settings;
pub use self::builder::{Builder, DefaultConnector};
use self::outbox::Outbox;
pub use self::state::{CloseAction, ClosePolicy, ConnectionState};
pub use self::stats::{Stats, StatsHandle};
use self::waker::{Fanout, Half};
use crate::ack::Acknowledge;
use crate::connect::MakeConnection;
use crate::error::{BoxError, Error};
use crate::limit::ReconnectLimiter;
use crate::target::{DialKind, Target};
use crate::Message;

/// A WebSocket connection that stays up: a `Sink<Message>` and a
/// `Stream<Item = Result<Message, Error>>` that reconnect through the connection layers
/// and resend what was not flushed.
///
/// See the [module docs](self) for the state machine and the delivery guarantee.
///
/// ```no_run
/// use futures::{SinkExt, StreamExt};
/// use ws_reconnect::{Message, ReconnectingSink};
///
/// # async fn run() -> Result<(), ws_reconnect::Error> {
/// let mut ws = ReconnectingSink::connect("ws://127.0.0.1:9000/feed").await?;
/// ws.send(Message::text("hello")).await?;
/// while let Some(message) = ws.next().await {
///     println!("{}", message?);
/// }
/// # Ok(()) }
/// ```
pub struct ReconnectingSink<M: MakeConnection = DefaultConnector> {
    waker: Waker,
    core: Core<M>,
}

struct Core<M: MakeConnection> {
    make: M,
    target: Target,
    state: State<M>,
    on_connect: Vec<Message>,
    outbox: Outbox,
    /// What the reader has not taken yet, in order: data messages, and the errors it must
    /// see where they happened (a peer's protocol violation, a gap of dropped messages, a
    /// refused reconnection).
    inbox: VecDeque<Result<Message, Error>>,
    inbox_capacity: usize,
    healthy_after: Duration,
    close_timeout: Duration,
    limiter: Option<ReconnectLimiter>,
    acks: Option<Acks>,
    /// Inbound data messages dropped because the inbox was full while acknowledgements
    /// had to be read past it.
    dropped_inbound: u64,
    stats: StatsHandle,
    /// Ping after this much silence; the connection is dead if nothing arrives within
    /// the timeout after the ping.
    keepalive: Option<(Duration, Duration)>,
    close_policy: ClosePolicy,
    reconnect_jitter: Duration,
    state_tx: watch::Sender<ConnectionState>,
    /// Reconnection runs since the last connection came up.
    reconnect_runs: u32,
    /// An error to report once to whichever half polls next (the server's Close code
    /// said not to come back).
    pending_error: Option<Error>,
    /// `close()` started: it must be done by this deadline, whatever the state.
    close_deadline: Option<Pin<Box<Sleep>>>,
    /// Messages and bytes accepted since the writer last looked at inbound frames.
    unchecked: (u32, usize),
    /// Messages and bytes accepted and not yet added to `stats`.
    unsent_stats: (u64, u64),
    wakers: Arc<Fanout>,
    /// The half polling now; state changes wake the other one.
    current: Half,
}

enum State<M: MakeConnection> {
    Idle,
    Disconnected {
        kind: DialKind,
        reset_backoff: bool,
    },
    /// Waiting a random `reconnect_jitter` before reconnecting.
    Delaying {
        sleep: Pin<Box<Sleep>>,
        reset_backoff: bool,
    },
    Connecting {
        future: Pin<Box<M::Future>>,
        kind: DialKind,
    },
    Connected(Live<M::Connection>),
    Refused {
        sleep: Pin<Box<Sleep>>,
        reset_backoff: bool,
        /// The limiter's answer, repeated to every write until `sleep` ends.
        refusal: Refusal,
    },
    Failed,
    Closing {
        conn: Pin<Box<M::Connection>>,
        /// Our Close frame is flushed; waiting for the peer's.
        sent: bool,
    },
}

/// The limiter's refusal, kept to answer every write while it lasts.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    max_total: usize,
    window: Duration,
    retry_at: Instant,
}

impl Refusal {
    fn error(self) -> Error {
        Error::TooManyReconnects {
            max_total: self.max_total,
            window: self.window,
            retry_at: Some(self.retry_at),
        }
    }
}

/// What a look at the frames that already arrived found.
enum Look {
    /// The connection is still up (and nothing, or only data and control, arrived).
    Open,
    /// The connection ended (EOF, reset, the peer's Close): the state has moved on.
    Lost,
    /// The peer broke the protocol. The error is queued for the reader; the connection
    /// is still in place for the caller to decide how it ends.
    Faulted(String),
}

/// A connection that carried messages written on it for at least this long counts as
/// productive: its loss is followed by an immediate reconnection. A server that accepts
/// and drops at once ends connections sooner than this, and so still meets growing delays.
const PRODUCTIVE_UPTIME: Duration = Duration::from_millis(100);

/// Acknowledged mode: the user's [`Acknowledge`] and its bounds.
pub(crate) struct Acks {
    pub(crate) acks: Box<dyn Acknowledge>,
    pub(crate) window: usize,
    pub(crate) timeout: Duration,
}

/// An established connection and what has been written to it.
struct Live<C> {
    conn: Pin<Box<C>>,
    since: Instant,
    /// A data message or an acknowledgement arrived: the connection proved healthy.
    delivered: bool,
    /// Messages accepted while this connection was up were written to it directly.
    wrote_fresh: bool,
    /// ... and a flush that included them succeeded.
    carried: bool,
    /// The peer broke the protocol and one last write was granted: the next flush drops
    /// the connection. Holds the cause.
    fault: Option<String>,
    /// `on_connect` messages written so far.
    preamble: usize,
    /// The preamble or a resend was written and nobody has flushed it yet.
    needs_flush: bool,
    /// Acknowledged mode: fires when no acknowledgement progress was made for
    /// `ack_timeout` while tracked messages were outstanding. `None` until first armed.
    ack_deadline: Option<Pin<Box<Sleep>>>,
    ack_armed: bool,
    /// When the last frame of any kind arrived (keepalive).
    last_rx: Instant,
    keepalive_timer: Option<Pin<Box<Sleep>>>,
    /// A keepalive Ping fell due at this time and no frame has arrived since: the
    /// connection is dead unless one arrives within the timeout.
    probe: Option<Instant>,
    /// The probe's Ping is written (it may not be, while the socket is full).
    ping_written: bool,
}

/// What one inbound frame means to the sink.
enum Inbound {
    Data(Message),
    Control,
    Closed(Option<CloseFrame>),
}

fn classify(message: Message) -> Inbound {
    match message {
        Message::Text(_) | Message::Binary(_) => Inbound::Data(message),
        Message::Close(frame) => Inbound::Closed(frame),
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Inbound::Control,
    }
}

/// Per-connection state for a fresh connection.
fn live<C>(conn: C) -> Live<C> {
    Live {
        conn: Box::pin(conn),
        since: Instant::now(),
        delivered: false,
        wrote_fresh: false,
        carried: false,
        fault: None,
        preamble: 0,
        needs_flush: false,
        ack_deadline: None,
        ack_armed: false,
        last_rx: Instant::now(),
        keepalive_timer: None,
        probe: None,
        ping_written: false,
    }
}

impl ReconnectingSink<DefaultConnector> {
    /// Starts a [`Builder`] with the default settings.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::ReconnectingSink;
    ///
    /// let ws = ReconnectingSink::builder()
    ///     .initial_interval(Duration::from_millis(100))
    ///     .max_reconnections_total(5)
    ///     .build("ws://127.0.0.1:9000/")?; // undialed: no I/O yet
    /// assert!(!ws.is_connected());
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Dials `url` with the default settings and returns the connected sink.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] at once for a bad URL; [`Error::Rejected`] for a status the
    /// server refused the upgrade with that is not retryable; [`Error::GaveUp`] when the
    /// backoff runs out (by default it never does).
    ///
    /// ```
    /// # async fn run() {
    /// use ws_reconnect::{Error, ReconnectingSink};
    /// let err = ReconnectingSink::connect("http://example.com").await.unwrap_err();
    /// assert!(matches!(err, Error::InvalidUrl { .. }));
    /// # }
    /// ```
    pub async fn connect(url: impl AsRef<str>) -> Result<Self, Error> {
        Builder::default().connect(url).await
    }
}

impl<M> ReconnectingSink<M>
where
    M: MakeConnection,
    M::Error: Into<BoxError>,
    M::SinkError: Into<BoxError>,
    M::StreamError: Into<BoxError>,
{
    /// An undialed sink over any connection stack: a [`MakeConnection`] (for example a
    /// `tower::ServiceBuilder` stack) and the target it dials. Call
    /// [`dial`](Self::dial) to connect.
    ///
    /// Uses the default buffer sizes, no `on_connect` messages, and no limiter handle for
    /// [`can_connect`](Self::can_connect) (add a [`ReconnectLimitLayer`](crate::ReconnectLimitLayer)
    /// to the stack and [`with_limiter`](Self::with_limiter) to report it).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::{BackoffLayer, ExponentialBackoff, ReconnectingSink, Target, TungsteniteConnector};
    ///
    /// let stack = tower::ServiceBuilder::new()
    ///     .layer(BackoffLayer::new(ExponentialBackoff::default()))
    ///     .timeout(Duration::from_secs(5))
    ///     .service(TungsteniteConnector::default());
    /// let ws = ReconnectingSink::new(stack, Target::new("ws://127.0.0.1:9000/")?);
    /// assert!(!ws.is_connected());
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn new(make: M, target: Target) -> Self {
        Builder::default().build_core(make, target, None)
    }

    fn from_parts(
        make: M,
        target: Target,
        settings: Settings,
        limiter: Option<ReconnectLimiter>,
    ) -> Self {
        let (wakers, waker) = Fanout::new();
        ReconnectingSink {
            waker,
            core: Core {
                make,
                target,
                state: State::Idle,
                on_connect: settings.on_connect,
                outbox: settings.outbox,
                inbox: VecDeque::new(),
                inbox_capacity: settings.inbox_capacity.max(1),
                healthy_after: settings.healthy_after,
                close_timeout: settings.close_timeout,
                limiter,
                acks: settings.acks,
                dropped_inbound: 0,
                stats: StatsHandle::default(),
                keepalive: settings.keepalive,
                close_policy: settings.close_policy,
                reconnect_jitter: settings.reconnect_jitter,
                state_tx: watch::Sender::new(ConnectionState::Idle),
                reconnect_runs: 0,
                pending_error: None,
                close_deadline: None,
                unchecked: (0, 0),
                unsent_stats: (0, 0),
                wakers,
                current: Half::Write,
            },
        }
    }

    /// Reports `limiter` from [`can_connect`](Self::can_connect); use the handle that the
    /// stack's [`ReconnectLimitLayer`](crate::ReconnectLimitLayer) draws from.
    pub fn with_limiter(mut self, limiter: ReconnectLimiter) -> Self {
        self.core.limiter = Some(limiter);
        self
    }

    /// Connects: a first dial, not counted by the limiter. Returns once the connection is
    /// up and the `on_connect` messages (and anything left unflushed from before) are
    /// flushed. Dialing a connected sink does nothing; dialing a sink whose `close()` was
    /// dropped before it finished abandons that close and connects anew.
    ///
    /// # Errors
    /// As [`ReconnectingSink::connect`].
    ///
    /// # Cancellation safety
    /// Dropping the future leaves the attempt in the sink; the next operation continues it.
    pub async fn dial(&mut self) -> Result<(), Error> {
        self.core.dial();
        poll_fn(|cx| self.poll_flush_inner(cx)).await
    }

    /// Whether a connection is up now.
    pub fn is_connected(&self) -> bool {
        matches!(self.core.state, State::Connected(_))
    }

    /// Whether a reconnection would be allowed now: the sink is not closed and the
    /// limiter (if known) has room. Asking takes nothing from the budget.
    pub fn can_connect(&self) -> bool {
        !matches!(self.core.state, State::Closing { .. })
            && self
                .core
                .limiter
                .as_ref()
                .is_none_or(ReconnectLimiter::can_connect)
    }

    /// Accepted messages the sink still owes the peer: not yet confirmed by a flush, or
    /// (in acknowledged mode) tracked and not yet acknowledged.
    ///
    /// ```
    /// let ws = ws_reconnect::ReconnectingSink::builder().build("ws://127.0.0.1:9/")?;
    /// assert_eq!(ws.undelivered(), 0);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn undelivered(&self) -> usize {
        self.core.outbox.len()
    }

    /// The connection state, as a `watch` channel: `borrow()` for the current value,
    /// `changed().await` to follow the transitions.
    ///
    /// ```
    /// use ws_reconnect::sink::ConnectionState;
    /// let ws = ws_reconnect::ReconnectingSink::builder().build("ws://127.0.0.1:9/")?;
    /// let state = ws.state();
    /// assert_eq!(*state.borrow(), ConnectionState::Idle);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.core.state_tx.subscribe()
    }

    /// The counters now: connections, messages and bytes each way, resends, uptime.
    ///
    /// ```
    /// let ws = ws_reconnect::ReconnectingSink::builder().build("ws://127.0.0.1:9/")?;
    /// assert_eq!(ws.stats().reconnects, 0);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let mut stats = self.core.stats.get();
        stats.messages_sent += self.core.unsent_stats.0;
        stats.bytes_sent += self.core.unsent_stats.1;
        stats
    }

    /// A handle on the counters that outlives `split` and `forward`.
    ///
    /// ```
    /// let ws = ws_reconnect::ReconnectingSink::builder().build("ws://127.0.0.1:9/")?;
    /// let stats = ws.stats_handle();
    /// assert_eq!(stats.get().connects, 0);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn stats_handle(&self) -> StatsHandle {
        self.core.stats.clone()
    }

    /// Tracked messages waiting for an acknowledgement (0 unless acknowledged mode is on).
    ///
    /// ```
    /// let ws = ws_reconnect::ReconnectingSink::builder().build("ws://127.0.0.1:9/")?;
    /// assert_eq!(ws.unacknowledged(), 0);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn unacknowledged(&self) -> usize {
        self.core.outbox.tracked()
    }

    /// Takes every message the sink still owes out of it, oldest first: after a failure
    /// you do not want to retry, this is how nothing is lost silently. They will not be
    /// resent.
    ///
    /// ```
    /// let mut ws = ws_reconnect::ReconnectingSink::builder().build("ws://127.0.0.1:9/")?;
    /// assert!(ws.take_undelivered().is_empty());
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn take_undelivered(&mut self) -> Vec<Message> {
        self.core.outbox.take_all()
    }

    /// Inbound data messages dropped (with a warning) because the inbox was full while
    /// acknowledgements behind them had to be read. Always 0 outside acknowledged mode.
    ///
    /// ```
    /// let ws = ws_reconnect::ReconnectingSink::builder().build("ws://127.0.0.1:9/")?;
    /// assert_eq!(ws.dropped_inbound(), 0);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn dropped_inbound(&self) -> u64 {
        self.core.dropped_inbound
    }

    /// The target this sink dials.
    pub fn target(&self) -> &Target {
        &self.core.target
    }

    /// The connection factory.
    pub fn get_ref(&self) -> &M {
        &self.core.make
    }

    /// The connection factory, mutably.
    pub fn get_mut(&mut self) -> &mut M {
        &mut self.core.make
    }

    /// Polls until the sink can take a message: connected (reconnecting first if needed),
    /// with room in the outbox.
    ///
    /// - `Ready(Ok(()))`: call `start_send`.
    /// - `Ready(Err(e))`: the reconnection failed ([`Error::TooManyReconnects`], returned
    ///   on every call until the limiter's window frees; [`Error::Rejected`],
    ///   [`Error::GaveUp`]) or the sink is not dialed ([`Error::NotDialed`]). Unflushed
    ///   messages stay in the sink; after a failure other than the limiter's, polling again
    ///   dials again.
    /// - `Pending`: reconnecting or flushing; the task is woken when that progresses.
    pub fn poll_ready_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_with(Half::Write, cx, Core::poll_ready)
    }

    /// Accepts a message: keeps it in the outbox and writes it to the connection.
    ///
    /// # Errors
    /// [`Error::NotDialed`] before `dial` or after `close`; [`Error::UnsupportedMessage`]
    /// for `Close` and `Frame` messages. A failing write is not an error here: the message
    /// is kept and resent on the next connection.
    pub fn start_send_inner(&mut self, message: Message) -> Result<(), Error> {
        self.core.start_send(message)
    }

    /// Polls until every accepted message is flushed, reconnecting and resending as needed.
    ///
    /// - `Ready(Ok(()))`: everything accepted was written and flushed.
    /// - `Ready(Err(e))`: a reconnection failed; the messages stay (see
    ///   [`take_undelivered`](Self::take_undelivered)).
    /// - `Pending`: writing or reconnecting.
    pub fn poll_flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_with(Half::Write, cx, Core::poll_flush)
    }

    /// Flushes, sends a Close frame and ends the connection, all within `close_timeout`;
    /// the stream then ends and writes fail with [`Error::NotDialed`] until the next
    /// [`dial`](Self::dial). No connection attempt is made after it.
    ///
    /// - `Ready(Ok(()))`: closed, nothing owed.
    /// - `Ready(Err(Error::CloseIncomplete { .. }))`: closed, but messages could not be
    ///   delivered before `close_timeout` or the reconnection they needed failed; they stay
    ///   in the sink ([`take_undelivered`](Self::take_undelivered)).
    /// - `Pending`: flushing or closing.
    pub fn poll_close_inner(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_with(Half::Write, cx, Core::poll_close)
    }

    /// Polls for the next data message, reconnecting when the connection ends.
    ///
    /// - `Ready(Some(Ok(m)))`: a Text or Binary message (Ping, Pong and Close are handled
    ///   inside).
    /// - `Ready(Some(Err(e)))`: something the reader must know, at the place it happened:
    ///   the peer broke the protocol or sent a frame over the limits (the connection is
    ///   replaced), inbound messages were dropped ([`Error::InboundDropped`], acknowledged
    ///   mode), a reconnection was refused or failed. Polling again carries on. A
    ///   connection that ends by a reset or an EOF is not an error: the sink reconnects.
    /// - `Ready(None)`: not dialed, closed by the user, or reconnection failed for good.
    /// - `Pending`: waiting for a message or a reconnection.
    pub fn poll_next_inner(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, Error>>> {
        self.poll_with(Half::Read, cx, Core::poll_next)
    }

    /// Runs one of the core's poll functions for `half` with the fan-out waker, and
    /// registers the caller's waker only when it parks, then looks once more: a wake-up
    /// that came between the first look and the registration is not lost.
    fn poll_with<T>(
        &mut self,
        half: Half,
        cx: &mut Context<'_>,
        op: fn(&mut Core<M>, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.core.current = half;
        let mut inner = Context::from_waker(&self.waker);
        if let Poll::Ready(r) = self.core.drive(&mut inner, op) {
            return Poll::Ready(r);
        }
        self.core.wakers.register(half, cx.waker());
        self.core.drive(&mut inner, op)
    }
}

impl<M> Core<M>
where
    M: MakeConnection,
    M::Error: Into<BoxError>,
    M::SinkError: Into<BoxError>,
    M::StreamError: Into<BoxError>,
{
    /// Runs `op`; when it would park on a live connection, the liveness checks (frames
    /// that arrived, the acknowledgement timer, the keepalive) have their turn first, so
    /// they run for a writer blocked on a full socket as well as for a reader. If they
    /// found the connection dead, `op` runs again (and reconnects).
    fn drive<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: fn(&mut Self, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        loop {
            if let Poll::Ready(r) = op(self, cx) {
                return Poll::Ready(r);
            }
            if !self.poll_liveness(cx) {
                return Poll::Pending;
            }
        }
    }

    /// The liveness checks of a live connection. Returns whether they lost it.
    fn poll_liveness(&mut self, cx: &mut Context<'_>) -> bool {
        let State::Connected(live) = &mut self.state else {
            return false;
        };
        if let Some(cause) = live.fault.take() {
            // A write was granted after a peer fault and nobody flushed it: drop now.
            self.lose_with(cause.into(), Health::Unhealthy);
            return true;
        }
        // The reader has just read until Pending; the writer looks here, which also
        // registers it for the Pong or acknowledgement it may be waiting for.
        if self.current == Half::Write {
            match self.poll_inbound(cx) {
                Look::Open => {}
                Look::Lost => return true,
                Look::Faulted(cause) => {
                    self.lose_with(cause.into(), Health::Unhealthy);
                    return true;
                }
            }
        }
        self.poll_ack_timeout(cx) || self.poll_keepalive(cx)
    }

    /// `dial()`: from Idle or Failed, a first dial; from Closing, the unfinished close is
    /// abandoned and a first dial starts.
    fn dial(&mut self) {
        self.close_deadline = None;
        match &self.state {
            State::Idle | State::Failed => {}
            State::Closing { .. } => {
                tracing::debug!("dial() abandons an unfinished close");
                self.stats.disconnected();
            }
            _ => return,
        }
        self.pending_error = None;
        // Idle / Failed / Closing -> Disconnected
        self.state = State::Disconnected {
            kind: DialKind::First,
            reset_backoff: true,
        };
        self.publish(ConnectionState::Connecting);
    }

    /// Drives the state to `Connected` with the `on_connect` messages and the outbox
    /// written (not necessarily flushed).
    fn poll_connected(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            match &mut self.state {
                State::Idle | State::Closing { .. } => return Poll::Ready(Err(Error::NotDialed)),
                State::Failed => {
                    if let Some(e) = self.pending_error.take() {
                        return Poll::Ready(Err(e));
                    }
                    // Failed -> Disconnected: a write dials again, from a fresh backoff.
                    self.state = State::Disconnected {
                        kind: DialKind::Reconnect,
                        reset_backoff: true,
                    };
                }
                State::Refused {
                    sleep,
                    reset_backoff,
                    refusal,
                } => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        // Every write is told, as long as the refusal lasts; the reader
                        // was told once and waits.
                        return match self.current {
                            Half::Write => Poll::Ready(Err(refusal.error())),
                            Half::Read => Poll::Pending,
                        };
                    }
                    // Refused -> Disconnected: the limiter's window has a slot again.
                    self.state = State::Disconnected {
                        kind: DialKind::Reconnect,
                        reset_backoff: *reset_backoff,
                    };
                }
                State::Delaying {
                    sleep,
                    reset_backoff,
                } => {
                    ready!(sleep.as_mut().poll(cx));
                    // Delaying -> Disconnected: the jitter is over.
                    self.state = State::Disconnected {
                        kind: DialKind::Reconnect,
                        reset_backoff: *reset_backoff,
                    };
                }
                State::Disconnected {
                    kind,
                    reset_backoff,
                } => {
                    let (kind, reset_backoff) = (*kind, *reset_backoff);
                    if let Err(e) = ready!(self.make.poll_ready(cx)) {
                        return Poll::Ready(Err(self.connect_failed(Error::from_boxed(e.into()))));
                    }
                    let target = self
                        .target
                        .clone()
                        .with_kind(kind)
                        .with_attempt(0)
                        .with_reset_backoff(reset_backoff);
                    tracing::debug!(?kind, reset_backoff, "connecting");
                    if kind == DialKind::Reconnect {
                        self.reconnect_runs += 1;
                    }
                    // Disconnected -> Connecting
                    self.state = State::Connecting {
                        future: Box::pin(self.make.make_connection(target)),
                        kind,
                    };
                }
                State::Connecting { future, kind } => match ready!(future.as_mut().poll(cx)) {
                    Ok(conn) => {
                        self.stats.connected(*kind == DialKind::Reconnect);
                        self.reconnect_runs = 0;
                        self.publish(ConnectionState::Connected);
                        tracing::info!(
                            on_connect = self.on_connect.len(),
                            resending = self.outbox.len(),
                            "connected"
                        );
                        self.outbox.rewind();
                        // Connecting -> Connected
                        self.state = State::Connected(live(conn));
                        self.wakers.wake_other(self.current);
                    }
                    Err(e) => {
                        return Poll::Ready(Err(self.connect_failed(Error::from_boxed(e.into()))));
                    }
                },
                State::Connected(live) => {
                    if live.fault.is_some() {
                        // The write granted after a peer fault is in: flush it, as a plain
                        // client that wrote before reading the bad frame would have, then
                        // Connected -> Disconnected.
                        if ready!(self.poll_flush_connection(cx)) {
                            if let State::Connected(live) = &mut self.state {
                                let cause = live.fault.take().unwrap_or_default();
                                self.lose_with(cause.into(), Health::Unhealthy);
                            }
                        }
                        continue;
                    }
                    if ready!(self.poll_write_backlog(cx)) {
                        return Poll::Ready(Ok(()));
                    }
                    // Lost while writing the backlog: Connected -> Disconnected; go again.
                }
            }
        }
    }

    /// Connecting -> Refused / Failed. Returns the error for the caller to report; the
    /// other half learns of a refusal from an error item (reader) or its next write.
    fn connect_failed(&mut self, error: Error) -> Error {
        let refusal = match &error {
            Error::TooManyReconnects {
                max_total,
                window,
                retry_at: Some(at),
            } => Some(Refusal {
                max_total: *max_total,
                window: *window,
                retry_at: *at,
            }),
            _ => None,
        };
        tracing::warn!(error = %error, unflushed = self.outbox.len(), "reconnection failed");
        match refusal {
            Some(refusal) => {
                // Connecting -> Refused
                self.state = State::Refused {
                    sleep: Box::pin(tokio::time::sleep_until(refusal.retry_at)),
                    reset_backoff: true,
                    refusal,
                };
                self.publish(ConnectionState::Refused {
                    retry_at: refusal.retry_at,
                });
                if self.current == Half::Write {
                    self.inbox.push_back(Err(refusal.error()));
                }
            }
            None => {
                // Connecting -> Failed
                self.state = State::Failed;
                self.publish(ConnectionState::GaveUp {
                    reason: error.to_string(),
                });
            }
        }
        self.wakers.wake_other(self.current);
        error
    }

    /// Writes the `on_connect` messages, then every outbox message not yet written to this
    /// connection. `Ready(false)`: the connection was lost on the way.
    fn poll_write_backlog(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let State::Connected(live) = &mut self.state else {
            return Poll::Ready(false);
        };
        let mut resent = 0usize;
        loop {
            let message = if let Some(m) = self.on_connect.get(live.preamble) {
                m
            } else if let Some(m) = self.outbox.next_unwritten() {
                m
            } else {
                break;
            };
            match live.conn.as_mut().poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => {
                    self.lose(e.into());
                    return Poll::Ready(false);
                }
            }
            if let Err(e) = live.conn.as_mut().start_send(message.clone()) {
                self.lose(e.into());
                return Poll::Ready(false);
            }
            if live.preamble < self.on_connect.len() {
                live.preamble += 1;
            } else {
                self.outbox.mark_written();
                resent += 1;
            }
            live.needs_flush = true;
        }
        if resent > 0 {
            self.stats.resent(resent);
            tracing::info!(resent, "resent undelivered messages");
        }
        Poll::Ready(true)
    }

    /// Connected -> Disconnected (or Delaying, with jitter): drops the connection; the
    /// outbox will be written again.
    fn lose(&mut self, cause: BoxError) {
        self.lose_with(cause, Health::AsObserved);
    }

    /// As [`lose`](Self::lose), with `health` deciding whether the next attempt may be
    /// immediate.
    ///
    /// A connection is healthy, and the backoff starts over with an immediate attempt, when
    /// it delivered a message or an acknowledgement, when messages written on it were
    /// flushed and it stayed up for [`PRODUCTIVE_UPTIME`], or when it stayed up for
    /// `healthy_after`. Otherwise the next attempt waits for the backoff's next delay, so
    /// a server that accepts and drops at once meets growing delays.
    fn lose_with(&mut self, cause: BoxError, health: Health) {
        let State::Connected(live) = &self.state else {
            return;
        };
        let uptime = live.since.elapsed();
        let healthy = match health {
            Health::Unhealthy => false,
            Health::AsObserved => {
                live.delivered
                    || uptime >= self.healthy_after
                    || (live.carried && uptime >= PRODUCTIVE_UPTIME)
            }
        };
        tracing::info!(%cause, ?uptime, healthy, unflushed = self.outbox.len(), "disconnected");
        self.outbox.rewind();
        self.stats.disconnected();
        self.state = if self.reconnect_jitter.is_zero() {
            // Connected -> Disconnected
            State::Disconnected {
                kind: DialKind::Reconnect,
                reset_backoff: healthy,
            }
        } else {
            let delay = jitter(self.reconnect_jitter, rand::rng().random::<f64>());
            tracing::debug!(?delay, "reconnect jitter");
            // Connected -> Delaying
            State::Delaying {
                sleep: Box::pin(tokio::time::sleep(delay)),
                reset_backoff: healthy,
            }
        };
        self.publish(ConnectionState::Reconnecting {
            attempt: self.reconnect_runs + 1,
            last_error: Some(cause.to_string()),
        });
        self.wakers.wake_other(self.current);
    }

    fn publish(&self, state: ConnectionState) {
        self.state_tx.send_replace(state);
    }

    /// The server sent a Close frame: answer it, then the close policy decides.
    fn peer_closed(&mut self, frame: Option<CloseFrame>, cx: &mut Context<'_>) {
        if let State::Connected(live) = &mut self.state {
            // RFC 6455: answer the peer's Close before dropping the connection. One
            // non-blocking try: tungstenite has queued the reply; if the socket is full
            // the connection is dropped anyway. Messages it flushes stay in the outbox
            // and are resent (possible duplicates, never losses).
            let _ = live.conn.as_mut().poll_close(cx);
        }
        let code = frame.as_ref().map(|f| u16::from(f.code));
        match self.close_policy.decide(code) {
            CloseAction::Reconnect => self.lose(close_cause(frame)),
            CloseAction::ReconnectAfterBackoff => {
                self.lose_with(close_cause(frame), Health::Unhealthy)
            }
            CloseAction::Stop => {
                let error = Error::ClosedByServer {
                    code: code.unwrap_or(1005),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                };
                tracing::warn!(%error, "server closed for good");
                self.lose(error.to_string().into());
                // Disconnected -> Failed: reported once, then the stream ends.
                self.state = State::Failed;
                self.publish(ConnectionState::GaveUp {
                    reason: error.to_string(),
                });
                self.pending_error = Some(error);
            }
        }
    }

    /// Keepalive: after `interval` with no frame received, a Ping is due; if no frame at
    /// all arrives within `timeout` of that, the connection is dead. The Ping is written
    /// as soon as the socket takes it, but the timeout runs from when it fell due, so a
    /// writer blocked behind a frozen path is freed within `interval + timeout` too.
    /// Returns whether the connection was lost.
    ///
    /// While the inbox is full (plain mode) the socket is deliberately left unread, so
    /// silence proves nothing: the clock is held and starts again when reading resumes.
    fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some((interval, timeout)) = self.keepalive else {
            return false;
        };
        let unread = self.acks.is_none() && self.inbox.len() >= self.inbox_capacity;
        if !matches!(self.state, State::Connected(_)) {
            return false;
        }
        if unread {
            if let State::Connected(live) = &mut self.state {
                live.last_rx = Instant::now();
                live.probe = None;
                live.ping_written = false;
            }
            return false;
        }
        loop {
            let State::Connected(live) = &mut self.state else {
                return true;
            };
            if live.probe.is_some() && !live.ping_written {
                match live.conn.as_mut().poll_ready(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Ok(())) => {
                        if let Err(e) = live
                            .conn
                            .as_mut()
                            .start_send(Message::Ping(Default::default()))
                        {
                            self.lose(e.into());
                            return true;
                        }
                        tracing::trace!("keepalive ping");
                        live.ping_written = true;
                        live.needs_flush = true;
                        if self.poll_flush_connection(cx) == Poll::Ready(false) {
                            return true;
                        }
                        continue;
                    }
                    Poll::Ready(Err(e)) => {
                        self.lose(e.into());
                        return true;
                    }
                }
            }
            let State::Connected(live) = &mut self.state else {
                return true;
            };
            let deadline = match live.probe {
                Some(due) => due + timeout,
                None => live.last_rx + interval,
            };
            let timer = live
                .keepalive_timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            // Frames push the deadline later without touching the timer: when it fires
            // early it is re-armed. A probe moves it earlier.
            if timer.deadline() > deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let now = Instant::now();
            if now < deadline {
                timer.as_mut().reset(deadline);
                continue;
            }
            if live.probe.is_some() {
                let waited = now.saturating_duration_since(live.last_rx);
                self.lose(
                    format!("no frame for {waited:?} (keepalive {interval:?} + {timeout:?})")
                        .into(),
                );
                return true;
            }
            live.probe = Some(now);
            live.ping_written = false;
        }
    }

    /// What one inbound message means: data for the reader, control, an acknowledgement
    /// (applied here, consumed), or the peer closing.
    fn inbound(&mut self, message: Message) -> Inbound {
        if let (Some(_), State::Connected(live)) = (self.keepalive, &mut self.state) {
            live.last_rx = Instant::now();
            live.probe = None;
            live.ping_written = false;
        }
        let inbound = classify(message);
        let Inbound::Data(message) = inbound else {
            return inbound;
        };
        let Some(acked) = self.acks.as_mut().and_then(|a| a.acks.acked(&message)) else {
            self.stats.received(message.len());
            return Inbound::Data(message);
        };
        let removed = self.outbox.acknowledge(acked);
        if removed > 0 {
            if let State::Connected(live) = &mut self.state {
                live.delivered = true;
                // Progress: the ack timer starts over.
                live.ack_armed = false;
            }
            // A writer may be waiting for room in the window or for this flush.
            self.wakers.wake_other(self.current);
        }
        tracing::trace!(acked, removed, "acknowledgement");
        Inbound::Control
    }

    /// Processes frames that have already arrived, without waiting, so that a Close or EOF
    /// is noticed before the next write. Data goes to the inbox up to its bound; after
    /// that the socket is left unread (TCP backpressure) — except in acknowledged mode,
    /// where acknowledgements must be read whatever is queued.
    fn poll_inbound(&mut self, cx: &mut Context<'_>) -> Look {
        while self.inbox.len() < self.inbox_capacity || self.acks.is_some() {
            let State::Connected(live) = &mut self.state else {
                return Look::Lost;
            };
            if live.fault.is_some() {
                // Past a protocol violation the framing means nothing: read no further.
                return Look::Open;
            }
            match live.conn.as_mut().poll_next(cx) {
                Poll::Pending => return Look::Open,
                Poll::Ready(Some(Ok(message))) => match self.inbound(message) {
                    Inbound::Data(m) => {
                        if let State::Connected(live) = &mut self.state {
                            live.delivered = true;
                        }
                        self.queue_inbound(m);
                    }
                    Inbound::Control => {}
                    Inbound::Closed(frame) => {
                        self.peer_closed(frame, cx);
                        return Look::Lost;
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    let error = Error::from_boxed(e.into());
                    if is_peer_fault(&error) {
                        let cause = error.to_string();
                        tracing::info!(%error, "the peer broke the protocol; the reader is told");
                        self.inbox.push_back(Err(error));
                        self.wakers.wake_read();
                        return Look::Faulted(cause);
                    }
                    self.lose(error.to_string().into());
                    return Look::Lost;
                }
                Poll::Ready(None) => {
                    self.lose("end of stream".into());
                    return Look::Lost;
                }
            }
        }
        Look::Open
    }

    /// Queues a data message for the reader. Past the inbox bound (reachable only while
    /// acknowledgements must be read regardless) it is dropped, counted, logged at `warn`,
    /// and the reader meets an [`Error::InboundDropped`] item at the place of the gap.
    fn queue_inbound(&mut self, message: Message) {
        if self.inbox.len() < self.inbox_capacity {
            self.inbox.push_back(Ok(message));
            self.wakers.wake_read();
            return;
        }
        self.dropped_inbound += 1;
        match self.inbox.back_mut() {
            Some(Err(Error::InboundDropped { count })) => *count += 1,
            _ => self.inbox.push_back(Err(Error::InboundDropped { count: 1 })),
        }
        tracing::warn!(
            len = message.len(),
            dropped = self.dropped_inbound,
            "inbound message dropped: the inbox is full and nobody reads the stream"
        );
    }

    /// Acknowledged mode: replaces the connection when tracked messages have waited
    /// `ack_timeout` without acknowledgement progress. Returns whether it did.
    fn poll_ack_timeout(&mut self, cx: &mut Context<'_>) -> bool {
        let (Some(acks), State::Connected(live)) = (&self.acks, &mut self.state) else {
            return false;
        };
        if self.outbox.tracked() == 0 {
            live.ack_armed = false;
            return false;
        }
        let deadline = Instant::now() + acks.timeout;
        let sleep = live
            .ack_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !live.ack_armed {
            sleep.as_mut().reset(deadline);
            live.ack_armed = true;
        }
        if sleep.as_mut().poll(cx).is_pending() {
            return false;
        }
        let timeout = acks.timeout;
        self.lose(format!("no acknowledgement within {timeout:?}").into());
        true
    }

    /// Flushes the current connection. `Ready(true)`: flushed; `Ready(false)`: not
    /// connected or lost.
    fn poll_flush_connection(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        let State::Connected(live) = &mut self.state else {
            return Poll::Ready(false);
        };
        match ready!(live.conn.as_mut().poll_flush(cx)) {
            Ok(()) => {
                live.needs_flush = false;
                live.carried |= live.wrote_fresh;
                self.outbox.flushed();
                self.publish_sent();
                Poll::Ready(true)
            }
            Err(e) => {
                self.lose(e.into());
                Poll::Ready(false)
            }
        }
    }

    fn window_full(&self) -> bool {
        self.acks
            .as_ref()
            .is_some_and(|a| self.outbox.tracked() >= a.window)
    }

    /// Whether the writer should look at inbound frames (and timers) before this write:
    /// at the start of every batch (nothing owed, as when each message is flushed) and
    /// every `CHECK_EVERY` messages or `CHECK_EVERY_BYTES` within one. Looking costs a
    /// read attempt in tungstenite, far more than a write; looking every time made small
    /// messages 20 times slower.
    fn due_for_check(&self) -> bool {
        const CHECK_EVERY: u32 = 256;
        const CHECK_EVERY_BYTES: usize = 256 * 1024;
        self.outbox.is_empty()
            || self.unchecked.0 >= CHECK_EVERY
            || self.unchecked.1 >= CHECK_EVERY_BYTES
    }

    /// Publishes the messages and bytes accepted since the last call to the shared
    /// counters (kept locally in between: no atomic operation per message).
    fn publish_sent(&mut self) {
        if self.unsent_stats.0 > 0 {
            self.stats.sent(self.unsent_stats.0, self.unsent_stats.1);
            self.unsent_stats = (0, 0);
        }
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // The steady state, once per message: connected, nothing to resend, no check or
        // flush due. Straight to the connection.
        let steady = self.outbox.all_written()
            && !self.outbox.needs_flush()
            && !self.due_for_check()
            && !self.window_full();
        if let State::Connected(live) = &mut self.state {
            if steady && live.preamble == self.on_connect.len() && live.fault.is_none() {
                if let Poll::Ready(Ok(())) = live.conn.as_mut().poll_ready(cx) {
                    return Poll::Ready(Ok(()));
                }
            }
        }
        loop {
            ready!(self.poll_connected(cx))?;
            if self.due_for_check() {
                self.unchecked = (0, 0);
                self.publish_sent();
                match self.poll_inbound(cx) {
                    Look::Open => {}
                    Look::Lost => continue,
                    Look::Faulted(cause) => {
                        // A plain WebSocket client would have written this message before
                        // reading the bad frame: it still goes to this connection, which
                        // is dropped at the next flush. The reader meets the error after
                        // the data that came before it.
                        let State::Connected(live) = &mut self.state else {
                            continue;
                        };
                        if let Poll::Ready(Ok(())) = live.conn.as_mut().poll_ready(cx) {
                            live.fault = Some(cause);
                            return Poll::Ready(Ok(()));
                        }
                        self.lose_with(cause.into(), Health::Unhealthy);
                        continue;
                    }
                }
                if self.poll_ack_timeout(cx) || self.poll_keepalive(cx) {
                    continue;
                }
            }
            if self.outbox.needs_flush() || self.window_full() {
                if !ready!(self.poll_flush_connection(cx)) {
                    continue;
                }
                if self.window_full() {
                    // Wait for acknowledgements: reading registers for them; the ack
                    // timer and the keepalive run when this parks (see `drive`).
                    match self.poll_inbound(cx) {
                        Look::Open if self.window_full() => return Poll::Pending,
                        Look::Open | Look::Lost => {}
                        Look::Faulted(cause) => self.lose_with(cause.into(), Health::Unhealthy),
                    }
                }
                continue;
            }
            let State::Connected(live) = &mut self.state else {
                continue;
            };
            match ready!(live.conn.as_mut().poll_ready(cx)) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(e) => self.lose(e.into()),
            }
        }
    }

    fn start_send(&mut self, message: Message) -> Result<(), Error> {
        if matches!(message, Message::Close(_) | Message::Frame(_)) {
            return Err(Error::UnsupportedMessage);
        }
        if matches!(self.state, State::Idle | State::Closing { .. }) {
            return Err(Error::NotDialed);
        }
        if self.outbox.needs_flush() || self.window_full() {
            // poll_ready flushes (or waits for acknowledgements) before this point; a caller
            // that skipped it is refused rather than let the outbox grow without bound.
            return Err(Error::NotReady);
        }
        if self.close_deadline.is_some() {
            // A write after a close() that was dropped unfinished: the sink goes on.
            self.close_deadline = None;
        }
        let connected = matches!(self.state, State::Connected(_)) && self.outbox.all_written();
        let id = self.acks.as_mut().and_then(|a| a.acks.id(&message));
        self.unchecked.0 += 1;
        self.unchecked.1 += message.len();
        self.unsent_stats.0 += 1;
        self.unsent_stats.1 += message.len() as u64;
        match &mut self.state {
            State::Connected(live) if connected => {
                self.outbox.push(message.clone(), id);
                match live.conn.as_mut().start_send(message) {
                    Ok(()) => {
                        live.wrote_fresh = true;
                        self.outbox.mark_written();
                    }
                    // Kept in the outbox; resent on the next connection.
                    Err(e) => self.lose(e.into()),
                }
            }
            // Not connected (or the backlog is still being written): keep it for later.
            _ => self.outbox.push(message, id),
        }
        Ok(())
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            // A dial() in progress must complete; a reconnection the reader started need
            // not hold up a flush that owes nothing.
            let dialing = matches!(
                self.state,
                State::Connected(_)
                    | State::Connecting {
                        kind: DialKind::First,
                        ..
                    }
                    | State::Disconnected {
                        kind: DialKind::First,
                        ..
                    }
            );
            if self.outbox.is_empty() && !dialing {
                // Nothing owed and no dial in progress: no reason to wait or reconnect.
                return Poll::Ready(Ok(()));
            }
            ready!(self.poll_connected(cx))?;
            if !ready!(self.poll_flush_connection(cx)) {
                continue;
            }
            if self.outbox.tracked() == 0 {
                return Poll::Ready(Ok(()));
            }
            // Acknowledged mode: flushed means acknowledged. Reading registers for the
            // acknowledgements; the ack timer and the keepalive run when this parks.
            match self.poll_inbound(cx) {
                Look::Open if self.outbox.tracked() == 0 => return Poll::Ready(Ok(())),
                Look::Open => return Poll::Pending,
                Look::Lost => {}
                Look::Faulted(cause) => self.lose_with(cause.into(), Health::Unhealthy),
            }
        }
    }

    /// `close()`: deliver what is owed, send a Close frame and wait for the peer's, all
    /// by one deadline `close_timeout` after the first call. With nothing owed and no
    /// connection up it closes at once; any attempt in flight is dropped.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if matches!(self.state, State::Idle) {
            // Closed already; messages a failed close left behind are still owed.
            self.close_deadline = None;
            return Poll::Ready(match self.outbox.len() {
                0 => Ok(()),
                undelivered => Err(Error::CloseIncomplete {
                    undelivered,
                    source: Box::new(Error::NotDialed),
                }),
            });
        }
        let timeout = self.close_timeout;
        let expired = self
            .close_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)))
            .as_mut()
            .poll(cx)
            .is_ready();
        loop {
            match &mut self.state {
                State::Idle => return Poll::Ready(self.closed(None)),
                State::Closing { conn, sent } => {
                    if expired {
                        tracing::debug!("the peer did not finish the closing handshake in time");
                    } else if !*sent {
                        match ready!(conn.as_mut().poll_close(cx)) {
                            Ok(()) => {
                                *sent = true;
                                continue;
                            }
                            Err(e) => {
                                let e: BoxError = e.into();
                                tracing::debug!(error = %e, "error while sending Close; connection dropped");
                            }
                        }
                    } else {
                        // Wait for the peer's Close (or EOF) before dropping the socket:
                        // dropping it with the peer's frame unread makes the kernel send a
                        // RST, which discards data still queued in our send buffer.
                        if let Some(Ok(message)) = ready!(conn.as_mut().poll_next(cx)) {
                            if let Inbound::Data(m) = self.inbound(message) {
                                self.queue_inbound(m);
                            }
                            continue;
                        }
                    }
                    self.stats.disconnected();
                    return Poll::Ready(self.closed(None));
                }
                _ => {
                    if self.outbox.is_empty() && !matches!(self.state, State::Connected(_)) {
                        return Poll::Ready(self.closed(None));
                    }
                    if expired {
                        return Poll::Ready(self.closed(Some(Error::Timeout)));
                    }
                    if let Err(e) = ready!(self.poll_flush(cx)) {
                        return Poll::Ready(self.closed(Some(e)));
                    }
                    match std::mem::replace(&mut self.state, State::Idle) {
                        State::Connected(live) => {
                            // Connected -> Closing
                            self.state = State::Closing {
                                conn: live.conn,
                                sent: false,
                            };
                            self.publish(ConnectionState::Closing);
                        }
                        // A flush that owed nothing while reconnecting: -> Idle
                        other => {
                            self.state = other;
                            return Poll::Ready(self.closed(None));
                        }
                    }
                }
            }
        }
    }

    /// any -> Idle at the end of `close()`. `failure`: why what is still owed could not be
    /// delivered.
    fn closed(&mut self, failure: Option<Error>) -> Result<(), Error> {
        self.state = State::Idle;
        self.close_deadline = None;
        self.publish(ConnectionState::Closed);
        self.wakers.wake_other(self.current);
        let undelivered = self.outbox.len();
        if undelivered == 0 {
            tracing::info!("closed by the user");
            return Ok(());
        }
        let source = Box::new(failure.unwrap_or(Error::Timeout));
        tracing::warn!(undelivered, error = %source, "closed by the user with messages undelivered");
        Err(Error::CloseIncomplete {
            undelivered,
            source,
        })
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        loop {
            if let Some(item) = self.inbox.pop_front() {
                return Poll::Ready(Some(item));
            }
            if let Some(e) = self.pending_error.take() {
                return Poll::Ready(Some(Err(e)));
            }
            if matches!(
                self.state,
                State::Idle | State::Closing { .. } | State::Failed
            ) {
                return Poll::Ready(None);
            }
            if let Err(e) = ready!(self.poll_connected(cx)) {
                return Poll::Ready(Some(Err(e)));
            }
            // What a reconnection wrote (on_connect, resend) must leave even if the user
            // only reads; a Pending flush continues on the next poll.
            if matches!(&self.state, State::Connected(live) if live.needs_flush)
                && self.poll_flush_connection(cx) == Poll::Ready(false)
            {
                continue;
            }
            let State::Connected(live) = &mut self.state else {
                continue;
            };
            match ready!(live.conn.as_mut().poll_next(cx)) {
                Some(Ok(message)) => match self.inbound(message) {
                    Inbound::Data(m) => {
                        if let State::Connected(live) = &mut self.state {
                            live.delivered = true;
                        }
                        return Poll::Ready(Some(Ok(m)));
                    }
                    Inbound::Control => {}
                    Inbound::Closed(frame) => self.peer_closed(frame, cx),
                },
                Some(Err(e)) => {
                    let error = Error::from_boxed(e.into());
                    if is_peer_fault(&error) {
                        // A frame too large, invalid UTF-8, a protocol violation: the
                        // connection is replaced, and the reader is told once.
                        self.lose_with(error.to_string().into(), Health::Unhealthy);
                        return Poll::Ready(Some(Err(error)));
                    }
                    // A reset, an EOF without a Close frame, an I/O error: a drop like
                    // any other, reported by `state()` and the logs, not to the reader.
                    self.lose(error.to_string().into());
                }
                None => self.lose("end of stream".into()),
            }
        }
    }
}

/// Whether the next attempt after a lost connection may be immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// As the connection showed itself (see [`Core::lose_with`]).
    AsObserved,
    /// Wait for the backoff whatever the connection did: the peer broke the protocol or
    /// asked us to come back later (Close 1012, 1013).
    Unhealthy,
}

/// Whether a read error is the peer's fault worth reporting to the reader (rather than a
/// drop the sink simply recovers from).
fn is_peer_fault(error: &Error) -> bool {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    use tokio_tungstenite::tungstenite::Error as Ws;
    match error {
        Error::Transport(Ws::Capacity(_) | Ws::Utf8(_) | Ws::AttackAttempt) => true,
        // The peer vanished (a crash, a reset): not a violation, a drop.
        Error::Transport(Ws::Protocol(
            ProtocolError::ResetWithoutClosingHandshake | ProtocolError::HandshakeIncomplete,
        )) => false,
        Error::Transport(Ws::Protocol(_)) => true,
        _ => false,
    }
}

fn close_cause(frame: Option<CloseFrame>) -> BoxError {
    match frame {
        Some(f) => format!(
            "server sent Close {} {:?}",
            u16::from(f.code),
            f.reason.as_str()
        )
        .into(),
        None => "server sent Close without a code".into(),
    }
}

impl<M> Sink<Message> for ReconnectingSink<M>
where
    M: MakeConnection + Unpin,
    M::Error: Into<BoxError>,
    M::SinkError: Into<BoxError>,
    M::StreamError: Into<BoxError>,
{
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_ready_inner(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.get_mut().start_send_inner(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_flush_inner(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().poll_close_inner(cx)
    }
}

impl<M> Stream for ReconnectingSink<M>
where
    M: MakeConnection + Unpin,
    M::Error: Into<BoxError>,
    M::SinkError: Into<BoxError>,
    M::StreamError: Into<BoxError>,
{
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_inner(cx)
    }
}

impl<M: MakeConnection> fmt::Debug for ReconnectingSink<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.core.state {
            State::Idle => "Idle",
            State::Disconnected { .. } => "Disconnected",
            State::Delaying { .. } => "Delaying",
            State::Connecting { .. } => "Connecting",
            State::Connected(_) => "Connected",
            State::Refused { .. } => "Refused",
            State::Failed => "Failed",
            State::Closing { .. } => "Closing",
        };
        f.debug_struct("ReconnectingSink")
            .field("target", &self.core.target)
            .field("state", &state)
            .field("unflushed", &self.core.outbox.len())
            .field("inbox", &self.core.inbox.len())
            .finish_non_exhaustive()
    }
}

/// The reconnect jitter for a uniform draw `unit` in `[0, 1)`.
fn jitter(max: Duration, unit: f64) -> Duration {
    max.mul_f64(unit.clamp(0.0, 1.0))
}
