//! The bounded, ordered buffer of messages the sink still owes the peer.
//!
//! An entry is either *untracked* (kept until a flush that includes it succeeds) or
//! *tracked* by an acknowledgement id (kept until the peer acknowledges it). After a
//! reconnection every entry is written again, in the original order.
//!
//! ```text
//! queue:  [ flushed on this connection | written, not flushed | not written ]
//!          0 ..................... flushed ............. written ........ len
//! ```
//! A successful flush drops the untracked entries of the flushed prefix; an
//! acknowledgement drops the tracked entries with an id at or below it, wherever they are.

use std::collections::VecDeque;

use crate::Message;

#[derive(Debug)]
struct Entry {
    message: Message,
    id: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Outbox {
    queue: VecDeque<Entry>,
    written: usize,
    flushed: usize,
    /// Bytes of the entries at `flushed..`.
    unflushed_bytes: usize,
    tracked: usize,
    /// Tracked ids were pushed in increasing order (so acknowledged ones form a prefix
    /// of the tracked entries).
    ids_in_order: bool,
    last_id: Option<u64>,
    max_messages: usize,
    max_bytes: usize,
}

impl Outbox {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Outbox {
            // Grows with use: an idle connection should not hold the bound's worth.
            queue: VecDeque::new(),
            written: 0,
            flushed: 0,
            unflushed_bytes: 0,
            tracked: 0,
            ids_in_order: true,
            last_id: None,
            max_messages: max_messages.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    /// The unflushed part reached its bound: flush before accepting more.
    pub(crate) fn needs_flush(&self) -> bool {
        self.queue.len() - self.flushed >= self.max_messages
            || self.unflushed_bytes >= self.max_bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Every message still owed: unflushed, or tracked and unacknowledged.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Tracked messages not yet acknowledged.
    pub(crate) fn tracked(&self) -> usize {
        self.tracked
    }

    pub(crate) fn push(&mut self, message: Message, id: Option<u64>) {
        if let Some(id) = id {
            if self.last_id.is_some_and(|last| id <= last) {
                self.ids_in_order = false;
            }
            self.last_id = Some(id);
        }
        self.unflushed_bytes += message.len();
        self.tracked += usize::from(id.is_some());
        self.queue.push_back(Entry { message, id });
    }

    /// The next message not yet written to the current connection.
    pub(crate) fn next_unwritten(&self) -> Option<&Message> {
        self.queue.get(self.written).map(|e| &e.message)
    }

    pub(crate) fn mark_written(&mut self) {
        debug_assert!(self.written < self.queue.len());
        self.written += 1;
    }

    pub(crate) fn all_written(&self) -> bool {
        self.written == self.queue.len()
    }

    /// The connection was lost: everything still owed is to be written again.
    pub(crate) fn rewind(&mut self) {
        self.written = 0;
        self.flushed = 0;
        self.unflushed_bytes = self.queue.iter().map(|e| e.message.len()).sum();
    }

    /// A flush succeeded: what was written is in the socket. Untracked entries are done;
    /// tracked ones wait for their acknowledgement.
    pub(crate) fn flushed(&mut self) {
        let upto = self.written;
        if self.tracked == self.queue.len() {
            // Everything is tracked: nothing to drop, only the flushed mark moves.
            self.flushed = upto;
            self.unflushed_bytes = self.queue.iter().skip(upto).map(|e| e.message.len()).sum();
            return;
        }
        if self.tracked == 0 {
            self.queue.drain(..upto);
            self.written = 0;
            self.flushed = 0;
        } else {
            let mut index = 0;
            let mut removed = 0;
            self.queue.retain(|e| {
                let keep = index >= upto || e.id.is_some();
                removed += usize::from(!keep);
                index += 1;
                keep
            });
            self.written = upto - removed;
            self.flushed = self.written;
        }
        self.unflushed_bytes = self
            .queue
            .iter()
            .skip(self.flushed)
            .map(|e| e.message.len())
            .sum();
    }

    /// Applies a cumulative acknowledgement: drops every tracked entry with an id at or
    /// below `acked`. Returns how many were dropped.
    pub(crate) fn acknowledge(&mut self, acked: u64) -> usize {
        if self.tracked == 0 {
            return 0;
        }
        // The common case: tracked ids in order at the front. Pop them.
        let mut popped = 0;
        while let Some(front) = self.queue.front() {
            match front.id {
                Some(id) if id <= acked => {}
                _ => break,
            }
            let len = front.message.len();
            self.queue.pop_front();
            if self.flushed > 0 {
                self.flushed -= 1;
                self.written -= 1;
            } else {
                if self.written > 0 {
                    self.written -= 1;
                }
                self.unflushed_bytes -= len;
            }
            self.tracked -= 1;
            popped += 1;
        }
        // Done unless an acknowledged id may still sit further back: behind an untracked
        // entry, or out of order.
        match self.queue.front() {
            Some(Entry { id: Some(id), .. }) if *id > acked && self.ids_in_order => return popped,
            None => return popped,
            _ => {}
        }
        if self.tracked == 0 {
            return popped;
        }
        let (mut index, mut removed) = (0, 0);
        let (mut before_written, mut before_flushed, mut unflushed_bytes) = (0, 0, 0);
        let (written, flushed) = (self.written, self.flushed);
        self.queue.retain(|e| {
            let drop = e.id.is_some_and(|id| id <= acked);
            if drop {
                removed += 1;
                before_written += usize::from(index < written);
                before_flushed += usize::from(index < flushed);
            } else if index >= flushed {
                unflushed_bytes += e.message.len();
            }
            index += 1;
            !drop
        });
        self.written -= before_written;
        self.flushed -= before_flushed;
        self.unflushed_bytes = unflushed_bytes;
        self.tracked -= removed;
        popped + removed
    }

    /// Hands every message still owed back, oldest first.
    pub(crate) fn take_all(&mut self) -> Vec<Message> {
        self.written = 0;
        self.flushed = 0;
        self.unflushed_bytes = 0;
        self.tracked = 0;
        self.ids_in_order = true;
        self.last_id = None;
        self.queue.drain(..).map(|e| e.message).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(o: &mut Outbox) -> Vec<String> {
        o.rewind();
        let mut seen = Vec::new();
        while let Some(m) = o.next_unwritten() {
            seen.push(m.to_text().unwrap().to_owned());
            o.mark_written();
        }
        seen
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let mut o = Outbox::new(3, 10);
        o.push(Message::text("ab"), None);
        o.push(Message::text("cd"), None);
        assert!(!o.needs_flush());
        o.push(Message::text("ef"), None);
        assert!(o.needs_flush());
        let mut o = Outbox::new(100, 10);
        o.push(Message::binary(vec![0u8; 10]), None);
        assert!(o.needs_flush());
    }

    #[test]
    fn rewind_rewrites_in_order_and_flush_clears_untracked() {
        let mut o = Outbox::new(10, 1000);
        for t in ["a", "b", "c"] {
            o.push(Message::text(t), None);
        }
        o.mark_written();
        o.mark_written();
        assert_eq!(texts(&mut o), ["a", "b", "c"]);
        o.flushed();
        assert!(o.is_empty());
        assert!(!o.needs_flush());
    }

    #[test]
    fn tracked_entries_survive_a_flush_until_acknowledged() {
        let mut o = Outbox::new(2, 1000);
        o.push(Message::text("t1"), Some(1));
        o.push(Message::text("u"), None);
        o.push(Message::text("t2"), Some(2));
        assert!(o.needs_flush());
        for _ in 0..3 {
            o.mark_written();
        }
        o.flushed();
        assert!(
            !o.needs_flush(),
            "flushed tracked entries do not count as unflushed"
        );
        assert_eq!(o.len(), 2);
        assert_eq!(o.tracked(), 2);
        o.push(Message::text("t3"), Some(3));
        // Cumulative: 2 acknowledges 1 and 2, not 3.
        assert_eq!(o.acknowledge(2), 2);
        assert_eq!(o.tracked(), 1);
        // A lower acknowledgement than one already applied changes nothing.
        assert_eq!(o.acknowledge(1), 0);
        assert_eq!(texts(&mut o), ["t3"]);
    }

    #[test]
    fn out_of_order_ids_and_untracked_fronts_still_acknowledge_everything_at_or_below() {
        let mut o = Outbox::new(100, 1000);
        o.push(Message::text("u"), None);
        o.push(Message::text("t5"), Some(5));
        o.push(Message::text("t3"), Some(3));
        o.push(Message::text("t9"), Some(9));
        assert_eq!(o.acknowledge(5), 2);
        assert_eq!(texts(&mut o), ["u", "t9"]);
        assert_eq!(o.tracked(), 1);
    }

    #[test]
    fn in_order_acknowledgement_pops_the_front_and_keeps_counts() {
        let mut o = Outbox::new(100, 1000);
        for i in 1..=6 {
            o.push(Message::text(format!("t{i}")), Some(i));
        }
        for _ in 0..4 {
            o.mark_written();
        }
        o.flushed(); // t1..t4 flushed, t5 t6 not written
        assert!(!o.needs_flush());
        assert_eq!(o.acknowledge(5), 5);
        assert_eq!(o.tracked(), 1);
        assert_eq!(o.next_unwritten().unwrap().to_text().unwrap(), "t6");
        o.mark_written();
        assert!(o.all_written());
    }

    #[test]
    fn acknowledging_keeps_the_written_index_consistent() {
        let mut o = Outbox::new(100, 1000);
        o.push(Message::text("t1"), Some(1));
        o.push(Message::text("u1"), None);
        o.push(Message::text("t2"), Some(2));
        o.push(Message::text("u2"), None);
        o.mark_written();
        o.mark_written();
        o.mark_written(); // t1 u1 t2 written, u2 not
        assert_eq!(o.acknowledge(2), 2);
        // u1 is still written; u2 is next.
        assert_eq!(o.next_unwritten().unwrap().to_text().unwrap(), "u2");
        o.mark_written();
        assert!(o.all_written());
        o.flushed();
        assert!(o.is_empty());
    }
}
