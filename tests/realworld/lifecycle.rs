//! The lifecycle seen from outside: what `dial()`, `close()`, `state()` and the reader
//! are told when a reconnection is under way or fails for good. Each test here once failed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::{ConnectionState, Error, Message, ReconnectingSink};

use crate::support::{
    connect, drain, eventually, quick, raw_server, send_until_error, serve, Reply, Server, Ws,
    BOUND,
};

fn state(ws: &ReconnectingSink) -> ConnectionState {
    ws.state().borrow().clone()
}

/// The server goes away and the reader notices: the sink is reconnecting with nothing
/// owed. `dial()` must wait for a connection, not return Ok while there is none.
#[tokio::test]
async fn dial_while_reconnecting_waits_for_the_connection() {
    let server = serve(|_| Reply::Upgrade, drain).await;
    let addr = server.addr;
    let mut ws = connect(quick(), server.url()).await;
    let mut states = ws.state();
    drop(server);
    timeout(BOUND, async {
        loop {
            tokio::select! {
                _ = ws.next() => {}
                _ = states.wait_for(|s| matches!(s, ConnectionState::Reconnecting { .. })) => break,
            }
        }
    })
    .await
    .expect("the reader never noticed the server was gone");
    // Nothing listens: dial() keeps waiting.
    assert!(timeout(Duration::from_millis(300), ws.dial())
        .await
        .is_err());
    // The server comes back on the same port: dial() returns once connected.
    let _server = crate::support::serve_on(addr, |_| Reply::Upgrade, drain).await;
    timeout(BOUND, ws.dial())
        .await
        .expect("dial() hung after the server came back")
        .expect("dial");
    assert!(ws.is_connected());
    assert_eq!(state(&ws), ConnectionState::Connected);
}

/// Upgrades the first attempt (and drops that connection after one message); answers
/// 403, not retryable, to every later one.
async fn upgrade_once_then_403(dropped: Arc<AtomicUsize>) -> Server {
    serve(
        |attempt| {
            if attempt == 0 {
                Reply::Upgrade
            } else {
                Reply::Status(403, vec![])
            }
        },
        move |_, mut ws: Ws| {
            let dropped = dropped.clone();
            async move {
                let _ = ws.next().await;
                drop(ws);
                dropped.fetch_add(1, Ordering::SeqCst);
            }
        },
    )
    .await
}

/// The writer meets a reconnection that fails for good: the reader is told too, with an
/// error item before its stream ends.
#[tokio::test]
async fn the_reader_is_told_when_a_reconnection_the_writer_drove_fails_for_good() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let server = upgrade_once_then_403(dropped.clone()).await;
    let mut ws = connect(quick(), server.url()).await;
    timeout(BOUND, ws.send(Message::text("x")))
        .await
        .unwrap()
        .unwrap();
    eventually("the server dropped the connection", || {
        dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    let written = send_until_error(&mut ws, "y").await;
    assert!(matches!(written, Error::Rejected { .. }), "{written:?}");
    assert!(matches!(state(&ws), ConnectionState::GaveUp { .. }));
    let read = timeout(BOUND, ws.next()).await.unwrap();
    assert!(
        matches!(read, Some(Err(Error::Rejected { .. }))),
        "the reader got {read:?}"
    );
    assert!(timeout(BOUND, ws.next()).await.unwrap().is_none());
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
