//! What moves on a socket: counters the connector's socket keeps and the sink's
//! keepalive reads (see `connect/meter.rs`), so that a slow link is told from a dead
//! one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// What a socket counted, shared with the sink that holds its connection.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub(crate) read: AtomicU64,
    pub(crate) written: AtomicU64,
    /// Bytes the peer had acknowledged (written minus queued) when the send queue was
    /// last read.
    pub(crate) acknowledged: AtomicU64,
    /// Bytes written and not yet acknowledged by the peer when the send queue was last
    /// read (after a flush that followed writes, or on request); `u64::MAX` where the
    /// system does not tell.
    pub(crate) queued: AtomicU64,
    /// The next write or flush reads the send queue afresh, whatever was written.
    pub(crate) fresh: AtomicBool,
}

/// One reading of a [`Progress`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Moved {
    pub(crate) read: u64,
    /// Bytes the peer acknowledged (written minus still queued); `None` where unknown.
    pub(crate) acknowledged: Option<u64>,
    /// Bytes queued, not yet acknowledged.
    pub(crate) queued: Option<u64>,
}

/// A send queue at least this long that drains is a slow link at work, not a path
/// that froze: a peer whose application hung still acknowledges a trickle of small
/// writes from its kernel's buffer.
pub(crate) const BACKLOG: u64 = 4 * 1024;

impl Progress {
    /// What moved so far.
    pub(crate) fn now(&self) -> Moved {
        let read = self.read.load(Relaxed);
        let queued = self.queued.load(Relaxed);
        let known = queued != u64::MAX;
        Moved {
            read,
            acknowledged: known.then(|| self.acknowledged.load(Relaxed)),
            queued: known.then_some(queued),
        }
    }
}

impl Moved {
    /// Whether the link moved since `earlier`: bytes came in, or a send queue that held
    /// a backlog drained.
    pub(crate) fn since(&self, earlier: &Moved) -> bool {
        let backlog = earlier
            .queued
            .max(self.queued)
            .is_some_and(|q| q >= BACKLOG);
        let drained = match (earlier.acknowledged, self.acknowledged) {
            (Some(before), Some(now)) => backlog && now > before,
            _ => false,
        };
        self.read > earlier.read || drained
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_in_or_a_draining_backlog_are_progress() {
        let at = |read, acknowledged, queued| Moved {
            read,
            acknowledged: Some(acknowledged),
            queued: Some(queued),
        };
        assert!(!at(10, 0, 0).since(&at(10, 0, 0)));
        assert!(at(11, 0, 0).since(&at(10, 0, 0)), "a partial frame came in");
        assert!(
            at(0, 100, 9_000).since(&at(0, 0, 9_100)),
            "the backlog drains"
        );
        assert!(
            !at(0, 100, 0).since(&at(0, 0, 100)),
            "a trickle is no backlog"
        );
        assert!(!at(0, 0, 9_000).since(&at(0, 0, 9_000)), "a frozen backlog");
        let unknown = Moved {
            read: 0,
            acknowledged: None,
            queued: None,
        };
        assert!(!unknown.since(&unknown));
    }
}
