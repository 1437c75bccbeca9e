//! Counters of what a sink has done: connections, messages, bytes, resends, uptime.
//!
//! The one place that counts: with the `metrics` feature, each count is also reported to
//! the `metrics` recorder here (see [`crate::metrics`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

#[cfg(feature = "metrics")]
use crate::metrics::SinkMetrics;
use crate::request::Target;

/// A snapshot of a sink's counters; see [`ReconnectingSink::stats`](crate::ReconnectingSink::stats).
///
/// ```
/// let ws = ws_reconnect::ReconnectingSink::builder().build("ws://127.0.0.1:9/")?;
/// let stats = ws.stats();
/// assert_eq!(stats.connects, 0);
/// assert_eq!(stats.uptime, None);
/// # Ok::<(), ws_reconnect::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Connections established, the first dial and reconnections alike.
    pub connects: u64,
    /// Connections established after a drop.
    pub reconnects: u64,
    /// Connections that ended: lost, closed by either side, or dropped with the sink.
    pub disconnects: u64,
    /// Messages accepted for sending.
    pub messages_sent: u64,
    /// Payload bytes of the messages accepted for sending.
    pub bytes_sent: u64,
    /// Data messages received (Text and Binary; not acknowledgements or control frames).
    pub messages_received: u64,
    /// Payload bytes of the data messages received.
    pub bytes_received: u64,
    /// Messages written again to a new connection after a drop.
    pub messages_resent: u64,
    /// Messages dropped without being delivered, by design: volatile messages whose
    /// connection ended first, and messages the `retain_on_reconnect` hook discarded.
    pub messages_dropped: u64,
    /// Of the messages resent, those that had been flushed to the connection that ended
    /// but not confirmed (see [`ConfirmBy`](crate::ConfirmBy)): the server may have them
    /// already, so each may arrive twice.
    pub possible_duplicates: u64,
    /// Flushed messages taken as delivered without a confirmation: written again after
    /// a drop, and the peer closed again before confirming them (a peer that reads one
    /// message and closes). See [`ConfirmBy`](crate::ConfirmBy).
    pub presumed_delivered: u64,
    /// How long the current connection has been up; `None` when not connected.
    pub uptime: Option<Duration>,
}

/// A handle on a sink's counters that stays usable after the sink is split or moved
/// into `forward`, or dropped. Cloning it is cheap. Messages sent are added at each flush
/// (and every few hundred messages), not one by one;
/// [`ReconnectingSink::stats`](crate::ReconnectingSink::stats) is always exact.
///
/// Dropping a connected sink counts a disconnect (and ends the uptime).
///
/// ```
/// let ws = ws_reconnect::ReconnectingSink::builder().build("ws://127.0.0.1:9/")?;
/// let handle = ws.stats_handle();
/// drop(ws);
/// assert_eq!(handle.get().messages_sent, 0);
/// # Ok::<(), ws_reconnect::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct StatsHandle {
    counters: Arc<Counters>,
    /// The sink's own handle: dropping it ends a connection still counted as up.
    /// Clones handed out are not owners.
    owner: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    connects: AtomicU64,
    reconnects: AtomicU64,
    disconnects: AtomicU64,
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
    messages_received: AtomicU64,
    bytes_received: AtomicU64,
    messages_resent: AtomicU64,
    messages_dropped: AtomicU64,
    possible_duplicates: AtomicU64,
    presumed_delivered: AtomicU64,
    connected_since: Mutex<Option<Instant>>,
    #[cfg(feature = "metrics")]
    metrics: Option<SinkMetrics>,
}

impl Clone for StatsHandle {
    fn clone(&self) -> Self {
        StatsHandle {
            counters: Arc::clone(&self.counters),
            owner: false,
        }
    }
}

impl Drop for StatsHandle {
    fn drop(&mut self) {
        if self.owner {
            // The sink is gone, and with it any connection it had.
            self.disconnected();
        }
    }
}

