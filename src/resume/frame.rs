//! The resume protocol's frames: encoding and decoding, with a typed error for every way
//! a frame can be malformed. Pure: no I/O, no state.
//!
//! Every frame is one binary WebSocket message. Its first byte holds the kind (low four
//! bits) and the kind's flags (high four bits); integers are unsigned LEB128 varints
//! (at most 10 bytes), except the session id (16 bytes) and the epoch (8 bytes, big
//! endian). See `docs/resume-protocol.md` for the meaning of each field.
//!
//! ```text
//! DATA    1 | TEXT 0x10, ACK 0x20 | seq | [ack] | payload (the rest)
//! ACK     2 |                     | ack
//! HELLO   3 | SESSION 0x10        | version:u8 | [session:16 epoch:8] | recv_next | send_first | window_frames | window_bytes
//! WELCOME 4 | RESUMED 0x10        | version:u8 | session:16 | epoch:8 | recv_next | window_frames | window_bytes
//! GAP     5 | END 0x10            | from | [to] | reason:u8
//! REPLAY  6 |                     | from
//! BYE     7 |                     |
//! ```

use std::fmt;

use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use super::gap::{Gap, GapReason};
use crate::Message;

/// The subprotocol a client offers in `Sec-WebSocket-Protocol`, and a server that speaks
/// resume mode answers with.
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

const DATA_TEXT: u8 = 0x10;
const DATA_ACK: u8 = 0x20;
const HELLO_SESSION: u8 = 0x10;
const WELCOME_RESUMED: u8 = 0x10;
const GAP_END: u8 = 0x10;

/// The longest varint: ten bytes hold 64 bits.
const MAX_VARINT: usize = 10;

/// A session, as the server names it: 16 random bytes, printed in hex.
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
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        SessionId(bytes)
    }

    /// The 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A fresh random id.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
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
    /// The session to resume and the epoch it belongs to; `None` on the first connection.
    pub(crate) session: Option<(SessionId, u64)>,
    /// The next sequence number the client expects from the server.
    pub(crate) recv_next: u64,
    /// The lowest sequence number the client still holds (will send again).
    pub(crate) send_first: u64,
    /// The client's receive window.
    pub(crate) window: Window,
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
    Hello(Hello),
    Welcome(Welcome),
    Gap(Gap),
    Replay(u64),
    Bye,
}

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
    /// More DATA frames unacknowledged than the receive window allows.
    WindowExceeded,
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
        }
    }
}

impl std::error::Error for ResumeViolation {}

impl Frame {
    /// The frame's kind, for logs and errors.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Frame::Data(_) => "DATA",
            Frame::Ack(_) => "ACK",
            Frame::Hello(_) => "HELLO",
            Frame::Welcome(_) => "WELCOME",
            Frame::Gap(_) => "GAP",
            Frame::Replay(_) => "REPLAY",
            Frame::Bye => "BYE",
        }
    }

    /// The frame's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        match self {
            Frame::Data(data) => {
                return encode_data(data.seq, data.ack, data.text, &data.payload);
            }
            Frame::Ack(ack) => {
                out.push(ACK);
                put_varint(&mut out, *ack);
            }
            Frame::Hello(hello) => {
                let flags = if hello.session.is_some() {
                    HELLO_SESSION
                } else {
                    0
                };
                out.push(HELLO | flags);
                out.push(VERSION);
                if let Some((session, epoch)) = hello.session {
                    out.extend_from_slice(session.as_bytes());
                    out.extend_from_slice(&epoch.to_be_bytes());
                }
                put_varint(&mut out, hello.recv_next);
                put_varint(&mut out, hello.send_first);
                put_varint(&mut out, hello.window.frames);
                put_varint(&mut out, hello.window.bytes);
            }
            Frame::Welcome(welcome) => {
                let flags = if welcome.resumed { WELCOME_RESUMED } else { 0 };
                out.push(WELCOME | flags);
                out.push(VERSION);
                out.extend_from_slice(welcome.session.as_bytes());
                out.extend_from_slice(&welcome.epoch.to_be_bytes());
                put_varint(&mut out, welcome.recv_next);
                put_varint(&mut out, welcome.window.frames);
                put_varint(&mut out, welcome.window.bytes);
            }
            Frame::Gap(gap) => {
                let flags = if gap.to.is_some() { GAP_END } else { 0 };
                out.push(GAP | flags);
                put_varint(&mut out, gap.from);
                if let Some(to) = gap.to {
                    put_varint(&mut out, to);
                }
                out.push(gap.reason.code());
            }
            Frame::Replay(from) => {
                out.push(REPLAY);
                put_varint(&mut out, *from);
            }
            Frame::Bye => out.push(BYE),
        }
        out
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

