//! `ReconnectingSink::spawn`: the cloneable handle and the task behind it. Many
//! senders, backpressure, the ways the task ends (close, everything dropped, a failure
//! for good, a panic in user code), and liveness with nobody sending or reading.
//!
//! Every await that could hang is bounded by [`BOUND`](support::BOUND); no test asserts
//! how long something took.

#[path = "../support/mod.rs"]
mod support;

mod endings;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use support::*;
use tokio::time::timeout;
use ws_reconnect::testing::Fault;
use ws_reconnect::{ConnectInfo, ConnectionState, Error, Message, UndeliveredReason};

fn echo_handler() -> impl Fn(usize, Ws) -> BoxHandler + Send + Sync {
    |conn, ws| Box::pin(echo(conn, ws))
}

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
async fn dropping_every_handle_and_the_receiver_ends_the_connection() {
    let (server, open) = counting_server(|conn, ws| Box::pin(drain(conn, ws))).await;
    let ws = connect(quick(), server.url()).await;
    let (handle, incoming) = ws.spawn();
    let second = handle.clone();
    handle.send(Message::text("hi")).await.unwrap();
    eventually("one connection open", || open.load(Ordering::SeqCst) == 1).await;
    drop(handle);
    drop(incoming);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        open.load(Ordering::SeqCst),
        1,
        "a handle is still alive: the connection stays"
    );
    drop(second);
    eventually("the server's connection ended", || {
        open.load(Ordering::SeqCst) == 0
    })
    .await;
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
async fn close_reports_once_and_later_sends_get_their_message_back() {
    let (server, open) = counting_server(|conn, ws| Box::pin(drain(conn, ws))).await;
    let ws = connect(quick(), server.url()).await;
    let (handle, _incoming) = ws.spawn();
    let mut state = handle.state();
    handle.send(Message::text("a")).await.unwrap();
    let shutdown = timeout(BOUND, handle.close()).await.expect("close hung");
    assert!(shutdown.result.is_ok(), "{:?}", shutdown.result);
    assert!(shutdown.undelivered.is_empty());
    assert!(handle.is_finished());
    timeout(BOUND, state.wait_for(|s| *s == ConnectionState::Closed))
        .await
        .expect("state hung")
        .expect("state");
    eventually("the server saw the close", || {
        open.load(Ordering::SeqCst) == 0
    })
    .await;
    let refused = handle.send(Message::text("late")).await.unwrap_err();
    assert!(matches!(
        refused.reason(),
        UndeliveredReason::Refused(Error::TaskEnded)
    ));
    assert_eq!(refused.into_message(), Some(Message::text("late")));
    let again = timeout(BOUND, handle.close()).await.expect("close hung");
    assert!(again.result.is_ok() && again.undelivered.is_empty());
}

#[tokio::test]
async fn close_hands_back_what_it_could_not_deliver() {
    // Acknowledged mode against a server that never acknowledges: close() times out.
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, recording(log.clone())).await;
    let builder = quick()
        .acknowledged(Numbered, 16)
        .close_timeout(Duration::from_millis(200));
    let ws = connect(builder, server.url()).await;
    let (handle, _incoming) = ws.spawn();
    handle.send(Message::text("t1")).await.unwrap();
    let delivery = handle.deliver(Message::text("t2")).await.unwrap();
    eventually("both sent", || log.len() == 2).await;
    let shutdown = timeout(BOUND, handle.close()).await.expect("close hung");
    assert!(
        matches!(shutdown.result, Err(Error::CloseIncomplete { .. })),
        "{:?}",
        shutdown.result
    );
    assert_eq!(shutdown.undelivered, [Message::text("t1")]);
    let failed = timeout(BOUND, delivery).await.unwrap().unwrap_err();
    assert!(matches!(failed.reason(), UndeliveredReason::Closed));
    assert_eq!(failed.into_message(), Some(Message::text("t2")));
}

#[tokio::test]
async fn a_failure_for_good_ends_the_task_with_the_error() {
    let (server, _open) = counting_server(|conn, ws| Box::pin(drain(conn, ws))).await;
    let builder = quick().max_elapsed_time(Some(Duration::from_millis(300)));
    let ws = connect(builder, server.url()).await;
    let (handle, mut incoming) = ws.spawn();
    server.stop().await;
    let mut items = Vec::new();
    while let Some(item) = timeout(BOUND, incoming.next()).await.expect("stream hung") {
        items.push(item);
    }
    assert!(
        items.iter().any(|i| matches!(i, Err(Error::GaveUp { .. }))),
        "the reader is told why: {items:?}"
    );
    let shutdown = timeout(BOUND, handle.close()).await.expect("close hung");
    assert!(
        matches!(shutdown.result, Err(Error::GaveUp { .. })),
        "{:?}",
        shutdown.result
    );
    assert!(handle.send(Message::text("late")).await.is_err());
}

#[tokio::test]
async fn a_panic_in_a_hook_ends_the_task_and_the_connection_and_hands_back_what_was_owed() {
    // Acknowledged mode against a server that never acknowledges: t1 and t2 stay owed
    // when the hook panics on the reconnection.
    let log = Log::default();
    let (server, open) = counting_server(recording(log.clone())).await;
    let builder =
        quick_healthy()
            .acknowledged(Numbered, 16)
            .on_connect_with(|info: &ConnectInfo| {
                assert!(!info.reconnect, "the hook fails on reconnection");
                Vec::new()
            });
    let (proxy, ws) = through_proxy(&server, builder).await;
    let (handle, mut incoming) = ws.spawn();
    handle.send(Message::text("t1")).await.unwrap();
    let delivery = handle.deliver(Message::text("t2")).await.unwrap();
    eventually("both sent", || log.len() == 2).await;
    proxy.inject(Fault::Reset);
    let end = timeout(BOUND, async { while incoming.next().await.is_some() {} }).await;
    assert!(end.is_ok(), "the stream ends with the task");
    let shutdown = timeout(BOUND, handle.close()).await.expect("close hung");
    assert!(
        matches!(&shutdown.result, Err(Error::TaskPanicked { message }) if message.contains("fails on reconnection")),
        "{:?}",
        shutdown.result
    );
    assert_eq!(shutdown.undelivered, [Message::text("t1")]);
    let failed = timeout(BOUND, delivery).await.unwrap().unwrap_err();
    assert!(matches!(failed.reason(), UndeliveredReason::Dropped));
    assert_eq!(failed.into_message(), Some(Message::text("t2")));
    assert!(handle.is_finished());
    eventually("no connection left open", || {
        open.load(Ordering::SeqCst) == 0
    })
    .await;
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
