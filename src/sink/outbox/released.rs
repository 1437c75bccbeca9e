//! Tracked messages the outbox let go of before the peer acknowledged them: given up
//! (a `close()` that timed out, a sink that failed for good), taken back
//! (`take_undelivered`), or discarded before a resend. The peer may hold them all the
//! same, received and waiting for its application, and it counts them against the
//! window it grants until its acknowledgement passes them. So a protocol with a window
//! (resume mode) counts them too: [`Outbox::unacked`](super::Outbox::unacked) includes
//! them until then.
//!
//! Kept only for such a protocol ([`Outbox::count_released`](super::Outbox::count_released)):
//! its ids increase, and its peer acknowledges cumulatively, so every entry here leaves
//! once an acknowledgement reaches its id. Bounded by the window: no message is taken
//! while these and the held ones fill it.

use std::collections::VecDeque;

use super::Unacked;

/// One message let go of: its id and payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Let {
    id: u64,
    bytes: usize,
}

/// The tracked messages let go of and not yet acknowledged, by id.
#[derive(Debug, Default)]
pub(super) struct Released {
    /// In increasing id order.
    entries: VecDeque<Let>,
    bytes: usize,
    /// Counted at all (see the module docs).
    enabled: bool,
}

impl Released {
    pub(super) fn enable(&mut self) {
        self.enabled = true;
    }

    /// Counting ends (the protocol ended): what was counted is forgotten.
    pub(super) fn disable(&mut self) {
        *self = Released::default();
    }

    /// The entry tracked under `id`, of `bytes` payload bytes, left unacknowledged.
    pub(super) fn record(&mut self, id: u64, bytes: usize) {
        if !self.enabled {
            return;
        }
        let at = match self.entries.back() {
            Some(last) if last.id > id => self.entries.partition_point(|e| e.id < id),
            _ => self.entries.len(),
        };
        self.entries.insert(at, Let { id, bytes });
        self.bytes += bytes;
    }

    /// The peer acknowledged everything up to `acked`. Returns how many it passed.
    #[inline]
    pub(super) fn acknowledge(&mut self, acked: u64) -> usize {
        let before = self.entries.len();
        while let Some(first) = self.entries.front() {
            if first.id > acked {
                break;
            }
            self.bytes -= first.bytes;
            self.entries.pop_front();
        }
        before - self.entries.len()
    }

    #[inline]
    pub(super) fn unacked(&self) -> Unacked {
        Unacked {
            messages: self.entries.len(),
            bytes: self.bytes,
        }
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(released: &Released) -> (usize, usize) {
        let unacked = released.unacked();
        (unacked.messages, unacked.bytes)
    }

    #[test]
    fn nothing_is_counted_unless_enabled() {
        let mut released = Released::default();
        released.record(1, 10);
        assert_eq!(counted(&released), (0, 0));
    }

    #[test]
    fn an_acknowledgement_passes_the_entries_at_or_below_it_whatever_order_they_came_in() {
        let mut released = Released::default();
        released.enable();
        // Given up first (2, 4), taken back later (3, 5).
        for (id, bytes) in [(2, 20), (4, 40), (3, 30), (5, 50)] {
            released.record(id, bytes);
        }
        assert_eq!(counted(&released), (4, 140));
        assert_eq!(released.acknowledge(3), 2);
        assert_eq!(counted(&released), (2, 90));
        assert_eq!(released.acknowledge(9), 2);
        assert_eq!(counted(&released), (0, 0));
        assert!(released.is_empty());
    }

    #[test]
    fn disabling_forgets_what_was_counted() {
        let mut released = Released::default();
        released.enable();
        released.record(1, 10);
        released.disable();
        released.record(2, 10);
        assert_eq!(counted(&released), (0, 0));
    }
}
