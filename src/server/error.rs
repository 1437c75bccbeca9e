//! The server half's errors: what a session's application side meets, and why a
//! connection could not be attached.

use std::fmt;

use crate::error::BoxError;
use crate::resume::{Gap, ResumeViolation};
use crate::tungstenite;

/// What a [`Session`](super::Session)'s stream and sink report.
///
/// ```
/// use ws_reconnect::server::SessionError;
/// use ws_reconnect::{Gap, GapReason};
///
/// let gap = SessionError::Gap(Gap::new(10, Some(12), GapReason::Abandoned));
/// assert!(gap.is_gap());
/// assert!(!SessionError::Expired.is_gap());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// A stream item: messages the client sent will never arrive (it gave them up). The
    /// messages before and after are intact; polling again carries on.
    Gap(Gap),
    /// The client did not come back within the session's time to live, or the session
    /// was evicted to keep within the server's memory budget. The stream yields this
    /// once, after the messages that arrived, then ends; sends fail with it.
    Expired,
    /// The session was ended: by the client (it closed), or by this side's `close()`.
    /// Sends fail with it.
    Ended,
    /// Only Text and Binary messages travel in a session: Ping, Pong and Close belong to
    /// each connection (use `close()` to end the session).
    UnsupportedMessage,
    /// `start_send` was called while the replay buffer had no room, without a successful
    /// `poll_ready` first (the `Sink` contract); the message was not accepted.
    NotReady,
}

impl SessionError {
    /// Whether this is a [`SessionError::Gap`] item.
    ///
    /// ```
    /// use ws_reconnect::server::SessionError;
    /// use ws_reconnect::{Gap, GapReason};
    ///
    /// assert!(SessionError::Gap(Gap::new(3, Some(5), GapReason::Abandoned)).is_gap());
    /// assert!(!SessionError::Ended.is_gap());
    /// ```
    pub fn is_gap(&self) -> bool {
        matches!(self, SessionError::Gap(_))
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Gap(gap) => write!(f, "{gap}"),
            SessionError::Expired => f.write_str(
                "the session expired: the client did not come back within its time to live, \
                 or it was evicted to keep within the server's memory budget",
            ),
            SessionError::Ended => f.write_str("the session has ended"),
            SessionError::UnsupportedMessage => f.write_str(
                "only Text and Binary messages can be sent in a session; close() ends it",
            ),
            SessionError::NotReady => f.write_str(
                "the replay buffer is full: call poll_ready (or use SinkExt::send) before start_send",
            ),
        }
    }
}

impl std::error::Error for SessionError {}

/// Why a connection could not be attached to a session, or ended on a fault.
///
/// A connection that simply drops (a reset, an EOF, an idle timeout) is not an error: its
/// session waits for the client to come back.
///
/// ```
/// use ws_reconnect::server::AttachError;
/// use ws_reconnect::ResumeViolation;
///
/// let e = AttachError::Violation(ResumeViolation::NoHello);
/// assert!(e.to_string().contains("HELLO"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AttachError {
    /// The WebSocket handshake failed (only from [`Server::accept`](super::Server::accept)).
    Handshake(tungstenite::Error),
    /// The client did not offer the `ws-reconnect.v1` subprotocol; it was answered 400.
    NotOffered,
    /// The client broke the resume protocol; the connection was closed with code 1002.
    Violation(ResumeViolation),
    /// A new session could not be handed to the application (the
    /// [`Sessions`](super::Sessions) stream is full or was dropped); the connection was
    /// closed with code 1013, and the client tries again later.
    Refused,
    /// The connection failed before the client said HELLO.
    Transport(BoxError),
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::Handshake(e) => write!(f, "the WebSocket handshake failed: {e}"),
            AttachError::NotOffered => f.write_str(
                "the client did not offer the ws-reconnect.v1 subprotocol; it was refused",
            ),
            AttachError::Violation(v) => write!(f, "the client broke the resume protocol: {v}"),
            AttachError::Refused => f.write_str(
                "no new session could be handed to the application: read the Sessions stream",
            ),
            AttachError::Transport(e) => write!(f, "the connection failed before HELLO: {e}"),
        }
    }
}

impl std::error::Error for AttachError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AttachError::Handshake(e) => Some(e),
            AttachError::Violation(v) => Some(v),
            AttachError::Transport(e) => Some(&**e),
            AttachError::NotOffered | AttachError::Refused => None,
        }
    }
}
