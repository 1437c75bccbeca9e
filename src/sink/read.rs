//! The read half's operations: `poll_next`, and the look at arrived frames that the
//! write half takes too.

use std::task::{ready, Context, Poll};

use super::driver::{Core, State};
use super::inbound::{classify, read_failure, Inbound, Look, Queued};
use super::lost::Lost;
use crate::connect::MakeConnection;
use crate::error::Error;
use crate::Message;

impl<M: MakeConnection> Core<M> {
    pub(super) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, Error>>> {
        loop {
            if let Some(item) = self.inbox.pop() {
                return Poll::Ready(Some(item));
            }
            match &mut self.state {
                // A failure for good is told once, then the stream ends.
                State::Failed { error, reader_told } => {
                    return Poll::Ready(
                        (!std::mem::replace(reader_told, true)).then(|| Err(error.duplicate())),
                    );
                }
                State::Idle | State::Closing { .. } => return Poll::Ready(None),
                _ => {}
            }
            if let Err(e) = ready!(self.poll_connected(cx)) {
                return Poll::Ready(Some(Err(e)));
            }
            // What a reconnection wrote (on_connect, resend) must leave even if the user
            // only reads; a Pending flush continues on the next poll.
            if matches!(&self.state, State::Connected(live) if live.needs_flush) {
                if let Poll::Ready(Err(lost)) = self.poll_flush_live(cx) {
                    self.lose(lost);
                    continue;
                }
            }
            let State::Connected(live) = &mut self.state else {
                continue;
            };
            match ready!(live.poll_next(cx)) {
                Some(Ok(message)) => match self.inbound(message) {
                    Inbound::Data(m) => {
                        if let State::Connected(live) = &mut self.state {
                            live.delivered();
                        }
                        return Poll::Ready(Some(Ok(m)));
                    }
                    Inbound::Control => {}
                    Inbound::Closed(frame) => self.peer_closed(frame, cx),
                },
                Some(Err(e)) => match read_failure(Error::from_boxed(e.into())) {
                    // A reset, an EOF without a Close frame, an I/O error: a drop like
                    // any other, reported by `state()` and the logs, not to the reader.
                    Ok(lost) => self.lose(lost),
                    // A frame too large, invalid UTF-8, a protocol violation: the
                    // connection is replaced, and the reader is told once.
                    Err(error) => {
                        self.lose(Lost::unhealthy(error.to_string().into()));
                        return Poll::Ready(Some(Err(error)));
                    }
                },
                None => self.lose(Lost::new("end of stream".into())),
            }
        }
    }

    /// Processes frames that have already arrived, without waiting, so that a Close or EOF
    /// is noticed before the next write. Data goes to the inbox up to its bound; after
    /// that the socket is left unread (TCP backpressure), except in acknowledged mode,
    /// where acknowledgements must be read whatever is queued.
    pub(super) fn poll_inbound(&mut self, cx: &mut Context<'_>) -> Look {
        while self.inbox.has_room() || self.acks.is_some() {
            let State::Connected(live) = &mut self.state else {
                return Look::Open;
            };
            if live.fault.is_some() {
                // Past a protocol violation the framing means nothing: read no further.
                return Look::Open;
            }
            match live.poll_next(cx) {
                Poll::Pending => return Look::Open,
                Poll::Ready(Some(Ok(message))) => match self.inbound(message) {
                    Inbound::Data(m) => {
                        if let State::Connected(live) = &mut self.state {
                            live.delivered();
                        }
                        self.queue_inbound(m);
                    }
                    Inbound::Control => {}
                    Inbound::Closed(frame) => return Look::Closed(frame),
                },
                Poll::Ready(Some(Err(e))) => {
                    let error = match read_failure(Error::from_boxed(e.into())) {
                        Ok(lost) => return Look::Ended(lost),
                        Err(error) => error,
                    };
                    let cause = error.to_string();
                    tracing::info!(%error, "the peer broke the protocol; the reader is told");
                    self.inbox.push_error(error);
                    self.wakers.wake_read();
                    return Look::Faulted(cause);
                }
                Poll::Ready(None) => return Look::Ended(Lost::new("end of stream".into())),
            }
        }
        Look::Open
    }

    /// What one inbound message means: data for the reader, control, an acknowledgement
    /// (applied here, consumed), or the peer closing.
    pub(super) fn inbound(&mut self, message: Message) -> Inbound {
        if let State::Connected(live) = &mut self.state {
            live.frame_received();
        }
        let inbound = classify(message);
        let Inbound::Data(message) = inbound else {
            return inbound;
        };
        let Some(acked) = self.acks.as_mut().and_then(|a| a.acks.acked(&message)) else {
            self.stats.received(message.len());
            return Inbound::Data(message);
        };
        let removed = self.outbox.acknowledge(acked);
        if removed > 0 {
            if let State::Connected(live) = &mut self.state {
                live.acknowledged();
            }
            // A writer may be waiting for room in the window or for this flush.
            self.wakers.wake_other(self.current);
        }
        tracing::trace!(acked, removed, "acknowledgement");
        Inbound::Control
    }

    /// Queues a data message for the reader. Past the inbox bound (reachable only while
    /// acknowledgements must be read regardless) it is dropped, counted, logged at `warn`,
    /// and the reader meets an [`Error::InboundDropped`] item at the place of the gap.
    pub(super) fn queue_inbound(&mut self, message: Message) {
        let len = message.len();
        match self.inbox.push(message) {
            Queued::Kept => self.wakers.wake_read(),
            Queued::Dropped => tracing::warn!(
                len,
                dropped = self.inbox.dropped(),
                "inbound message dropped: the inbox is full and nobody reads the stream"
            ),
        }
    }
}
