//! How the task and the sink end: a failure for good is terminal (no path dials again
//! on its own), each failure is reported once, a close takes no more sends, and the
//! state says why the last attempt failed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::{Attempt, BoxError, ConnectionState, Error, Incoming, Message};

use crate::support::*;

/// A server that upgrades the first handshake and answers every later one with
/// `status`, 100 ms after the request (so that a message sent meanwhile waits for the
/// reconnection); the upgraded connection ends as soon as its first message arrives.
async fn refusing_reconnections(status: u16) -> RawServer {
    raw_server("127.0.0.1:0", move |attempt, mut tcp| async move {
        if attempt == 0 {
            if let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await {
                let _ = ws.next().await;
            }
            return;
        }
        read_request(&mut tcp).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let reply = format!("HTTP/1.1 {status} Refused\r\ncontent-length: 0\r\n\r\n");
        let _ = tokio::io::AsyncWriteExt::write_all(&mut tcp, reply.as_bytes()).await;
    })
    .await
    .unwrap()
}

/// Waits until `state` is no longer `Connected`.
async fn disconnected(state: &tokio::sync::watch::Receiver<ConnectionState>) {
    let mut state = state.clone();
    timeout(BOUND, state.wait_for(|s| *s != ConnectionState::Connected))
        .await
        .expect("the connection never ended")
        .unwrap();
}

/// Reads `incoming` to its end (bounded) and returns its error items.
async fn errors_until_end(incoming: &mut Incoming) -> Vec<Error> {
    let mut errors = Vec::new();
    loop {
        match timeout(BOUND, incoming.next()).await {
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => errors.push(e),
            Ok(None) => return errors,
            Err(_) => panic!("the incoming stream did not end; errors so far: {errors:?}"),
        }
    }
}

/// No attempt comes in `quiet` after the end: whatever the task or the sink does, a
/// failure for good dials nothing more.
async fn no_more_attempts(server: &RawServer, seen: usize) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.attempts(),
        seen,
        "attempts after the failure for good"
    );
}

#[tokio::test]
async fn a_reconnection_refused_for_good_ends_the_task_after_one_attempt() {
    let server = refusing_reconnections(400).await;
    let ws = connect(quick(), server.url()).await;
    let (handle, mut incoming) = ws.spawn();
    handle.send(Message::text("first")).await.unwrap();
    disconnected(&handle.state()).await;
    // Sent while the task reconnects: it waits in the task.
    let delivery = handle.deliver(Message::text("second")).await.unwrap();

    let errors = errors_until_end(&mut incoming).await;
    assert!(
        matches!(&errors[..], [Error::Rejected { status, .. }] if status.as_u16() == 400),
        "one refusal, then the end: {errors:?}"
    );
    let outcome = timeout(BOUND, delivery)
        .await
        .expect("the outcome never came");
    let undelivered = outcome.expect_err("nothing was delivered");
    assert_eq!(undelivered.message(), Some(&Message::text("second")));
    assert_eq!(
        server.attempts(),
        2,
        "the first dial and one refused reconnection"
    );
    let shutdown = timeout(BOUND, handle.close()).await.expect("close hung");
    assert!(
        matches!(shutdown.result, Err(Error::Rejected { .. })),
        "{:?}",
        shutdown.result
    );
    assert!(handle.is_finished());
    no_more_attempts(&server, 2).await;
}

