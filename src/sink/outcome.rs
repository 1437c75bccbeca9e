//! Per-message delivery outcomes and volatile messages.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::hello::ConnectInfo;
use crate::error::Error;
use crate::Message;

/// A message with its sending options: what
/// [`ReconnectingSink::start_send_outgoing`](crate::ReconnectingSink::start_send_outgoing)
/// and [`Handle::send`](crate::Handle::send) take. A plain [`Message`] converts into one
/// with the default options (resent after a reconnection until delivered).
///
/// ```
/// use ws_reconnect::{Message, Outgoing};
///
/// let cursor = Outgoing::new(Message::text("cursor 10,20")).volatile();
/// assert!(cursor.is_volatile());
/// let plain: Outgoing = Message::text("order 17").into();
/// assert!(!plain.is_volatile());
/// assert_eq!(plain.message().to_text().unwrap(), "order 17");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    message: Message,
    volatile: bool,
}

impl Outgoing {
    /// `message` with the default options.
    pub fn new(message: Message) -> Self {
        Outgoing {
            message,
            volatile: false,
        }
    }

    /// Marks the message volatile: if the connection it belongs to ends before it was
    /// flushed (acknowledged, in acknowledged mode), it is dropped, not resent. See the
    /// [`Delivery`] docs (volatile messages).
    #[must_use]
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// Whether the message is volatile.
    pub fn is_volatile(&self) -> bool {
        self.volatile
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message, without the options.
    pub fn into_message(self) -> Message {
        self.message
    }

    pub(crate) fn into_parts(self) -> (Message, bool) {
        (self.message, self.volatile)
    }
}

impl From<Message> for Outgoing {
    fn from(message: Message) -> Self {
        Outgoing::new(message)
    }
}

/// Why a message was not delivered; see [`Undelivered`].
#[derive(Debug)]
#[non_exhaustive]
pub enum UndeliveredReason {
    /// A volatile message's connection ended before the message was flushed
    /// (acknowledged, in acknowledged mode).
    ConnectionLost,
    /// The sink did not accept it (the error `start_send` would have returned: not
    /// dialed, closed, a Close frame...).
    Refused(Error),
    /// The `retain_on_reconnect` hook chose not to resend it.
    Discarded,
    /// The sink gave up on reconnecting (the error it gave up with).
    GaveUp(Error),
    /// `close()` ended before the message could be delivered.
    Closed,
    /// [`take_undelivered`](crate::ReconnectingSink::take_undelivered) took it out of the
    /// sink.
    Taken,
    /// The sink (or the task of a [`Handle`](crate::Handle)) was dropped while it still
    /// owed the message.
    Dropped,
}

impl fmt::Display for UndeliveredReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UndeliveredReason::ConnectionLost => {
                f.write_str("its connection ended before it was delivered (volatile)")
            }
            UndeliveredReason::Refused(e) => write!(f, "the sink did not accept it: {e}"),
            UndeliveredReason::Discarded => f.write_str("discarded on reconnection"),
            UndeliveredReason::GaveUp(e) => write!(f, "the sink gave up: {e}"),
            UndeliveredReason::Closed => f.write_str("the sink closed before delivering it"),
            UndeliveredReason::Taken => f.write_str("taken out of the sink"),
            UndeliveredReason::Dropped => f.write_str("the sink was dropped"),
        }
    }
}

/// The failed outcome of a message: why, and the message itself, handed back.
///
/// ```
/// # fn show(e: ws_reconnect::Undelivered) {
/// eprintln!("{e}");
/// if let Some(message) = e.into_message() {
///     // store it, or send it again later
///     # drop(message);
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Undelivered {
    reason: UndeliveredReason,
    message: Option<Message>,
}

impl Undelivered {
    pub(crate) fn new(reason: UndeliveredReason, message: Message) -> Self {
        Undelivered {
            reason,
            message: Some(message),
        }
    }

    /// Why it was not delivered.
    pub fn reason(&self) -> &UndeliveredReason {
        &self.reason
    }

    /// The message. `None` only if the sink vanished without settling its outcomes (it
    /// was leaked with `mem::forget`, or a panic unwound through the sink's own code).
    pub fn message(&self) -> Option<&Message> {
        self.message.as_ref()
    }

