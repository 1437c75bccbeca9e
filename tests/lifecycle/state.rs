//! What `state()` publishes: every transition in order, the cause of the last failed
//! attempt while reconnecting, `GaveUp` left as soon as `dial()` is called, and `Closed`
//! for a sink closed before it was ever dialed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::{ConnectionState, Error, Message};

use crate::support::*;

#[tokio::test]
async fn state_transitions_are_published_in_order() {
    // The first connection is closed by the server after one message; the next two
    // handshakes are refused, so Reconnecting lasts long enough to be seen.
    let server = serve(
        |n| match n {
            1 | 2 => Reply::Status(503, vec![]),
            _ => Reply::Upgrade,
        },
        |conn, mut ws: Ws| async move {
            if conn == 0 {
                let _ = ws.next().await;
                let _ = ws.close(None).await;
            }
            while let Some(Ok(_)) = ws.next().await {}
        },
    )
    .await;
    let mut ws = quick()
        .initial_interval(Duration::from_millis(50))
        .build(server.url())
        .unwrap();
    let mut rx = ws.state();
    let seen = Arc::new(Mutex::new(vec![rx.borrow().clone()]));
    let s = seen.clone();
    let watcher = tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            s.lock().unwrap().push(rx.borrow_and_update().clone());
        }
    });
    ws.dial().await.unwrap();
    ws.send(Message::text("x")).await.unwrap();
    // Reading notices the Close and reconnects through two refusals.
    read_until(&mut ws, "reconnected", |ws| {
        server.upgrades() >= 2 && ws.is_connected()
    })
    .await;
    // A watch channel keeps only the latest value: let the watcher see the second
    // Connected before the next transitions replace it.
    eventually("the watcher saw the reconnection", || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|s| **s == ConnectionState::Connected)
            .count()
            >= 2
    })
    .await;
    ws.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(ws);
    let _ = timeout(BOUND, watcher).await;
    let seen = seen.lock().unwrap().clone();
    let names: Vec<&str> = seen
        .iter()
        .map(|s| match s {
            ConnectionState::Idle => "Idle",
            ConnectionState::Connecting { .. } => "Connecting",
            ConnectionState::Connected => "Connected",
            ConnectionState::Reconnecting { .. } => "Reconnecting",
            ConnectionState::Closing => "Closing",
            ConnectionState::Closed => "Closed",
            ConnectionState::GaveUp { .. } => "GaveUp",
            _ => "other",
        })
        .collect();
    let mut dedup = names.clone();
    dedup.dedup();
    assert_eq!(
        dedup,
        [
            "Idle",
            "Connecting",
            "Connected",
            "Reconnecting",
            "Connected",
            "Closing",
            "Closed"
        ],
        "{seen:?}"
    );
    let reconnecting = seen
        .iter()
        .find(|s| matches!(s, ConnectionState::Reconnecting { .. }))
        .unwrap();
    match reconnecting {
        ConnectionState::Reconnecting {
            attempt,
            last_error,
        } => {
            assert_eq!(*attempt, 1);
            assert!(
                last_error.as_deref().unwrap_or("").contains("Close"),
                "{last_error:?}"
            );
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn the_state_says_why_the_last_attempt_failed() {
    let server = serve(
        |_| Reply::Upgrade,
        |_, mut ws: Ws| async move {
            let _ = ws.next().await;
            let _ = ws.close(None).await;
        },
    )
    .await;
    let mut ws = connect(
        quick().max_interval(Duration::from_millis(50)),
        server.url(),
    )
    .await;
    let state = ws.state();
    ws.send(Message::text("bye")).await.unwrap();
    server.stop().await;
    // The reader notices the Close, reconnects, and meets a closed port again and again.
    let reader = tokio::spawn(async move {
        let _ = timeout(Duration::from_secs(2), ws.next()).await;
        ws
    });
    let mut last = String::new();
    eventually("the state names a failed attempt", || {
        if let ConnectionState::Reconnecting {
            last_error: Some(e),
            ..
        } = &*state.borrow()
        {
            last = e.clone();
            return e.to_lowercase().contains("refused");
        }
        false
    })
    .await;
    assert!(!last.contains("reset"), "{last}");
    let _ws = join(reader, "the reader").await;
}

/// After a failure for good, a write dials again: `state()` must not keep saying
/// `GaveUp` while that attempt is in flight.
#[tokio::test]
async fn state_leaves_gave_up_when_dial_is_called() {
    let server = raw_server("127.0.0.1:0", |n, tcp| async move {
        match n {
            0 => {
                if let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await {
                    let _ = ws.next().await;
                }
            }
            1 => {
                let mut tcp = tcp;
                crate::support::reply_and_hold(
                    &mut tcp,
                    b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n",
                )
                .await;
            }
            _ => {
                // A slow handshake: the attempt stays in flight.
                tokio::time::sleep(Duration::from_secs(3)).await;
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    drain(0, ws).await;
                }
            }
        }
    })
    .await
    .unwrap();
    let mut ws = connect(quick(), server.url()).await;
    timeout(BOUND, ws.send(Message::text("x")))
        .await
        .unwrap()
        .unwrap();
    let written = send_until_error(&mut ws, "y").await;
    assert!(matches!(written, Error::Rejected { .. }), "{written:?}");
    // A write is told the failure again and dials nothing.
    let again = timeout(BOUND, ws.send(Message::text("z"))).await.unwrap();
    assert!(matches!(again, Err(Error::Rejected { .. })), "{again:?}");
    assert_eq!(server.attempts(), 2);
    // dial() does; the handshake takes 3 s.
    assert!(timeout(Duration::from_millis(500), ws.dial())
        .await
        .is_err());
    eventually("a third attempt", || server.attempts() == 3).await;
    let now = state(&ws);
    assert!(
        !matches!(now, ConnectionState::GaveUp { .. }),
        "an attempt is in flight but state() says {now:?}"
    );
}

#[tokio::test]
async fn close_on_a_sink_never_dialed_publishes_closed() {
    let mut ws = quick().build("ws://127.0.0.1:9/").unwrap();
    assert_eq!(state(&ws), ConnectionState::Idle);
    timeout(BOUND, ws.close()).await.unwrap().unwrap();
    assert_eq!(state(&ws), ConnectionState::Closed);
}
