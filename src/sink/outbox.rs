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
//! When flushes are not confirmed (`ConfirmBy::Flush`), a successful flush drops the
//! untracked entries of the flushed prefix. Otherwise (see `confirm.rs`) they stay
//! there, each flush recorded as a [`Batch`], until the peer's Pong confirms it
//! ([`Outbox::confirm_through`]) or a quiet look does ([`Outbox::confirm`]); when the
//! connection ends first, the ones not confirmed are written again. An acknowledgement
//! drops the tracked entries with an id at or below it, wherever they are.
//!
//! An entry may also carry a ticket in the outcome [`Ledger`] (settled when the entry
//! leaves the outbox, whichever way) and be volatile (dropped when the connection it
//! belongs to ends: every volatile entry still here when a live connection ends belonged
//! to that connection, having been accepted while it was up or before it came up).

use std::collections::VecDeque;

use tokio::time::Instant;

use super::kept::{Arena, Kept};
use super::outcome::{Ledger, Promise, Ticket, Undelivered, UndeliveredReason};
use crate::Message;

/// What a message sent with an outcome, or volatile, carries into the outbox.
pub(crate) struct Tag {
    pub(crate) volatile: bool,
    pub(crate) promise: Option<Promise>,
}

#[derive(Debug)]
struct Entry {
    kept: Kept,
    id: Option<u64>,
    ticket: Option<Ticket>,
    volatile: bool,
    /// Flushed, not confirmed, and written again once already after its connection ended.
    resent: bool,
}

/// One flush of untracked messages that waits for its confirmation.
#[derive(Debug, Clone, Copy)]
struct Batch {
    /// How many untracked entries it flushed.
    untracked: usize,
    /// When.
    at: Instant,
    /// Its number: flushes are numbered from 1 on each outbox.
    seq: u64,
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

#[derive(Debug)]
pub(crate) struct Outbox {
    queue: VecDeque<Entry>,
    /// The flushes whose untracked entries wait at the front for their confirmation,
    /// oldest first.
    batches: VecDeque<Batch>,
    /// Untracked entries in `batches`.
    unconfirmed: usize,
    /// The number of the last batch recorded.
    last_batch: u64,
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
    /// Outcomes of the entries with a ticket.
    ledger: Ledger,
    /// Entries with a ticket.
    tickets: usize,
    /// Volatile entries.
    volatile: usize,
    /// The copies of small untracked payloads (see `kept.rs`).
    arena: Arena,
}

impl Outbox {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Outbox {
            // Grows with use: an idle connection should not hold the bound's worth.
            queue: VecDeque::new(),
            batches: VecDeque::new(),
            unconfirmed: 0,
            last_batch: 0,
            written: 0,
            flushed: 0,
            unflushed_bytes: 0,
            tracked: 0,
            ids_in_order: true,
            last_id: None,
            max_messages: max_messages.max(1),
            max_bytes: max_bytes.max(1),
            ledger: Ledger::default(),
            tickets: 0,
            volatile: 0,
            arena: Arena::default(),
        }
    }

