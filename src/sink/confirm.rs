//! When a flushed message counts as delivered, and which are sent again when a
//! connection ends.
//!
//! A flush puts a message in the kernel's socket buffer, not in the server's hands. A
//! server that closes (a Close frame, or the connection dropped) discards whatever was
//! still on its way, and no look before writing can see a Close that is still on the
//! wire. So a flushed message is kept, *unconfirmed*, until the sink has evidence that
//! the server read it; when the connection ends first, every unconfirmed message is
//! written again on the next connection (after the `on_connect` messages, in order).
//!
//! The evidence, by default ([`ConfirmBy::Pong`]), is the WebSocket protocol's own echo:
//! after a flush the sink sends a Ping (one at a time, tagged so that the application's
//! own Pings are not mistaken for it). A peer reads frames in order and answers a Ping
//! when it reads it, so its Pong says that everything written before the Ping was read.
//! Those messages are confirmed; their outcomes resolve `Ok`. At most one Ping is out,
//! so what is resent after an end is what was flushed within about two round trips.
//!
//! Limits: a peer that answers Pings in a layer below the application and then drops
//! messages the application had not taken (a server that closes with a queue of received
//! messages) loses them; so does one that never answers Pings (its messages are confirmed
//! only when the unconfirmed part reaches the outbox bound; use [`ConfirmBy::After`]).
//! Acknowledged delivery covers both.

use std::time::Duration;

use tokio::time::Instant;

use crate::{Bytes, Message};

/// When a flushed message counts as delivered (its outcome resolves `Ok`, it is no
/// longer resent) in plain mode ([`Builder::confirm_by`](crate::Builder::confirm_by)).
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::{ConfirmBy, ReconnectingSink};
///
/// assert_eq!(ConfirmBy::default(), ConfirmBy::Pong);
/// // A server that does not answer Pings: confirmed 250 ms after the flush instead.
/// let ws = ReconnectingSink::builder()
///     .confirm_by(ConfirmBy::After(Duration::from_millis(250)))
///     .build("ws://127.0.0.1:9000/")?;
/// # let _ = ws;
/// # Ok::<(), ws_reconnect::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ConfirmBy {
    /// When the peer answers a Ping the sink sent after the message: the peer has read
    /// it. Messages flushed but not confirmed when a connection ends are sent again.
    #[default]
    Pong,
    /// When a read found nothing waiting this long after the flush: a peer that closed
    /// within that time is noticed, and what was flushed after `closed - duration` is
    /// sent again. For peers that do not answer Pings.
    After(Duration),
    /// At the flush (0.2's behaviour): a server that closes while a message is on its
    /// way loses it.
    Flush,
}

/// A sink's confirmation setting, and the last quiet look (for [`ConfirmBy::After`]).
#[derive(Debug)]
pub(super) struct Confirmation {
    pub(super) by: ConfirmBy,
    /// The last time a read found nothing waiting on the live connection.
    quiet_at: Option<Instant>,
}

impl Confirmation {
    pub(super) fn new(by: ConfirmBy) -> Self {
        Confirmation { by, quiet_at: None }
    }

    /// Whether flushed messages wait for a confirmation.
    #[inline]
    pub(super) fn waits(&self) -> bool {
        self.by != ConfirmBy::Flush
    }

    /// A read found nothing waiting, now: with [`ConfirmBy::After`], the flush time at
    /// or before which messages are confirmed.
    #[inline]
    pub(super) fn quiet(&mut self) -> Option<Instant> {
        let ConfirmBy::After(after) = self.by else {
            return None;
        };
        let now = Instant::now();
        self.quiet_at = Some(now);
        now.checked_sub(after)
    }

