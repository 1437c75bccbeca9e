//! The write half's operations: `poll_ready`, `start_send`, `poll_flush`.
//!
//! The steady state costs one check and one write per message: the writer looks at
//! inbound frames (a Close or EOF already there moves new messages to the next
//! connection) only at the start of each batch and every few hundred messages, because
//! a read attempt in tungstenite costs far more than a write. Whatever a look or a
//! write finds wrong comes back as an [`End`] that the driver acts on.

use std::task::{ready, Context, Poll};

use super::driver::{Core, State};
use super::end::End;
use super::outbox::Tag;
use crate::connect::MakeConnection;
use crate::error::Error;
use crate::request::DialKind;
use crate::Message;

impl<M: MakeConnection> Core<M> {
    pub(super) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // The steady state, once per message: connected, nothing to resend, no check or
        // flush due. Straight to the connection.
        let books = &self.books;
        let steady = books.outbox.all_written_or_deferred()
            && !books.outbox.deferred().full()
            && !books.outbox.needs_flush()
            && !books.due_for_check()
            && !books.window_full();
        if let State::Connected(link) = &mut self.state {
            if steady && link.preamble_done() && link.fault.is_none() {
                if let Poll::Ready(Ok(())) = link.poll_ready(cx) {
                    return Poll::Ready(Ok(()));
                }
            }
        }
        loop {
            ready!(self.poll_connected(cx))?;
            match self.poll_room(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(())),
                Poll::Ready(Err(end)) => self.end_connection(end, cx),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// On a connection with its backlog written: looks at what arrived when due, flushes
    /// when the outbox bound says so, waits for room in the acknowledgement window, and
    /// waits for the socket to take a message.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), End>> {
        let State::Connected(link) = &mut self.state else {
            return Poll::Ready(Ok(()));
        };
        let books = &mut self.books;
        if books.due_for_check() {
            books.checking();
            match link.poll_arrived(books, &self.signals, cx) {
                Ok(()) => {}
                Err(End::Faulted(cause)) => {
                    // A plain WebSocket client would have written this message before
                    // reading the bad frame: it still goes to this connection, which is
                    // dropped at the next flush. The reader meets the error after the
                    // data that came before it.
                    if let Poll::Ready(Ok(())) = link.poll_ready(cx) {
                        link.fault = Some(cause);
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Ready(Err(End::Faulted(cause)));
                }
                Err(end) => return Poll::Ready(Err(end)),
            }
            link.poll_timers(books, &self.signals, cx)?;
        }
        if books.outbox.needs_flush() || books.window_full() {
            ready!(link.poll_flush(books, cx))?;
            if books.window_full() {
                // Wait for acknowledgements: reading registers for them; the ack timer
                // and the keepalive run when this parks (see `drive`).
                link.poll_arrived(books, &self.signals, cx)?;
                if books.window_full() {
                    return Poll::Pending;
                }
            }
            // Flushed: a new batch starts, with its look at what arrived.
            return self.poll_room(cx);
        }
        if books.outbox.deferred().full() {
            // A batch a large message filled on its own: written before the next.
            ready!(link.poll_write_deferred(books, cx))?;
        }
        link.poll_ready(cx)
    }

    #[inline]
    pub(super) fn start_send(&mut self, message: Message) -> Result<(), Error> {
        self.can_accept(&message)?;
        self.accept(message, None);
        Ok(())
    }

    /// Whether `start_send` would take `message` now.
    #[inline]
    pub(super) fn can_accept(&self, message: &Message) -> Result<(), Error> {
        if matches!(message, Message::Close(_) | Message::Frame(_)) {
            return Err(Error::UnsupportedMessage);
        }
        self.can_take()
    }

    /// Whether the sink takes a message now, whatever its kind: dialed, and within the
    /// outbox and window bounds.
    #[inline]
    pub(super) fn can_take(&self) -> Result<(), Error> {
        if matches!(self.state, State::Idle | State::Closing { .. }) {
            return Err(Error::NotDialed);
        }
        if self.books.outbox.needs_flush() || self.books.window_full() {
            // poll_ready flushes (or waits for acknowledgements) before this point; a caller
            // that skipped it is refused rather than let the outbox grow without bound.
            return Err(Error::NotReady);
        }
        Ok(())
    }

    /// Takes a message [`can_accept`](Self::can_accept) allowed, with its outcome and
    /// volatility when it has them: kept in the outbox and, when nothing is queued before
    /// it, written at once. A write that fails ends the connection; the message is kept
    /// for the next one.
    #[inline]
    pub(super) fn accept(&mut self, message: Message, tag: Option<Tag>) {
        let id = self.books.acks.as_mut().and_then(|a| a.acks.id(&message));
        self.accept_as(message, id, tag);
    }

    /// [`accept`](Self::accept) with the acknowledgement id given rather than read from
    /// the message: `None` leaves it untracked.
    #[inline]
    pub(super) fn accept_as(&mut self, message: Message, id: Option<u64>, tag: Option<Tag>) {
        self.accepting(message.len());
        // What was held back goes first: this one keeps its place after it.
        self.write_deferred();
        let books = &mut self.books;
        match &mut self.state {
            // Kept without taking the message (a copy of a small payload), which goes to
            // the connection.
            State::Connected(link) if books.outbox.all_written() => {
                books.outbox.push_copy(&message, id, tag);
                let written = link.write(message);
                self.written(written);
            }
            // Not connected (or the backlog is still being written): keep it for later.
            _ => books.outbox.push(message, id, tag),
        }
    }

    /// Takes a tracked message that the framing writes (see [`Framing`]): kept as it
    /// is, and framed for each write, the first one at once when the connection is up
    /// and nothing is queued before it.
    ///
    /// [`Framing`]: super::framing::Framing
    #[inline]
    pub(super) fn accept_framed(
        &mut self,
        message: Message,
        id: u64,
        prompt: bool,
        tag: Option<Tag>,
    ) {
        self.accepting(message.len());
        let books = &mut self.books;
        let framing = books.acks.as_mut().and_then(|a| a.framing.as_deref_mut());
        let limit = framing.as_ref().map_or(0, |f| f.batch_limit());
        if limit > 1 {
            self.accept_batched(message, id, prompt, tag, limit);
            return;
        }
        let wire = match (&self.state, framing) {
            (State::Connected(_), Some(framing)) if books.outbox.all_written() => {
                Some(framing.frame(&message, id, prompt))
            }
            _ => None,
        };
        books.outbox.push_framed(message, id, prompt, tag);
        if let (Some(wire), State::Connected(link)) = (wire, &mut self.state) {
            let written = link.write(wire);
            self.written(written);
        }
    }

    /// [`accept_framed`](Self::accept_framed) for a framing that batches: held back, to
    /// be written with the ones after it (see `outbox/deferred.rs`). At most one write:
    /// the batch before it if it does not fit, or the batch it fills; a batch it fills
    /// on its own (a large message, after the write of the one before) waits for the next
    /// `poll_ready` or flush.
    #[inline]
    fn accept_batched(
        &mut self,
        message: Message,
        id: u64,
        prompt: bool,
        tag: Option<Tag>,
        limit: usize,
    ) {
        let fits = self.books.outbox.deferred().fits(message.len());
        if !fits {
            self.write_deferred();
        }
        let outbox = &mut self.books.outbox;
        if matches!(self.state, State::Connected(_)) && outbox.all_written_or_deferred() {
            outbox.push_deferred(message, id, prompt, tag, limit);
            if fits && outbox.deferred().full() {
                self.write_deferred();
            }
        } else {
            outbox.push_framed(message, id, prompt, tag);
        }
    }

    /// Writes the messages held back for a batch, if any, as one (after `poll_ready`:
    /// one message). A write that fails ends the connection; they stay, and are resent on
    /// the next one.
    #[inline]
    fn write_deferred(&mut self) {
        if self.books.outbox.deferred().count == 0 {
            return;
        }
        let State::Connected(link) = &mut self.state else {
            return;
        };
        if let Err(end) = link.write_deferred(&mut self.books) {
            self.write_failed(end);
        }
    }

    /// A message is being accepted: a write after a dropped `close()` means the sink
    /// goes on.
    #[inline]
    fn accepting(&mut self, len: usize) {
        if self.record.close_deadline.is_some() {
            // A write after a close() that was dropped unfinished: the sink goes on.
            self.record.close_deadline = None;
        }
        self.books.accepted.add(len);
    }

    /// The outcome of writing the outbox's newest entry at once: marked written, or the
    /// connection ends (the entry stays, and is resent on the next one).
    #[inline]
    fn written(&mut self, result: Result<(), End>) {
        match result {
            Ok(()) => self.books.outbox.mark_written(),
            Err(end) => self.write_failed(end),
        }
    }

    /// A write when a message was accepted failed: the connection ends (the messages
    /// stay, and are resent on the next one). A write fails only with a lost
    /// connection, never a Close frame to answer: no waker is needed.
    fn write_failed(&mut self, end: End) {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        self.end_connection(end, &mut cx);
    }

    /// Flushes; a message with an outcome is waited for until its outcome resolves
    /// (acknowledged, or confirmed: see `confirm.rs`).
    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_flush_until(Settled::Outcomes, cx)
    }

