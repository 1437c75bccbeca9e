//! Acknowledged mode's settings and its per-connection timer.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::end::Lost;
use super::framing::Framing;
use crate::ack::Acknowledge;

/// Acknowledged mode: the user's [`Acknowledge`] and its bounds.
pub(crate) struct Acks {
    pub(crate) acks: Box<dyn Acknowledge>,
    /// How tracked messages are written, when a protocol frames them.
    pub(crate) framing: Option<Box<dyn Framing>>,
    /// At most this many tracked messages unacknowledged at once.
    pub(crate) window: usize,
    /// No acknowledgement progress for this long while tracked messages are
    /// outstanding: the connection is dead.
    pub(crate) timeout: Duration,
}

/// One connection's acknowledgement timer: it runs while tracked messages are
/// outstanding and starts over at every acknowledgement that made progress.
#[derive(Debug)]
pub(super) struct AckTimer {
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    /// The sleep is set for the current stretch without progress.
    armed: bool,
}

impl AckTimer {
    pub(super) fn new(timeout: Duration) -> Self {
        AckTimer {
            timeout,
            sleep: None,
            armed: false,
        }
    }

    /// An acknowledgement made progress: the timer starts over.
    pub(super) fn progress(&mut self) {
        self.armed = false;
    }

    /// `Err(lost)` when `outstanding` tracked messages have waited `timeout` without
    /// progress; otherwise the timer is registered with `cx`.
    pub(super) fn poll(&mut self, outstanding: bool, cx: &mut Context<'_>) -> Result<(), Lost> {
        if !outstanding {
            self.armed = false;
            return Ok(());
        }
        let deadline = Instant::now() + self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            sleep.as_mut().reset(deadline);
            self.armed = true;
        }
        if sleep.as_mut().poll(cx).is_pending() {
            return Ok(());
        }
        let timeout = self.timeout;
        Err(Lost::silent(
            format!("no acknowledgement within {timeout:?}").into(),
            sleep.deadline() - timeout,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_only_after_a_full_stretch_without_progress() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut timer = AckTimer::new(Duration::from_secs(10));
        assert!(timer.poll(true, &mut cx).is_ok());
        tokio::time::advance(Duration::from_secs(9)).await;
        timer.progress();
        assert!(timer.poll(true, &mut cx).is_ok());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(timer.poll(true, &mut cx).is_ok(), "progress restarted it");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(timer.poll(true, &mut cx).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_outstanding_never_fires() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut timer = AckTimer::new(Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(timer.poll(false, &mut cx).is_ok());
    }
}
