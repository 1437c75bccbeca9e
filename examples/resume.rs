//! `cargo run --release --example resume --features server -- [--messages N] [--reset-every N] [--latency-ms MS]`
//!
//! Resume mode through a faulty network: a resume server and a [`ResumingSink`] in this
//! process, with a [`FaultProxy`] between them that resets the connection every few
//! hundred messages while both sides stream numbered messages (`c1, c2, ...` from the
//! client, `s1, s2, ...` from the server's application). Each side's application records
//! what it received; at the end a table says, per direction, how many messages were
//! sent, received, lost and delivered twice. The exit status is non-zero if any message
//! was lost or delivered twice, or if fewer than 20 resets happened.
//!
//! ```text
//! direction          sent   received   lost   duplicated   gaps
//! client -> server  100000    100000      0            0      0
//! server -> client  100000    100000      0            0      0
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use ws_reconnect::server::{Overflow, Server, ServerConfig, SessionError};
use ws_reconnect::testing::{Fault, FaultProxy, Link};
use ws_reconnect::{Error, Message, ReconnectingSink, ResumeConfig, ResumingSink};

/// Fewer resets than this prove too little: the run fails.
const MIN_RESETS: u64 = 20;

/// The reader stops after this long without a message.
const QUIET: Duration = Duration::from_secs(30);

/// The whole run, at most.
const DEADLINE: Duration = Duration::from_secs(300);

#[derive(Parser, Debug)]
#[command(about = "Numbered streams both ways through a proxy that resets the connection")]
struct Args {
    /// Messages each way.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Reset the connection each time this many more messages (both ways together) have
    /// arrived on it.
    #[arg(long, default_value_t = 300)]
    reset_every: u64,
    /// Latency of the path, each way, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

/// What one side's application received.
#[derive(Debug, Default)]
struct Received {
    /// Distinct message numbers.
    numbers: HashSet<u64>,
    /// Messages received, duplicates included.
    count: u64,
    /// Gaps told.
    gaps: u64,
}

impl Received {
    fn record(&mut self, message: &Message, prefix: &str) {
        let n = message
            .to_text()
            .ok()
            .and_then(|t| t.strip_prefix(prefix))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a numbered message: {message:?}"));
        self.numbers.insert(n);
        self.count += 1;
    }

    fn lost(&self, sent: u64) -> u64 {
        sent - (1..=sent).filter(|n| self.numbers.contains(n)).count() as u64
    }

