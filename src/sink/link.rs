//! The live link: one established connection and what belongs to it (the messages sent
//! first on it, its keepalive and acknowledgement timer, its record), with the
//! operations the halves run on it.
//!
//! Nothing here changes the sink's state. An operation that finds the connection gone
//! returns the [`End`] it found, and the driver decides what comes next; what it does to
//! the books (a flush lets go of messages, a read queues one for the reader) is the
//! link's business.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_sink::Sink;
use tokio::time::{Instant, Sleep};

use super::acks::AckTimer;
use super::books::{Books, Received};
use super::confirm::{ConfirmBy, Fence};
use super::end::{End, Lost};
use super::framing::Framing;
use super::inbound::read_failure;
use super::keepalive::{KeepaliveTimer, Ping};
use super::outbox::Outbox;
use super::waker::Signals;
use crate::connect::MakeConnection;
use crate::error::Error;
use crate::Message;

/// A connection that messages written on it were flushed through, and that stayed up
/// this long, is productive: its loss is followed by an immediate reconnection. A server
/// that accepts and drops at once ends connections sooner, and so still meets growing
/// delays.
pub(super) const PRODUCTIVE_UPTIME: Duration = Duration::from_millis(100);

/// An established connection and what has been written to it.
pub(super) struct Link<M: MakeConnection> {
    pub(super) conn: Pin<Box<M::Connection>>,
    since: Instant,
    /// What the connection did, for [`healthy`](Self::healthy).
    record: Record,
    /// The peer broke the protocol and one last write was granted: the next flush drops
    /// the connection. Holds the cause.
    pub(super) fault: Option<String>,
    /// The messages sent first on this connection (fixed and computed).
    hello: Vec<Message>,
    /// Of which this many are written.
    preamble: usize,
    /// The preamble, a resend or a Ping was written and nobody has flushed it yet.
    pub(super) needs_flush: bool,
    /// The last flush (or readiness check) found the socket full: written data waits.
    write_blocked: bool,
    keepalive: Option<KeepaliveTimer>,
    ack_timer: Option<AckTimer>,
    /// The Ping whose Pong confirms what was flushed before it (`None` unless messages
    /// are confirmed by Pongs).
    fence: Option<Fence>,
    /// Armed while flushed messages with an outcome wait for their confirmation.
    confirm_timer: Option<Pin<Box<Sleep>>>,
}

/// What a connection carried, for its health.
#[derive(Debug, Default, Clone, Copy)]
struct Record {
    /// A data message or an acknowledgement arrived.
    delivered: bool,
    /// Messages accepted while this connection was up were written to it directly...
    wrote_fresh: bool,
    /// ... and a flush that included them succeeded.
    carried: bool,
}

/// One inbound data message for the reader, or a frame the link consumed.
pub(super) enum Frame {
    Data(Message),
    Consumed,
}

impl<M: MakeConnection> Link<M> {
    pub(super) fn new(
        conn: M::Connection,
        hello: Vec<Message>,
        keepalive: Option<KeepaliveTimer>,
        ack_timeout: Option<Duration>,
        fence: bool,
    ) -> Self {
        Link {
            conn: Box::pin(conn),
            since: Instant::now(),
            record: Record::default(),
            fault: None,
            hello,
            preamble: 0,
            needs_flush: false,
            write_blocked: false,
            keepalive,
            ack_timer: ack_timeout.map(AckTimer::new),
            fence: fence.then(Fence::default),
            confirm_timer: None,
        }
    }

    /// What the closing handshake keeps of the link: the connection, and the fence whose
    /// Pong may still arrive before the peer's Close.
    pub(super) fn into_closing(self) -> (Pin<Box<M::Connection>>, Option<Fence>) {
        (self.conn, self.fence)
    }

    pub(super) fn uptime(&self) -> Duration {
        self.since.elapsed()
    }

