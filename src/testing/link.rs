//! What a network path does to bytes: [`Link`] for one direction, [`Path`] for both.
//!
//! Plain values: the proxy reads them as it stamps each chunk (see `line.rs`), so a change
//! applies from the next chunk on.

use std::time::Duration;

/// What a path holds per direction when no bandwidth cap is set, unless [`Link::buffer`]
/// says otherwise.
const DEFAULT_BUFFER: usize = 256 * 1024;

/// With a bandwidth cap, the default buffer holds what the link carries in its latency
/// plus this much more: the queue in front of a slow link.
const DEFAULT_QUEUE_TIME: Duration = Duration::from_millis(100);

/// With a bandwidth cap, chunks are split into pieces of what the link carries in this
/// long, so that bytes arrive smoothly rather than one large chunk at a time.
const PIECE_TIME: Duration = Duration::from_millis(4);

/// The smallest and largest piece a capped link sends at once.
const MIN_PIECE: usize = 64;
const MAX_PIECE: usize = 16 * 1024;

/// One direction of a network path: latency, jitter, a bandwidth cap and how many bytes
/// it holds.
///
/// The proxy reads each chunk as it arrives and delivers it `latency` (plus up to
/// `jitter`) later; later chunks keep flowing meanwhile, so latency does not lower the
/// rate. With a bandwidth cap the link sends one chunk after another at that rate, and
/// each is delivered `latency` after it is sent. Bytes always arrive in the order they
/// were sent.
///
/// The default, [`Link::new`], forwards at once with no cap.
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::testing::Link;
///
/// // A mobile uplink: 60 ms one way, up to 20 ms more at random, 250 KB/s.
/// let uplink = Link::new()
///     .latency(Duration::from_millis(60))
///     .jitter(Duration::from_millis(20))
///     .bandwidth(250_000);
/// assert_ne!(uplink, Link::new());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Link {
    latency: Duration,
    jitter: Duration,
    /// Bytes per second; `None`: no cap.
    bandwidth: Option<u64>,
    /// Bytes held at most; `None`: the default for this link.
    buffer: Option<usize>,
}

impl Link {
    /// A link that forwards at once, with no cap and the default buffer.
    ///
    /// ```
    /// use ws_reconnect::testing::Link;
    ///
    /// assert_eq!(Link::new(), Link::default());
    /// ```
    pub const fn new() -> Link {
        Link {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            bandwidth: None,
            buffer: None,
        }
    }

    /// Every byte arrives this much after it reached the proxy (after it was sent, with a
    /// bandwidth cap).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::testing::Link;
    ///
    /// let transatlantic = Link::new().latency(Duration::from_millis(40));
    /// # let _ = transatlantic;
    /// ```
    pub const fn latency(mut self, latency: Duration) -> Link {
        self.latency = latency;
        self
    }

    /// Each chunk arrives up to this much later than the latency says, drawn at random
    /// (uniformly) per chunk. Jitter never reorders: a chunk is never due before the one
    /// sent ahead of it, so a late chunk holds back those behind it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::testing::Link;
    ///
    /// // 20 to 30 ms.
    /// let wifi = Link::new()
    ///     .latency(Duration::from_millis(20))
    ///     .jitter(Duration::from_millis(10));
    /// # let _ = wifi;
    /// ```
    pub const fn jitter(mut self, jitter: Duration) -> Link {
        self.jitter = jitter;
        self
    }

    /// Caps the link at `bytes_per_sec`: a chunk is sent once the link has finished the
    /// chunks before it, takes `len / bytes_per_sec` to send, and is delivered `latency`
    /// after that. Large chunks are sent in pieces (what the link carries in 4 ms, between
    /// 64 bytes and 16 KiB), so bytes arrive smoothly.
    ///
    /// # Panics
    /// If `bytes_per_sec` is 0.
    ///
    /// ```
    /// use ws_reconnect::testing::Link;
    ///
    /// let dsl_up = Link::new().bandwidth(100_000); // 100 KB/s
    /// # let _ = dsl_up;
    /// ```
    pub const fn bandwidth(mut self, bytes_per_sec: u64) -> Link {
        assert!(
            bytes_per_sec > 0,
            "a link carries at least one byte a second"
        );
        self.bandwidth = Some(bytes_per_sec);
        self
    }