/// A DATA frame's bytes: the header, then a copy of `payload`.
pub(crate) fn encode_data(seq: u64, ack: Option<u64>, text: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 2 * MAX_VARINT + payload.len());
    let mut first = DATA;
    if text {
        first |= DATA_TEXT;
    }
    if ack.is_some() {
        first |= DATA_ACK;
    }
    out.push(first);
    put_varint(&mut out, seq);
    if let Some(ack) = ack {
        put_varint(&mut out, ack);
    }
    out.extend_from_slice(payload);
    out
}

/// The sequence number of a DATA frame, read without decoding the rest: `None` for
/// anything else. Cheap enough to run on every outbound message.
pub(crate) fn data_seq(bytes: &[u8]) -> Option<u64> {
    let (&first, rest) = bytes.split_first()?;
    if first & 0x0f != DATA {
        return None;
    }
    let mut reader = Reader { buf: rest, pos: 0 };
    reader.varint("sequence number").ok()
}

/// Decodes one frame.
pub(crate) fn decode(bytes: &Bytes) -> Result<Frame, ResumeViolation> {
    let (&first, _) = bytes.split_first().ok_or(ResumeViolation::Empty)?;
    let kind = first & 0x0f;
    let flags = first & 0xf0;
    let allowed = match kind {
        DATA => DATA_TEXT | DATA_ACK,
        HELLO => HELLO_SESSION,
        WELCOME => WELCOME_RESUMED,
        GAP => GAP_END,
        ACK | REPLAY | BYE => 0,
        _ => return Err(ResumeViolation::UnknownKind(kind)),
    };
    if flags & !allowed != 0 {
        return Err(ResumeViolation::ReservedFlags { kind, flags });
    }
    let mut r = Reader {
        buf: &bytes[1..],
        pos: 0,
    };
    let frame = match kind {
        DATA => {
            let seq = r.position("sequence number")?;
            let ack = if flags & DATA_ACK != 0 {
                Some(r.varint("acknowledgement")?)
            } else {
                None
            };
            let text = flags & DATA_TEXT != 0;
            let payload = bytes.slice(1 + r.pos..);
            if text && std::str::from_utf8(&payload).is_err() {
                return Err(ResumeViolation::InvalidUtf8);
            }
            return Ok(Frame::Data(Data {
                seq,
                ack,
                text,
                payload,
            }));
        }
        ACK => Frame::Ack(r.varint("acknowledgement")?),
        HELLO => {
            r.version()?;
            let session = if flags & HELLO_SESSION != 0 {
                let id = r.session()?;
                Some((id, r.epoch()?))
            } else {
                None
            };
            Frame::Hello(Hello {
                session,
                recv_next: r.position("recv_next")?,
                send_first: r.position("send_first")?,
                window: r.window()?,
            })
        }
        WELCOME => {
            r.version()?;
            let session = r.session()?;
            let epoch = r.epoch()?;
            Frame::Welcome(Welcome {
                session,
                epoch,
                resumed: flags & WELCOME_RESUMED != 0,
                recv_next: r.position("recv_next")?,
                window: r.window()?,
            })
        }
        GAP => {
            let from = r.position("gap start")?;
            let to = if flags & GAP_END != 0 {
                let to = r.varint("gap end")?;
                if to < from {
                    return Err(ResumeViolation::GapBackwards { from, to });
                }
                Some(to)
            } else {
                None
            };
            let code = r.byte("gap reason")?;
            let reason =
                GapReason::from_code(code).ok_or(ResumeViolation::UnknownGapReason(code))?;
            Frame::Gap(Gap { from, to, reason })
        }
        REPLAY => Frame::Replay(r.position("replay start")?),
        _ => Frame::Bye,
    };
    if r.pos != r.buf.len() {
        return Err(ResumeViolation::TrailingBytes { kind });
    }
    Ok(frame)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// A cursor over a frame's fields.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self, field: &'static str) -> Result<u8, ResumeViolation> {
        let byte = *self
            .buf
            .get(self.pos)
            .ok_or(ResumeViolation::Truncated { field })?;
        self.pos += 1;
        Ok(byte)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ResumeViolation> {
        let end = self.pos + N;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or(ResumeViolation::Truncated { field })?;
        self.pos = end;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn varint(&mut self, field: &'static str) -> Result<u64, ResumeViolation> {
        let mut value = 0u64;
        for i in 0..MAX_VARINT {
            let byte = self.byte(field)?;
            let low = u64::from(byte & 0x7f);
            // The tenth byte holds the 64th bit only.
            if i == MAX_VARINT - 1 && low > 1 {
                return Err(ResumeViolation::VarintOverflow { field });
            }
            value |= low << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ResumeViolation::VarintOverflow { field })
    }

    /// A position: a varint of at least 1.
    fn position(&mut self, field: &'static str) -> Result<u64, ResumeViolation> {
        match self.varint(field)? {
            0 => Err(ResumeViolation::ZeroPosition { field }),
            value => Ok(value),
        }
    }

    fn version(&mut self) -> Result<(), ResumeViolation> {
        match self.byte("version")? {
            VERSION => Ok(()),
            other => Err(ResumeViolation::UnsupportedVersion(other)),
        }
    }

    fn session(&mut self) -> Result<SessionId, ResumeViolation> {
        Ok(SessionId(self.array::<16>("session id")?))
    }

    fn epoch(&mut self) -> Result<u64, ResumeViolation> {
        Ok(u64::from_be_bytes(self.array::<8>("epoch")?))
    }

    fn window(&mut self) -> Result<Window, ResumeViolation> {
        Ok(Window {
            frames: self.varint("window frames")?,
            bytes: self.varint("window bytes")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn roundtrip(frame: &Frame) -> Frame {
        decode(&Bytes::from(frame.encode())).expect("an encoded frame decodes")
    }

    #[test]
    fn every_kind_round_trips() {
        let session = SessionId([7; 16]);
        let frames = [
            Frame::Data(Data {
                seq: 1,
                ack: None,
                text: true,
                payload: Bytes::from_static("héllo".as_bytes()),
            }),
            Frame::Data(Data {
                seq: u64::MAX,
                ack: Some(0),
                text: false,
                payload: Bytes::new(),
            }),
            Frame::Ack(0),
            Frame::Ack(u64::MAX),
            Frame::Hello(Hello {
                session: None,
                recv_next: 1,
                send_first: 1,
                window: Window::DEFAULT,
            }),
            Frame::Hello(Hello {
                session: Some((session, 42)),
                recv_next: 300,
                send_first: 17,
                window: Window {
                    frames: 0,
                    bytes: u64::MAX,
                },
            }),
            Frame::Welcome(Welcome {
                session,
                epoch: u64::MAX,
                resumed: true,
                recv_next: 9,
                window: Window::DEFAULT,
            }),
            Frame::Gap(Gap::new(5, Some(5), GapReason::Expired)),
            Frame::Gap(Gap::new(5, None, GapReason::EpochChanged)),
            Frame::Replay(12),
            Frame::Bye,
        ];
        for frame in frames {
            assert_eq!(roundtrip(&frame), frame);
        }
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        let cases: &[(&[u8], ResumeViolation)] = &[
            (&[], ResumeViolation::Empty),
            (&[0x0f], ResumeViolation::UnknownKind(15)),
            (&[0x00], ResumeViolation::UnknownKind(0)),
            (
                &[0x42],
                ResumeViolation::ReservedFlags {
                    kind: 2,
                    flags: 0x40,
                },
            ),
            (
                &[0x01],
                ResumeViolation::Truncated {
                    field: "sequence number",
                },
            ),
            (
                &[0x01, 0x00],
                ResumeViolation::ZeroPosition {
                    field: "sequence number",
                },
            ),
            (&[0x11, 0x01, 0xff], ResumeViolation::InvalidUtf8),
            (
                &[0x02, 0x01, 0x00],
                ResumeViolation::TrailingBytes { kind: 2 },
            ),
            (&[0x07, 0x00], ResumeViolation::TrailingBytes { kind: 7 }),
            (&[0x03, 0x02], ResumeViolation::UnsupportedVersion(2)),
            (
                &[0x15, 0x05, 0x04, 0x01],
                ResumeViolation::GapBackwards { from: 5, to: 4 },
            ),
            (&[0x05, 0x05, 0x09], ResumeViolation::UnknownGapReason(9)),
            (
                &[
                    0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                ],
                ResumeViolation::VarintOverflow {
                    field: "acknowledgement",
                },
            ),
            (
                &[
                    0x02, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
                ],
                ResumeViolation::VarintOverflow {
                    field: "acknowledgement",
                },
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                decode(&Bytes::copy_from_slice(bytes)).as_ref(),
                Err(expected),
                "{bytes:?}"
            );
        }
        assert_eq!(
            Frame::from_message(&Message::text("x")),
            Err(ResumeViolation::NotBinary)
        );
    }

    #[test]
    fn the_largest_varint_is_ten_bytes() {
        let mut out = Vec::new();
        put_varint(&mut out, u64::MAX);
        assert_eq!(out.len(), MAX_VARINT);
        assert_eq!(
            data_seq(&encode_data(u64::MAX, None, false, b"x")),
            Some(u64::MAX)
        );
        assert_eq!(data_seq(&Frame::Ack(3).encode()), None);
    }

    fn any_frame() -> impl Strategy<Value = Frame> {
        let session = any::<[u8; 16]>().prop_map(SessionId);
        let window =
            (any::<u64>(), any::<u64>()).prop_map(|(frames, bytes)| Window { frames, bytes });
        let reason = prop_oneof![
            Just(GapReason::Overflow),
            Just(GapReason::Expired),
            Just(GapReason::EpochChanged),
            Just(GapReason::SessionUnknown),
            Just(GapReason::Abandoned),
        ];
        prop_oneof![
            (
                1..=u64::MAX,
                any::<Option<u64>>(),
                any::<bool>(),
                any::<Vec<u8>>()
            )
                .prop_map(|(seq, ack, text, payload)| {
                    let payload = if text {
                        Bytes::from(String::from_utf8_lossy(&payload).into_owned())
                    } else {
                        Bytes::from(payload)
                    };
                    Frame::Data(Data {
                        seq,
                        ack,
                        text,
                        payload,
                    })
                }),
            any::<u64>().prop_map(Frame::Ack),
            (
                proptest::option::of((session.clone(), any::<u64>())),
                1..=u64::MAX,
                1..=u64::MAX,
                window.clone()
            )
                .prop_map(|(session, recv_next, send_first, window)| {
                    Frame::Hello(Hello {
                        session,
                        recv_next,
                        send_first,
                        window,
                    })
                }),
            (session, any::<u64>(), any::<bool>(), 1..=u64::MAX, window).prop_map(
                |(session, epoch, resumed, recv_next, window)| {
                    Frame::Welcome(Welcome {
                        session,
                        epoch,
                        resumed,
                        recv_next,
                        window,
                    })
                }
            ),
            (
                1..=u64::MAX / 2,
                proptest::option::of(0..=u64::MAX / 2),
                reason
            )
                .prop_map(|(from, len, reason)| Frame::Gap(Gap::new(
                    from,
                    len.map(|l| from + l),
                    reason
                ))),
            (1..=u64::MAX).prop_map(Frame::Replay),
            Just(Frame::Bye),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_the_identity(frame in any_frame()) {
            prop_assert_eq!(roundtrip(&frame), frame);
        }

        /// Garbage never panics: it decodes to a frame or to a typed error.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&Bytes::from(bytes.clone()));
            let _ = data_seq(&bytes);
        }

        /// Garbage that starts like a real frame (a valid first byte) goes deeper into
        /// the decoder, and still never panics.
        #[test]
        fn garbage_after_a_valid_first_byte_never_panics(
            first in prop::sample::select(vec![0x01u8, 0x11, 0x21, 0x31, 0x02, 0x03, 0x13, 0x04, 0x14, 0x05, 0x15, 0x06, 0x07]),
            rest in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut bytes = vec![first];
            bytes.extend(rest);
            let decoded = decode(&Bytes::from(bytes.clone()));
            // What decodes encodes back to a frame that decodes the same.
            if let Ok(frame) = decoded {
                prop_assert_eq!(roundtrip(&frame), frame);
            }
        }

        /// A truncated frame is an error, never a different frame, for every kind whose
        /// last field is not a payload.
        #[test]
        fn a_truncated_frame_is_an_error(frame in any_frame(), cut in 1usize..64) {
            prop_assume!(!matches!(frame, Frame::Data(_) | Frame::Bye));
            let bytes = frame.encode();
            prop_assume!(cut < bytes.len());
            let short = Bytes::copy_from_slice(&bytes[..bytes.len() - cut]);
            prop_assert!(decode(&short).is_err());
        }
    }
}
