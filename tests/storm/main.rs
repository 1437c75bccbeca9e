//! Reconnect storm: many clients on one server that restarts. All reconnect, their first
//! reconnections spread over the jitter window, no file descriptor leaks, memory returns
//! near its baseline. 1,000 clients in CI; `WS_RECONNECT_STORM_CLIENTS=5000` for more.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::time::{timeout, Instant};
use ws_reconnect::ReconnectingSink;

#[path = "../../benches/common/mod.rs"]
mod common;

use common::{raise_fd_limit, rss_kib};

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

/// Serves on `addr` (port 0 the first time); records when each upgrade happened.
async fn server(
    addr: SocketAddr,
    upgrades: Arc<Mutex<Vec<Instant>>>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let upgrades = upgrades.clone();
            tasks.spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                upgrades.lock().unwrap().push(Instant::now());
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() && ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, task)
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// One storm: `clients` connect, the server restarts, all come back; then everything is
/// dropped. Returns the first reconnections' delays after the restart, in ms.
async fn storm(clients: usize, jitter: Duration) -> Vec<f64> {
    let upgrades = Arc::new(Mutex::new(Vec::new()));
    let (addr, first) = server("127.0.0.1:0".parse().unwrap(), upgrades.clone()).await;
    let url = format!("ws://{addr}/");
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
    first.abort();
    let _ = first.await;
    upgrades.lock().unwrap().clear();
    let restarted = Instant::now();
    let (_, second) = server(addr, upgrades.clone()).await;
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
    second.abort();
    let _ = second.await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    delays
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_brings_every_client_back_spread_by_the_jitter() {
    raise_fd_limit();
    let clients: usize = std::env::var("WS_RECONNECT_STORM_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let jitter = Duration::from_millis(500);
    let fds_before = open_fds();
    trim();
    let rss_before = rss_kib();

    let mut delays = storm(clients, jitter).await;
    let (p50, p99) = (quantile(&mut delays, 0.5), quantile(&mut delays, 0.99));
    let early = delays.iter().filter(|&&d| d < 100.0).count();
    eprintln!("storm: {clients} clients back; first reconnection p50 {p50:.0} ms, p99 {p99:.0} ms (jitter up to {} ms)", jitter.as_millis());
    // Uniform over [0, 500 ms] (plus connect time): p50 near 250, p99 near 500, and not
    // everybody in the first 100 ms.
    assert!((125.0..450.0).contains(&p50), "p50 {p50} ms");
    assert!((350.0..1500.0).contains(&p99), "p99 {p99} ms");
    assert!(
        early < clients / 2,
        "{early} of {clients} in the first 100 ms: no spread"
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