    /// Whether the connection proved healthy, so that the next attempt may be immediate:
    /// it carried traffic (delivered a message or an acknowledgement, or messages written
    /// on it were flushed) and stayed up [`PRODUCTIVE_UPTIME`], or it stayed up
    /// `healthy_after`. A server that greets and closes at once, or accepts and drops,
    /// does neither, and meets growing delays.
    pub(super) fn healthy(&self, healthy_after: Duration) -> bool {
        let uptime = self.uptime();
        let Record {
            delivered, carried, ..
        } = self.record;
        uptime >= healthy_after || ((delivered || carried) && uptime >= PRODUCTIVE_UPTIME)
    }

    /// Whether every hello message is written.
    #[inline]
    pub(super) fn preamble_done(&self) -> bool {
        self.preamble == self.hello.len()
    }

    /// Writes the hello messages, then every outbox message not yet written to this
    /// connection (tracked ones framed by `framing`, if any). `Ok(n)`: all written, `n` of
    /// them from the outbox (resent).
    pub(super) fn poll_write_backlog(
        &mut self,
        outbox: &mut Outbox,
        mut framing: Option<&mut (dyn Framing + 'static)>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<usize, End>> {
        let mut resent = 0usize;
        loop {
            // What is held back goes as one, at the flush (see `outbox/deferred.rs`).
            if self.preamble_done() && outbox.all_written_or_deferred() {
                return Poll::Ready(Ok(resent));
            }
            // Ready before the message is made: framing one may have an effect (resume
            // mode's carries the acknowledgement owed, and counts it sent), so a message
            // is framed only to be written.
            ready!(self.poll_ready(cx))?;
            let message = if let Some(m) = self.hello.get(self.preamble) {
                m.clone()
            } else if let Some(m) = outbox.next_unwritten(framing.as_deref_mut()) {
                m
            } else {
                return Poll::Ready(Ok(resent));
            };
            self.conn
                .as_mut()
                .start_send(message)
                .map_err(|e| Lost::new(e.into()))?;
            if self.preamble < self.hello.len() {
                self.preamble += 1;
            } else {
                outbox.mark_written();
                resent += 1;
            }
            self.needs_flush = true;
        }
    }

    /// Writes the messages held back for a batch, if any, as one: what a flush covers is
    /// written (see `outbox/deferred.rs`).
    pub(super) fn poll_write_deferred(
        &mut self,
        books: &mut Books,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), End>> {
        if books.outbox.deferred().count == 0 || !self.preamble_done() {
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_ready(cx))?;
        Poll::Ready(self.write_deferred(books))
    }

    /// Writes the messages held back for a batch, if any, as one, once the hello
    /// messages are written: after `poll_ready` (see `outbox/deferred.rs`).
    pub(super) fn write_deferred(&mut self, books: &mut Books) -> Result<(), End> {
        if !self.preamble_done() {
            return Ok(());
        }
        let (outbox, framing) = books.writing();
        if let Some(gathered) = framing.and_then(|framing| outbox.gather(framing)) {
            self.write(gathered.message)?;
            outbox.mark_written_n(gathered.entries);
        }
        Ok(())
    }

    /// Whether the connection can take a message now.
    #[inline]
    pub(super) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), End>> {
        let ready = self.conn.as_mut().poll_ready(cx);
        self.write_blocked = ready.is_pending();
        ready.map_err(|e| Lost::new(e.into()).into())
    }

    /// Writes a message accepted while this connection is up (after `poll_ready`).
    #[inline]
    pub(super) fn write(&mut self, message: Message) -> Result<(), End> {
        self.conn
            .as_mut()
            .start_send(message)
            .map_err(|e| Lost::new(e.into()))?;
        self.record.wrote_fresh = true;
        Ok(())
    }

    /// Flushes everything written so far; on success what was written is in the socket
    /// and the outbox lets go of its untracked part.
    pub(super) fn poll_flush(
        &mut self,
        books: &mut Books,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), End>> {
        ready!(self.poll_write_deferred(books, cx))?;
        let flushed = self.conn.as_mut().poll_flush(cx);
        self.write_blocked = flushed.is_pending();
        ready!(flushed).map_err(|e| Lost::new(e.into()))?;
        self.needs_flush = false;
        self.record.carried |= self.record.wrote_fresh;
        books.flushed();
        self.send_fence(books, cx)?;
        Poll::Ready(Ok(()))
    }