    /// How many bytes this direction holds at most: read from the sender and not yet
    /// delivered, whether waiting to be sent (with a bandwidth cap) or on their way. Once
    /// it holds this many, the proxy stops reading, so the sender's socket buffers fill
    /// and its writes block, as on a real slow path.
    ///
    /// The default is 256 KiB; with a bandwidth cap, what the link carries in its latency
    /// and jitter plus 100 ms (a queue of 100 ms in front of the link), and at least one
    /// piece. The buffer bounds the rate too: a link carries at most `buffer` bytes per
    /// `latency`, as a TCP window does, so give a long fast link a buffer of at least its
    /// rate times its latency.
    ///
    /// # Panics
    /// If `bytes` is 0.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::testing::Link;
    ///
    /// // A satellite hop that keeps its rate: 4 MB/s for 600 ms needs 2.4 MB in flight.
    /// let satellite = Link::new()
    ///     .latency(Duration::from_millis(600))
    ///     .buffer(4 * 1024 * 1024);
    /// # let _ = satellite;
    /// ```
    pub const fn buffer(mut self, bytes: usize) -> Link {
        assert!(bytes > 0, "a link holds at least one byte");
        self.buffer = Some(bytes);
        self
    }

    pub(super) fn latency_value(&self) -> Duration {
        self.latency
    }

    pub(super) fn jitter_value(&self) -> Duration {
        self.jitter
    }

    /// The cap in bytes per second, if any.
    pub(super) fn bandwidth_value(&self) -> Option<u64> {
        self.bandwidth
    }

    /// Bytes this direction holds at most (see [`Link::buffer`]).
    pub(super) fn buffer_len(&self) -> usize {
        if let Some(bytes) = self.buffer {
            return bytes;
        }
        match (self.bandwidth, self.piece_len()) {
            (Some(rate), Some(piece)) => {
                let time = self.latency + self.jitter + DEFAULT_QUEUE_TIME;
                bytes_in(rate, time).max(piece)
            }
            _ => DEFAULT_BUFFER,
        }
    }

    /// The largest piece a capped link sends at once; `None` without a cap (a chunk goes
    /// whole).
    pub(super) fn piece_len(&self) -> Option<usize> {
        self.bandwidth
            .map(|rate| bytes_in(rate, PIECE_TIME).clamp(MIN_PIECE, MAX_PIECE))
    }

