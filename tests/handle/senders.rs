//! Sending through the handle: many senders share one connection in order, sends wait
//! (bounded memory) when the peer does not read, the `Incoming` stream gets what the
//! server sends and an unread one stops no writes, and a send cancelled while it waits
//! for room is never sent.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use tokio::sync::Notify;
use tokio::time::timeout;
use ws_reconnect::testing::Fault;
use ws_reconnect::Message;

use crate::support::mock::{self, Script};
use crate::support::*;
use crate::{close, echo_handler, outcome, CLOSE};

#[tokio::test]
async fn eight_senders_share_one_connection_in_order_per_sender() {
    let (server, log) = recording_server().await;
    let ws = connect(quick(), server.url()).await;
    let (handle, _incoming) = ws.spawn();
    let mut senders = Vec::new();
    for s in 0..8 {
        let handle = handle.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..250 {
                handle
                    .send(Message::text(format!("{s}:{i}")))
                    .await
                    .unwrap();
            }
        }));
    }
    for s in senders {
        join(s, "a sender").await;
    }
    eventually("the server has all 2,000", || log.len() == 2_000).await;
    let mut next = [0; 8];
    for text in log.texts() {
        let (s, i) = text.split_once(':').unwrap();
        let (s, i): (usize, usize) = (s.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[s], "sender {s} out of order");
        next[s] += 1;
    }
    assert_eq!(handle.stats().connects, 1);
    assert!(handle.close().await.result.is_ok());
}

#[tokio::test]
async fn the_incoming_stream_gets_what_the_server_sends() {
    let (server, _open) = counting_server(echo_handler()).await;
    let ws = connect(quick(), server.url()).await;
    let (handle, mut incoming) = ws.spawn();
    for i in 0..100 {
        handle.send(Message::text(i.to_string())).await.unwrap();
    }
    for i in 0..100 {
        assert_eq!(
            next_message(&mut incoming).await,
            Message::text(i.to_string())
        );
    }
    assert!(handle.close().await.result.is_ok());
    let end = timeout(BOUND, incoming.next()).await.expect("stream hung");
    assert!(end.is_none(), "ends with the task: {end:?}");
}

#[tokio::test]
async fn sends_wait_when_the_peer_does_not_read() {
    // The path freezes: nothing more is read on the far side. Sends must block at a
    // bound (queue + outbox + socket buffers), not pile up in memory.
    let (server, _open) = counting_server(|conn, ws| Box::pin(drain(conn, ws))).await;
    let (proxy, ws) = through_proxy(&server, quick().no_keepalive()).await;
    let (handle, _incoming) = ws.spawn();
    proxy.inject(Fault::Freeze);
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let sender = handle.clone();
    let filler = tokio::spawn(async move {
        let payload = vec![7u8; 64 * 1024];
        loop {
            if sender.send(Message::binary(payload.clone())).await.is_err() {
                return;
            }
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    // Wait until the count stops moving for a while: the sender is blocked.
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = accepted.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        assert!(now < 2_000, "sends never blocked: {now} x 64 KiB accepted");
        last = now;
    }
    assert!(!filler.is_finished(), "the sender is waiting, not failed");
    filler.abort();
    assert!(last > 0);
    let _ = timeout(BOUND, handle.close()).await.expect("close hung");
}

#[tokio::test]
async fn the_task_keeps_reading_when_every_handle_is_gone_but_the_receiver_is_not() {
    let (server, _open) = counting_server(echo_handler()).await;
    let ws = connect(quick(), server.url()).await;
    let (handle, mut incoming) = ws.spawn();
    handle.send(Message::text("last words")).await.unwrap();
    drop(handle);
    assert_eq!(
        next_message(&mut incoming).await,
        Message::text("last words")
    );
}

#[tokio::test]
async fn a_write_only_handle_is_kept_alive_across_a_frozen_path() {
    // Nobody sends and the receiver is dropped: the task still runs the keepalive and
    // replaces the frozen connection.
    let (server, _open) = counting_server(|conn, ws| Box::pin(drain(conn, ws))).await;
    let builder = quick_healthy().keepalive(Duration::from_millis(200), Duration::from_millis(200));
    let (proxy, ws) = through_proxy(&server, builder).await;
    let (handle, incoming) = ws.spawn();
    drop(incoming);
    proxy.inject(Fault::Freeze);
    eventually("a reconnection", || handle.stats().reconnects >= 1).await;
    handle.send(Message::text("after")).await.unwrap();
    assert!(handle.close().await.result.is_ok());
}

#[tokio::test]
async fn an_undialed_sink_is_dialed_by_its_task() {
    let (server, open) = counting_server(|conn, ws| Box::pin(drain(conn, ws))).await;
    let ws = quick().build(server.url()).unwrap();
    let (handle, _incoming) = ws.spawn();
    handle.send(Message::text("first")).await.unwrap();
    eventually("connected", || open.load(Ordering::SeqCst) == 1).await;
    assert!(handle.close().await.result.is_ok());
}

/// Sends `n` messages first, then records what it reads; with `ack`, acknowledges each
/// numbered text `"t<n>"` with `"ack:<n>"`.
fn flood_then_record(
    n: usize,
    ack: bool,
    log: Log,
) -> impl Fn(usize, Ws) -> BoxHandler + Send + Sync {
    move |conn, mut ws: Ws| {
        let log = log.clone();
        Box::pin(async move {
            for i in 0..n {
                if ws.send(Message::text(format!("flood {i}"))).await.is_err() {
                    return;
                }
            }
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    log.push(conn, t.to_string());
                    if ack {
                        let id = t.trim_start_matches('t').to_owned();
                        if ws.send(Message::text(format!("ack:{id}"))).await.is_err() {
                            return;
                        }
                    }
                }
            }
        })
    }
}

