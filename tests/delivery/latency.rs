//! Every delivery, keepalive and close promise through a path with real latency: the
//! crate's `FaultProxy` as a delay line (each chunk leaves `d` after it arrived, per
//! direction, while later ones keep flowing) at 0, 20 and 50 ms each way, and a slow
//! link (a bandwidth cap). The tests check what arrived, never how fast.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::testing::{Fault, FaultProxy, Link};
use ws_reconnect::{ConnectionState, Message, ReconnectingSink};

use crate::crossing::{
    answering, recording_and_ending, request_loop, stream_and_check, Ending, When,
};
use crate::support::*;

const MS: Duration = Duration::from_millis(1);

/// A proxy in front of `server` with `latency` each way, and the URL through it.
async fn path(server: &Server, latency: Duration) -> (FaultProxy, String) {
    let proxy = FaultProxy::start_with(server.addr, Link::new().latency(latency))
        .await
        .unwrap();
    let url = proxy_url(&proxy);
    (proxy, url)
}

/// One request loop of `requests` through `latency` against a server that ends its
/// connections as `when` and `ending` say.
async fn loop_through(latency: Duration, requests: usize, when: When, ending: Ending) {
    let (server, answered) = answering(when, ending).await;
    let (_proxy, url) = path(&server, latency).await;
    let mut ws = connect(quick_healthy(), url).await;
    request_loop(&mut ws, requests).await;
    assert!(answered.load(Ordering::SeqCst) >= requests);
    assert!(
        server.upgrades() > 1,
        "{latency:?} {when:?}: the server never closed"
    );
    timeout(BOUND, ws.close()).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_loop_gets_every_answer_at_20_and_50_ms_each_way() {
    let mut loops = Vec::new();
    for (latency, requests) in [(20 * MS, 80), (50 * MS, 40)] {
        for (when, ending) in [
            (When::AfterAnswers(1), Ending::Close(1000)),
            (When::AfterAnswers(7), Ending::Close(1001)),
            (When::AfterAnswers(5), Ending::Bare),
            (When::After(latency * 13), Ending::Close(1001)),
            (When::After(latency * 9), Ending::Bare),
        ] {
            loops.push(tokio::spawn(loop_through(latency, requests, when, ending)));
        }
    }
    for each in loops {
        join(each, "a request loop").await;
    }
}

#[tokio::test]
async fn a_stream_across_rolling_deploy_closes_loses_nothing_at_10_20_and_50_ms() {
    for latency in [10 * MS, 20 * MS, 50 * MS] {
        for ending in [Ending::Close(1001), Ending::Bare] {
            let (server, log) = recording_and_ending(300, ending).await;
            let (_proxy, url) = path(&server, latency).await;
            let mut ws = connect(quick_healthy(), url).await;
            stream_and_check(&mut ws, &log, 1_200, MS).await;
            let stats = ws.stats();
            assert!(
                server.upgrades() >= 4,
                "{latency:?}: {} connections",
                server.upgrades()
            );
            // Duplicates only of what was flushed and not confirmed before an end.
            let duplicates = log.len() - 1_200;
            assert!(
                duplicates as u64 <= stats.possible_duplicates,
                "{latency:?} {ending:?}: {duplicates} duplicates, {} possible",
                stats.possible_duplicates
            );
        }
    }
}

#[tokio::test]
async fn acknowledged_mode_loses_nothing_through_latency_and_resets() {
    for latency in [20 * MS, 50 * MS] {
        let (server, log) = acked_server().await;
        let (proxy, url) = path(&server, latency).await;
        let mut ws = connect(quick_healthy().acknowledged(Numbered, 1024), url).await;
        for i in 1..=600u64 {
            timeout(BOUND, ws.feed(Message::text(i.to_string())))
                .await
                .expect("send hung")
                .expect("send");
            if i % 50 == 0 {
                timeout(BOUND, ws.flush())
                    .await
                    .expect("flush hung")
                    .expect("flush");
            }
            if i % 200 == 0 {
                proxy.inject(Fault::Reset);
            }
        }
        timeout(BOUND * 3, ws.flush())
            .await
            .expect("flush hung")
            .expect("flush");
        let seen: std::collections::BTreeSet<u64> =
            log.texts().iter().filter_map(|t| t.parse().ok()).collect();
        assert_eq!(
            seen.len(),
            600,
            "{latency:?}: every tracked message arrived"
        );
        assert_eq!(ws.undelivered_count(), 0);
    }
}

/// A server that records and acknowledges every `<n>`.
async fn acked_server() -> (Server, Log) {
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, acknowledging(log.clone())).await;
    (server, log)
}

