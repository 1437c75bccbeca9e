//! The bounded, ordered buffer of messages the sink still owes the peer.
//!
//! | file | what |
//! |---|---|
//! | `acknowledge.rs` | a cumulative acknowledgement; the end of the protocol that tracks |
//! | `confirm.rs` | untracked entries waiting for the peer to confirm their flush |
//! | `deferred.rs` | tracked entries held back to be written as one |
//! | `released.rs` | tracked entries let go of before their acknowledgement |
//! | `remove.rs` | entries that leave otherwise: handed back, discarded, given up |
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

mod acknowledge;
mod confirm;
mod deferred;
#[cfg(test)]
mod deferred_model;
mod released;
mod remove;

use self::confirm::Batch;
pub(crate) use self::deferred::Deferred;
use self::released::Released;
use super::framing::Framing;
use super::kept::{Arena, Kept};
use super::outcome::{Ledger, Promise, Ticket, Undelivered, UndeliveredReason};
use crate::Message;

/// What a message sent with an outcome, volatile, or a protocol's own control message
/// carries into the outbox.
pub(crate) struct Tag {
    pub(crate) volatile: bool,
    pub(crate) promise: Option<Promise>,
    /// A control message of a protocol layered on acknowledged mode
    /// ([`ReconnectingSink::start_send_control`](super::ReconnectingSink::start_send_control)):
    /// never handed back to the application.
    pub(crate) control: bool,
}

#[derive(Debug)]
struct Entry {
    kept: Kept,
    id: Option<u64>,
    ticket: Option<Ticket>,
    volatile: bool,
    /// Flushed, not confirmed, and written again once already after its connection ended.
    resent: bool,
    /// Handed to the framing at each write (see [`Framing`]).
    prompt: bool,
    /// A protocol's control message (see [`Tag::control`]).
    control: bool,
}

/// What acknowledged mode has in flight: tracked messages not yet acknowledged, held or
/// (for a protocol that counts them, see `released.rs`) let go of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unacked {
    pub(crate) messages: usize,
    /// Their payload bytes.
    pub(crate) bytes: usize,
}

