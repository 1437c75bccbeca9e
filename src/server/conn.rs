//! One connection attached to a session: it reads the client's frames into the session,
//! and writes the session's frames to the client, until the connection ends or a newer
//! one takes the session over.
//!
//! ```text
//! step     | does                                                         | next
//! ---------+--------------------------------------------------------------+----------------
//! Hello    | reads the first frame, which must be HELLO, within the       | Attached, or
//!          | idle timeout; attaches (resumes or starts a session)         |   ends
//! Attached | reads: DATA, ACK, GAP, REPLAY, BYE into the session; writes: | ends: the link
//!          | WELCOME, a GAP, ACKs, then DATA from the cursor within the   |   drops, idles,
//!          | client's window, then BYE once the application closed        |   is fenced, or
//!          |                                                              |   breaks the
//!          |                                                              |   protocol
//! ```
//!
//! Control frames (WELCOME, GAP, ACK, BYE) go before data and never wait for the client's
//! window: only DATA does.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::closing::{answer_close, close, violation};
use super::error::AttachError;
use super::session::{Cell, Ending, Item, State};
use super::store::{Refusal, Shared};
use crate::error::BoxError;
use crate::resume::frame::{BatchIter, Data, Frame, ResumeViolation};
use crate::resume::inbound::Arrival;
use crate::resume::{Gap, GapReason};
use crate::Message;

/// How an attached connection ended.
enum End {
    /// The link dropped or idled: the session waits for the client.
    Lost,
    /// The client sent a Close frame: it is answered, and the session waits for the
    /// client (or ends, after its BYE).
    Closed,
    /// A newer connection took the session over.
    Fenced,
    /// The client broke the protocol.
    Violation(ResumeViolation),
}

/// Runs one connection: HELLO, then attached until it ends.
pub(super) async fn run<T, E>(shared: Arc<Shared>, mut transport: T) -> Result<(), AttachError>
where
    T: Sink<Message> + Stream<Item = Result<Message, E>> + Unpin,
    T::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    let idle = shared.config.idle_timeout;
    let first = match tokio::time::timeout(idle, next_frame(&mut transport)).await {
        Ok(Ok(Some(message))) => message,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(AttachError::Transport(e)),
        Err(_) => {
            tracing::debug!("no HELLO within the idle timeout");
            return Ok(());
        }
    };
    let hello = match Frame::from_message(&first) {
        Ok(Frame::Hello(hello)) => hello,
        Ok(_) => return violation(&shared, transport, ResumeViolation::NoHello).await,
        Err(v) => return violation(&shared, transport, v).await,
    };
    let attached = match shared.attach(hello) {
        Ok(attached) => attached,
        Err(Refusal::Violation(v)) => return violation(&shared, transport, v).await,
        Err(Refusal::Full) => {
            tracing::warn!("a new session was refused: the Sessions stream is full or gone");
            close(
                &mut transport,
                CloseCode::Again,
                "no room for a new session",
            )
            .await;
            return Err(AttachError::Refused);
        }
    };
    let mut conn = Conn {
        shared: Arc::clone(&shared),
        cell: Arc::clone(&attached.cell),
        generation: attached.generation,
        welcome: Some(Frame::Welcome(attached.welcome).to_message()),
        idle: Box::pin(tokio::time::sleep(idle)),
        ack_timer: None,
        needs_flush: false,
    };
    let end = poll_fn(|cx| conn.poll(&mut transport, cx)).await;
    shared.detach(&attached.cell, attached.generation);
    match end {
        End::Lost | End::Fenced => Ok(()),
        End::Closed => {
            answer_close(&mut transport).await;
            Ok(())
        }
        End::Violation(v) => violation(&shared, transport, v).await,
    }
}

