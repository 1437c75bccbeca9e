//! `close()`: deliver what is owed, send a Close frame and wait for the peer's, all by
//! one deadline.

use std::future::Future;
use std::task::{ready, Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;

use super::books::Received;
use super::driver::{Core, State};
use super::outcome::UndeliveredReason;
use super::state::ConnectionState;
use super::write::Settled;
use super::Message;
use crate::connect::MakeConnection;
use crate::error::{BoxError, Error};

impl<M: MakeConnection> Core<M> {
    /// Closes within `close_timeout` of the first call, in every state. With nothing
    /// owed and no connection up it closes at once; any attempt in flight is dropped.
    pub(super) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if matches!(self.state, State::Idle) {
            // Never dialed, or closed already; messages a failed close left behind are
            // still owed.
            self.record.close_deadline = None;
            self.signals.publish(ConnectionState::Closed);
            return Poll::Ready(match self.books.outbox.len() {
                0 => Ok(()),
                undelivered => Err(Error::CloseIncomplete {
                    undelivered,
                    source: Box::new(Error::NotDialed),
                }),
            });
        }
        let timeout = self.config.timing.close_timeout;
        let expired = self
            .record
            .close_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)))
            .as_mut()
            .poll(cx)
            .is_ready();
        loop {
            if let State::Closing { .. } = self.state {
                return Poll::Ready(ready!(self.poll_handshake(expired, cx)));
            }
            if matches!(self.state, State::Idle) {
                return Poll::Ready(self.closed(None));
            }
            if self.books.outbox.is_empty() && !self.is_connected() {
                // A flush that owes nothing while reconnecting: -> Idle
                return Poll::Ready(self.closed(None));
            }
            if expired {
                return Poll::Ready(self.closed(Some(Error::Timeout)));
            }
            // Our Close confirms what was flushed before it: no need to wait for the
            // Pong.
            if let Err(e) = ready!(self.poll_flush_until(Settled::Flushed, cx)) {
                return Poll::Ready(self.closed(Some(e)));
            }
            if !self.is_connected() {
                return Poll::Ready(self.closed(None));
            }
            // Connected -> Closing
            self.enter_from(Some(ConnectionState::Closing), |state| match state {
                State::Connected(link) => {
                    let (conn, fence) = link.into_closing();
                    State::Closing {
                        conn,
                        sent: false,
                        answered: false,
                        fence,
                    }
                }
                other => other,
            });
        }
    }

    /// Closing: sends our Close frame, then waits for the peer's (or EOF) before dropping
    /// the socket: dropping it with the peer's frame unread makes the kernel send a RST,
    /// which discards data still queued in our send buffer. Data that arrives meanwhile
    /// goes to the reader.
    fn poll_handshake(&mut self, expired: bool, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            let State::Closing {
                conn,
                sent,
                answered,
                fence,
            } = &mut self.state
            else {
                return Poll::Ready(self.closed(None));
            };
            if expired {
                tracing::debug!("the peer did not finish the closing handshake in time");
            } else if !*sent {
                match ready!(conn.as_mut().poll_close(cx)) {
                    Ok(()) => {
                        *sent = true;
                        continue;
                    }
                    Err(e) => {
                        let e: BoxError = e.into();
                        tracing::debug!(error = %e, "error while sending Close; connection dropped");
                    }
                }
            } else if let Some(Ok(message)) = ready!(conn.as_mut().poll_next(cx)) {
                if let (Message::Pong(payload), Some(fence)) = (&message, fence.as_mut()) {
                    if let Some(through) = fence.answered(payload) {
                        self.books.outbox.confirm_through(through);
                    }
                }
                match self.books.receive(message) {
                    Received::Data { message, progress } => {
                        self.books.queue_inbound(message, &self.signals);
                        if progress {
                            self.signals.wake_other();
                        }
                    }
                    Received::Acknowledged { progress: true } => self.signals.wake_other(),
                    // Our Close carries no code, and a peer answering it sends it back
                    // as it came; a Close with a code is the peer's own, crossing ours
                    // (a deploy's 1001), which says nothing of what it read.
                    Received::Closed(frame) => *answered = frame.is_none(),
                    _ => {}
                }
                continue;
            }
            return Poll::Ready(self.closed(None));
        }
    }

    /// any -> Idle at the end of `close()`. `failure`: why what is still owed could not be
    /// delivered.
    fn closed(&mut self, failure: Option<Error>) -> Result<(), Error> {
        match self.state {
            // Our Close went out after everything owed, and the peer's Close says it read
            // it all: what was flushed is delivered.
            State::Closing { answered: true, .. } => {
                self.books.outbox.confirm_all();
                self.connection_ended(None, false, true);
            }
            // The peer hung up, stayed silent or sent a Close of its own: only what was
            // confirmed before counts; the rest is undelivered, the close's failure.
            State::Closing { .. } | State::Connected(_) => {
                let confirmed_before = self.books.confirmation.ended(None);
                self.connection_ended(confirmed_before, false, true);
            }
            _ => {}
        }
        self.record.close_deadline = None;
        self.enter(State::Idle, Some(ConnectionState::Closed));
        let undelivered = self.books.outbox.len();
        if undelivered == 0 {
            tracing::info!("closed by the user");
            return Ok(());
        }
        let source = Box::new(failure.unwrap_or(Error::Timeout));
        tracing::warn!(undelivered, error = %source, "closed by the user with messages undelivered");
        // Messages sent with an outcome are handed back through it; the rest stay.
        self.books.outbox.give_up(|| UndeliveredReason::Closed);
        Err(Error::CloseIncomplete {
            undelivered,
            source,
        })
    }
}
