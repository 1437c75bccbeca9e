//! A sink's counters and connection state, reported through the [`metrics`] facade
//! (feature `metrics`).
//!
//! With the feature on, every [`ReconnectingSink`](crate::ReconnectingSink) reports what
//! its [`Stats`](crate::Stats) count to whichever `metrics` recorder the application
//! installed (a Prometheus exporter, StatsD, ...), so a service can graph reconnections
//! without polling [`stats()`](crate::ReconnectingSink::stats). The crate installs no
//! recorder; without one, reporting costs a no-op call.
//!
//! | name | kind | what it counts |
//! |---|---|---|
//! | `ws_reconnect_connects_total` | counter | connections established, the first dial and reconnections alike |
//! | `ws_reconnect_reconnects_total` | counter | connections established after a drop |
//! | `ws_reconnect_disconnects_total` | counter | connections that ended: lost, closed by either side, or dropped with the sink |
//! | `ws_reconnect_messages_sent_total` | counter | messages accepted for sending, added at each flush |
//! | `ws_reconnect_bytes_sent_total` | counter | their payload bytes |
//! | `ws_reconnect_messages_received_total` | counter | data messages received (Text and Binary) |
//! | `ws_reconnect_bytes_received_total` | counter | their payload bytes |
//! | `ws_reconnect_messages_resent_total` | counter | messages written again to a new connection after a drop |
//! | `ws_reconnect_messages_dropped_total` | counter | volatile messages dropped with their connection, and messages `retain_on_reconnect` discarded |
//! | `ws_reconnect_presumed_delivered_total` | counter | flushed messages taken as delivered without a confirmation, the peer having closed again after they were written a second time |
//! | `ws_reconnect_possible_duplicates_total` | counter | messages resent that had been flushed but not confirmed before their connection ended (each may arrive twice) |
//! | `ws_reconnect_connected` | gauge | 1 while the sink is connected, 0 otherwise |
//!
//! Each carries one label, `target`: the sink's URL as `scheme://host:port/path`, without
//! user-info or query (so no credential or token reaches the metrics), or
//! `<from closure>` for a [`Target::from_fn`](crate::Target::from_fn) target, whose URL
//! is known only per attempt. Sinks with the same label add up: their counters sum and
//! the gauge counts how many of them are connected.
//!
//! # When values move
//! The metrics move where [`StatsHandle`](crate::StatsHandle) counts, so they agree with
//! [`Stats`](crate::Stats): messages and bytes sent are added at each flush (and every
//! few hundred messages), not one by one. The handles are registered when the sink is
//! built: install the recorder before building sinks.
//!
//! ```
//! use ws_reconnect::ReconnectingSink;
//!
//! // Install the application's recorder first (e.g. a Prometheus exporter), then build:
//! let ws = ReconnectingSink::builder().build("ws://user:secret@127.0.0.1:9000/feed?token=t")?;
//! // This sink's series carry target="ws://127.0.0.1:9000/feed".
//! # let _ = ws;
//! # Ok::<(), ws_reconnect::Error>(())
//! ```
//!
//! A Prometheus exporter then shows, for instance:
//!
//! ```text
//! ws_reconnect_connects_total{target="ws://127.0.0.1:9000/feed"} 3
//! ws_reconnect_reconnects_total{target="ws://127.0.0.1:9000/feed"} 2
//! ws_reconnect_disconnects_total{target="ws://127.0.0.1:9000/feed"} 2
//! ws_reconnect_connected{target="ws://127.0.0.1:9000/feed"} 1
//! ```

use ::metrics::{Counter, Gauge, Unit};

use crate::request::Target;

/// The label value of a target built from a closure.
const FROM_CLOSURE: &str = "<from closure>";