#[tokio::test]
async fn an_unread_incoming_does_not_stop_writes_plain() {
    let log = Log::default();
    let server = serve(
        |_| Reply::Upgrade,
        flood_then_record(3_000, false, log.clone()),
    )
    .await;
    let ws = connect(quick(), server.url()).await;
    let (handle, incoming) = ws.spawn();
    tokio::time::sleep(Duration::from_millis(300)).await; // the flood fills the Incoming
    let mut last = None;
    for i in 0..1_000 {
        last = Some(
            timeout(BOUND, handle.deliver(Message::text(format!("m{i}"))))
                .await
                .expect("deliver hung")
                .unwrap(),
        );
    }
    outcome(last.unwrap()).await.expect("flushed");
    eventually("the server read them all", || log.len() == 1_000).await;
    drop(incoming);
    assert!(close(&handle).await.result.is_ok());
}

#[tokio::test]
async fn an_unread_incoming_does_not_stop_acknowledged_writes() {
    let log = Log::default();
    let server = serve(
        |_| Reply::Upgrade,
        flood_then_record(3_000, true, log.clone()),
    )
    .await;
    let ws = connect(quick().acknowledged(Numbered, 32), server.url()).await;
    let (handle, _incoming) = ws.spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ds = Vec::new();
    for i in 1..=500 {
        ds.push(
            timeout(BOUND, handle.deliver(Message::text(format!("t{i}"))))
                .await
                .expect("deliver hung")
                .unwrap(),
        );
    }
    for d in ds {
        outcome(d).await.expect("acknowledged");
    }
    assert!(close(&handle).await.result.is_ok());
}

#[tokio::test]
async fn a_send_cancelled_while_waiting_for_room_is_never_sent() {
    let gate = Arc::new(Notify::new());
    let script = Script::gated(gate.clone());
    let ws = mock::sink(&script, quick().close_timeout(CLOSE));
    let (handle, _incoming) = ws.spawn();
    // The dial waits: up to QUEUE commands taken by the task, QUEUE in the channel, then
    // sends wait.
    let mut i = 0;
    loop {
        let sent = timeout(
            Duration::from_millis(100),
            handle.send(Message::text(format!("m{i}"))),
        )
        .await;
        match sent {
            Ok(r) => r.unwrap(),
            Err(_) => break, // cancelled while waiting: m{i} must not be sent
        }
        i += 1;
        assert!(i < 10_000, "sends never waited");
    }
    let cancelled = format!("m{i}");
    let d = timeout(
        Duration::from_millis(100),
        handle.deliver(Message::text("cancelled deliver")),
    )
    .await;
    assert!(d.is_err(), "the queue is still full");
    handle.close().now_or_never(); // not awaited: the close is requested anyway
    gate.notify_one();
    let shutdown = close(&handle).await;
    let delivered = script.delivered_texts();
    assert!(
        !delivered.contains(&cancelled),
        "the cancelled send was sent"
    );
    assert!(!delivered.iter().any(|t| t == "cancelled deliver"));
    assert!(!shutdown
        .undelivered
        .contains(&Message::text(cancelled.clone())));
    assert_eq!(
        delivered.len() + shutdown.undelivered.len(),
        i,
        "{shutdown:?}"
    );
    eventually("the task let go of the sink", || {
        Arc::strong_count(&script) == 1
    })
    .await;
}