    /// How long the link takes to send `len` bytes, rounded up to the nanosecond so that
    /// pieces never add up to less than the whole; zero without a cap.
    pub(super) fn transmit_time(&self, len: usize) -> Duration {
        let Some(rate) = self.bandwidth else {
            return Duration::ZERO;
        };
        let nanos = (len as u128 * 1_000_000_000).div_ceil(u128::from(rate));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// Bytes a link of `rate` bytes per second carries in `time`, saturating.
fn bytes_in(rate: u64, time: Duration) -> usize {
    let bytes = u128::from(rate) * time.as_nanos() / 1_000_000_000;
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// Both directions of a network path through the proxy: `upstream` carries what the
/// client sends to the server, `downstream` what the server sends back.
///
/// A [`Link`] converts into a path with that link both ways, so anything that takes
/// `impl Into<Path>` takes a `Link` too.
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::testing::{Link, Path};
///
/// // An asymmetric line: a slow uplink, a fast downlink, 15 ms each way.
/// let latency = Link::new().latency(Duration::from_millis(15));
/// let path = Path {
///     upstream: latency.bandwidth(125_000),
///     downstream: latency.bandwidth(2_500_000),
/// };
/// assert_eq!(Path::from(latency), Path::both(latency));
/// # let _ = path;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Path {
    /// Client to server.
    pub upstream: Link,
    /// Server to client.
    pub downstream: Link,
}

impl Path {
    /// `link` in both directions.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::testing::{Link, Path};
    ///
    /// let path = Path::both(Link::new().latency(Duration::from_millis(25)));
    /// assert_eq!(path.upstream, path.downstream);
    /// ```
    pub const fn both(link: Link) -> Path {
        Path {
            upstream: link,
            downstream: link,
        }
    }

    /// The link carrying bytes in `direction`.
    pub(super) fn link(&self, direction: Direction) -> Link {
        match direction {
            Direction::Upstream => self.upstream,
            Direction::Downstream => self.downstream,
        }
    }

    /// The same path with `latency` both ways, the rest kept (what
    /// [`Fault::Delay`](super::Fault::Delay) does to an open connection).
    pub(super) fn with_latency(self, latency: Duration) -> Path {
        Path {
            upstream: self.upstream.latency(latency),
            downstream: self.downstream.latency(latency),
        }
    }
}

impl From<Link> for Path {
    /// `link` in both directions, as [`Path::both`].
    fn from(link: Link) -> Path {
        Path::both(link)
    }
}

/// Which way bytes go through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// Client to server.
    Upstream,
    /// Server to client.
    Downstream,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_uncapped_link_holds_the_default_and_sends_chunks_whole() {
        let link = Link::new().latency(Duration::from_millis(50));
        assert_eq!(link.buffer_len(), 256 * 1024);
        assert_eq!(link.piece_len(), None);
        assert_eq!(link.transmit_time(1 << 20), Duration::ZERO);
    }

    #[test]
    fn a_capped_link_holds_its_latency_plus_100_ms() {
        // 1 MB/s for 50 + 10 + 100 ms.
        let link = Link::new()
            .latency(Duration::from_millis(50))
            .jitter(Duration::from_millis(10))
            .bandwidth(1_000_000);
        assert_eq!(link.buffer_len(), 160_000);
        // A very slow link still holds one piece.
        assert_eq!(Link::new().bandwidth(10).buffer_len(), MIN_PIECE);
        // A buffer given is kept.
        assert_eq!(link.buffer(1000).buffer_len(), 1000);
    }

    #[test]
    fn pieces_are_4_ms_of_the_link_within_64_bytes_and_16_kib() {
        assert_eq!(Link::new().bandwidth(1_000_000).piece_len(), Some(4000));
        assert_eq!(Link::new().bandwidth(1000).piece_len(), Some(MIN_PIECE));
        assert_eq!(Link::new().bandwidth(u64::MAX).piece_len(), Some(MAX_PIECE));
    }

    #[test]
    fn transmit_time_rounds_up_so_pieces_never_beat_the_cap() {
        let link = Link::new().bandwidth(3);
        assert_eq!(link.transmit_time(3), Duration::from_secs(1));
        // 1/3 s, rounded up: three of them are not less than a second.
        assert_eq!(link.transmit_time(1), Duration::from_nanos(333_333_334));
    }

    #[test]
    fn a_delay_changes_the_latency_of_both_directions_only() {
        let path = Path {
            upstream: Link::new().bandwidth(1000),
            downstream: Link::new().jitter(Duration::from_millis(5)),
        };
        let delayed = path.with_latency(Duration::from_millis(30));
        assert_eq!(
            delayed.upstream,
            Link::new()
                .bandwidth(1000)
                .latency(Duration::from_millis(30))
        );
        assert_eq!(
            delayed.link(Direction::Downstream).latency_value(),
            Duration::from_millis(30)
        );
        assert_eq!(delayed.downstream.jitter_value(), Duration::from_millis(5));
    }
}
