//! Frames to bytes.

use bytes::BytesMut;

use super::*;

impl Frame {
    /// The frame's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        match self {
            Frame::Data(data) => {
                return encode_data(data.seq, data.ack, data.text, data.prompt, &data.payload);
            }
            Frame::Ack(ack) => {
                out.push(ACK);
                put_varint(&mut out, *ack);
            }
            Frame::Prompt(ack) => {
                out.push(ACK | ACK_PROMPT);
                put_varint(&mut out, *ack);
            }
            Frame::Hello(hello) => {
                let (flags, session, epoch) = match hello.claim {
                    Claim::New => (0, None, None),
                    Claim::Open(id) => (HELLO_OPEN, Some(id), None),
                    Claim::Reopen(id) => (HELLO_SESSION, Some(id), Some(0)),
                    Claim::Resume(id, epoch) => (HELLO_SESSION, Some(id), Some(epoch)),
                };
                out.push(HELLO | flags);
                out.push(VERSION);
                if let Some(session) = session {
                    out.extend_from_slice(session.as_bytes());
                }
                if let Some(epoch) = epoch {
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
            Frame::Batch(body) => {
                out.push(BATCH);
                out.extend_from_slice(body);
            }
        }
        out
    }
}

/// A DATA frame's bytes: the header, then a copy of `payload`, in a buffer of exactly
/// that length (so that it becomes a [`Bytes`] without a second allocation).
pub(crate) fn encode_data(
    seq: u64,
    ack: Option<u64>,
    text: bool,
    prompt: bool,
    payload: &[u8],
) -> Vec<u8> {
    DataHeader::new(seq, ack, text, prompt).frame(payload)
}

/// A DATA frame's header (kind and flags, sequence number, acknowledgement), written on
/// the stack.
struct DataHeader {
    buf: [u8; 1 + 2 * MAX_VARINT],
    len: usize,
}

impl DataHeader {
    #[inline]
    fn new(seq: u64, ack: Option<u64>, text: bool, prompt: bool) -> Self {
        let mut first = DATA;
        if text {
            first |= DATA_TEXT;
        }
        if prompt {
            first |= DATA_PROMPT;
        }
        if ack.is_some() {
            first |= DATA_ACK;
        }
        let mut header = DataHeader {
            buf: [0; 1 + 2 * MAX_VARINT],
            len: 1,
        };
        header.buf[0] = first;
        header.varint(seq);
        if let Some(ack) = ack {
            header.varint(ack);
        }
        header
    }

    #[inline]
    fn varint(&mut self, value: u64) {
        self.len += write_varint(&mut self.buf[self.len..], value);
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The whole frame, this header then a copy of `payload`, in a buffer of exactly its
    /// length.
    fn frame(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len + payload.len());
        out.extend_from_slice(self.bytes());
        out.extend_from_slice(payload);
        out
    }
}

/// Writes DATA frames for the connection. tungstenite copies each into its write buffer
/// as it writes it and lets go of it, so one scratch buffer holds them all, each frame a
/// [`Bytes`] of its own in it. Once every frame in it has been let go of, the buffer is
/// written again from its start, so the frames of a steady stream go through the same
/// few kilobytes, which stay in the cache. (A connection that keeps frames keeps their
/// buffer alive, and the writer moves on to a new one.) Frames of more than
/// [`DataWriter::OWN_BUFFER`] bytes get a buffer of their own.
#[derive(Debug, Default)]
pub(crate) struct DataWriter {
    scratch: BytesMut,
}

impl DataWriter {
    /// The scratch buffer's size.
    const SCRATCH: usize = 64 * 1024;

    /// Frames longer than this get a buffer of their own, so that a large frame does not
    /// move the scratch buffer on.
    const OWN_BUFFER: usize = 4 * 1024;

    /// A DATA frame's bytes, as [`encode_data`] gives them.
    #[inline]
    pub(crate) fn data(
        &mut self,
        seq: u64,
        ack: Option<u64>,
        text: bool,
        prompt: bool,
        payload: &[u8],
    ) -> Bytes {
        let header = DataHeader::new(seq, ack, text, prompt);
        let len = header.len + payload.len();
        if len > Self::OWN_BUFFER {
            return Bytes::from(header.frame(payload));
        }
        if self.scratch.capacity() < len && !self.scratch.try_reclaim(Self::SCRATCH) {
            // A frame written before is still held: a new buffer; the old one goes when
            // its last frame does.
            self.scratch = BytesMut::with_capacity(Self::SCRATCH);
        }
        self.scratch.extend_from_slice(header.bytes());
        self.scratch.extend_from_slice(payload);
        self.scratch.split().freeze()
    }
}

impl DataWriter {
    /// A BATCH of the DATA frames `entries` gives (sequence number, text, PROMPT,
    /// payload), written into the scratch buffer and handed out as one `Bytes`: one
    /// WebSocket message for all of them. `ack` goes on the first frame. `hint`: an upper
    /// bound of the batch's length ([`BATCH_OVERHEAD`](Self::BATCH_OVERHEAD) per entry
    /// beside its payload, and one byte).
    #[inline]
    pub(crate) fn batch<'a>(
        &mut self,
        ack: Option<u64>,
        hint: usize,
        entries: impl Iterator<Item = (u64, bool, bool, &'a [u8])>,
    ) -> Bytes {
        if self.scratch.capacity() < hint {
            let want = Self::SCRATCH.max(hint);
            if !self.scratch.try_reclaim(want) {
                self.scratch = BytesMut::with_capacity(want);
            }
        }
        self.scratch.extend_from_slice(&[BATCH]);
        let mut ack = ack;
        for (seq, text, prompt, payload) in entries {
            let header = DataHeader::new(seq, ack.take(), text, prompt);
            let mut len = [0; MAX_VARINT];
            let n = write_varint(&mut len, (header.len + payload.len()) as u64);
            self.scratch.extend_from_slice(&len[..n]);
            self.scratch.extend_from_slice(header.bytes());
            self.scratch.extend_from_slice(payload);
        }
        self.scratch.split().freeze()
    }

    /// The most bytes a batch entry adds besides its payload: its length and its DATA
    /// header.
    pub(crate) const BATCH_OVERHEAD: usize = 1 + 3 * MAX_VARINT;
}

/// Appends `value` as an unsigned LEB128 varint.
pub(super) fn put_varint(out: &mut Vec<u8>, value: u64) {
    let mut buf = [0; MAX_VARINT];
    let len = write_varint(&mut buf, value);
    out.extend_from_slice(&buf[..len]);
}

/// Writes `value` as an unsigned LEB128 varint at the start of `out` (room for
/// [`MAX_VARINT`] bytes); returns its length.
#[inline]
fn write_varint(out: &mut [u8], mut value: u64) -> usize {
    let mut len = 0;
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out[len] = low;
            return len + 1;
        }
        out[len] = low | 0x80;
        len += 1;
    }
}
