//! Flushed messages waiting for their confirmation (see `confirm.rs` of the sink): the
//! batches a flush records, what confirms them, and what a connection's end rewinds.

use tokio::time::Instant;

use super::{Entry, Outbox, UndeliveredReason};

/// One flush of untracked messages that waits for its confirmation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Batch {
    /// How many untracked entries it flushed.
    pub(super) untracked: usize,
    /// When.
    pub(super) at: Instant,
    /// Its number: flushes are numbered from 1 on each outbox.
    pub(super) seq: u64,
}

/// What the end of a connection did to the outbox.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rewound {
    /// Volatile messages dropped with the connection.
    pub(crate) dropped: usize,
    /// Flushed messages not yet confirmed, to be written again (possible duplicates).
    pub(crate) unconfirmed: usize,
    /// Flushed messages not confirmed a second time, taken as delivered.
    pub(crate) presumed: usize,
}

impl Outbox {
    /// Everything held is flushed and waits only for its confirmation (or nothing is
    /// held): a new batch of writes starts.
    #[inline]
    pub(crate) fn only_unconfirmed(&self) -> bool {
        self.queue.len() == self.unconfirmed
    }

    /// Flushed messages that wait for their confirmation.
    pub(crate) fn unconfirmed(&self) -> usize {
        self.unconfirmed
    }

    /// Whether a message with an outcome waits for its confirmation.
    pub(crate) fn unconfirmed_outcomes(&self) -> bool {
        self.tickets > 0
            && self
                .queue
                .iter()
                .take(self.flushed)
                .any(|e| e.id.is_none() && e.ticket.is_some())
    }

    /// When the oldest unconfirmed flush happened.
    pub(crate) fn oldest_unconfirmed(&self) -> Option<Instant> {
        self.batches.front().map(|b| b.at)
    }

    /// The flushed untracked entries stay, as one batch, until confirmed.
    pub(super) fn flushed_unconfirmed(&mut self, at: Instant) {
        let (from, upto) = (self.flushed, self.written);
        if upto == from {
            return;
        }
        let untracked = if self.tracked == 0 {
            upto - from
        } else {
            self.queue
                .range(from..upto)
                .filter(|e| e.id.is_none())
                .count()
        };
        if untracked > 0 {
            self.last_batch += 1;
            self.batches.push_back(Batch {
                untracked,
                at,
                seq: self.last_batch,
            });
            self.unconfirmed += untracked;
        }
        self.flushed = upto;
        self.recount_unflushed();
        // The window is bounded as the unflushed part is: past it, the oldest are taken
        // as delivered, without a confirmation (counted, see `take_presumed`).
        while self.unconfirmed > self.max_messages {
            self.presumed_at_bound += self.confirm_oldest();
        }
    }

    /// How many flushed messages were taken as delivered without a confirmation because
    /// more than the outbox bound waited for one, since the last call.
    pub(crate) fn take_presumed(&mut self) -> usize {
        std::mem::take(&mut self.presumed_at_bound)
    }

    /// Confirms every batch flushed at or before `before`: its untracked entries are
    /// delivered. Returns how many.
    pub(crate) fn confirm(&mut self, before: Instant) -> usize {
        let mut confirmed = 0;
        while self.batches.front().is_some_and(|b| b.at <= before) {
            confirmed += self.confirm_oldest();
        }
        confirmed
    }

    /// Confirms every batch up to number `through` (the peer read them). Returns how
    /// many entries.
    pub(crate) fn confirm_through(&mut self, through: u64) -> usize {
        let mut confirmed = 0;
        while self.batches.front().is_some_and(|b| b.seq <= through) {
            confirmed += self.confirm_oldest();
        }
        confirmed
    }

    /// The newest batch waiting for its confirmation, if any: what a fence sent now
    /// covers.
    pub(crate) fn newest_unconfirmed(&self) -> Option<u64> {
        self.batches.back().map(|b| b.seq)
    }

    /// Confirms everything flushed (the closing handshake is done).
    pub(crate) fn confirm_all(&mut self) {
        while !self.batches.is_empty() {
            self.confirm_oldest();
        }
    }

    /// Confirms the oldest batch: its untracked entries, the first ones of the flushed
    /// prefix, leave delivered.
    fn confirm_oldest(&mut self) -> usize {
        let Some(batch) = self.batches.pop_front() else {
            return 0;
        };
        self.unconfirmed -= batch.untracked;
        if self.tracked > 0 {
            // The batch's untracked entries are the first untracked ones of the prefix.
            let (untracked, mut picked) = (batch.untracked, 0);
            return self.deliver_flushed_where(|e| {
                let pick = e.id.is_none() && picked < untracked;
                picked += usize::from(pick);
                pick
            });
        }
        // Nothing tracked: the batch is the front of the queue.
        let mut removed = 0;
        for _ in 0..batch.untracked {
            if let Some(mut entry) = self.queue.pop_front() {
                removed += 1;
                self.arena.release(&entry.kept);
                Self::delivered(
                    &mut self.ledger,
                    &mut self.tickets,
                    &mut self.volatile,
                    &mut entry,
                );
            }
        }
        self.written -= removed;
        self.flushed -= removed;
        removed
    }

    /// The live connection ended: what was flushed at or before `confirmed_before` is
    /// delivered (`None`: nothing more is), and so (`presume`: the peer closed) is what
    /// was written again after an earlier end and still not confirmed; its volatile
    /// entries are dropped (their outcomes fail with
    /// [`UndeliveredReason::ConnectionLost`]) and the rest is to be written again.
    pub(crate) fn connection_lost(
        &mut self,
        confirmed_before: Option<Instant>,
        presume: bool,
    ) -> Rewound {
        if let Some(before) = confirmed_before {
            self.confirm(before);
        }
        let presumed = if presume && self.unconfirmed > 0 {
            self.presume_resent()
        } else {
            0
        };
        // What stays of the flushed prefix (volatile entries go) is written again.
        let mut unconfirmed = 0;
        if self.unconfirmed > 0 {
            for entry in self.queue.iter_mut().take(self.flushed) {
                if entry.id.is_none() && !entry.volatile {
                    entry.resent = true;
                    unconfirmed += 1;
                }
            }
        }
        let dropped = if self.volatile == 0 {
            0
        } else {
            self.remove_where(|_, e| e.volatile, || UndeliveredReason::ConnectionLost)
        };
        self.rewind();
        Rewound {
            dropped,
            unconfirmed,
            presumed,
        }
    }

    /// The flushed, unconfirmed entries that were already written again once leave as
    /// delivered: a peer that reads one message and closes before answering the Ping
    /// behind it would otherwise get it again and again. Returns how many.
    fn presume_resent(&mut self) -> usize {
        self.deliver_flushed_where(|e| e.id.is_none() && e.resent)
    }

    /// Removes the flushed entries `pick` chooses (in order), as delivered: their copies
    /// released, their outcomes resolved. Returns how many.
    fn deliver_flushed_where(&mut self, mut pick: impl FnMut(&Entry) -> bool) -> usize {
        let (mut index, mut delivered) = (0, 0);
        let flushed = self.flushed;
        let (ledger, tickets, volatile, arena) = (
            &mut self.ledger,
            &mut self.tickets,
            &mut self.volatile,
            &mut self.arena,
        );
        self.queue.retain_mut(|e| {
            let chosen = index < flushed && pick(e);
            index += 1;
            if chosen {
                delivered += 1;
                arena.release(&e.kept);
                Self::delivered(ledger, tickets, volatile, e);
            }
            !chosen
        });
        self.flushed -= delivered;
        self.written -= delivered;
        delivered
    }
}
