//! What is not confirmed is written again: messages whose flush failed, or that were
//! accepted after the server closed, go to the next connection, in order, after its
//! `on_connect` messages, each once; a reconnection that fails for good keeps them until
//! `dial()` or hands them back (`take_undelivered`).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::{Builder, ConfirmBy, Error, Message};

use crate::support::*;

// ---- the mock: exact resend accounting and wake-ups ----------------------------------

#[tokio::test]
async fn unflushed_messages_are_resent_in_order_exactly_once() {
    let script = mock::Script::new();
    // The 2nd and 3rd flushes fail: the messages they held go to the next connection.
    script.fail_flush(1);
    script.fail_flush(2);
    let mut ws = mock::sink(&script, Builder::default().on_connect(Message::text("hi")));
    timeout(BOUND, ws.dial()).await.unwrap().unwrap(); // flush 0 delivers "hi"
    for batch in 0..4 {
        for i in 0..5 {
            ws.feed(Message::text(format!("{batch}.{i}")))
                .await
                .unwrap();
        }
        timeout(BOUND, ws.flush()).await.unwrap().unwrap();
    }
    let delivered = script.delivered.lock().unwrap().clone();
    let data: Vec<String> = delivered
        .iter()
        .map(|(_, t)| t.clone())
        .filter(|t| t != "hi")
        .collect();
    let expected: Vec<String> = (0..4)
        .flat_map(|b| (0..5).map(move |i| format!("{b}.{i}")))
        .collect();
    assert_eq!(data, expected, "each once, in order");
    // Connection 0 dies at batch 0's flush, connection 1 at its first flush.
    assert_eq!(script.connects(), 3);
    // Every connection that delivered anything began with the on_connect message.
    for c in 0..3 {
        if let Some((_, first)) = delivered.iter().find(|(k, _)| *k == c) {
            assert_eq!(first, "hi", "connection {c}");
        }
    }
    assert!(
        delivered.iter().all(|(k, _)| *k != 1),
        "connection 1 died before delivering"
    );
}

#[tokio::test]
async fn after_a_server_close_the_next_send_goes_to_a_new_connection() {
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, close_after(1, log.clone())).await;
    let mut ws = connect(quick_healthy(), server.url()).await;
    send(&mut ws, "first").await.unwrap();
    // Wait until the server has closed; the client does not read.
    eventually("server saw the first message", || log.len() == 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await; // let the Close frame arrive
    send(&mut ws, "second").await.unwrap();
    eventually("second message", || log.len() == 2).await;
    assert_eq!(log.entries(), [(0, "first".into()), (1, "second".into())]);
}

#[tokio::test]
async fn ten_thousand_messages_through_forward_across_graceful_closes() {
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, close_after(1000, log.clone())).await;
    let ws = connect(quick_healthy().max_reconnections_total(100), server.url()).await;
    // 1 KiB each: with tiny messages all 10,000 fit in the loopback socket buffers before
    // the server has read its first 1,000, and no client could see the Close in time.
    let source =
        futures::stream::iter((0..10_000).map(|i| Ok(Message::text(format!("{i:04096}")))));
    timeout(Duration::from_secs(60), source.forward(ws))
        .await
        .expect("forward hung")
        .expect("forward failed");
    eventually("all numbers", || {
        let texts = log.texts();
        let seen: std::collections::HashSet<u32> =
            texts.iter().map(|t| t.parse().unwrap()).collect();
        seen.len() == 10_000
    })
    .await;
    assert!(
        server.upgrades() >= 5,
        "only {} connections: closes were not noticed",
        server.upgrades()
    );
    // Per connection, order is kept.
    let entries = log.entries();
    for c in 0..server.upgrades() {
        let nums: Vec<u32> = entries
            .iter()
            .filter(|(k, _)| *k == c)
            .map(|(_, t)| t.parse().unwrap())
            .collect();
        assert!(
            nums.windows(2).all(|w| w[0] < w[1]),
            "connection {c} out of order"
        );
    }
}

#[tokio::test]
async fn a_failed_reconnection_keeps_accepted_messages_until_dial_or_hands_them_back() {
    let script = mock::Script::new();
    script.fail_flush(1);
    script.fail_flush(3);
    // The script numbers flushes: no confirmation Pings in between.
    let mut ws = mock::sink(&script, Builder::default().confirm_by(ConfirmBy::Flush));
    timeout(BOUND, ws.dial()).await.unwrap().unwrap(); // flush 0
    ws.feed(Message::text("a")).await.unwrap();
    ws.feed(Message::text("b")).await.unwrap();
    script.set_refuse(true);
    // Flush 1 fails, the reconnection is refused: the error comes back, nothing is lost.
    let err = timeout(BOUND, ws.flush()).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
    assert_eq!(ws.undelivered_count(), 2);
    // The reader is told too, then its stream ends.
    let item = timeout(BOUND, ws.next()).await.unwrap();
    assert!(
        matches!(item, Some(Err(Error::Rejected { .. }))),
        "{item:?}"
    );
    assert!(
        timeout(BOUND, ws.next()).await.unwrap().is_none(),
        "the stream ends after a permanent failure"
    );
    // Later the server takes connections again. The failure was for good: a flush is
    // told so again and dials nothing; dial() delivers them, in order.
    script.set_refuse(false);
    let again = timeout(BOUND, ws.flush()).await.unwrap().unwrap_err();
    assert!(matches!(again, Error::Rejected { .. }), "{again:?}");
    assert_eq!(script.connects(), 1);
    timeout(BOUND, ws.dial()).await.unwrap().unwrap(); // flush 2
    assert_eq!(script.delivered_texts(), ["a", "b"]);
    assert_eq!(ws.undelivered_count(), 0);
    // Or the caller takes them back.
    ws.feed(Message::text("c")).await.unwrap();
    ws.feed(Message::text("d")).await.unwrap();
    script.set_refuse(true);
    assert!(timeout(BOUND, ws.flush()).await.unwrap().is_err()); // flush 3 fails
    assert_eq!(
        ws.take_undelivered(),
        [Message::text("c"), Message::text("d")]
    );
    assert_eq!(ws.undelivered_count(), 0);
    assert_eq!(script.delivered_texts(), ["a", "b"]);
}
