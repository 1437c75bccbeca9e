//! What is sent first on every connection: the `on_connect` messages, then a hello
//! computed for each connection (a feed that resumes where the reader stopped), then
//! the messages resent from before.
//!
//! Every test is in this file. Every await that could hang is bounded by
//! [`BOUND`](support::BOUND).

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use ws_reconnect::{ConnectInfo, ReconnectingSink};

use support::{
    close_after, connect, quick_healthy, read_until, send, serve, Log, Reply, Ws, BOUND,
};

#[tokio::test]
async fn on_connect_is_the_first_message_of_every_connection() {
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, close_after(2, log.clone())).await;
    let mut ws = connect(
        quick_healthy().on_connect(Message::text("hello")),
        server.url(),
    )
    .await;
    for i in 0..3 {
        send(&mut ws, format!("m{i}")).await.unwrap();
        read_until(&mut ws, "reconnected", |_| server.upgrades() == i + 2).await;
    }
    let entries = log.entries();
    let connections = entries.iter().map(|(c, _)| *c).max().unwrap() + 1;
    assert!(connections >= 3);
    for c in 0..connections {
        let first = entries.iter().find(|(conn, _)| *conn == c).unwrap();
        assert_eq!(first.1, "hello", "connection {c}: {entries:?}");
    }
}

/// A feed: waits for `from N`, then pushes N, N+1, ... and drops the TCP connection
/// (no Close frame) after 25 numbers.
async fn feed(_conn: usize, mut ws: Ws) {
    let Some(Ok(Message::Text(hello))) = ws.next().await else {
        return;
    };
    let Some(from) = hello
        .strip_prefix("from ")
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return;
    };
    for n in from..from + 25 {
        if ws.send(Message::text(n.to_string())).await.is_err() {
            return;
        }
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(ws);
}

#[tokio::test]
async fn each_connection_resumes_after_the_last_message_the_reader_saw() {
    let server = serve(|_| Reply::Upgrade, feed).await;
    let last_seen = Arc::new(AtomicU64::new(0));
    let infos = Arc::new(Mutex::new(Vec::<ConnectInfo>::new()));
    let (seen, log) = (Arc::clone(&last_seen), Arc::clone(&infos));
    let mut ws = ReconnectingSink::builder()
        .initial_interval(Duration::from_millis(10))
        .randomization_factor(0.0)
        .on_connect_with(move |info: &ConnectInfo| {
            log.lock().unwrap().push(info.clone());
            vec![Message::text(format!(
                "from {}",
                seen.load(Ordering::SeqCst) + 1
            ))]
        })
        .connect(server.url())
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 100 {
        let item = timeout(BOUND, ws.next()).await.expect("the feed stalled");
        let n: u64 = match item {
            Some(Ok(m)) => m.to_text().unwrap().parse().unwrap(),
            other => panic!("{other:?}"),
        };
        last_seen.store(n, Ordering::SeqCst);
        got.push(n);
    }
    // Every number once, in order, across the drops.
    assert_eq!(got, (1..=100).collect::<Vec<_>>());
    let infos = infos.lock().unwrap().clone();
    assert!(infos.len() >= 4, "{infos:?}");
    assert_eq!(infos[0].connection, 0);
    assert!(!infos[0].reconnect);
    assert_eq!(infos[0].outage, None);
    for (i, info) in infos.iter().enumerate().skip(1) {
        assert_eq!(info.connection, i as u64);
        assert!(info.reconnect);
        assert!(info.outage.is_some());
    }
    ws.close().await.unwrap();
}

#[tokio::test]
async fn the_hook_runs_after_the_fixed_messages_and_before_the_resend() {
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = Arc::clone(&log);
    let server = serve(
        |_| Reply::Upgrade,
        move |conn, mut ws: Ws| {
            let log = Arc::clone(&l);
            async move {
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Text(t) = m {
                        log.lock().unwrap().push(format!("{conn}:{t}"));
                    }
                }
            }
        },
    )
    .await;
    let mut ws = ReconnectingSink::builder()
        .on_connect(Message::text("fixed"))
        .on_connect_with(|info: &ConnectInfo| {
            vec![
                Message::text(format!("computed {}", info.connection)),
                // Closing is the sink's job: this one is not sent.
                Message::Close(None),
            ]
        })
        .connect(server.url())
        .await
        .unwrap();
    ws.send(Message::text("data")).await.unwrap();
    support::eventually("three messages", || log.lock().unwrap().len() == 3).await;
    assert_eq!(*log.lock().unwrap(), ["0:fixed", "0:computed 0", "0:data"]);
    ws.close().await.unwrap();
}
