//! A cloneable [`Handle`] on a connection driven by a task of its own.

mod leftovers;
mod task;

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use futures_core::Stream;
use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};

use self::task::{Command, Tail, Task};
use crate::connect::MakeConnection;
use crate::error::Error;
use crate::sink::{
    ConnectionState, Delivery, Outgoing, ReconnectingSink, Stats, StatsHandle, Undelivered,
    UndeliveredReason,
};
use crate::Message;

/// Commands queued for the task, and messages queued for the [`Incoming`] stream, at most.
const QUEUE: usize = Handle::QUEUE;

type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What became of a message offered to the queue without waiting.
enum Queued {
    Yes,
    /// No room now: the command comes back, to wait.
    Full(Command),
    /// Not queued, and never will be: the message goes back to the caller. The
    /// promise's Delivery was never handed out, so there is nothing to settle.
    Refused(Undelivered),
}

impl Queued {
    fn refused(command: Command, error: Error) -> Self {
        Queued::Refused(refusal(command, error))
    }
}

/// The message of a command that is not queued, handed back with why.
fn refusal(command: Command, error: Error) -> Undelivered {
    Undelivered::new(
        UndeliveredReason::Refused(error),
        command.item.into_message(),
    )
}

/// What a [`Handle`]'s task left behind: how it ended, and the messages it still owed.
///
/// ```no_run
/// # async fn run(handle: ws_reconnect::Handle) {
/// let shutdown = handle.close().await;
/// if let Err(e) = &shutdown.result {
///     eprintln!("closed with an error: {e}");
/// }
/// for message in shutdown.undelivered {
///     // store it, or send it elsewhere
///     # drop(message);
/// }
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Shutdown {
    /// `Ok` for a clean close; otherwise why the task ended, or why the close could not
    /// deliver everything ([`Error::CloseIncomplete`]).
    pub result: Result<(), Error>,
    /// Messages accepted by a handle and never delivered, oldest first (those sent with
    /// an outcome come back through their [`Delivery`] instead). Empty for every caller of
    /// [`Handle::close`] but the first.
    pub undelivered: Vec<Message>,
}

impl Shutdown {
    fn again(&self) -> Shutdown {
        Shutdown {
            result: self.result.as_ref().map_err(Error::clone).copied(),
            undelivered: Vec::new(),
        }
    }
}

/// How the task ended, kept for the handles: whole for the first to ask, its result
/// only after that.
#[derive(Debug)]
struct Ended {
    slot: Mutex<Slot>,
    /// Becomes `true` once the `Shutdown` is stored.
    done: watch::Sender<bool>,
    /// Sends fail from now on: a close was asked for, or the task is ending. Set before
    /// the task hears of the close, so that no send gets in after it.
    finishing: AtomicBool,
}

#[derive(Debug, Default)]
enum Slot {
    #[default]
    Running,
    Stored(Shutdown),
    /// The first caller took it; this is a copy of its result.
    Taken(Shutdown),
}

impl Ended {
    fn new() -> Self {
        Ended {
            slot: Mutex::new(Slot::Running),
            done: watch::Sender::new(false),
            finishing: AtomicBool::new(false),
        }
    }

    /// From now on sends fail.
    fn finish(&self) {
        self.finishing.store(true, Ordering::SeqCst);
    }

    /// Whether sends fail.
    fn is_finishing(&self) -> bool {
        self.finishing.load(Ordering::SeqCst) || *self.done.borrow()
    }

    fn store(&self, shutdown: Shutdown) {
        self.finish();
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Slot::Stored(shutdown);
        self.done.send_replace(true);
    }

    /// Replaces the stored `Shutdown`'s result (why the task ended, once known).
    fn set_result(&self, result: Result<(), Error>) {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *slot {
            Slot::Stored(shutdown) | Slot::Taken(shutdown) => shutdown.result = result,
            Slot::Running => {
                *slot = Slot::Stored(Shutdown {
                    result,
                    undelivered: Vec::new(),
                });
            }
        }
        drop(slot);
        self.done.send_replace(true);
    }

