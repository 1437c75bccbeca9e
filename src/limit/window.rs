//! A sliding window of timestamps: at most `max_total` events within any span of `window`.
//!
//! Pure logic, no I/O and no clock of its own: every call takes `now`. A fixed window
//! reset by a ticker lets twice the limit through around a reset; a sliding window never
//! does, because each event leaves the window exactly `window` after it entered.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The timestamps of the events still inside the window, oldest first.
#[derive(Debug, Clone)]
pub(crate) struct SlidingWindow {
    max_total: usize,
    window: Duration,
    stamps: VecDeque<Instant>,
}

impl SlidingWindow {
    pub(crate) fn new(max_total: usize, window: Duration) -> Self {
        SlidingWindow {
            max_total,
            window,
            // Bounded by max_total; don't preallocate a huge limit.
            stamps: VecDeque::with_capacity(max_total.min(64)),
        }
    }

    pub(crate) fn max_total(&self) -> usize {
        self.max_total
    }

    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// Whether `stamp` is still inside the window at `now`.
    fn live(&self, stamp: Instant, now: Instant) -> bool {
        now.saturating_duration_since(stamp) < self.window
    }

    /// Events inside the window at `now`.
    pub(crate) fn count(&self, now: Instant) -> usize {
        self.stamps.iter().filter(|&&s| self.live(s, now)).count()
    }

    /// Records an event at `now` if the window has room.
    ///
    /// `Err(Some(t))`: full until `t`, when the oldest event leaves. `Err(None)`: never
    /// (`max_total == 0`).
    pub(crate) fn try_acquire(&mut self, now: Instant) -> Result<(), Option<Instant>> {
        if self.max_total == usize::MAX {
            // No limit: nothing to remember.
            return Ok(());
        }
        while let Some(&oldest) = self.stamps.front() {
            if self.live(oldest, now) {
                break;
            }
            self.stamps.pop_front();
        }
        if self.stamps.len() < self.max_total {
            self.stamps.push_back(now);
            return Ok(());
        }
        Err(self.stamps.front().map(|&oldest| oldest + self.window))
    }

    /// Whether [`try_acquire`](Self::try_acquire) at `now` would succeed; changes nothing.
    pub(crate) fn would_allow(&self, now: Instant) -> bool {
        self.max_total == usize::MAX || self.count(now) < self.max_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn fills_rejects_then_slides_one_slot_at_a_time() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(3, 10 * S);
        assert!(w.try_acquire(t0).is_ok());
        assert!(w.try_acquire(t0 + S).is_ok());
        assert!(w.try_acquire(t0 + 2 * S).is_ok());
        assert_eq!(w.try_acquire(t0 + 3 * S), Err(Some(t0 + 10 * S)));
        assert!(!w.would_allow(t0 + 10 * S - Duration::from_nanos(1)));
        // The oldest leaves at exactly t0 + 10 s: one slot, not all three.
        assert!(w.would_allow(t0 + 10 * S));
        assert!(w.try_acquire(t0 + 10 * S).is_ok());
        assert_eq!(w.try_acquire(t0 + 10 * S), Err(Some(t0 + 11 * S)));
        assert_eq!(w.count(t0 + 10 * S), 3);
    }

    #[test]
    fn never_lets_more_than_max_through_in_any_window() {
        // An event every 100 ms for 30 s, limit 5 per 2 s: check every span.
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(5, 2 * S);
        let mut accepted = Vec::new();
        for i in 0..300u64 {
            let now = t0 + Duration::from_millis(100 * i);
            if w.try_acquire(now).is_ok() {
                accepted.push(now);
            }
        }
        for (i, &start) in accepted.iter().enumerate() {
            let inside = accepted[i..]
                .iter()
                .take_while(|&&t| t < start + 2 * S)
                .count();
            assert!(inside <= 5, "{inside} events within 2 s of {i}");
        }
        // And it is not starved: 30 s / 2 s * 5 = 75 possible.
        assert!(accepted.len() >= 70, "{}", accepted.len());
    }

    #[test]
    fn zero_forbids_everything() {
        let mut w = SlidingWindow::new(0, S);
        assert_eq!(w.try_acquire(Instant::now()), Err(None));
        assert!(!w.would_allow(Instant::now()));
    }

    #[test]
    fn would_allow_has_no_side_effect() {
        let t0 = Instant::now();
        let mut w = SlidingWindow::new(1, S);
        for _ in 0..5 {
            assert!(w.would_allow(t0));
        }
        assert!(w.try_acquire(t0).is_ok());
        assert!(!w.would_allow(t0));
    }
}
