//! The live connection: writing the backlog and new messages, flushing, and its own
//! liveness parts (keepalive, acknowledgement timer).
//!
//! Nothing here changes the sink's state. A method that finds the connection dead
//! returns [`Lost`] with the cause, and the driver decides what comes next.

use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use futures_sink::Sink;
use tokio::time::Instant;

use super::acks::AckTimer;
use super::keepalive::{Keepalive, KeepaliveTimer, Ping};
use super::lost::Lost;
use super::outbox::Outbox;
use crate::connect::MakeConnection;
use crate::Message;

/// A connection that messages written on it were flushed through, and that stayed up
/// this long, is productive: its loss is followed by an immediate reconnection. A server
/// that accepts and drops at once ends connections sooner, and so still meets growing
/// delays.
pub(super) const PRODUCTIVE_UPTIME: Duration = Duration::from_millis(100);

/// An established connection and what has been written to it.
pub(super) struct Live<M: MakeConnection> {
    pub(super) conn: Pin<Box<M::Connection>>,
    since: Instant,
    /// A data message or an acknowledgement arrived.
    delivered: bool,
    /// Messages accepted while this connection was up were written to it directly...
    wrote_fresh: bool,
    /// ... and a flush that included them succeeded.
    carried: bool,
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
}

impl<M: MakeConnection> Live<M> {
    pub(super) fn new(
        conn: M::Connection,
        hello: Vec<Message>,
        keepalive: Option<Keepalive>,
        ack_timeout: Option<Duration>,
    ) -> Self {
        Live {
            conn: Box::pin(conn),
            since: Instant::now(),
            delivered: false,
            wrote_fresh: false,
            carried: false,
            fault: None,
            hello,
            preamble: 0,
            needs_flush: false,
            write_blocked: false,
            keepalive: keepalive.map(KeepaliveTimer::new),
            ack_timer: ack_timeout.map(AckTimer::new),
        }
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
        uptime >= healthy_after || ((self.delivered || self.carried) && uptime >= PRODUCTIVE_UPTIME)
    }

    /// Whether every hello message is written.
    #[inline]
    pub(super) fn preamble_done(&self) -> bool {
        self.preamble == self.hello.len()
    }

    /// Any frame arrived: the keepalive's clock starts over.
    pub(super) fn frame_received(&mut self) {
        if let Some(keepalive) = &mut self.keepalive {
            keepalive.frame_received();
        }
    }

    /// A data message arrived.
    pub(super) fn delivered(&mut self) {
        self.delivered = true;
    }

    /// An acknowledgement made progress.
    pub(super) fn acknowledged(&mut self) {
        self.delivered = true;
        if let Some(timer) = &mut self.ack_timer {
            timer.progress();
        }
    }

    /// Writes the hello messages, then every outbox message not yet written to this
    /// connection. `Ok(n)`: all written, `n` of them from the outbox (resent).
    pub(super) fn poll_write_backlog(
        &mut self,
        outbox: &mut Outbox,
        cx: &mut Context<'_>,
    ) -> Poll<Result<usize, Lost>> {
        let mut resent = 0usize;
        loop {
            let message = if let Some(m) = self.hello.get(self.preamble) {
                m.clone()
            } else if let Some(m) = outbox.next_unwritten() {
                m
            } else {
                return Poll::Ready(Ok(resent));
            };
            if let Err(lost) = ready!(self.poll_ready(cx)) {
                return Poll::Ready(Err(lost));
            }
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

    /// Whether the connection can take a message now.
    #[inline]
    pub(super) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Lost>> {
        let ready = self.conn.as_mut().poll_ready(cx);
        self.write_blocked = ready.is_pending();
        ready.map_err(|e| Lost::new(e.into()))
    }

    /// Writes a message accepted while this connection is up (after `poll_ready`).
    #[inline]
    pub(super) fn write(&mut self, message: Message) -> Result<(), Lost> {
        self.conn
            .as_mut()
            .start_send(message)
            .map_err(|e| Lost::new(e.into()))?;
        self.wrote_fresh = true;
        Ok(())
    }

    /// Flushes everything written so far.
    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Lost>> {
        let flushed = self.conn.as_mut().poll_flush(cx);
        self.write_blocked = flushed.is_pending();
        ready!(flushed).map_err(|e| Lost::new(e.into()))?;
        self.needs_flush = false;
        self.carried |= self.wrote_fresh;
        Poll::Ready(Ok(()))
    }

    /// The next inbound message, as the connection gives it.
    pub(super) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, M::StreamError>>> {
        self.conn.as_mut().poll_next(cx)
    }

    /// The connection's timers: the acknowledgement timer (while `outstanding` tracked
    /// messages wait) and the keepalive (held while the socket is left `unread`). A
    /// keepalive Ping that was written needs a flush: `Ok(Ping::Written)`.
    pub(super) fn poll_timers(
        &mut self,
        outstanding: bool,
        unread: bool,
        cx: &mut Context<'_>,
    ) -> Result<Ping, Lost> {
        if let Some(timer) = &mut self.ack_timer {
            timer.poll(outstanding, cx)?;
        }
        let Some(keepalive) = &mut self.keepalive else {
            return Ok(Ping::NotWritten);
        };
        // The inbox is full and the socket left unread: inbound silence proves nothing,
        // so the clock is held, unless written data waits on a full socket too. Then
        // nothing moves either way, and the keepalive must be able to end it.
        if unread && !self.write_blocked {
            keepalive.hold();
            return Ok(Ping::NotWritten);
        }
        let ping = keepalive.poll(self.conn.as_mut(), cx)?;
        if ping == Ping::Written {
            self.needs_flush = true;
        }
        Ok(ping)
    }
}
