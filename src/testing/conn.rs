//! One forwarded connection's state, shared by its two pumps and changed by the faults.
//!
//! The state lives in a watch channel: a pump that is busy when a fault arrives still
//! sees it afterwards, and every pump waits for the change it cares about.
//!
//! A connection's [`Mode`] only moves on, towards `Reset`:
//!
//! | from | to | by |
//! |---|---|---|
//! | `Forwarding` | `HalfOpen` | `Fault::HalfOpen` |
//! | `Forwarding` | `Cut` | the client-to-server budget of a cut running out |
//! | any but `Reset` | `Frozen` | `Fault::Freeze` |
//! | any | `Reset` | `Fault::Reset` |
//!
//! A request for an earlier mode than the current one changes nothing (a half-open
//! connection frozen stays frozen), and only a forwarding connection is cut.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::link::{Direction, Link, Path};
use super::Fault;

/// How far a connection has been taken out of service, in the order it can move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Mode {
    /// Both directions carry bytes through their delay lines.
    Forwarding,
    /// A black hole: both directions read and discard, nothing is written, nothing closes.
    HalfOpen,
    /// The cut's budget ran out: the client-to-server line delivers what it holds and
    /// closes; the other direction closes at once.
    Cut,
    /// Nothing is read or written; both sockets stay open.
    Frozen,
    /// Both sockets are reset.
    Reset,
}

impl Mode {
    /// The mode after `next` is asked for.
    fn then(self, next: Mode) -> Mode {
        match (self, next) {
            (Mode::Forwarding, next) => next,
            (current, Mode::Cut) => current,
            (current, next) => current.max(next),
        }
    }

    /// Whether the pump carrying `direction` stops carrying in this mode. A cut stops the
    /// server-to-client direction at once; the client-to-server one ends by itself once
    /// it has delivered the bytes before the cut.
    pub(super) fn stops(self, direction: Direction) -> bool {
        match self {
            Mode::Forwarding => false,
            Mode::Cut => direction == Direction::Downstream,
            Mode::HalfOpen | Mode::Frozen | Mode::Reset => true,
        }
    }
}

/// What happens when the client-to-server budget runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    /// A cut that was injected (and counted then).
    Cut,
    /// A fault drawn at random for this connection; counted when it fires.
    Drawn(Fault),
}

/// Client-to-server bytes left before `then` happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Budget {
    left: u64,
    then: Trigger,
}

/// What to do with a chunk that was read, as the budget says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spent {
    /// Forward it all.
    All,
    /// The budget ran out `at` bytes into the chunk: `then` happens now.
    RanOut { at: usize, then: Trigger },
}

#[derive(Debug)]
struct State {
    mode: Mode,
    budget: Option<Budget>,
    path: Path,
}

/// One connection's switches.
#[derive(Debug)]
pub(super) struct Conn {
    state: watch::Sender<State>,
}

impl Conn {
    /// A forwarding connection through `path`.
    pub(super) fn new(path: Path) -> Arc<Conn> {
        Arc::new(Conn {
            state: watch::Sender::new(State {
                mode: Mode::Forwarding,
                budget: None,
                path,
            }),
        })
    }

    pub(super) fn mode(&self) -> Mode {
        self.state.borrow().mode
    }

    /// Asks for `next` (see the module docs for what that changes).
    pub(super) fn enter(&self, next: Mode) {
        self.state.send_if_modified(|state| {
            let mode = state.mode.then(next);
            let changed = mode != state.mode;
            if changed {
                tracing::trace!(from = ?state.mode, to = ?mode, "fault proxy connection");
                state.mode = mode;
            }
            changed
        });
    }

    /// Waits until `done` holds for the mode, and returns the mode.
    pub(super) async fn until(&self, done: impl Fn(Mode) -> bool) -> Mode {
        let mut rx = self.state.subscribe();
        let mode = rx
            .wait_for(|state| done(state.mode))
            .await
            .map(|state| state.mode);
        match mode {
            Ok(mode) => mode,
            // The sender lives as long as `self`.
            Err(_) => std::future::pending().await,
        }
    }

