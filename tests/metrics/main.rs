//! The `metrics` feature: the documented counters, gauge and label, read back from a
//! recorder installed for this test binary. Needs `--features metrics` (Cargo.toml says
//! so with `required-features`).

#[path = "../support/mod.rs"]
mod support;

use support::mock;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use tokio::time::timeout;
use ws_reconnect::{Message, ReconnectingSink, Target};

use support::{serve, Reply, Ws, BOUND};

const COUNTERS: [&str; 11] = [
    "ws_reconnect_connects_total",
    "ws_reconnect_reconnects_total",
    "ws_reconnect_disconnects_total",
    "ws_reconnect_messages_sent_total",
    "ws_reconnect_bytes_sent_total",
    "ws_reconnect_messages_received_total",
    "ws_reconnect_bytes_received_total",
    "ws_reconnect_messages_resent_total",
    "ws_reconnect_messages_dropped_total",
    "ws_reconnect_possible_duplicates_total",
    "ws_reconnect_presumed_delivered_total",
];
const GAUGE: &str = "ws_reconnect_connected";

/// A metric's name and labels.
type Series = (String, Vec<(String, String)>);

/// Every metric registered, by name and labels; values live in the shared atomics (a
/// gauge's holds the bits of an `f64`, as `metrics` stores it).
#[derive(Default)]
struct TestRecorder {
    metrics: Mutex<HashMap<Series, Arc<AtomicU64>>>,
}

impl TestRecorder {
    fn handle(&self, key: &Key) -> Arc<AtomicU64> {
        let labels = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        let mut metrics = self.metrics.lock().unwrap();
        metrics
            .entry((key.name().to_owned(), labels))
            .or_default()
            .clone()
    }

    fn value(&self, name: &str, target: &str) -> Option<u64> {
        let key = (
            name.to_owned(),
            vec![("target".to_owned(), target.to_owned())],
        );
        let metrics = self.metrics.lock().unwrap();
        metrics.get(&key).map(|v| v.load(Ordering::SeqCst))
    }

    /// A counter's value; panics if it was never registered.
    fn counter(&self, name: &str, target: &str) -> u64 {
        self.value(name, target)
            .unwrap_or_else(|| panic!("{name}{{target={target:?}}} not registered"))
    }

    fn connected(&self, target: &str) -> f64 {
        let bits = self
            .value(GAUGE, target)
            .unwrap_or_else(|| panic!("{GAUGE}{{target={target:?}}} not registered"));
        f64::from_bits(bits)
    }

    /// Every (name, labels) registered for `target`.
    fn registered_for(&self, target: &str) -> Vec<Series> {
        let metrics = self.metrics.lock().unwrap();
        let mut keys: Vec<_> = metrics
            .keys()
            .filter(|(_, labels)| labels.iter().any(|(_, v)| v == target))
            .cloned()
            .collect();
        keys.sort();
        keys
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// The recorder of this test binary, installed once. Tests run in parallel: each uses
/// its own target, so its own series.
fn recorder() -> &'static TestRecorder {
    static RECORDER: OnceLock<&'static TestRecorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder: &'static TestRecorder = Box::leak(Box::default());
        metrics::set_global_recorder(recorder).expect("no other recorder in this binary");
        recorder
    })
}

/// Says "welcome N" on connection N, then echoes; connection 0 vanishes (no Close
/// frame) right after its first echo.
async fn welcome_echo_then_vanish_once(conn: usize, mut ws: Ws) {
    if ws
        .send(Message::text(format!("welcome {conn}")))
        .await
        .is_err()
    {
        return;
    }
    while let Some(Ok(m)) = ws.next().await {
        if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
            return;
        }
        if conn == 0 {
            return;
        }
    }
}

async fn next_text(ws: &mut ReconnectingSink) -> String {
    let m = timeout(BOUND, ws.next())
        .await
        .expect("a message in time")
        .expect("the stream goes on")
        .expect("no error");
    m.into_text().unwrap().to_string()
}