impl StatsHandle {
    /// The handle a sink for `target` owns; with the `metrics` feature, its metrics are
    /// registered now, labelled after the target.
    pub(crate) fn new(target: &Target) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = target;
        StatsHandle {
            counters: Arc::new(Counters {
                #[cfg(feature = "metrics")]
                metrics: Some(SinkMetrics::register(target)),
                ..Counters::default()
            }),
            owner: true,
        }
    }

    /// Reports to the `metrics` recorder, when the feature is on.
    #[cfg(feature = "metrics")]
    fn report(&self, f: impl FnOnce(&SinkMetrics)) {
        if let Some(metrics) = &self.counters.metrics {
            f(metrics);
        }
    }

    /// The counters now.
    pub fn get(&self) -> Stats {
        let c = &self.counters;
        let since = *c.connected_since.lock().unwrap_or_else(|p| p.into_inner());
        Stats {
            connects: c.connects.load(Relaxed),
            reconnects: c.reconnects.load(Relaxed),
            disconnects: c.disconnects.load(Relaxed),
            messages_sent: c.messages_sent.load(Relaxed),
            bytes_sent: c.bytes_sent.load(Relaxed),
            messages_received: c.messages_received.load(Relaxed),
            bytes_received: c.bytes_received.load(Relaxed),
            messages_resent: c.messages_resent.load(Relaxed),
            messages_dropped: c.messages_dropped.load(Relaxed),
            possible_duplicates: c.possible_duplicates.load(Relaxed),
            presumed_delivered: c.presumed_delivered.load(Relaxed),
            uptime: since.map(|s| s.elapsed()),
        }
    }

    pub(crate) fn connected(&self, reconnect: bool) {
        let c = &self.counters;
        c.connects.fetch_add(1, Relaxed);
        if reconnect {
            c.reconnects.fetch_add(1, Relaxed);
        }
        let was = c
            .connected_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(Instant::now());
        #[cfg(feature = "metrics")]
        self.report(|m| {
            m.connects.increment(1);
            if reconnect {
                m.reconnects.increment(1);
            }
            if was.is_none() {
                m.connected.increment(1.0);
            }
        });
        #[cfg(not(feature = "metrics"))]
        let _ = was;
    }

    /// A connection ended; nothing happens if none was up.
    pub(crate) fn disconnected(&self) {
        let c = &self.counters;
        let was = c
            .connected_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if was.is_none() {
            return;
        }
        c.disconnects.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        self.report(|m| {
            m.disconnects.increment(1);
            m.connected.decrement(1.0);
        });
    }

    pub(crate) fn sent(&self, messages: u64, bytes: u64) {
        self.counters.messages_sent.fetch_add(messages, Relaxed);
        self.counters.bytes_sent.fetch_add(bytes, Relaxed);
        #[cfg(feature = "metrics")]
        self.report(|m| {
            m.messages_sent.increment(messages);
            m.bytes_sent.increment(bytes);
        });
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.counters.messages_received.fetch_add(1, Relaxed);
        self.counters
            .bytes_received
            .fetch_add(bytes as u64, Relaxed);
        #[cfg(feature = "metrics")]
        self.report(|m| {
            m.messages_received.increment(1);
            m.bytes_received.increment(bytes as u64);
        });
    }

    pub(crate) fn resent(&self, count: usize) {
        self.counters
            .messages_resent
            .fetch_add(count as u64, Relaxed);
        #[cfg(feature = "metrics")]
        self.report(|m| m.messages_resent.increment(count as u64));
    }

    pub(crate) fn dropped(&self, count: usize) {
        self.counters
            .messages_dropped
            .fetch_add(count as u64, Relaxed);
        #[cfg(feature = "metrics")]
        self.report(|m| m.messages_dropped.increment(count as u64));
    }

    pub(crate) fn presumed_delivered(&self, count: usize) {
        self.counters
            .presumed_delivered
            .fetch_add(count as u64, Relaxed);
        #[cfg(feature = "metrics")]
        self.report(|m| m.presumed_delivered.increment(count as u64));
    }

    pub(crate) fn possible_duplicates(&self, count: usize) {
        self.counters
            .possible_duplicates
            .fetch_add(count as u64, Relaxed);
        #[cfg(feature = "metrics")]
        self.report(|m| m.possible_duplicates.increment(count as u64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle() -> StatsHandle {
        StatsHandle::new(&Target::new("ws://127.0.0.1:9/").unwrap())
    }

    #[test]
    fn a_disconnect_counts_once_per_connection() {
        let stats = handle();
        stats.disconnected();
        assert_eq!(stats.get().disconnects, 0, "nothing was up");
        stats.connected(false);
        stats.connected(true);
        assert!(stats.get().uptime.is_some());
        stats.disconnected();
        stats.disconnected();
        let got = stats.get();
        assert_eq!((got.connects, got.reconnects, got.disconnects), (2, 1, 1));
        assert_eq!(got.uptime, None);
    }

    #[test]
    fn dropping_the_sinks_handle_ends_its_connection_and_a_clone_does_not() {
        let stats = handle();
        let watcher = stats.clone();
        stats.connected(false);
        drop(watcher.clone());
        assert_eq!(watcher.get().disconnects, 0);
        assert!(watcher.get().uptime.is_some());
        drop(stats);
        assert_eq!(watcher.get().disconnects, 1);
        assert_eq!(watcher.get().uptime, None);
    }
}
