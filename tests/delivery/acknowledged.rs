//! Acknowledged mode: a replay window that makes reconnection lose nothing. Tracked
//! messages are held until acknowledged (cumulatively; out-of-order acknowledgements are
//! ignored, untracked messages mix in), never more than the window unacknowledged,
//! resent first and in order after a reconnection, and an acknowledgement timeout
//! replaces a silent connection.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::{Message, ReconnectingSink};

use crate::support::{
    env_or, mock, serve, serve_ledger, sharing, Ledger, LedgerPlan, Numbered, Reply, Ws, BOUND,
};

#[tokio::test]
async fn nothing_is_lost_through_random_resets() {
    let n: u64 = env_or("WS_RECONNECT_ACK_MESSAGES", 10_000);
    // The server acknowledges every 64 messages and every 5 ms, and resets each
    // connection after a random number of messages, up to 3,000.
    let (server, ledger) = serve_ledger(LedgerPlan {
        ack_every: 64,
        resets: Some((7, 3000)),
    })
    .await;
    let ws = ReconnectingSink::builder()
        .initial_interval(Duration::from_millis(1))
        .randomization_factor(0.0)
        .max_interval(Duration::from_millis(20))
        .max_reconnections_total(100_000)
        .acknowledged(Numbered, 1024)
        .connect(server.url())
        .await
        .unwrap();
    // Nobody reads the stream: acknowledgements are applied by the writing side.
    let source = futures::stream::iter((1..=n).map(|i| Ok(Message::text(format!("t{i}")))));
    timeout(Duration::from_secs(120), source.forward(ws))
        .await
        .expect("forward hung")
        .expect("forward failed");
    // forward() returned Ok: close() waited for every acknowledgement.
    assert_eq!(
        ledger.highest.load(Ordering::SeqCst),
        n,
        "not every id arrived"
    );
    assert!(
        ledger.gaps.lock().unwrap().is_empty(),
        "gaps: {:?}",
        ledger.gaps.lock().unwrap()
    );
    let resets = ledger.resets.load(Ordering::SeqCst);
    assert!(resets >= 3, "only {resets} resets: the test proved little");
    eprintln!(
        "acknowledged: {n} messages, {resets} resets, {} duplicates, {} connections, 0 lost",
        ledger.duplicates.load(Ordering::SeqCst),
        server.upgrades()
    );
}

/// An undialed acknowledged sink over a mock, with a window of `window` and a 1 s ack
/// timeout.
fn tracked_mock(window: usize) -> (Arc<mock::Script>, ReconnectingSink<mock::Make>) {
    let script = mock::Script::new();
    let ws = mock::sink(
        &script,
        ReconnectingSink::builder()
            .acknowledged(Numbered, window)
            .ack_timeout(Duration::from_secs(1)),
    );
    (script, ws)
}