/// A message handed back by [`Outbox::take_owed`].
#[derive(Debug)]
pub(crate) struct Owed {
    pub(crate) message: Message,
    /// A protocol's control message (see [`Tag::control`]).
    pub(crate) control: bool,
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
    /// Flushed messages taken as delivered at the bound, not yet counted in the stats.
    presumed_at_bound: usize,
    flushed: usize,
    /// Bytes of the entries at `flushed..`.
    unflushed_bytes: usize,
    tracked: usize,
    /// Bytes of the tracked entries.
    tracked_bytes: usize,
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
    /// Tracked entries let go of before their acknowledgement (see `released.rs`).
    released: Released,
    /// The unwritten entries at the end held back to be written as one (see
    /// `deferred.rs`).
    deferred: Deferred,
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
            presumed_at_bound: 0,
            flushed: 0,
            unflushed_bytes: 0,
            tracked: 0,
            tracked_bytes: 0,
            ids_in_order: true,
            last_id: None,
            max_messages: max_messages.max(1),
            max_bytes: max_bytes.max(1),
            ledger: Ledger::default(),
            tickets: 0,
            volatile: 0,
            arena: Arena::default(),
            released: Released::default(),
            deferred: Deferred::default(),
        }
    }

    /// Tracked entries that leave without an acknowledgement are counted in
    /// [`unacked`](Self::unacked) until one passes their id (see `released.rs`): for a
    /// protocol that numbers its messages in order and grants a window.
    pub(crate) fn count_released(&mut self) {
        self.released.enable();
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

    /// Tracked messages not yet acknowledged, and their payload bytes: the ones held, and
    /// the ones let go of when they are counted ([`count_released`](Self::count_released)).
    #[inline]
    pub(crate) fn unacked(&self) -> Unacked {
        let released = self.released.unacked();
        Unacked {
            messages: self.tracked + released.messages,
            bytes: self.tracked_bytes + released.bytes,
        }
    }

    /// Whether every tracked message, held or let go of, is acknowledged.
    pub(crate) fn all_acknowledged(&self) -> bool {
        self.tracked == 0 && self.released.is_empty()
    }

    /// The lowest id of the tracked messages held, if any.
    pub(crate) fn oldest_tracked(&self) -> Option<u64> {
        let mut ids = self.queue.iter().filter_map(|e| e.id);
        if self.ids_in_order {
            ids.next()
        } else {
            ids.min()
        }
    }

    /// The highest id of the tracked messages held, if any.
    pub(crate) fn newest_tracked(&self) -> Option<u64> {
        let mut ids = self.queue.iter().rev().filter_map(|e| e.id);
        if self.ids_in_order {
            ids.next()
        } else {
            ids.max()
        }
    }

    /// Keeps `message`, about to be written, without taking it: small untracked payloads
    /// as a copy, the rest as a clone. `tag`: its outcome and volatility, if it has them.
    #[inline]
    pub(crate) fn push_copy(&mut self, message: &Message, id: Option<u64>, tag: Option<Tag>) {
        let kept = match id {
            None => self.arena.keep(message, self.max_bytes),
            Some(_) => Kept::Whole(message.clone()),
        };
        self.push_kept(kept, id, false, tag);
    }

    /// Keeps `message` itself. `tag`: its outcome and volatility, if it has them.
    #[inline]
    pub(crate) fn push(&mut self, message: Message, id: Option<u64>, tag: Option<Tag>) {
        self.push_kept(Kept::Whole(message), id, false, tag);
    }

    /// Keeps a tracked `message` that the framing writes (see [`Framing`]); `prompt` goes
    /// to the framing with it.
    #[inline]
    pub(crate) fn push_framed(
        &mut self,
        message: Message,
        id: u64,
        prompt: bool,
        tag: Option<Tag>,
    ) {
        self.push_kept(Kept::Whole(message), Some(id), prompt, tag);
    }

    /// Opens the outcome of a tagged message (settled when its entry leaves the outbox)
    /// and counts it if volatile.
    #[inline]
    fn push_kept(&mut self, kept: Kept, id: Option<u64>, prompt: bool, tag: Option<Tag>) {
        let (ticket, volatile, control) = match tag {
            None => (None, false, false),
            Some(Tag {
                volatile,
                promise,
                control,
            }) => {
                let ticket = promise.map(|promise| self.ledger.open(promise));
                self.tickets += usize::from(ticket.is_some());
                self.volatile += usize::from(volatile);
                (ticket, volatile, control)
            }
        };
        self.push_entry(Entry {
            kept,
            id,
            ticket,
            volatile,
            resent: false,
            prompt,
            control,
        });
    }

    #[inline]
    fn push_entry(&mut self, entry: Entry) {
        // A new end of the queue (`push_deferred` claims it again).
        self.forget_deferred();
        let (len, id) = (entry.kept.len(), entry.id);
        if let Some(id) = id {
            if self.last_id.is_some_and(|last| id <= last) {
                self.ids_in_order = false;
            }
            self.last_id = Some(id);
        }
        self.unflushed_bytes += len;
        if id.is_some() {
            self.tracked += 1;
            self.tracked_bytes += len;
        }
        self.queue.push_back(entry);
    }

    /// The next message not yet written to the current connection, as it is written:
    /// framed by `framing` if it is tracked and there is one.
    #[inline]
    pub(crate) fn next_unwritten(
        &self,
        framing: Option<&mut (dyn Framing + 'static)>,
    ) -> Option<Message> {
        let entry = self.queue.get(self.written)?;
        Some(match (entry.id, framing, &entry.kept) {
            (Some(id), Some(framing), Kept::Whole(message)) => {
                framing.frame(message, id, entry.prompt)
            }
            _ => self.arena.message(&entry.kept),
        })
    }

    #[inline]
    pub(crate) fn mark_written(&mut self) {
        debug_assert!(self.written < self.queue.len());
        self.written += 1;
        self.check_deferred();
    }

    #[inline]
    pub(crate) fn all_written(&self) -> bool {
        self.written == self.queue.len()
    }

    /// The connection was lost: everything still owed is to be written again.
    pub(crate) fn rewind(&mut self) {
        self.forget_deferred();
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

    /// Untracked entries are done; tracked ones wait for their acknowledgement.
    fn flushed_done(&mut self) {
        let upto = self.written;
        if self.tracked == self.queue.len() {
            // Everything is tracked: nothing to drop, only the flushed mark moves.
            self.flushed = upto;
            self.recount_unflushed();
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
        self.recount_unflushed();
    }

    /// Counts the bytes of the entries from `flushed` on again.
    fn recount_unflushed(&mut self) {
        self.unflushed_bytes = self
            .queue
            .iter()
            .skip(self.flushed)
            .map(|e| e.kept.len())
            .sum();
    }

    /// Fails the outcome of a message that never entered the outbox, in order: after
    /// the outcomes of the messages accepted before it.
    pub(crate) fn settle_now(&mut self, promise: Promise, undelivered: Undelivered) {
        let ticket = self.ledger.open(promise);
        self.ledger.settle(ticket, Err(undelivered));
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
mod tests;