#[tokio::test]
async fn outcomes_resolve_ok_once_confirmed_at_50_ms() {
    let (server, log) = recording_server().await;
    let (_proxy, url) = path(&server, 50 * MS).await;
    let mut ws = connect(quick(), url).await;
    let mut deliveries = Vec::new();
    for i in 0..20 {
        deliveries.push(
            timeout(BOUND, ws.feed_outgoing(Message::text(i.to_string())))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    // The flush waits for the Pong that confirms them: the server has them by then.
    timeout(BOUND, ws.flush()).await.unwrap().unwrap();
    assert_eq!(log.len(), 20);
    for delivery in deliveries {
        timeout(BOUND, delivery).await.unwrap().expect("confirmed");
    }
    assert_eq!(ws.undelivered_count(), 0);
}

#[tokio::test]
async fn close_delivers_and_completes_its_handshake_at_50_ms() {
    let (server, log) = recording_server().await;
    let (_proxy, url) = path(&server, 50 * MS).await;
    let mut ws = connect(quick(), url).await;
    for i in 0..50 {
        ws.feed(Message::text(i.to_string())).await.unwrap();
    }
    timeout(BOUND, ws.close())
        .await
        .unwrap()
        .expect("a clean close");
    assert_eq!(*ws.state().borrow(), ConnectionState::Closed);
    eventually("the server has all 50", || log.len() == 50).await;
}

#[tokio::test]
async fn a_short_keepalive_keeps_a_quiet_50_ms_path_and_replaces_a_frozen_one() {
    let (server, _open) = counting_server(|c, ws| Box::pin(echo(c, ws))).await;
    let (proxy, url) = path(&server, 50 * MS).await;
    let mut ws = connect(
        quick_healthy().keepalive(Duration::from_millis(300), Duration::from_millis(300)),
        url,
    )
    .await;
    // Quiet for five keepalive periods: every Ping is answered within its timeout.
    let _ = timeout(Duration::from_millis(1_500), ws.next()).await;
    assert_eq!(
        ws.stats().connects,
        1,
        "a quiet path with latency is not dead"
    );
    proxy.inject(Fault::Freeze);
    read_until(&mut ws, "the frozen path replaced", |ws| {
        ws.stats().connects == 2
    })
    .await;
    expect_echo(&mut ws, "after").await;
}

async fn expect_echo(ws: &mut ReconnectingSink, text: &str) {
    timeout(BOUND, ws.send(Message::text(text)))
        .await
        .unwrap()
        .unwrap();
    expect_text(ws, text, "the echo").await;
}

/// A server that answers each binary message with its length.
async fn measuring_server() -> Server {
    serve(
        |_| Reply::Upgrade,
        |_, mut ws: Ws| async move {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Binary(b) = m {
                    let _ = ws.send(Message::text(format!("got {}", b.len()))).await;
                }
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_large_message_on_a_slow_link_arrives_once_on_the_first_connection() {
    // 1 MiB through 256 KiB/s takes 4 s; the keepalive gives a silent path 1 s + 1 s.
    for keepalive in [Some((1_000, 1_000)), None] {
        let server = measuring_server().await;
        let link = Link::new().latency(20 * MS).bandwidth(256 * 1024);
        let proxy = FaultProxy::start_with(server.addr, link).await.unwrap();
        let builder = match keepalive {
            Some((interval, to)) => {
                quick().keepalive(Duration::from_millis(interval), Duration::from_millis(to))
            }
            None => quick(), // the default keepalive (20 s + 20 s)
        };
        let mut ws = connect(builder.max_unflushed_bytes(4 << 20), proxy_url(&proxy)).await;
        timeout(BOUND, ws.send(Message::binary(vec![7u8; 1 << 20])))
            .await
            .expect("send hung")
            .expect("send");
        expect_text(&mut ws, "got 1048576", "the answer to the large message").await;
        assert_eq!(
            ws.stats().connects,
            1,
            "{keepalive:?}: taken for a dead path"
        );
        assert_eq!(server.upgrades(), 1);
    }
}

#[tokio::test]
async fn a_frozen_slow_link_is_still_replaced() {
    let server = measuring_server().await;
    let link = Link::new().latency(20 * MS).bandwidth(256 * 1024);
    let proxy = FaultProxy::start_with(server.addr, link).await.unwrap();
    let mut ws = connect(
        quick().keepalive(Duration::from_millis(500), Duration::from_millis(500)),
        proxy_url(&proxy),
    )
    .await;
    ws.send(Message::binary(vec![1u8; 64 * 1024]))
        .await
        .unwrap();
    proxy.inject(Fault::Freeze);
    read_until(&mut ws, "the frozen path replaced", |ws| {
        ws.stats().connects >= 2
    })
    .await;
}

/// `spawn()`'s handle through 20 ms each way and a 256 KiB/s cap, the server ending every
/// 300 messages (Close 1001, then a bare close): four senders' messages all arrive, each
/// sender's first copies in its own order, every outcome resolves `Ok`, and the close is
/// clean.
#[tokio::test]
async fn the_handle_loses_nothing_through_latency_a_cap_and_server_closes() {
    const SENDERS: usize = 4;
    const EACH: usize = 150;
    for ending in [Ending::Close(1001), Ending::Bare] {
        let (server, log) = recording_and_ending(300, ending).await;
        let link = Link::new().latency(20 * MS).bandwidth(256 * 1024);
        let proxy = FaultProxy::start_with(server.addr, link).await.unwrap();
        let ws = connect(quick_healthy(), proxy_url(&proxy)).await;
        let (handle, _incoming) = ws.spawn();
        let senders: Vec<_> = (0..SENDERS)
            .map(|s| {
                let handle = handle.clone();
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    for i in 0..EACH {
                        let delivery = handle
                            .deliver(Message::text(format!("{s}-{i}")))
                            .await
                            .expect("accepted");
                        outcomes.push(delivery);
                        tokio::time::sleep(2 * MS).await;
                    }
                    for (i, delivery) in outcomes.into_iter().enumerate() {
                        timeout(BOUND, delivery)
                            .await
                            .expect("outcome never resolved")
                            .unwrap_or_else(|e| panic!("{s}-{i}: {e:?}"));
                    }
                })
            })
            .collect();
        for sender in senders {
            join(sender, "a sender").await;
        }
        let shutdown = timeout(BOUND, handle.close()).await.expect("close hung");
        assert!(shutdown.result.is_ok(), "{ending:?}: {:?}", shutdown.result);
        assert!(
            server.upgrades() >= 2,
            "{ending:?}: the server never closed"
        );
        let texts = log.texts();
        for s in 0..SENDERS {
            let mut seen = std::collections::HashSet::new();
            let firsts: Vec<usize> = texts
                .iter()
                .filter_map(|t| t.strip_prefix(&format!("{s}-"))?.parse().ok())
                .filter(|i| seen.insert(*i))
                .collect();
            assert_eq!(
                firsts,
                (0..EACH).collect::<Vec<_>>(),
                "{ending:?}: sender {s}"
            );
        }
    }
}
