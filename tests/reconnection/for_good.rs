//! Giving up, and what follows: a status that is not retried ends the dial after one
//! attempt; the backoff or the connect timeout gives up within its bound; a failure for
//! good is terminal (only `dial()` dials again) and is told to the reader even when the
//! writer met it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use ws_reconnect::{ConnectionState, Error, Message};

use crate::support::*;

#[tokio::test]
async fn a_400_fails_after_one_attempt() {
    let server = serve(|_| Reply::Status(400, vec![]), echo).await;
    let err = connect_err(quick_healthy(), server.url()).await;
    match err {
        Error::Rejected { status, .. } => assert_eq!(status.as_u16(), 400),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.attempts(), 1);
}

#[tokio::test]
async fn server_down_fails_after_max_elapsed_time() {
    let addr = dead_port().await;
    let started = Instant::now();
    let err = connect_err(
        quick_healthy().max_elapsed_time(Some(Duration::from_millis(700))),
        format!("ws://{addr}/"),
    )
    .await;
    assert!(matches!(err, Error::GaveUp { .. }), "{err:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_silent_server_hits_the_connect_timeout_is_retried_and_given_up() {
    let server = silent_listener().await;
    let started = Instant::now();
    let err = connect_err(
        quick()
            .connect_timeout(Duration::from_millis(150))
            .max_elapsed_time(Some(Duration::from_millis(600))),
        server.url(),
    )
    .await;
    match err {
        Error::GaveUp { source, .. } => assert!(matches!(*source, Error::Timeout), "{source:?}"),
        other => panic!("{other:?}"),
    }
    assert!(server.attempts() >= 2);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn after_a_failure_for_good_the_sink_dials_only_when_asked() {
    let server = refusing_reconnections(400).await;
    let mut ws = connect(quick(), server.url()).await;
    ws.send(Message::text("first")).await.unwrap();
    // The server ends the connection; the reader reconnects and meets the refusal.
    let item = timeout(BOUND, ws.next()).await.expect("next hung");
    assert!(
        matches!(item, Some(Err(Error::Rejected { .. }))),
        "{item:?}"
    );
    assert!(matches!(
        *ws.state().borrow(),
        ConnectionState::GaveUp { .. }
    ));
    assert_eq!(
        timeout(BOUND, ws.next())
            .await
            .expect("next hung")
            .map(|r| r.is_ok()),
        None
    );
    // Writes are told of the failure, every time, and dial nothing.
    for _ in 0..3 {
        let err = timeout(BOUND, ws.send(Message::text("again")))
            .await
            .expect("send hung")
            .expect_err("a write after a failure for good");
        assert!(matches!(err, Error::Rejected { .. }), "{err}");
    }
    assert_eq!(server.attempts(), 2);
    // A refused write is not kept; "first" may still wait for its confirmation (the
    // server closed right after reading it, before the Ping behind it).
    assert!(ws.undelivered_count() <= 1, "{}", ws.undelivered_count());
    // dial() is the way back: one more attempt (refused again).
    let err = timeout(BOUND, ws.dial())
        .await
        .expect("dial hung")
        .unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err}");
    assert_eq!(server.attempts(), 3);
    no_more_attempts(&server, 3).await;
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