    /// The message, handed back; see [`message`](Self::message).
    pub fn into_message(self) -> Option<Message> {
        self.message
    }

    /// The same, with the error of a [`GaveUp`](UndeliveredReason::GaveUp) or
    /// [`Refused`](UndeliveredReason::Refused) reason put through `map` (a layer's own
    /// reading of the sink's errors).
    pub(crate) fn map_error(mut self, map: impl FnOnce(Error) -> Error) -> Self {
        self.reason = match self.reason {
            UndeliveredReason::GaveUp(e) => UndeliveredReason::GaveUp(map(e)),
            UndeliveredReason::Refused(e) => UndeliveredReason::Refused(map(e)),
            other => other,
        };
        self
    }
}

impl fmt::Display for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "message not delivered: {}", self.reason)
    }
}

impl std::error::Error for Undelivered {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.reason {
            UndeliveredReason::GaveUp(e) | UndeliveredReason::Refused(e) => Some(e),
            _ => None,
        }
    }
}

/// The outcome of one message: resolves to `Ok(())` once it was delivered (flushed; in
/// acknowledged mode, acknowledged) or to [`Undelivered`] with the message handed back.
/// Dropping it does not cancel the message. The sink must be driven (written to,
/// flushed or read from) for outcomes to resolve; a [`Handle`](crate::Handle)'s task
/// drives it by itself.
///
/// ```no_run
/// # async fn run(mut ws: ws_reconnect::ReconnectingSink) -> Result<(), ws_reconnect::Error> {
/// use futures::SinkExt;
/// use ws_reconnect::Message;
/// let delivery = ws.feed_outgoing(Message::text("order 17")).await?;
/// ws.flush().await?;
/// assert!(delivery.await.is_ok());
/// # Ok(()) }
/// ```
///
/// A message sent with [`ReconnectingSink::start_send_outgoing`] (or through a
/// [`Handle`](crate::Handle)) comes with a [`Delivery`]: a future that resolves once,
/// when the sink is done with the message.
///
/// ```text
/// mode          | Ok(()) when                        | Err(Undelivered) when
/// --------------+------------------------------------+-------------------------------------
/// plain         | a flush that included it succeeded | volatile and its connection ended;
/// acknowledged  | the peer acknowledged it           | retain_on_reconnect discarded it;
///               | (untracked messages: flushed)      | the sink gave up (permanent failure,
///               |                                    | max_elapsed_time, Close 1008...);
///               |                                    | close() could not deliver it;
///               |                                    | take_undelivered() took it;
///               |                                    | the sink was dropped with it owed
/// ```
///
/// Outcomes resolve in the order the messages were sent, each exactly once. Dropping a
/// [`Delivery`] does not cancel the message. A failure hands the message back
/// ([`Undelivered::into_message`]); the sink no longer owes it.
///
/// # Volatile messages
/// A message marked [`Outgoing::volatile`] belongs to one connection: the one up when it
/// was accepted, or, if none was, the next one. If that connection ends before the message
/// was flushed (acknowledged, in acknowledged mode), the message is dropped instead of
/// resent: an unsubscribe for the old session, a cursor position, a request id the next
/// session will not know. Each drop is counted in [`Stats::messages_dropped`] and fails
/// the message's outcome with [`UndeliveredReason::ConnectionLost`].
///
/// ```no_run
/// use futures::SinkExt;
/// use ws_reconnect::{Message, Outgoing, ReconnectingSink, UndeliveredReason};
///
/// # async fn run() -> Result<(), ws_reconnect::Error> {
/// let mut ws = ReconnectingSink::connect("ws://127.0.0.1:9000/feed").await?;
/// let delivery = ws.feed_outgoing(Outgoing::new(Message::text("cursor 10,20")).volatile()).await?;
/// ws.flush().await?;
/// match delivery.await {
///     Ok(()) => println!("flushed"),
///     Err(e) if matches!(e.reason(), UndeliveredReason::ConnectionLost) => println!("dropped"),
///     Err(e) => println!("not delivered: {e}"),
/// }
/// # Ok(()) }
/// ```
///
/// [`ReconnectingSink::start_send_outgoing`]: crate::ReconnectingSink::start_send_outgoing
/// [`Stats::messages_dropped`]: crate::Stats::messages_dropped
#[derive(Debug)]
#[must_use = "dropping a Delivery ignores the outcome (the message is still sent)"]
pub struct Delivery {
    rx: oneshot::Receiver<Result<(), Undelivered>>,
}

