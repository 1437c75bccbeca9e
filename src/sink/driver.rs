//! The lifecycle driver: the sink's state machine, and the one place its transitions
//! happen (connect, lose, reconnect; closing is in `close.rs`).
//!
//! The parts (the live connection, its keepalive and acknowledgement timer, the inbox)
//! report what they found: a [`Lost`] cause, a [`Look`]. Only the driver acts on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_sink::Sink;
use rand::Rng;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::acks::Acks;
use super::builder::Settings;
use super::hello::{ConnectInfo, Hello};
use super::inbound::{Inbox, Look};
use super::keepalive::{Keepalive, Ping};
use super::live::Live;
use super::lost::{Health, Lost};
use super::outbox::Outbox;
use super::outcome::{RetainFn, UndeliveredReason};
use super::state::{CloseAction, ClosePolicy, ConnectionState};
use super::stats::StatsHandle;
use super::waker::{Fanout, Half};
use crate::connect::MakeConnection;
use crate::error::{BoxError, Error};
use crate::limit::ReconnectBudget;
use crate::target::{DialKind, Target};

/// The engine behind a [`ReconnectingSink`](super::ReconnectingSink): every field the
/// halves share, driven by the `poll_*` operations (`write.rs`, `read.rs`, `close.rs`).
pub(super) struct Core<M: MakeConnection> {
    pub(super) make: M,
    pub(super) target: Target,
    pub(super) state: State<M>,
    pub(super) hello: Hello,
    /// Decides, when a connection comes up, which owed messages to resend.
    retain: Option<RetainFn>,
    /// When the last connection was lost (for [`ConnectInfo::outage`]).
    lost_at: Option<Instant>,
    pub(super) outbox: Outbox,
    pub(super) inbox: Inbox,
    pub(super) timing: Timing,
    pub(super) close_policy: ClosePolicy,
    pub(super) limiter: Option<ReconnectBudget>,
    pub(super) acks: Option<Acks>,
    pub(super) stats: StatsHandle,
    /// Every message accepted, counted once per message (no atomic operation): what
    /// was added to `stats` and when the writer last looked at inbound frames are marks
    /// on this count.
    pub(super) accepted: Tally,
    /// `accepted` as last added to `stats`.
    pub(super) published: Tally,
    /// `accepted` when the writer last looked at inbound frames.
    pub(super) checked: Tally,
    /// Shared with the target's failure observer (see [`Core::new`]).
    state_tx: Arc<watch::Sender<ConnectionState>>,
    /// Reconnection runs since the last connection came up.
    reconnect_runs: u32,
    /// `close()` started: it must be done by this deadline, whatever the state.
    pub(super) close_deadline: Option<Pin<Box<Sleep>>>,
    pub(super) wakers: Arc<Fanout>,
    /// The half polling now; transitions wake the other one.
    pub(super) current: Half,
}

/// The sink's durations.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub(super) healthy_after: Duration,
    pub(super) close_timeout: Duration,
    pub(super) reconnect_jitter: Duration,
    pub(super) keepalive: Option<Keepalive>,
}

/// A count of messages and their payload bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    pub(super) messages: u64,
    pub(super) bytes: u64,
}

impl Tally {
    #[inline]
    pub(super) fn add(&mut self, bytes: usize) {
        self.messages += 1;
        self.bytes += bytes as u64;
    }

    /// What `self` counted since `mark` (an earlier value of it).
    #[inline]
    pub(super) fn since(self, mark: Tally) -> Tally {
        Tally {
            messages: self.messages - mark.messages,
            bytes: self.bytes - mark.bytes,
        }
    }
}

