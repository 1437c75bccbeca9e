//! One session: its state, which outlives connections, and the application's handle on it.
//!
//! The state is shared by the application's [`Session`] and by the connection that is
//! attached at the time (`conn.rs`), under one mutex held only for bookkeeping, never
//! across I/O. Each attach bumps the session's generation; a connection whose generation
//! is no longer the session's is fenced off: it stops at its next poll, and what it had
//! not delivered is still in the session, to be sent on the new one.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Bytes;

use super::error::SessionError;
use super::{Overflow, ServerConfig};
use crate::resume::buffer::{Limits, ReplayBuffer};
use crate::resume::frame::{encode_data, ResumeViolation, SessionId, Window};
use crate::resume::inbound::Inbound;
use crate::resume::prompt::PromptCadence;
use crate::resume::Gap;
use crate::Message;

/// How a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// The client said BYE.
    ClientBye,
    /// The application closed or dropped its handle: what is buffered goes out, then BYE.
    AppClosed,
    /// The time to live ran out, or the memory budget evicted it.
    Expired,
}

/// What the application's stream yields, in arrival order.
#[derive(Debug)]
pub(super) enum Item {
    Message { seq: u64, message: Message },
    Gap(Gap),
}

/// Whether a connection is attached.
#[derive(Debug, Clone, Copy)]
pub(super) enum Link {
    Attached,
    Detached { since: Instant },
}

/// The state of one session; see the [module docs](self).
#[derive(Debug)]
pub(super) struct State {
    /// The attached connection's generation (each attach adds one).
    pub(super) generation: u64,
    pub(super) link: Link,
    /// DATA frames for the client, encoded, by sequence number, until it acknowledges them.
    pub(super) out: ReplayBuffer<Bytes>,
    /// The next sequence number the attached connection writes.
    pub(super) cursor: u64,
    /// The client's receive window.
    pub(super) peer_window: Window,
    /// A GAP to send before any DATA on the attached connection.
    pub(super) pending_gap: Option<Gap>,
    /// The client's messages: positions, and what the application has not taken.
    pub(super) inbound: Inbound,
    /// The client's messages that arrived and are not yet acknowledged, by sequence
    /// number with their payload bytes, and the sum of those: what the receive window
    /// bounds.
    in_flight: VecDeque<(u64, usize)>,
    in_flight_bytes: usize,
    pub(super) queue: VecDeque<Item>,
    /// When the next DATA frame asks for an acknowledgement at once.
    cadence: PromptCadence,
    /// The last sequence number a PROMPT covers.
    prompted: u64,
    /// The application waits for the client's acknowledgement of what it sent: the
    /// attached connection asks for it at once (a standalone PROMPT), after the data.
    pub(super) prompt_wanted: bool,
    /// A duplicate arrived: acknowledge again, so that a client that resent learns it.
    pub(super) ack_again: bool,
    /// The attached connection stopped reading: the queue is full.
    pub(super) read_blocked: bool,
    pub(super) ending: Option<Ending>,
    /// The stream told the application of the expiry.
    told_expired: bool,
    /// BYE was written on a connection.
    pub(super) bye_sent: bool,
    conn: Option<Waker>,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl State {
    pub(super) fn new(out_first: u64, in_first: u64, peer_window: Window) -> Self {
        State {
            generation: 0,
            link: Link::Attached,
            out: ReplayBuffer::new(out_first),
            cursor: out_first,
            peer_window,
            pending_gap: None,
            inbound: Inbound::new(in_first),
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            queue: VecDeque::new(),
            cadence: PromptCadence::default(),
            prompted: 0,
            prompt_wanted: false,
            ack_again: false,
            read_blocked: false,
            ending: None,
            told_expired: false,
            bye_sent: false,
            conn: None,
            reader: None,
            writer: None,
        }
    }

    /// A new DATA frame of `len` payload bytes from the client. The client keeps what is
    /// unacknowledged within `window` before it sends one more; past that (counted with
    /// what arrived and is not yet acknowledged) it broke the protocol. One frame is
    /// always allowed when none is in flight.
    pub(super) fn arrived(
        &mut self,
        seq: u64,
        len: usize,
        window: Window,
    ) -> Result<(), ResumeViolation> {
        if !self.in_flight.is_empty()
            && (self.in_flight.len() as u64 >= window.frames
                || self.in_flight_bytes as u64 >= window.bytes)
        {
            return Err(ResumeViolation::WindowExceeded);
        }
        self.in_flight.push_back((seq, len));
        self.in_flight_bytes += len;
        Ok(())
    }

    /// Whether the next DATA frame, of `len` payload bytes, carries a PROMPT (see
    /// `resume/prompt.rs`): the window in effect is the client's, capped by the replay
    /// buffer's bounds.
    pub(super) fn prompt_next(&mut self, len: usize, limits: Limits) -> bool {
        let window = Window {
            frames: self.peer_window.frames.min(limits.frames as u64),
            bytes: self.peer_window.bytes.min(limits.bytes as u64),
        };
        let idle = self.out.is_empty();
        let prompt = self.cadence.next(idle, len, window);
        if prompt {
            self.prompted = self.out.next();
        }
        prompt
    }

    /// A standalone PROMPT goes to the client, covering everything sent: the cadence
    /// counts from here.
    pub(super) fn prompt_sent(&mut self) {
        self.prompt_wanted = false;
        self.prompted = self.out.next() - 1;
        self.cadence.restart();
    }

    /// A connection was attached: what it resends is prompted for again once written,
    /// if anything is unacknowledged.
    pub(super) fn attached(&mut self) {
        self.prompted = 0;
        self.prompt_wanted = !self.out.is_empty();
    }

    /// An acknowledgement of everything up to `ack` goes to the client.
    pub(super) fn ack_sent(&mut self, ack: u64) {
        self.inbound.ack_sent(ack);
        while let Some(&(seq, len)) = self.in_flight.front() {
            if seq > ack {
                break;
            }
            self.in_flight.pop_front();
            self.in_flight_bytes -= len;
        }
    }

    pub(super) fn is_attached(&self) -> bool {
        matches!(self.link, Link::Attached)
    }

    pub(super) fn register_conn(&mut self, waker: &Waker) {
        if !self.conn.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.conn = Some(waker.clone());
        }
    }

