//! [`ReconnectingSink`]: one `Sink` + `Stream` of messages that survives disconnects.
//!
//! The files of this module follow ownership: `driver.rs` holds the state and every
//! transition (the one place a live connection is left); `link.rs` the live link, one
//! connection with its hello messages, keepalive (`keepalive.rs`) and acknowledgement
//! timer (`acks.rs`), whose operations report how the connection ended (`end.rs`)
//! instead of changing the state; `books.rs` what outlives connections: the messages
//! still owed (`outbox.rs`, `kept.rs`), the reader's inbox (`inbound.rs`), the
//! counters (`stats.rs`); `write.rs`, `read.rs` and `close.rs` the operations of the two
//! halves and of `close()`, which hand every end to the driver; `hello.rs` the messages
//! sent first on each connection.
//!

mod acks;
mod assemble;
mod books;
mod builder;
mod close;
mod confirm;
mod driver;
mod end;
mod framing;
mod hello;
mod inbound;
mod keepalive;
mod kept;
mod lifecycle;
mod link;
mod outbox;
mod outcome;
mod read;
mod state;
mod stats;
mod waker;
mod write;

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::sync::watch;

pub(crate) use self::acks::Acks;
use self::builder::Settings;
pub use self::builder::{Builder, DefaultConnector};
pub use self::confirm::ConfirmBy;
use self::driver::{Core, State};
pub(crate) use self::framing::{Framing, Tracked};
pub use self::hello::ConnectInfo;
pub use self::keepalive::Keepalive;
use self::outbox::Tag;
pub(crate) use self::outbox::{Owed, Unacked};
pub(crate) use self::outcome::Promise;
pub use self::outcome::{Delivery, Outgoing, Undelivered, UndeliveredReason};
pub use self::state::{CloseAction, ClosePolicy, ConnectionState};
pub use self::stats::{Stats, StatsHandle};
use self::waker::Fanout;
pub(crate) use self::waker::Half;
use self::write::Settled;
use crate::connect::MakeConnection;
use crate::error::Error;
use crate::limit::ReconnectBudget;
use crate::request::Target;
use crate::Message;

/// A WebSocket connection that stays up: a `Sink<Message>` and a
/// `Stream<Item = Result<Message, Error>>` that reconnect through the connection layers
/// and resend what was not confirmed.
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
///
/// # States
/// What the sink does in each state, and what moves it on:
///
/// ```text
/// state          | meaning                                   | writes              | reads
/// ---------------+-------------------------------------------+---------------------+----------
/// Idle           | never dialed, or closed by the user       | Err(NotDialed)      | None
/// Disconnected   | a connection attempt is due               | attempt             | attempt
/// Delaying       | waiting the random reconnect_jitter       | Pending             | Pending
/// Connecting     | an attempt (through the layers) in flight | Pending             | Pending
/// Connected      | up; on_connect + resend written first     | write               | read
/// Refused        | the limiter refused; no attempt until a   | Err(TooManyRe-      | Pending
///                | slot frees                                |   connects) each    |  (told once)
/// Failed         | reconnection failed for good; only dial() | Err(the failure)    | the failure
///                | leaves it                                 |   each time         |  once, then None
/// Closing        | close(): Close frame sent, peer's awaited | Err(NotDialed)      | None
///
/// Idle         -> Disconnected   dial()
/// Disconnected -> Connecting     the factory is ready; attempt started
/// Connecting   -> Connected      attempt succeeded: write on_connect, then resend the outbox
/// Connecting   -> Refused        Err(TooManyReconnects) with a retry time
/// Connecting   -> Failed         any other error
/// Connected    -> Failed         a Close whose code the close policy says not to come back on
/// Connected    -> Disconnected   write/flush error, read error, EOF, Close frame, keepalive
///                                or ack timeout, a protocol violation
/// Connected    -> Delaying       the same, with reconnect_jitter set
/// Delaying     -> Disconnected   the jitter is over
/// Refused      -> Disconnected   the window frees
/// Failed       -> Disconnected   dial() (nothing else dials: a write is told the failure)
/// Connected    -> Closing        close(), after the outbox is flushed
/// any          -> Idle           close() done, or close_timeout reached (CloseIncomplete)
/// Closing      -> Disconnected   dial() after an unfinished close
/// ```
///
/// # Delivery
/// A message accepted by `start_send` (that is, `send` got past `poll_ready`) stays in
/// the outbox until it is confirmed: by default, until the peer answers a Ping sent after
/// it (see [`ConfirmBy`]). If the connection ends first, it is written again to the next
/// connection, after the `on_connect` messages, in order. A message may therefore arrive
/// twice (the peer read it but the confirmation did not come back before the end).
/// Before each batch of writes, frames that have already arrived are processed without
/// waiting, so a Close or EOF the server already sent moves new messages to the next
/// connection.
///
/// # Liveness
/// Whenever either half parks on a live connection, the frames that arrived are read,
/// and the acknowledgement timer and the keepalive run: a writer blocked on a full socket
/// is freed by the keepalive as surely as a reader waiting in `next()`.
pub struct ReconnectingSink<M: MakeConnection = DefaultConnector> {
    waker: Waker,
    core: Core<M>,
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

impl<M: MakeConnection> ReconnectingSink<M> {
    /// An undialed sink over any connection stack: a [`MakeConnection`] (for example a
    /// `tower::ServiceBuilder` stack) and the target it dials. Call
    /// [`dial`](Self::dial) to connect.
    ///
    /// Uses the default buffer sizes, no `on_connect` messages, and no limiter handle for
    /// [`can_connect`](Self::can_connect) (add a [`ReconnectLimitLayer`](crate::ReconnectLimitLayer)
    /// to the stack and [`with_budget`](Self::with_budget) to report it).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::{BackoffRetryLayer, ExponentialBackoff, ReconnectingSink, Target, TungsteniteConnector};
    ///
    /// let stack = tower::ServiceBuilder::new()
    ///     .layer(BackoffRetryLayer::new(ExponentialBackoff::default()))
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
        limiter: Option<ReconnectBudget>,
    ) -> Self {
        let (wakers, waker) = Fanout::new();
        ReconnectingSink {
            waker,
            core: Core::new(make, target, settings, limiter, wakers),
        }
    }

