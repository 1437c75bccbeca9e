//! Reconnect storm: many clients on one server that restarts. All reconnect, the jitter
//! they wait before reconnecting is spread uniformly over the jitter window, no file
//! descriptor leaks, memory returns near its baseline. 1,000 clients in CI;
//! `WS_RECONNECT_STORM_CLIENTS=5000` for more.
//!
//! The spread is asserted on the delays the sinks drew (their `debug` event "reconnect
//! jitter", captured by this binary's own subscriber), not on when the reconnections
//! happened: on a loaded machine the wall clock adds whatever the scheduler adds. The
//! wall-clock figures are printed.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::time::{timeout, Instant};
use tracing::field::{Field, Visit};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;
use ws_reconnect::ReconnectingSink;

#[path = "../../benches/common/mod.rs"]
mod common;
#[path = "../support/mod.rs"]
mod support;

use common::{raise_fd_limit, rss_kib};
use support::{echo, env_or, serve_on, Reply, Server};

/// The jitter delays the sinks drew: the `delay` field of every "reconnect jitter" event
/// (or what it said, when that is not a duration).
#[derive(Clone, Default)]
struct Jitters(Arc<Mutex<Vec<Result<Duration, String>>>>);

impl Jitters {
    /// Installs the capture as this process's subscriber (this binary has one test).
    fn install() -> Jitters {
        let jitters = Jitters::default();
        tracing_subscriber::registry()
            .with(jitters.clone().with_filter(
                Targets::new().with_target("ws_reconnect::sink", tracing::Level::DEBUG),
            ))
            .try_init()
            .expect("the storm binary's subscriber");
        jitters
    }

    /// The delays drawn so far; panics on an event whose delay could not be read.
    fn take(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.0.lock().unwrap())
            .into_iter()
            .map(|d| d.unwrap_or_else(|e| panic!("a reconnect jitter event with {e}")))
            .collect()
    }
}

