//! A range of messages that can never be delivered, and why.

use std::fmt;

/// Messages the peer sent that will never arrive: the range, and why it is lost.
///
/// Resume mode never skips a message silently. When a range of the peer's messages cannot
/// be delivered (its replay buffer overflowed, its session expired, the server restarted),
/// the reader meets one `Gap` item at the place of the loss, then the messages after it.
/// Positions are the peer's sequence numbers for this direction, which start at 1 on the
/// first connection and go on across reconnections, across replaced sessions too.
///
/// ```
/// use ws_reconnect::{Gap, GapReason};
///
/// let gap = Gap::new(41, Some(45), GapReason::Overflow);
/// assert_eq!(gap.len(), Some(4)); // 41, 42, 43 and 44
/// assert!(!gap.session_replaced());
///
/// // A restarted server does not know how many messages its predecessor sent.
/// let gap = Gap::new(41, None, GapReason::EpochChanged);
/// assert_eq!(gap.len(), None);
/// assert!(gap.session_replaced());
/// assert_eq!(gap.to_string(), "messages from 41 on (how many is unknown) were lost: the server restarted");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gap {
    /// The first lost sequence number.
    pub from: u64,
    /// One past the last lost sequence number; `None` when the sender no longer knows how
    /// many it had sent (a server that restarted or forgot the session). The next
    /// message then carries the number `from`.
    pub to: Option<u64>,
    /// Why the range is lost.
    pub reason: GapReason,
}

impl Gap {
    /// A gap of `[from, to)`, or from `from` on when `to` is `None`.
    ///
    /// ```
    /// use ws_reconnect::{Gap, GapReason};
    ///
    /// let gap = Gap::new(10, Some(15), GapReason::Overflow);
    /// assert!(gap.to_string().starts_with("messages 10 to 14 were lost"));
    /// ```
    pub const fn new(from: u64, to: Option<u64>, reason: GapReason) -> Self {
        Gap { from, to, reason }
    }

    /// How many messages were lost: `None` when the sender lost count. `Some(0)` is a
    /// session replaced with nothing in flight: no message was lost, but the state the
    /// server kept for the session was.
    ///
    /// ```
    /// use ws_reconnect::{Gap, GapReason};
    ///
    /// assert_eq!(Gap::new(10, Some(15), GapReason::Overflow).len(), Some(5));
    /// assert_eq!(Gap::new(10, None, GapReason::EpochChanged).len(), None);
    /// ```
    pub const fn len(&self) -> Option<u64> {
        match self.to {
            Some(to) => Some(to.saturating_sub(self.from)),
            None => None,
        }
    }

    /// Whether the gap is known to be empty (see [`len`](Self::len)).
    ///
    /// ```
    /// use ws_reconnect::{Gap, GapReason};
    ///
    /// assert!(Gap::new(7, Some(7), GapReason::Expired).is_empty());
    /// assert!(!Gap::new(7, None, GapReason::EpochChanged).is_empty());
    /// ```
    pub const fn is_empty(&self) -> bool {
        matches!(self.len(), Some(0))
    }

    /// Whether the session itself was replaced (expired, unknown, or lost in a restart):
    /// whatever the server kept for it is gone, and the application may need to set it up
    /// again. An overflow or an abandoned range leaves the session in place.
    ///
    /// ```
    /// use ws_reconnect::{Gap, GapReason};
    ///
    /// assert!(Gap::new(7, None, GapReason::EpochChanged).session_replaced());
    /// assert!(!Gap::new(7, Some(9), GapReason::Overflow).session_replaced());
    /// ```
    pub const fn session_replaced(&self) -> bool {
        self.reason.session_replaced()
    }
}

impl fmt::Display for Gap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.to, self.len()) {
            (Some(_), Some(0)) => write!(
                f,
                "the session was replaced at message {} with nothing lost: {}",
                self.from, self.reason
            ),
            (Some(to), _) => write!(
                f,
                "messages {} to {} were lost: {}",
                self.from,
                to - 1,
                self.reason
            ),
            (None, _) => write!(
                f,
                "messages from {} on (how many is unknown) were lost: {}",
                self.from, self.reason
            ),
        }
    }
}

/// Why a [`Gap`] happened. The wire code of each is given in `docs/resume-protocol.md`.
///
/// ```
/// use ws_reconnect::GapReason;
/// assert!(GapReason::Expired.session_replaced());
/// assert!(!GapReason::Overflow.session_replaced());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GapReason {
    /// The sender's replay buffer was full while the receiver was away; the oldest
    /// messages were dropped to make room.
    Overflow,
    /// The session is over and the server remembers how far it had sent (a tombstone):
    /// its time to live ran out after the connection was lost, it was evicted to stay
    /// within the server's memory budget, or it had been ended; the client came back
    /// later. The gap's end is exact.
    Expired,
    /// The server restarted (or its session store did): a new epoch, no session.
    EpochChanged,
    /// The server does not know the session and has no record of it (its tombstone was
    /// forgotten, past the server's limit on tombstones): how many messages were lost is
    /// unknown.
    SessionUnknown,
    /// The sender gave the messages up itself (they were taken back out of its buffer).
    Abandoned,
}

impl GapReason {
    /// Whether the session was replaced (see [`Gap::session_replaced`]).
    ///
    /// ```
    /// use ws_reconnect::GapReason;
    ///
    /// assert!(GapReason::SessionUnknown.session_replaced());
    /// assert!(!GapReason::Abandoned.session_replaced());
    /// ```
    pub const fn session_replaced(self) -> bool {
        matches!(
            self,
            GapReason::Expired | GapReason::EpochChanged | GapReason::SessionUnknown
        )
    }

    /// The wire code.
    pub(crate) const fn code(self) -> u8 {
        match self {
            GapReason::Overflow => 1,
            GapReason::Expired => 2,
            GapReason::EpochChanged => 3,
            GapReason::SessionUnknown => 4,
            GapReason::Abandoned => 5,
        }
    }

    /// The reason of a wire code; `None` for a code this version does not know.
    pub(crate) const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => GapReason::Overflow,
            2 => GapReason::Expired,
            3 => GapReason::EpochChanged,
            4 => GapReason::SessionUnknown,
            5 => GapReason::Abandoned,
            _ => return None,
        })
    }
}

impl fmt::Display for GapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GapReason::Overflow => {
                "the sender's replay buffer overflowed while the receiver was away"
            }
            GapReason::Expired => "the session expired before the client came back",
            GapReason::EpochChanged => "the server restarted",
            GapReason::SessionUnknown => "the server no longer knows the session",
            GapReason::Abandoned => "the sender gave them up",
        })
    }
}