    /// Reads the next frame, as the connection gives it: data for the reader, or a frame
    /// the books consumed (control, an acknowledgement). `Err`: the connection ended (a
    /// peer's protocol violation is queued for the reader first).
    pub(super) fn poll_frame(
        &mut self,
        books: &mut Books,
        signals: &Signals,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Frame, End>> {
        let Poll::Ready(next) = self.conn.as_mut().poll_next(cx) else {
            // Nothing waiting: a quiet look, which with `ConfirmBy::After` confirms what
            // was flushed long enough before (see `confirm.rs`).
            books.quiet();
            return Poll::Pending;
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                return Poll::Ready(Err(match read_failure(Error::from_boxed(e.into())) {
                    // A reset, an EOF without a Close frame, an I/O error: a drop like
                    // any other, reported by `state()` and the logs, not to the reader.
                    Ok(lost) => lost.into(),
                    // A frame too large, invalid UTF-8, a protocol violation: the
                    // connection is replaced, and the reader is told once.
                    Err(error) => {
                        let cause = error.to_string();
                        tracing::info!(%error, "the peer broke the protocol; the reader is told");
                        books.inbox.push_error(error);
                        signals.wake_read();
                        End::Faulted(cause)
                    }
                }));
            }
            None => return Poll::Ready(Err(Lost::new("end of stream".into()).into())),
        };
        if let Some(keepalive) = &mut self.keepalive {
            keepalive.frame_received();
        }
        if let (Message::Pong(payload), Some(fence)) = (&message, &mut self.fence) {
            if let Some(through) = fence.answered(payload) {
                let confirmed = books.outbox.confirm_through(through);
                tracing::trace!(confirmed, round_trip = ?fence.round_trip, "flushed messages confirmed");
                // What was flushed since gets its fence now rather than at the next flush.
                if let Err(end) = self.send_fence(books, cx) {
                    return Poll::Ready(Err(end));
                }
            }
        }
        Poll::Ready(match books.receive(message) {
            Received::Data { message, progress } => {
                self.record.delivered = true;
                if progress {
                    self.acknowledged(signals);
                }
                Ok(Frame::Data(message))
            }
            Received::Acknowledged { progress } => {
                if progress {
                    self.record.delivered = true;
                    self.acknowledged(signals);
                }
                Ok(Frame::Consumed)
            }
            Received::Control => Ok(Frame::Consumed),
            Received::Closed(frame) => Err(End::Closed(frame)),
        })
    }

    /// An acknowledgement let go of tracked messages.
    fn acknowledged(&mut self, signals: &Signals) {
        if let Some(timer) = &mut self.ack_timer {
            timer.progress();
        }
        // A writer may be waiting for room in the window or for this flush.
        signals.wake_other();
    }

