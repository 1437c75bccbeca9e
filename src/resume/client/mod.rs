//! The client half of resume mode: [`ResumingSink`], built on acknowledged mode.
//!
//! The sink underneath does the reconnecting and the resending; this layer gives each
//! outbound message its sequence number (in [`ResumingSink::start_send`](crate::ResumingSink::start_send), the one place
//! numbers are assigned), puts the DATA envelope on it each time the sink writes it
//! ([`ResumeFraming`](framing::ResumeFraming): the sink keeps the message as the application sent it), says
//! HELLO first on every connection (the
//! `on_connect_with` hook), reads the server's frames as they arrive ([`ResumeAcks`],
//! the sink's [`Acknowledge`]), and hands the application each message once, in order,
//! with a gap item wherever the server says a range is lost.
//!
//! # Who sees which frame
//! Every inbound frame passes [`ResumeAcks::acked`] first, in the order it arrived, by
//! whichever half of the sink reads: acknowledgements, WELCOME, GAP, BYE and duplicate
//! DATA are consumed there (their effect is on the shared state), and only new, in-order
//! DATA reaches the sink's inbox and [`ResumingSink::poll_next`](crate::ResumingSink::poll_next). Gaps are told by
//! position: once the application has every message before one. The server never has
//! more DATA in flight than the window HELLO advertises, and the inbox holds that much:
//! it cannot overflow. If frames are lost all the same, the reader notices the hole and
//! asks the server for them again (REPLAY).

mod acks;
mod builder;
mod config;
mod fallback;
mod framing;
mod handshake;
mod read;
mod state;
mod write;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;

use crate::connect::MakeConnection;
use crate::error::Error;
use crate::resume::frame::{Data, Frame, SessionId};
use crate::resume::{Gap, GapReason};
use crate::sink::{DefaultConnector, Delivery, Half, Owed, ReconnectingSink, Undelivered};
use crate::Message;

use self::acks::ResumeAcks;
pub use self::builder::ResumeBuilder;
pub use self::config::{ResumeConfig, ResumeStats};
use self::fallback::Switch;
use self::handshake::{hello_hook, is_unsupported, map_unsupported, offer_hook, MapErrItem};
use self::state::{lock, Cell, Common, InFlight, Shared, Standing};
use self::write::CloseBound;

/// Violations kept for the reader at most; more are counted in the logs only.
const MAX_VIOLATIONS: usize = 16;

/// Room in the sink's inbox beyond the receive window, for the error items it may queue.
const INBOX_SLACK: usize = 64;