    /// A connection ends: with [`ConfirmBy::After`], the flush time at or before which
    /// messages count as delivered (those flushed `after` before the last quiet look);
    /// everything flushed later is resent. `silent_since`: the last sign of life, when
    /// the end is a silence.
    pub(super) fn ended(&mut self, silent_since: Option<Instant>) -> Option<Instant> {
        let ConfirmBy::After(after) = self.by else {
            return None;
        };
        let anchor = match (self.quiet_at.take(), silent_since) {
            (Some(quiet), Some(silent)) => quiet.min(silent),
            (quiet, silent) => quiet.or(silent)?,
        };
        anchor.checked_sub(after)
    }
}

/// The first bytes of a fence Ping's payload, so that a Pong answering the
/// application's own Ping is not mistaken for one.
const TAG: &[u8; 4] = b"wsr\x02";

/// One connection's fence: the Ping sent after a flush, whose Pong confirms it.
#[derive(Debug, Default)]
pub(super) struct Fence {
    /// The Ping out, and the last flush it covers.
    out: Option<(u64, u64)>,
    next_id: u64,
    /// When the last answer came: the round trip of the last fence.
    pub(super) round_trip: Option<Duration>,
    sent_at: Option<Instant>,
}

impl Fence {
    /// The Ping to write after flush `through`, unless one is out already.
    pub(super) fn ping(&mut self, through: u64) -> Option<Message> {
        if self.out.is_some() {
            return None;
        }
        self.next_id += 1;
        self.out = Some((self.next_id, through));
        self.sent_at = Some(Instant::now());
        let mut payload = Vec::with_capacity(12);
        payload.extend_from_slice(TAG);
        payload.extend_from_slice(&self.next_id.to_be_bytes());
        Some(Message::Ping(Bytes::from(payload)))
    }

    /// The Ping could not be written: another is tried at the next chance.
    pub(super) fn unsent(&mut self) {
        self.out = None;
    }

    /// A Pong arrived: the last flush it confirms, if it answers the fence.
    pub(super) fn answered(&mut self, pong: &[u8]) -> Option<u64> {
        let (id, through) = self.out?;
        let answers = pong.len() == 12 && pong[..4] == TAG[..] && pong[4..] == id.to_be_bytes();
        if !answers {
            return None;
        }
        self.out = None;
        self.round_trip = self.sent_at.take().map(|at| at.elapsed());
        Some(through)
    }

    /// Whether a fence Ping is out.
    pub(super) fn is_out(&self) -> bool {
        self.out.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_fence_is_answered_by_its_own_pong_only_and_one_is_out_at_a_time() {
        let mut fence = Fence::default();
        let Some(Message::Ping(payload)) = fence.ping(3) else {
            panic!("a Ping");
        };
        assert!(fence.ping(4).is_none(), "one at a time");
        assert_eq!(fence.answered(b"user ping"), None);
        assert_eq!(fence.answered(&payload), Some(3));
        assert_eq!(fence.answered(&payload), None, "once");
        let Some(Message::Ping(next)) = fence.ping(4) else {
            panic!("the next");
        };
        assert_eq!(
            fence.answered(&payload),
            None,
            "an old answer confirms nothing"
        );
        assert_eq!(fence.answered(&next), Some(4));
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_duration_a_close_is_anchored_at_the_last_quiet_look() {
        let mut confirmation = Confirmation::new(ConfirmBy::After(10 * MS));
        let start = Instant::now();
        tokio::time::advance(100 * MS).await;
        assert_eq!(confirmation.quiet(), Some(start + 90 * MS));
        tokio::time::advance(50 * MS).await;
        assert_eq!(confirmation.ended(None), Some(start + 90 * MS));
        confirmation.quiet();
        assert_eq!(
            confirmation.ended(Some(start + 20 * MS)),
            Some(start + 10 * MS)
        );
        assert_eq!(confirmation.ended(None), None, "never looked: resend all");
        let mut pong = Confirmation::new(ConfirmBy::Pong);
        assert_eq!(pong.quiet(), None);
        assert_eq!(pong.ended(None), None);
    }
}
