//! The task behind a [`Handle`](super::Handle): one loop that reads, writes, flushes and
//! closes the sink.
//!
//! ```text
//! phase     | does                                                    | next
//! ----------+---------------------------------------------------------+--------------------
//! Running   | forwards inbound items; takes queued messages while the | Draining: close()
//!           | sink is ready; flushes after each batch; after a        | Closing: every handle
//!           | refusal by the limiter, writes wait for its window      |   and the receiver gone
//!           |                                                         | ended: a failure
//! Draining  | no new messages; those queued before close() go to the  | Closing: queue empty,
//!           | sink                                                    |   or close_timeout
//! Closing   | the sink's close(), bounded by close_timeout            | ended
//! ```

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::sync::mpsc::{self, error::TrySendError, OwnedPermit};
use tokio::time::Sleep;

use super::{Ended, Shutdown};
use crate::connect::MakeConnection;
use crate::error::Error;
use crate::sink::{Outgoing, Promise, ReconnectingSink, Undelivered, UndeliveredReason};
use crate::Message;

/// A message a handle queued for the task.
pub(super) struct Command {
    pub(super) item: Outgoing,
    pub(super) promise: Option<Promise>,
}

type Item = Result<Message, Error>;
type Reserve =
    Pin<Box<dyn Future<Output = Result<OwnedPermit<Item>, mpsc::error::SendError<()>>> + Send>>;

/// The inbound side: where the sink's items go.
enum Outlet {
    /// Items go to the receiver, waiting for room when it is full.
    Open {
        tx: mpsc::Sender<Item>,
        /// An item waiting for room, and the wait.
        blocked: Option<(Item, Reserve)>,
        /// Resolves when the receiver is dropped.
        gone: Pin<Box<dyn Future<Output = ()> + Send>>,
    },
    /// The receiver was dropped: items are read and discarded.
    Gone,
}

pub(super) struct Task<M: MakeConnection> {
    sink: ReconnectingSink<M>,
    commands: mpsc::Receiver<Command>,
    /// A handle asked to close. Apart from the commands, so that a close is seen even
    /// while the commands wait behind a connection that takes nothing.
    close: mpsc::Receiver<()>,
    /// Every handle was dropped.
    commands_done: bool,
    /// A command taken but not yet accepted by the sink.
    staged: Option<Command>,
    outlet: Outlet,
    /// Messages written since the last successful flush.
    unflushed: bool,
    /// The pass wrote messages and left the flush for after a yield: senders on this
    /// runtime get to queue more first, and one flush covers them all (the outbox bound
    /// still flushes a long run).
    yield_before_flush: bool,
    /// The limiter refused: writes wait until then.
    refused: Option<Pin<Box<Sleep>>>,
    /// The last error item the sink's reader was told of (why its stream ended).
    last_error: Option<Error>,
    phase: Phase,
    /// Where the `Shutdown` goes; set once, by `finish` or, if the task is dropped
    /// unfinished (a panic unwinding, the runtime shutting down), by `Drop`.
    ended: Arc<Ended>,
    finished: bool,
}

/// See the table in the module docs.
enum Phase {
    Running,
    Draining { deadline: Pin<Box<Sleep>> },
    Closing,
}

