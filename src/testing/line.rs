//! The delay line of one direction: a queue of `(due, piece)` between the side that reads
//! the sender and the side that writes to the receiver.
//!
//! # Why a queue, not a sleep
//! Sleeping for the latency before each write lets one chunk through per latency: a
//! throttle. Here the reading side stamps each chunk with the time it is due (see
//! `schedule.rs`) and goes on reading; the writing side ([`deliver`]) sleeps until the
//! first piece is due, writes it, and takes the next. Many chunks are on their way at
//! once, as on a real path; a bandwidth cap is what limits the rate.
//!
//! # Bounded
//! The line holds at most the link's buffer in bytes, counted from the moment a chunk is
//! read until it is written out. While it is full the reading side does not read
//! ([`Line::room`]), so the sender's socket buffers fill and its writes block.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::link::Direction;
use super::lock;

/// Bytes read from the sender, due at the receiver at `due`.
#[derive(Debug)]
pub(super) struct Piece {
    pub(super) due: Instant,
    pub(super) bytes: Vec<u8>,
}

/// One direction's queue, shared by its reading and writing sides (two futures of the
/// same task).
#[derive(Debug)]
pub(super) struct Line<'g> {
    held: Mutex<Held>,
    /// Woken when a piece is written out: the reading side may have room again.
    room: Notify,
    /// Woken when a piece is pushed or the line closes: the writing side has work.
    work: Notify,
    gauge: &'g Gauge,
}

/// What the line holds. A piece counts from `push` until `written`, including while the
/// writing side writes it.
#[derive(Debug, Default)]
struct Held {
    waiting: VecDeque<Piece>,
    bytes: usize,
    pieces: usize,
    /// The reading side is done: once the line is empty, the writing side ends.
    closed: bool,
}

impl<'g> Line<'g> {
    /// An empty line recording its high-water marks in `gauge`.
    pub(super) fn new(gauge: &'g Gauge) -> Line<'g> {
        Line {
            held: Mutex::new(Held::default()),
            room: Notify::new(),
            work: Notify::new(),
            gauge,
        }
    }

    /// Waits until the line holds fewer than `bound` bytes, and returns how many more it
    /// takes.
    ///
    /// # Cancellation safety
    /// Cancel safe: it takes nothing.
    pub(super) async fn room(&self, bound: usize) -> usize {
        let mut counted = false;
        loop {
            let held = lock(&self.held).bytes;
            if held < bound {
                return bound - held;
            }
            if !counted {
                self.gauge.full.fetch_add(1, SeqCst);
                counted = true;
            }
            // `notify_one` keeps a permit when nobody waits, so a piece written between
            // the check and here is not missed.
            self.room.notified().await;
        }
    }

    /// Queues `piece` behind the others.
    pub(super) fn push(&self, piece: Piece) {
        let mut held = lock(&self.held);
        held.bytes += piece.bytes.len();
        held.pieces += 1;
        held.waiting.push_back(piece);
        self.gauge.peak_bytes.fetch_max(held.bytes, SeqCst);
        self.gauge.peak_pieces.fetch_max(held.pieces, SeqCst);
        drop(held);
        self.work.notify_one();
    }

    /// The reading side is done: what the line holds is still delivered, then the writing
    /// side ends.
    pub(super) fn close(&self) {
        lock(&self.held).closed = true;
        self.work.notify_one();
    }

    /// The next piece, once there is one; `None` once the line is closed and empty.
    async fn next(&self) -> Option<Piece> {
        loop {
            {
                let mut held = lock(&self.held);
                if let Some(piece) = held.waiting.pop_front() {
                    return Some(piece);
                }
                if held.closed {
                    return None;
                }
            }
            self.work.notified().await;
        }
    }

    /// A piece of `len` bytes was written out: the line no longer holds it.
    fn written(&self, len: usize) {
        let mut held = lock(&self.held);
        held.bytes -= len;
        held.pieces -= 1;
        drop(held);
        self.room.notify_one();
    }
}

/// The writing side of `line`: writes each piece to `to` once it is due, and shuts `to`
/// down once the line is closed and empty. Returns then, or when a write fails (the
/// receiver is gone).
pub(super) async fn deliver(line: &Line<'_>, to: &mut OwnedWriteHalf) {
    while let Some(piece) = line.next().await {
        // A piece already due goes at once, without waiting for the timer's next tick.
        if piece.due > Instant::now() {
            tokio::time::sleep_until(piece.due).await;
        }
        if to.write_all(&piece.bytes).await.is_err() {
            return;
        }
        line.written(piece.bytes.len());
    }
    let _ = to.shutdown().await;
}

/// High-water marks of the lines of one direction, over every connection.
#[derive(Debug, Default)]
pub(super) struct Gauge {
    peak_bytes: AtomicUsize,
    peak_pieces: AtomicUsize,
    /// Times a reading side found its line full and waited.
    full: AtomicU64,
}

/// Readings of a [`Gauge`].
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(super) struct Peaks {
    pub(super) bytes: usize,
    pub(super) pieces: usize,
    pub(super) full: u64,
}

impl Gauge {
    #[cfg(test)]
    pub(super) fn peaks(&self) -> Peaks {
        Peaks {
            bytes: self.peak_bytes.load(SeqCst),
            pieces: self.peak_pieces.load(SeqCst),
            full: self.full.load(SeqCst),
        }
    }
}

/// A gauge per direction.
#[derive(Debug, Default)]
pub(super) struct Gauges {
    pub(super) upstream: Gauge,
    pub(super) downstream: Gauge,
}

impl Gauges {
    pub(super) fn get(&self, direction: Direction) -> &Gauge {
        match direction {
            Direction::Upstream => &self.upstream,
            Direction::Downstream => &self.downstream,
        }
    }
}
