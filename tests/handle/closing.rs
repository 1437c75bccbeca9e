//! `Handle::close()`: it delivers what was queued before it, reports once however many
//! handles ask, returns within its bound on a frozen path, against a dead port or while
//! the limiter refuses, and hands back every message it could not deliver; a send after
//! it fails at once with its message handed back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use tokio::sync::Notify;
use tokio::time::timeout;
use ws_reconnect::testing::Fault;
use ws_reconnect::{ConnectionState, Error, Message, UndeliveredReason};

use crate::support::mock::{self, Script};
use crate::support::*;
use crate::{close, never_reads, outcome, CLOSE};

#[tokio::test]
async fn close_reports_once_and_later_sends_get_their_message_back() {
    let (server, open) = counting_server(|conn, ws| Box::pin(drain(conn, ws))).await;
    let ws = connect(quick(), server.url()).await;
    let (handle, _incoming) = ws.spawn();
    let mut state = handle.state();
    handle.send(Message::text("a")).await.unwrap();
    let shutdown = timeout(BOUND, handle.close()).await.expect("close hung");
    assert!(shutdown.result.is_ok(), "{:?}", shutdown.result);
    assert!(shutdown.undelivered.is_empty());
    assert!(handle.is_finished());
    timeout(BOUND, state.wait_for(|s| *s == ConnectionState::Closed))
        .await
        .expect("state hung")
        .expect("state");
    eventually("the server saw the close", || {
        open.load(Ordering::SeqCst) == 0
    })
    .await;
    let refused = handle.send(Message::text("late")).await.unwrap_err();
    assert!(matches!(
        refused.reason(),
        UndeliveredReason::Refused(Error::TaskEnded)
    ));
    assert_eq!(refused.into_message(), Some(Message::text("late")));
    let again = timeout(BOUND, handle.close()).await.expect("close hung");
    assert!(again.result.is_ok() && again.undelivered.is_empty());
}

#[tokio::test]
async fn close_hands_back_what_it_could_not_deliver() {
    // Acknowledged mode against a server that never acknowledges: close() times out.
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, recording(log.clone())).await;
    let builder = quick()
        .acknowledged(Numbered, 16)
        .close_timeout(Duration::from_millis(200));
    let ws = connect(builder, server.url()).await;
    let (handle, _incoming) = ws.spawn();
    handle.send(Message::text("t1")).await.unwrap();
    let delivery = handle.deliver(Message::text("t2")).await.unwrap();
    eventually("both sent", || log.len() == 2).await;
    let shutdown = timeout(BOUND, handle.close()).await.expect("close hung");
    assert!(
        matches!(shutdown.result, Err(Error::CloseIncomplete { .. })),
        "{:?}",
        shutdown.result
    );
    assert_eq!(shutdown.undelivered, [Message::text("t1")]);
    let failed = timeout(BOUND, delivery).await.unwrap().unwrap_err();
    assert!(matches!(failed.reason(), UndeliveredReason::Closed));
    assert_eq!(failed.into_message(), Some(Message::text("t2")));
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

/// A Close message sent through the handle is refused with the message handed back (or,
/// failing that, shows up in `Shutdown::undelivered`): never dropped silently.
#[tokio::test]
async fn a_close_message_sent_through_the_handle_is_handed_back() {
    let script = Script::new();
    let ws = mock::sink(&script, quick().close_timeout(CLOSE));
    let (handle, _incoming) = ws.spawn();
    handle.send(Message::text("before")).await.unwrap();
    let sent = timeout(BOUND, handle.send(Message::Close(None)))
        .await
        .expect("send hung");
    handle.send(Message::text("after")).await.unwrap();
    eventually("before and after flushed", || {
        script.delivered_texts() == ["before", "after"]
    })
    .await;
    let shutdown = close(&handle).await;
    let handed_back = sent.is_err()
        || shutdown
            .undelivered
            .iter()
            .any(|m| matches!(m, Message::Close(_)));
    assert!(
        handed_back,
        "send returned {sent:?}, shutdown {shutdown:?}, delivered {:?}: the Close message is gone",
        script.delivered_texts()
    );
}

/// close() while the dial never succeeds (dead port): the messages are handed back and
/// the result is not a clean close.
#[tokio::test]
async fn close_while_the_dial_never_succeeds_is_not_a_clean_close() {
    let addr = dead_port().await;
    let ws = quick()
        .close_timeout(CLOSE)
        .build(format!("ws://{addr}/"))
        .unwrap();
    let (handle, _incoming) = ws.spawn();
    handle.send(Message::text("never")).await.unwrap();
    let delivery = handle.deliver(Message::text("never either")).await.unwrap();
    let shutdown = close(&handle).await;
    assert_eq!(shutdown.undelivered, [Message::text("never")]);
    let failed = outcome(delivery).await.unwrap_err();
    assert_eq!(failed.message(), Some(&Message::text("never either")));
    assert!(
        shutdown.result.is_err(),
        "two messages undelivered, yet the result is {:?}",
        shutdown.result
    );
}