/// A [`ReconnectingSink`] in resume mode: a `Sink<Message>` and a
/// `Stream<Item = Result<Message, Error>>` across which nothing is lost either way, with a
/// server that speaks resume mode. From [`Builder::resume`](crate::Builder::resume).
///
/// - Every message accepted is delivered to the server's application once, in order, or
///   the sink reports an error for the operation that could not deliver it. A message
///   stays in the sink until the server acknowledges it (its application took it); after
///   a reconnection the sink says where it stands (HELLO) and sends again what the server
///   lacks; the server drops what it already had.
/// - Every message the server sends is yielded once, in order. When the server cannot
///   deliver a range (its buffer overflowed while this client was away, the session
///   expired, the server restarted), the stream yields one [`Error::Gap`](crate::Error::Gap) at that place,
///   then carries on. No loss is silent.
/// - Bounded both ways: at most [`ResumeConfig::max_unacked_frames`] (and the server's
///   window) in flight, `poll_ready` waits beyond; the server never sends more than the
///   receive window ahead of the reader.
/// - `poll_flush` (and so `SinkExt::send`) completes once the server has acknowledged
///   everything sent: use `feed` and flush at the end of a batch for throughput.
///   [`feed_outgoing`](Self::feed_outgoing) gives each message a [`Delivery`] that
///   resolves when the server has it.
/// - `poll_close` tells the server the session is over (BYE), then closes.
///
/// With a server of this crate (feature `server`) in the same process:
///
#[cfg_attr(feature = "server", doc = "```")]
#[cfg_attr(not(feature = "server"), doc = "```ignore")]
/// use futures::{SinkExt, StreamExt};
/// use ws_reconnect::server::{Server, ServerConfig};
/// use ws_reconnect::{Message, ReconnectingSink, ResumeConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A resume server that echoes, in this process.
/// let (server, mut sessions) = Server::new(ServerConfig::default());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let url = format!("ws://{}/", listener.local_addr()?);
/// tokio::spawn(server.serve(listener));
/// tokio::spawn(async move {
///     while let Some(mut session) = sessions.next().await {
///         tokio::spawn(async move {
///             while let Some(Ok(m)) = session.next().await {
///                 if session.feed(m).await.is_err() { break; }
///             }
///         });
///     }
/// });
///
/// let mut ws = ReconnectingSink::builder()
///     .resume(ResumeConfig::default())
///     .connect(&url)
///     .await?;
/// ws.send(Message::text("ping")).await?; // returns once the server has it
/// assert_eq!(ws.next().await.transpose()?, Some(Message::text("ping")));
/// ws.close().await?;
/// # Ok(())
/// # }
/// ```
///
/// # Through a task
/// [`ReconnectingSink::spawn`]'s `Handle` drives a plain sink; a `ResumingSink` is driven
/// by the caller (split it with `StreamExt::split` to read and write from two tasks).
pub struct ResumingSink<M: MakeConnection = DefaultConnector> {
    inner: ReconnectingSink<M>,
    cell: Cell,
    plain: Arc<AtomicBool>,
    config: ResumeConfig,
    /// What was sent and is not yet acknowledged.
    in_flight: InFlight,
    /// A DATA frame taken from the sink while a gap before it is told.
    held: Option<Data>,
    /// An acknowledgement was written and not yet flushed.
    unflushed_ack: bool,
    /// BYE was queued by `close()`.
    bye_queued: bool,
    /// Wakes the sink's last poller when `ack_delay` has passed since the first
    /// unacknowledged take.
    ack_timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The bound on `close()`, from its first call.
    close_timer: Option<CloseBound>,
    /// The stream has ended (the server said BYE).
    ended: bool,
    /// Where each half stands after a switch to plain mode.
    switch: Switch,
    /// The server is told of the messages let go of below this (a GAP queued by `dial()`).
    tail_told: u64,
}

impl<M: MakeConnection> ResumingSink<M> {
    fn from_parts(
        inner: ReconnectingSink<M>,
        cell: Cell,
        plain: Arc<AtomicBool>,
        config: ResumeConfig,
    ) -> Self {
        ResumingSink {
            inner,
            cell,
            plain,
            config,
            in_flight: InFlight::new(),
            held: None,
            unflushed_ack: false,
            bye_queued: false,
            ack_timer: None,
            close_timer: None,
            ended: false,
            switch: Switch::default(),
            tail_told: 0,
        }
    }

    /// Connects (see [`ReconnectingSink::dial`]). A server that does not choose the
    /// `ws-reconnect.v1` subprotocol fails the dial with [`Error::ResumeUnsupported`](crate::Error::ResumeUnsupported),
    /// unless [`ResumeConfig::required`] is `false`: then the sink dials again in plain
    /// mode, for good. After a connection in resume mode (a server replaced by one
    /// without it), that switch is told: this call returns `ResumeUnsupported` with the
    /// sink already dialing in plain mode, and the reader meets it at its place in the
    /// stream (see [`ResumeConfig::required`]).
    ///
    /// # Errors
    /// As [`ReconnectingSink::dial`], and [`Error::ResumeUnsupported`](crate::Error::ResumeUnsupported).
    ///
    /// # Cancellation safety
    /// As [`ReconnectingSink::dial`].
    ///
    /// ```no_run
    /// use ws_reconnect::{Error, ReconnectingSink, ResumeConfig};
    ///
    /// # async fn run() -> Result<(), Error> {
    /// let mut ws = ReconnectingSink::builder()
    ///     .resume(ResumeConfig::default())
    ///     .build("ws://127.0.0.1:9000/feed")?;
    /// match ws.dial().await {
    ///     Err(Error::ResumeUnsupported) => eprintln!("the server does not speak resume mode"),
    ///     other => other?,
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn dial(&mut self) -> Result<(), Error> {
        self.switch.stopped_by_close = false;
        self.abandon_close();
        self.tell_released_tail();
        let Err(e) = self.inner.dial().await else {
            return Ok(());
        };
        match self.screen(e, Half::Write) {
            Some(e) => Err(e),
            // Plain mode before any connection in resume mode: nothing to tell.
            None => self.inner.dial().await.map_err(map_unsupported),
        }
    }

