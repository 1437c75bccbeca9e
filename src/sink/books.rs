//! What the sink keeps across connections: the messages it owes (the outbox), what it
//! read for the reader (the inbox), acknowledged mode, and the counters.
//!
//! Connections come and go; the books stay. The live link ([`Link`](super::link::Link))
//! works on them while it is up, and the driver settles them when it ends.

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::acks::Acks;
use super::confirm::Confirmation;
use super::framing::Framing;
use super::inbound::{classify, Inbound, Inbox, Queued};
use super::outbox::Outbox;
use super::stats::StatsHandle;
use super::waker::Signals;
use crate::Message;

/// The writer looks at inbound frames at least every this many messages...
const CHECK_EVERY: u64 = 256;
/// ... or this many bytes within one batch.
const CHECK_EVERY_BYTES: u64 = 256 * 1024;

/// See the [module docs](self).
pub(super) struct Books {
    pub(super) outbox: Outbox,
    pub(super) inbox: Inbox,
    pub(super) acks: Option<Acks>,
    /// When a flushed message counts as delivered.
    pub(super) confirmation: Confirmation,
    pub(super) stats: StatsHandle,
    /// Every message accepted, counted once per message (no atomic operation): what
    /// was added to `stats` and when the writer last looked at inbound frames are marks
    /// on this count.
    pub(super) accepted: Tally,
    /// `accepted` as last added to `stats`.
    published: Tally,
    /// `accepted` when the writer last looked at inbound frames.
    checked: Tally,
}

/// A count of messages and their payload bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    pub(super) messages: u64,
    pub(super) bytes: u64,
}

impl Tally {
    #[inline]
    pub(super) fn add(&mut self, bytes: usize) {
        self.messages += 1;
        self.bytes += bytes as u64;
    }

    /// What `self` counted since `mark` (an earlier value of it).
    #[inline]
    pub(super) fn since(self, mark: Tally) -> Tally {
        Tally {
            messages: self.messages - mark.messages,
            bytes: self.bytes - mark.bytes,
        }
    }
}

/// What one inbound frame meant, once the books took it.
pub(super) enum Received {
    /// A data message for the reader; `progress`: an acknowledgement it carried let go
    /// of tracked messages.
    Data { message: Message, progress: bool },
    /// An acknowledgement; `progress`: it let go of tracked messages.
    Acknowledged { progress: bool },
    /// A Ping, a Pong, a raw frame.
    Control,
    /// The peer closes.
    Closed(Option<CloseFrame>),
}