/// See the state table in the [module docs](super).
pub(super) enum State<M: MakeConnection> {
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
    Connected(Live<M>),
    Refused {
        sleep: Pin<Box<Sleep>>,
        reset_backoff: bool,
        /// The limiter's answer, repeated to every write until `sleep` ends.
        refusal: Refusal,
    },
    /// Reconnection failed for good: terminal until `dial()`. Every write is told
    /// `error`; the reader is told once, then its stream ends.
    Failed {
        error: Error,
        reader_told: bool,
    },
    Closing {
        conn: Pin<Box<M::Connection>>,
        /// Our Close frame is flushed; waiting for the peer's.
        sent: bool,
    },
}

impl<M: MakeConnection> State<M> {
    pub(super) fn name(&self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Disconnected { .. } => "Disconnected",
            State::Delaying { .. } => "Delaying",
            State::Connecting { .. } => "Connecting",
            State::Connected(_) => "Connected",
            State::Refused { .. } => "Refused",
            State::Failed { .. } => "Failed",
            State::Closing { .. } => "Closing",
        }
    }
}

/// The limiter's refusal, kept to answer every write while it lasts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Refusal {
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

impl<M: MakeConnection> Core<M> {
    pub(super) fn new(
        make: M,
        target: Target,
        settings: Settings,
        limiter: Option<ReconnectBudget>,
        wakers: Arc<Fanout>,
    ) -> Self {
        let state_tx = Arc::new(watch::Sender::new(ConnectionState::Idle));
        // A retry layer in the stack retries failed attempts that the sink does not see:
        // each one's failure becomes the state's `last_error` while reconnecting.
        let observed = Arc::clone(&state_tx);
        let target = target.with_failure_observer(Arc::new(move |failure: &Error| {
            observed.send_if_modified(|state| match state {
                ConnectionState::Reconnecting { last_error, .. } => {
                    *last_error = Some(failure.to_string());
                    true
                }
                _ => false,
            });
        }));
        Core {
            stats: StatsHandle::new(&target),
            make,
            target,
            state: State::Idle,
            hello: settings.hello,
            retain: settings.retain,
            lost_at: None,
            outbox: settings.outbox,
            inbox: Inbox::new(settings.inbox_capacity),
            timing: Timing {
                healthy_after: settings.healthy_after,
                close_timeout: settings.close_timeout,
                reconnect_jitter: settings.reconnect_jitter,
                keepalive: settings.keepalive,
            },
            close_policy: settings.close_policy,
            limiter,
            acks: settings.acks,
            accepted: Tally::default(),
            published: Tally::default(),
            checked: Tally::default(),
            state_tx,
            reconnect_runs: 0,
            close_deadline: None,
            wakers,
            current: Half::Write,
        }
    }

