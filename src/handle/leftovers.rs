//! What a handle's task still owes when it ends, however it ends: handed back to the
//! outcomes and the `Shutdown`.

use super::task::{Command, Task};
use super::Shutdown;
use crate::connect::MakeConnection;
use crate::error::Error;
use crate::sink::{Undelivered, UndeliveredReason};
use crate::Message;

/// What the task still owed when it ended.
pub(super) struct Leftovers {
    /// The messages without an outcome, oldest first.
    pub(super) undelivered: Vec<Message>,
    /// Messages the sink held (with an outcome or not).
    pub(super) in_sink: usize,
    /// Messages the sink never took: queued, staged or refused.
    pub(super) outside: usize,
}

impl<M: MakeConnection> Task<M> {
    /// The task ends: outcomes fail with `reason`, handing their messages back, in
    /// order; the other messages still owed (in the sink, refused, or queued) are
    /// returned.
    pub(super) fn hand_back(&mut self, reason: impl Fn() -> UndeliveredReason) -> Leftovers {
        // Outcomes the sink still holds fail with the reason (close() did that already).
        let failed = self.sink.give_up(&reason);
        let mut undelivered = self.sink.take_undelivered();
        let in_sink = failed + undelivered.len();
        let mut outside = self.refused_messages.len();
        undelivered.append(&mut self.refused_messages);
        self.commands.close();
        while let Some(Command { item, promise }) = self
            .staged
            .pop_front()
            .or_else(|| self.commands.try_recv().ok())
        {
            outside += 1;
            let message = item.into_message();
            match promise {
                Some(promise) => self
                    .sink
                    .settle_refused(promise, Undelivered::new(reason(), message)),
                None => undelivered.push(message),
            }
        }
        if in_sink + outside > 0 {
            tracing::warn!(
                undelivered = in_sink + outside,
                "the connection's task ended with messages undelivered"
            );
        }
        Leftovers {
            undelivered,
            in_sink,
            outside,
        }
    }
}

impl<M: MakeConnection> Drop for Task<M> {
    /// Dropped unfinished (a panic in user code unwinding through the sink, or the
    /// runtime shutting down): what was owed is still handed back.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.hand_over_inbound(&Ok(()), false);
        let left = self.hand_back(|| UndeliveredReason::Dropped);
        self.ended.store(Shutdown {
            result: Err(Error::TaskEnded),
            undelivered: left.undelivered,
        });
    }
}
