//! Keepalive: a Ping after silence, and the verdict when nothing answers.
//!
//! A connection whose peer vanished without a FIN or a RST (a frozen path, a dead NAT
//! entry, a suspended laptop on the other side) looks healthy forever to TCP. The
//! keepalive notices: after [`Keepalive::interval`] with no frame received a Ping falls
//! due, and if no frame at all arrives within [`Keepalive::timeout`] of that moment the
//! connection is dead. The timeout runs from when the Ping fell due, not from when it was
//! written, so a writer blocked behind a full socket (the Ping cannot even be written) is
//! freed in the same `interval + timeout`.
//!
//! A slow link is not a dead one: a large message takes as long as it takes, and the
//! Ping (and the peer's Pong) wait behind it. When the connector counts what moves on
//! its socket ([`MeteredStream`](crate::connect::MeteredStream): bytes read, and on
//! Linux the kernel's send queue), bytes arriving (even a partial frame) or a send
//! queue that drains count as life, as a frame does. A path that froze moves nothing
//! and is still replaced within `interval + timeout`. (A peer whose application hangs
//! while its kernel still takes data is noticed once its receive buffer is full.)

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_sink::Sink;
use tokio::time::{Instant, Sleep};

use super::end::Lost;
use crate::error::BoxError;
use crate::progress::{Moved, Progress};
use crate::Message;

/// Keepalive settings: a Ping after `interval` with nothing received; the connection is
/// replaced if no frame arrives within `timeout` after that.
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::Keepalive;
///
/// let keepalive = Keepalive::new(Duration::from_secs(10), Duration::from_secs(5));
/// // A dead peer is noticed at most this long after its last frame:
/// assert_eq!(keepalive.detection_bound(), Duration::from_secs(15));
/// let ws = ws_reconnect::ReconnectingSink::builder()
///     .keepalive(keepalive.interval, keepalive.timeout)
///     .build("ws://127.0.0.1:9000/")?;
/// # let _ = ws;
/// # Ok::<(), ws_reconnect::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence after which a Ping is due.
    pub interval: Duration,
    /// How long after the Ping fell due a frame must arrive.
    pub timeout: Duration,
}

impl Keepalive {
    /// Keepalive settings from their two durations.
    pub const fn new(interval: Duration, timeout: Duration) -> Self {
        Keepalive { interval, timeout }
    }

    /// The longest a dead connection can go unnoticed: `interval + timeout`.
    pub fn detection_bound(&self) -> Duration {
        self.interval.saturating_add(self.timeout)
    }
}

/// Whether [`KeepaliveTimer::poll`] wrote a Ping that now needs flushing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ping {
    NotWritten,
    Written,
}

/// One connection's keepalive clock.
#[derive(Debug)]
pub(super) struct KeepaliveTimer {
    settings: Keepalive,
    /// When the last frame of any kind arrived.
    last_rx: Instant,
    /// Armed for the next deadline; frames move the deadline later without touching it
    /// (it is re-armed when it fires early), a Ping falling due moves it earlier.
    timer: Option<Pin<Box<Sleep>>>,
    /// A Ping fell due at this time and no frame has arrived since.
    probe: Option<Instant>,
    /// The probe's Ping is written (it may not be yet while the socket is full).
    ping_written: bool,
    /// What moves on the connection's socket, when the connector counts it.
    progress: Option<Arc<Progress>>,
    /// `progress` at the last sign of life.
    moved: Moved,
}

impl KeepaliveTimer {
    /// A clock for a connection whose socket's counters are `progress`, if the
    /// connector keeps them.
    pub(super) fn new(settings: Keepalive, progress: Option<Arc<Progress>>) -> Self {
        KeepaliveTimer {
            settings,
            last_rx: Instant::now(),
            timer: None,
            probe: None,
            ping_written: false,
            moved: progress.as_ref().map(|p| p.now()).unwrap_or_default(),
            progress,
        }
    }

    /// A frame arrived: the peer is alive.
    pub(super) fn frame_received(&mut self) {
        self.last_rx = Instant::now();
        self.probe = None;
        self.ping_written = false;
        if let Some(progress) = &self.progress {
            self.moved = progress.now();
        }
    }

