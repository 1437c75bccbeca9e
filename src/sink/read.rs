//! The read half's operation: `poll_next`.

use std::task::{ready, Context, Poll};

use super::driver::{Core, State};
use super::link::Frame;
use crate::connect::MakeConnection;
use crate::error::Error;
use crate::Message;

impl<M: MakeConnection> Core<M> {
    pub(super) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, Error>>> {
        loop {
            if let Some(item) = self.books.inbox.pop() {
                return Poll::Ready(Some(item));
            }
            match &mut self.state {
                // A failure for good is told once, then the stream ends.
                State::Failed { error, reader_told } => {
                    return Poll::Ready(
                        (!std::mem::replace(reader_told, true)).then(|| Err((**error).clone())),
                    );
                }
                State::Idle | State::Closing { .. } => return Poll::Ready(None),
                _ => {}
            }
            if let Err(e) = ready!(self.poll_connected(cx)) {
                return Poll::Ready(Some(Err(e)));
            }
            let State::Connected(link) = &mut self.state else {
                continue;
            };
            // What a reconnection wrote (on_connect, resend) must leave even if the user
            // only reads; a Pending flush continues on the next poll.
            if link.needs_flush {
                if let Poll::Ready(Err(end)) = link.poll_flush(&mut self.books, cx) {
                    self.end_connection(end, cx);
                    continue;
                }
            }
            match ready!(link.poll_frame(&mut self.books, &self.signals, cx)) {
                Ok(Frame::Data(message)) => return Poll::Ready(Some(Ok(message))),
                Ok(Frame::Consumed) => {}
                // A protocol violation's error is queued: the loop yields it next.
                Err(end) => self.end_connection(end, cx),
            }
        }
    }
}
