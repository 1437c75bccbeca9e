//! The write half's operations: `poll_ready`, `start_send`, `poll_flush`.
//!
//! The steady state costs one check and one write per message: the writer looks at
//! inbound frames (a Close or EOF already there moves new messages to the next
//! connection) only at the start of each batch and every few hundred messages, because
//! a read attempt in tungstenite costs far more than a write.

use std::task::{ready, Context, Poll};

use super::driver::{Core, State};
use super::inbound::Look;
use super::lost::Lost;
use super::outbox::Tag;
use crate::connect::MakeConnection;
use crate::error::Error;
use crate::target::DialKind;
use crate::Message;

/// The writer looks at inbound frames at least every this many messages...
const CHECK_EVERY: u64 = 256;
/// ... or this many bytes within one batch.
const CHECK_EVERY_BYTES: u64 = 256 * 1024;

impl<M: MakeConnection> Core<M> {
    pub(super) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // The steady state, once per message: connected, nothing to resend, no check or
        // flush due. Straight to the connection.
        let steady = self.outbox.all_written()
            && !self.outbox.needs_flush()
            && !self.due_for_check()
            && !self.window_full();
        if let State::Connected(live) = &mut self.state {
            if steady && live.preamble_done() && live.fault.is_none() {
                if let Poll::Ready(Ok(())) = live.poll_ready(cx) {
                    return Poll::Ready(Ok(()));
                }
            }
        }
        loop {
            ready!(self.poll_connected(cx))?;
            if self.due_for_check() {
                self.checked = self.accepted;
                self.publish_sent();
                match self.poll_inbound(cx) {
                    Look::Faulted(cause) => {
                        // A plain WebSocket client would have written this message before
                        // reading the bad frame: it still goes to this connection, which
                        // is dropped at the next flush. The reader meets the error after
                        // the data that came before it.
                        if let State::Connected(live) = &mut self.state {
                            if let Poll::Ready(Ok(())) = live.poll_ready(cx) {
                                live.fault = Some(cause);
                                return Poll::Ready(Ok(()));
                            }
                        }
                        self.lose(Lost::unhealthy(cause.into()));
                        continue;
                    }
                    look => {
                        if !self.settle(look, cx) {
                            continue;
                        }
                    }
                }
                if let Err(lost) = self.poll_timers(cx) {
                    self.lose(lost);
                    continue;
                }
            }
            if self.outbox.needs_flush() || self.window_full() {
                if let Err(lost) = ready!(self.poll_flush_live(cx)) {
                    self.lose(lost);
                    continue;
                }
                if self.window_full() {
                    // Wait for acknowledgements: reading registers for them; the ack
                    // timer and the keepalive run when this parks (see `drive`).
                    let look = self.poll_inbound(cx);
                    if self.settle(look, cx) && self.window_full() {
                        return Poll::Pending;
                    }
                }
                continue;
            }
            let State::Connected(live) = &mut self.state else {
                continue;
            };
            match ready!(live.poll_ready(cx)) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(lost) => self.lose(lost),
            }
        }
    }

    #[inline]
    pub(super) fn start_send(&mut self, message: Message) -> Result<(), Error> {
        self.can_accept(&message)?;
        self.accept(message, None);
        Ok(())
    }

    /// Whether `start_send` would take `message` now.
    #[inline]
    pub(super) fn can_accept(&self, message: &Message) -> Result<(), Error> {
        if matches!(message, Message::Close(_) | Message::Frame(_)) {
            return Err(Error::UnsupportedMessage);
        }
        if matches!(self.state, State::Idle | State::Closing { .. }) {
            return Err(Error::NotDialed);
        }
        if self.outbox.needs_flush() || self.window_full() {
            // poll_ready flushes (or waits for acknowledgements) before this point; a caller
            // that skipped it is refused rather than let the outbox grow without bound.
            return Err(Error::NotReady);
        }
        Ok(())
    }

    /// Takes a message [`can_accept`](Self::can_accept) allowed, with its outcome and
    /// volatility when it has them: kept in the outbox and, when nothing is queued before
    /// it, written at once.
    #[inline]
    pub(super) fn accept(&mut self, message: Message, tag: Option<Tag>) {
        if self.close_deadline.is_some() {
            // A write after a close() that was dropped unfinished: the sink goes on.
            self.close_deadline = None;
        }
        let direct = matches!(self.state, State::Connected(_)) && self.outbox.all_written();
        let id = self.acks.as_mut().and_then(|a| a.acks.id(&message));
        self.accepted.add(message.len());
        match &mut self.state {
            // Kept without taking the message (a copy of a small payload), which goes to
            // the connection.
            State::Connected(live) if direct => {
                self.outbox.push_copy(&message, id, tag);
                match live.write(message) {
                    Ok(()) => self.outbox.mark_written(),
                    // Kept in the outbox; resent on the next connection.
                    Err(lost) => self.lose(lost),
                }
            }
            // Not connected (or the backlog is still being written): keep it for later.
            _ => self.outbox.push(message, id, tag),
        }
    }

    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            // A dial() in progress must complete; a reconnection the reader started need
            // not hold up a flush that owes nothing.
            let dialing = matches!(
                self.state,
                State::Connected(_)
                    | State::Connecting {
                        kind: DialKind::First,
                        ..
                    }
                    | State::Disconnected {
                        kind: DialKind::First,
                        ..
                    }
            );
            if self.outbox.is_empty() && !dialing {
                // Nothing owed and no dial in progress: no reason to wait or reconnect.
                return Poll::Ready(Ok(()));
            }
            ready!(self.poll_connected(cx))?;
            if let Err(lost) = ready!(self.poll_flush_live(cx)) {
                self.lose(lost);
                continue;
            }
            if self.outbox.tracked() == 0 {
                return Poll::Ready(Ok(()));
            }
            // Acknowledged mode: flushed means acknowledged. Reading registers for the
            // acknowledgements; the ack timer and the keepalive run when this parks.
            let look = self.poll_inbound(cx);
            if self.settle(look, cx) {
                if self.outbox.tracked() == 0 {
                    return Poll::Ready(Ok(()));
                }
                return Poll::Pending;
            }
        }
    }

    /// Flushes the live connection; on success what was written is in the socket and
    /// the outbox lets go of its untracked part. Nothing to do when not connected.
    pub(super) fn poll_flush_live(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Lost>> {
        let State::Connected(live) = &mut self.state else {
            return Poll::Ready(Ok(()));
        };
        ready!(live.poll_flush(cx))?;
        self.outbox.flushed();
        self.publish_sent();
        Poll::Ready(Ok(()))
    }

    #[inline]
    pub(super) fn window_full(&self) -> bool {
        self.acks
            .as_ref()
            .is_some_and(|a| self.outbox.tracked() >= a.window)
    }

    /// Whether the writer should look at inbound frames (and timers) before this write:
    /// at the start of every batch (nothing owed, as when each message is flushed) and
    /// every [`CHECK_EVERY`] messages or [`CHECK_EVERY_BYTES`] within one. Looking every
    /// time made small messages 20 times slower.
    #[inline]
    fn due_for_check(&self) -> bool {
        self.outbox.is_empty() || {
            let unchecked = self.accepted.since(self.checked);
            unchecked.messages >= CHECK_EVERY || unchecked.bytes >= CHECK_EVERY_BYTES
        }
    }

    /// Adds the messages accepted since the last call to the shared counters.
    pub(super) fn publish_sent(&mut self) {
        if self.accepted.messages > self.published.messages {
            let tally = self.accepted.since(self.published);
            self.published = self.accepted;
            self.stats.sent(tally.messages, tally.bytes);
        }
    }
}
