//! The task behind a [`Handle`](super::Handle): one loop that reads, writes, flushes and
//! closes the sink.
//!
//! ```text
//! phase     | does                                                    | next
//! ----------+---------------------------------------------------------+---------------------
//! Running   | forwards inbound items; takes queued messages while the | Draining: close(), or
//!           | sink is ready; flushes after each batch; after a        |   every handle and the
//!           | refusal by the limiter, writes wait for its window      |   receiver gone
//!           |                                                         | ended: a failure
//! Draining  | no new messages; those queued before go to the sink;    | Closing: queue empty,
//!           | reading goes on                                         |   or close_timeout
//! Closing   | the sink's close(), bounded by close_timeout            | ended
//! ```
//!
//! At the end, whatever the sink read that the receiver has not taken (at most the
//! sink's inbox bound) goes into the receiver's tail, followed by the failure if the
//! reader was not told of it: the `Incoming` stream yields them after the channel.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::sync::mpsc::{self, error::TrySendError, OwnedPermit};
use tokio::time::Sleep;

use super::{Ended, Shutdown, QUEUE};
use crate::connect::MakeConnection;
use crate::error::Error;
use crate::sink::{Outgoing, Promise, ReconnectingSink, UndeliveredReason};
use crate::Message;

/// While writing, the task reads the connection at least once in this many passes.
const READ_EVERY_PASSES: u32 = 8;

/// A message a handle queued for the task.
pub(super) struct Command {
    pub(super) item: Outgoing,
    pub(super) promise: Option<Promise>,
}

type Item = Result<Message, Error>;
/// Items the receiver yields after the channel (see [`Task::hand_over_inbound`]).
pub(super) type Tail = Arc<std::sync::Mutex<std::collections::VecDeque<Item>>>;
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

/// See the table in the module docs.
enum Phase {
    Running,
    Draining { deadline: Pin<Box<Sleep>> },
    Closing,
}

pub(super) struct Task<M: MakeConnection> {
    pub(super) sink: ReconnectingSink<M>,
    pub(super) commands: mpsc::Receiver<Command>,
    /// A handle asked to close; `None` from it: every handle was dropped. Apart from the
    /// commands, so that both are seen even while the commands wait behind a connection
    /// that takes nothing.
    pub(super) close: mpsc::Receiver<()>,
    /// The queue is closed and empty.
    pub(super) commands_done: bool,
    /// Every handle was dropped.
    pub(super) handles_gone: bool,
    /// Commands taken from the queue (in one batch, which frees their room in the queue
    /// at once) and not yet accepted by the sink, in order.
    pub(super) staged: VecDeque<Command>,
    /// Messages the sink would not take (none while it runs; kept for the `Shutdown`).
    pub(super) refused_messages: Vec<Message>,
    outlet: Outlet,
    /// Messages written since the last successful flush.
    pub(super) unflushed: bool,
    /// The pass wrote messages and left the flush for after a yield: senders on this
    /// runtime get to queue more first, and one flush covers them all (the outbox bound
    /// still flushes a long run).
    pub(super) yield_before_flush: bool,
    /// The limiter refused: writes wait until then.
    pub(super) refused: Option<Pin<Box<Sleep>>>,
    /// The last pass wrote: the next may skip reading (see `READ_EVERY_PASSES`).
    pub(super) writing: bool,
    pub(super) reads_skipped: u32,
    /// The last error item forwarded to the reader.
    pub(super) last_error: Option<Error>,
    /// What the receiver yields after the channel, filled when the task ends.
    pub(super) tail: Tail,
    phase: Phase,
    /// Where the `Shutdown` goes; set once, by `run` or, if the task is dropped
    /// unfinished (a panic unwinding, the runtime shutting down), by `Drop`.
    pub(super) ended: Arc<Ended>,
    pub(super) finished: bool,
}

