//! The DATA envelope, put on each message when it is written: the sink keeps the
//! application's messages as they were sent, and each write (the first, or a resend
//! after a reconnection) frames one with its sequence number, its PROMPT flag, and the
//! acknowledgement owed to the server at that moment.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::resume::frame::DataWriter;
use crate::sink::Framing;
use crate::Message;

use super::state::{lock, Cell};

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
}