    /// A `close()` left unfinished is abandoned: its bound goes, and its BYE, unless the
    /// server was sent it on the connection still live. The session carries on.
    fn abandon_close(&mut self) {
        self.close_timer = None;
        if !std::mem::take(&mut self.bye_queued) {
            return;
        }
        let bye = Frame::Bye.to_message();
        let dropped = self.inner.discard_control(|m| *m == bye);
        tracing::debug!(dropped, "dial() abandons a close: its BYE is not sent");
    }

    /// Messages let go of (given up) after the last one the sink still holds: HELLO's
    /// `send_first` does not pass them, and no later message shows the hole, so the server
    /// is told with a GAP written after the resent messages on the next connection. Once
    /// per range.
    fn tell_released_tail(&mut self) {
        if self.plain.load(Ordering::Relaxed) {
            return;
        }
        let Some(newest) = self.inner.newest_held() else {
            // Nothing held: `send_first` is the next number, past everything let go of.
            return;
        };
        let next = self.cell.sent.load(Ordering::Acquire) + 1;
        let from = (newest + 1).max(self.tail_told);
        if from >= next {
            return;
        }
        let gap = Gap::new(from, Some(next), GapReason::Abandoned);
        if self
            .inner
            .queue_control_for_next_connection(Frame::Gap(gap).to_message())
        {
            tracing::debug!(%gap, "messages given up after the last one held: the server is told");
            self.tail_told = next;
        }
    }

    /// Whether resume mode is in effect: `false` after falling back to plain mode (see
    /// [`ResumeConfig::required`]).
    ///
    /// ```
    /// use ws_reconnect::{ReconnectingSink, ResumeConfig};
    ///
    /// let ws = ReconnectingSink::builder()
    ///     .resume(ResumeConfig::default())
    ///     .build("ws://127.0.0.1:9000/feed")?; // undialed: no I/O yet
    /// assert!(ws.is_resuming()); // until a server turns it down with required(false)
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn is_resuming(&self) -> bool {
        !self.plain.load(Ordering::Relaxed)
    }

    /// The session the server gave this client; `None` before the first WELCOME.
    ///
    /// ```
    /// use ws_reconnect::{ReconnectingSink, ResumeConfig};
    ///
    /// let ws = ReconnectingSink::builder()
    ///     .resume(ResumeConfig::default())
    ///     .build("ws://127.0.0.1:9000/feed")?; // undialed: no I/O yet
    /// assert_eq!(ws.session(), None); // no WELCOME yet
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn session(&self) -> Option<SessionId> {
        lock(&self.cell).session.welcomed()
    }

