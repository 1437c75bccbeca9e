//! Numbered streams both ways, with the connection reset every few hundred messages:
//! nothing lost, nothing twice, in order, in one session.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::SplitStream;
use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::server::{Overflow, ServerConfig};
use ws_reconnect::testing::{Fault, FaultProxy, Link};
use ws_reconnect::{Error, Message, ResumeConfig, ResumingSink};

use crate::harness::{client, number, App, Harness, Ledger};
use crate::support::{env_or, join};

/// Messages in flight each way, at most.
const WINDOW: usize = 100;

/// How a run went.
struct Run {
    resets: u64,
    client: Ledger,
    server: Ledger,
}

/// Streams `n` numbered messages each way through a proxy on `path`, and resets the
/// connection each time `reset_every` more messages have arrived on it (either way).
async fn both_ways(path: Link, n: u64, reset_every: u64) -> Run {
    // Backpressure: the server's application waits for a client that is away, rather than
    // dropping the oldest messages (the overflow test covers that).
    // Small windows, so that the messages flow in many small bursts rather than a few
    // large ones.
    let harness = Harness::start(
        ServerConfig::default()
            .overflow(Overflow::Backpressure)
            .recv_window_frames(WINDOW),
        App::Numbered {
            send: n,
            pace: None,
        },
    )
    .await;
    let proxy = FaultProxy::start_with(harness.addr, path).await.unwrap();
    let started = std::time::Instant::now();
    let config = ResumeConfig::default()
        .max_unacked_frames(WINDOW)
        .recv_window_frames(WINDOW);
    let ws = client(&format!("ws://{}/", proxy.addr()), config).await;
    let (mut tx, rx) = ws.split();
    let writer = tokio::spawn(async move {
        for i in 1..=n {
            tx.feed(Message::text(format!("c{i}"))).await.unwrap();
        }
        // Returns once the server has acknowledged everything.
        tx.flush().await.unwrap();
        tx
    });
    let received = Arc::new(AtomicU64::new(0));
    let client_ledger = Arc::new(Mutex::new(Ledger::new()));
    let reader = tokio::spawn(read_numbered(
        rx,
        n,
        Arc::clone(&client_ledger),
        Arc::clone(&received),
    ));
    // Messages that arrived, both ways.
    let seen = Arc::clone(&harness.seen);
    let progress = move || {
        let server = if seen.sessions() > 0 {
            seen.ledger(0).lock().unwrap().count
        } else {
            0
        };
        received.load(Ordering::Relaxed) + server
    };
    let resets = reset_as_messages_arrive(&harness, &proxy, progress, reset_every, || {
        writer.is_finished() && reader.is_finished()
    })
    .await;
    let tx = join(writer, "the writer").await;
    let rx = join(reader, "the reader").await;
    crate::support::eventually("the server's application has every message", || {
        harness.seen.ledger(0).lock().unwrap().next > n
    })
    .await;
    let mut ws = tx.reunite(rx).unwrap();
    let stats = ws.resume_stats();
    eprintln!(
        "{n} messages each way in {:?}: {resets} resets, {} connections, {} resumes, \
         {} duplicates dropped by the client",
        started.elapsed(),
        proxy.stats().connections,
        stats.resumed,
        stats.duplicates
    );
    timeout(Duration::from_secs(20), ws.close()).await.ok();
    assert_eq!(
        stats.sessions, 1,
        "the session was never replaced: {stats:?}"
    );
    assert_eq!(harness.seen.sessions(), 1);
    let server = std::mem::take(&mut *harness.seen.ledger(0).lock().unwrap());
    let client = std::mem::take(&mut *client_ledger.lock().unwrap());
    Run {
        resets,
        client,
        server,
    }
}

/// Reads the server's numbered messages into `ledger` until all `n` are accounted for,
/// counting each item in `received`.
async fn read_numbered(
    mut rx: SplitStream<ResumingSink>,
    n: u64,
    ledger: Arc<Mutex<Ledger>>,
    received: Arc<AtomicU64>,
) -> SplitStream<ResumingSink> {
    while ledger.lock().unwrap().next <= n {
        match rx.next().await {
            Some(Ok(message)) => ledger.lock().unwrap().record(number(&message, "s")),
            Some(Err(Error::Gap(gap))) => ledger.lock().unwrap().gap(gap),
            Some(Err(e)) => panic!("reader: {e}"),
            None => panic!("the stream ended"),
        }
        received.fetch_add(1, Ordering::Relaxed);
    }
    rx
}

/// Resets the connection each time `reset_every` more messages have arrived on it
/// (`progress` counts them both ways, from when the server attached it), until `done`.
/// Returns how many resets there were.
async fn reset_as_messages_arrive(
    harness: &Harness,
    proxy: &FaultProxy,
    progress: impl Fn() -> u64,
    reset_every: u64,
    done: impl Fn() -> bool,
) -> u64 {
    let attaches = || {
        let stats = harness.server.stats();
        stats.sessions + stats.resumed
    };
    let mut attached = 0;
    let mut mark = 0;
    let mut resets = 0u64;
    while !done() {
        let now = attaches();
        if now > attached {
            attached = now;
            mark = progress();
        } else if mark != u64::MAX && progress() >= mark + reset_every {
            proxy.inject(Fault::Reset);
            resets += 1;
            mark = u64::MAX;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    resets
}

#[tokio::test]
async fn nothing_lost_either_way_through_resets() {
    let n = env_or("WS_RECONNECT_RESUME_MESSAGES", 8000);
    let run = both_ways(Link::new(), n, 300).await;
    run.client.assert_complete(n, "server to client");
    run.server.assert_complete(n, "client to server");
    assert!(
        run.resets >= 20,
        "only {} resets: the test proved little",
        run.resets
    );
}

#[tokio::test]
async fn nothing_lost_either_way_through_resets_at_20_ms_each_way() {
    let n = env_or("WS_RECONNECT_RESUME_SLOW_MESSAGES", 3000);
    let path = Link::new().latency(Duration::from_millis(20));
    let run = both_ways(path, n, 300).await;
    run.client.assert_complete(n, "server to client");
    run.server.assert_complete(n, "client to server");
    assert!(
        run.resets >= 10,
        "only {} resets: the test proved little",
        run.resets
    );
}