    /// Whether the socket moved since the last sign of life (bytes of a frame still
    /// arriving, a send queue draining): a slow link, not a dead one. Flushes first, so
    /// that the kernel's send queue is read afresh.
    fn moved<C>(&mut self, conn: Pin<&mut C>, cx: &mut Context<'_>) -> Result<bool, Lost>
    where
        C: Sink<Message> + ?Sized,
        C::Error: Into<BoxError>,
    {
        let Some(progress) = &self.progress else {
            return Ok(false);
        };
        progress
            .fresh
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Poll::Ready(Err(e)) = conn.poll_flush(cx) {
            return Err(Lost::new(e.into()));
        }
        let now = progress.now();
        let moved = now.since(&self.moved);
        self.moved = now;
        Ok(moved)
    }

    /// The socket is deliberately left unread (the inbox is full): silence proves
    /// nothing, so the clock is held and starts again when reading resumes.
    pub(super) fn hold(&mut self) {
        self.frame_received();
    }

    /// Writes the Ping when it is due and the connection takes it, and arms the timer
    /// for the next deadline.
    ///
    /// - `Ok(Ping::Written)`: a Ping was written; the caller flushes it.
    /// - `Ok(Ping::NotWritten)`: nothing to do until the timer (registered with `cx`)
    ///   fires or a frame arrives.
    /// - `Err(lost)`: no frame within `timeout` of the Ping falling due, or the
    ///   connection failed while taking the Ping.
    pub(super) fn poll<C>(
        &mut self,
        mut conn: Pin<&mut C>,
        cx: &mut Context<'_>,
    ) -> Result<Ping, Lost>
    where
        C: Sink<Message> + ?Sized,
        C::Error: Into<BoxError>,
    {
        let mut wrote = Ping::NotWritten;
        loop {
            if self.probe.is_some() && !self.ping_written {
                match conn.as_mut().poll_ready(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Ok(())) => {
                        conn.as_mut()
                            .start_send(Message::Ping(Default::default()))
                            .map_err(|e| Lost::new(e.into()))?;
                        tracing::trace!("keepalive ping");
                        self.ping_written = true;
                        wrote = Ping::Written;
                    }
                    Poll::Ready(Err(e)) => return Err(Lost::new(e.into())),
                }
            }
            let deadline = match self.probe {
                Some(due) => due + self.settings.timeout,
                None => self.last_rx + self.settings.interval,
            };
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() > deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Ok(wrote);
            }
            let now = Instant::now();
            if now < deadline {
                timer.as_mut().reset(deadline);
                continue;
            }
            if self.moved(conn.as_mut(), cx)? {
                tracing::trace!("keepalive: the link moves, slowly");
                self.frame_received();
                continue;
            }
            if self.probe.is_some() {
                let silent = now.saturating_duration_since(self.last_rx);
                let Keepalive { interval, timeout } = self.settings;
                return Err(Lost::silent(
                    format!("no frame for {silent:?} (keepalive {interval:?} + {timeout:?})")
                        .into(),
                    self.last_rx,
                ));
            }
            self.probe = Some(now);
            self.ping_written = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use futures_util::SinkExt;

    use super::*;

    /// A sink that takes nothing (a full socket), or everything.
    struct Conn {
        full: bool,
        pings: usize,
    }

    impl Sink<Message> for Conn {
        type Error = std::io::Error;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if self.full {
                Poll::Pending
            } else {
                Poll::Ready(Ok(()))
            }
        }
        fn start_send(mut self: Pin<&mut Self>, _: Message) -> Result<(), Self::Error> {
            self.pings += 1;
            Ok(())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    const S: Duration = Duration::from_secs(1);

    fn poll(timer: &mut KeepaliveTimer, conn: &mut Conn) -> Result<Ping, Lost> {
        let mut cx = Context::from_waker(Waker::noop());
        timer.poll(Pin::new(conn), &mut cx)
    }

    #[tokio::test(start_paused = true)]
    async fn pings_after_the_interval_and_gives_up_after_the_timeout() {
        let mut timer = KeepaliveTimer::new(Keepalive::new(10 * S, 5 * S), None);
        let mut conn = Conn {
            full: false,
            pings: 0,
        };
        assert_eq!(poll(&mut timer, &mut conn).unwrap(), Ping::NotWritten);
        tokio::time::advance(10 * S).await;
        assert_eq!(poll(&mut timer, &mut conn).unwrap(), Ping::Written);
        assert_eq!(conn.pings, 1);
        tokio::time::advance(5 * S - Duration::from_millis(1)).await;
        assert_eq!(poll(&mut timer, &mut conn).unwrap(), Ping::NotWritten);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(poll(&mut timer, &mut conn).is_err());
        let _ = conn.close().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_answers_the_ping() {
        let mut timer = KeepaliveTimer::new(Keepalive::new(10 * S, 5 * S), None);
        let mut conn = Conn {
            full: false,
            pings: 0,
        };
        tokio::time::advance(10 * S).await;
        assert_eq!(poll(&mut timer, &mut conn).unwrap(), Ping::Written);
        tokio::time::advance(S).await;
        timer.frame_received();
        tokio::time::advance(8 * S).await;
        // Past the Ping's timeout, but only 8 s of silence since the frame: alive, and
        // no new Ping due yet.
        assert_eq!(poll(&mut timer, &mut conn).unwrap(), Ping::NotWritten);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_socket_does_not_stop_the_clock() {
        let mut timer = KeepaliveTimer::new(Keepalive::new(10 * S, 5 * S), None);
        let mut conn = Conn {
            full: true,
            pings: 0,
        };
        tokio::time::advance(10 * S).await;
        assert_eq!(poll(&mut timer, &mut conn).unwrap(), Ping::NotWritten);
        tokio::time::advance(5 * S).await;
        assert!(
            poll(&mut timer, &mut conn).is_err(),
            "dead although the Ping never left"
        );
        assert_eq!(conn.pings, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn holding_restarts_the_clock() {
        let mut timer = KeepaliveTimer::new(Keepalive::new(10 * S, 5 * S), None);
        let mut conn = Conn {
            full: false,
            pings: 0,
        };
        for _ in 0..10 {
            tokio::time::advance(9 * S).await;
            timer.hold();
            assert_eq!(poll(&mut timer, &mut conn).unwrap(), Ping::NotWritten);
        }
        assert_eq!(conn.pings, 0);
    }
}