    /// A receiver of every change of the switches from now on.
    pub(super) fn changes(&self) -> Changes {
        Changes(self.state.subscribe())
    }

    /// The link carrying `direction` now.
    pub(super) fn link(&self, direction: Direction) -> Link {
        self.state.borrow().path.link(direction)
    }

    /// From the next chunk on, the connection goes through `path`.
    pub(super) fn set_path(&self, path: Path) {
        // A wake: a reading side waiting for room reads the new buffer.
        self.state.send_modify(|state| state.path = path);
    }

    /// From the next chunk on, both directions have `latency`.
    pub(super) fn set_latency(&self, latency: Duration) {
        self.state
            .send_modify(|state| state.path = state.path.with_latency(latency));
    }

    /// The connection is cut after `bytes` more client-to-server bytes.
    pub(super) fn cut_after(&self, bytes: u64) {
        self.arm(bytes, Trigger::Cut);
    }

    /// `then` happens after `bytes` more client-to-server bytes.
    pub(super) fn arm(&self, bytes: u64, then: Trigger) {
        // A wake: a budget of 0 runs out now, with no bytes to read.
        self.state.send_modify(|state| {
            state.budget = Some(Budget { left: bytes, then });
        });
    }

    /// Takes `n` client-to-server bytes (0: a check after a wake) from the budget.
    pub(super) fn spend(&self, n: usize) -> Spent {
        let mut spent = Spent::All;
        self.state.send_if_modified(|state| {
            let Some(budget) = state.budget.as_mut() else {
                return false;
            };
            let n = n as u64;
            if n < budget.left {
                budget.left -= n;
            } else {
                let at = usize::try_from(budget.left).unwrap_or(usize::MAX);
                spent = Spent::RanOut {
                    at,
                    then: budget.then,
                };
                state.budget = None;
            }
            // Nobody waits on the budget: no wake.
            false
        });
        spent
    }
}

/// Every change of a connection's switches.
#[derive(Debug)]
pub(super) struct Changes(watch::Receiver<State>);

impl Changes {
    /// Waits for the next change.
    ///
    /// # Cancellation safety
    /// Cancel safe: a change seen by a cancelled call is seen by the next one.
    pub(super) async fn next(&mut self) {
        if self.0.changed().await.is_err() {
            // The sender lives as long as the connection, which outlives its pumps.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_only_moves_towards_reset() {
        use Mode::*;
        assert_eq!(Forwarding.then(HalfOpen), HalfOpen);
        assert_eq!(HalfOpen.then(Frozen), Frozen);
        assert_eq!(Frozen.then(HalfOpen), Frozen);
        assert_eq!(Frozen.then(Reset), Reset);
        assert_eq!(Reset.then(Frozen), Reset);
        // Only a forwarding connection is cut.
        assert_eq!(Forwarding.then(Cut), Cut);
        assert_eq!(HalfOpen.then(Cut), HalfOpen);
        assert_eq!(Cut.then(Frozen), Frozen);
    }

    #[test]
    fn a_budget_runs_out_at_its_byte_and_then_is_gone() {
        let conn = Conn::new(Path::default());
        assert_eq!(conn.spend(100), Spent::All);
        conn.cut_after(10);
        assert_eq!(conn.spend(4), Spent::All);
        assert_eq!(
            conn.spend(16),
            Spent::RanOut {
                at: 6,
                then: Trigger::Cut
            }
        );
        assert_eq!(conn.spend(16), Spent::All);
        // A budget of 0 runs out on the check after the wake, with no bytes.
        conn.arm(0, Trigger::Drawn(Fault::Reset));
        assert_eq!(
            conn.spend(0),
            Spent::RanOut {
                at: 0,
                then: Trigger::Drawn(Fault::Reset)
            }
        );
    }
}
