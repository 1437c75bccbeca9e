//! Applying a cumulative acknowledgement to the tracked entries.

use super::{Entry, Outbox, UndeliveredReason};

impl Outbox {
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
            let len = front.kept.len();
            if let Some(mut entry) = self.queue.pop_front() {
                Self::delivered(
                    &mut self.ledger,
                    &mut self.tickets,
                    &mut self.volatile,
                    &mut entry,
                );
            }
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
        let (ledger, tickets, volatile) = (&mut self.ledger, &mut self.tickets, &mut self.volatile);
        self.queue.retain_mut(|e| {
            let drop = e.id.is_some_and(|id| id <= acked);
            if drop {
                Self::delivered(ledger, tickets, volatile, e);
                removed += 1;
                before_written += usize::from(index < written);
                before_flushed += usize::from(index < flushed);
            } else if index >= flushed {
                unflushed_bytes += e.kept.len();
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
}

impl Outbox {
    /// The protocol layered on acknowledged mode ended (resume mode fell back to plain
    /// mode): its control messages leave, and the rest are kept as untracked messages
    /// are, to be written again from the first, as they are. Returns how many control
    /// messages were dropped. Called with no connection live.
    pub(crate) fn untrack(&mut self) -> usize {
        let dropped = self.remove_where(|_, e| e.control, || UndeliveredReason::Discarded);
        for entry in &mut self.queue {
            entry.id = None;
            entry.prompt = false;
        }
        self.tracked = 0;
        self.ids_in_order = true;
        self.last_id = None;
        self.rewind();
        dropped
    }
}