    /// Flushes until `settled` holds.
    pub(super) fn poll_flush_until(
        &mut self,
        settled: Settled,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        loop {
            // A dial() in progress must complete; a reconnection the reader started need
            // not hold up a flush that owes nothing.
            let dialing = matches!(
                self.state,
                State::Connected(_)
                    | State::Connecting {
                        kind: DialKind::First,
                        ..
                    }
                    | State::Disconnected {
                        kind: DialKind::First,
                        ..
                    }
            );
            if self.books.outbox.is_empty() && !dialing && !settled.waits_for_released(&self.books)
            {
                // Nothing owed and no dial in progress: no reason to wait or reconnect.
                return Poll::Ready(Ok(()));
            }
            ready!(self.poll_connected(cx))?;
            match self.poll_flushed(settled, cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok(())),
                Poll::Ready(Err(end)) => self.end_connection(end, cx),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Flushes the live connection; in acknowledged mode, waits until what was tracked
    /// is acknowledged too, and (`Settled::Outcomes`) until the flushed messages with an
    /// outcome are confirmed. Reading registers for the
    /// acknowledgements; the timers (the ack timer, the confirmation, the keepalive) run
    /// when this parks.
    fn poll_flushed(&mut self, settled: Settled, cx: &mut Context<'_>) -> Poll<Result<(), End>> {
        let State::Connected(link) = &mut self.state else {
            return Poll::Ready(Ok(()));
        };
        ready!(link.poll_flush(&mut self.books, cx))?;
        let books = &mut self.books;
        let done = |books: &super::books::Books| match settled {
            Settled::Flushed => books.outbox.tracked() == 0,
            Settled::Outcomes => {
                books.outbox.tracked() == 0 && !books.outbox.unconfirmed_outcomes()
            }
            Settled::Acknowledged => books.outbox.all_acknowledged(),
        };
        if done(books) {
            return Poll::Ready(Ok(()));
        }
        link.poll_arrived(books, &self.signals, cx)?;
        if done(books) {
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
    }
}

/// How far a flush waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    /// Written to the socket (and acknowledged, in acknowledged mode).
    Flushed,
    /// And every flushed message with an outcome is confirmed.
    Outcomes,
    /// Written, and every tracked message acknowledged: the ones held, and the ones let
    /// go of that the outbox counts until then (`Outbox::count_released`). What a
    /// protocol with a window waits on for room; it reconnects to hear the
    /// acknowledgements if it must.
    Acknowledged,
}

impl Settled {
    /// Whether messages let go of, not yet acknowledged, are reason enough to wait.
    fn waits_for_released(self, books: &super::books::Books) -> bool {
        self == Settled::Acknowledged && !books.outbox.all_acknowledged()
    }
}