/// The next message that is not a Ping or Pong (tungstenite answers Pings itself).
async fn next_frame<T, E>(transport: &mut T) -> Result<Option<Message>, BoxError>
where
    T: Stream<Item = Result<Message, E>> + Unpin,
    E: Into<BoxError>,
{
    loop {
        let next = poll_fn(|cx| Pin::new(&mut *transport).poll_next(cx)).await;
        match next {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(_))) | None => return Ok(None),
            Some(Ok(message)) => return Ok(Some(message)),
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

/// An attached connection's own state; the session's is in its cell.
struct Conn {
    shared: Arc<Shared>,
    cell: Arc<Cell>,
    generation: u64,
    /// WELCOME, until it is written.
    welcome: Option<Message>,
    /// Reset by every frame that arrives; when it fires the link is taken for dead.
    idle: Pin<Box<Sleep>>,
    /// Runs while an acknowledgement is owed; when it fires, one is sent.
    ack_timer: Option<Pin<Box<Sleep>>>,
    needs_flush: bool,
}

impl Conn {
    fn poll<T, E>(&mut self, transport: &mut T, cx: &mut Context<'_>) -> Poll<End>
    where
        T: Sink<Message> + Stream<Item = Result<Message, E>> + Unpin,
        T::Error: Into<BoxError>,
        E: Into<BoxError>,
    {
        loop {
            {
                let mut state = self.cell.lock();
                if state.generation != self.generation {
                    tracing::debug!(session = %self.cell.id, "connection fenced off by a newer one");
                    return Poll::Ready(End::Fenced);
                }
                state.register_conn(cx.waker());
            }
            let (read, more) = match self.poll_read(transport, cx) {
                Ok(read) => read,
                Err(end) => return Poll::Ready(end),
            };
            if read {
                // Once per batch read, not per frame: a clock read and a timer reset each.
                self.idle
                    .as_mut()
                    .reset(Instant::now() + self.shared.config.idle_timeout);
            }
            let wrote = match self.poll_write(transport, cx) {
                Ok(wrote) => wrote,
                Err(end) => return Poll::Ready(end),
            };
            if self.idle.as_mut().poll(cx).is_ready() {
                tracing::debug!(session = %self.cell.id, "nothing from the client within the idle timeout");
                return Poll::Ready(End::Lost);
            }
            if more {
                // More frames wait: let the application take what was read (and so
                // acknowledge it) before reading on.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if !read && !wrote {
                return Poll::Pending;
            }
        }
    }

    /// Reads what arrived while the session's queue has room, a batch at a time.
    /// `Ok((read, more))`: whether it read something, and whether more may be waiting.
    fn poll_read<T, E>(
        &mut self,
        transport: &mut T,
        cx: &mut Context<'_>,
    ) -> Result<(bool, bool), End>
    where
        T: Stream<Item = Result<Message, E>> + Unpin,
    {
        let room = self.shared.config.recv_window().frames as usize;
        let mut read = false;
        for _ in 0..64 {
            {
                let mut state = self.cell.lock();
                if state.queue.len() >= room {
                    state.read_blocked = true;
                    return Ok((read, false));
                }
            }
            let message = match Pin::new(&mut *transport).poll_next(cx) {
                Poll::Pending => return Ok((read, false)),
                Poll::Ready(Some(Ok(message))) => message,
                Poll::Ready(Some(Err(_)) | None) => return Err(End::Lost),
            };
            read = true;
            match message {
                Message::Binary(_) => {}
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                Message::Close(_) => return Err(End::Closed),
                Message::Text(_) => return Err(End::Violation(ResumeViolation::NotBinary)),
            }
            let frame = Frame::from_message(&message).map_err(End::Violation)?;
            self.receive(frame)?;
        }
        Ok((read, true))
    }

    /// Applies one frame from the client to the session.
    fn receive(&mut self, frame: Frame) -> Result<(), End> {
        let mut state = self.cell.lock();
        let mut freed = 0;
        match frame {
            Frame::Data(data) => freed += self.receive_data(&mut state, data)?,
            Frame::Batch(body) => {
                // Each DATA in turn, as if it came alone: the window, the order and the
                // acknowledgements work per message.
                for data in BatchIter::new(body) {
                    let data = data.map_err(End::Violation)?;
                    freed += self.receive_data(&mut state, data)?;
                }
            }
            Frame::Ack(ack) => freed += apply_ack(&mut state, ack)?,
            Frame::Prompt(ack) => {
                freed += apply_ack(&mut state, ack)?;
                state.inbound.prompt_received();
            }
            Frame::Gap(gap) => {
                if let Some(gap) = state.inbound.on_gap(gap) {
                    state.queue.push_back(Item::Gap(gap));
                    state.wake_reader();
                }
            }
            Frame::Replay(from) => {
                let point = state.out.resume_from(from).map_err(End::Violation)?;
                state.cursor = point.cursor;
                state.pending_gap = point
                    .lost
                    .map(|r| Gap::new(r.start, Some(r.end), GapReason::Overflow));
                tracing::debug!(session = %self.cell.id, from, "the client asked for messages again");
            }
            Frame::Bye => {
                tracing::debug!(session = %self.cell.id, "the client ended the session");
                state.ending = Some(Ending::ClientBye);
                state.ack_again = true;
                state.wake_reader();
                state.wake_writer();
            }
            Frame::Hello(_) | Frame::Welcome(_) => {
                let kind = frame.kind_name();
                return Err(End::Violation(ResumeViolation::Unexpected { kind }));
            }
        }
        drop(state);
        if freed > 0 {
            self.shared.held_changed(0, freed);
        }
        Ok(())
    }

    /// A DATA frame from the client: its acknowledgement applied (returns the payload
    /// bytes that freed), then queued for the application if it is the next one.
    fn receive_data(&self, state: &mut State, data: Data) -> Result<usize, End> {
        let Data {
            seq,
            ack,
            text,
            prompt,
            payload,
        } = data;
        let freed = match ack {
            Some(ack) => apply_ack(state, ack)?,
            None => 0,
        };
        let mut arrival = state.inbound.on_data(seq);
        if let Arrival::Ahead { expected } = arrival {
            // The client skipped messages: it gave them up. Told, never silent.
            let gap = Gap::new(expected, Some(seq), GapReason::Abandoned);
            if let Some(gap) = state.inbound.on_gap(gap) {
                tracing::warn!(session = %self.cell.id, %gap, "the client skipped messages");
                state.queue.push_back(Item::Gap(gap));
            }
            arrival = state.inbound.on_data(seq);
        }
        match arrival {
            Arrival::New => {
                let window = self.shared.config.enforced_window();
                state
                    .arrived(seq, payload.len(), window)
                    .map_err(End::Violation)?;
                if prompt {
                    state.inbound.prompt(seq);
                }
                let message = Data {
                    seq,
                    ack: None,
                    text,
                    prompt,
                    payload,
                }
                .into_message();
                state.queue.push_back(Item::Message { seq, message });
                state.wake_reader();
            }
            // Dropped, and acknowledged again: the client resent it because the
            // acknowledgement did not reach it.
            Arrival::Duplicate | Arrival::Ahead { .. } => state.ack_again = true,
        }
        Ok(freed)
    }

    /// Writes what is due: WELCOME, a GAP, an acknowledgement, DATA within the client's
    /// window, BYE; then flushes. `Ok(true)`: wrote or flushed something.
    fn poll_write<T>(&mut self, transport: &mut T, cx: &mut Context<'_>) -> Result<bool, End>
    where
        T: Sink<Message> + Unpin,
        T::Error: Into<BoxError>,
    {
        let mut wrote = false;
        loop {
            match Pin::new(&mut *transport).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Err(End::Lost),
                Poll::Pending => break,
            }
            let Some(message) = self.next_outgoing(cx) else {
                break;
            };
            Pin::new(&mut *transport)
                .start_send(message)
                .map_err(|_| End::Lost)?;
            wrote = true;
            self.needs_flush = true;
        }
        if self.needs_flush {
            match Pin::new(&mut *transport).poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    self.needs_flush = false;
                    return Ok(true);
                }
                Poll::Ready(Err(_)) => return Err(End::Lost),
                Poll::Pending => {}
            }
        }
        Ok(wrote)
    }

    /// The next frame to write, if any is due.
    fn next_outgoing(&mut self, cx: &mut Context<'_>) -> Option<Message> {
        if let Some(welcome) = self.welcome.take() {
            return Some(welcome);
        }
        let cell = Arc::clone(&self.cell);
        let mut state = cell.lock();
        if let Some(gap) = state.pending_gap.take() {
            tracing::info!(session = %self.cell.id, %gap, "the client is told of a gap");
            self.shared
                .counters
                .gaps
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Some(Frame::Gap(gap).to_message());
        }
        if let Some(ack) = self.ack_due(&mut state, cx) {
            self.acknowledging(&mut state, ack);
            return Some(Frame::Ack(ack).to_message());
        }
        if state.cursor < state.out.front() {
            state.cursor = state.out.front();
        }
        if state.cursor < state.out.next() {
            let (frames, bytes) = state.out.span(state.cursor);
            let window = state.peer_window;
            let next = state.out.get(state.cursor).cloned().unwrap_or_default();
            let fits = frames == 0
                || ((frames as u64) < window.frames
                    && bytes.saturating_add(next.len() as u64) <= window.bytes);
            if fits {
                state.cursor += 1;
                return Some(Message::Binary(next));
            }
            return None;
        }
        if state.prompt_wanted {
            // After the data: the client acknowledges everything written so far. It
            // carries everything owed the other way.
            state.prompt_sent();
            let ack = state.inbound.delivered() - 1;
            self.acknowledging(&mut state, ack);
            return Some(Frame::Prompt(ack).to_message());
        }
        if state.ending == Some(Ending::AppClosed) && !state.bye_sent {
            state.bye_sent = true;
            tracing::debug!(session = %self.cell.id, "the client is told the session is over");
            return Some(Frame::Bye.to_message());
        }
        None
    }

    /// An acknowledgement of `ack` goes out (ACK or PROMPT): nothing is owed up to there,
    /// and the delay starts again.
    fn acknowledging(&mut self, state: &mut State, ack: u64) {
        state.ack_sent(ack);
        state.ack_again = false;
        self.ack_timer = None;
    }

    /// The acknowledgement to send now: the application took frames since the last one,
    /// and the client prompted for them, enough has piled up, a duplicate came, or the
    /// acknowledgement delay ran out.
    fn ack_due(&mut self, state: &mut State, cx: &mut Context<'_>) -> Option<u64> {
        let Some(owed) = state.inbound.owed() else {
            self.ack_timer = None;
            if state.ack_again {
                state.ack_again = false;
                let current = state.inbound.delivered() - 1;
                if current > 0 {
                    return Some(current);
                }
            }
            return None;
        };
        let every = self.shared.config.ack_every();
        if state.ack_again || state.inbound.due(every).is_some() {
            return Some(owed);
        }
        let delay = self.shared.config.ack_delay;
        let timer = self
            .ack_timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(delay)));
        timer.as_mut().poll(cx).is_ready().then_some(owed)
    }
}

/// Applies a cumulative acknowledgement from the client; returns the payload bytes it
/// let go.
fn apply_ack(state: &mut State, ack: u64) -> Result<usize, End> {
    let before = state.out.bytes();
    let trimmed = state.out.ack(ack).map_err(End::Violation)?;
    if trimmed > 0 {
        state.wake_writer();
    }
    Ok(before - state.out.bytes())
}