    /// Waits for the task's end and takes its `Shutdown`.
    async fn take(&self) -> Shutdown {
        let mut done = self.done.subscribe();
        // The sender lives in `self`: this only returns once the flag is set.
        let _ = done.wait_for(|done| *done).await;
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::take(&mut *slot) {
            Slot::Stored(shutdown) => {
                *slot = Slot::Taken(shutdown.again());
                shutdown
            }
            Slot::Taken(copy) => {
                let again = copy.again();
                *slot = Slot::Taken(copy);
                again
            }
            Slot::Running => Shutdown {
                result: Err(Error::TaskEnded),
                undelivered: Vec::new(),
            },
        }
    }
}

/// A cloneable sender into a connection driven by its own task (see
/// [`ReconnectingSink::spawn`]).
///
/// [`ReconnectingSink::spawn`] moves the sink into a tokio task that keeps it going
/// whether or not anyone is sending: it writes what the handles send, flushes, reads
/// into the [`Incoming`] stream, and runs the keepalive, the acknowledgements and the
/// reconnections in between. Any number of tasks can send through clones of the handle.
///
/// ```no_run
/// use futures::StreamExt;
/// use ws_reconnect::{Message, ReconnectingSink};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let (handle, mut incoming) = ReconnectingSink::builder()
///     .build("ws://127.0.0.1:9000/feed")?
///     .spawn(); // dials in the background
/// for worker in 0..4 {
///     let handle = handle.clone();
///     tokio::spawn(async move {
///         // Waits while the task is behind (backpressure); Err once it has ended.
///         let _ = handle.send(Message::text(format!("hello from {worker}"))).await;
///     });
/// }
/// while let Some(message) = incoming.next().await {
///     println!("{}", message?);
/// }
/// # Ok(()) }
/// ```
///
/// # How it ends
/// ```text
/// what                                   | the task                 | Shutdown.result
/// ---------------------------------------+--------------------------+-------------------------
/// Handle::close()                        | delivers what was queued | as ReconnectingSink::close
///                                        | before it, then closes   |
///                                        | (each within             |
///                                        | close_timeout)           |
/// every Handle and the Incoming dropped  | closes (close_timeout)   | (nobody to tell)
/// the connection fails for good          | ends; error item first   | Err(that error)
/// user code in the task panics           | ends, connection dropped | Err(TaskPanicked)
/// ```
/// A failure for good is final: the task dials nothing more and ends; each failure is
/// yielded once by [`Incoming`].
///
/// From the moment a close is asked for ([`Handle::is_finished`]), and after the end,
/// sends fail with [`Error::TaskEnded`] (the message handed back), the
/// [`Incoming`] stream yields what the task had read but not passed on (and the failure,
/// if the reader was not told of it) and ends, and [`Handle::close`] returns the
/// [`Shutdown`]: the result (`CloseIncomplete` if anything was left) and every message
/// the task still owed, queued or in the sink. Messages sent with an outcome
/// ([`Handle::deliver`]) are handed back through their [`Delivery`] instead.
///
/// # Backpressure
/// Sends wait while [`Handle::QUEUE`] commands are queued for the task. The task takes them
/// in batches of up to [`Handle::QUEUE`] and hands each to the sink when the sink can take
/// it (the outbox bound), so at most twice [`Handle::QUEUE`] messages wait outside the
/// sink. The incoming stream holds up to
/// [`Handle::QUEUE`] messages; while it is full the task stops reading the connection, as the sink
/// does when its reader does not read, and goes on writing.
///
/// [`ReconnectingSink::spawn`]: crate::ReconnectingSink::spawn
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    close: mpsc::Sender<()>,
    state: watch::Receiver<ConnectionState>,
    stats: StatsHandle,
    ended: Arc<Ended>,
}

impl Handle {
    /// Commands queued for the task, and messages queued for the [`Incoming`] stream, at
    /// most: sends wait while this many commands wait in the queue (the task may hold as
    /// many more, taken in one batch and not yet in the sink).
    ///
    /// ```
    /// assert_eq!(ws_reconnect::Handle::QUEUE, 256);
    /// ```
    pub const QUEUE: usize = 256;

