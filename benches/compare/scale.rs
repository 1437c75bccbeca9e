//! The scale curve: many idle `ReconnectingSink`s in one client process.
//!
//! For each size the harness starts a fresh server process (`--scale-server`) and a fresh
//! client process (`--scale-client`), so that each client's RSS and CPU time are its own.
//! The client dials every sink (keepalive 1 s / 5 s, all else default), gives each sink a
//! task that reads it (a sink reconnects only while it is polled), then measures:
//!
//! - RSS per connection: growth of `VmRSS` over the dials, divided by the count;
//! - idle CPU: the process's CPU time over a few seconds with nothing but keepalive
//!   traffic, against the Pings the server counted in the same time;
//! - reconnection: the server closes every TCP connection at once (no Close frame), and
//!   each task records when its sink is `Connected` again. The server records when it
//!   accepted each new connection and the kernel's listen-queue overflow counter.
//!
//! Server and client talk over a `/control` WebSocket; times cross the process boundary
//! as wall-clock nanoseconds (one machine, one clock).

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use ws_reconnect::{ConnectionState, ReconnectingSink};

use crate::common::{process_cpu, raise_fd_limit, rss_kib};
use crate::out::Csv;
use crate::Samples;

/// Keepalive used while idle: short, so that a few seconds show its steady cost.
const KEEPALIVE: Duration = Duration::from_secs(1);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The default keepalive interval, to scale the measured cost to.
const DEFAULT_KEEPALIVE_SECS: f64 = 20.0;
/// File descriptors the client needs beyond one per sink (runtime, control connection).
const FD_MARGIN: u64 = 64;
/// Listen backlog of the server (the kernel caps it at `net.core.somaxconn`).
const BACKLOG: u32 = 4096;
/// Concurrent dials while the client sets up its sinks.
const DIAL_CONCURRENCY: usize = 256;
/// Time from the last dial to the drop: past the default `healthy_after` (5 s).
const HEALTHY_WAIT: Duration = Duration::from_secs(6);
/// Bound on waiting for every sink to come back after the drop.
const RECONNECT_BOUND: Duration = Duration::from_secs(40);

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The open-file limit after raising it: (soft, hard).
#[allow(unsafe_code)]
fn fd_limit() -> (u64, u64) {
    raise_fd_limit();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// `TcpExt: ListenOverflows` from /proc/net/netstat (machine-wide).
fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let names = names.split_whitespace();
        let values = values.split_whitespace();
        for (n, v) in names.zip(values) {
            if n == "ListenOverflows" {
                return v.parse().unwrap_or(0);
            }
        }
    }
    0
}

// ---- the server process -------------------------------------------------------------

#[derive(Default)]
struct ServerLedger {
    pings: AtomicU64,
    /// The sockets of the live connections, so that the drop can shut them all down in
    /// one loop instead of waking thousands of tasks one after another.
    live: Mutex<std::collections::HashSet<RawFd>>,
    /// Wall-clock ns of each accept since the last drop.
    accepts: Mutex<Vec<u64>>,
}

/// `--scale-server`: prints its address, then serves until killed.
pub fn server_main() {
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(BACKLOG).unwrap();
        println!("{}", listener.local_addr().unwrap());
        let ledger = Arc::new(ServerLedger::default());
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            ledger.accepts.lock().unwrap().push(wall_ns());
            tokio::spawn(serve(tcp, ledger.clone()));
        }
    });
}

