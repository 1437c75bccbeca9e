//! When each chunk is due at the far end of a [`Link`]: the arithmetic of the delay line,
//! without I/O.
//!
//! A chunk that reaches the proxy at `arrival` is due at
//!
//! - `arrival + latency + jitter` on an uncapped link;
//! - `sent + latency + jitter` on a link capped at `B` bytes/s, where the link starts
//!   sending it at `max(arrival, link_free)`, takes `len / B`, and `sent` is when it
//!   finishes (and the link is free again). Large chunks are split into pieces first.
//!
//! and never before the piece ahead of it, so that jitter does not reorder bytes.

use rand::rngs::SmallRng;
use rand::Rng;
use std::time::Duration;
use tokio::time::Instant;

use super::link::Link;

/// The running state of one direction's timing.
#[derive(Debug)]
pub(super) struct Schedule {
    /// When the link has finished sending what it was given (a capped link only).
    link_free: Option<Instant>,
    /// The due time of the last piece: no later piece is due before it.
    last_due: Option<Instant>,
    rng: SmallRng,
}

/// A piece of a chunk and when it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) due: Instant,
    pub(super) len: usize,
}

impl Schedule {
    /// A schedule drawing jitter from `rng`.
    pub(super) fn new(rng: SmallRng) -> Schedule {
        Schedule {
            link_free: None,
            last_due: None,
            rng,
        }
    }

    /// Splits `len` bytes that reached the proxy at `arrival` into the pieces `link` sends
    /// and stamps each with its due time; in order, their lengths add up to `len`.
    pub(super) fn stamp(&mut self, link: &Link, arrival: Instant, len: usize) -> Vec<Stamp> {
        let piece = link.piece_len().unwrap_or(len).max(1);
        let mut stamps = Vec::with_capacity(len.div_ceil(piece));
        let mut left = len;
        while left > 0 {
            let len = left.min(piece);
            left -= len;
            let sent = match link.bandwidth_value() {
                Some(_) => {
                    let start = self.link_free.map_or(arrival, |free| free.max(arrival));
                    let sent = start + link.transmit_time(len);
                    self.link_free = Some(sent);
                    sent
                }
                None => arrival,
            };
            let due = sent + link.latency_value() + self.jitter(link.jitter_value());
            let due = self.last_due.map_or(due, |last| due.max(last));
            self.last_due = Some(due);
            stamps.push(Stamp { due, len });
        }
        stamps
    }

    /// A uniform draw in `0..=jitter`.
    fn jitter(&mut self, jitter: Duration) -> Duration {
        if jitter.is_zero() {
            return Duration::ZERO;
        }
        let nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.random_range(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn schedule() -> Schedule {
        Schedule::new(SmallRng::seed_from_u64(7))
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn an_uncapped_link_delivers_each_chunk_whole_one_latency_after_it_arrived() {
        let link = Link::new().latency(50 * MS);
        let mut s = schedule();
        let t0 = Instant::now();
        // Chunks 1 ms apart are due 1 ms apart: the line carries them all at once.
        for i in 0..10 {
            let arrival = t0 + i * MS;
            let stamps = s.stamp(&link, arrival, 100_000);
            assert_eq!(
                stamps,
                [Stamp {
                    due: arrival + 50 * MS,
                    len: 100_000
                }]
            );
        }
    }

    #[test]
    fn jitter_adds_up_to_its_bound_and_never_reorders() {
        let link = Link::new().latency(20 * MS).jitter(10 * MS);
        let mut s = schedule();
        let t0 = Instant::now();
        let mut last = t0;
        let mut spread = Vec::new();
        for i in 0..1000u32 {
            let arrival = t0 + i * Duration::from_micros(100);
            let [stamp] = s.stamp(&link, arrival, 10)[..] else {
                panic!("an uncapped chunk is one piece");
            };
            assert!(stamp.due >= arrival + 20 * MS, "due before the latency");
            assert!(
                stamp.due >= last,
                "chunk {i} due before the one ahead of it"
            );
            // Held back by an earlier chunk or drawn: never past the latest possible draw.
            assert!(stamp.due <= arrival + 30 * MS || stamp.due == last);
            spread.push(stamp.due - arrival);
            last = stamp.due;
        }
        assert!(spread.iter().any(|d| *d > 25 * MS), "no jitter drawn");
    }

    #[test]
    fn a_capped_link_sends_pieces_back_to_back_and_delivers_each_a_latency_later() {
        // 1 MB/s: pieces of 4000 bytes, 4 ms each.
        let link = Link::new().latency(30 * MS).bandwidth(1_000_000);
        let mut s = schedule();
        let t0 = Instant::now();
        let stamps = s.stamp(&link, t0, 10_000);
        let lens: Vec<usize> = stamps.iter().map(|p| p.len).collect();
        assert_eq!(lens, [4000, 4000, 2000]);
        let dues: Vec<Duration> = stamps.iter().map(|p| p.due - t0).collect();
        assert_eq!(dues, [34 * MS, 38 * MS, 40 * MS]);

        // A chunk arriving while the link is busy waits for it.
        let busy = s.stamp(&link, t0 + 5 * MS, 1000);
        assert_eq!(busy[0].due - t0, 41 * MS);
        // One arriving after the link went idle starts at once.
        let idle = s.stamp(&link, t0 + 100 * MS, 1000);
        assert_eq!(idle[0].due - t0, 131 * MS);
    }

    #[test]
    fn n_bytes_through_a_cap_take_at_least_n_over_the_rate() {
        let link = Link::new().bandwidth(3000);
        let mut s = schedule();
        let t0 = Instant::now();
        let mut last = t0;
        for _ in 0..7 {
            for stamp in s.stamp(&link, t0, 1000) {
                last = stamp.due;
            }
        }
        assert!(last - t0 >= Duration::from_millis(7000 / 3));
    }

    #[test]
    fn an_empty_read_is_no_piece() {
        assert!(schedule().stamp(&Link::new(), Instant::now(), 0).is_empty());
    }
}