    /// Reports `budget` from [`can_connect`](Self::can_connect). Rarely needed: the sink
    /// finds the budget of a [`ReconnectLimitLayer`](crate::ReconnectLimitLayer) in its
    /// stack by itself once the stack has handled an attempt, and a sink from
    /// [`Builder`] knows its own from the start.
    pub fn with_budget(mut self, budget: ReconnectBudget) -> Self {
        self.core.config.limiter = Some(budget);
        self
    }

    /// Connects: a first dial, not counted by the limiter. Returns once the connection is
    /// up and the `on_connect` messages (and anything left unflushed from before) are
    /// flushed. Dialing a connected sink only flushes; dialing a sink that is reconnecting
    /// waits for that reconnection; dialing a sink whose `close()` was dropped before it
    /// finished abandons that close and connects anew.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), ws_reconnect::Error> {
    /// let mut ws = ws_reconnect::ReconnectingSink::builder().build("ws://127.0.0.1:9000/")?;
    /// ws.dial().await?; // the sink is usable once this returns
    /// assert!(ws.is_connected());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`ReconnectingSink::connect`].
    ///
    /// # Cancellation safety
    /// Dropping the future leaves the attempt in the sink; the next operation continues it.
    pub async fn dial(&mut self) -> Result<(), Error> {
        self.core.dial();
        poll_fn(|cx| self.poll_with(Half::Write, cx, Core::poll_dial)).await
    }

    /// Whether a connection is up now (`state()` says `Connected`).
    pub fn is_connected(&self) -> bool {
        self.core.is_connected()
    }

    /// Whether a reconnection would be allowed now: the sink is not closing and the
    /// reconnection budget (if known) has room. Asking takes nothing from the budget.
    ///
    /// ```
    /// let ws = ws_reconnect::ReconnectingSink::builder()
    ///     .max_reconnections_total(0) // never reconnect: only the first dial
    ///     .build("ws://127.0.0.1:9000/")?;
    /// assert!(!ws.can_connect());
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn can_connect(&self) -> bool {
        let budget = self
            .core
            .config
            .limiter
            .as_ref()
            .or_else(|| self.core.target.budget());
        !self.core.is_closing() && budget.is_none_or(ReconnectBudget::can_connect)
    }