#[tokio::test]
async fn a_full_window_parks_poll_ready_until_an_ack_arrives() {
    let (script, mut ws) = tracked_mock(3);
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    for i in 1..=3 {
        ws.feed(Message::text(format!("t{i}"))).await.unwrap();
    }
    assert_eq!(ws.unacknowledged_count(), 3);
    let mut task = tokio_test::task::spawn(());
    assert!(
        task.enter(|cx, _| ws.poll_ready(cx)).is_pending(),
        "window full"
    );
    assert!(!task.is_woken());
    // The window's messages were flushed so the peer can acknowledge them.
    assert_eq!(script.delivered_texts(), ["t1", "t2", "t3"]);
    script.push(0, Message::text("ack:2"));
    assert!(task.is_woken(), "an ack wakes the parked writer");
    assert!(matches!(
        task.enter(|cx, _| ws.poll_ready(cx)),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(ws.unacknowledged_count(), 1);
}

#[tokio::test]
async fn acks_are_cumulative_out_of_order_ones_are_ignored_and_untracked_mix_in() {
    let (script, mut ws) = tracked_mock(100);
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    for m in ["t1", "u-a", "t2", "t3", "u-b", "t4"] {
        ws.feed(Message::text(m)).await.unwrap();
    }
    assert_eq!(ws.unacknowledged_count(), 4);
    script.push(0, Message::text("ack:3"));
    script.push(0, Message::text("ack:1")); // lower than one already seen: no effect
    script.push(0, Message::text("data")); // not an ack: yielded
    assert_eq!(
        timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap(),
        Message::text("data")
    );
    assert_eq!(ws.unacknowledged_count(), 1, "3 acknowledged 1, 2 and 3");
    // Flush completes only when every tracked message is acknowledged.
    let mut flush = tokio_test::task::spawn(());
    assert!(flush.enter(|cx, _| ws.poll_flush(cx)).is_pending());
    script.push(0, Message::text("ack:4"));
    assert!(flush.is_woken());
    assert!(matches!(
        flush.enter(|cx, _| ws.poll_flush(cx)),
        Poll::Ready(Ok(()))
    ));
    assert_eq!(
        ws.undelivered_count(),
        0,
        "untracked ones were done at the flush"
    );
    // Every message went out once, in order.
    assert_eq!(
        script.delivered_texts(),
        ["t1", "u-a", "t2", "t3", "u-b", "t4"]
    );
}

#[tokio::test]
async fn after_a_reconnection_unacknowledged_messages_are_resent_first_in_order() {
    let (script, mut ws) = tracked_mock(100);
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    for m in ["t1", "t2", "t3"] {
        ws.feed(Message::text(m)).await.unwrap();
    }
    script.push(0, Message::text("ack:1"));
    // Acknowledgements are applied by whichever half reads; here the reader.
    let deadline = tokio::time::Instant::now() + BOUND;
    while ws.unacknowledged_count() != 2 {
        assert!(tokio::time::Instant::now() < deadline, "ack not applied");
        let _ = timeout(Duration::from_millis(10), ws.next()).await;
    }
    // The peer hangs up: t2 and t3 were flushed but not acknowledged.
    script.hang_up(0);
    ws.feed(Message::text("t4")).await.unwrap();
    // The flush finds the hang-up (waiting for acks, it reads), reconnects and resends;
    // the new connection acknowledges everything.
    let acker = async {
        while script.connects() < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        script.push(1, Message::text("ack:4"));
    };
    let (flushed, ()) = timeout(BOUND, async { tokio::join!(ws.flush(), acker) })
        .await
        .unwrap();
    flushed.unwrap();
    let delivered = script.delivered.lock().unwrap().clone();
    let on_second: Vec<&str> = delivered
        .iter()
        .filter(|(c, _)| *c == 1)
        .map(|(_, t)| t.as_str())
        .collect();
    assert_eq!(on_second, ["t2", "t3", "t4"]);
}

#[tokio::test(start_paused = true)]
async fn no_ack_within_ack_timeout_replaces_the_connection_and_resends() {
    let (script, mut ws) = tracked_mock(100);
    ws.dial().await.unwrap();
    ws.feed(Message::text("t1")).await.unwrap();
    ws.feed(Message::text("t2")).await.unwrap();
    // The peer reads but never acknowledges: flush waits, then after ack_timeout (1 s)
    // the connection is replaced and the window resent; the new one acknowledges.
    let started = tokio::time::Instant::now();
    let flush = async {
        ws.flush().await.unwrap();
    };
    let acker = async {
        while script.connects() < 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        script.push(1, Message::text("ack:2"));
    };
    tokio::join!(flush, acker);
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(script.connects(), 2);
    let delivered = script.delivered.lock().unwrap().clone();
    assert_eq!(
        delivered,
        [
            (0, "t1".into()),
            (0, "t2".into()),
            (1, "t1".into()),
            (1, "t2".into())
        ]
    );
}

#[tokio::test]
async fn forward_completes_with_nobody_reading_even_past_a_full_inbox() {
    // The server sends chatter as well as acks; nobody reads the stream.
    let ledger = Arc::new(Ledger::default());
    let chatty = sharing(ledger.clone(), |ledger, _, mut ws: Ws| async move {
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let id: u64 = t.trim_start_matches('t').parse().unwrap();
            ledger.highest.store(id, Ordering::SeqCst);
            let _ = ws.send(Message::text(format!("chatter {id}"))).await;
            let _ = ws.send(Message::text(format!("ack:{id}"))).await;
        }
    });
    let server = serve(|_| Reply::Upgrade, chatty).await;
    let ws = ReconnectingSink::builder()
        .max_queued_inbound(8)
        .acknowledged(Numbered, 16)
        .connect(server.url())
        .await
        .unwrap();
    let source = futures::stream::iter((1..=500).map(|i| Ok(Message::text(format!("t{i}")))));
    let mut ws = ws;
    timeout(
        BOUND,
        ws.send_all(&mut source.map(|m: Result<Message, ws_reconnect::Error>| m)),
    )
    .await
    .expect("acks stuck behind a full inbox")
    .unwrap();
    assert_eq!(ws.unacknowledged_count(), 0);
    assert!(
        ws.dropped_inbound() > 0,
        "chatter beyond the bound is counted"
    );
    assert_eq!(ledger.highest.load(Ordering::SeqCst), 500);
}
