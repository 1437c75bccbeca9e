//! Applying a cumulative acknowledgement to the tracked entries.

use super::{Entry, Outbox, UndeliveredReason};

impl Outbox {
    /// Applies a cumulative acknowledgement: drops every tracked entry with an id at or
    /// below `acked`, and passes the ones let go of (see `released.rs`). Returns how many
    /// it dropped or passed.
    pub(crate) fn acknowledge(&mut self, acked: u64) -> usize {
        let passed = if self.released.is_empty() {
            0
        } else {
            self.released.acknowledge(acked)
        };
        if self.tracked == 0 {
            return passed;
        }
        let dropped = self.acknowledge_held(acked);
        self.check_deferred();
        passed + dropped
    }

    /// Drops every tracked entry with an id at or below `acked`. Returns how many.
    fn acknowledge_held(&mut self, acked: u64) -> usize {
        let popped = self.pop_acknowledged(acked);
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
        let mut removed_bytes = 0;
        let (written, flushed) = (self.written, self.flushed);
        let (ledger, tickets, volatile) = (&mut self.ledger, &mut self.tickets, &mut self.volatile);
        self.queue.retain_mut(|e| {
            let drop = e.id.is_some_and(|id| id <= acked);
            if drop {
                Self::delivered(ledger, tickets, volatile, e);
                removed += 1;
                removed_bytes += e.kept.len();
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
        self.tracked_bytes -= removed_bytes;
        popped + removed
    }
}

impl Outbox {
    /// The common case of [`acknowledge`](Self::acknowledge): the acknowledged entries
    /// are the first ones, tracked in order. Measures them in one look, then drops them
    /// together. Returns how many.
    #[inline]
    fn pop_acknowledged(&mut self, acked: u64) -> usize {
        let (mut count, mut bytes, mut unflushed) = (0, 0, 0);
        for entry in &self.queue {
            match entry.id {
                Some(id) if id <= acked => {}
                _ => break,
            }
            let len = entry.kept.len();
            bytes += len;
            if count >= self.flushed {
                unflushed += len;
            }
            count += 1;
        }
        if count == 0 {
            return 0;
        }
        self.flushed -= count.min(self.flushed);
        self.written -= count.min(self.written);
        self.unflushed_bytes -= unflushed;
        self.tracked -= count;
        self.tracked_bytes -= bytes;
        if self.tickets == 0 && self.volatile == 0 {
            self.queue.drain(..count);
        } else {
            let (ledger, tickets, volatile) =
                (&mut self.ledger, &mut self.tickets, &mut self.volatile);
            for mut entry in self.queue.drain(..count) {
                Self::delivered(ledger, tickets, volatile, &mut entry);
            }
        }
        count
    }

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
        self.tracked_bytes = 0;
        self.released.disable();
        self.ids_in_order = true;
        self.last_id = None;
        self.rewind();
        dropped
    }
}