    /// How many accepted messages the sink still owes the peer: not yet flushed, flushed
    /// but not yet confirmed (see [`ConfirmBy`]), or (in acknowledged mode) tracked and
    /// not yet acknowledged.
    /// [`take_undelivered`](Self::take_undelivered) takes them out.
    ///
    /// ```no_run
    /// # async fn run(mut ws: ws_reconnect::ReconnectingSink) {
    /// use futures::SinkExt;
    /// if let Err(e) = ws.close().await {
    ///     eprintln!("{e}: {} messages not delivered", ws.undelivered_count());
    /// }
    /// # }
    /// ```
    pub fn undelivered_count(&self) -> usize {
        self.core.books.outbox.len()
    }

    /// The connection state, as a `watch` channel: `borrow()` for the current value,
    /// `changed().await` to follow the transitions.
    ///
    /// ```no_run
    /// use ws_reconnect::ConnectionState;
    /// # async fn run(ws: ws_reconnect::ReconnectingSink) {
    /// let mut state = ws.state();
    /// tokio::spawn(async move {
    ///     while state.changed().await.is_ok() {
    ///         if let ConnectionState::Reconnecting { last_error, .. } = &*state.borrow() {
    ///             eprintln!("reconnecting: {last_error:?}");
    ///         }
    ///     }
    /// });
    /// # }
    /// ```
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.core.signals.subscribe()
    }

    /// The counters now: connections, messages and bytes each way, resends, uptime.
    ///
    /// ```no_run
    /// # fn run(ws: &ws_reconnect::ReconnectingSink) {
    /// let stats = ws.stats();
    /// println!("{} reconnections, {} resent", stats.reconnects, stats.messages_resent);
    /// # }
    /// ```
    pub fn stats(&self) -> Stats {
        self.core.books.stats()
    }

    /// A handle on the counters that outlives `split` and `forward`.
    ///
    /// ```no_run
    /// # async fn run(ws: ws_reconnect::ReconnectingSink) {
    /// use futures::StreamExt;
    /// let stats = ws.stats_handle();
    /// let (sink, stream) = ws.split();
    /// // ... the halves move into their tasks; the counters stay in reach:
    /// println!("{} connections", stats.get().connects);
    /// # drop((sink, stream));
    /// # }
    /// ```
    pub fn stats_handle(&self) -> StatsHandle {
        self.core.books.stats.clone()
    }

    /// How many tracked messages wait for an acknowledgement (0 unless acknowledged mode
    /// is on): what `poll_ready` weighs against the window.
    pub fn unacknowledged_count(&self) -> usize {
        self.core.books.outbox.tracked()
    }

    /// Takes every message the sink still owes out of it, oldest first: after a failure
    /// you do not want to retry, this is how nothing is lost silently. They will not be
    /// resent.
    ///
    /// ```no_run
    /// # async fn run(mut ws: ws_reconnect::ReconnectingSink) {
    /// use futures::SinkExt;
    /// if ws.close().await.is_err() {
    ///     for message in ws.take_undelivered() {
    ///         // store it, retry it elsewhere, or report it
    ///         # drop(message);
    ///     }
    /// }
    /// # }
    /// ```
    pub fn take_undelivered(&mut self) -> Vec<Message> {
        self.core.books.outbox.take_all()
    }

    /// How many inbound data messages were dropped because the inbox was full while
    /// acknowledgements behind them had to be read. Always 0 outside acknowledged mode;
    /// the reader also meets an [`Error::InboundDropped`] item at each gap.
    pub fn dropped_inbound(&self) -> u64 {
        self.core.books.inbox.dropped()
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
    ///   [`Error::GaveUp`], [`Error::ClosedByServer`]) or the sink is not dialed
    ///   ([`Error::NotDialed`]). Unflushed messages stay in the sink. A failure other than
    ///   the limiter's is for good: every call returns it again and nothing dials until
    ///   [`dial`](Self::dial).
    /// - `Pending`: reconnecting or flushing; the task is woken when that progresses.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_with(Half::Write, cx, Core::poll_ready)
    }

    /// Accepts a message: keeps it in the outbox and writes it to the connection.
    ///
    /// # Errors
    /// [`Error::NotDialed`] before `dial` or after `close`; [`Error::UnsupportedMessage`]
    /// for `Close` and `Frame` messages. A failing write is not an error here: the message
    /// is kept and resent on the next connection.
    pub fn start_send(&mut self, message: Message) -> Result<(), Error> {
        self.core.start_send(message)
    }

    /// Accepts a message as [`start_send`](Self::start_send) does, with its options
    /// ([`Outgoing::volatile`]), and returns its [`Delivery`]: resolved `Ok` once the
    /// message is flushed (acknowledged, in acknowledged mode), or failed with the message
    /// handed back. See [`Delivery`] for when each happens. The sink must be
    /// driven (flushed, written to or read from) for the outcome to resolve.
    ///
    /// ```no_run
    /// # async fn run(mut ws: ws_reconnect::ReconnectingSink) -> Result<(), ws_reconnect::Error> {
    /// use futures::SinkExt;
    /// use ws_reconnect::{Message, Outgoing};
    ///
    /// futures::future::poll_fn(|cx| ws.poll_ready(cx)).await?;
    /// let delivery = ws.start_send_outgoing(Outgoing::new(Message::text("cursor 3,4")).volatile())?;
    /// ws.flush().await?;
    /// delivery.await.ok(); // flushed, or dropped with its connection
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`start_send`](Self::start_send); the message was not taken.
    pub fn start_send_outgoing(&mut self, item: impl Into<Outgoing>) -> Result<Delivery, Error> {
        let (message, volatile) = item.into().into_parts();
        self.core.can_accept(&message)?;
        let (promise, delivery) = Delivery::new();
        self.core.accept(
            message,
            Some(Tag {
                volatile,
                promise: Some(promise),
                control: false,
            }),
        );
        Ok(delivery)
    }

    /// Waits until the sink can take a message, then
    /// [`start_send_outgoing`](Self::start_send_outgoing): the outcome-returning
    /// `SinkExt::feed`. It does not flush.
    ///
    /// ```no_run
    /// # async fn run(mut ws: ws_reconnect::ReconnectingSink) -> Result<(), ws_reconnect::Error> {
    /// use futures::SinkExt;
    /// use ws_reconnect::Message;
    /// let first = ws.feed_outgoing(Message::text("a")).await?;
    /// let second = ws.feed_outgoing(Message::text("b")).await?;
    /// ws.flush().await?;
    /// assert!(first.await.is_ok() && second.await.is_ok());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`poll_ready`](Self::poll_ready) and [`start_send`](Self::start_send).
    ///
    /// # Cancellation safety
    /// Dropped before it returns, the message was not taken.
    pub async fn feed_outgoing(&mut self, item: impl Into<Outgoing>) -> Result<Delivery, Error> {
        let item = item.into();
        poll_fn(|cx| self.poll_ready(cx)).await?;
        self.start_send_outgoing(item)
    }

    /// `start_send_outgoing` for an outcome created elsewhere (a handle's): a refusal
    /// settles it at once.
    pub(crate) fn start_send_promised(
        &mut self,
        item: Outgoing,
        promise: Promise,
    ) -> Result<(), Error> {
        let (message, volatile) = item.into_parts();
        if let Err(error) = self.core.can_accept(&message) {
            let reason = UndeliveredReason::Refused(error.clone());
            self.settle_refused(promise, Undelivered::new(reason, message));
            return Err(error);
        }
        self.core.accept(
            message,
            Some(Tag {
                volatile,
                promise: Some(promise),
                control: false,
            }),
        );
        Ok(())
    }

    /// Fails an outcome whose message the sink never took, after every earlier outcome.
    pub(crate) fn settle_refused(&mut self, promise: Promise, undelivered: Undelivered) {
        self.core.books.outbox.settle_now(promise, undelivered);
    }

    /// `start_send` with the options of `item` and no outcome; a refusal hands the
    /// message back.
    pub(crate) fn start_send_outgoing_untracked(
        &mut self,
        item: Outgoing,
    ) -> Result<(), (Error, Message)> {
        let (message, volatile) = item.into_parts();
        if let Err(error) = self.core.can_accept(&message) {
            return Err((error, message));
        }
        let tag = volatile.then_some(Tag {
            volatile,
            promise: None,
            control: false,
        });
        self.core.accept(message, tag);
        Ok(())
    }

    /// The bound on `close()`.
    pub(crate) fn close_timeout(&self) -> std::time::Duration {
        self.core.config.timing.close_timeout
    }

    /// Makes the next `close()` end by `deadline` at the latest, when it has no deadline
    /// yet: for a layer that does work of its own before closing, within the same bound.
    pub(crate) fn close_by(&mut self, deadline: tokio::time::Instant) {
        self.core
            .record
            .close_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    }

    /// A first dial if the sink was never dialed, closed, or failed for good; otherwise
    /// nothing.
    pub(crate) fn dial_if_idle(&mut self) {
        self.core.dial();
    }

    /// Fails the outcomes the sink holds with `reason`, handing their messages back;
    /// returns how many.
    pub(crate) fn give_up(&mut self, reason: impl Fn() -> UndeliveredReason) -> usize {
        self.core.books.outbox.give_up(reason)
    }

    /// For a protocol layered on acknowledged mode that numbers its own messages (resume
    /// mode): whether [`take_identified`](Self::take_identified) may be called now.
    ///
    /// # Errors
    /// As [`start_send`](Self::start_send) for a Text or Binary message.
    pub(crate) fn ready_to_take(&self) -> Result<(), Error> {
        self.core.can_take()
    }

    /// Takes a Text or Binary message that [`ready_to_take`](Self::ready_to_take) allowed,
    /// tracked under `id` and written as the builder's [`Framing`] frames it, each time
    /// it is written (`prompt` goes to the framing with it); with the outcome `promise`
    /// settles, if any.
    pub(crate) fn take_framed(
        &mut self,
        message: Message,
        id: u64,
        prompt: bool,
        promise: Option<Promise>,
    ) {
        let tag = promise.map(|promise| Tag {
            volatile: false,
            promise: Some(promise),
            control: false,
        });
        self.core.accept_framed(message, id, prompt, tag);
    }

    /// Takes every message still owed out of the sink, as
    /// [`take_undelivered`](Self::take_undelivered) does, saying which were tracked.
    pub(crate) fn take_owed(&mut self) -> Vec<Owed> {
        self.core.books.outbox.take_owed()
    }

    /// Acknowledged mode ends, with no connection live (the protocol layered on it ended:
    /// resume mode fell back to plain mode). Its control messages are dropped, what it
    /// tracked is kept as untracked messages are (written again on the next connection,
    /// as they are), and the sink is a plain one from then on: no acknowledgement is
    /// waited for, and a reader that falls behind is met with backpressure.
    pub(crate) fn leave_acknowledged_mode(&mut self) {
        let dropped = self.core.books.outbox.untrack();
        self.core.books.acks = None;
        tracing::debug!(
            dropped,
            kept = self.core.books.outbox.len(),
            "acknowledged mode ended"
        );
    }

    /// Tracked messages not yet acknowledged, and their bytes: the ones held, and the
    /// ones let go of that a framed protocol counts until they are acknowledged (see
    /// `outbox/released.rs`).
    #[inline]
    pub(crate) fn unacked(&self) -> Unacked {
        self.core.books.outbox.unacked()
    }

    /// Drops the protocol's control messages `pick` picks that the peer has not been
    /// sent: queued, or written on a connection that is no longer live. Returns how many.
    pub(crate) fn discard_control(&mut self, pick: impl Fn(&Message) -> bool) -> usize {
        let live = matches!(self.core.state, State::Connected(_));
        self.core.books.outbox.discard_control(pick, live)
    }

    /// The highest acknowledgement id among the tracked messages the sink holds, if any.
    pub(crate) fn newest_held(&self) -> Option<u64> {
        self.core.books.outbox.newest_tracked()
    }

    /// Queues a control message of the protocol layered on acknowledged mode, to be
    /// written on the next connection after what the sink resends there. Only with no
    /// connection live (`false`, and nothing queued, otherwise): after a `close()` or a
    /// failure for good, before `dial()`.
    pub(crate) fn queue_control_for_next_connection(&mut self, message: Message) -> bool {
        if matches!(self.core.state, State::Connected(_)) {
            return false;
        }
        let tag = Tag {
            volatile: false,
            promise: None,
            control: true,
        };
        self.core.books.outbox.push(message, None, Some(tag));
        true
    }

    /// Tracked messages the sink holds, not yet acknowledged.
    pub(crate) fn held_unacked(&self) -> usize {
        self.core.books.outbox.tracked()
    }

    /// Flushes, and waits until every tracked message is acknowledged, the ones let go
    /// of included (see [`unacked`](Self::unacked)), reconnecting if there is no
    /// connection to hear it on. For a protocol whose window is full.
    ///
    /// - `Ready(Ok(()))`: nothing tracked is unacknowledged.
    /// - `Ready(Err(e))`: as [`poll_flush`](Self::poll_flush).
    /// - `Pending`: writing, reconnecting, or waiting for acknowledgements.
    pub(crate) fn poll_acknowledged(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_with(Half::Write, cx, |core, cx| {
            core.poll_flush_until(Settled::Acknowledged, cx)
        })
    }

    /// Queues `error` for the reader, after the messages already queued.
    pub(crate) fn queue_error(&mut self, error: Error) {
        self.core.books.inbox.push_error(error);
    }

    /// Starts dialing again from a failed sink, as [`dial`](Self::dial) does, without
    /// waiting: the next poll of either half drives it.
    pub(crate) fn redial(&mut self) {
        self.core.dial();
    }

    /// Takes a control message of a protocol layered on acknowledged mode (resume mode's
    /// ACK, REPLAY and BYE frames): untracked, and past the outbox and window bounds, so
    /// that an acknowledgement never waits behind the data it would let through. It is
    /// written at once when the connection is up and nothing is queued before it, else
    /// kept in order with the rest. [`poll_flush_written`](Self::poll_flush_written)
    /// flushes it without waiting for acknowledgements.
    pub(crate) fn start_send_control(&mut self, message: Message) -> Result<(), Error> {
        if matches!(message, Message::Close(_) | Message::Frame(_)) {
            return Err(Error::UnsupportedMessage);
        }
        if matches!(self.core.state, State::Idle | State::Closing { .. }) {
            return Err(Error::NotDialed);
        }
        let tag = Tag {
            volatile: false,
            promise: None,
            control: true,
        };
        self.core.accept_as(message, None, Some(tag));
        Ok(())
    }

    /// Flushes what was written to the live connection without waiting for
    /// acknowledgements, for the `half` that polls. `Ready` also when there is no live
    /// connection (what was queued goes out after the next connection's hello) or the
    /// flush failed (the connection ends as for any failed write).
    pub(crate) fn poll_flush_written(&mut self, half: Half, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_with(half, cx, |core, cx| {
            let State::Connected(link) = &mut core.state else {
                return Poll::Ready(());
            };
            match link.poll_flush(&mut core.books, cx) {
                Poll::Ready(Ok(())) => Poll::Ready(()),
                Poll::Ready(Err(end)) => {
                    core.end_connection(end, cx);
                    Poll::Ready(())
                }
                Poll::Pending => Poll::Pending,
            }
        })
    }

    /// Polls until every accepted message is flushed, reconnecting and resending as needed.
    ///
    /// - `Ready(Ok(()))`: everything accepted was written and flushed.
    /// - `Ready(Err(e))`: a reconnection failed; the messages stay (see
    ///   [`take_undelivered`](Self::take_undelivered)).
    /// - `Pending`: writing or reconnecting.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
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
    pub fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
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
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        self.poll_with(Half::Read, cx, Core::poll_next)
    }

    /// Runs one of the core's poll functions for `half` with the fan-out waker, and
    /// registers the caller's waker only when it parks, then looks once more: a wake-up
    /// that came between the first look and the registration is not lost.
    #[inline]
    fn poll_with<T>(
        &mut self,
        half: Half,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&mut Core<M>, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.core.signals.current = half;
        let mut inner = Context::from_waker(&self.waker);
        if let Poll::Ready(r) = self.core.drive(&mut inner, &mut op) {
            return Poll::Ready(r);
        }
        self.core.signals.wakers.register(half, cx.waker());
        self.core.drive(&mut inner, op)
    }
}

impl<M: MakeConnection + Unpin> Sink<Message> for ReconnectingSink<M> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ReconnectingSink::poll_ready(self.get_mut(), cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        ReconnectingSink::start_send(self.get_mut(), item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ReconnectingSink::poll_flush(self.get_mut(), cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ReconnectingSink::poll_close(self.get_mut(), cx)
    }
}

impl<M: MakeConnection + Unpin> Stream for ReconnectingSink<M> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        ReconnectingSink::poll_next(self.get_mut(), cx)
    }
}

impl<M: MakeConnection> fmt::Debug for ReconnectingSink<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconnectingSink")
            .field("target", &self.core.target)
            .field("state", &self.core.state.name())
            .field("unflushed", &self.core.books.outbox.len())
            .field("inbox", &self.core.books.inbox.len())
            .finish_non_exhaustive()
    }
}
