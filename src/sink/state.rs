//! The connection state a sink publishes, and the policy for the server's Close frames.

use std::fmt;
use std::sync::Arc;

/// What a sink is doing, published on a `tokio::sync::watch` channel by
/// [`ReconnectingSink::state`](crate::ReconnectingSink::state).
///
/// ```
/// use ws_reconnect::ConnectionState;
///
/// let ws = ws_reconnect::ReconnectingSink::builder().build("ws://127.0.0.1:9/")?;
/// assert_eq!(*ws.state().borrow(), ConnectionState::Idle);
/// # Ok::<(), ws_reconnect::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Not dialed yet.
    Idle,
    /// The first dial is in progress: its attempt number `attempt` (from 1; each failed
    /// attempt the backoff retries adds one) and why the last attempt failed.
    Connecting {
        /// The attempt under way, from 1.
        attempt: u32,
        /// Why the last attempt failed (URLs redacted); `None` before any did.
        last_error: Option<String>,
    },
    /// A connection is up.
    Connected,
    /// The connection was lost; reconnecting. `attempt` is the attempt under way since the
    /// connection was lost (1 for the first; each failed attempt the backoff retries adds
    /// one); `last_error` is why the last connection or attempt ended.
    Reconnecting {
        /// The attempt under way since the connection was lost, from 1.
        attempt: u32,
        /// Why the last connection or attempt ended (URLs redacted).
        last_error: Option<String>,
    },
    /// The reconnection limiter refused a reconnection: no attempt is made before
    /// `retry_at`, when a slot in its window frees. Writes fail with
    /// [`Error::TooManyReconnects`](crate::Error::TooManyReconnects) until then.
    Refused {
        /// When the limiter allows a reconnection again.
        retry_at: tokio::time::Instant,
    },
    /// The user's `close()` is in progress: the Close frame is being sent or the peer's
    /// awaited. Writes fail with [`Error::NotDialed`](crate::Error::NotDialed).
    Closing,
    /// Closed by the user's `close()`.
    Closed,
    /// Reconnection failed for good (rejected, backoff exhausted, or the server's Close
    /// code said not to come back). Writes fail with that error; nothing dials again
    /// until [`dial`](crate::ReconnectingSink::dial).
    GaveUp {
        /// Why (URLs redacted).
        reason: String,
    },
}

/// What to do when the server sends a Close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseAction {
    /// Reconnect as for any other drop.
    Reconnect,
    /// Reconnect, but only after the next backoff delay (e.g. 1012 restart, 1013 try
    /// again later).
    ReconnectAfterBackoff,
    /// Do not reconnect: the stream yields [`Error::ClosedByServer`](crate::Error::ClosedByServer)
    /// and ends.
    Stop,
}

/// Decides from the server's close code whether to reconnect.
///
/// The default:
///
/// | code | meaning | action |
/// |---|---|---|
/// | 1002 | protocol error | stop |
/// | 1003 | unsupported data | stop |
/// | 1007 | invalid payload | stop |
/// | 1008 | policy violation | stop |
/// | 1009 | message too big | stop |
/// | 1010 | missing extension | stop |
/// | 1012 | service restart | reconnect after the next backoff delay |
/// | 1013 | try again later | reconnect after the next backoff delay |
/// | anything else, or no code | | reconnect |
///
/// ```
/// use ws_reconnect::{CloseAction, ClosePolicy};
///
/// let policy = ClosePolicy::default();
/// assert_eq!(policy.decide(Some(1008)), CloseAction::Stop);
/// assert_eq!(policy.decide(Some(1001)), CloseAction::Reconnect);
/// assert_eq!(policy.decide(Some(1013)), CloseAction::ReconnectAfterBackoff);
///
/// // Also stop on an application code.
/// let custom = ClosePolicy::from_fn(|code| match code {
///     Some(4000) => CloseAction::Stop,
///     other => ClosePolicy::default().decide(other),
/// });
/// assert_eq!(custom.decide(Some(4000)), CloseAction::Stop);
/// ```
#[derive(Clone, Default)]
pub struct ClosePolicy {
    custom: Option<Arc<dyn Fn(Option<u16>) -> CloseAction + Send + Sync>>,
}

impl ClosePolicy {
    /// A policy given by a function of the close code (`None`: a Close without a code).
    pub fn from_fn<F>(f: F) -> Self
    where
        F: Fn(Option<u16>) -> CloseAction + Send + Sync + 'static,
    {
        ClosePolicy {
            custom: Some(Arc::new(f)),
        }
    }

    /// The action for `code`.
    pub fn decide(&self, code: Option<u16>) -> CloseAction {
        if let Some(f) = &self.custom {
            return f(code);
        }
        match code {
            Some(1002 | 1003 | 1007 | 1008 | 1009 | 1010) => CloseAction::Stop,
            Some(1012 | 1013) => CloseAction::ReconnectAfterBackoff,
            _ => CloseAction::Reconnect,
        }
    }
}

impl fmt::Debug for ClosePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.custom.is_some() {
            "ClosePolicy(custom)"
        } else {
            "ClosePolicy(default)"
        })
    }
}