#[tokio::test]
async fn a_401_reconnection_with_refresh_makes_its_tries_then_ends() {
    let server = refusing_reconnections(401).await;
    let hook_calls = Arc::new(AtomicUsize::new(0));
    let calls = hook_calls.clone();
    let builder = quick()
        .refresh_on_unauthorized(2)
        .headers_with(move |_: Attempt| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, BoxError>(http::HeaderMap::new()) }
        });
    let ws = connect(builder, server.url()).await;
    let (handle, mut incoming) = ws.spawn();
    handle.send(Message::text("first")).await.unwrap();
    disconnected(&handle.state()).await;
    handle.send(Message::text("second")).await.unwrap();

    let errors = errors_until_end(&mut incoming).await;
    assert!(
        matches!(&errors[..], [Error::Rejected { status, .. }] if status.as_u16() == 401),
        "one refusal, then the end: {errors:?}"
    );
    // The first dial, then one reconnection run: its attempt and two refreshed tries.
    assert_eq!(server.attempts(), 4);
    assert_eq!(hook_calls.load(Ordering::SeqCst), 4);
    let shutdown = timeout(BOUND, handle.close()).await.expect("close hung");
    // "first" may come back too: the server closed right after reading it, before
    // the Ping that would have confirmed it.
    let back: Vec<_> = shutdown
        .undelivered
        .iter()
        .filter(|m| **m != Message::text("first"))
        .collect();
    assert_eq!(back, vec![&Message::text("second")]);
    no_more_attempts(&server, 4).await;
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

#[tokio::test]
async fn a_close_the_server_means_for_good_is_reported_once() {
    let server = serve(
        |_| Reply::Upgrade,
        |_, mut ws: Ws| async move {
            let _ = ws.next().await;
            let _ = ws
                .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                    code: 1008.into(),
                    reason: "policy".into(),
                }))
                .await;
        },
    )
    .await;
    let ws = connect(quick(), server.url()).await;
    let (handle, mut incoming) = ws.spawn();
    handle.send(Message::text("hello")).await.unwrap();
    let errors = errors_until_end(&mut incoming).await;
    assert!(
        matches!(&errors[..], [Error::ClosedByServer { code: 1008, .. }]),
        "reported once: {errors:?}"
    );
    assert_eq!(server.attempts(), 1);
}

#[tokio::test]
async fn a_zero_limit_is_reported_once() {
    let server = serve(
        |_| Reply::Upgrade,
        |_, mut ws: Ws| async move {
            let _ = ws.next().await;
        },
    )
    .await;
    let ws = connect(quick().max_reconnections_total(0), server.url()).await;
    let (handle, mut incoming) = ws.spawn();
    handle.send(Message::text("hello")).await.unwrap();
    let errors = errors_until_end(&mut incoming).await;
    assert!(
        matches!(
            &errors[..],
            [Error::TooManyReconnects { retry_at: None, .. }]
        ),
        "reported once: {errors:?}"
    );
    let text = errors[0].to_string();
    assert!(
        !text.contains("allowed again"),
        "a zero limit never allows a reconnection: {text}"
    );
    assert_eq!(server.attempts(), 1);
}

#[tokio::test]
async fn a_send_after_close_fails_at_once() {
    // A server that never answers the Close: the task stays in its close for a while.
    let server = serve(
        |_| Reply::Upgrade,
        |_, ws: Ws| async move {
            let _held = ws;
            std::future::pending::<()>().await;
        },
    )
    .await;
    let ws = connect(quick().close_timeout(Duration::from_secs(5)), server.url()).await;
    let (handle, _incoming) = ws.spawn();
    let closing = handle.clone();
    let mut close = Box::pin(closing.close());
    assert!(
        (&mut close).now_or_never().is_none(),
        "the close is under way"
    );
    let refused = handle
        .send(Message::text("late"))
        .now_or_never()
        .expect("a send after close() must fail without waiting");
    let undelivered = refused.expect_err("a send after close() must fail");
    assert_eq!(undelivered.message(), Some(&Message::text("late")));
    let delivery = handle.deliver(Message::text("later")).now_or_never();
    assert!(matches!(delivery, Some(Err(_))), "{delivery:?}");
    assert!(handle.is_finished(), "sends fail: the handle is finished");
    let shutdown = timeout(BOUND, close).await.expect("close hung");
    assert!(
        shutdown.undelivered.is_empty(),
        "{:?}",
        shutdown.undelivered
    );
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