impl Delivery {
    pub(crate) fn new() -> (Promise, Delivery) {
        let (tx, rx) = oneshot::channel();
        (Promise { tx }, Delivery { rx })
    }
}

impl Future for Delivery {
    type Output = Result<(), Undelivered>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| {
            r.unwrap_or(Err(Undelivered {
                reason: UndeliveredReason::Dropped,
                message: None,
            }))
        })
    }
}

/// The sending end of one [`Delivery`].
#[derive(Debug)]
pub(crate) struct Promise {
    tx: oneshot::Sender<Result<(), Undelivered>>,
}

impl Promise {
    fn settle(self, outcome: Result<(), Undelivered>) {
        // The Delivery may have been dropped: nobody to tell.
        let _ = self.tx.send(outcome);
    }
}

/// A hook that sees each message still owed when a connection comes up and says whether
/// to resend it; see [`Builder::retain_on_reconnect`](crate::Builder::retain_on_reconnect).
pub(crate) type RetainFn = Box<dyn FnMut(&ConnectInfo, &Message) -> bool + Send>;

/// Which ledger entry a queued message settles.
pub(crate) type Ticket = NonZeroU64;

/// The outcomes still to settle, in the order their messages were accepted. A message's
/// fate may be known out of order (an untracked message flushed while an earlier one
/// waits for its acknowledgement); the ledger holds it until every earlier outcome is
/// settled.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pending: VecDeque<Pending>,
    last: u64,
}

#[derive(Debug)]
struct Pending {
    ticket: Ticket,
    promise: Promise,
    outcome: Option<Result<(), Undelivered>>,
}

impl Ledger {
    /// Opens an entry for `promise`; the message carries the ticket.
    pub(crate) fn open(&mut self, promise: Promise) -> Ticket {
        self.last += 1;
        let ticket = NonZeroU64::new(self.last).expect("counts up from 1");
        self.pending.push_back(Pending {
            ticket,
            promise,
            outcome: None,
        });
        ticket
    }

    /// The message of `ticket` was delivered or given up on.
    pub(crate) fn settle(&mut self, ticket: Ticket, outcome: Result<(), Undelivered>) {
        if let Ok(at) = self.pending.binary_search_by_key(&ticket, |p| p.ticket) {
            self.pending[at].outcome = Some(outcome);
        }
        while self.pending.front().is_some_and(|p| p.outcome.is_some()) {
            let Some(Pending {
                promise, outcome, ..
            }) = self.pending.pop_front()
            else {
                break;
            };
            promise.settle(outcome.unwrap_or(Ok(())));
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_now(d: &mut Delivery) -> Option<Result<(), Undelivered>> {
        let waker = futures_util::task::noop_waker();
        match Pin::new(d).poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }

    #[test]
    fn outcomes_settle_in_order_even_when_known_out_of_order() {
        let mut ledger = Ledger::default();
        let (p1, mut d1) = Delivery::new();
        let (p2, mut d2) = Delivery::new();
        let (t1, t2) = (ledger.open(p1), ledger.open(p2));
        ledger.settle(t2, Ok(()));
        assert!(poll_now(&mut d2).is_none(), "held until the first settles");
        ledger.settle(
            t1,
            Err(Undelivered::new(
                UndeliveredReason::Closed,
                Message::text("a"),
            )),
        );
        let first = poll_now(&mut d1).unwrap().unwrap_err();
        assert_eq!(first.message().unwrap().to_text().unwrap(), "a");
        assert!(poll_now(&mut d2).unwrap().is_ok());
        assert!(ledger.is_empty());
    }

    #[test]
    fn a_vanished_sink_fails_the_outcome_without_a_message() {
        let (promise, mut delivery) = Delivery::new();
        drop(promise);
        let e = poll_now(&mut delivery).unwrap().unwrap_err();
        assert!(matches!(e.reason(), UndeliveredReason::Dropped));
        assert!(e.message().is_none());
    }
}