    /// The resume counters now.
    ///
    /// ```
    /// use ws_reconnect::{ReconnectingSink, ResumeConfig};
    ///
    /// let ws = ReconnectingSink::builder()
    ///     .resume(ResumeConfig::default())
    ///     .build("ws://127.0.0.1:9000/feed")?; // undialed: no I/O yet
    /// assert_eq!(ws.resume_stats().gaps, 0);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn resume_stats(&self) -> ResumeStats {
        lock(&self.cell).stats
    }

    /// Messages the sink holds that the server has not acknowledged yet. Ones given up
    /// or taken back are not counted, though the server's window may still count them
    /// until it acknowledges them.
    ///
    /// ```
    /// use ws_reconnect::{ReconnectingSink, ResumeConfig};
    ///
    /// let ws = ReconnectingSink::builder()
    ///     .resume(ResumeConfig::default())
    ///     .build("ws://127.0.0.1:9000/feed")?; // undialed: no I/O yet
    /// assert_eq!(ws.unacknowledged_count(), 0);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn unacknowledged_count(&self) -> usize {
        self.inner.held_unacked()
    }

    /// The sink underneath: its [`state`](ReconnectingSink::state),
    /// [`stats`](ReconnectingSink::stats) and settings.
    ///
    /// ```
    /// use ws_reconnect::{ReconnectingSink, ResumeConfig};
    ///
    /// let ws = ReconnectingSink::builder()
    ///     .resume(ResumeConfig::default())
    ///     .build("ws://127.0.0.1:9000/feed")?; // undialed: no I/O yet
    /// println!("{:?}", ws.get_ref().state());
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn get_ref(&self) -> &ReconnectingSink<M> {
        &self.inner
    }

    /// Takes every message the sink still owes out of it, oldest first, as the
    /// application sent them; they will not be sent. The server is told of the range as
    /// a gap when the sink connects again.
    ///
    /// ```
    /// use ws_reconnect::{ReconnectingSink, ResumeConfig};
    ///
    /// let mut ws = ReconnectingSink::builder()
    ///     .resume(ResumeConfig::default())
    ///     .build("ws://127.0.0.1:9000/feed")?; // undialed: no I/O yet
    /// assert!(ws.take_undelivered().is_empty());
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn take_undelivered(&mut self) -> Vec<Message> {
        self.inner
            .take_owed()
            .into_iter()
            // This layer's own frames (ACK, REPLAY, BYE) stay behind.
            .filter(|o: &Owed| !o.control)
            .map(|o| o.message)
            .collect()
    }
}

/// The outcome of one message sent in resume mode: `Ok` once the server has acknowledged
/// it, or failed with the message handed back as the application sent it. From
/// [`ResumingSink::start_send_outgoing`](crate::ResumingSink::start_send_outgoing).
///
/// ```no_run
/// # async fn run(mut ws: ws_reconnect::ResumingSink) -> Result<(), ws_reconnect::Error> {
/// let delivery = ws.feed_outgoing(ws_reconnect::Message::text("order 8")).await?;
/// match delivery.await {
///     Ok(()) => println!("the server's application has it"),
///     Err(undelivered) => println!("not delivered: {undelivered}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a delivery does nothing unless awaited or polled"]
pub struct ResumeDelivery {
    inner: Delivery,
}

impl Future for ResumeDelivery {
    type Output = Result<(), Undelivered>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A refusal of the subprotocol reads as resume mode's error, as the sink's do.
        Pin::new(&mut self.inner)
            .poll(cx)
            .map_err(|undelivered| undelivered.map_error(map_unsupported))
    }
}

impl<M: MakeConnection + Unpin> Sink<Message> for ResumingSink<M> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ResumingSink::poll_ready(self.get_mut(), cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        ResumingSink::start_send(self.get_mut(), item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ResumingSink::poll_flush(self.get_mut(), cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        ResumingSink::poll_close(self.get_mut(), cx)
    }
}

impl<M: MakeConnection + Unpin> Stream for ResumingSink<M> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        ResumingSink::poll_next(self.get_mut(), cx)
    }
}

impl<M: MakeConnection> fmt::Debug for ResumingSink<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = lock(&self.cell);
        f.debug_struct("ResumingSink")
            .field("inner", &self.inner)
            .field("resuming", &!self.plain.load(Ordering::Relaxed))
            .field("session", &shared.session.welcomed())
            .field("unacknowledged", &self.unacknowledged_count())
            .field("delivered", &(shared.inbound.delivered() - 1))
            .finish_non_exhaustive()
    }
}