/// The echoes the server sent before its Close reply are read by the sink's close() into
/// the sink's inbox; the Incoming still yields them, as the plain sink's next() does.
#[tokio::test]
async fn close_passes_on_the_inbound_messages_read_while_closing() {
    let (server, _open) = counting_server(|c, ws| Box::pin(echo(c, ws))).await;
    let ws = connect(quick().close_timeout(Duration::from_secs(2)), server.url()).await;
    let (handle, mut incoming) = ws.spawn();
    for i in 0..50 {
        handle.send(Message::text(format!("e{i}"))).await.unwrap();
    }
    let shutdown = close(&handle).await;
    assert!(shutdown.result.is_ok(), "{:?}", shutdown.result);
    let mut got = Vec::new();
    while let Some(item) = timeout(BOUND, incoming.next()).await.expect("stream hung") {
        got.push(item.unwrap());
    }
    assert_eq!(
        got.len(),
        50,
        "the server echoed all 50 before answering the Close; the Incoming got {}",
        got.len()
    );
}

/// `is_finished()` is true as soon as sends would fail: from the moment close() is
/// requested, while the task still delivers what was queued before it and closes.
#[tokio::test]
async fn is_finished_is_true_as_soon_as_sends_fail() {
    let gate = Arc::new(Notify::new());
    let script = Script::gated(gate.clone());
    let ws = mock::sink(&script, quick().close_timeout(Duration::from_secs(2)));
    let (handle, _incoming) = ws.spawn();
    handle.send(Message::text("waiting")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!handle.is_finished());
    let _ = timeout(Duration::from_millis(50), handle.close()).await; // requested
    let running = Arc::strong_count(&script) > 1;
    assert!(running, "the task still holds the sink, delivering");
    assert!(handle.is_finished(), "sends fail from the close request on");
    assert!(handle.send(Message::text("late")).await.is_err());
    let _ = close(&handle).await;
}

#[tokio::test]
async fn concurrent_closes_from_several_handles_report_once() {
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, recording(log.clone())).await;
    let builder = quick().acknowledged(Numbered, 16).close_timeout(CLOSE);
    let ws = connect(builder, server.url()).await;
    let (handle, _incoming) = ws.spawn();
    handle.send(Message::text("t1")).await.unwrap();
    handle.send(Message::text("u")).await.unwrap();
    eventually("both sent", || log.len() == 2).await;
    let closers: Vec<_> = (0..4)
        .map(|_| {
            let h = handle.clone();
            tokio::spawn(async move { h.close().await })
        })
        .collect();
    let mut shutdowns = Vec::new();
    for c in closers {
        shutdowns.push(join(c, "a close").await);
    }
    let with_messages: Vec<_> = shutdowns
        .iter()
        .filter(|s| !s.undelivered.is_empty())
        .collect();
    assert_eq!(with_messages.len(), 1, "{shutdowns:?}");
    assert_eq!(with_messages[0].undelivered, [Message::text("t1")]);
    for s in &shutdowns {
        assert!(
            matches!(s.result, Err(Error::CloseIncomplete { .. })),
            "{:?}",
            s.result
        );
    }
}

#[tokio::test]
async fn close_delivers_every_message_queued_before_it_beyond_the_queue_bound() {
    let (server, log) = recording_server().await;
    let ws = connect(quick(), server.url()).await;
    let (handle, _incoming) = ws.spawn();
    for i in 0..2_000 {
        handle.send(Message::text(format!("m{i}"))).await.unwrap();
    }
    let shutdown = close(&handle).await;
    assert!(shutdown.result.is_ok(), "{:?}", shutdown.result);
    assert!(shutdown.undelivered.is_empty());
    eventually("the server has all 2,000", || log.len() == 2_000).await;
    let expected: Vec<_> = (0..2_000).map(|i| format!("m{i}")).collect();
    assert_eq!(log.texts(), expected);
}

#[tokio::test]
async fn close_while_the_server_never_reads_returns_and_hands_everything_back() {
    let (server, open) = counting_server(never_reads()).await;
    let ws = connect(quick().no_keepalive().close_timeout(CLOSE), server.url()).await;
    let (handle, _incoming) = ws.spawn();
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
        last = now;
    }
    let shutdown = close(&handle).await;
    assert!(
        matches!(shutdown.result, Err(Error::CloseIncomplete { .. })),
        "{:?}",
        shutdown.result
    );
    assert!(!shutdown.undelivered.is_empty());
    assert!(shutdown.undelivered.len() <= last);
    join(filler, "the filler ends once the task does").await;
    assert_eq!(
        open.load(Ordering::SeqCst),
        1,
        "the server never read: it cannot tell"
    );
    assert_eq!(*handle.state().borrow(), ConnectionState::Closed);
}

