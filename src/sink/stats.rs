//! Counters of what a sink has done: connections, messages, bytes, resends, uptime.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

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
    /// How long the current connection has been up; `None` when not connected.
    pub uptime: Option<Duration>,
}

/// A handle on a sink's counters that stays usable after the sink is split or moved
/// into `forward`. Cloning it is cheap. Messages sent are added at each flush (and every
/// few hundred messages), not one by one; [`ReconnectingSink::stats`](crate::ReconnectingSink::stats)
/// is always exact.
///
/// ```
/// let ws = ws_reconnect::ReconnectingSink::builder().build("ws://127.0.0.1:9/")?;
/// let handle = ws.stats_handle();
/// drop(ws);
/// assert_eq!(handle.get().messages_sent, 0);
/// # Ok::<(), ws_reconnect::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct StatsHandle {
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    connects: AtomicU64,
    reconnects: AtomicU64,
    messages_sent: AtomicU64,
    bytes_sent: AtomicU64,
    messages_received: AtomicU64,
    bytes_received: AtomicU64,
    messages_resent: AtomicU64,
    connected_since: Mutex<Option<Instant>>,
}

impl StatsHandle {
    /// The counters now.
    pub fn get(&self) -> Stats {
        let c = &self.counters;
        let since = *c.connected_since.lock().unwrap_or_else(|p| p.into_inner());
        Stats {
            connects: c.connects.load(Relaxed),
            reconnects: c.reconnects.load(Relaxed),
            messages_sent: c.messages_sent.load(Relaxed),
            bytes_sent: c.bytes_sent.load(Relaxed),
            messages_received: c.messages_received.load(Relaxed),
            bytes_received: c.bytes_received.load(Relaxed),
            messages_resent: c.messages_resent.load(Relaxed),
            uptime: since.map(|s| s.elapsed()),
        }
    }

    pub(crate) fn connected(&self, reconnect: bool) {
        let c = &self.counters;
        c.connects.fetch_add(1, Relaxed);
        if reconnect {
            c.reconnects.fetch_add(1, Relaxed);
        }
        *c.connected_since.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    pub(crate) fn disconnected(&self) {
        *self
            .counters
            .connected_since
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub(crate) fn sent(&self, messages: u64, bytes: u64) {
        self.counters.messages_sent.fetch_add(messages, Relaxed);
        self.counters.bytes_sent.fetch_add(bytes, Relaxed);
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.counters.messages_received.fetch_add(1, Relaxed);
        self.counters
            .bytes_received
            .fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn resent(&self, count: usize) {
        self.counters
            .messages_resent
            .fetch_add(count as u64, Relaxed);
    }
}
