//! The driver: the sink's state machine, and the one place its transitions happen.
//!
//! ```text
//! state        | meaning                                   | writes              | reads
//! -------------+-------------------------------------------+---------------------+---------------
//! Idle         | never dialed, or closed by the user       | Err(NotDialed)      | None
//! Disconnected | a connection attempt is due               | attempt             | attempt
//! Delaying     | waiting the random reconnect_jitter       | Pending             | Pending
//! Connecting   | an attempt (through the layers) in flight | Pending             | Pending
//! Connected    | up; on_connect + resend written first     | write               | read
//! Refused      | the limiter refused; no attempt until a   | Err(TooManyRe-      | Pending
//!              | slot frees                                |   connects) each    |  (told once)
//! Failed       | reconnection failed for good; only dial() | Err(the failure)    | the failure
//!              | leaves it                                 |   each time         |  once, then None
//! Closing      | close(): Close frame sent, peer's awaited | Err(NotDialed)      | None
//!
//! Idle         -> Disconnected   dial()
//! Disconnected -> Connecting     the factory is ready; attempt started
//! Connecting   -> Connected      attempt succeeded: write on_connect, then resend the outbox
//! Connecting   -> Refused        Err(TooManyReconnects) with a retry time
//! Connecting   -> Failed         any other error
//! Connected    -> Disconnected   a write/flush/read error, EOF, a Close frame, a keepalive
//!                                or acknowledgement timeout, a protocol violation
//! Connected    -> Delaying       the same, with reconnect_jitter set
//! Connected    -> Failed         a Close whose code the close policy says not to come back on
//! Delaying     -> Disconnected   the jitter is over
//! Refused      -> Disconnected   the window frees
//! Failed       -> Disconnected   dial() (nothing else dials: a write is told the failure)
//! Connected    -> Closing        close(), after the outbox is flushed
//! any          -> Idle           close() done, or close_timeout reached (CloseIncomplete)
//! Closing      -> Disconnected   dial() after an unfinished close
//! ```
//!
//! Every edge goes through [`Core::enter`], which sets the state, publishes what users
//! see, wakes the other half and traces the edge. A live connection is left only through
//! [`Core::end_connection`] (or by `close()`); the parts of the link report what they
//! found ([`End`]) and never change the state themselves.

use std::future::Future;
use std::task::{ready, Context, Poll};

use rand::Rng;
use tokio::time::Instant;

use super::books::Books;
use super::confirm::ConfirmBy;
use super::end::{End, Health, Lost};
use super::hello::ConnectInfo;
use super::keepalive::KeepaliveTimer;
use super::link::Link;
use super::outcome::UndeliveredReason;
use super::state::{CloseAction, ConnectionState};
use super::waker::{Half, Signals};
use crate::connect::MakeConnection;
use crate::error::Error;
use crate::request::{DialKind, Target};

use super::lifecycle::{close_cause, jitter_for};
pub(super) use super::lifecycle::{Config, History, Refusal, State, Step};

/// The engine behind a [`ReconnectingSink`](super::ReconnectingSink).
pub(super) struct Core<M: MakeConnection> {
    pub(super) make: M,
    pub(super) target: Target,
    pub(super) state: State<M>,
    pub(super) books: Books,
    pub(super) config: Config,
    pub(super) record: History,
    pub(super) signals: Signals,
}

