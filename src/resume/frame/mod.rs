//! The resume protocol's frames: encoding and decoding, with a typed error for every way
//! a frame can be malformed. Pure: no I/O, no state.
//!
//! Every frame is one binary WebSocket message. Its first byte holds the kind (low four
//! bits) and the kind's flags (high four bits); integers are unsigned LEB128 varints
//! (at most 10 bytes), except the session id (16 bytes) and the epoch (8 bytes, big
//! endian). See `docs/resume-protocol.md` for the meaning of each field.
//!
//! ```text
//! DATA    1 | TEXT 0x10, ACK 0x20, PROMPT 0x40 | seq | [ack] | payload (the rest)
//! ACK     2 | PROMPT 0x10                     | ack
//! HELLO   3 | SESSION 0x10, OPEN 0x20 | version:u8 | [session:16 [epoch:8]] | recv_next | send_first | window_frames | window_bytes
//! WELCOME 4 | RESUMED 0x10        | version:u8 | session:16 | epoch:8 | recv_next | window_frames | window_bytes
//! GAP     5 | END 0x10            | from | [to] | reason:u8
//! REPLAY  6 |                     | from
//! BYE     7 |                     |
//! BATCH   8 |                     | (length | DATA frame)* (client to server only)
//! ```

mod decode;
mod encode;
#[cfg(test)]
mod tests;
mod violation;

use std::fmt;

use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

pub(crate) use self::decode::decode;
#[cfg(any(feature = "server", test))]
pub(crate) use self::decode::BatchIter;
#[cfg(any(feature = "server", test))]
pub(crate) use self::encode::encode_data;
pub(crate) use self::encode::DataWriter;
pub use self::violation::ResumeViolation;
use super::gap::Gap;
use crate::Message;

/// The subprotocol a client offers in `Sec-WebSocket-Protocol`, and a server that speaks
/// resume mode answers with.
///
/// ```
/// assert_eq!(ws_reconnect::PROTOCOL, "ws-reconnect.v1");
/// ```
pub const PROTOCOL: &str = "ws-reconnect.v1";

/// The protocol version carried by HELLO and WELCOME.
pub(crate) const VERSION: u8 = 1;

const DATA: u8 = 1;
const ACK: u8 = 2;
const HELLO: u8 = 3;
const WELCOME: u8 = 4;
const GAP: u8 = 5;
const REPLAY: u8 = 6;
const BYE: u8 = 7;
/// Several DATA frames in one WebSocket message, each after its length.
const BATCH: u8 = 8;

const DATA_TEXT: u8 = 0x10;
const DATA_ACK: u8 = 0x20;
const DATA_PROMPT: u8 = 0x40;
const ACK_PROMPT: u8 = 0x10;
const HELLO_SESSION: u8 = 0x10;
const HELLO_OPEN: u8 = 0x20;
const WELCOME_RESUMED: u8 = 0x10;
const GAP_END: u8 = 0x10;

/// The longest varint: ten bytes hold 64 bits.
const MAX_VARINT: usize = 10;

/// A session's name: 16 random bytes (proposed by the client, or chosen by the server),
/// printed in hex.
///
/// ```
/// let id = ws_reconnect::SessionId::from_bytes([0xab; 16]);
/// assert_eq!(id.to_string(), "abababababababababababababababab");
/// assert_eq!(id.as_bytes(), &[0xab; 16]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// A session id from its 16 bytes.
    ///
    /// ```
    /// let id = ws_reconnect::SessionId::from_bytes([1; 16]);
    /// assert_eq!(id.as_bytes(), &[1; 16]);
    /// ```
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        SessionId(bytes)
    }

    /// The 16 bytes.
    ///
    /// ```
    /// let id = ws_reconnect::SessionId::from_bytes([2; 16]);
    /// assert_eq!(id.as_bytes()[0], 2);
    /// ```
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A fresh random id, from the thread's cryptographically secure generator (it is
    /// the credential for resuming).
    pub(crate) fn random() -> Self {
        SessionId(rand::random())
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// How much a receiver takes unacknowledged: the sender never has more DATA frames (or
/// payload bytes) in flight than this. One frame is always allowed when none is in
/// flight, however large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) frames: u64,
    pub(crate) bytes: u64,
}

