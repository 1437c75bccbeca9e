//! 4, 5. Nobody reads the stream while the server pushes: the inbox fills. That must not
//!    make the keepalive kill a healthy connection, and in acknowledged mode (where the
//!    sink must read past the inbox to find the acks) the reader must learn of the gap.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::{Error, Message, ReconnectingSink};

use crate::support::{
    acknowledging, connect, drain, expect_text, serve, Log, Numbered, Reply, Ws, BOUND,
};

/// Pushes `count` messages `"<prefix><i>"` as fast as it can (one flush).
async fn push(ws: &mut Ws, prefix: &str, count: usize) -> bool {
    for i in 0..count {
        if ws
            .feed(Message::text(format!("{prefix}{i}")))
            .await
            .is_err()
        {
            return false;
        }
    }
    ws.flush().await.is_ok()
}

#[tokio::test]
async fn a_full_inbox_does_not_make_the_keepalive_kill_a_healthy_connection() {
    const PUSHED: usize = 1000;
    // The first connection gets 1,000 messages at once; every connection reads what the
    // client sends (so tungstenite answers its Pings) and stays open.
    let server = serve(
        |_| Reply::Upgrade,
        |conn, mut ws: Ws| async move {
            if conn == 0 && !push(&mut ws, "", PUSHED).await {
                return;
            }
            drain(conn, ws).await;
        },
    )
    .await;
    let mut ws = connect(
        ReconnectingSink::builder()
            .max_queued_inbound(16)
            .keepalive(Duration::from_millis(200), Duration::from_millis(200)),
        server.url(),
    )
    .await;

    // Only write, for 3 s: one message every 50 ms.
    for i in 0..60 {
        timeout(BOUND, ws.send(Message::text(format!("w{i}"))))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "send(w{i}) did not complete before BOUND; {} reconnections so far",
                    ws.stats().reconnects
                )
            })
            .expect("send");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ws.stats().reconnects,
        0,
        "a healthy connection whose Pongs queued behind a full inbox was replaced"
    );

    for i in 0..PUSHED {
        expect_text(&mut ws, &i.to_string(), &format!("message {i} of {PUSHED}")).await;
    }
}

#[tokio::test]
async fn acknowledged_mode_tells_the_reader_how_many_messages_it_dropped_past_the_inbox() {
    const PUSHED: usize = 100;
    const INBOX: usize = 10;
    // Each connection: push 100 data messages at once, then acknowledge everything.
    let server = serve(
        |_| Reply::Upgrade,
        |conn, mut ws: Ws| async move {
            if push(&mut ws, "d", PUSHED).await {
                acknowledging(Log::default())(conn, ws).await;
            }
        },
    )
    .await;
    let mut ws = connect(
        ReconnectingSink::builder()
            .acknowledged(Numbered, 64)
            .max_queued_inbound(INBOX),
        server.url(),
    )
    .await;

    // Write 50 and flush, reading nothing: the flush must read the acks past the data.
    for n in 1..=50 {
        timeout(BOUND, ws.send(Message::text(n.to_string())))
            .await
            .expect("send hung")
            .expect("send");
    }
    timeout(BOUND, ws.flush())
        .await
        .expect("flush hung")
        .expect("flush");
    assert_eq!(ws.unacknowledged_count(), 0);
    assert_eq!(
        ws.stats().reconnects,
        0,
        "the test needs one connection: {:?}",
        ws.stats()
    );

    // Now read: the queued messages, the gap, whatever came after it.
    let mut data: Vec<usize> = Vec::new();
    let mut gaps: Vec<(usize, u64)> = Vec::new();
    while data.len() as u64 + gaps.iter().map(|g| g.1).sum::<u64>() < PUSHED as u64 {
        let item = timeout(BOUND, ws.next()).await.unwrap_or_else(|_| {
            panic!(
                "next() yielded nothing before BOUND after {} data messages {:?} and gaps \
                 {gaps:?}; dropped_inbound() = {}",
                data.len(),
                data,
                ws.dropped_inbound()
            )
        });
        match item {
            Some(Ok(m)) => data.push(
                m.to_text()
                    .unwrap()
                    .strip_prefix('d')
                    .and_then(|i| i.parse().ok())
                    .unwrap_or_else(|| panic!("not a data message: {m:?}")),
            ),
            Some(Err(Error::InboundDropped { count })) => gaps.push((data.len(), count)),
            other => panic!("unexpected item {other:?}"),
        }
    }
    let queued: Vec<usize> = (0..INBOX).collect();
    assert_eq!(
        data.get(..INBOX),
        Some(&queued[..]),
        "the queued messages first: {data:?}"
    );
    assert_eq!(gaps.len(), 1, "exactly one gap: {gaps:?}");
    let (at, count) = gaps[0];
    assert_eq!(at, INBOX, "the gap comes right after the queued messages");
    let after: Vec<usize> = (INBOX + count as usize..PUSHED).collect();
    assert_eq!(
        data.get(INBOX..),
        Some(&after[..]),
        "after the gap: the messages that followed it"
    );
    assert_eq!(ws.dropped_inbound(), count);
}