impl<M: MakeConnection> Core<M> {
    pub(super) fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected(_))
    }

    pub(super) fn is_closing(&self) -> bool {
        matches!(self.state, State::Closing { .. })
    }

    /// Every transition: sets the state to what `next` makes of the current one,
    /// publishes `shown` (if the users see a change), wakes the other half, traces.
    pub(super) fn enter_from(
        &mut self,
        shown: Option<ConnectionState>,
        next: impl FnOnce(State<M>) -> State<M>,
    ) {
        let from = self.state.name();
        let old = std::mem::replace(&mut self.state, State::Idle);
        self.state = next(old);
        tracing::trace!(from, to = self.state.name(), "state");
        if let Some(shown) = shown {
            self.signals.publish(shown);
        }
        self.signals.wake_other();
    }

    /// A transition to `next`, whatever the current state (see [`enter_from`](Self::enter_from)).
    pub(super) fn enter(&mut self, next: State<M>, shown: Option<ConnectionState>) {
        self.enter_from(shown, |_| next);
    }

    /// `Reconnecting`, as users see it, with the cause of the last end.
    fn reconnecting(&self, last_error: Option<String>) -> ConnectionState {
        ConnectionState::Reconnecting {
            attempt: self.record.reconnect_runs + 1,
            last_error,
        }
    }

    /// Runs `op`; when it would park on a live connection, the liveness checks (frames
    /// that arrived, the acknowledgement timer, the keepalive) have their turn first, so
    /// they run for a writer blocked on a full socket as well as for a reader. If they
    /// found the connection gone, `op` runs again (and reconnects).
    #[inline]
    pub(super) fn drive<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&mut Self, &mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        loop {
            if let Poll::Ready(r) = op(self, cx) {
                return Poll::Ready(r);
            }
            match self.poll_liveness(cx) {
                Ok(()) => return Poll::Pending,
                Err(end) => self.end_connection(end, cx),
            }
        }
    }

    /// The liveness checks of a live connection: `Err` when they found it gone.
    fn poll_liveness(&mut self, cx: &mut Context<'_>) -> Result<(), End> {
        let State::Connected(link) = &mut self.state else {
            return Ok(());
        };
        if let Some(cause) = link.fault.take() {
            // A write was granted after a peer fault and nobody flushed it: drop now.
            return Err(End::Faulted(cause));
        }
        // The reader has just read until Pending; the writer looks here, which also
        // registers it for the Pong or acknowledgement it may be waiting for.
        if self.signals.current == Half::Write {
            link.poll_arrived(&mut self.books, &self.signals, cx)?;
        }
        link.poll_timers(&mut self.books, &self.signals, cx)
    }

    /// `dial()`: from Idle or Failed, a first dial; from Closing, the unfinished close is
    /// abandoned and a first dial starts. Otherwise nothing changes.
    pub(super) fn dial(&mut self) {
        self.record.close_deadline = None;
        match &self.state {
            State::Idle | State::Failed { .. } => {}
            State::Closing { answered, .. } => {
                tracing::debug!("dial() abandons an unfinished close");
                if *answered {
                    // The peer answered our Close: what was flushed is delivered.
                    self.books.outbox.confirm_all();
                }
                self.connection_ended(None, false, false);
            }
            _ => return,
        }
        // Idle / Failed / Closing -> Disconnected
        let next = State::Disconnected {
            kind: DialKind::First,
            reset_backoff: true,
        };
        let shown = ConnectionState::Connecting {
            attempt: 1,
            last_error: None,
        };
        self.enter(next, Some(shown));
    }

    /// `dial()`'s work: a connection up, and everything written to it flushed.
    pub(super) fn poll_dial(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ready!(self.poll_connected(cx))?;
        self.poll_flush(cx)
    }

    /// Drives the state to `Connected` with the `on_connect` messages and the outbox
    /// written (not necessarily flushed).
    pub(super) fn poll_connected(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            let step = match &mut self.state {
                State::Idle | State::Closing { .. } => return Poll::Ready(Err(Error::NotDialed)),
                // Terminal: nothing dials from here but `dial()`, whoever polls.
                State::Failed { error, .. } => return Poll::Ready(Err((**error).clone())),
                State::Refused { sleep, refusal } => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        // Every write is told, as long as the refusal lasts; the reader
                        // was told once and waits.
                        return match self.signals.current {
                            Half::Write => Poll::Ready(Err(refusal.error())),
                            Half::Read => Poll::Pending,
                        };
                    }
                    Step::Retry {
                        reset_backoff: true,
                        refused: Some(*refusal),
                    }
                }
                State::Delaying {
                    sleep,
                    reset_backoff,
                } => {
                    ready!(sleep.as_mut().poll(cx));
                    Step::Retry {
                        reset_backoff: *reset_backoff,
                        refused: None,
                    }
                }
                State::Disconnected {
                    kind,
                    reset_backoff,
                } => match ready!(self.make.poll_ready(cx)) {
                    Ok(()) => Step::Attempt {
                        kind: *kind,
                        reset_backoff: *reset_backoff,
                    },
                    Err(e) => Step::AttemptFailed(Error::from_boxed(e.into())),
                },
                State::Connecting { future, kind } => match ready!(future.as_mut().poll(cx)) {
                    Ok(conn) => Step::Up { conn, kind: *kind },
                    Err(e) => Step::AttemptFailed(Error::from_boxed(e.into())),
                },
                State::Connected(link) => {
                    if let Some(cause) = link.fault.clone() {
                        // The write granted after a peer fault is in: flush it, as a plain
                        // client that wrote before reading the bad frame would have; the
                        // connection ends here either way, for the peer's fault.
                        let _ = ready!(link.poll_flush(&mut self.books, cx));
                        Step::Ended(End::Faulted(cause))
                    } else {
                        let (outbox, framing) = self.books.writing();
                        match ready!(link.poll_write_backlog(outbox, framing, cx)) {
                            Ok(resent) => {
                                if resent > 0 {
                                    self.books.stats.resent(resent);
                                    tracing::info!(resent, "resent undelivered messages");
                                }
                                return Poll::Ready(Ok(()));
                            }
                            Err(end) => Step::Ended(end),
                        }
                    }
                }
            };
            if let Some(error) = self.advance(step, cx) {
                return Poll::Ready(Err(error));
            }
        }
    }

    /// Decides the transition a step of [`poll_connected`](Self::poll_connected) calls
    /// for. Returns the error to report, if the step failed.
    fn advance(&mut self, step: Step<M>, cx: &mut Context<'_>) -> Option<Error> {
        match step {
            Step::Attempt {
                kind,
                reset_backoff,
            } => {
                let target = self
                    .target
                    .clone()
                    .with_kind(kind)
                    .with_attempt(0)
                    .with_reset_backoff(reset_backoff);
                tracing::debug!(?kind, reset_backoff, "connecting");
                if kind == DialKind::Reconnect {
                    self.record.reconnect_runs += 1;
                }
                let future = Box::pin(self.make.make_connection(target));
                // Disconnected -> Connecting
                self.enter(State::Connecting { future, kind }, None);
            }
            Step::Up { conn, kind } => self.connected(conn, kind),
            Step::AttemptFailed(error) => return Some(self.connect_failed(error)),
            Step::Retry {
                reset_backoff,
                refused,
            } => {
                // Delaying -> Disconnected (the jitter is over, nothing to show);
                // Refused -> Disconnected (the limiter's window has a slot again).
                let shown = refused.map(|r| self.reconnecting(Some(r.error().to_string())));
                let next = State::Disconnected {
                    kind: DialKind::Reconnect,
                    reset_backoff,
                };
                self.enter(next, shown);
            }
            Step::Ended(end) => self.end_connection(end, cx),
        }
        None
    }

    /// Connecting -> Connected: decides what is resent and what is said first.
    fn connected(&mut self, conn: M::Connection, kind: DialKind) {
        let reconnect = kind == DialKind::Reconnect;
        let stats = &self.books.stats;
        stats.connected(reconnect);
        self.record.reconnect_runs = 0;
        let outbox = &mut self.books.outbox;
        let mut info = ConnectInfo {
            connection: stats.get().connects.saturating_sub(1),
            reconnect,
            outage: self.record.lost_at.take().map(|at| at.elapsed()),
            resending: outbox.len(),
            oldest_tracked: None,
        };
        if let Some(retain) = self.config.retain.as_mut().filter(|_| info.resending > 0) {
            let discarded = outbox.retain(|m| retain(&info, m));
            if discarded > 0 {
                stats.dropped(discarded);
                tracing::debug!(discarded, "retain_on_reconnect discarded messages");
            }
            info.resending = outbox.len();
        }
        info.oldest_tracked = outbox.oldest_tracked();
        let hello = self.config.hello.for_connection(&info);
        tracing::info!(hello = hello.len(), resending = outbox.len(), "connected");
        outbox.rewind();
        let ack_timeout = self.books.acks.as_ref().map(|a| a.timeout);
        let fence = self.books.confirmation.by == ConfirmBy::Pong;
        let progress = self
            .record
            .handed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let keepalive = self
            .config
            .timing
            .keepalive
            .map(|settings| KeepaliveTimer::new(settings, progress));
        let link = Link::new(conn, hello, keepalive, ack_timeout, fence);
        self.enter(State::Connected(link), Some(ConnectionState::Connected));
    }

    /// Connecting -> Refused / Failed. Returns the error for the caller to report; the
    /// other half learns of a refusal from an error item (reader) or its next write.
    fn connect_failed(&mut self, error: Error) -> Error {
        tracing::warn!(error = %error, unflushed = self.books.outbox.len(), "reconnection failed");
        match &error {
            Error::TooManyReconnects {
                max_total,
                window,
                retry_at: Some(at),
            } => {
                let refusal = Refusal {
                    max_total: *max_total,
                    window: *window,
                    retry_at: *at,
                };
                if self.signals.current == Half::Write {
                    self.books.inbox.push_error(refusal.error());
                }
                // Connecting -> Refused
                let sleep = Box::pin(tokio::time::sleep_until(refusal.retry_at));
                let shown = ConnectionState::Refused {
                    retry_at: refusal.retry_at,
                };
                self.enter(State::Refused { sleep, refusal }, Some(shown));
            }
            // Connecting -> Failed. A failure met by the writer is told to the reader
            // when it next polls, before its stream ends.
            _ => self.fail(error.clone(), self.signals.current == Half::Read),
        }
        error
    }

    /// The one way a live connection ends (but for the user's `close()`): the end is
    /// traced and counted, the messages owed are kept for the next connection (the
    /// volatile ones go), and the close policy or the connection's record decides the
    /// next state.
    pub(super) fn end_connection(&mut self, end: End, cx: &mut Context<'_>) {
        let State::Connected(link) = &mut self.state else {
            return;
        };
        let closed_by_peer = matches!(end, End::Closed(_));
        let (lost, stop) = match end {
            End::Lost(lost) => (lost, None),
            End::Faulted(cause) => (Lost::unhealthy(cause.into()), None),
            End::Closed(frame) => {
                link.answer_close(cx);
                let code = frame.as_ref().map(|f| u16::from(f.code));
                match self.config.close_policy.decide(code) {
                    CloseAction::Reconnect => (Lost::new(close_cause(frame)), None),
                    CloseAction::ReconnectAfterBackoff => {
                        (Lost::unhealthy(close_cause(frame)), None)
                    }
                    CloseAction::Stop => {
                        let error = Error::ClosedByServer {
                            code: code.unwrap_or(1005),
                            reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                        };
                        tracing::warn!(%error, "server closed for good");
                        (Lost::new(error.to_string().into()), Some(error))
                    }
                }
            }
        };
        let healthy = match lost.health {
            Health::Unhealthy => false,
            Health::AsObserved => link.healthy(self.config.timing.healthy_after),
        };
        let cause = lost.cause;
        let uptime = link.uptime();
        tracing::info!(%cause, ?uptime, healthy, "disconnected");
        self.record.lost_at = Some(Instant::now());
        let confirmed_before = self.books.confirmation.ended(lost.silent_since);
        self.connection_ended(confirmed_before, closed_by_peer, false);
        if let Some(error) = stop {
            // Connected -> Failed: reported once, then the stream ends.
            return self.fail(error, false);
        }
        let jitter = self.config.timing.reconnect_jitter;
        let next = if jitter.is_zero() {
            // Connected -> Disconnected
            State::Disconnected {
                kind: DialKind::Reconnect,
                reset_backoff: healthy,
            }
        } else {
            let delay = jitter_for(jitter, rand::rng().random::<f64>());
            tracing::debug!(?delay, "reconnect jitter");
            // Connected -> Delaying
            State::Delaying {
                sleep: Box::pin(tokio::time::sleep(delay)),
                reset_backoff: healthy,
            }
        };
        let shown = self.reconnecting(Some(cause.to_string()));
        self.enter(next, Some(shown));
    }

    /// A live connection (or the one closing) is gone: what was flushed at or before
    /// `confirmed_before` is delivered (`None`: nothing more is), its volatile messages
    /// go with it, and the rest is to be written again, as possible duplicates, unless
    /// `closing`: then what has an outcome is handed back by `close()` instead, and the
    /// rest stays owed (a later `dial()` writes it again, not counted as duplicates).
    pub(super) fn connection_ended(
        &mut self,
        confirmed_before: Option<Instant>,
        presume: bool,
        closing: bool,
    ) {
        let rewound = self.books.outbox.connection_lost(confirmed_before, presume);
        if rewound.presumed > 0 {
            self.books.stats.presumed_delivered(rewound.presumed);
            tracing::debug!(
                presumed = rewound.presumed,
                "the peer closed again before confirming messages written twice: taken as delivered"
            );
        }
        if rewound.dropped > 0 {
            self.books.stats.dropped(rewound.dropped);
            tracing::debug!(
                dropped = rewound.dropped,
                "volatile messages dropped with their connection"
            );
        }
        // At close() what has an outcome is handed back; the rest stays owed, and a later
        // dial() writes it again without counting it here.
        let resent = if closing { 0 } else { rewound.unconfirmed };
        if resent > 0 {
            self.books.stats.possible_duplicates(resent);
            tracing::debug!(
                resent,
                "flushed but not confirmed before the end: to be sent again (possible duplicates)"
            );
        }
        let unflushed = self.books.outbox.len();
        tracing::debug!(unflushed, "messages to write on the next connection");
        self.books.stats.disconnected();
    }

    /// -> Failed, for good: the outcomes still open fail with `error`, every write is
    /// told it, the reader once (unless `reader_told`: it is being told by the caller).
    /// Only `dial()` leaves this state.
    fn fail(&mut self, error: Error, reader_told: bool) {
        self.books
            .outbox
            .give_up(|| UndeliveredReason::GaveUp(error.clone()));
        let shown = ConnectionState::GaveUp {
            reason: error.to_string(),
        };
        self.enter(
            State::Failed {
                error: Box::new(error),
                reader_told,
            },
            Some(shown),
        );
    }
}