    pub(super) fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected(_))
    }

    pub(super) fn is_closing(&self) -> bool {
        matches!(self.state, State::Closing { .. })
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<ConnectionState> {
        self.state_tx.subscribe()
    }

    pub(super) fn publish(&self, state: ConnectionState) {
        self.state_tx.send_replace(state);
    }

    /// Runs `op`; when it would park on a live connection, the liveness checks (frames
    /// that arrived, the acknowledgement timer, the keepalive) have their turn first, so
    /// they run for a writer blocked on a full socket as well as for a reader. If they
    /// found the connection dead, `op` runs again (and reconnects).
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
            self.lose(Lost::unhealthy(cause.into()));
            return true;
        }
        // The reader has just read until Pending; the writer looks here, which also
        // registers it for the Pong or acknowledgement it may be waiting for.
        if self.current == Half::Write {
            let look = self.poll_inbound(cx);
            if !self.settle(look, cx) {
                return true;
            }
        }
        match self.poll_timers(cx) {
            Ok(()) => false,
            Err(lost) => {
                self.lose(lost);
                true
            }
        }
    }

    /// The live connection's timers, and the flush of a keepalive Ping they wrote.
    pub(super) fn poll_timers(&mut self, cx: &mut Context<'_>) -> Result<(), Lost> {
        let outstanding = self.outbox.tracked() > 0;
        // While the inbox is full the socket is left unread on purpose (plain mode):
        // silence then proves nothing.
        let unread = self.acks.is_none() && !self.inbox.has_room();
        let State::Connected(live) = &mut self.state else {
            return Ok(());
        };
        if live.poll_timers(outstanding, unread, cx)? == Ping::Written {
            if let Poll::Ready(Err(lost)) = self.poll_flush_live(cx) {
                return Err(lost);
            }
        }
        Ok(())
    }

    /// Acts on what a look at inbound frames found. Returns whether the connection is
    /// still up.
    pub(super) fn settle(&mut self, look: Look, cx: &mut Context<'_>) -> bool {
        match look {
            Look::Open => true,
            Look::Ended(lost) => {
                self.lose(lost);
                false
            }
            Look::Closed(frame) => {
                self.peer_closed(frame, cx);
                false
            }
            Look::Faulted(cause) => {
                self.lose(Lost::unhealthy(cause.into()));
                false
            }
        }
    }

    /// `dial()`: from Idle or Failed, a first dial; from Closing, the unfinished close is
    /// abandoned and a first dial starts. Otherwise nothing changes.
    pub(super) fn dial(&mut self) {
        self.close_deadline = None;
        match &self.state {
            State::Idle | State::Failed { .. } => {}
            State::Closing { .. } => {
                tracing::debug!("dial() abandons an unfinished close");
                self.connection_ended();
            }
            _ => return,
        }
        // Idle / Failed / Closing -> Disconnected
        self.state = State::Disconnected {
            kind: DialKind::First,
            reset_backoff: true,
        };
        self.publish(ConnectionState::Connecting);
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
            match &mut self.state {
                State::Idle | State::Closing { .. } => return Poll::Ready(Err(Error::NotDialed)),
                // Terminal: nothing dials from here but `dial()`, whoever polls.
                State::Failed { error, .. } => return Poll::Ready(Err(error.duplicate())),
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
                    let last_error = Some(refusal.error().to_string());
                    self.state = State::Disconnected {
                        kind: DialKind::Reconnect,
                        reset_backoff: *reset_backoff,
                    };
                    self.publish(ConnectionState::Reconnecting {
                        attempt: self.reconnect_runs + 1,
                        last_error,
                    });
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
                        let kind = *kind;
                        self.stats.connected(kind == DialKind::Reconnect);
                        self.reconnect_runs = 0;
                        self.publish(ConnectionState::Connected);
                        let mut info = ConnectInfo {
                            connection: self.stats.get().connects.saturating_sub(1),
                            reconnect: kind == DialKind::Reconnect,
                            outage: self.lost_at.take().map(|at| at.elapsed()),
                            resending: self.outbox.len(),
                        };
                        if let Some(retain) = self.retain.as_mut().filter(|_| info.resending > 0) {
                            let discarded = self.outbox.retain(|m| retain(&info, m));
                            if discarded > 0 {
                                self.stats.dropped(discarded);
                                tracing::debug!(
                                    discarded,
                                    "retain_on_reconnect discarded messages"
                                );
                            }
                            info.resending = self.outbox.len();
                        }
                        let hello = self.hello.for_connection(&info);
                        tracing::info!(
                            hello = hello.len(),
                            resending = self.outbox.len(),
                            "connected"
                        );
                        self.outbox.rewind();
                        let ack_timeout = self.acks.as_ref().map(|a| a.timeout);
                        // Connecting -> Connected
                        self.state = State::Connected(Live::new(
                            conn,
                            hello,
                            self.timing.keepalive,
                            ack_timeout,
                        ));
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
                        // Flushed or not, the connection ends here, for the peer's fault
                        // (poll_flush_live reports a failure without changing the state).
                        let _ = ready!(self.poll_flush_live(cx));
                        if let State::Connected(live) = &mut self.state {
                            let cause = live.fault.take().unwrap_or_default();
                            self.lose(Lost::unhealthy(cause.into()));
                        }
                        continue;
                    }
                    match ready!(live.poll_write_backlog(&mut self.outbox, cx)) {
                        Ok(resent) => {
                            if resent > 0 {
                                self.stats.resent(resent);
                                tracing::info!(resent, "resent undelivered messages");
                            }
                            return Poll::Ready(Ok(()));
                        }
                        // Connected -> Disconnected; go again.
                        Err(lost) => self.lose(lost),
                    }
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
                    self.inbox.push_error(refusal.error());
                }
            }
            // Connecting -> Failed. A failure met by the writer is told to the reader
            // when it next polls, before its stream ends.
            None => self.fail(error.duplicate(), self.current == Half::Read),
        }
        self.wakers.wake_other(self.current);
        error
    }

    /// Connected -> Disconnected (or Delaying, with jitter): drops the connection; the
    /// outbox will be written again. Whether the next attempt is immediate depends on
    /// the connection's record ([`Live::healthy`]) unless `lost` says otherwise.
    pub(super) fn lose(&mut self, lost: Lost) {
        let State::Connected(live) = &self.state else {
            return;
        };
        let uptime = live.uptime();
        let healthy = match lost.health {
            Health::Unhealthy => false,
            Health::AsObserved => live.healthy(self.timing.healthy_after),
        };
        let cause = lost.cause;
        tracing::info!(%cause, ?uptime, healthy, unflushed = self.outbox.len(), "disconnected");
        self.lost_at = Some(Instant::now());
        self.connection_ended();
        self.state = if self.timing.reconnect_jitter.is_zero() {
            // Connected -> Disconnected
            State::Disconnected {
                kind: DialKind::Reconnect,
                reset_backoff: healthy,
            }
        } else {
            let delay = jitter(self.timing.reconnect_jitter, rand::rng().random::<f64>());
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

    /// A live connection (or the one closing) is gone: its volatile messages go with it
    /// and the rest is to be written again.
    pub(super) fn connection_ended(&mut self) {
        let dropped = self.outbox.connection_lost();
        if dropped > 0 {
            self.stats.dropped(dropped);
            tracing::debug!(dropped, "volatile messages dropped with their connection");
        }
        self.stats.disconnected();
    }

    /// The server sent a Close frame: answer it, then the close policy decides.
    pub(super) fn peer_closed(&mut self, frame: Option<CloseFrame>, cx: &mut Context<'_>) {
        if let State::Connected(live) = &mut self.state {
            // RFC 6455: answer the peer's Close before dropping the connection. One
            // non-blocking try: tungstenite has queued the reply; if the socket is full
            // the connection is dropped anyway. Messages it flushes stay in the outbox
            // and are resent (possible duplicates, never losses).
            let _ = live.conn.as_mut().poll_close(cx);
        }
        let code = frame.as_ref().map(|f| u16::from(f.code));
        match self.close_policy.decide(code) {
            CloseAction::Reconnect => self.lose(Lost::new(close_cause(frame))),
            CloseAction::ReconnectAfterBackoff => self.lose(Lost::unhealthy(close_cause(frame))),
            CloseAction::Stop => {
                let error = Error::ClosedByServer {
                    code: code.unwrap_or(1005),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                };
                tracing::warn!(%error, "server closed for good");
                self.lose(Lost::new(error.to_string().into()));
                // Disconnected -> Failed
                self.fail(error, false);
            }
        }
    }

    /// -> Failed, for good: the outcomes still open fail with `error`, every write is
    /// told it, the reader once (unless `reader_told`: it is being told by the caller).
    /// Only `dial()` leaves this state.
    fn fail(&mut self, error: Error, reader_told: bool) {
        self.outbox
            .give_up(|| UndeliveredReason::GaveUp(error.duplicate()));
        self.publish(ConnectionState::GaveUp {
            reason: error.to_string(),
        });
        self.state = State::Failed { error, reader_told };
        self.wakers.wake_read();
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

/// The reconnect jitter for a uniform draw `unit` in `[0, 1)`.
fn jitter(max: Duration, unit: f64) -> Duration {
    max.mul_f64(unit.clamp(0.0, 1.0))
}
