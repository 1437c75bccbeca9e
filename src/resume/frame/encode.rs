//! Frames to bytes.

use super::*;

impl Frame {
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

/// Appends `value` as an unsigned LEB128 varint.
pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
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