    fn duplicated(&self) -> u64 {
        self.count - self.numbers.len() as u64
    }
}

/// One direction's line of the table.
struct Line {
    direction: &'static str,
    sent: u64,
    received: Received,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match tokio::time::timeout(DEADLINE, run(&args)).await {
        Ok(Ok(ok)) => {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok(Err(e)) => {
            eprintln!("resume: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("resume: not done within {DEADLINE:?}");
            ExitCode::FAILURE
        }
    }
}

/// Numbered messages received by one side, shared with the task that records them.
type Tally = Arc<Mutex<Received>>;

/// The run; `Ok(true)` when nothing was lost or delivered twice.
async fn run(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let n = args.messages;
    let (server, server_addr, at_server, server_sent) = start_server(n).await?;
    let path = Link::new().latency(Duration::from_millis(args.latency_ms));
    let proxy = FaultProxy::start_with(server_addr, path).await?;
    let started = Instant::now();
    let ws: ResumingSink = ReconnectingSink::builder()
        // Reconnect quickly, and count a connection healthy at once: every reset here is
        // deliberate, and the backoff need not grow.
        .initial_interval(Duration::from_millis(10))
        .max_interval(Duration::from_millis(100))
        .healthy_after(Duration::ZERO)
        .resume(ResumeConfig::default())
        .connect(format!("ws://{}/", proxy.addr()))
        .await?;
    let (tx, rx) = ws.split();
    let writer = tokio::spawn(write_numbered(tx, n));
    let at_client = Tally::default();
    let reader = tokio::spawn(read_numbered(rx, n, Arc::clone(&at_client)));

    // Each connection carries `reset_every` messages (counted from when the server
    // attached it), then is reset.
    let progress = || at_client.lock().unwrap().count + at_server.lock().unwrap().count;
    let attaches = || {
        let stats = server.stats();
        stats.sessions + stats.resumed
    };
    let (mut attached, mut mark, mut resets) = (0, 0, 0u64);
    while !(writer.is_finished() && reader.is_finished()) {
        let now = attaches();
        if now > attached {
            attached = now;
            mark = progress();
        } else if mark != u64::MAX && progress() >= mark + args.reset_every {
            proxy.inject(Fault::Reset);
            resets += 1;
            mark = u64::MAX;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let tx = writer.await??;
    let rx = reader.await??;
    // The client's last messages are acknowledged once the server's application has them.
    let mut ws = tx.reunite(rx)?;
    let elapsed = started.elapsed();
    let stats = ws.resume_stats();
    let _ = tokio::time::timeout(Duration::from_secs(10), ws.close()).await;

    println!(
        "{n} messages each way, {} ms each way, in {elapsed:.2?}: {resets} resets, {} connections, \
         {} sessions, {} resumes, {} duplicates dropped by the client",
        args.latency_ms,
        proxy.stats().connections,
        stats.sessions,
        stats.resumed,
        stats.duplicates,
    );
    let lines = [
        Line {
            direction: "client -> server",
            sent: n,
            received: std::mem::take(&mut *at_server.lock().unwrap()),
        },
        Line {
            direction: "server -> client",
            sent: server_sent.load(Ordering::Relaxed),
            received: std::mem::take(&mut *at_client.lock().unwrap()),
        },
    ];
    let clean = table(&lines);
    if resets < MIN_RESETS {
        eprintln!("only {resets} resets (at least {MIN_RESETS} expected): raise --messages");
    }
    Ok(clean && resets >= MIN_RESETS)
}

/// A resume server on a loopback port whose application sends `s1..=s<n>` to each client
/// and records the client's messages. Returns the server, its address, what its
/// application received, and how many messages it sent.
async fn start_server(n: u64) -> std::io::Result<(Server, SocketAddr, Tally, Arc<AtomicU64>)> {
    // The server's application waits for a client that is away rather than dropping the
    // oldest messages: nothing has to be lost.
    let (server, mut sessions) =
        Server::new(ServerConfig::default().overflow(Overflow::Backpressure));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(server.clone().serve(listener));
    let at_server = Tally::default();
    let sent = Arc::new(AtomicU64::new(0));
    tokio::spawn({
        let (at_server, sent) = (Arc::clone(&at_server), Arc::clone(&sent));
        async move {
            while let Some(session) = sessions.next().await {
                let (mut tx, mut rx) = session.split();
                let sent = Arc::clone(&sent);
                tokio::spawn(async move {
                    for i in 1..=n {
                        if tx.feed(Message::text(format!("s{i}"))).await.is_err() {
                            return;
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = tx.flush().await;
                });
                let at_server = Arc::clone(&at_server);
                tokio::spawn(async move {
                    while let Some(item) = rx.next().await {
                        match item {
                            Ok(message) => at_server.lock().unwrap().record(&message, "c"),
                            Err(SessionError::Gap(gap)) => {
                                eprintln!("server: {gap}");
                                at_server.lock().unwrap().gaps += 1;
                            }
                            Err(e) => eprintln!("server: {e}"),
                        }
                    }
                });
            }
        }
    });
    Ok((server, addr, at_server, sent))
}

/// Sends `c1..=c<n>`; returns once the server has acknowledged them all.
async fn write_numbered(
    mut tx: SplitSink<ResumingSink, Message>,
    n: u64,
) -> Result<SplitSink<ResumingSink, Message>, Error> {
    for i in 1..=n {
        tx.feed(Message::text(format!("c{i}"))).await?;
    }
    tx.flush().await?;
    Ok(tx)
}

/// Records the server's messages until all `n` arrived (or none came for [`QUIET`]).
async fn read_numbered(
    mut rx: SplitStream<ResumingSink>,
    n: u64,
    at_client: Tally,
) -> Result<SplitStream<ResumingSink>, Error> {
    while at_client.lock().unwrap().numbers.len() < n as usize {
        // A message missing for good shows in the table rather than as a hang.
        let Ok(item) = tokio::time::timeout(QUIET, rx.next()).await else {
            eprintln!("client: nothing for {QUIET:?}; stopping");
            break;
        };
        match item {
            Some(Ok(message)) => at_client.lock().unwrap().record(&message, "s"),
            Some(Err(Error::Gap(gap))) => {
                eprintln!("client: {gap}");
                at_client.lock().unwrap().gaps += 1;
            }
            Some(Err(e)) => eprintln!("client: {e}"),
            None => return Err(Error::SessionEnded),
        }
    }
    Ok(rx)
}

/// Prints the table; `true` when nothing was lost, delivered twice or told as a gap.
fn table(lines: &[Line]) -> bool {
    println!();
    println!(
        "{:<18} {:>8} {:>10} {:>6} {:>12} {:>6}",
        "direction", "sent", "received", "lost", "duplicated", "gaps"
    );
    let mut ok = true;
    for line in lines {
        let lost = line.received.lost(line.sent);
        let duplicated = line.received.duplicated();
        println!(
            "{:<18} {:>8} {:>10} {:>6} {:>12} {:>6}",
            line.direction, line.sent, line.received.count, lost, duplicated, line.received.gaps
        );
        ok &= lost == 0 && duplicated == 0 && line.received.gaps == 0;
    }
    ok
}