    pub(super) fn wake_conn(&mut self) {
        if let Some(waker) = self.conn.take() {
            waker.wake();
        }
    }

    pub(super) fn wake_reader(&mut self) {
        if let Some(waker) = self.reader.take() {
            waker.wake();
        }
    }

    pub(super) fn wake_writer(&mut self) {
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
    }

    /// Wakes everyone: the session ended, or changed hands.
    pub(super) fn wake_all(&mut self) {
        self.wake_conn();
        self.wake_reader();
        self.wake_writer();
    }
}

/// The shared cell of one session.
pub(super) struct Cell {
    pub(super) id: SessionId,
    state: Mutex<State>,
}

impl Cell {
    pub(super) fn new(id: SessionId, state: State) -> Self {
        Cell {
            id,
            state: Mutex::new(state),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl fmt::Debug for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cell")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// One client's session, as the application sees it: a `Stream` of the client's messages
/// and a `Sink` of messages for it, which survive the client's reconnections.
///
/// Every message the application sends gets the next sequence number and stays in the
/// session's replay buffer until the client acknowledges it (its application took it);
/// after a reconnection, the client says where it stands and the session sends again
/// from there. Every message from the client is delivered once, in order; a range the
/// client gave up arrives as one [`SessionError::Gap`] item.
///
/// - `poll_ready` waits while the replay buffer is full (`max_unacked_frames`,
///   `max_unacked_bytes`) and a connection is attached, or always with
///   [`Overflow::Backpressure`]; while no connection is attached, [`Overflow::DropOldest`]
///   (the default) takes the message and drops the oldest unacknowledged ones, which the
///   client is told of as a gap.
/// - `poll_flush` completes at once: the session holds what was sent.
///   [`acknowledged`](Self::acknowledged) waits until the client has it.
/// - `poll_close` ends the session: what is buffered is delivered, then the client is
///   told the session is over. Dropping the handle does the same.
///
/// The stream ends when the session ends; an expiry is told once first
/// ([`SessionError::Expired`]).
///
/// ```no_run
/// use futures::{SinkExt, StreamExt};
/// use ws_reconnect::server::{Server, ServerConfig};
///
/// # async fn run() -> std::io::Result<()> {
/// let (server, mut sessions) = Server::new(ServerConfig::default());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
/// tokio::spawn(server.serve(listener));
/// while let Some(mut session) = sessions.next().await {
///     tokio::spawn(async move {
///         // An echo that survives the client's reconnections.
///         while let Some(Ok(message)) = session.next().await {
///             if session.feed(message).await.is_err() {
///                 break;
///             }
///         }
///     });
/// }
/// # Ok(()) }
/// ```
pub struct Session {
    cell: Arc<Cell>,
    shared: Arc<dyn Host>,
}

/// What a session needs of its server: the settings, and a word when its replay buffer
/// grows or shrinks (the server keeps a budget over every session).
pub(super) trait Host: fmt::Debug + Send + Sync {
    fn config(&self) -> &ServerConfig;
    fn buffer_changed(&self, added: usize, freed: usize);
}

impl Session {
    pub(super) fn new(cell: Arc<Cell>, shared: Arc<dyn Host>) -> Self {
        Session { cell, shared }
    }

    /// The session's id, as the client presents it when it comes back.
    ///
    /// ```no_run
    /// # async fn run(session: ws_reconnect::server::Session) -> Result<(), ws_reconnect::server::SessionError> {
    /// println!("serving session {}", session.id());
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> SessionId {
        self.cell.id
    }

    /// Whether a connection from the client is attached now.
    ///
    /// ```no_run
    /// # async fn run(session: ws_reconnect::server::Session) -> Result<(), ws_reconnect::server::SessionError> {
    /// if !session.is_attached() {
    ///     println!("the client is away; what is sent waits in the replay buffer");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_attached(&self) -> bool {
        self.cell.lock().is_attached()
    }

    /// Messages sent and not yet acknowledged by the client, and their payload bytes.
    ///
    /// ```no_run
    /// # async fn run(session: ws_reconnect::server::Session) -> Result<(), ws_reconnect::server::SessionError> {
    /// let (messages, bytes) = session.unacknowledged();
    /// println!("{messages} messages ({bytes} bytes) not yet acknowledged");
    /// # Ok(()) }
    /// ```
    pub fn unacknowledged(&self) -> (usize, usize) {
        let state = self.cell.lock();
        (state.out.len(), state.out.bytes())
    }

    /// Polls for the next message from the client.
    ///
    /// - `Ready(Some(Ok(message)))`: a Text or Binary message, each once, in order.
    /// - `Ready(Some(Err(SessionError::Gap(_))))`: the client gave messages up; polling
    ///   again carries on.
    /// - `Ready(Some(Err(SessionError::Expired)))`: once, then the stream ends.
    /// - `Ready(None)`: the session ended.
    /// - `Pending`: waiting. What was taken is acknowledged to the client at once when it
    ///   asked for that, else after a quarter of the receive window or `ack_delay`.
    ///
    /// ```no_run
    /// # async fn run(mut session: ws_reconnect::server::Session) -> Result<(), ws_reconnect::server::SessionError> {
    /// use futures::StreamExt; // `next()` polls this
    /// use ws_reconnect::server::SessionError;
    /// while let Some(item) = session.next().await {
    ///     match item {
    ///         Ok(message) => println!("{message}"),
    ///         Err(SessionError::Gap(gap)) => println!("lost for good: {gap}"),
    ///         Err(e) => println!("{e}"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, SessionError>>> {
        let mut state = self.cell.lock();
        let every = self.shared.config().ack_every();
        if let Some(item) = state.queue.pop_front() {
            if state.read_blocked {
                state.read_blocked = false;
                state.wake_conn();
            }
            return Poll::Ready(Some(match item {
                Item::Message { seq, message } => {
                    let owed_before = state.inbound.owed().is_some();
                    state.inbound.deliver(seq, message.len());
                    // The connection sends what is due, and starts the delay for what is
                    // first owed.
                    if !owed_before || state.inbound.due(every).is_some() {
                        state.wake_conn();
                    }
                    Ok(message)
                }
                Item::Gap(gap) => {
                    let owed_before = state.inbound.owed().is_some();
                    state.inbound.pass(&gap);
                    // Passing a gap is acknowledged as a take is.
                    if !owed_before && state.inbound.owed().is_some() {
                        state.wake_conn();
                    }
                    Err(SessionError::Gap(gap))
                }
            }));
        }
        match state.ending {
            Some(Ending::Expired) if !state.told_expired => {
                state.told_expired = true;
                Poll::Ready(Some(Err(SessionError::Expired)))
            }
            Some(Ending::Expired | Ending::ClientBye) => Poll::Ready(None),
            Some(Ending::AppClosed) | None => {
                state.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Polls until the session can take a message.
    ///
    /// - `Ready(Ok(()))`: call `start_send`.
    /// - `Ready(Err(_))`: the session ended or expired.
    /// - `Pending`: the replay buffer is full (see the type's docs).
    ///
    /// ```no_run
    /// # async fn run(mut session: ws_reconnect::server::Session) -> Result<(), ws_reconnect::server::SessionError> {
    /// use futures::SinkExt; // `feed()` and `send()` poll this
    /// session.feed(ws_reconnect::Message::text("update 1")).await?;
    /// # Ok(()) }
    /// ```
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SessionError>> {
        let mut state = self.cell.lock();
        if let Some(error) = sending_error(state.ending) {
            return Poll::Ready(Err(error));
        }
        let limits = self.shared.config().out_limits();
        let drops = !state.is_attached() && self.shared.config().overflow == Overflow::DropOldest;
        if drops || state.out.fits(1, limits) {
            return Poll::Ready(Ok(()));
        }
        state.writer = Some(cx.waker().clone());
        if !state.prompt_wanted && state.prompted < state.out.next() - 1 {
            state.prompt_wanted = true;
            state.wake_conn();
        }
        Poll::Pending
    }

    /// Gives the session a message: it gets the next sequence number and goes to the
    /// client now, or when it comes back.
    ///
    /// # Errors
    /// [`SessionError::UnsupportedMessage`] for anything but Text and Binary;
    /// [`SessionError::NotReady`] when the replay buffer has no room (`poll_ready` was
    /// skipped); the session's end ([`SessionError::Ended`], [`SessionError::Expired`]).
    ///
    /// ```no_run
    /// # async fn run(mut session: ws_reconnect::server::Session) -> Result<(), ws_reconnect::server::SessionError> {
    /// use std::future::poll_fn;
    /// poll_fn(|cx| session.poll_ready(cx)).await?;
    /// session.start_send(ws_reconnect::Message::text("update 2"))?;
    /// # Ok(()) }
    /// ```
    pub fn start_send(&mut self, message: Message) -> Result<(), SessionError> {
        let (text, payload) = match message {
            Message::Text(text) => (true, Bytes::from(text)),
            Message::Binary(bytes) => (false, bytes),
            _ => return Err(SessionError::UnsupportedMessage),
        };
        let len = payload.len();
        let mut state = self.cell.lock();
        if let Some(error) = sending_error(state.ending) {
            return Err(error);
        }
        let limits = self.shared.config().out_limits();
        let mut freed = 0;
        let drops = !state.is_attached() && self.shared.config().overflow == Overflow::DropOldest;
        if !drops && !state.out.fits(1, limits) {
            // poll_ready waits before this point; a caller that skipped it is refused
            // rather than let the replay buffer grow without bound.
            return Err(SessionError::NotReady);
        }
        if drops {
            let before = state.out.bytes();
            if let Some(range) = state.out.make_room(len, limits) {
                freed = before - state.out.bytes();
                tracing::debug!(
                    session = %self.cell.id,
                    from = range.start,
                    to = range.end,
                    "replay buffer full while the client is away: oldest messages dropped"
                );
                state.cursor = state.cursor.max(state.out.front());
            }
        }
        let seq = state.out.next();
        let prompt = state.prompt_next(len, limits);
        let frame = Bytes::from(encode_data(seq, None, text, prompt, &payload));
        state.out.push(frame, len);
        state.wake_conn();
        drop(state);
        self.shared.buffer_changed(len, freed);
        Ok(())
    }

    /// Flushing has nothing to wait for: a message given to the session is in its replay
    /// buffer, from which it goes to the client whenever a connection is attached.
    /// [`poll_acknowledged`](Self::poll_acknowledged) waits until the client has it.
    ///
    /// - `Ready(Ok(()))`: everything sent is in the session.
    /// - `Ready(Err(_))`: the session ended or expired.
    ///
    /// ```no_run
    /// # async fn run(mut session: ws_reconnect::server::Session) -> Result<(), ws_reconnect::server::SessionError> {
    /// use futures::SinkExt;
    /// session.feed(ws_reconnect::Message::text("update 3")).await?;
    /// session.flush().await?; // in the replay buffer: not yet at the client
    /// # Ok(()) }
    /// ```
    pub fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), SessionError>> {
        match sending_error(self.cell.lock().ending) {
            Some(error @ SessionError::Expired) => Poll::Ready(Err(error)),
            _ => Poll::Ready(Ok(())),
        }
    }

    /// Polls until the client has acknowledged everything sent (its application took
    /// it).
    ///
    /// - `Ready(Ok(()))`: the client's application has every message sent so far.
    /// - `Ready(Err(_))`: the session expired (or the client ended it) first.
    /// - `Pending`: waiting for acknowledgements, or for the client to come back.
    ///
    /// ```no_run
    /// # async fn run(mut session: ws_reconnect::server::Session) -> Result<(), ws_reconnect::server::SessionError> {
    /// use std::future::poll_fn;
    /// poll_fn(|cx| session.poll_acknowledged(cx)).await?;
    /// # Ok(()) }
    /// ```
    pub fn poll_acknowledged(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SessionError>> {
        let mut state = self.cell.lock();
        if state.out.is_empty() {
            return Poll::Ready(Ok(()));
        }
        if let Some(Ending::Expired | Ending::ClientBye) = state.ending {
            return Poll::Ready(Err(
                sending_error(state.ending).unwrap_or(SessionError::Ended)
            ));
        }
        state.writer = Some(cx.waker().clone());
        if !state.prompt_wanted && state.prompted < state.out.next() - 1 {
            state.prompt_wanted = true;
            state.wake_conn();
        }
        Poll::Pending
    }

    /// Waits until the client has acknowledged everything sent; see
    /// [`poll_acknowledged`](Self::poll_acknowledged).
    ///
    /// ```no_run
    /// # async fn run(mut session: ws_reconnect::server::Session) -> Result<(), ws_reconnect::server::SessionError> {
    /// use futures::SinkExt;
    /// session.feed(ws_reconnect::Message::text("invoice 12")).await?;
    /// session.acknowledged().await?; // the client's application has it
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The session expired or ended first.
    pub async fn acknowledged(&mut self) -> Result<(), SessionError> {
        std::future::poll_fn(|cx| self.poll_acknowledged(cx)).await
    }

    /// Ends the session: what is buffered is delivered, then the client is told the
    /// session is over. Completes once the client has acknowledged everything.
    ///
    /// - `Ready(Ok(()))`: closed, everything delivered.
    /// - `Ready(Err(_))`: the session expired (or the client ended it) first.
    /// - `Pending`: delivering.
    ///
    /// ```no_run
    /// # async fn run(mut session: ws_reconnect::server::Session) -> Result<(), ws_reconnect::server::SessionError> {
    /// use futures::SinkExt; // `close()` polls this
    /// session.close().await?; // the client has everything, and knows the session is over
    /// # Ok(()) }
    /// ```
    pub fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SessionError>> {
        {
            let mut state = self.cell.lock();
            if state.ending.is_none() {
                state.ending = Some(Ending::AppClosed);
                tracing::debug!(session = %self.cell.id, "the application ends the session");
                state.wake_conn();
            }
        }
        self.poll_acknowledged(cx)
    }
}

/// Why a send fails at the session's end.
fn sending_error(ending: Option<Ending>) -> Option<SessionError> {
    match ending? {
        Ending::Expired => Some(SessionError::Expired),
        Ending::ClientBye | Ending::AppClosed => Some(SessionError::Ended),
    }
}

impl Drop for Session {
    /// A dropped handle ends the session as `close()` does.
    fn drop(&mut self) {
        let mut state = self.cell.lock();
        if state.ending.is_none() {
            state.ending = Some(Ending::AppClosed);
            state.wake_conn();
        }
    }
}

impl Stream for Session {
    type Item = Result<Message, SessionError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Session::poll_next(self.get_mut(), cx)
    }
}

impl Sink<Message> for Session {
    type Error = SessionError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SessionError>> {
        Session::poll_ready(self.get_mut(), cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), SessionError> {
        Session::start_send(self.get_mut(), item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SessionError>> {
        Session::poll_flush(self.get_mut(), cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SessionError>> {
        Session::poll_close(self.get_mut(), cx)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.cell.lock();
        f.debug_struct("Session")
            .field("id", &self.cell.id)
            .field("attached", &state.is_attached())
            .field("unacknowledged", &state.out.len())
            .field("queued", &state.queue.len())
            .field("ending", &state.ending)
            .finish()
    }
}