    /// The unflushed part reached its bound: flush before accepting more.
    #[inline]
    pub(crate) fn needs_flush(&self) -> bool {
        self.queue.len() - self.flushed >= self.max_messages
            || self.unflushed_bytes >= self.max_bytes
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

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

    /// Every message still owed: unflushed, or tracked and unacknowledged.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    #[cfg(test)]
    fn arena_is_empty(&self) -> bool {
        self.arena.is_empty()
    }

    /// Tracked messages not yet acknowledged.
    pub(crate) fn tracked(&self) -> usize {
        self.tracked
    }

    /// Keeps `message`, about to be written, without taking it: small untracked payloads
    /// as a copy, the rest as a clone. `tag`: its outcome and volatility, if it has them.
    #[inline]
    pub(crate) fn push_copy(&mut self, message: &Message, id: Option<u64>, tag: Option<Tag>) {
        let kept = match id {
            None => self.arena.keep(message, self.max_bytes),
            Some(_) => Kept::Whole(message.clone()),
        };
        self.push_kept(kept, id, tag);
    }

    /// Keeps `message` itself. `tag`: its outcome and volatility, if it has them.
    #[inline]
    pub(crate) fn push(&mut self, message: Message, id: Option<u64>, tag: Option<Tag>) {
        self.push_kept(Kept::Whole(message), id, tag);
    }

    /// Opens the outcome of a tagged message (settled when its entry leaves the outbox)
    /// and counts it if volatile.
    #[inline]
    fn push_kept(&mut self, kept: Kept, id: Option<u64>, tag: Option<Tag>) {
        let (ticket, volatile) = match tag {
            None => (None, false),
            Some(Tag { volatile, promise }) => {
                let ticket = promise.map(|promise| self.ledger.open(promise));
                self.tickets += usize::from(ticket.is_some());
                self.volatile += usize::from(volatile);
                (ticket, volatile)
            }
        };
        self.push_entry(Entry {
            kept,
            id,
            ticket,
            volatile,
            resent: false,
        });
    }

    #[inline]
    fn push_entry(&mut self, entry: Entry) {
        let (len, id) = (entry.kept.len(), entry.id);
        if let Some(id) = id {
            if self.last_id.is_some_and(|last| id <= last) {
                self.ids_in_order = false;
            }
            self.last_id = Some(id);
        }
        self.unflushed_bytes += len;
        self.tracked += usize::from(id.is_some());
        self.queue.push_back(entry);
    }

    /// The next message not yet written to the current connection.
    #[inline]
    pub(crate) fn next_unwritten(&self) -> Option<Message> {
        self.queue
            .get(self.written)
            .map(|e| self.arena.message(&e.kept))
    }

    #[inline]
    pub(crate) fn mark_written(&mut self) {
        debug_assert!(self.written < self.queue.len());
        self.written += 1;
    }

    #[inline]
    pub(crate) fn all_written(&self) -> bool {
        self.written == self.queue.len()
    }

    /// The connection was lost: everything still owed is to be written again.
    pub(crate) fn rewind(&mut self) {
        self.batches.clear();
        self.unconfirmed = 0;
        self.written = 0;
        self.flushed = 0;
        self.unflushed_bytes = self.queue.iter().map(|e| e.kept.len()).sum();
    }

    /// A flush succeeded: what was written is in the socket. When flushes are confirmed
    /// (`at`: when), untracked entries wait for their confirmation; off, they are done.
    /// Tracked ones wait for their acknowledgement either way.
    pub(crate) fn flushed(&mut self, at: Option<Instant>) {
        match at {
            Some(at) => self.flushed_unconfirmed(at),
            None => self.flushed_done(),
        }
    }

    /// The flushed untracked entries stay, as one batch, until confirmed.
    fn flushed_unconfirmed(&mut self, at: Instant) {
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
        self.unflushed_bytes = self.queue.iter().skip(upto).map(|e| e.kept.len()).sum();
        // The window is bounded as the unflushed part is: past it, the oldest are taken
        // as delivered.
        while self.unconfirmed > self.max_messages {
            self.confirm_oldest();
        }
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
        let mut removed = 0;
        if self.tracked == 0 {
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
        } else {
            let mut index = 0;
            let flushed = self.flushed;
            let (ledger, tickets, volatile, arena) = (
                &mut self.ledger,
                &mut self.tickets,
                &mut self.volatile,
                &mut self.arena,
            );
            self.queue.retain_mut(|e| {
                let confirm = removed < batch.untracked && index < flushed && e.id.is_none();
                index += 1;
                if confirm {
                    removed += 1;
                    arena.release(&e.kept);
                    Self::delivered(ledger, tickets, volatile, e);
                }
                !confirm
            });
        }
        self.written -= removed;
        self.flushed -= removed;
        removed
    }

    /// Untracked entries are done; tracked ones wait for their acknowledgement.
    fn flushed_done(&mut self) {
        let upto = self.written;
        if self.tracked == self.queue.len() {
            // Everything is tracked: nothing to drop, only the flushed mark moves.
            self.flushed = upto;
            self.unflushed_bytes = self.queue.iter().skip(upto).map(|e| e.kept.len()).sum();
            return;
        }
        if self.tracked == 0 {
            if self.tickets == 0 && self.volatile == 0 {
                for entry in self.queue.drain(..upto) {
                    self.arena.release(&entry.kept);
                }
            } else {
                for mut entry in self.queue.drain(..upto) {
                    self.arena.release(&entry.kept);
                    Self::delivered(
                        &mut self.ledger,
                        &mut self.tickets,
                        &mut self.volatile,
                        &mut entry,
                    );
                }
            }
            self.written = 0;
            self.flushed = 0;
        } else {
            let mut index = 0;
            let mut removed = 0;
            let (ledger, tickets, volatile, arena) = (
                &mut self.ledger,
                &mut self.tickets,
                &mut self.volatile,
                &mut self.arena,
            );
            self.queue.retain_mut(|e| {
                let keep = index >= upto || e.id.is_some();
                removed += usize::from(!keep);
                index += 1;
                if !keep {
                    arena.release(&e.kept);
                    Self::delivered(ledger, tickets, volatile, e);
                }
                keep
            });
            self.written = upto - removed;
            self.flushed = self.written;
        }
        self.unflushed_bytes = self
            .queue
            .iter()
            .skip(self.flushed)
            .map(|e| e.kept.len())
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

    /// Hands every message still owed back, oldest first. Their outcomes fail with
    /// [`UndeliveredReason::Taken`].
    pub(crate) fn take_all(&mut self) -> Vec<Message> {
        self.batches.clear();
        self.unconfirmed = 0;
        self.written = 0;
        self.flushed = 0;
        self.unflushed_bytes = 0;
        self.tracked = 0;
        self.ids_in_order = true;
        self.last_id = None;
        self.tickets = 0;
        self.volatile = 0;
        let (ledger, arena) = (&mut self.ledger, &mut self.arena);
        let taken = self
            .queue
            .drain(..)
            .map(|e| {
                let message = arena.message(&e.kept);
                if let Some(ticket) = e.ticket {
                    let undelivered = Undelivered::new(UndeliveredReason::Taken, message.clone());
                    ledger.settle(ticket, Err(undelivered));
                }
                message
            })
            .collect();
        self.arena = Arena::default();
        taken
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
        let (mut index, mut presumed) = (0, 0);
        let flushed = self.flushed;
        let (ledger, tickets, volatile, arena) = (
            &mut self.ledger,
            &mut self.tickets,
            &mut self.volatile,
            &mut self.arena,
        );
        self.queue.retain_mut(|e| {
            let presume = index < flushed && e.id.is_none() && e.resent;
            index += 1;
            if presume {
                presumed += 1;
                arena.release(&e.kept);
                Self::delivered(ledger, tickets, volatile, e);
            }
            !presume
        });
        self.flushed -= presumed;
        self.written -= presumed;
        presumed
    }

    /// Before a resend: drops the entries `keep` refuses (their outcomes fail with
    /// [`UndeliveredReason::Discarded`]). Returns how many were dropped.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Message) -> bool) -> usize {
        let dropped = self.remove_where(
            |arena, e| !keep(&arena.message(&e.kept)),
            || UndeliveredReason::Discarded,
        );
        self.rewind();
        dropped
    }

    /// The sink gives up on the messages that have an outcome: they leave the outbox and
    /// their outcomes fail, handing them back. Messages without one stay. Called with no
    /// connection live.
    pub(crate) fn give_up(&mut self, reason: impl Fn() -> UndeliveredReason) -> usize {
        if self.tickets == 0 {
            return 0;
        }
        let removed = self.remove_where(|_, e| e.ticket.is_some(), reason);
        self.rewind();
        removed
    }

    /// Fails the outcome of a message that never entered the outbox, in order: after
    /// the outcomes of the messages accepted before it.
    pub(crate) fn settle_now(&mut self, promise: Promise, undelivered: Undelivered) {
        let ticket = self.ledger.open(promise);
        self.ledger.settle(ticket, Err(undelivered));
    }

    /// Removes the entries `condition` picks, failing their outcomes with `reason`.
    /// Leaves the written and flushed marks for the caller to rewind.
    fn remove_where(
        &mut self,
        mut condition: impl FnMut(&Arena, &Entry) -> bool,
        reason: impl Fn() -> UndeliveredReason,
    ) -> usize {
        let mut removed = 0;
        let (ledger, tickets, volatile, tracked, arena) = (
            &mut self.ledger,
            &mut self.tickets,
            &mut self.volatile,
            &mut self.tracked,
            &mut self.arena,
        );
        self.queue.retain_mut(|e| {
            if !condition(arena, e) {
                return true;
            }
            removed += 1;
            *tracked -= usize::from(e.id.is_some());
            *volatile -= usize::from(e.volatile);
            if let Some(ticket) = e.ticket.take() {
                *tickets -= 1;
                let message = arena.message(&e.kept);
                ledger.settle(ticket, Err(Undelivered::new(reason(), message)));
            }
            arena.release(&e.kept);
            false
        });
        removed
    }

    /// `entry` left the outbox delivered.
    fn delivered(
        ledger: &mut Ledger,
        tickets: &mut usize,
        volatile: &mut usize,
        entry: &mut Entry,
    ) {
        *volatile -= usize::from(entry.volatile);
        if let Some(ticket) = entry.ticket.take() {
            *tickets -= 1;
            ledger.settle(ticket, Ok(()));
        }
    }
}

impl Drop for Outbox {
    /// The sink is gone: every outcome still open fails, handing its message back.
    fn drop(&mut self) {
        if self.tickets > 0 {
            self.give_up(|| UndeliveredReason::Dropped);
        }
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
    fn copied_payloads_are_resent_and_handed_back_as_they_were() {
        let mut o = Outbox::new(100, 1000);
        o.push_copy(&Message::text("a"), None, None);
        o.mark_written();
        o.push_copy(&Message::binary(vec![1, 2]), None, None);
        o.mark_written();
        o.push_copy(&Message::text("t3"), Some(3), None);
        o.mark_written();
        // The connection is lost before the flush: all three are written again.
        o.rewind();
        assert_eq!(o.next_unwritten(), Some(Message::text("a")));
        o.mark_written();
        assert_eq!(o.next_unwritten(), Some(Message::binary(vec![1, 2])));
        o.mark_written();
        o.mark_written();
        o.flushed(None);
        assert_eq!(o.len(), 1, "the tracked one waits for its acknowledgement");
        assert!(o.arena_is_empty(), "no copy owed: the buffer is reset");
        o.push_copy(&Message::text("b"), None, None);
        assert_eq!(o.take_all(), [Message::text("t3"), Message::text("b")]);
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let mut o = Outbox::new(3, 10);
        o.push(Message::text("ab"), None, None);
        o.push(Message::text("cd"), None, None);
        assert!(!o.needs_flush());
        o.push(Message::text("ef"), None, None);
        assert!(o.needs_flush());
        let mut o = Outbox::new(100, 10);
        o.push(Message::binary(vec![0u8; 10]), None, None);
        assert!(o.needs_flush());
    }

    #[test]
    fn rewind_rewrites_in_order_and_flush_clears_untracked() {
        let mut o = Outbox::new(10, 1000);
        for t in ["a", "b", "c"] {
            o.push(Message::text(t), None, None);
        }
        o.mark_written();
        o.mark_written();
        assert_eq!(texts(&mut o), ["a", "b", "c"]);
        o.flushed(None);
        assert!(o.is_empty());
        assert!(!o.needs_flush());
    }

    #[test]
    fn tracked_entries_survive_a_flush_until_acknowledged() {
        let mut o = Outbox::new(2, 1000);
        o.push(Message::text("t1"), Some(1), None);
        o.push(Message::text("u"), None, None);
        o.push(Message::text("t2"), Some(2), None);
        assert!(o.needs_flush());
        for _ in 0..3 {
            o.mark_written();
        }
        o.flushed(None);
        assert!(
            !o.needs_flush(),
            "flushed tracked entries do not count as unflushed"
        );
        assert_eq!(o.len(), 2);
        assert_eq!(o.tracked(), 2);
        o.push(Message::text("t3"), Some(3), None);
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
        o.push(Message::text("u"), None, None);
        o.push(Message::text("t5"), Some(5), None);
        o.push(Message::text("t3"), Some(3), None);
        o.push(Message::text("t9"), Some(9), None);
        assert_eq!(o.acknowledge(5), 2);
        assert_eq!(texts(&mut o), ["u", "t9"]);
        assert_eq!(o.tracked(), 1);
    }

    #[test]
    fn in_order_acknowledgement_pops_the_front_and_keeps_counts() {
        let mut o = Outbox::new(100, 1000);
        for i in 1..=6 {
            o.push(Message::text(format!("t{i}")), Some(i), None);
        }
        for _ in 0..4 {
            o.mark_written();
        }
        o.flushed(None); // t1..t4 flushed, t5 t6 not written
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
        o.push(Message::text("t1"), Some(1), None);
        o.push(Message::text("u1"), None, None);
        o.push(Message::text("t2"), Some(2), None);
        o.push(Message::text("u2"), None, None);
        o.mark_written();
        o.mark_written();
        o.mark_written(); // t1 u1 t2 written, u2 not
        assert_eq!(o.acknowledge(2), 2);
        // u1 is still written; u2 is next.
        assert_eq!(o.next_unwritten().unwrap().to_text().unwrap(), "u2");
        o.mark_written();
        assert!(o.all_written());
        o.flushed(None);
        assert!(o.is_empty());
    }
}