    /// Processes the frames that have already arrived, without waiting, so that a Close
    /// or EOF is noticed before the next write. Data goes to the inbox up to its bound;
    /// after that the socket is left unread (TCP backpressure), except in acknowledged
    /// mode, where acknowledgements must be read whatever is queued.
    pub(super) fn poll_arrived(
        &mut self,
        books: &mut Books,
        signals: &Signals,
        cx: &mut Context<'_>,
    ) -> Result<(), End> {
        // Past a protocol violation the framing means nothing: read no further.
        while books.may_read() && self.fault.is_none() {
            match self.poll_frame(books, signals, cx) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Ok(Frame::Data(message))) => books.queue_inbound(message, signals),
                Poll::Ready(Ok(Frame::Consumed)) => {}
                Poll::Ready(Err(end)) => return Err(end),
            }
        }
        Ok(())
    }

    /// The connection's timers: the acknowledgement timer (while tracked messages wait,
    /// held or let go of),
    /// the confirmation of flushed messages whose outcomes wait, the fence Ping,
    /// and the keepalive (held while the socket is left unread), with the flush of a
    /// Ping they wrote.
    pub(super) fn poll_timers(
        &mut self,
        books: &mut Books,
        signals: &Signals,
        cx: &mut Context<'_>,
    ) -> Result<(), End> {
        if let Some(timer) = &mut self.ack_timer {
            timer.poll(!books.outbox.all_acknowledged(), cx)?;
        }
        self.poll_confirmation(books, signals, cx)?;
        self.send_fence(books, cx)?;
        let Some(keepalive) = &mut self.keepalive else {
            return Ok(());
        };
        // The inbox is full and the socket left unread: inbound silence proves nothing,
        // so the clock is held, unless written data waits on a full socket too. Then
        // nothing moves either way, and the keepalive must be able to end it.
        if books.leaves_unread() && !self.write_blocked {
            keepalive.hold();
            return Ok(());
        }
        if keepalive.poll(self.conn.as_mut(), cx)? == Ping::Written {
            self.needs_flush = true;
            if let Poll::Ready(Err(end)) = self.poll_flush(books, cx) {
                return Err(end);
            }
        }
        Ok(())
    }

    /// With [`ConfirmBy::After`](super::ConfirmBy::After), while flushed messages with an
    /// outcome wait for their confirmation: a timer for the moment the oldest can have it,
    /// then a look at what arrived (a quiet one confirms it), so that the outcome resolves
    /// even if nothing else happens. (A Pong wakes whoever waits by itself.) Other
    /// messages are confirmed by the looks the halves make anyway: a look forced by the
    /// clock while a slow server has not read yet would confirm what it may still drop.
    fn poll_confirmation(
        &mut self,
        books: &mut Books,
        signals: &Signals,
        cx: &mut Context<'_>,
    ) -> Result<(), End> {
        loop {
            let ConfirmBy::After(after) = books.confirmation.by else {
                return Ok(());
            };
            let Some(oldest) = books
                .outbox
                .oldest_unconfirmed()
                .filter(|_| books.outbox.unconfirmed_outcomes())
            else {
                self.confirm_timer = None;
                return Ok(());
            };
            let due = oldest + after + Duration::from_millis(1);
            let timer = self
                .confirm_timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
            if timer.deadline() != due {
                timer.as_mut().reset(due);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            if !books.may_read() {
                // The socket is left unread (the inbox is full): no quiet look can be
                // had; look again later.
                timer.as_mut().reset(Instant::now() + after);
                let _ = timer.as_mut().poll(cx);
                return Ok(());
            }
            self.poll_arrived(books, signals, cx)?;
            if books.outbox.oldest_unconfirmed() == Some(oldest) {
                // Frames kept coming: no quiet look yet. The next poll tries again.
                cx.waker().wake_by_ref();
                return Ok(());
            }
        }
    }

    /// Writes the fence Ping after a flush that left messages unconfirmed, when none is
    /// out and the socket takes it (see `confirm.rs`). Its flush is tried once; what it
    /// leaves in the connection's buffer goes with the next flush.
    fn send_fence(&mut self, books: &Books, cx: &mut Context<'_>) -> Result<(), End> {
        let Some(fence) = &mut self.fence else {
            return Ok(());
        };
        let Some(through) = books.outbox.newest_unconfirmed() else {
            return Ok(());
        };
        if fence.is_out() {
            return Ok(());
        }
        match self.conn.as_mut().poll_ready(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(e)) => return Err(Lost::new(e.into()).into()),
            Poll::Pending => return Ok(()),
        }
        let Some(ping) = fence.ping(through) else {
            return Ok(());
        };
        if let Err(e) = self.conn.as_mut().start_send(ping) {
            fence.unsent();
            return Err(Lost::new(e.into()).into());
        }
        match self.conn.as_mut().poll_flush(cx) {
            Poll::Ready(Ok(())) => Ok(()),
            Poll::Ready(Err(e)) => Err(Lost::new(e.into()).into()),
            Poll::Pending => {
                self.needs_flush = true;
                Ok(())
            }
        }
    }

    /// Answers the peer's Close before the connection is dropped (RFC 6455). One
    /// non-blocking try: tungstenite has queued the reply; if the socket is full the
    /// connection is dropped anyway. Messages it flushes stay in the outbox and are
    /// resent (possible duplicates, never losses).
    pub(super) fn answer_close(&mut self, cx: &mut Context<'_>) {
        let _ = self.conn.as_mut().poll_close(cx);
    }
}