impl<M: MakeConnection> Task<M>
where
    M::Future: Send,
    M::Connection: Send,
    M: Send + 'static,
{
    pub(super) fn new(
        sink: ReconnectingSink<M>,
        commands: mpsc::Receiver<Command>,
        close: mpsc::Receiver<()>,
        tx: mpsc::Sender<Item>,
        ended: Arc<Ended>,
    ) -> Self {
        let watch = tx.clone();
        Task {
            sink,
            commands,
            close,
            commands_done: false,
            staged: None,
            outlet: Outlet::Open {
                tx,
                blocked: None,
                gone: Box::pin(async move { watch.closed().await }),
            },
            unflushed: false,
            yield_before_flush: false,
            refused: None,
            last_error: None,
            phase: Phase::Running,
            ended,
            finished: false,
        }
    }

    /// Runs until the task ends and stores its `Shutdown`.
    pub(super) async fn run(mut self) {
        let result = poll_fn(|cx| self.poll(cx)).await;
        match &result {
            Ok(()) => tracing::info!("the connection's task ended"),
            Err(e) => tracing::warn!(error = %e, "the connection's task ended"),
        }
        let reason = || match &result {
            Ok(()) | Err(Error::CloseIncomplete { .. }) => UndeliveredReason::Closed,
            Err(e) => UndeliveredReason::GaveUp(e.duplicate()),
        };
        let undelivered = self.hand_back(reason);
        self.finished = true;
        self.ended.store(Shutdown {
            result,
            undelivered,
        });
    }

    /// One pass over everything that can progress; `Ready` with how the task ends.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            match &mut self.phase {
                Phase::Running => {
                    if let Poll::Ready(Some(())) = self.close.poll_recv(cx) {
                        tracing::debug!("close requested: delivering what was queued before it");
                        // Running -> Draining: the queue takes nothing more.
                        self.commands.close();
                        self.phase = Phase::Draining {
                            deadline: Box::pin(tokio::time::sleep(self.sink.close_timeout())),
                        };
                        continue;
                    }
                }
                Phase::Draining { deadline } => {
                    let expired = deadline.as_mut().poll(cx).is_ready();
                    if expired || (self.commands_done && self.staged.is_none()) {
                        // Draining -> Closing
                        self.phase = Phase::Closing;
                        continue;
                    }
                }
                Phase::Closing => return self.sink.poll_close(cx),
            }
            let mut progress = false;
            match self.poll_inbound(cx) {
                Poll::Ready(Ok(())) => progress = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
            match self.poll_outbound(cx) {
                Poll::Ready(Ok(())) => progress = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
            if self.commands_done && matches!(self.outlet, Outlet::Gone) && self.staged.is_none() {
                tracing::debug!("every handle and the receiver are gone: closing");
                // Running -> Closing
                self.phase = Phase::Closing;
                continue;
            }
            if std::mem::take(&mut self.yield_before_flush) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// Moves one inbound item along. `Ready(Ok)`: progress; `Ready(Err)`: the sink's
    /// stream ended (it gave up); `Pending`: nothing to do now.
    fn poll_inbound(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Outlet::Open { tx, blocked, gone } = &mut self.outlet {
            if gone.as_mut().poll(cx).is_ready() {
                tracing::debug!("the receiver was dropped: inbound messages are discarded");
                self.outlet = Outlet::Gone;
                return Poll::Ready(Ok(()));
            }
            if let Some((_, reserve)) = blocked {
                let permit = ready!(reserve.as_mut().poll(cx));
                let Some((item, _)) = blocked.take() else {
                    return Poll::Ready(Ok(()));
                };
                match permit {
                    Ok(permit) => {
                        permit.send(item);
                    }
                    Err(_) => self.outlet = Outlet::Gone,
                }
                return Poll::Ready(Ok(()));
            }
            let _ = tx;
        }
        let item = match ready!(self.sink.poll_next(cx)) {
            Some(item) => item,
            None => {
                let error = self.last_error.take().unwrap_or(Error::TaskEnded);
                tracing::debug!(%error, "the sink's stream ended");
                return Poll::Ready(Err(error));
            }
        };
        if let Err(e) = &item {
            self.last_error = Some(e.duplicate());
        }
        match &mut self.outlet {
            Outlet::Open { tx, blocked, .. } => match tx.try_send(item) {
                Ok(()) => {}
                Err(TrySendError::Full(item)) => {
                    *blocked = Some((item, Box::pin(tx.clone().reserve_owned())));
                }
                Err(TrySendError::Closed(_)) => self.outlet = Outlet::Gone,
            },
            Outlet::Gone => {}
        }
        Poll::Ready(Ok(()))
    }

    /// Takes commands while the sink is ready, then flushes. `Ready(Ok)`: progress;
    /// `Ready(Err)`: the sink failed for good; `Pending`: waiting.
    fn poll_outbound(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(sleep) = &mut self.refused {
            ready!(sleep.as_mut().poll(cx));
            self.refused = None;
        }
        let mut progress = false;
        let mut wrote = false;
        loop {
            if self.staged.is_none() && !self.commands_done {
                match self.commands.poll_recv(cx) {
                    Poll::Ready(Some(command)) => self.staged = Some(command),
                    Poll::Ready(None) => {
                        self.commands_done = true;
                        progress = true;
                    }
                    Poll::Pending => {}
                }
            }
            match self.staged.take() {
                None => break,
                Some(send) => match self.sink.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        let Command { item, promise } = send;
                        let accepted = match promise {
                            Some(promise) => self.sink.start_send_promised(item, promise),
                            None => self.sink.start_send_outgoing_untracked(item),
                        };
                        if let Err(e) = accepted {
                            // Not dialed or closing: cannot happen while the task runs.
                            tracing::warn!(error = %e, "the sink refused a message");
                        }
                        self.unflushed = true;
                        progress = true;
                        wrote = true;
                    }
                    Poll::Ready(Err(error)) => {
                        self.staged = Some(send);
                        return self.write_failed(error, cx);
                    }
                    Poll::Pending => {
                        self.staged = Some(send);
                        break;
                    }
                },
            }
        }
        if self.unflushed && wrote && matches!(self.phase, Phase::Running) {
            self.yield_before_flush = true;
        } else if self.unflushed {
            match self.sink.poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.unflushed = false;
                    progress = true;
                }
                Poll::Ready(Err(error)) => return self.write_failed(error, cx),
                Poll::Pending => {}
            }
        }
        if progress {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    /// A write or flush failed: a refusal by the limiter holds writes until its window
    /// frees; anything else is for good.
    fn write_failed(&mut self, error: Error, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Error::TooManyReconnects {
            retry_at: Some(at), ..
        } = error
        {
            tracing::debug!("writes wait for the limiter's window");
            let mut sleep = Box::pin(tokio::time::sleep_until(at));
            if sleep.as_mut().poll(cx).is_pending() {
                self.refused = Some(sleep);
            }
            return Poll::Ready(Ok(()));
        }
        Poll::Ready(Err(error))
    }
}

impl<M: MakeConnection> Task<M> {
    /// The task ends: outcomes fail with `reason`, handing their messages back; returns
    /// every other message still owed, in the sink or queued.
    fn hand_back(&mut self, reason: impl Fn() -> UndeliveredReason) -> Vec<Message> {
        // Outcomes the sink still holds fail with the reason (close() did that already).
        self.sink.give_up(&reason);
        let mut undelivered = self.sink.take_undelivered();
        self.commands.close();
        while let Some(Command { item, promise }) =
            self.staged.take().or_else(|| self.commands.try_recv().ok())
        {
            let message = item.into_message();
            match promise {
                Some(promise) => promise.fail(Undelivered::new(reason(), message)),
                None => undelivered.push(message),
            }
        }
        if !undelivered.is_empty() {
            tracing::warn!(
                undelivered = undelivered.len(),
                "the connection's task ended with messages undelivered"
            );
        }
        undelivered
    }
}

impl<M: MakeConnection> Drop for Task<M> {
    /// Dropped unfinished (a panic in user code unwinding through the sink, or the
    /// runtime shutting down): what was owed is still handed back.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let undelivered = self.hand_back(|| UndeliveredReason::Dropped);
        self.ended.store(Shutdown {
            result: Err(Error::TaskEnded),
            undelivered,
        });
    }
}