/// One sink's metric handles, registered once when the sink is built.
#[derive(Debug)]
pub(crate) struct SinkMetrics {
    pub(crate) connects: Counter,
    pub(crate) reconnects: Counter,
    pub(crate) disconnects: Counter,
    pub(crate) messages_sent: Counter,
    pub(crate) bytes_sent: Counter,
    pub(crate) messages_received: Counter,
    pub(crate) bytes_received: Counter,
    pub(crate) messages_resent: Counter,
    pub(crate) messages_dropped: Counter,
    pub(crate) possible_duplicates: Counter,
    pub(crate) presumed_delivered: Counter,
    pub(crate) connected: Gauge,
}

impl SinkMetrics {
    /// Describes the metrics and registers this sink's handles with the recorder
    /// installed now.
    pub(crate) fn register(target: &Target) -> Self {
        let label = label(target);
        let counter = |name: &'static str, unit: Unit, description: &'static str| {
            ::metrics::describe_counter!(name, unit, description);
            ::metrics::counter!(name, "target" => label.clone())
        };
        let connected = {
            let name = "ws_reconnect_connected";
            ::metrics::describe_gauge!(name, Unit::Count, "1 while the sink is connected");
            ::metrics::gauge!(name, "target" => label.clone())
        };
        SinkMetrics {
            connects: counter(
                "ws_reconnect_connects_total",
                Unit::Count,
                "Connections established, the first dial and reconnections alike",
            ),
            reconnects: counter(
                "ws_reconnect_reconnects_total",
                Unit::Count,
                "Connections established after a drop",
            ),
            disconnects: counter(
                "ws_reconnect_disconnects_total",
                Unit::Count,
                "Connections that ended",
            ),
            messages_sent: counter(
                "ws_reconnect_messages_sent_total",
                Unit::Count,
                "Messages accepted for sending",
            ),
            bytes_sent: counter(
                "ws_reconnect_bytes_sent_total",
                Unit::Bytes,
                "Payload bytes of the messages accepted for sending",
            ),
            messages_received: counter(
                "ws_reconnect_messages_received_total",
                Unit::Count,
                "Data messages received",
            ),
            bytes_received: counter(
                "ws_reconnect_bytes_received_total",
                Unit::Bytes,
                "Payload bytes of the data messages received",
            ),
            messages_resent: counter(
                "ws_reconnect_messages_resent_total",
                Unit::Count,
                "Messages written again to a new connection after a drop",
            ),
            messages_dropped: counter(
                "ws_reconnect_messages_dropped_total",
                Unit::Count,
                "Messages dropped without delivery: volatile ones whose connection ended, \
                 and ones discarded on reconnection",
            ),
            possible_duplicates: counter(
                "ws_reconnect_possible_duplicates_total",
                Unit::Count,
                "Messages resent that had been flushed but not confirmed before their \
                 connection ended: each may arrive twice",
            ),
            presumed_delivered: counter(
                "ws_reconnect_presumed_delivered_total",
                Unit::Count,
                "Flushed messages taken as delivered without a confirmation, the peer \
                 having closed again after they were written a second time",
            ),
            connected,
        }
    }
}

/// The `target` label: `scheme://host:port/path` of a fixed URL, without user-info or
/// query.
fn label(target: &Target) -> String {
    let Some(uri) = target.fixed_uri() else {
        return FROM_CLOSURE.to_owned();
    };
    let mut out = format!(
        "{}://{}",
        uri.scheme_str().unwrap_or(""),
        uri.host().unwrap_or("")
    );
    if let Some(port) = uri.port_u16() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(uri.path());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_keeps_scheme_host_port_and_path_only() {
        let label_of = |url| label(&Target::new(url).unwrap());
        assert_eq!(
            label_of("wss://user:secret@example.com:8443/feed/v2?token=t"),
            "wss://example.com:8443/feed/v2"
        );
        assert_eq!(label_of("ws://127.0.0.1/"), "ws://127.0.0.1/");
        assert_eq!(label_of("ws://[::1]:9000"), "ws://[::1]:9000/");
        let closure = Target::from_fn(|| unreachable!("not called for the label"));
        assert_eq!(label(&closure), FROM_CLOSURE);
    }
}
