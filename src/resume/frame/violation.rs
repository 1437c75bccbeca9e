//! The typed error for a frame that breaks the protocol.

use std::fmt;

use super::VERSION;

/// A frame that breaks the resume protocol: malformed, or not allowed where it came.
///
/// A peer that sends one is faulty; the receiver reports it and carries on where it can
/// (a resume client asks for the frames again, a server closes that connection with code
/// 1002).
///
/// ```
/// use ws_reconnect::ResumeViolation;
/// let v = ResumeViolation::UnknownKind(9);
/// assert_eq!(v.to_string(), "a resume frame of unknown kind 9");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResumeViolation {
    /// A Text message, where every resume frame is a binary one.
    NotBinary,
    /// An empty binary message.
    Empty,
    /// A kind this version does not know.
    UnknownKind(u8),
    /// Flag bits set that the kind does not define.
    ReservedFlags {
        /// The frame's kind.
        kind: u8,
        /// The flag bits (high four bits of the first byte).
        flags: u8,
    },
    /// The frame ends inside a field.
    Truncated {
        /// The field.
        field: &'static str,
    },
    /// A varint longer than 10 bytes or beyond 64 bits.
    VarintOverflow {
        /// The field.
        field: &'static str,
    },
    /// Bytes after the last field of a frame that has no payload.
    TrailingBytes {
        /// The frame's kind.
        kind: u8,
    },
    /// HELLO or WELCOME of a protocol version this side does not speak.
    UnsupportedVersion(u8),
    /// A position field is 0 (positions start at 1).
    ZeroPosition {
        /// The field.
        field: &'static str,
    },
    /// A GAP that ends before it starts.
    GapBackwards {
        /// Its first position.
        from: u64,
        /// Where it says it ends.
        to: u64,
    },
    /// A GAP reason this version does not know.
    UnknownGapReason(u8),
    /// A DATA frame marked as text whose payload is not UTF-8.
    InvalidUtf8,
    /// A frame of a kind the receiver never takes at this point (a HELLO sent to a client,
    /// a second HELLO, a WELCOME sent to a server).
    Unexpected {
        /// The frame's kind.
        kind: &'static str,
    },
    /// The first frame on a connection to a server was not HELLO.
    NoHello,
    /// An acknowledgement of a sequence number that was never sent.
    AckBeyondSent {
        /// The acknowledgement.
        ack: u64,
        /// The highest sequence number sent so far.
        sent: u64,
    },
    /// The peer claims to have received messages that were never sent.
    AheadOfSender {
        /// Its position.
        recv_next: u64,
        /// The next sequence number this side will send.
        send_next: u64,
    },
    /// More DATA frames (or payload bytes) unacknowledged than the receive window
    /// allows.
    WindowExceeded,
    /// A HELLO opened a session under an id that is already a session's (live, or ended
    /// and remembered): a client's first connection arriving after its second one had
    /// already asked for the session again.
    SessionInUse,
}

impl fmt::Display for ResumeViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResumeViolation::NotBinary => {
                f.write_str("a Text message where resume frames are binary")
            }
            ResumeViolation::Empty => f.write_str("an empty resume frame"),
            ResumeViolation::UnknownKind(kind) => {
                write!(f, "a resume frame of unknown kind {kind}")
            }
            ResumeViolation::ReservedFlags { kind, flags } => {
                write!(
                    f,
                    "resume frame kind {kind} with reserved flags {flags:#04x}"
                )
            }
            ResumeViolation::Truncated { field } => {
                write!(f, "a resume frame cut short in its {field}")
            }
            ResumeViolation::VarintOverflow { field } => {
                write!(f, "the {field} of a resume frame does not fit in 64 bits")
            }
            ResumeViolation::TrailingBytes { kind } => {
                write!(
                    f,
                    "bytes after the last field of a resume frame of kind {kind}"
                )
            }
            ResumeViolation::UnsupportedVersion(v) => {
                write!(f, "resume protocol version {v}, this side speaks {VERSION}")
            }
            ResumeViolation::ZeroPosition { field } => {
                write!(
                    f,
                    "the {field} of a resume frame is 0; positions start at 1"
                )
            }
            ResumeViolation::GapBackwards { from, to } => {
                write!(f, "a GAP from {from} to {to}, which ends before it starts")
            }
            ResumeViolation::UnknownGapReason(code) => {
                write!(f, "a GAP with unknown reason {code}")
            }
            ResumeViolation::InvalidUtf8 => {
                f.write_str("a text DATA frame whose payload is not UTF-8")
            }
            ResumeViolation::Unexpected { kind } => write!(f, "an unexpected {kind} frame"),
            ResumeViolation::NoHello => {
                f.write_str("the first frame of the connection was not HELLO")
            }
            ResumeViolation::AckBeyondSent { ack, sent } => {
                write!(f, "an acknowledgement of {ack}, but only {sent} were sent")
            }
            ResumeViolation::AheadOfSender {
                recv_next,
                send_next,
            } => write!(
                f,
                "the peer expects message {recv_next}, but the next one sent will be {send_next}"
            ),
            ResumeViolation::WindowExceeded => {
                f.write_str("more DATA frames in flight than the receive window allows")
            }
            ResumeViolation::SessionInUse => {
                f.write_str("a HELLO opened a session under an id already in use")
            }
        }
    }
}

impl std::error::Error for ResumeViolation {}
