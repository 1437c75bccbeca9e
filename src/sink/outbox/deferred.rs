//! Tracked messages held back to be written together, as one message the framing makes
//! of them ([`Framing::frame_batch`]): resume mode's BATCH, which spreads the cost of a
//! WebSocket message over several of the application's.
//!
//! A message accepted on a live connection with nothing else waiting to be written is
//! held back at the end of the queue instead of being written at once. The held-back
//! messages are written as one when there are [`Framing::batch_limit`] of them or
//! [`BATCH_BYTES`] of payload, before a message that would take them past that (which
//! starts the next batch: a batch is never larger than its largest message or
//! `BATCH_BYTES`, so a peer's limit on a message's size that each message meets, the
//! batch meets too), before a flush (a flush waits for them: what a flush covers is
//! written), and before any message that is not held back (an untracked or a control
//! message keeps its place after them). Each of those writes is one message after one
//! `poll_ready`, but for a message that is not held back: it follows the batch at once,
//! as the protocol's control messages are written when they are made. That is when a message written at once
//! would have left the connection's own write buffer too: a `Sink` sends what it was
//! given at a flush.
//!
//! The count is only ever a claim about the end of the queue: anything else that
//! changes the queue (a rewind after a lost connection, a removal, a message pushed
//! otherwise) drops it, and the messages it covered are written one by one like any
//! other backlog.

use super::{Entry, Kept, Outbox};
use crate::sink::framing::{Framing, Tracked};
use crate::Message;

/// Held-back messages are written once their payload reaches this many bytes. Larger
/// batches cost more than they save: tungstenite copies each written message into its
/// write buffer, and moves what the socket did not take yet (16 KiB made a 1 KiB message
/// 1.5 times as costly as plain mode's, 4 KiB as costly).
pub(crate) const BATCH_BYTES: usize = 4 * 1024;

/// The last `count` entries of the queue, unwritten and tracked, held back; their
/// payload bytes; the most the framing gathers in one message.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deferred {
    pub(crate) count: usize,
    pub(crate) bytes: usize,
    pub(crate) limit: usize,
}

impl Deferred {
    /// Whether a message of `len` payload bytes fits in the batch with these: a batch
    /// stays within [`BATCH_BYTES`] unless a message alone is larger (it goes alone).
    #[inline]
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.count == 0 || self.bytes + len <= BATCH_BYTES
    }

    /// Whether these are enough to be written now.
    #[inline]
    pub(crate) fn full(&self) -> bool {
        self.count > 0 && (self.count >= self.limit || self.bytes >= BATCH_BYTES)
    }
}

/// A message made of held-back entries, and how many it covers.
#[derive(Debug)]
pub(crate) struct Gathered {
    pub(crate) message: Message,
    pub(crate) entries: usize,
}

impl Outbox {
    /// Keeps a tracked `message` for the framing, held back to be written with the ones
    /// after it, in batches of at most `limit`. Only when everything before it is written
    /// or held back, and it [`fits`](Deferred::fits).
    #[inline]
    pub(crate) fn push_deferred(
        &mut self,
        message: Message,
        id: u64,
        prompt: bool,
        tag: Option<super::Tag>,
        limit: usize,
    ) {
        debug_assert!(self.all_written_or_deferred() && self.deferred.fits(message.len()));
        let (count, bytes) = (self.deferred.count + 1, self.deferred.bytes + message.len());
        self.push_framed(message, id, prompt, tag);
        // `push_framed` dropped the claim, as any other push does.
        self.deferred = Deferred {
            count,
            bytes,
            limit,
        };
    }

    /// The messages held back.
    #[inline]
    pub(crate) fn deferred(&self) -> Deferred {
        self.deferred
    }

    /// Whether every entry is written, but for the ones held back.
    #[inline]
    pub(crate) fn all_written_or_deferred(&self) -> bool {
        self.written + self.deferred.count == self.queue.len()
    }

    /// The messages held back as one message, framed by `framing` (one alone as
    /// [`Framing::frame`] frames it); `None` when none is. Mark them written with
    /// [`mark_written_n`](Self::mark_written_n) once it is written.
    pub(crate) fn gather(&self, framing: &mut dyn Framing) -> Option<Gathered> {
        let Deferred { count, bytes, .. } = self.deferred;
        let start = self.queue.len() - count;
        let message = match count {
            0 => return None,
            1 => {
                let entry = &self.queue[start];
                match (entry.id, &entry.kept) {
                    (Some(id), Kept::Whole(message)) => framing.frame(message, id, entry.prompt),
                    _ => self.arena.message(&entry.kept),
                }
            }
            _ => {
                let mut entries = self.queue.range(start..).filter_map(tracked);
                framing.frame_batch(&mut entries, count, bytes)
            }
        };
        Some(Gathered {
            message,
            entries: count,
        })
    }

    /// `n` more entries are written (a message [`gather`](Self::gather) made).
    #[inline]
    pub(crate) fn mark_written_n(&mut self, n: usize) {
        debug_assert!(self.written + n <= self.queue.len());
        self.written += n;
        self.deferred = Deferred::default();
    }

    /// The claim about the end of the queue no longer holds: what it covered is
    /// ordinary backlog.
    #[inline]
    pub(super) fn forget_deferred(&mut self) {
        self.deferred = Deferred::default();
    }

    /// Drops the claim unless the held-back entries are still exactly the unwritten end
    /// of the queue (after entries were written or removed).
    #[inline]
    pub(super) fn check_deferred(&mut self) {
        if self.deferred.count > 0 && self.written + self.deferred.count != self.queue.len() {
            self.forget_deferred();
        }
    }
}

/// A held-back entry as the framing takes it. Every one is tracked and kept whole.
fn tracked(entry: &Entry) -> Option<Tracked<'_>> {
    match (entry.id, &entry.kept) {
        (Some(id), Kept::Whole(message)) => Some(Tracked {
            message,
            id,
            prompt: entry.prompt,
        }),
        _ => None,
    }
}
