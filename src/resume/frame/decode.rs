//! Bytes to frames: every input gives a frame or a typed error, never a panic.

use super::*;
use crate::resume::gap::GapReason;

/// Decodes one frame.
pub(crate) fn decode(bytes: &Bytes) -> Result<Frame, ResumeViolation> {
    let (&first, _) = bytes.split_first().ok_or(ResumeViolation::Empty)?;
    let kind = first & 0x0f;
    let flags = first & 0xf0;
    let allowed = match kind {
        DATA => DATA_TEXT | DATA_ACK | DATA_PROMPT,
        ACK => ACK_PROMPT,
        HELLO => HELLO_SESSION | HELLO_OPEN,
        WELCOME => WELCOME_RESUMED,
        GAP => GAP_END,
        REPLAY | BYE | BATCH => 0,
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
        DATA => return data(bytes, flags, &mut r),
        BATCH => return Ok(Frame::Batch(bytes.slice(1..))),
        ACK if flags & ACK_PROMPT != 0 => Frame::Prompt(r.varint("acknowledgement")?),
        ACK => Frame::Ack(r.varint("acknowledgement")?),
        HELLO => hello(flags, &mut r)?,
        WELCOME => welcome(flags, &mut r)?,
        GAP => gap(flags, &mut r)?,
        REPLAY => Frame::Replay(r.position("replay start")?),
        _ => Frame::Bye,
    };
    if r.pos != r.buf.len() {
        return Err(ResumeViolation::TrailingBytes { kind });
    }
    Ok(frame)
}

/// DATA: the payload is the rest of the message, shared with it (no copy).
fn data(bytes: &Bytes, flags: u8, r: &mut Reader<'_>) -> Result<Frame, ResumeViolation> {
    let seq = r.position("sequence number")?;
    let ack = if flags & DATA_ACK != 0 {
        Some(r.varint("acknowledgement")?)
    } else {
        None
    };
    let text = flags & DATA_TEXT != 0;
    let prompt = flags & DATA_PROMPT != 0;
    let payload = bytes.slice(1 + r.pos..);
    if text && std::str::from_utf8(&payload).is_err() {
        return Err(ResumeViolation::InvalidUtf8);
    }
    Ok(Frame::Data(Data {
        seq,
        ack,
        text,
        prompt,
        payload,
    }))
}

/// The DATA frames of a BATCH body, in order, each payload copied out of it (a message
/// waiting for the application holds only its own bytes). An entry that is not a
/// well-formed DATA frame (a BATCH in a BATCH included) is a violation; a length past the
/// body's end ends the iteration.
#[cfg(any(feature = "server", test))]
pub(crate) struct BatchIter {
    body: Bytes,
    pos: usize,
}

#[cfg(any(feature = "server", test))]
impl BatchIter {
    pub(crate) fn new(body: Bytes) -> Self {
        BatchIter { body, pos: 0 }
    }
}

#[cfg(any(feature = "server", test))]
impl Iterator for BatchIter {
    type Item = Result<Data, ResumeViolation>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.body.len() {
            return None;
        }
        let mut r = Reader {
            buf: &self.body[self.pos..],
            pos: 0,
        };
        let len = match r.varint("batch entry length") {
            // Past the address space: past the body too.
            Ok(len) => usize::try_from(len).unwrap_or(usize::MAX),
            Err(e) => {
                self.pos = self.body.len();
                return Some(Err(e));
            }
        };
        let start = self.pos + r.pos;
        let Some(end) = start.checked_add(len).filter(|&end| end <= self.body.len()) else {
            self.pos = self.body.len();
            return Some(Err(ResumeViolation::Truncated {
                field: "batch entry",
            }));
        };
        self.pos = end;
        let inner = self.body.slice(start..end);
        Some(match decode(&inner) {
            Ok(Frame::Data(mut data)) => {
                // Its own bytes: a slice would keep the whole BATCH alive as long as the
                // message waits for the application, beyond what the window counts.
                data.payload = Bytes::copy_from_slice(&data.payload);
                Ok(data)
            }
            Ok(_) => Err(ResumeViolation::Unexpected { kind: "BATCH" }),
            Err(e) => Err(e),
        })
    }
}

fn hello(flags: u8, r: &mut Reader<'_>) -> Result<Frame, ResumeViolation> {
    r.version()?;
    let claim = match (flags & HELLO_SESSION != 0, flags & HELLO_OPEN != 0) {
        (false, false) => Claim::New,
        (false, true) => Claim::Open(r.session()?),
        (true, false) => {
            let id = r.session()?;
            match r.epoch()? {
                0 => Claim::Reopen(id),
                epoch => Claim::Resume(id, epoch),
            }
        }
        // A session to resume, and a new one: the two say different things.
        (true, true) => return Err(ResumeViolation::ReservedFlags { kind: HELLO, flags }),
    };
    Ok(Frame::Hello(Hello {
        claim,
        recv_next: r.position("recv_next")?,
        send_first: r.position("send_first")?,
        window: r.window()?,
    }))
}

fn welcome(flags: u8, r: &mut Reader<'_>) -> Result<Frame, ResumeViolation> {
    r.version()?;
    let session = r.session()?;
    let epoch = r.epoch()?;
    Ok(Frame::Welcome(Welcome {
        session,
        epoch,
        resumed: flags & WELCOME_RESUMED != 0,
        recv_next: r.position("recv_next")?,
        window: r.window()?,
    }))
}

fn gap(flags: u8, r: &mut Reader<'_>) -> Result<Frame, ResumeViolation> {
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
    let reason = GapReason::from_code(code).ok_or(ResumeViolation::UnknownGapReason(code))?;
    Ok(Frame::Gap(Gap { from, to, reason }))
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
