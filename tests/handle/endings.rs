//! How the task ends other than by `close()`: a failure for good (a refusal, a 401 after
//! its refreshes, a Close that says not to come back, a zero limit) is reported once and
//! ends it with no attempt after; every handle and the `Incoming` dropped ends it and its
//! connection, whatever it was waiting for; a runtime shut down under it leaves a handle
//! whose sends fail and whose `close()` returns.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio::time::timeout;
use ws_reconnect::{Attempt, BoxError, ConnectionState, Error, Incoming, Message};

use crate::support::mock::{self, Script};
use crate::support::*;
use crate::{close, never_reads, within, CLOSE};

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

/// Every handle and the Incoming dropped closes the connection (close_timeout), even with
/// a command staged because the sink cannot take it (here: the dial never completes).
#[tokio::test]
async fn everything_dropped_while_a_send_waits_for_the_connection_ends_the_task() {
    let gate = Arc::new(Notify::new()); // never opened: the dial never completes
    let script = Script::gated(gate.clone());
    let ws = mock::sink(&script, quick().close_timeout(CLOSE));
    let (handle, incoming) = ws.spawn();
    handle.send(Message::text("stuck")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(handle);
    drop(incoming);
    let ended = within(Duration::from_secs(5), || Arc::strong_count(&script) == 1).await;
    assert!(
        ended,
        "5 s after every handle and the Incoming were dropped, the task still holds the sink \
         ({} references to the script)",
        Arc::strong_count(&script)
    );
}

/// The same with a real socket: the server never reads, a send waits for room, every
/// handle and the Incoming are dropped: the connection is closed.
#[tokio::test]
async fn everything_dropped_while_the_server_never_reads_closes_the_connection() {
    let (server, open) = counting_server(never_reads()).await;
    let builder = quick().no_keepalive().close_timeout(CLOSE);
    let ws = connect(builder, server.url()).await;
    let (handle, incoming) = ws.spawn();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (counter, sender) = (accepted.clone(), handle.clone());
    let filler = tokio::spawn(async move {
        let payload = vec![7u8; 64 * 1024];
        while sender.send(Message::binary(payload.clone())).await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = accepted.load(Ordering::SeqCst);
        if now == last {
            break;
        }
        assert!(now < 2_000, "sends never blocked");
        last = now;
    }
    filler.abort();
    let _ = filler.await;
    assert_eq!(open.load(Ordering::SeqCst), 1);
    // The sink's state channel closes when the task drops the sink.
    let mut state = handle.state();
    drop(handle);
    drop(incoming);
    let ended = timeout(Duration::from_secs(5), async {
        while state.changed().await.is_ok() {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "5 s after every handle and the Incoming were dropped (close_timeout 200 ms) the \
         task still holds the connection; state {:?}",
        *state.borrow()
    );
}

/// A failure for good seen by the writer while the Incoming is full: the task ends, and
/// the Incoming still yields the item it was waiting to pass on, the messages in the
/// sink's inbox and the error item.
#[tokio::test]
async fn a_failure_for_good_while_the_incoming_is_full_keeps_inbound_messages_and_the_error() {
    let script = Script::new();
    let ws = mock::sink(&script, quick().close_timeout(CLOSE));
    let (handle, mut incoming) = ws.spawn();
    handle.send(Message::text("hello")).await.unwrap();
    eventually("connected", || script.delivered_texts() == ["hello"]).await;
    for i in 0..300 {
        script.push(0, Message::text(format!("in{i}")));
    }
    tokio::time::sleep(Duration::from_millis(100)).await; // the Incoming fills
    script.push(
        0,
        Message::Close(Some(ws_reconnect::tungstenite::protocol::CloseFrame {
            code: 1008.into(),
            reason: "policy".into(),
        })),
    );
    handle.send(Message::text("x")).await.unwrap(); // the writer reads the rest
    let shutdown = close(&handle).await;
    assert!(
        matches!(
            shutdown.result,
            Err(Error::ClosedByServer { code: 1008, .. })
        ),
        "{:?}",
        shutdown.result
    );
    let mut data = 0;
    let mut errors = Vec::new();
    while let Some(item) = timeout(BOUND, incoming.next()).await.expect("stream hung") {
        match item {
            Ok(_) => data += 1,
            Err(e) => errors.push(e),
        }
    }
    assert_eq!(
        (data, errors.len()),
        (300, 1),
        "received before the Close: 300 messages; the Incoming got {data} and errors {errors:?}"
    );
}

#[tokio::test]
async fn dial_never_succeeding_then_every_handle_dropped_with_nothing_staged_ends_the_task() {
    let gate = Arc::new(Notify::new());
    let script = Script::gated(gate.clone());
    let ws = mock::sink(&script, quick().close_timeout(CLOSE));
    let (handle, incoming) = ws.spawn();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(handle);
    drop(incoming);
    eventually("the task let go of the sink", || {
        Arc::strong_count(&script) == 1
    })
    .await;
}

/// The task's runtime shuts down (the task is dropped before it ends): sends fail,
/// `is_finished()` is true, and `close()` returns how it ended.
#[test]
fn close_after_the_tasks_runtime_shut_down_returns() {
    let script = Script::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (handle, incoming) = rt.block_on(async { mock::sink(&script, quick()).spawn() });
    rt.block_on(async {
        handle.send(Message::text("a")).await.unwrap();
        eventually("flushed", || script.delivered_texts() == ["a"]).await;
    });
    drop(rt);
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    other.block_on(async {
        assert!(handle.is_finished());
        let late = handle.send(Message::text("late")).await.unwrap_err();
        assert_eq!(late.into_message(), Some(Message::text("late")));
        let shutdown = timeout(Duration::from_secs(2), handle.close()).await;
        assert!(
            shutdown.is_ok(),
            "close() still waiting 2 s after the task was dropped with its runtime \
             (is_finished() = true, sends fail)"
        );
    });
    drop(incoming);
}
