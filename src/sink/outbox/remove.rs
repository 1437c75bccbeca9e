//! Entries that leave the outbox without an acknowledgement or a flush: handed back,
//! dropped before a resend, given up, or (a protocol's control messages) discarded. A
//! tracked one is counted as released (see `released.rs`).

use super::{Arena, Entry, Outbox, Owed, Undelivered, UndeliveredReason};
use crate::Message;

impl Outbox {
    /// Hands every message still owed back, oldest first. Their outcomes fail with
    /// [`UndeliveredReason::Taken`].
    pub(crate) fn take_all(&mut self) -> Vec<Message> {
        self.take_owed().into_iter().map(|o| o.message).collect()
    }

    /// [`take_all`](Self::take_all), saying which messages are a protocol's control
    /// messages.
    pub(crate) fn take_owed(&mut self) -> Vec<Owed> {
        self.forget_deferred();
        self.batches.clear();
        self.unconfirmed = 0;
        self.written = 0;
        self.flushed = 0;
        self.unflushed_bytes = 0;
        self.tracked = 0;
        self.tracked_bytes = 0;
        self.ids_in_order = true;
        self.last_id = None;
        self.tickets = 0;
        self.volatile = 0;
        let (ledger, arena, released) = (&mut self.ledger, &mut self.arena, &mut self.released);
        let taken = self
            .queue
            .drain(..)
            .map(|e| {
                if let Some(id) = e.id {
                    released.record(id, e.kept.len());
                }
                let message = arena.message(&e.kept);
                if let Some(ticket) = e.ticket {
                    let undelivered = Undelivered::new(UndeliveredReason::Taken, message.clone());
                    ledger.settle(ticket, Err(undelivered));
                }
                Owed {
                    message,
                    control: e.control,
                }
            })
            .collect();
        self.arena = Arena::default();
        taken
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

    /// Drops the control messages `pick` picks (see [`Tag::control`]), but not one
    /// already written on a live connection (`live`): that one is the peer's. Returns
    /// how many were dropped.
    pub(crate) fn discard_control(&mut self, pick: impl Fn(&Message) -> bool, live: bool) -> usize {
        let from = if live { self.written } else { 0 };
        let mut index = 0;
        let dropped = self.remove_where(
            |arena, e| {
                index += 1;
                index > from && e.control && pick(&arena.message(&e.kept))
            },
            || UndeliveredReason::Discarded,
        );
        if dropped > 0 && live {
            // Only unwritten entries left: the marks before them stand.
            self.recount_unflushed();
        } else if dropped > 0 {
            self.rewind();
        }
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

    /// Removes the entries `condition` picks, failing their outcomes with `reason`.
    /// Leaves the written and flushed marks for the caller to rewind.
    pub(super) fn remove_where(
        &mut self,
        mut condition: impl FnMut(&Arena, &Entry) -> bool,
        reason: impl Fn() -> UndeliveredReason,
    ) -> usize {
        self.forget_deferred();
        let mut removed = 0;
        let (ledger, tickets, volatile, arena) = (
            &mut self.ledger,
            &mut self.tickets,
            &mut self.volatile,
            &mut self.arena,
        );
        let (tracked, tracked_bytes) = (&mut self.tracked, &mut self.tracked_bytes);
        let released = &mut self.released;
        self.queue.retain_mut(|e| {
            if !condition(arena, e) {
                return true;
            }
            removed += 1;
            if let Some(id) = e.id {
                *tracked -= 1;
                *tracked_bytes -= e.kept.len();
                released.record(id, e.kept.len());
            }
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
}
