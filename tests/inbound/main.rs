//! Inbound: the stream yields every data message the connections delivered, in order.
//! No error item across a reconnection; messages read while writing, or while closing,
//! are queued for the reader, not lost; in acknowledged mode, where the sink must read
//! past a full inbox for the acknowledgements, the reader is told how many it dropped.
//!
//! Every test is in this file. Every await that could hang is bounded by
//! [`BOUND`](support::BOUND).

#[path = "../support/mod.rs"]
mod support;

use futures::{SinkExt, StreamExt};
use std::time::Duration;
use support::*;
use tokio::time::timeout;
use ws_reconnect::{Builder, Error, Message, ReconnectingSink};

#[tokio::test]
async fn reads_continue_across_a_server_close_without_an_error_item() {
    let server = serve(
        |_| Reply::Upgrade,
        |conn, mut ws: Ws| async move {
            for i in 0..3 {
                let _ = ws.send(Message::text(format!("c{conn}-{i}"))).await;
            }
            if conn == 0 {
                let _ = ws.close(None).await;
            }
            while let Some(Ok(_)) = ws.next().await {}
        },
    )
    .await;
    let mut ws = connect(quick_healthy(), server.url()).await;
    let mut got = Vec::new();
    while got.len() < 6 {
        let item = timeout(BOUND, ws.next()).await.unwrap().unwrap();
        got.push(
            item.expect("no error item across a reconnection")
                .into_text()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(got, ["c0-0", "c0-1", "c0-2", "c1-0", "c1-1", "c1-2"]);
}

#[tokio::test]
async fn inbound_messages_read_while_writing_are_queued_for_the_reader() {
    let script = mock::Script::new();
    let mut ws = mock::sink(&script, Builder::default().max_queued_inbound(3));
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    for i in 0..5 {
        script.push(0, Message::text(format!("in{i}")));
    }
    // Writing processes inbound frames up to the bound, without losing any.
    ws.send(Message::text("out")).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap());
    }
    assert_eq!(
        got,
        (0..5)
            .map(|i| Message::text(format!("in{i}")))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn acknowledged_mode_tells_the_reader_how_many_messages_it_dropped_past_the_inbox() {
    const PUSHED: usize = 100;
    const INBOX: usize = 10;
    // Each connection: push 100 data messages at once, then acknowledge everything.
    let server = serve(
        |_| Reply::Upgrade,
        |conn, mut ws: Ws| async move {
            if flood(&mut ws, "d", PUSHED).await {
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

/// The echoes the server sent before it answered our Close are read by `close()` and
/// yielded after it.
#[tokio::test]
async fn the_plain_sink_yields_what_was_read_while_closing() {
    let (server, _open) = counting_server(|c, ws| Box::pin(echo(c, ws))).await;
    let mut ws = connect(quick().close_timeout(Duration::from_secs(2)), server.url()).await;
    for i in 0..50 {
        ws.feed(Message::text(format!("e{i}"))).await.unwrap();
    }
    timeout(BOUND, ws.close()).await.unwrap().unwrap();
    let mut got = 0;
    while let Some(item) = timeout(BOUND, ws.next()).await.expect("stream hung") {
        item.unwrap();
        got += 1;
    }
    // Some echoes may have been read before close() too; none are lost.
    assert_eq!(got, 50);
}
