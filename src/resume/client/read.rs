//! The reading half: each message once, in order, gaps at their place, and the
//! acknowledgements of what the application took.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::time::Instant;

use crate::connect::MakeConnection;
use crate::error::Error;
use crate::resume::frame::{Data, Frame};
use crate::sink::Half;
use crate::Message;

use super::*;

impl<M: MakeConnection> ResumingSink<M> {
    /// Polls for the next message from the server.
    ///
    /// - `Ready(Some(Ok(m)))`: the next Text or Binary message, each once, in order.
    /// - `Ready(Some(Err(Error::Gap(_))))`: a range the server can never deliver, at its
    ///   place; polling again carries on.
    /// - `Ready(Some(Err(e)))`: as [`ReconnectingSink::poll_next`], and
    ///   [`Error::ResumeViolation`] for a broken frame (the messages from there on are
    ///   asked for again).
    /// - `Ready(None)`: not dialed, closed, failed for good, or the server ended the
    ///   session.
    /// - `Pending`: waiting. What the application took is acknowledged at once when the
    ///   server asked for that, else after a quarter of the receive window or
    ///   `ack_delay`.
    ///
    /// ```no_run
    /// # async fn run(mut ws: ws_reconnect::ResumingSink) -> Result<(), ws_reconnect::Error> {
    /// use futures::StreamExt; // `next()` polls this
    /// use ws_reconnect::Error;
    /// while let Some(item) = ws.next().await {
    ///     match item {
    ///         Ok(message) => println!("{message}"),
    ///         Err(Error::Gap(gap)) => println!("lost for good: {gap}"),
    ///         Err(e) => println!("{e}"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        if self.switch.reader_plain {
            return self.inner.poll_next(cx).map_err_item();
        }
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            let replay = {
                let mut shared = lock(&self.cell);
                if let Some(violation) = shared.violations.pop_front() {
                    return Poll::Ready(Some(Err(Error::ResumeViolation(violation))));
                }
                let delivered = shared.inbound.delivered();
                if let Some(gap) = shared.gaps.take_at(delivered) {
                    shared.inbound.pass(&gap);
                    shared.took(&self.cell);
                    shared.stats.gaps += 1;
                    tracing::info!(%gap, "the reader is told of a gap");
                    return Poll::Ready(Some(Err(Error::Gap(gap))));
                }
                if self.held.is_none() && shared.bye_at.is_some_and(|at| at <= delivered) {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                shared.replay_from.take()
            };
            if let Some(from) = replay {
                self.send_control(Frame::Replay(from), Half::Read, cx);
                lock(&self.cell).stats.replays += 1;
            }
            if let Some(data) = self.held.take() {
                if let Some(message) = self.deliver(data) {
                    self.poll_ack(Half::Read, cx);
                    return Poll::Ready(Some(Ok(message)));
                }
                continue;
            }
            match self.inner.poll_next(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    // Everything but DATA was consumed on arrival.
                    if let Ok(Frame::Data(data)) = Frame::from_message(&message) {
                        self.held = Some(data);
                    }
                }
                Poll::Ready(Some(Err(Error::InboundDropped { count }))) => {
                    tracing::warn!(
                        count,
                        "messages were lost before the reader took them: asking again"
                    );
                    self.rewind();
                }
                Poll::Ready(Some(Err(e))) => {
                    let Some(e) = self.screen(e, Half::Read) else {
                        return self.poll_next(cx);
                    };
                    if matches!(e, Error::ResumeUnsupported) && self.plain.load(Ordering::Relaxed) {
                        // Where resume mode ended: plain messages from here on.
                        self.switch.reader_plain = true;
                    }
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    self.poll_ack(Half::Read, cx);
                    let mut shared = lock(&self.cell);
                    let delivered = shared.inbound.delivered();
                    let more = !shared.violations.is_empty()
                        || shared.replay_from.is_some()
                        || shared.bye_at.is_some_and(|at| at <= delivered)
                        || shared.gaps.ready_at(delivered);
                    if more {
                        continue;
                    }
                    shared.reader = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        }
    }

    /// The application takes `data` if it is the next one; a later one means frames were
    /// lost before the reader took them: they are asked for again.
    pub(super) fn deliver(&mut self, data: Data) -> Option<Message> {
        let mut shared = lock(&self.cell);
        let delivered = shared.inbound.delivered();
        if data.seq < delivered {
            return None;
        }
        if data.seq > delivered {
            drop(shared);
            tracing::warn!(
                expected = delivered,
                got = data.seq,
                "messages were lost before the reader took them: asking again"
            );
            self.rewind();
            return None;
        }
        let len = data.payload.len();
        shared.inbound.deliver(data.seq, len);
        shared.took(&self.cell);
        Some(data.into_message())
    }

    /// Frames read from the wire were lost before the application took them: expect them
    /// again from where it stands, and ask the server.
    pub(super) fn rewind(&mut self) {
        let mut shared = lock(&self.cell);
        let from = shared.inbound.rewind();
        shared.gaps.rewind(from);
        shared.replay_from = Some(from);
    }

    /// Sends an acknowledgement when one is due (the server prompted for it, a quarter
    /// window was taken, or `ack_delay` passed), and flushes one written before.
    pub(super) fn poll_ack(&mut self, half: Half, cx: &mut Context<'_>) {
        if self.plain.load(Ordering::Relaxed) {
            return;
        }
        let owed = AckOwed::of(&lock(&self.cell), &self.config);
        self.settle_ack(owed, half, cx);
    }

    /// Sends the acknowledgement `owed` says is due, or arms the timer for it, and
    /// flushes one written before.
    pub(super) fn settle_ack(&mut self, owed: AckOwed, half: Half, cx: &mut Context<'_>) {
        let ack = match owed {
            AckOwed { due: Some(ack), .. } => Some(ack),
            // Nothing due yet: the timer runs for what is owed.
            AckOwed {
                since: Some(since), ..
            } if self.ack_delay_passed(since + self.config.ack_delay, cx) => {
                lock(&self.cell).inbound.owed()
            }
            AckOwed { .. } => None,
        };
        if let Some(ack) = ack {
            if self.inner.is_connected() {
                self.send_control(Frame::Ack(ack), half, cx);
                lock(&self.cell).ack_sent(ack, &self.cell);
            }
        } else if self.unflushed_ack && self.inner.poll_flush_written(half, cx).is_ready() {
            self.unflushed_ack = false;
        }
    }

    /// Whether `deadline` (`ack_delay` after the first unacknowledged take) has passed;
    /// if not, the timer is set for it and wakes the task polling now when it has.
    fn ack_delay_passed(&mut self, deadline: Instant, cx: &mut Context<'_>) -> bool {
        let timer = self
            .ack_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }

    /// Writes a control frame past the window and flushes it.
    pub(super) fn send_control(&mut self, frame: Frame, half: Half, cx: &mut Context<'_>) {
        // A plain server would take it for the application's.
        if self.plain.load(Ordering::Relaxed) {
            return;
        }
        if self.inner.start_send_control(frame.to_message()).is_ok() {
            self.unflushed_ack = self.inner.poll_flush_written(half, cx).is_pending();
        }
    }
}

/// The acknowledgement this client owes the server, as one look at the shared state
/// finds it.
#[derive(Debug, Clone, Copy)]
pub(super) struct AckOwed {
    /// Due now.
    due: Option<u64>,
    /// Something has been owed since then (the `ack_delay` timer runs from there).
    since: Option<Instant>,
}

impl AckOwed {
    /// What `shared` owes now: what the server prompted for, or what the count and
    /// byte thresholds make due; and since when something is owed.
    pub(super) fn of(shared: &Shared, config: &ResumeConfig) -> Self {
        AckOwed {
            due: shared.inbound.due(config.ack_every()),
            since: shared.owed_since,
        }
    }
}