impl<M: MakeConnection> Task<M> {
    pub(super) fn new(
        sink: ReconnectingSink<M>,
        commands: mpsc::Receiver<Command>,
        close: mpsc::Receiver<()>,
        tx: mpsc::Sender<Item>,
        tail: Tail,
        ended: Arc<Ended>,
    ) -> Self {
        let watch = tx.clone();
        Task {
            sink,
            commands,
            close,
            commands_done: false,
            handles_gone: false,
            staged: VecDeque::new(),
            refused_messages: Vec::new(),
            outlet: Outlet::Open {
                tx,
                blocked: None,
                gone: Box::pin(async move { watch.closed().await }),
            },
            unflushed: false,
            yield_before_flush: false,
            refused: None,
            writing: false,
            reads_skipped: 0,
            last_error: None,
            tail,
            phase: Phase::Running,
            ended,
            finished: false,
        }
    }

    /// Runs until the task ends and stores its `Shutdown`.
    pub(super) async fn run(mut self) {
        let result = poll_fn(|cx| self.poll(cx)).await;
        self.ended.finish();
        self.hand_over_inbound(&result, true);
        let gave_up = match &result {
            Ok(()) | Err(Error::CloseIncomplete { .. }) => None,
            Err(e) => Some(e.clone()),
        };
        let left = self.hand_back(|| match &gave_up {
            Some(e) => UndeliveredReason::GaveUp(e.clone()),
            None => UndeliveredReason::Closed,
        });
        // Messages that never reached the sink make a clean close incomplete too.
        let result = match result {
            Ok(()) if left.in_sink + left.outside > 0 => Err(Error::CloseIncomplete {
                undelivered: left.in_sink + left.outside,
                source: Box::new(Error::Timeout),
            }),
            Err(Error::CloseIncomplete {
                undelivered: owed,
                source,
            }) => Err(Error::CloseIncomplete {
                undelivered: owed + left.outside,
                source,
            }),
            other => other,
        };
        let undelivered = left.undelivered;
        match &result {
            Ok(()) => tracing::info!("the connection's task ended"),
            Err(e) => tracing::warn!(error = %e, "the connection's task ended"),
        }
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
                Phase::Running => match self.close.poll_recv(cx) {
                    Poll::Ready(Some(())) => {
                        self.drain("close requested: delivering what was queued before it");
                        continue;
                    }
                    Poll::Ready(None) => self.handles_gone = true,
                    Poll::Pending => {}
                },
                Phase::Draining { deadline } => {
                    let expired = deadline.as_mut().poll(cx).is_ready();
                    if expired || (self.commands_done && self.staged.is_empty()) {
                        // Draining -> Closing
                        self.phase = Phase::Closing;
                        continue;
                    }
                }
                Phase::Closing => return self.sink.poll_close(cx),
            }
            let mut progress = false;
            // While messages stream out, the sink's writer looks at inbound frames at the
            // start of each batch; a read attempt per pass on top of that (tungstenite
            // clears its read buffer before each) would cost more than the writing.
            let read = !self.writing || self.reads_skipped >= READ_EVERY_PASSES;
            if read {
                self.reads_skipped = 0;
                match self.poll_inbound(cx) {
                    Poll::Ready(Ok(())) => progress = true,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            } else {
                self.reads_skipped += 1;
            }
            self.writing = false;
            match self.poll_outbound(cx) {
                Poll::Ready(Ok(())) => {
                    progress = true;
                    self.writing = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
            if !progress && !read {
                // About to park: read first, so that inbound frames wake the task.
                continue;
            }
            if self.handles_gone
                && matches!(self.outlet, Outlet::Gone)
                && matches!(self.phase, Phase::Running)
            {
                self.drain("every handle and the receiver are gone: closing");
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

    /// Running -> Draining: the queue takes nothing more; what it holds goes to the sink
    /// within `close_timeout`.
    fn drain(&mut self, why: &str) {
        tracing::debug!("{why}");
        self.ended.finish();
        self.commands.close();
        self.phase = Phase::Draining {
            deadline: Box::pin(tokio::time::sleep(self.sink.close_timeout())),
        };
    }

    /// The task ends: what the sink read and the receiver has not taken goes into the
    /// receiver's tail (bounded by the sink's inbox), then the failure if the reader was
    /// not told of it.
    /// `read_sink`: the sink ended normally and its inbox can be read (not after a
    /// panic inside it).
    pub(super) fn hand_over_inbound(&mut self, result: &Result<(), Error>, read_sink: bool) {
        let Outlet::Open { blocked, .. } = &mut self.outlet else {
            return;
        };
        let mut rest = std::collections::VecDeque::new();
        rest.extend(blocked.take().map(|(item, _)| item));
        // The sink has ended (closed or failed for good): its inbox is read without I/O.
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        while let Poll::Ready(Some(item)) = if read_sink {
            self.sink.poll_next(&mut cx)
        } else {
            Poll::Ready(None)
        } {
            if let Err(e) = &item {
                self.last_error = Some(e.clone());
            }
            rest.push_back(item);
        }
        if let (Err(e), None) = (result, &self.last_error) {
            if !matches!(e, Error::CloseIncomplete { .. }) {
                rest.push_back(Err(e.clone()));
            }
        }
        self.tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(rest);
    }

    /// Moves one inbound item along. `Ready(Ok)`: progress; `Ready(Err)`: the sink's
    /// stream ended (it gave up, or it is closed); `Pending`: nothing to do now.
    fn poll_inbound(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Outlet::Open { blocked, gone, .. } = &mut self.outlet {
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
        }
        let item = match ready!(self.sink.poll_next(cx)) {
            Some(item) => item,
            // The stream ends after the failure it was told of, if any: the task ends
            // with it (kept: the reader was told, and is not told again).
            None => {
                let error = self
                    .last_error
                    .as_ref()
                    .map_or(Error::TaskEnded, Error::clone);
                return Poll::Ready(Err(error));
            }
        };
        if let Err(e) = &item {
            self.last_error = Some(e.clone());
        }
        self.offer(item);
        Poll::Ready(Ok(()))
    }

    /// Gives `item` to the receiver, or holds it until there is room; discards it if the
    /// receiver is gone.
    fn offer(&mut self, item: Item) {
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
            if self.staged.is_empty() && !self.commands_done {
                // The batch's Vec becomes the deque and back without copying.
                let mut batch = Vec::from(std::mem::take(&mut self.staged));
                let taken = self.commands.poll_recv_many(cx, &mut batch, QUEUE);
                self.staged = batch.into();
                if taken == Poll::Ready(0) {
                    self.commands_done = true;
                    progress = true;
                }
            }
            let Some(command) = self.staged.pop_front() else {
                break;
            };
            match self.sink.poll_ready(cx) {
                Poll::Ready(Ok(())) => {
                    let Command { item, promise } = command;
                    let refused = match promise {
                        // A refusal settles the outcome, in order, handing the message back.
                        Some(promise) => self
                            .sink
                            .start_send_promised(item, promise)
                            .err()
                            .map(|e| (e, None)),
                        None => self
                            .sink
                            .start_send_outgoing_untracked(item)
                            .err()
                            .map(|(e, m)| (e, Some(m))),
                    };
                    if let Some((error, message)) = refused {
                        // Not while the task runs (the handle refuses Close frames): the
                        // message goes into the Shutdown rather than nowhere.
                        tracing::warn!(error = %error, "the sink refused a message");
                        self.refused_messages.extend(message);
                    }
                    self.unflushed = true;
                    progress = true;
                    wrote = true;
                }
                Poll::Ready(Err(error)) => {
                    self.staged.push_front(command);
                    return self.write_failed(error, cx);
                }
                Poll::Pending => {
                    self.staged.push_front(command);
                    break;
                }
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
