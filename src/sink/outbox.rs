//! The bounded buffer of accepted but not yet flushed messages.
//!
//! Every message the sink accepts stays here until a flush that includes it succeeds.
//! `written` counts how many of them have been handed to the current connection; after
//! a reconnection it goes back to zero and they are all written again, in order.

use std::collections::VecDeque;

use crate::Message;

#[derive(Debug)]
pub(crate) struct Outbox {
    queue: VecDeque<Message>,
    written: usize,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
}

impl Outbox {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Outbox {
            queue: VecDeque::with_capacity(max_messages.clamp(1, 1024)),
            written: 0,
            bytes: 0,
            max_messages: max_messages.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// No room for another message: the sink flushes before accepting more.
    pub(crate) fn is_full(&self) -> bool {
        self.queue.len() >= self.max_messages || self.bytes >= self.max_bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn push(&mut self, message: Message) {
        self.bytes += message.len();
        self.queue.push_back(message);
    }

    /// The next message not yet written to the current connection.
    pub(crate) fn next_unwritten(&self) -> Option<&Message> {
        self.queue.get(self.written)
    }

    pub(crate) fn mark_written(&mut self) {
        debug_assert!(self.written < self.queue.len());
        self.written += 1;
    }

    pub(crate) fn all_written(&self) -> bool {
        self.written == self.queue.len()
    }

    /// The connection was lost: everything unflushed is to be written again.
    pub(crate) fn rewind(&mut self) {
        self.written = 0;
    }

    /// A flush succeeded after every message was written: they are delivered to the socket.
    pub(crate) fn flushed(&mut self) {
        debug_assert!(self.all_written());
        self.queue.clear();
        self.written = 0;
        self.bytes = 0;
    }

    /// Hands every unflushed message back, oldest first.
    pub(crate) fn take_all(&mut self) -> Vec<Message> {
        self.written = 0;
        self.bytes = 0;
        self.queue.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_count_and_bytes() {
        let mut o = Outbox::new(3, 10);
        o.push(Message::text("ab"));
        o.push(Message::text("cd"));
        assert!(!o.is_full());
        o.push(Message::text("ef"));
        assert!(o.is_full());
        let mut o = Outbox::new(100, 10);
        o.push(Message::binary(vec![0u8; 10]));
        assert!(o.is_full());
    }

    #[test]
    fn rewind_rewrites_in_order() {
        let mut o = Outbox::new(10, 1000);
        for t in ["a", "b", "c"] {
            o.push(Message::text(t));
        }
        o.mark_written();
        o.mark_written();
        o.rewind();
        let mut seen = Vec::new();
        while let Some(m) = o.next_unwritten() {
            seen.push(m.to_text().unwrap().to_owned());
            o.mark_written();
        }
        assert_eq!(seen, ["a", "b", "c"]);
        o.flushed();
        assert!(o.is_empty());
    }
}
