//! `close()`: deliver what is owed, send a Close frame and wait for the peer's, all by
//! one deadline.

use std::future::Future;
use std::task::{ready, Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;

use super::driver::{Core, State};
use super::inbound::Inbound;
use super::outcome::UndeliveredReason;
use super::state::ConnectionState;
use crate::connect::MakeConnection;
use crate::error::{BoxError, Error};

impl<M: MakeConnection> Core<M> {
    /// Closes within `close_timeout` of the first call, in every state. With nothing
    /// owed and no connection up it closes at once; any attempt in flight is dropped.
    pub(super) fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if matches!(self.state, State::Idle) {
            // Never dialed, or closed already; messages a failed close left behind are
            // still owed.
            self.close_deadline = None;
            self.publish(ConnectionState::Closed);
            return Poll::Ready(match self.outbox.len() {
                0 => Ok(()),
                undelivered => Err(Error::CloseIncomplete {
                    undelivered,
                    source: Box::new(Error::NotDialed),
                }),
            });
        }
        let timeout = self.timing.close_timeout;
        let expired = self
            .close_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)))
            .as_mut()
            .poll(cx)
            .is_ready();
        loop {
            match &mut self.state {
                State::Idle => return Poll::Ready(self.closed(None)),
                State::Closing { conn, sent } => {
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
                    } else {
                        // Wait for the peer's Close (or EOF) before dropping the socket:
                        // dropping it with the peer's frame unread makes the kernel send a
                        // RST, which discards data still queued in our send buffer.
                        if let Some(Ok(message)) = ready!(conn.as_mut().poll_next(cx)) {
                            if let Inbound::Data(m) = self.inbound(message) {
                                self.queue_inbound(m);
                            }
                            continue;
                        }
                    }
                    return Poll::Ready(self.closed(None));
                }
                _ => {
                    if self.outbox.is_empty() && !matches!(self.state, State::Connected(_)) {
                        return Poll::Ready(self.closed(None));
                    }
                    if expired {
                        return Poll::Ready(self.closed(Some(Error::Timeout)));
                    }
                    if let Err(e) = ready!(self.poll_flush(cx)) {
                        return Poll::Ready(self.closed(Some(e)));
                    }
                    match std::mem::replace(&mut self.state, State::Idle) {
                        State::Connected(live) => {
                            // Connected -> Closing
                            self.state = State::Closing {
                                conn: live.conn,
                                sent: false,
                            };
                            self.publish(ConnectionState::Closing);
                        }
                        // A flush that owed nothing while reconnecting: -> Idle
                        other => {
                            self.state = other;
                            return Poll::Ready(self.closed(None));
                        }
                    }
                }
            }
        }
    }

    /// any -> Idle at the end of `close()`. `failure`: why what is still owed could not be
    /// delivered.
    fn closed(&mut self, failure: Option<Error>) -> Result<(), Error> {
        if matches!(self.state, State::Connected(_) | State::Closing { .. }) {
            self.connection_ended();
        }
        self.state = State::Idle;
        self.close_deadline = None;
        self.publish(ConnectionState::Closed);
        self.wakers.wake_other(self.current);
        let undelivered = self.outbox.len();
        if undelivered == 0 {
            tracing::info!("closed by the user");
            return Ok(());
        }
        let source = Box::new(failure.unwrap_or(Error::Timeout));
        tracing::warn!(undelivered, error = %source, "closed by the user with messages undelivered");
        // Messages sent with an outcome are handed back through it; the rest stay.
        self.outbox.give_up(|| UndeliveredReason::Closed);
        Err(Error::CloseIncomplete {
            undelivered,
            source,
        })
    }
}