impl Books {
    /// The outbox, and the framing its tracked messages are written with, if any.
    pub(super) fn writing(&mut self) -> (&mut Outbox, Option<&mut (dyn Framing + 'static)>) {
        let framing = self.acks.as_mut().and_then(|a| a.framing.as_deref_mut());
        (&mut self.outbox, framing)
    }

    pub(super) fn new(
        outbox: Outbox,
        inbox: Inbox,
        acks: Option<Acks>,
        confirmation: Confirmation,
        stats: StatsHandle,
    ) -> Self {
        Books {
            outbox,
            inbox,
            acks,
            confirmation,
            stats,
            accepted: Tally::default(),
            published: Tally::default(),
            checked: Tally::default(),
        }
    }

    /// Acknowledged mode has as many tracked messages out as its window allows.
    #[inline]
    pub(super) fn window_full(&self) -> bool {
        self.acks
            .as_ref()
            .is_some_and(|a| self.outbox.tracked() >= a.window)
    }

    /// Whether the writer should look at inbound frames (and timers) before this write:
    /// at the start of every batch (nothing owed but confirmations, as when each message
    /// is flushed) and
    /// every [`CHECK_EVERY`] messages or [`CHECK_EVERY_BYTES`] within one. Looking every
    /// time made small messages 20 times slower.
    #[inline]
    pub(super) fn due_for_check(&self) -> bool {
        self.outbox.only_unconfirmed() || {
            let unchecked = self.accepted.since(self.checked);
            unchecked.messages >= CHECK_EVERY || unchecked.bytes >= CHECK_EVERY_BYTES
        }
    }

    /// A flush succeeded: the outbox lets go of what it may.
    pub(super) fn flushed(&mut self) {
        // While the socket is left unread (plain mode, the inbox full), no Pong can be
        // read behind the unread messages: a flush confirms, as with `ConfirmBy::Flush`.
        let waits = self.confirmation.waits() && !self.leaves_unread();
        let at = waits.then(Instant::now);
        self.outbox.flushed(at);
        let presumed = self.outbox.take_presumed();
        if presumed > 0 {
            self.stats.presumed_delivered(presumed);
            tracing::debug!(
                presumed,
                "more flushed messages than the outbox bound wait for a confirmation: the oldest are taken as delivered"
            );
        }
        self.publish_sent();
    }

    /// A read found nothing waiting: with [`ConfirmBy::After`](super::ConfirmBy::After),
    /// flushes long enough before are confirmed.
    #[inline]
    pub(super) fn quiet(&mut self) {
        if let Some(before) = self.confirmation.quiet() {
            if self.outbox.unconfirmed() > 0 {
                self.outbox.confirm(before);
            }
        }
    }

    /// The writer looks at inbound frames now.
    pub(super) fn checking(&mut self) {
        self.checked = self.accepted;
        self.publish_sent();
    }

    /// Adds the messages accepted since the last call to the shared counters.
    pub(super) fn publish_sent(&mut self) {
        if self.accepted.messages > self.published.messages {
            let tally = self.accepted.since(self.published);
            self.published = self.accepted;
            self.stats.sent(tally.messages, tally.bytes);
        }
    }

    /// The counters, with what was accepted and not yet published.
    pub(super) fn stats(&self) -> super::Stats {
        let mut stats = self.stats.get();
        let unpublished = self.accepted.since(self.published);
        stats.messages_sent += unpublished.messages;
        stats.bytes_sent += unpublished.bytes;
        stats
    }

    /// Takes one inbound frame: an acknowledgement is applied (and consumed), data is
    /// counted and handed back for the reader.
    pub(super) fn receive(&mut self, message: Message) -> Received {
        let message = match classify(message) {
            Inbound::Data(message) => message,
            Inbound::Control => return Received::Control,
            Inbound::Closed(frame) => return Received::Closed(frame),
        };
        let Some(acked) = self.acks.as_mut().and_then(|a| a.acks.acked(&message)) else {
            self.stats.received(message.len());
            // An acknowledgement riding on the data.
            let carried = self.acks.as_mut().and_then(|a| a.acks.carried());
            let removed = carried.map_or(0, |acked| self.outbox.acknowledge(acked));
            return Received::Data {
                message,
                progress: removed > 0,
            };
        };
        let removed = self.outbox.acknowledge(acked);
        tracing::trace!(acked, removed, "acknowledgement");
        Received::Acknowledged {
            progress: removed > 0,
        }
    }

    /// Queues a data message for the reader. Past the inbox bound (reachable only while
    /// acknowledgements must be read regardless) it is dropped, counted, logged at `warn`,
    /// and the reader meets an [`Error::InboundDropped`](crate::Error::InboundDropped)
    /// item at the place of the gap.
    pub(super) fn queue_inbound(&mut self, message: Message, signals: &Signals) {
        let len = message.len();
        match self.inbox.push(message) {
            Queued::Kept => signals.wake_read(),
            Queued::Dropped => tracing::warn!(
                len,
                dropped = self.inbox.dropped(),
                "inbound message dropped: the inbox is full and nobody reads the stream"
            ),
        }
    }

    /// Whether the socket may be read now: the inbox has room, or acknowledgements must
    /// be read whatever is queued.
    pub(super) fn may_read(&self) -> bool {
        self.inbox.has_room() || self.acks.is_some()
    }

    /// The socket is left unread on purpose (plain mode, the inbox full): inbound
    /// silence then proves nothing.
    pub(super) fn leaves_unread(&self) -> bool {
        self.acks.is_none() && !self.inbox.has_room()
    }
}
