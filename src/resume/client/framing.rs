//! The DATA envelope, put on each message when it is written: the sink keeps the
//! application's messages as they were sent, and each write (the first, or a resend
//! after a reconnection) frames one with its sequence number, its PROMPT flag, and the
//! acknowledgement owed to the server at that moment.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::resume::frame::DataWriter;
use crate::sink::{Framing, Tracked};
use crate::Message;

use super::state::{lock, Cell};

/// The most DATA messages in one BATCH: the sink writes the messages it held back once
/// there are this many (or 4 KiB of them), or at a flush. 16 spread the cost of a
/// WebSocket message well enough to make a message cheaper than in plain mode; more
/// gains little.
const BATCH_MESSAGES: usize = 32;

/// The sink's [`Framing`] in resume mode; see the [module docs](self).
pub(super) struct ResumeFraming {
    cell: Cell,
    plain: Arc<AtomicBool>,
    writer: DataWriter,
}

impl ResumeFraming {
    pub(super) fn new(cell: Cell, plain: Arc<AtomicBool>) -> Self {
        ResumeFraming {
            cell,
            plain,
            writer: DataWriter::default(),
        }
    }

    /// The acknowledgement owed to the server, if any, marked sent: it goes out with the
    /// frame being written.
    #[inline]
    fn carry_ack(&self) -> Option<u64> {
        if !self.cell.owed.load(Ordering::Acquire) {
            return None;
        }
        let mut shared = lock(&self.cell);
        let ack = shared.inbound.owed()?;
        shared.ack_sent(ack, &self.cell);
        Some(ack)
    }
}

impl Framing for ResumeFraming {
    #[inline]
    fn frame(&mut self, message: &Message, seq: u64, prompt: bool) -> Message {
        if self.plain.load(Ordering::Relaxed) {
            // The server did not choose the subprotocol: messages go as they are.
            return message.clone();
        }
        let (text, payload): (bool, &[u8]) = match message {
            Message::Text(text) => (true, text.as_bytes()),
            Message::Binary(bytes) => (false, bytes),
            // Never tracked: the sink takes only Text and Binary as DATA.
            other => return other.clone(),
        };
        let ack = self.carry_ack();
        Message::Binary(self.writer.data(seq, ack, text, prompt, payload))
    }

    #[inline]
    fn batch_limit(&self) -> usize {
        if self.plain.load(Ordering::Relaxed) {
            0
        } else {
            BATCH_MESSAGES
        }
    }

    /// One BATCH of DATA frames, carrying the acknowledgement owed on the first.
    fn frame_batch(
        &mut self,
        entries: &mut dyn Iterator<Item = Tracked<'_>>,
        count: usize,
        bytes: usize,
    ) -> Message {
        let ack = self.carry_ack();
        let hint = 1 + bytes + count * DataWriter::BATCH_OVERHEAD;
        let entries = entries.filter_map(|t| match t.message {
            Message::Text(text) => Some((t.id, true, t.prompt, text.as_bytes())),
            Message::Binary(bytes) => Some((t.id, false, t.prompt, &bytes[..])),
            // Never tracked: the sink takes only Text and Binary as DATA.
            _ => None,
        });
        Message::Binary(self.writer.batch(ack, hint, entries))
    }
}