impl<S: tracing::Subscriber> Layer<S> for Jitters {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        #[derive(Default)]
        struct Fields {
            message: Option<String>,
            delay: Option<String>,
        }
        impl Visit for Fields {
            fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
                match field.name() {
                    "message" => self.message = Some(format!("{value:?}")),
                    "delay" => self.delay = Some(format!("{value:?}")),
                    _ => {}
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.message.as_deref() != Some("reconnect jitter") {
            return;
        }
        let delay = match fields.delay {
            Some(d) => parse_debug_duration(&d).ok_or(format!("delay {d:?}")),
            None => Err("no delay field".to_string()),
        };
        self.0.lock().unwrap().push(delay);
    }
}

/// Reads a `Duration`'s `Debug` form back: `"0ns"`, `"812.5µs"`, `"250.123ms"`, `"1.5s"`.
fn parse_debug_duration(s: &str) -> Option<Duration> {
    let units = [("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)];
    let (number, unit) = units
        .iter()
        .find_map(|(suffix, unit)| Some((s.strip_suffix(suffix)?, unit)))?;
    Some(Duration::from_secs_f64(number.parse::<f64>().ok()? * unit))
}

#[test]
fn a_duration_reads_back_from_its_debug_form() {
    for d in [
        Duration::ZERO,
        Duration::from_nanos(17),
        Duration::from_micros(812),
        Duration::from_millis(250) + Duration::from_nanos(123_456),
        Duration::from_millis(1500),
    ] {
        let back = parse_debug_duration(&format!("{d:?}")).unwrap();
        assert!(
            back.abs_diff(d) < Duration::from_nanos(2),
            "{d:?} read as {back:?}"
        );
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Returns freed heap memory to the kernel (glibc keeps it otherwise), so that RSS shows
/// what is still held.
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// An echo server on `addr` (port 0 the first time); records when each upgrade happened.
async fn server(addr: SocketAddr, upgrades: Arc<Mutex<Vec<Instant>>>) -> Server {
    serve_on(
        addr,
        |_| Reply::Upgrade,
        move |conn, ws| {
            upgrades.lock().unwrap().push(Instant::now());
            echo(conn, ws)
        },
    )
    .await
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// One storm: `clients` connect, the server restarts, all come back; then everything is
/// dropped. Returns the first reconnections' delays after the restart, in ms.
async fn storm(clients: usize, jitter: Duration) -> Vec<f64> {
    let upgrades = Arc::new(Mutex::new(Vec::new()));
    let first = server("127.0.0.1:0".parse().unwrap(), upgrades.clone()).await;
    let (addr, url) = (first.addr, first.url());
    let mut readers = Vec::new();
    for _ in 0..clients {
        let ws = ReconnectingSink::builder()
            .reconnect_jitter(jitter)
            .initial_interval(Duration::from_millis(50))
            .connect(&url)
            .await
            .unwrap();
        // Each client keeps reading, so a drop is noticed at once.
        readers.push(tokio::spawn(async move {
            let mut ws = ws;
            while let Some(item) = ws.next().await {
                let _ = item;
            }
        }));
    }
    // The server records an upgrade just after the client has read its 101.
    timeout(Duration::from_secs(30), async {
        while upgrades.lock().unwrap().len() < clients {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("not every client connected");

    // Restart: every connection drops, the same port listens again at once.
    first.stop().await;
    upgrades.lock().unwrap().clear();
    let restarted = Instant::now();
    let second = server(addr, upgrades.clone()).await;
    timeout(Duration::from_secs(60), async {
        while upgrades.lock().unwrap().len() < clients {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("not every client came back");
    let delays = upgrades
        .lock()
        .unwrap()
        .iter()
        .map(|t| t.duration_since(restarted).as_secs_f64() * 1e3)
        .collect();
    for r in &readers {
        r.abort();
    }
    for r in readers {
        let _ = r.await;
    }
    second.stop().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    delays
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_brings_every_client_back_spread_by_the_jitter() {
    raise_fd_limit();
    let clients: usize = env_or("WS_RECONNECT_STORM_CLIENTS", 1000);
    let jitter = Duration::from_millis(500);
    let jitters = Jitters::install();
    let fds_before = open_fds();
    trim();
    let rss_before = rss_kib();

    let mut delays = storm(clients, jitter).await;
    let (p50, p99) = (quantile(&mut delays, 0.5), quantile(&mut delays, 0.99));
    let early = delays.iter().filter(|&&d| d < 100.0).count();
    eprintln!(
        "storm: {clients} clients back; first reconnection (wall clock) p50 {p50:.0} ms, \
         p99 {p99:.0} ms, {early} in the first 100 ms (jitter up to {} ms)",
        jitter.as_millis()
    );

    // What the sinks drew: uniform over [0, jitter], one draw per dropped connection.
    let drawn = jitters.take();
    let n = drawn.len();
    assert!(
        n >= clients,
        "{n} reconnect jitter draws captured for {clients} dropped connections"
    );
    let over: Vec<&Duration> = drawn.iter().filter(|d| **d > jitter).collect();
    assert!(
        over.is_empty(),
        "delays above the {jitter:?} bound: {over:?}"
    );
    let fraction = |d: &Duration| d.as_secs_f64() / jitter.as_secs_f64();
    let mean = drawn.iter().map(fraction).sum::<f64>() / n as f64;
    let low = drawn.iter().filter(|d| fraction(d) < 0.1).count();
    let high = drawn.iter().filter(|d| fraction(d) > 0.9).count();
    eprintln!(
        "storm: {n} jitter draws; mean {:.0} ms; {low} below 10% of the window, {high} above 90%",
        mean * jitter.as_secs_f64() * 1e3
    );
    // Uniform: mean at half the window (a standard error of 0.29/sqrt(n)), a tenth of
    // the draws in each outer tenth.
    assert!(
        (0.4..0.6).contains(&mean),
        "mean jitter {mean:.3} of the window, not about 0.5"
    );
    assert!(
        low >= n / 20 && high >= n / 20,
        "tails: {low} draws below 10% and {high} above 90% of the window, of {n}"
    );

    let fds_one = open_fds();
    trim();
    let rss_one = rss_kib();

    // A second storm must not add to what the first left behind: the runtime keeps some
    // high-water caches (its I/O slab never shrinks), a leak would grow per client.
    storm(clients, jitter).await;
    let fds_two = open_fds();
    trim();
    let rss_two = rss_kib();
    eprintln!("storm: fds {fds_before} -> {fds_one} -> {fds_two}; RSS {rss_before} -> {rss_one} -> {rss_two} KiB");
    assert!(
        fds_one <= fds_before + 2 && fds_two <= fds_before + 2,
        "descriptors leaked"
    );
    assert!(
        rss_two < rss_one + clients as u64 + 1024,
        "memory grew by {} KiB over a second storm",
        rss_two.saturating_sub(rss_one)
    );
}