#[tokio::test]
async fn a_drop_and_a_reconnection_show_in_the_counters_and_the_gauge() {
    let metrics = recorder();
    let server = serve(|_| Reply::Upgrade, welcome_echo_then_vanish_once).await;
    let url = format!("ws://{}/feed?token=secret", server.addr);
    let target = format!("ws://{}/feed", server.addr);

    let mut ws = timeout(
        BOUND,
        ReconnectingSink::builder()
            .initial_interval(Duration::from_millis(10))
            .connect(&url),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(metrics.connected(&target), 1.0);
    assert_eq!(metrics.counter("ws_reconnect_connects_total", &target), 1);
    assert_eq!(next_text(&mut ws).await, "welcome 0");

    timeout(BOUND, ws.send(Message::text("hello")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "hello");
    // The server vanished after its echo, before reading the Ping that would have
    // confirmed "hello": the reader meets the drop, the sink reconnects, the new
    // connection says so, and "hello" is sent again (a possible duplicate).
    assert_eq!(next_text(&mut ws).await, "welcome 1");
    assert_eq!(next_text(&mut ws).await, "hello");
    timeout(BOUND, ws.send(Message::text("again")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next_text(&mut ws).await, "again");

    let expected = [
        ("ws_reconnect_connects_total", 2),
        ("ws_reconnect_reconnects_total", 1),
        ("ws_reconnect_disconnects_total", 1),
        ("ws_reconnect_messages_sent_total", 2),
        ("ws_reconnect_bytes_sent_total", 10),
        ("ws_reconnect_messages_received_total", 5),
        ("ws_reconnect_bytes_received_total", 33),
        ("ws_reconnect_messages_resent_total", 1),
        ("ws_reconnect_messages_dropped_total", 0),
        ("ws_reconnect_possible_duplicates_total", 1),
        ("ws_reconnect_presumed_delivered_total", 0),
    ];
    for (name, value) in expected {
        assert_eq!(metrics.counter(name, &target), value, "{name}");
    }
    assert_eq!(metrics.connected(&target), 1.0);
    // The metrics and stats() are counted in one place: they agree.
    let stats = ws.stats();
    assert_eq!(
        (stats.connects, stats.reconnects, stats.disconnects),
        (2, 1, 1)
    );
    assert_eq!((stats.messages_received, stats.bytes_received), (5, 33));

    timeout(BOUND, ws.close()).await.unwrap().unwrap();
    assert_eq!(metrics.connected(&target), 0.0);
    assert_eq!(
        metrics.counter("ws_reconnect_disconnects_total", &target),
        2
    );
}

#[tokio::test]
async fn resent_messages_are_counted_and_dropping_a_connected_sink_clears_the_gauge() {
    let metrics = recorder();
    let target = "ws://mock-resend/";
    let script = mock::Script::new();
    let mut ws = ReconnectingSink::new(mock::make(script.clone()), Target::new(target).unwrap());
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    assert_eq!(metrics.connected(target), 1.0);

    // The next flush fails: its two messages go again to the next connection.
    script.fail_flush(script.flushes.load(Ordering::SeqCst));
    ws.feed(Message::text("a")).await.unwrap();
    ws.feed(Message::text("bc")).await.unwrap();
    timeout(BOUND, ws.flush()).await.unwrap().unwrap();
    assert_eq!(script.delivered_texts(), ["a", "bc"]);

    let expected = [
        ("ws_reconnect_connects_total", 2),
        ("ws_reconnect_reconnects_total", 1),
        ("ws_reconnect_disconnects_total", 1),
        ("ws_reconnect_messages_sent_total", 2),
        ("ws_reconnect_bytes_sent_total", 3),
        ("ws_reconnect_messages_resent_total", 2),
        ("ws_reconnect_messages_received_total", 0),
    ];
    for (name, value) in expected {
        assert_eq!(metrics.counter(name, target), value, "{name}");
    }
    assert_eq!(metrics.connected(target), 1.0);

    // A sink dropped while connected takes its connection with it.
    let stats = ws.stats_handle();
    drop(ws);
    assert_eq!(metrics.connected(target), 0.0);
    assert_eq!(metrics.counter("ws_reconnect_disconnects_total", target), 2);
    assert_eq!(stats.get().disconnects, 2);
    assert_eq!(stats.get().uptime, None);
}

#[tokio::test]
async fn every_metric_is_registered_at_build_with_one_redacted_target_label() {
    let metrics = recorder();
    let _fixed = ReconnectingSink::builder()
        .build("ws://user:password@127.0.0.1:9/labels?token=secret")
        .unwrap();
    let _closure = ReconnectingSink::builder()
        .build_with(Target::from_fn(|| {
            unreachable!("a sink that is not dialed builds no request")
        }))
        .unwrap();

    let mut names: Vec<&str> = COUNTERS.to_vec();
    names.push(GAUGE);
    names.sort_unstable();
    for target in ["ws://127.0.0.1:9/labels", "<from closure>"] {
        let registered = metrics.registered_for(target);
        let got: Vec<&str> = registered.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(got, names, "{target}");
        for (name, labels) in &registered {
            assert_eq!(
                labels,
                &[("target".to_owned(), target.to_owned())],
                "{name}"
            );
        }
        assert_eq!(metrics.connected(target), 0.0);
    }
    let everything = format!("{:?}", metrics.metrics.lock().unwrap().keys());
    assert!(!everything.contains("password") && !everything.contains("secret"));
}
