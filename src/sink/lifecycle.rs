//! The driver's vocabulary: its states, the steps it takes, what it remembers between
//! connections and what the builder set.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::confirm::Fence;
use super::end::End;
use super::hello::Hello;
use super::keepalive::Keepalive;
use super::link::Link;
use super::outcome::RetainFn;
use super::state::ClosePolicy;
use crate::connect::MakeConnection;
use crate::error::{BoxError, Error};
use crate::limit::ReconnectBudget;
use crate::progress::Progress;
use crate::request::DialKind;

/// What the builder set, for the driver.
pub(super) struct Config {
    pub(super) hello: Hello,
    /// Decides, when a connection comes up, which owed messages to resend.
    pub(super) retain: Option<RetainFn>,
    pub(super) timing: Timing,
    pub(super) close_policy: ClosePolicy,
    pub(super) limiter: Option<ReconnectBudget>,
}

/// The sink's durations.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub(super) healthy_after: Duration,
    pub(super) close_timeout: Duration,
    pub(super) reconnect_jitter: Duration,
    pub(super) keepalive: Option<Keepalive>,
}

/// What the driver remembers between connections.
#[derive(Default)]
pub(super) struct History {
    /// Reconnection runs since the last connection came up.
    pub(super) reconnect_runs: u32,
    /// When the last connection was lost (for [`ConnectInfo::outage`]).
    pub(super) lost_at: Option<Instant>,
    /// `close()` started: it must be done by this deadline, whatever the state.
    pub(super) close_deadline: Option<Pin<Box<Sleep>>>,
    /// The counters of the socket the connector opened last, handed over through the
    /// target's observer.
    pub(super) handed: Arc<Mutex<Option<Arc<Progress>>>>,
}

/// See the state table in the driver's docs (`driver.rs`).
// One per sink, and `Connected` is where it spends its life: boxing the link would add
// an indirection to every write to save memory in the other states.
#[allow(clippy::large_enum_variant)]
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
    Connected(Link<M>),
    Refused {
        sleep: Pin<Box<Sleep>>,
        /// The limiter's answer, repeated to every write until `sleep` ends.
        refusal: Refusal,
    },
    /// Reconnection failed for good: terminal until `dial()`. Every write is told
    /// `error`; the reader is told once, then its stream ends.
    Failed {
        error: Box<Error>,
        reader_told: bool,
    },
    Closing {
        conn: Pin<Box<M::Connection>>,
        /// Our Close frame is flushed; waiting for the peer's.
        sent: bool,
        /// The peer answered our Close: it read everything before it.
        answered: bool,
        /// The connection's fence Ping, if one is out: its Pong still confirms.
        fence: Option<Fence>,
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
    pub(super) max_total: usize,
    pub(super) window: Duration,
    pub(super) retry_at: Instant,
}

impl Refusal {
    pub(super) fn error(self) -> Error {
        Error::TooManyReconnects {
            max_total: self.max_total,
            window: self.window,
            retry_at: Some(self.retry_at),
        }
    }
}

/// What one step of [`Core::poll_connected`] came to, for [`Core::advance`] to act on.
pub(super) enum Step<M: MakeConnection> {
    /// The factory is ready: start an attempt.
    Attempt { kind: DialKind, reset_backoff: bool },
    /// The attempt succeeded.
    Up { conn: M::Connection, kind: DialKind },
    /// The factory or the attempt failed.
    AttemptFailed(Error),
    /// The jitter is over, or (`refused`) the limiter's window freed.
    Retry {
        reset_backoff: bool,
        refused: Option<Refusal>,
    },
    /// The live connection ended while its backlog was written.
    Ended(End),
}

pub(super) fn close_cause(frame: Option<CloseFrame>) -> BoxError {
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
pub(super) fn jitter_for(max: Duration, unit: f64) -> Duration {
    max.mul_f64(unit.clamp(0.0, 1.0))
}