#[tokio::test]
async fn close_while_refused_by_the_limiter_returns_and_hands_back() {
    let (server, _open) = counting_server(|c, ws| Box::pin(drain(c, ws))).await;
    let builder = quick_healthy()
        .max_reconnections_total(1)
        .max_reconnections_time(Duration::from_secs(60))
        .close_timeout(CLOSE);
    let (proxy, ws) = through_proxy(&server, builder).await;
    let (handle, mut incoming) = ws.spawn();
    proxy.inject(Fault::Reset);
    eventually("one reconnection", || handle.stats().reconnects == 1).await;
    proxy.inject(Fault::Reset);
    let mut state = handle.state();
    timeout(
        BOUND,
        state.wait_for(|s| matches!(s, ConnectionState::Refused { .. })),
    )
    .await
    .expect("never refused")
    .expect("state");
    handle.send(Message::text("refused 1")).await.unwrap();
    let d = handle.deliver(Message::text("refused 2")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !handle.is_finished(),
        "a refusal with a retry time is not the end"
    );
    let shutdown = close(&handle).await;
    assert_eq!(shutdown.undelivered, [Message::text("refused 1")]);
    let e = outcome(d).await.unwrap_err();
    assert_eq!(e.into_message(), Some(Message::text("refused 2")));
    let mut items = Vec::new();
    while let Some(item) = timeout(BOUND, incoming.next()).await.expect("stream hung") {
        items.push(item);
    }
    assert!(
        items
            .iter()
            .any(|i| matches!(i, Err(Error::TooManyReconnects { .. }))),
        "{items:?}"
    );
}

#[tokio::test]
async fn dropped_deliveries_and_a_dropped_close_future_lose_nothing() {
    let (server, log) = recording_server().await;
    let ws = connect(quick(), server.url()).await;
    let (handle, _incoming) = ws.spawn();
    for i in 0..300 {
        drop(
            handle
                .deliver(Message::text(format!("m{i}")))
                .await
                .unwrap(),
        );
    }
    // A close future dropped after its first poll still closes, after delivering.
    let _ = timeout(Duration::from_millis(1), handle.close()).await;
    let shutdown = close(&handle).await;
    assert!(shutdown.result.is_ok(), "{:?}", shutdown.result);
    assert!(shutdown.undelivered.is_empty());
    eventually("all 300 delivered", || log.len() == 300).await;
    let late = handle.deliver(Message::text("late")).await.unwrap_err();
    assert_eq!(late.into_message(), Some(Message::text("late")));
}

#[tokio::test]
async fn sends_racing_a_close_are_delivered_or_handed_back_never_lost() {
    let (server, log) = recording_server().await;
    let ws = connect(quick(), server.url()).await;
    let (handle, _incoming) = ws.spawn();
    let mut senders = Vec::new();
    for s in 0..4 {
        let h = handle.clone();
        senders.push(tokio::spawn(async move {
            let mut ok = Vec::new();
            for i in 0.. {
                let text = format!("{s}:{i}");
                match h.send(Message::text(text.clone())).await {
                    Ok(()) => ok.push(text),
                    Err(e) => {
                        assert_eq!(e.into_message(), Some(Message::text(text)));
                        return ok;
                    }
                }
                if i % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            unreachable!()
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let shutdown = close(&handle).await;
    let mut accepted = Vec::new();
    for s in senders {
        accepted.extend(join(s, "a sender").await);
    }
    let back: Vec<String> = shutdown
        .undelivered
        .iter()
        .map(|m| m.to_text().unwrap().to_owned())
        .collect();
    let expected = accepted.len();
    eventually("the server has what was not handed back", || {
        log.len() + back.len() >= expected
    })
    .await;
    let mut seen: std::collections::HashSet<String> = log.texts().into_iter().collect();
    seen.extend(back);
    let lost: Vec<_> = accepted.iter().filter(|t| !seen.contains(*t)).collect();
    assert!(
        lost.is_empty(),
        "{} accepted, lost: {:?}",
        expected,
        &lost[..lost.len().min(10)]
    );
}

#[tokio::test]
async fn close_on_a_frozen_path_in_acknowledged_mode_hands_every_outcome_back() {
    let (server, _open) = counting_server(|c, ws| Box::pin(drain(c, ws))).await;
    let builder = quick()
        .no_keepalive()
        .acknowledged(Numbered, 4)
        .close_timeout(CLOSE);
    let (proxy, ws) = through_proxy(&server, builder).await;
    let (handle, _incoming) = ws.spawn();
    proxy.inject(Fault::Freeze);
    let mut ds = Vec::new();
    for i in 1..=10 {
        ds.push(
            handle
                .deliver(Message::text(format!("t{i}")))
                .await
                .unwrap(),
        );
    }
    handle.send(Message::text("u")).await.unwrap();
    let shutdown = close(&handle).await;
    assert!(
        matches!(shutdown.result, Err(Error::CloseIncomplete { .. })),
        "{:?}",
        shutdown.result
    );
    assert_eq!(shutdown.undelivered, [Message::text("u")]);
    for (i, d) in ds.into_iter().enumerate() {
        let e = outcome(d).await.unwrap_err();
        assert_eq!(
            e.into_message(),
            Some(Message::text(format!("t{}", i + 1))),
            "t{}",
            i + 1
        );
    }
}