    /// Queues a message for the task; returns once it is queued (waiting while the queue
    /// is full). The task writes it when the connection can take it, and resends it
    /// across reconnections as the sink does.
    ///
    /// ```no_run
    /// # async fn run(handle: ws_reconnect::Handle) {
    /// use ws_reconnect::{Message, Outgoing};
    /// handle.send(Message::text("order 17")).await.expect("task running");
    /// handle.send(Outgoing::new(Message::text("cursor 3,4")).volatile()).await.ok();
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`Undelivered`] with the message handed back and, as the reason's error,
    /// [`Error::TaskEnded`] once the task has ended or a close was asked for, or
    /// [`Error::UnsupportedMessage`] for a Close or Frame message (closing is
    /// [`close`](Self::close)'s job).
    ///
    /// # Cancellation safety
    /// Dropped while waiting for room, the message was not queued.
    pub async fn send(&self, item: impl Into<Outgoing>) -> Result<(), Undelivered> {
        // Written out rather than through a shared async helper: this future is built
        // and moved once per message, and a nested one would double its size.
        let command = Command {
            item: item.into(),
            promise: None,
        };
        match self.try_queue(command) {
            Queued::Yes => Ok(()),
            Queued::Refused(undelivered) => Err(undelivered),
            Queued::Full(command) => self.queue_when_room(command).await,
        }
    }

    /// Queues a message as [`send`](Self::send) does and returns its [`Delivery`]: `Ok`
    /// once flushed (acknowledged, in acknowledged mode), or the message handed back.
    ///
    /// ```no_run
    /// # async fn run(handle: ws_reconnect::Handle) -> Result<(), ws_reconnect::Undelivered> {
    /// use ws_reconnect::Message;
    /// let delivery = handle.deliver(Message::text("order 17")).await?;
    /// match delivery.await {
    ///     Ok(()) => println!("delivered"),
    ///     Err(e) => println!("{e}; message back: {:?}", e.message()),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub async fn deliver(&self, item: impl Into<Outgoing>) -> Result<Delivery, Undelivered> {
        let (promise, delivery) = Delivery::new();
        let command = Command {
            item: item.into(),
            promise: Some(promise),
        };
        match self.try_queue(command) {
            Queued::Yes => Ok(delivery),
            Queued::Refused(undelivered) => Err(undelivered),
            Queued::Full(command) => self.queue_when_room(command).await.map(|()| delivery),
        }
    }

    /// Queues without waiting: room now is taken without a trip through the scheduler's
    /// budget, so a sender hands over a whole queue's worth before the task runs.
    fn try_queue(&self, command: Command) -> Queued {
        if matches!(
            command.item.message(),
            Message::Close(_) | Message::Frame(_)
        ) {
            // Closing is the task's job (`close()`); a raw frame is not a message.
            return Queued::refused(command, Error::UnsupportedMessage);
        }
        if self.ended.is_finishing() {
            return Queued::refused(command, Error::TaskEnded);
        }
        match self.commands.try_reserve() {
            Ok(permit) => {
                permit.send(command);
                Queued::Yes
            }
            Err(mpsc::error::TrySendError::Full(())) => Queued::Full(command),
            Err(mpsc::error::TrySendError::Closed(())) => {
                Queued::refused(command, Error::TaskEnded)
            }
        }
    }

    /// Waits for room in the queue, then queues unless a close was asked for meanwhile
    /// (it comes first). Boxed: the wait is rare (once per queue's worth at most), and
    /// held inline it would make every send's future several times larger.
    fn queue_when_room(&self, command: Command) -> BoxFuture<'_, Result<(), Undelivered>> {
        Box::pin(async move {
            if let Ok(permit) = self.commands.reserve().await {
                if !self.ended.is_finishing() {
                    permit.send(command);
                    return Ok(());
                }
            }
            Err(refusal(command, Error::TaskEnded))
        })
    }

    /// Closes the connection and ends the task: the messages queued before this call go
    /// to the sink (within `close_timeout`), then the sink's `close()` delivers what it
    /// owes and completes the Close handshake (within `close_timeout` again); returns
    /// the task's [`Shutdown`]. Sends after this call fail. If the task has already
    /// ended, returns how it ended.
    ///
    /// ```no_run
    /// # async fn run(handle: ws_reconnect::Handle) {
    /// let shutdown = handle.close().await;
    /// assert!(shutdown.result.is_ok() && shutdown.undelivered.is_empty());
    /// # }
    /// ```
    pub async fn close(&self) -> Shutdown {
        // Sends fail from here on. The first request is enough (a full channel holds one
        // already); every caller then waits for the task's end.
        self.ended.finish();
        let _ = self.close.try_send(());
        self.ended.take().await
    }

    /// Whether sends fail now: a close was asked for (the task may still be delivering
    /// what was queued before it and closing), or the task has ended. Like
    /// `tokio::sync::mpsc::Sender::is_closed`, true as soon as a send would fail.
    ///
    /// ```no_run
    /// # async fn run(handle: ws_reconnect::Handle) {
    /// let closing = handle.clone();
    /// let shutdown = tokio::spawn(async move { closing.close().await });
    /// # tokio::task::yield_now().await;
    /// // Once the close has started, sends fail at once:
    /// if handle.is_finished() {
    ///     assert!(handle.send(ws_reconnect::Message::text("late")).await.is_err());
    /// }
    /// # drop(shutdown);
    /// # }
    /// ```
    pub fn is_finished(&self) -> bool {
        self.ended.is_finishing()
    }

    /// The connection state, as [`ReconnectingSink::state`].
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// The counters, as [`ReconnectingSink::stats`] (messages sent are added at each
    /// flush).
    pub fn stats(&self) -> Stats {
        self.stats.get()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("state", &*self.state.borrow())
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

/// The messages a [`Handle`]'s task reads, as a `Stream`: the sink's items (data
/// messages, and the errors its reader is told of). Ends when the task ends. Dropping it
/// is fine: the task then reads and discards (the connection must still be read for
/// its keepalive, acknowledgements and Close).
///
/// ```no_run
/// # async fn run(mut incoming: ws_reconnect::Incoming) {
/// use futures::StreamExt;
/// while let Some(item) = incoming.next().await {
///     match item {
///         Ok(message) => println!("{message}"),
///         Err(e) => eprintln!("{e}"),
///     }
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<Result<Message, Error>>,
    /// What the task had read but could not pass on when it ended: yielded after the
    /// channel.
    tail: Tail,
}

