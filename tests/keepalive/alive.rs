//! A slow or busy path is not a dead one: a connection whose Pongs wait behind a full
//! inbox (nobody reads while the server pushes) is not replaced.

use std::time::Duration;

use futures::SinkExt;
use tokio::time::timeout;
use ws_reconnect::{Message, ReconnectingSink};

use crate::support::*;

#[tokio::test]
async fn a_full_inbox_does_not_make_the_keepalive_kill_a_healthy_connection() {
    const PUSHED: usize = 1000;
    // The first connection gets 1,000 messages at once; every connection reads what the
    // client sends (so tungstenite answers its Pings) and stays open.
    let server = serve(
        |_| Reply::Upgrade,
        |conn, mut ws: Ws| async move {
            if conn == 0 && !flood(&mut ws, "", PUSHED).await {
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
