//! The writing half: sequence numbers, the window, flushing until acknowledged, BYE.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{ready, Context, Poll};

use crate::connect::MakeConnection;
use crate::error::Error;
use crate::resume::frame::Frame;
use crate::sink::{Delivery, Half, Outgoing, Promise};
use crate::Message;

use super::state::Numbered;
use super::*;

impl<M: MakeConnection> ResumingSink<M> {
    /// Polls until the sink can take a message: connected, with room in the window (ours
    /// and the server's).
    ///
    /// - `Ready(Ok(()))`: call `start_send`.
    /// - `Ready(Err(e))`: as [`ReconnectingSink::poll_ready`]; [`Error::SessionEnded`]
    ///   once the server ended the session.
    /// - `Pending`: reconnecting, flushing, or waiting for acknowledgements.
    ///
    /// ```no_run
    /// # async fn run(mut ws: ws_reconnect::ResumingSink) -> Result<(), ws_reconnect::Error> {
    /// use futures::SinkExt; // `feed()` and `send()` poll this
    /// ws.feed(ws_reconnect::Message::text("tick")).await?;
    /// # Ok(()) }
    /// ```
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.plain.load(Ordering::Relaxed) {
            self.tell_writer()?;
            return self.inner.poll_ready(cx).map_err(map_unsupported);
        }
        if self.ended || self.cell.bye.load(Ordering::Acquire) {
            return Poll::Ready(Err(Error::SessionEnded));
        }
        if self.cell.owed.load(Ordering::Acquire) {
            self.poll_ack(Half::Write, cx);
        }
        if let Err(e) = ready!(self.inner.poll_ready(cx)) {
            return match self.screen(e, Half::Write) {
                Some(e) => Poll::Ready(Err(e)),
                None => self.poll_ready(cx),
            };
        }
        loop {
            if InFlight::room(self.inner.unacked(), &self.config, &self.cell) {
                return Poll::Ready(Ok(()));
            }
            // Wait for acknowledgements, of the messages given up or taken back too: the
            // server counts them until it acknowledges them.
            match self.inner.poll_acknowledged(cx) {
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(e)) => {
                    return match self.screen(e, Half::Write) {
                        Some(e) => Poll::Ready(Err(e)),
                        None => self.poll_ready(cx),
                    };
                }
                Poll::Pending => {
                    // Registered before the last look: an acknowledgement stored after
                    // it wakes this task.
                    let mut shared = lock(&self.cell);
                    shared.writer = Some(cx.waker().clone());
                    if InFlight::room(self.inner.unacked(), &self.config, &self.cell) {
                        shared.writer = None;
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// Accepts a message: gives it the next sequence number, and hands it to the sink,
    /// which keeps it until the server acknowledges it.
    ///
    /// # Errors
    /// As [`ReconnectingSink::start_send`]; [`Error::NotReady`] also when the window has no
    /// room (a caller that skipped `poll_ready`). The message was not taken.
    ///
    /// ```no_run
    /// # async fn run(mut ws: ws_reconnect::ResumingSink) -> Result<(), ws_reconnect::Error> {
    /// use std::future::poll_fn;
    /// poll_fn(|cx| ws.poll_ready(cx)).await?;
    /// ws.start_send(ws_reconnect::Message::text("tick"))?;
    /// # Ok(()) }
    /// ```
    pub fn start_send(&mut self, message: Message) -> Result<(), Error> {
        self.take(message, None)
    }

    /// Accepts a message as [`start_send`](Self::start_send) does, and returns its
    /// [`Delivery`]: `Ok` once the server has acknowledged it (its application took it),
    /// or failed with the message handed back, as the application sent it.
    ///
    /// # Errors
    /// As [`start_send`](Self::start_send).
    ///
    /// ```no_run
    /// # async fn run(mut ws: ws_reconnect::ResumingSink) -> Result<(), ws_reconnect::Error> {
    /// use std::future::poll_fn;
    /// poll_fn(|cx| ws.poll_ready(cx)).await?;
    /// let delivery = ws.start_send_outgoing(ws_reconnect::Message::text("order 9"))?;
    /// delivery.await.expect("the server has order 9");
    /// # Ok(()) }
    /// ```
    pub fn start_send_outgoing(&mut self, message: Message) -> Result<ResumeDelivery, Error> {
        let (promise, inner) = Delivery::new();
        self.take(message, Some(promise))?;
        Ok(ResumeDelivery { inner })
    }

    /// Waits until the sink can take a message, then
    /// [`start_send_outgoing`](Self::start_send_outgoing). It does not flush.
    ///
    /// ```no_run
    /// # async fn run(mut ws: ws_reconnect::ResumingSink) -> Result<(), ws_reconnect::Error> {
    /// use ws_reconnect::Message;
    /// let delivery = ws.feed_outgoing(Message::text("order 7")).await?;
    /// // ... go on sending and reading; the outcome resolves when the server has it:
    /// delivery.await.expect("the server has order 7");
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`poll_ready`](Self::poll_ready) and [`start_send`](Self::start_send).
    ///
    /// # Cancellation safety
    /// Dropped before it returns, the message was not taken.
    pub async fn feed_outgoing(&mut self, message: Message) -> Result<ResumeDelivery, Error> {
        poll_fn(|cx| self.poll_ready(cx)).await?;
        self.start_send_outgoing(message)
    }

    /// Hands `message` to the sink: Text and Binary with the next sequence number (each
    /// write frames it as DATA), Ping and Pong as they are; with the outcome `promise`
    /// settles, if any.
    fn take(&mut self, message: Message, promise: Option<Promise>) -> Result<(), Error> {
        if self.plain.load(Ordering::Relaxed) {
            return as_is(&mut self.inner, message, promise);
        }
        if self.ended {
            return Err(Error::SessionEnded);
        }
        match message {
            Message::Text(_) | Message::Binary(_) => {}
            Message::Close(_) | Message::Frame(_) => return Err(Error::UnsupportedMessage),
            ping_or_pong => return as_is(&mut self.inner, ping_or_pong, promise),
        }
        self.inner.ready_to_take()?;
        let unacked = self.inner.unacked();
        if !InFlight::room(unacked, &self.config, &self.cell) {
            // A caller that skipped `poll_ready`: refused, so that what is in flight (held
            // or let go of) stays within the window, the server's included.
            return Err(Error::NotReady);
        }
        // The sink takes it now: the number is used. The sink keeps the message as it
        // is, and frames it at each write (`ResumeFraming`).
        let Numbered { seq, prompt } =
            self.in_flight
                .push(message.len(), unacked, &self.config, &self.cell);
        self.inner.take_framed(message, seq, prompt, promise);
        Ok(())
    }

    /// Polls until every message sent is acknowledged by the server (see
    /// [`ReconnectingSink::poll_flush`]).
    ///
    /// - `Ready(Ok(()))`: the server's application has everything sent so far.
    /// - `Ready(Err(e))`: a reconnection failed; the messages stay.
    /// - `Pending`: writing, reconnecting, or waiting for acknowledgements.
    ///
    /// ```no_run
    /// # async fn run(mut ws: ws_reconnect::ResumingSink) -> Result<(), ws_reconnect::Error> {
    /// use futures::SinkExt;
    /// for i in 0..100 {
    ///     ws.feed(ws_reconnect::Message::text(format!("m{i}"))).await?;
    /// }
    /// ws.flush().await?; // the server's application has all 100
    /// # Ok(()) }
    /// ```
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.plain.load(Ordering::Relaxed) {
            self.tell_writer()?;
            return self.inner.poll_flush(cx).map_err(map_unsupported);
        }
        self.poll_ack(Half::Write, cx);
        match ready!(self.poll_flush_prompted(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => match self.screen(e, Half::Write) {
                Some(e) => Poll::Ready(Err(e)),
                None => self.poll_flush(cx),
            },
        }
    }

    /// Flushes until everything sent is acknowledged, asking the server to acknowledge at
    /// once (a standalone PROMPT) what no PROMPT covers yet, on each connection: one that
    /// came up during the flush is asked too. Errors are the sink's, for the caller to
    /// screen.
    fn poll_flush_prompted(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        loop {
            self.prompt(cx);
            match self.inner.poll_flush(cx) {
                // A connection came up meanwhile (with a WELCOME): ask on it. `prompt`
                // sends on a live connection, so this goes round once.
                Poll::Pending if self.needs_prompt() => continue,
                polled => return polled,
            }
        }
    }

    /// Whether `prompt` would send now.
    fn needs_prompt(&mut self) -> bool {
        self.inner.is_connected()
            && self
                .in_flight
                .needs_prompt(self.inner.unacked(), &self.cell)
    }

    /// Asks the server to acknowledge at once what no PROMPT covers yet: a flush waits
    /// for it. The frame carries this client's own acknowledgement too.
    fn prompt(&mut self, cx: &mut Context<'_>) {
        if !self.needs_prompt() {
            return;
        }
        let ack = {
            let mut shared = lock(&self.cell);
            let ack = shared.inbound.delivered() - 1;
            shared.ack_sent(ack, &self.cell);
            ack
        };
        self.send_control(Frame::Prompt(ack), Half::Write, cx);
        self.in_flight.prompted(&self.cell);
    }

    /// Tells the server the session is over (BYE, after everything sent is acknowledged),
    /// then closes as [`ReconnectingSink::poll_close`] does, all within `close_timeout` of
    /// the first call: what is unacknowledged then is reported as
    /// [`Error::CloseIncomplete`], and no BYE is sent (the session stays on the server
    /// for its time to live).
    ///
    /// - `Ready(Ok(()))`: closed, everything delivered.
    /// - `Ready(Err(e))`: as [`ReconnectingSink::poll_close`].
    /// - `Pending`: delivering or closing.
    ///
    /// ```no_run
    /// # async fn run(mut ws: ws_reconnect::ResumingSink) -> Result<(), ws_reconnect::Error> {
    /// use futures::SinkExt; // `close()` polls this
    /// ws.close().await?; // the server ends the session
    /// # Ok(()) }
    /// ```
    pub fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.plain.load(Ordering::Relaxed) {
            return self.inner.poll_close(cx);
        }
        let timeout = self.inner.close_timeout();
        let taken = self.cell.sent.load(Ordering::Acquire);
        if self.close_timer.as_ref().is_some_and(|b| b.taken != taken) {
            // A `close()` dropped before, and messages sent since: a bound of its own.
            self.close_timer = None;
        }
        let timer = self.close_timer.get_or_insert_with(|| CloseBound {
            taken,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        });
        let deadline = timer.sleep.deadline();
        let expired = timer.sleep.as_mut().poll(cx).is_ready();
        if !expired && !self.bye_queued && !self.ended {
            // After the data: the server ends the session once it delivered it all.
            if let Err(e) = ready!(self.poll_flush_prompted(cx)) {
                self.close_timer = None;
                // Closing: a refusal of resume mode stops the sink, with no switch.
                if is_unsupported(&e) {
                    self.switch.stopped_by_close = true;
                }
                return Poll::Ready(Err(map_unsupported(e)));
            }
            if self
                .inner
                .start_send_control(Frame::Bye.to_message())
                .is_ok()
            {
                self.bye_queued = true;
            }
        }
        // One bound for all of it: what is still unacknowledged at the deadline is
        // reported as undelivered.
        self.inner.close_by(deadline);
        let closed = ready!(self.inner.poll_close(cx));
        self.close_timer = None;
        Poll::Ready(closed)
    }
}

/// The bound on `close()`, from its first call.
pub(super) struct CloseBound {
    /// The last sequence number taken when it started.
    taken: u64,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

/// A message the sink takes as it is (plain mode, Ping, Pong), with its outcome if any.
fn as_is<M: MakeConnection>(
    inner: &mut ReconnectingSink<M>,
    message: Message,
    promise: Option<Promise>,
) -> Result<(), Error> {
    match promise {
        Some(promise) => inner.start_send_promised(Outgoing::new(message), promise),
        None => inner.start_send(message),
    }
}