async fn serve(tcp: tokio::net::TcpStream, ledger: Arc<ServerLedger>) {
    let Some((mut ws, path)) = crate::common::server::accept_with_path(tcp).await else {
        return;
    };
    if path == "/control" {
        return control(ws, &ledger).await;
    }
    let fd = ws.get_ref().as_raw_fd();
    ledger.live.lock().unwrap().insert(fd);
    // After the drop's shutdown the read ends (EOF or an error) and the task returns.
    loop {
        match ws.next().await {
            Some(Ok(Message::Ping(_))) => {
                ledger.pings.fetch_add(1, Relaxed);
            }
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    // Out of the set before the socket is closed, so that its number is not shut down
    // again once the kernel reuses it.
    ledger.live.lock().unwrap().remove(&fd);
}

/// Shuts down every live connection (FIN both ways, no Close frame); returns how many.
#[allow(unsafe_code)]
fn shutdown_all(ledger: &ServerLedger) -> usize {
    let live = ledger.live.lock().unwrap();
    for &fd in live.iter() {
        // SAFETY: the fd is open: a connection leaves the set (under this lock) before
        // its socket is closed.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
    }
    live.len()
}

/// Commands: `pings` → `<pings> <server cpu ns> <live connections>`; `drop` → the wall
/// time of the drop and how long shutting every connection down took (ns);
/// `accepts` → the listen overflows since the drop, then the accept times since it
/// (space-separated ns).
async fn control(
    mut ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    ledger: &ServerLedger,
) {
    let mut overflows_at_drop = 0;
    while let Some(Ok(m)) = ws.next().await {
        let Ok(cmd) = m.to_text() else { continue };
        let reply = match cmd {
            "pings" => format!(
                "{} {} {}",
                ledger.pings.load(Relaxed),
                process_cpu().as_nanos(),
                ledger.live.lock().unwrap().len()
            ),
            "drop" => {
                overflows_at_drop = listen_overflows();
                ledger.accepts.lock().unwrap().clear();
                let at = wall_ns();
                shutdown_all(ledger);
                format!("{at} {}", wall_ns() - at)
            }
            "accepts" => {
                let accepts = ledger.accepts.lock().unwrap();
                let mut s = format!("{}", listen_overflows() - overflows_at_drop);
                for a in accepts.iter() {
                    s.push(' ');
                    s.push_str(&a.to_string());
                }
                s
            }
            _ => continue,
        };
        if ws.send(Message::text(reply)).await.is_err() {
            return;
        }
    }
}

// ---- the client process -------------------------------------------------------------

/// `--scale-client ADDR N JITTER_MS IDLE_SECS`: prints one line, `skip <why>` or
/// `key=value` pairs (see [`Row`]).
pub fn client_main(args: &[String]) {
    let addr = &args[0];
    let n: usize = args[1].parse().unwrap();
    let jitter = Duration::from_millis(args[2].parse().unwrap());
    let idle = Duration::from_secs(args[3].parse().unwrap());
    let (soft, hard) = fd_limit();
    if (n as u64) + FD_MARGIN > soft {
        println!("skip open-file limit {soft} (hard {hard}) < {n} sinks + {FD_MARGIN}");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let line = rt.block_on(client(addr, n, jitter, idle));
    println!("{line}");
}

fn builder(jitter: Duration) -> ws_reconnect::Builder {
    ReconnectingSink::builder()
        .keepalive(KEEPALIVE, KEEPALIVE_TIMEOUT)
        .reconnect_jitter(jitter)
}

type Control =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sends a command on the control connection and returns the server's answer.
async fn ask(control: &mut Control, cmd: &str) -> String {
    control.send(Message::text(cmd)).await.unwrap();
    loop {
        match control.next().await {
            Some(Ok(Message::Text(t))) => return t.as_str().to_string(),
            Some(Ok(_)) => continue,
            other => panic!("control connection: {other:?}"),
        }
    }
}

/// What each sink's task records, in wall-clock ns (0: not yet).
struct Marks {
    /// When the task saw its sink leave `Connected` after the drop.
    down: Vec<AtomicU64>,
    /// When the sink was `Connected` again after a reconnection.
    up: Vec<AtomicU64>,
    reconnected: AtomicUsize,
}

async fn client(addr: &str, n: usize, jitter: Duration, idle: Duration) -> String {
    let (mut control, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/control"))
        .await
        .unwrap();
    let url = format!("ws://{addr}/idle");
    // Warm up the allocator and the runtime with one sink before the baseline.
    drop(builder(jitter).connect(&url).await.unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rss0 = rss_kib();

    let marks = Arc::new(Marks {
        down: (0..n).map(|_| AtomicU64::new(0)).collect(),
        up: (0..n).map(|_| AtomicU64::new(0)).collect(),
        reconnected: AtomicUsize::new(0),
    });
    let t0 = Instant::now();
    let mut dialed = futures::stream::iter(0..n)
        .map(|i| {
            let url = url.clone();
            async move { (i, builder(jitter).connect(&url).await) }
        })
        .buffer_unordered(DIAL_CONCURRENCY);
    let mut handles = Vec::with_capacity(n);
    let mut failed = 0;
    while let Some((i, ws)) = dialed.next().await {
        let Ok(ws) = ws else {
            failed += 1;
            continue;
        };
        handles.push(ws.stats_handle());
        tokio::spawn(hold(i, ws, marks.clone()));
    }
    drop(dialed);
    let connect_all_ms = t0.elapsed().as_secs_f64() * 1e3;
    if failed > 0 {
        return format!("skip {failed} of {n} dials failed");
    }
    // Let every task make its first read (the read buffer is allocated then) and the
    // keepalive reach its steady rhythm.
    tokio::time::sleep(KEEPALIVE * 2).await;
    let rss1 = rss_kib();

    let mut idle_cpu_ms_per_s = f64::NAN;
    let mut pings_per_s = f64::NAN;
    let mut server_cpu_ms_per_s = f64::NAN;
    if !idle.is_zero() {
        let parse = |s: String| -> (f64, f64) {
            let mut it = s.split_whitespace().map(|v| v.parse::<f64>().unwrap());
            (it.next().unwrap(), it.next().unwrap())
        };
        let (p0, s0) = parse(ask(&mut control, "pings").await);
        let (c0, w0) = (process_cpu(), Instant::now());
        tokio::time::sleep(idle).await;
        let (c1, w1) = (process_cpu(), Instant::now());
        let (p1, s1) = parse(ask(&mut control, "pings").await);
        let secs = (w1 - w0).as_secs_f64();
        idle_cpu_ms_per_s = (c1 - c0).as_secs_f64() * 1e3 / secs;
        pings_per_s = (p1 - p0) / secs;
        server_cpu_ms_per_s = (s1 - s0) / 1e6 / secs;
    }
    let connects_before: u64 = handles.iter().map(|h| h.get().connects).sum();
    // Connections younger than `healthy_after` that carried no data are not healthy yet
    // and would reconnect after the backoff's first delay; a fleet that has been up a
    // while comes back at once (plus the jitter).
    let healthy = t0 + Duration::from_millis(connect_all_ms as u64) + HEALTHY_WAIT;
    tokio::time::sleep_until(healthy.into()).await;

    // The drop.
    let cpu_r0 = process_cpu();
    let answer = ask(&mut control, "drop").await;
    let (drop_at, shutdown_ns) = answer.split_once(' ').unwrap();
    let drop_at: u64 = drop_at.parse().unwrap();
    let shutdown_ms = shutdown_ns.parse::<f64>().unwrap() / 1e6;
    let deadline = Instant::now() + RECONNECT_BOUND;
    while marks.reconnected.load(Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reconnect_cpu_ms = (process_cpu() - cpu_r0).as_secs_f64() * 1e3;
    let reconnected = marks.reconnected.load(Relaxed);
    let rss2 = rss_kib();
    let since = |v: &AtomicU64| {
        let at = v.load(Relaxed);
        (at != 0).then(|| at.saturating_sub(drop_at) as f64 / 1e6)
    };
    let up = Samples(marks.up.iter().filter_map(since).collect());
    let down = Samples(marks.down.iter().filter_map(since).collect());

    let accepts = ask(&mut control, "accepts").await;
    let mut it = accepts.split_whitespace();
    let overflows: u64 = it.next().unwrap().parse().unwrap();
    let accepts: Vec<f64> = it
        .map(|a| a.parse::<u64>().unwrap().saturating_sub(drop_at) as f64 / 1e6)
        .collect();
    // Peak accept rate over 10 ms windows.
    let mut per_10ms = std::collections::BTreeMap::<u64, u32>::new();
    for a in &accepts {
        *per_10ms.entry((*a / 10.0) as u64).or_default() += 1;
    }
    let accept_peak_per_s = per_10ms.values().max().copied().unwrap_or(0) as f64 * 100.0;
    let accepts = Samples(accepts);

    let row = Row {
        connections: n,
        jitter_ms: jitter.as_millis() as u64,
        connect_all_ms,
        rss_kib_per_conn: rss1.saturating_sub(rss0) as f64 / n as f64,
        rss_after_reconnect_kib_per_conn: rss2.saturating_sub(rss0) as f64 / n as f64,
        idle_cpu_ms_per_s,
        pings_per_s,
        server_cpu_ms_per_s,
        keepalive_reconnects: connects_before.saturating_sub(n as u64),
        reconnected,
        shutdown_ms,
        noticed_median_ms: down.median(),
        noticed_max_ms: down.max(),
        reconnect_median_ms: up.median(),
        reconnect_p90_ms: up.quantile(0.9),
        reconnect_max_ms: up.max(),
        reconnect_cpu_ms,
        accepts: accepts.0.len(),
        accept_last_ms: accepts.max(),
        accept_peak_per_s,
        listen_overflows: overflows,
    };
    row.to_line()
}

/// Reads the sink for as long as it lives, recording when it went down and came back.
async fn hold(i: usize, mut ws: ReconnectingSink, marks: Arc<Marks>) {
    let mut state = ws.state();
    let stats = ws.stats_handle();
    let mut down = false;
    loop {
        tokio::select! {
            m = ws.next() => if m.is_none() { return },
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
                let connected = matches!(*state.borrow_and_update(), ConnectionState::Connected);
                if !connected && !down {
                    down = true;
                    marks.down[i].store(wall_ns(), Relaxed);
                }
                // A reconnection can pass through Reconnecting between two looks; the
                // counter says whether the sink came back.
                if connected && (down || stats.get().reconnects > 0) && marks.up[i].load(Relaxed) == 0 {
                    down = false;
                    marks.up[i].store(wall_ns(), Relaxed);
                    marks.reconnected.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

/// One size of the scale curve (one client process).
struct Row {
    connections: usize,
    jitter_ms: u64,
    connect_all_ms: f64,
    rss_kib_per_conn: f64,
    rss_after_reconnect_kib_per_conn: f64,
    idle_cpu_ms_per_s: f64,
    pings_per_s: f64,
    server_cpu_ms_per_s: f64,
    keepalive_reconnects: u64,
    reconnected: usize,
    shutdown_ms: f64,
    noticed_median_ms: f64,
    noticed_max_ms: f64,
    reconnect_median_ms: f64,
    reconnect_p90_ms: f64,
    reconnect_max_ms: f64,
    reconnect_cpu_ms: f64,
    accepts: usize,
    accept_last_ms: f64,
    accept_peak_per_s: f64,
    listen_overflows: u64,
}

macro_rules! fields {
    ($($f:ident),* $(,)?) => {
        const HEADER: &[&str] = &[$(stringify!($f)),*];
        impl Row {
            fn to_line(&self) -> String {
                let v: Vec<String> = vec![$(format!("{}={}", stringify!($f), self.$f)),*];
                v.join(" ")
            }
        }
    };
}

fields!(
    connections,
    jitter_ms,
    connect_all_ms,
    rss_kib_per_conn,
    rss_after_reconnect_kib_per_conn,
    idle_cpu_ms_per_s,
    pings_per_s,
    server_cpu_ms_per_s,
    keepalive_reconnects,
    reconnected,
    shutdown_ms,
    noticed_median_ms,
    noticed_max_ms,
    reconnect_median_ms,
    reconnect_p90_ms,
    reconnect_max_ms,
    reconnect_cpu_ms,
    accepts,
    accept_last_ms,
    accept_peak_per_s,
    listen_overflows,
);

// ---- the harness side ----------------------------------------------------------------

/// Parses a client's `key=value` line into the header's order.
fn parse(line: &str) -> Option<Vec<(String, String)>> {
    let kv: Vec<(String, String)> = line
        .split_whitespace()
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect();
    (kv.len() == HEADER.len()).then_some(kv)
}

pub fn section(quick: bool, csv: &Csv) {
    println!();
    let sizes: &[usize] = if quick {
        &[200, 1_000]
    } else {
        &[1_000, 5_000, 10_000]
    };
    let idle_secs = if quick { 2 } else { 5 };
    println!(
        "## Scale: idle ReconnectingSinks in one client process (keepalive {KEEPALIVE:?}/{KEEPALIVE_TIMEOUT:?}, server in another process, listen backlog {BACKLOG})"
    );
    let (_, hard) = fd_limit();
    let me = std::env::current_exe().unwrap();
    let mut rows = Vec::new();
    for &n in sizes {
        for jitter_ms in [0u64, 1_000] {
            if n as u64 + FD_MARGIN > hard {
                println!(
                    "{n:>6} sinks: skipped, the open-file hard limit is {hard} (each process needs one per connection)"
                );
                break;
            }
            let (mut server, addr) = crate::common::spawn_server("--scale-server");
            // Idle CPU once per size, in the run without jitter.
            let idle = if jitter_ms == 0 { idle_secs } else { 0 };
            let out = std::process::Command::new(&me)
                .args([
                    "--scale-client",
                    &addr,
                    &n.to_string(),
                    &jitter_ms.to_string(),
                    &idle.to_string(),
                ])
                .output()
                .unwrap();
            let _ = server.kill();
            let _ = server.wait();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let line = stdout.trim();
            if let Some(why) = line.strip_prefix("skip ") {
                println!("{n:>6} sinks, jitter {jitter_ms} ms: skipped, {why}");
                continue;
            }
            let Some(kv) = parse(line) else {
                println!(
                    "{n:>6} sinks, jitter {jitter_ms} ms: the client failed: {line} {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                continue;
            };
            let get = |k: &str| -> f64 {
                kv.iter()
                    .find(|(key, _)| key == k)
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(f64::NAN)
            };
            if jitter_ms == 0 {
                let cpu = get("idle_cpu_ms_per_s");
                let pings = get("pings_per_s");
                println!(
                    "{n:>6} sinks: dialed in {:.0} ms, RSS {:.1} KiB per connection ({:.1} after the reconnection); idle CPU {cpu:.1} ms/s = {:.2} ms/s per 1k connections at {pings:.0} Pings/s ({:.1} µs per Ping round trip; the 20 s default would be ~{:.2} ms/s per 1k); server {:.1} ms/s; {} reconnections while idle",
                    get("connect_all_ms"),
                    get("rss_kib_per_conn"),
                    get("rss_after_reconnect_kib_per_conn"),
                    cpu * 1000.0 / n as f64,
                    cpu * 1000.0 / pings,
                    cpu * 1000.0 / n as f64 * KEEPALIVE.as_secs_f64() / DEFAULT_KEEPALIVE_SECS,
                    get("server_cpu_ms_per_s"),
                    get("keepalive_reconnects"),
                );
            }
            println!(
                "{n:>6} sinks, jitter {jitter_ms:>4} ms: all dropped at once → {}/{n} Connected again, median {:.1} ms, p90 {:.1} ms, max {:.1} ms (the server's shutdown of all took {:.1} ms; drop noticed: median {:.2} ms, max {:.1} ms); client CPU {:.0} ms; server accepted {} connections, the last at {:.1} ms, peak {:.0}/s over 10 ms; listen overflows {}",
                get("reconnected"),
                get("reconnect_median_ms"),
                get("reconnect_p90_ms"),
                get("reconnect_max_ms"),
                get("shutdown_ms"),
                get("noticed_median_ms"),
                get("noticed_max_ms"),
                get("reconnect_cpu_ms"),
                get("accepts"),
                get("accept_last_ms"),
                get("accept_peak_per_s"),
                get("listen_overflows"),
            );
            rows.push(
                kv.iter()
                    .map(|(_, v)| v.clone())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
    }
    csv.write("scale", HEADER, &rows);
}