impl Window {
    /// What a sender assumes before the peer has said: small enough for any receiver.
    pub(crate) const DEFAULT: Window = Window {
        frames: 256,
        bytes: 1 << 20,
    };
}

/// The client's opening frame on every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hello {
    /// Which session the client asks for.
    pub(crate) claim: Claim,
    /// The next sequence number the client expects from the server.
    pub(crate) recv_next: u64,
    /// The lowest sequence number the client still holds (will send again).
    pub(crate) send_first: u64,
    /// The client's receive window.
    pub(crate) window: Window,
}

/// Which session a HELLO asks for.
///
/// A client that names its first session ([`Claim::Open`]) can find it again when the
/// connection is lost before WELCOME reaches it ([`Claim::Reopen`]): what the server sent
/// into it is then delivered, not lost with a session the client never knew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// A new session, named by the server. On the wire: neither flag.
    New,
    /// A new session under this id, which the client chose at random. On the wire: OPEN
    /// and the id.
    Open(SessionId),
    /// The session this client opened under this id and never saw welcomed (it may or
    /// may not exist). On the wire: SESSION, the id, and epoch 0, which no server has.
    Reopen(SessionId),
    /// The session a WELCOME named, with its epoch (never 0). On the wire: SESSION, the
    /// id and the epoch.
    Resume(SessionId, u64),
}

/// The server's answer to HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Welcome {
    pub(crate) session: SessionId,
    pub(crate) epoch: u64,
    /// The session the client presented goes on.
    pub(crate) resumed: bool,
    /// The next sequence number the server expects from the client.
    pub(crate) recv_next: u64,
    /// The server's receive window.
    pub(crate) window: Window,
}

/// An application message with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Data {
    pub(crate) seq: u64,
    /// A cumulative acknowledgement carried along.
    pub(crate) ack: Option<u64>,
    /// The message was a Text message (its payload is valid UTF-8).
    pub(crate) text: bool,
    /// The sender asks for an acknowledgement as soon as the application has taken this
    /// message.
    pub(crate) prompt: bool,
    pub(crate) payload: Bytes,
}

impl Data {
    /// The application message.
    pub(crate) fn into_message(self) -> Message {
        if self.text {
            // Checked by `decode`.
            match Utf8Bytes::try_from(self.payload) {
                Ok(text) => Message::Text(text),
                Err(_) => Message::Binary(Bytes::new()),
            }
        } else {
            Message::Binary(self.payload)
        }
    }
}

/// One frame of the resume protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    Data(Data),
    Ack(u64),
    /// An ACK with its PROMPT flag: the sender's acknowledgement, and a request for one
    /// as soon as the application has taken every message that arrived before it.
    Prompt(u64),
    Hello(Hello),
    Welcome(Welcome),
    Gap(Gap),
    Replay(u64),
    Bye,
    /// The body of a BATCH (after its kind byte), read with [`BatchIter`].
    Batch(Bytes),
}

impl Frame {
    /// The frame's kind, for logs and errors.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Frame::Data(_) => "DATA",
            Frame::Ack(_) | Frame::Prompt(_) => "ACK",
            Frame::Hello(_) => "HELLO",
            Frame::Welcome(_) => "WELCOME",
            Frame::Gap(_) => "GAP",
            Frame::Replay(_) => "REPLAY",
            Frame::Bye => "BYE",
            Frame::Batch(_) => "BATCH",
        }
    }

    /// The frame as a binary WebSocket message.
    pub(crate) fn to_message(&self) -> Message {
        Message::Binary(Bytes::from(self.encode()))
    }

    /// Reads a frame from a WebSocket message: any binary message, any bytes, gives a frame
    /// or a typed error, never a panic.
    pub(crate) fn from_message(message: &Message) -> Result<Frame, ResumeViolation> {
        match message {
            Message::Binary(bytes) => decode(bytes),
            _ => Err(ResumeViolation::NotBinary),
        }
    }
}