impl Stream for Incoming {
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match ready!(self.rx.poll_recv(cx)) {
            Some(item) => Poll::Ready(Some(item)),
            // The task has ended (it fills the tail before that).
            None => Poll::Ready(
                self.tail
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .pop_front(),
            ),
        }
    }
}

impl<M> ReconnectingSink<M>
where
    M: MakeConnection + Send + 'static,
    M::Future: Send,
    M::Connection: Send,
{
    /// Moves the sink into a task on the current tokio runtime and returns a cloneable
    /// [`Handle`] to send through and the [`Incoming`] messages. The task dials if the sink
    /// was not dialed yet; see [`Handle`] for how it ends.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use ws_reconnect::{Message, ReconnectingSink};
    /// let (handle, incoming) = ReconnectingSink::connect("ws://127.0.0.1:9000/").await?.spawn();
    /// drop(incoming); // write-only: the task still reads, for keepalive and Close
    /// handle.send(Message::text("hello")).await?;
    /// let shutdown = handle.close().await;
    /// assert!(shutdown.result.is_ok());
    /// # Ok(()) }
    /// ```
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn spawn(mut self) -> (Handle, Incoming) {
        self.dial_if_idle();
        let (commands_tx, commands_rx) = mpsc::channel(QUEUE);
        let (close_tx, close_rx) = mpsc::channel(1);
        let (incoming_tx, incoming_rx) = mpsc::channel(QUEUE);
        let ended = Arc::new(Ended::new());
        let handle = Handle {
            commands: commands_tx,
            close: close_tx,
            state: self.state(),
            stats: self.stats_handle(),
            ended: Arc::clone(&ended),
        };
        let tail = Tail::default();
        let task = Task::new(
            self,
            commands_rx,
            close_rx,
            incoming_tx,
            Arc::clone(&tail),
            Arc::clone(&ended),
        );
        tokio::spawn(async move {
            // The task (and with it the sink and its connection) is dropped at the end of
            // this statement: a panic's `Shutdown` is stored by then, with what was owed.
            let run = std::panic::AssertUnwindSafe(task.run())
                .catch_unwind()
                .await;
            if let Err(panic) = run {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(%message, "the connection's task panicked; connection dropped");
                ended.set_result(Err(Error::TaskPanicked { message }));
            }
        });
        (
            handle,
            Incoming {
                rx: incoming_rx,
                tail,
            },
        )
    }
}
