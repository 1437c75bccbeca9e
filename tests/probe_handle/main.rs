//! Adversarial probes of the spawned handle, per-message outcomes and volatile messages.
//!
//! Every await that could hang is bounded; no test asserts how long something took.
//! Each one was written against a way the handle could lose a message, hang or leak.

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use support::mock::{self, Script};
use support::*;
use tokio::sync::Notify;
use tokio::time::timeout;
use ws_reconnect::testing::Fault;
use ws_reconnect::{
    Acknowledge, Attempt, CloseAction, ClosePolicy, ConfirmBy, ConnectInfo, ConnectionState,
    Delivery, DialKind, Error, Handle, Message, Outgoing, ReconnectingSink, Shutdown, Undelivered,
    UndeliveredReason,
};

const CLOSE: Duration = Duration::from_millis(200);

async fn outcome(delivery: Delivery) -> Result<(), Undelivered> {
    timeout(BOUND, delivery)
        .await
        .expect("the outcome never resolved")
}

async fn close(handle: &Handle) -> Shutdown {
    timeout(BOUND, handle.close()).await.expect("close hung")
}

/// Waits until `cond` holds, at most `limit`; returns whether it did.
async fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

fn is_resolved(d: &mut Delivery) -> bool {
    d.now_or_never().is_some()
}

/// Upgrades, then never reads: the client's socket fills.
fn never_reads() -> impl Fn(usize, Ws) -> BoxHandler + Send + Sync {
    |_, ws| {
        Box::pin(async move {
            let _held = ws;
            std::future::pending::<()>().await;
        })
    }
}

/// Sends `n` messages first, then records what it reads; with `ack`, acknowledges each
/// numbered text `"t<n>"` with `"ack:<n>"`.
fn flood_then_record(
    n: usize,
    ack: bool,
    log: Log,
) -> impl Fn(usize, Ws) -> BoxHandler + Send + Sync {
    move |conn, mut ws: Ws| {
        let log = log.clone();
        Box::pin(async move {
            for i in 0..n {
                if ws.send(Message::text(format!("flood {i}"))).await.is_err() {
                    return;
                }
            }
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    log.push(conn, t.to_string());
                    if ack {
                        let id = t.trim_start_matches('t').to_owned();
                        if ws.send(Message::text(format!("ack:{id}"))).await.is_err() {
                            return;
                        }
                    }
                }
            }
        })
    }
}

// ---------------------------------------------------------------------------------------
// Findings (these fail)
// ---------------------------------------------------------------------------------------

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

/// Outcomes resolve in the order the messages were accepted: a refused message (here a
/// Close) never settles ahead of an earlier one still waiting for its acknowledgement.
#[tokio::test]
async fn a_refused_delivery_never_resolves_ahead_of_an_earlier_unacknowledged_one() {
    let script = Script::new();
    let ws = mock::sink(
        &script,
        quick().acknowledged(Numbered, 16).close_timeout(CLOSE),
    );
    let (handle, _incoming) = ws.spawn();
    let mut first = handle.deliver(Message::text("t1")).await.unwrap();
    eventually("t1 flushed", || script.delivered_texts() == ["t1"]).await;
    let mut second = match handle.deliver(Message::Close(None)).await {
        Ok(delivery) => delivery,
        Err(refused) => {
            // Refused before it was queued: no outcome to order.
            assert_eq!(refused.into_message(), Some(Message::Close(None)));
            let _ = close(&handle).await;
            return;
        }
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second_done = is_resolved(&mut second);
    let first_done = is_resolved(&mut first);
    assert!(
        !second_done || first_done,
        "the second outcome resolved while the first (t1, unacknowledged) had not"
    );
    let _ = close(&handle).await;
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

/// A panic in user code ends the task; the Deliveries of the messages queued for the
/// task (in its channel, or staged) still hand their message back.
#[tokio::test]
async fn a_panic_hands_back_the_messages_queued_for_the_task() {
    let gate = Arc::new(Notify::new());
    let script = Script::gated(gate.clone());
    let builder = quick()
        .close_timeout(CLOSE)
        .on_connect_with(|info: &ConnectInfo| {
            assert!(!info.reconnect, "the hook fails on reconnection");
            Vec::new()
        });
    let ws = mock::sink(&script, builder);
    gate.notify_one(); // the first dial
    let (handle, _incoming) = ws.spawn();
    eventually("connected", || script.connects() == 1).await;
    script.hang_up(0);
    let mut state = handle.state();
    timeout(
        BOUND,
        state.wait_for(|s| matches!(s, ConnectionState::Reconnecting { .. })),
    )
    .await
    .expect("state hung")
    .expect("state");
    let mut deliveries = Vec::new();
    for i in 0..3 {
        deliveries.push(
            handle
                .deliver(Message::text(format!("d{i}")))
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    gate.notify_one(); // the reconnection: the hook panics
    let shutdown = close(&handle).await;
    assert!(
        matches!(shutdown.result, Err(Error::TaskPanicked { .. })),
        "{:?}",
        shutdown.result
    );
    for (i, d) in deliveries.into_iter().enumerate() {
        let e = outcome(d).await.unwrap_err();
        assert!(
            e.message().is_some(),
            "d{i}: {e} ({:?}), the message is not handed back",
            e.reason()
        );
    }
}

/// Same panic, messages sent without an outcome: `Shutdown::undelivered` holds every
/// message the task still owed.
#[tokio::test]
async fn a_panic_hands_back_the_untracked_messages_the_task_owed() {
    let gate = Arc::new(Notify::new());
    let script = Script::gated(gate.clone());
    let builder = quick()
        .close_timeout(CLOSE)
        .on_connect_with(|info: &ConnectInfo| {
            assert!(!info.reconnect, "the hook fails on reconnection");
            Vec::new()
        });
    let ws = mock::sink(&script, builder);
    gate.notify_one();
    let (handle, _incoming) = ws.spawn();
    eventually("connected", || script.connects() == 1).await;
    script.hang_up(0);
    let mut state = handle.state();
    timeout(
        BOUND,
        state.wait_for(|s| matches!(s, ConnectionState::Reconnecting { .. })),
    )
    .await
    .expect("state hung")
    .expect("state");
    for i in 0..3 {
        handle.send(Message::text(format!("m{i}"))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    gate.notify_one();
    let shutdown = close(&handle).await;
    assert!(matches!(shutdown.result, Err(Error::TaskPanicked { .. })));
    assert!(script.delivered_texts().is_empty());
    assert_eq!(
        shutdown.undelivered.len(),
        3,
        "3 messages accepted by send(), never delivered, not in the Shutdown: {shutdown:?}"
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

/// Control for the above: the plain sink yields the echoes after close().
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

// ---------------------------------------------------------------------------------------
// Passing probes: what the existing tests do not cover
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_volatile_drop_in_acknowledged_mode_frees_the_window_for_a_waiting_send() {
    let script = Script::new();
    let ws = mock::sink(
        &script,
        quick().acknowledged(Numbered, 2).close_timeout(CLOSE),
    );
    let (handle, _incoming) = ws.spawn();
    let d1 = handle
        .deliver(Outgoing::new(Message::text("t1")).volatile())
        .await
        .unwrap();
    let d2 = handle
        .deliver(Outgoing::new(Message::text("t2")).volatile())
        .await
        .unwrap();
    let d3 = handle.deliver(Message::text("t3")).await.unwrap();
    eventually("t1 t2 flushed", || script.delivered_texts() == ["t1", "t2"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        script.delivered_texts(),
        ["t1", "t2"],
        "t3 waits: window full"
    );
    script.hang_up(0);
    for d in [d1, d2] {
        let e = outcome(d).await.unwrap_err();
        assert!(matches!(e.reason(), UndeliveredReason::ConnectionLost));
        assert!(e.message().is_some());
    }
    eventually("t3 on the second connection", || {
        script.delivered.lock().unwrap().last() == Some(&(1, "t3".to_owned()))
    })
    .await;
    script.push(1, Message::text("ack:3"));
    outcome(d3).await.expect("acknowledged");
    assert_eq!(handle.stats().messages_dropped, 2);
    assert_eq!(script.delivered_texts(), ["t1", "t2", "t3"]);
    assert!(close(&handle).await.result.is_ok());
    eventually("the task let go of the sink", || {
        Arc::strong_count(&script) == 1
    })
    .await;
}

/// Drives a mock sink's reader for a while (so it notices EOF, reconnects, applies acks).
async fn drive(
    ws: &mut ReconnectingSink<mock::Make>,
    what: &str,
    mut cond: impl FnMut(&ReconnectingSink<mock::Make>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !cond(ws) {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        let _ = timeout(Duration::from_millis(20), ws.next()).await;
    }
}

#[tokio::test]
async fn mixed_entries_keep_the_counters_consistent_across_a_drop_and_late_acks() {
    let script = Script::new();
    let mut ws = mock::sink(&script, quick().acknowledged(Numbered, 8));
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    let u1 = ws.feed_outgoing(Message::text("u1")).await.unwrap();
    let t1 = ws
        .feed_outgoing(Outgoing::new(Message::text("t1")).volatile())
        .await
        .unwrap();
    let t2 = ws.feed_outgoing(Message::text("t2")).await.unwrap();
    let v = ws
        .feed_outgoing(Outgoing::new(Message::text("v")).volatile())
        .await
        .unwrap();
    futures::SinkExt::feed(&mut ws, Message::text("t3"))
        .await
        .unwrap(); // untracked outcome
    let t4 = ws
        .feed_outgoing(Outgoing::new(Message::text("t4")).volatile())
        .await
        .unwrap();
    let _ = timeout(Duration::from_millis(100), ws.flush()).await;
    assert_eq!(ws.unacknowledged_count(), 4);
    assert_eq!(ws.undelivered_count(), 4);
    outcome(u1).await.expect("flushed, untracked");
    script.hang_up(0);
    drive(&mut ws, "reconnected", |_| script.connects() == 2).await;
    let _ = timeout(Duration::from_millis(100), ws.flush()).await;
    // t1 and t4 dropped, t2 and t3 resent.
    assert_eq!(ws.stats().messages_dropped, 2);
    assert_eq!(ws.unacknowledged_count(), 2);
    assert_eq!(ws.undelivered_count(), 2);
    let on_second: Vec<_> = script
        .delivered
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _)| *c == 1)
        .map(|(_, t)| t.clone())
        .collect();
    assert_eq!(on_second, ["t2", "t3"]);
    // A late acknowledgement of a dropped id, then out of order, then the rest.
    script.push(1, Message::text("ack:1"));
    drive(&mut ws, "ack:1 applied", |_| true).await;
    let _ = timeout(Duration::from_millis(50), ws.next()).await;
    assert_eq!(ws.unacknowledged_count(), 2);
    script.push(1, Message::text("ack:4"));
    drive(&mut ws, "all acknowledged", |ws| {
        ws.unacknowledged_count() == 0
    })
    .await;
    assert_eq!(ws.undelivered_count(), 0);
    for (name, d) in [("t1", t1), ("t4", t4)] {
        let e = outcome(d).await.unwrap_err();
        assert!(
            matches!(e.reason(), UndeliveredReason::ConnectionLost),
            "{name}"
        );
        assert_eq!(e.into_message(), Some(Message::text(name)));
    }
    outcome(t2).await.expect("t2 acknowledged");
    outcome(v).await.expect("v flushed before the drop");
    // The window is usable again.
    let t5 = ws.feed_outgoing(Message::text("t5")).await.unwrap();
    script.push(1, Message::text("ack:5"));
    let _ = timeout(Duration::from_millis(100), ws.flush()).await;
    drive(&mut ws, "t5 acknowledged", |ws| ws.undelivered_count() == 0).await;
    outcome(t5).await.expect("t5");
}

#[tokio::test]
async fn out_of_order_ids_behind_an_untracked_entry_are_acknowledged_with_outcomes_in_order() {
    let script = Script::new();
    let mut ws = mock::sink(&script, quick().acknowledged(Numbered, 8));
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    let names = ["t5", "t3", "x", "t4", "t9"];
    let mut ds = Vec::new();
    for n in names {
        ds.push(ws.feed_outgoing(Message::text(n)).await.unwrap());
    }
    let _ = timeout(Duration::from_millis(100), ws.flush()).await;
    assert_eq!(ws.unacknowledged_count(), 4);
    script.push(0, Message::text("ack:4"));
    drive(&mut ws, "ack:4", |ws| ws.unacknowledged_count() == 2).await;
    assert_eq!(ws.undelivered_count(), 2, "t5 and t9 remain");
    let mut ds = ds.into_iter();
    let mut t5 = ds.next().unwrap();
    let rest: Vec<_> = ds.collect();
    // t3, x, t4 are settled but wait behind t5 (in order).
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!is_resolved(&mut t5));
    script.push(0, Message::text("ack:9"));
    drive(&mut ws, "ack:9", |ws| ws.unacknowledged_count() == 0).await;
    outcome(t5).await.unwrap();
    for d in rest {
        outcome(d).await.unwrap();
    }
    assert_eq!(ws.undelivered_count(), 0);
}

#[tokio::test]
async fn an_unread_incoming_does_not_stop_writes_plain() {
    let log = Log::default();
    let server = serve(
        |_| Reply::Upgrade,
        flood_then_record(3_000, false, log.clone()),
    )
    .await;
    let ws = connect(quick(), server.url()).await;
    let (handle, incoming) = ws.spawn();
    tokio::time::sleep(Duration::from_millis(300)).await; // the flood fills the Incoming
    let mut last = None;
    for i in 0..1_000 {
        last = Some(
            timeout(BOUND, handle.deliver(Message::text(format!("m{i}"))))
                .await
                .expect("deliver hung")
                .unwrap(),
        );
    }
    outcome(last.unwrap()).await.expect("flushed");
    eventually("the server read them all", || log.len() == 1_000).await;
    drop(incoming);
    assert!(close(&handle).await.result.is_ok());
}

#[tokio::test]
async fn an_unread_incoming_does_not_stop_acknowledged_writes() {
    let log = Log::default();
    let server = serve(
        |_| Reply::Upgrade,
        flood_then_record(3_000, true, log.clone()),
    )
    .await;
    let ws = connect(quick().acknowledged(Numbered, 32), server.url()).await;
    let (handle, _incoming) = ws.spawn();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ds = Vec::new();
    for i in 1..=500 {
        ds.push(
            timeout(BOUND, handle.deliver(Message::text(format!("t{i}"))))
                .await
                .expect("deliver hung")
                .unwrap(),
        );
    }
    for d in ds {
        outcome(d).await.expect("acknowledged");
    }
    assert!(close(&handle).await.result.is_ok());
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
async fn a_send_cancelled_while_waiting_for_room_is_never_sent() {
    let gate = Arc::new(Notify::new());
    let script = Script::gated(gate.clone());
    let ws = mock::sink(&script, quick().close_timeout(CLOSE));
    let (handle, _incoming) = ws.spawn();
    // The dial waits: one command staged, QUEUE in the channel, then sends wait.
    let mut i = 0;
    loop {
        let sent = timeout(
            Duration::from_millis(100),
            handle.send(Message::text(format!("m{i}"))),
        )
        .await;
        match sent {
            Ok(r) => r.unwrap(),
            Err(_) => break, // cancelled while waiting: m{i} must not be sent
        }
        i += 1;
        assert!(i < 10_000, "sends never waited");
    }
    let cancelled = format!("m{i}");
    let d = timeout(
        Duration::from_millis(100),
        handle.deliver(Message::text("cancelled deliver")),
    )
    .await;
    assert!(d.is_err(), "the queue is still full");
    handle.close().now_or_never(); // not awaited: the close is requested anyway
    gate.notify_one();
    let shutdown = close(&handle).await;
    let delivered = script.delivered_texts();
    assert!(
        !delivered.contains(&cancelled),
        "the cancelled send was sent"
    );
    assert!(!delivered.iter().any(|t| t == "cancelled deliver"));
    assert!(!shutdown
        .undelivered
        .contains(&Message::text(cancelled.clone())));
    assert_eq!(
        delivered.len() + shutdown.undelivered.len(),
        i,
        "{shutdown:?}"
    );
    eventually("the task let go of the sink", || {
        Arc::strong_count(&script) == 1
    })
    .await;
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

struct PanickyAcks;

impl Acknowledge for PanickyAcks {
    fn id(&mut self, outbound: &Message) -> Option<u64> {
        Numbered.id(outbound)
    }
    fn acked(&mut self, inbound: &Message) -> Option<u64> {
        assert_ne!(
            inbound.to_text().ok(),
            Some("boom"),
            "the ack parser panics"
        );
        Numbered.acked(inbound)
    }
}

async fn ends_with_panic(handle: &Handle, incoming: &mut ws_reconnect::Incoming, what: &str) {
    let end = timeout(BOUND, async { while incoming.next().await.is_some() {} }).await;
    assert!(end.is_ok(), "{what}: the stream ends with the task");
    let shutdown = close(handle).await;
    assert!(
        matches!(&shutdown.result, Err(Error::TaskPanicked { message }) if message.contains(what)),
        "{what}: {:?}",
        shutdown.result
    );
    let late = handle.send(Message::text("late")).await.unwrap_err();
    assert_eq!(late.into_message(), Some(Message::text("late")));
}

#[tokio::test]
async fn a_panicking_acknowledge_impl_ends_the_task_and_hands_the_sink_messages_back() {
    let script = Script::new();
    let ws = mock::sink(&script, quick().acknowledged(PanickyAcks, 8));
    let (handle, mut incoming) = ws.spawn();
    let d = handle.deliver(Message::text("t1")).await.unwrap();
    eventually("t1 flushed", || script.delivered_texts() == ["t1"]).await;
    script.push(0, Message::text("boom"));
    ends_with_panic(&handle, &mut incoming, "the ack parser panics").await;
    let e = outcome(d).await.unwrap_err();
    assert_eq!(e.message(), Some(&Message::text("t1")), "{:?}", e.reason());
    eventually("the sink is gone", || Arc::strong_count(&script) == 1).await;
}

#[tokio::test]
async fn a_panicking_retain_hook_ends_the_task_and_hands_the_sink_messages_back() {
    let script = Script::new();
    let builder =
        quick()
            .acknowledged(Numbered, 8)
            .retain_on_reconnect(|_: &ConnectInfo, m: &Message| {
                assert_ne!(m.to_text().ok(), Some("t2"), "the retain hook panics");
                false
            });
    let ws = mock::sink(&script, builder);
    let (handle, mut incoming) = ws.spawn();
    let d1 = handle.deliver(Message::text("t1")).await.unwrap();
    let d2 = handle.deliver(Message::text("t2")).await.unwrap();
    let d3 = handle.deliver(Message::text("t3")).await.unwrap();
    eventually("flushed", || script.delivered_texts().len() == 3).await;
    script.hang_up(0);
    ends_with_panic(&handle, &mut incoming, "the retain hook panics").await;
    let e1 = outcome(d1).await.unwrap_err();
    assert!(matches!(e1.reason(), UndeliveredReason::Discarded));
    for (d, t) in [(d2, "t2"), (d3, "t3")] {
        let e = outcome(d).await.unwrap_err();
        assert_eq!(
            e.message(),
            Some(&Message::text(t)),
            "{t}: {:?}",
            e.reason()
        );
    }
}

#[tokio::test]
async fn a_panicking_close_policy_ends_the_task_and_the_connection() {
    let script = Script::new();
    let builder = quick().close_policy(ClosePolicy::from_fn(|code| {
        assert_ne!(code, Some(4000), "the close policy panics");
        CloseAction::Reconnect
    }));
    let ws = mock::sink(&script, builder);
    let (handle, mut incoming) = ws.spawn();
    handle.send(Message::text("a")).await.unwrap();
    eventually("a flushed", || script.delivered_texts() == ["a"]).await;
    script.push(
        0,
        Message::Close(Some(ws_reconnect::tungstenite::protocol::CloseFrame {
            code: 4000.into(),
            reason: "bye".into(),
        })),
    );
    ends_with_panic(&handle, &mut incoming, "the close policy panics").await;
    eventually("the sink is gone", || Arc::strong_count(&script) == 1).await;
}

#[tokio::test]
async fn a_panicking_headers_hook_ends_the_task_and_the_connection() {
    let (server, open) = counting_server(|c, ws| Box::pin(drain(c, ws))).await;
    let builder = quick_healthy().headers_with(|attempt: Attempt| async move {
        assert!(
            attempt.kind() != DialKind::Reconnect,
            "the headers hook panics"
        );
        Ok::<_, ws_reconnect::BoxError>(http::HeaderMap::new())
    });
    let (proxy, ws) = through_proxy(&server, builder).await;
    let (handle, mut incoming) = ws.spawn();
    eventually("connected", || open.load(Ordering::SeqCst) == 1).await;
    proxy.inject(Fault::Reset);
    ends_with_panic(&handle, &mut incoming, "the headers hook panics").await;
    eventually("no connection left", || open.load(Ordering::SeqCst) == 0).await;
}

#[tokio::test]
async fn a_panicking_id_hook_ends_the_task_on_the_send_that_triggers_it() {
    struct PanicOnId;
    impl Acknowledge for PanicOnId {
        fn id(&mut self, outbound: &Message) -> Option<u64> {
            assert_ne!(outbound.to_text().ok(), Some("boom"), "the id hook panics");
            Numbered.id(outbound)
        }
        fn acked(&mut self, inbound: &Message) -> Option<u64> {
            Numbered.acked(inbound)
        }
    }
    let script = Script::new();
    let ws = mock::sink(&script, quick().acknowledged(PanicOnId, 8));
    let (handle, mut incoming) = ws.spawn();
    let d = handle.deliver(Message::text("t1")).await.unwrap();
    eventually("t1 flushed", || script.delivered_texts() == ["t1"]).await;
    handle.send(Message::text("boom")).await.unwrap();
    ends_with_panic(&handle, &mut incoming, "the id hook panics").await;
    let e = outcome(d).await.unwrap_err();
    assert_eq!(e.message(), Some(&Message::text("t1")));
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

#[tokio::test]
async fn volatile_sends_through_the_handle_are_dropped_not_resent_after_a_reset() {
    let script = Script::new();
    // Every flush of the first connection fails from the 2nd on: its messages stay owed.
    script.fail_flush(1);
    // Flushes are numbered: no confirmation Pings in between; a flush confirms.
    let ws = mock::sink(
        &script,
        quick().close_timeout(CLOSE).confirm_by(ConfirmBy::Flush),
    );
    let (handle, _incoming) = ws.spawn();
    handle.send(Message::text("first")).await.unwrap();
    eventually("first flushed", || script.delivered_texts() == ["first"]).await;
    let v = handle
        .deliver(Outgoing::new(Message::text("volatile")).volatile())
        .await
        .unwrap();
    let p = handle.deliver(Message::text("plain")).await.unwrap();
    let e = outcome(v).await.unwrap_err();
    assert!(matches!(e.reason(), UndeliveredReason::ConnectionLost));
    assert_eq!(e.into_message(), Some(Message::text("volatile")));
    outcome(p).await.expect("resent and flushed");
    assert_eq!(script.delivered_texts(), ["first", "plain"]);
    assert_eq!(handle.stats().messages_dropped, 1);
    assert!(close(&handle).await.result.is_ok());
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

struct Sent {
    name: String,
    volatile: bool,
    delivery: Delivery,
    outcome: Option<Result<(), Undelivered>>,
}

/// A seeded random walk over the sink in acknowledged mode: tracked and untracked
/// messages, volatile or not, flushes, cumulative acks (late, repeated, ahead), and
/// connections ending. Checks the outbox counters, the window, in-order outcomes, that
/// volatile messages are never resent, and that every outcome resolves exactly once.
async fn random_walk(seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    const WINDOW: usize = 4;
    let script = Script::new();
    let mut ws = mock::sink(&script, quick().acknowledged(Numbered, WINDOW));
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    let mut sent: Vec<Sent> = Vec::new();
    let (mut next_id, mut next_u) = (1u64, 0u64);
    for step in 0..300 {
        let conn = script.connects() - 1;
        match rng.random_range(0..10) {
            0..=4 => {
                let tracked = rng.random_bool(0.6);
                let name = if tracked {
                    next_id += 1;
                    format!("t{}", next_id - 1)
                } else {
                    next_u += 1;
                    format!("u{}", next_u - 1)
                };
                let volatile = rng.random_bool(0.4);
                let mut item = Outgoing::new(Message::text(name.clone()));
                if volatile {
                    item = item.volatile();
                }
                match timeout(Duration::from_millis(20), ws.feed_outgoing(item)).await {
                    Ok(Ok(delivery)) => sent.push(Sent {
                        name,
                        volatile,
                        delivery,
                        outcome: None,
                    }),
                    Ok(Err(e)) => panic!("seed {seed} step {step}: feed failed: {e}"),
                    Err(_) => {
                        // Not taken (window full): the id is simply never used.
                    }
                }
            }
            5 => {
                let _ = timeout(Duration::from_millis(5), ws.flush()).await;
            }
            6..=7 => {
                // Up to an id the server has received (on any connection): an honest
                // server, acknowledging late, repeatedly or out of step.
                let got = script
                    .delivered
                    .lock()
                    .unwrap()
                    .iter()
                    .filter_map(|(_, t)| t.strip_prefix('t')?.parse::<u64>().ok())
                    .max()
                    .unwrap_or(0);
                let upto = rng.random_range(0..=got);
                script.push(conn, Message::text(format!("ack:{upto}")));
                let _ = timeout(Duration::from_millis(5), ws.next()).await;
            }
            8 => {
                if rng.random_bool(0.3) {
                    script.hang_up(conn);
                    let deadline = tokio::time::Instant::now() + BOUND;
                    while script.connects() == conn + 1 {
                        assert!(
                            tokio::time::Instant::now() < deadline,
                            "seed {seed}: no reconnection"
                        );
                        let _ = timeout(Duration::from_millis(5), ws.next()).await;
                        let _ = timeout(Duration::from_millis(5), ws.flush()).await;
                    }
                }
            }
            _ => {
                let _ = timeout(Duration::from_millis(2), ws.next()).await;
            }
        }
        // Counters.
        assert!(
            ws.unacknowledged_count() <= WINDOW,
            "seed {seed} step {step}: {} unacknowledged, window {WINDOW}",
            ws.unacknowledged_count()
        );
        assert!(ws.undelivered_count() >= ws.unacknowledged_count());
        // Outcomes resolve in order: the resolved ones form a prefix.
        let mut open_seen = false;
        for m in sent.iter_mut() {
            if m.outcome.is_none() {
                if let Some(o) = (&mut m.delivery).now_or_never() {
                    m.outcome = Some(o);
                }
            }
            match (&m.outcome, open_seen) {
                (None, _) => open_seen = true,
                (Some(_), true) => panic!(
                    "seed {seed} step {step}: {} resolved while an earlier outcome is open",
                    m.name
                ),
                (Some(_), false) => {}
            }
        }
        let open = sent.iter().filter(|m| m.outcome.is_none()).count();
        // Settled outcomes may wait behind an earlier open one; an empty outbox leaves
        // none open.
        assert!(
            ws.undelivered_count() <= open && (open == 0) == (ws.undelivered_count() == 0),
            "seed {seed} step {step}: undelivered_count {} vs {open} open outcomes",
            ws.undelivered_count()
        );
    }
    // Flush and acknowledge everything the server has, until settled.
    let conn = script.connects() - 1;
    let deadline = tokio::time::Instant::now() + BOUND;
    while ws.undelivered_count() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "seed {seed}: never settled"
        );
        let _ = timeout(Duration::from_millis(5), ws.flush()).await;
        let got = script
            .delivered
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, t)| t.strip_prefix('t')?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        script.push(conn, Message::text(format!("ack:{got}")));
        let _ = timeout(Duration::from_millis(5), ws.next()).await;
    }
    assert_eq!(ws.unacknowledged_count(), 0);
    let delivered = script.delivered.lock().unwrap().clone();
    let mut dropped = 0;
    for m in sent {
        let outcome = match m.outcome {
            Some(o) => o,
            None => outcome(m.delivery).await,
        };
        let conns: std::collections::BTreeSet<usize> = delivered
            .iter()
            .filter(|(_, t)| *t == m.name)
            .map(|(c, _)| *c)
            .collect();
        match outcome {
            Ok(()) => assert!(
                !conns.is_empty(),
                "seed {seed}: {} Ok, never flushed",
                m.name
            ),
            Err(e) => {
                assert!(m.volatile, "seed {seed}: {} failed: {e}", m.name);
                assert!(matches!(e.reason(), UndeliveredReason::ConnectionLost));
                assert_eq!(e.into_message(), Some(Message::text(m.name.clone())));
                dropped += 1;
            }
        }
        if m.volatile {
            assert!(
                conns.len() <= 1,
                "seed {seed}: volatile {} resent: {conns:?}",
                m.name
            );
        }
    }
    assert_eq!(ws.stats().messages_dropped, dropped, "seed {seed}");
}

#[tokio::test]
async fn random_walks_keep_outbox_counters_and_outcomes_consistent() {
    let seeds: u64 = env_or("PROBE_SEEDS", 6);
    for seed in 0..seeds {
        random_walk(seed).await;
    }
}

#[tokio::test]
async fn handle_outcomes_across_resets_resolve_once_in_order_and_ok_only_once_applied() {
    let (server, ledger) = serve_ledger(LedgerPlan {
        ack_every: 8,
        resets: Some((7, 60)),
    })
    .await;
    let ws = connect(quick_healthy().acknowledged(Numbered, 32), server.url()).await;
    let (handle, _incoming) = ws.spawn();
    let total = 600u64;
    let mut open: Vec<(u64, Delivery)> = Vec::new();
    let mut resolved_upto = 0u64;
    let check = |open: &mut Vec<(u64, Delivery)>, resolved_upto: &mut u64| {
        let mut still = Vec::new();
        let mut gap = false;
        for (id, mut d) in open.drain(..) {
            match (&mut d).now_or_never() {
                Some(r) => {
                    assert!(!gap, "t{id} resolved while an earlier outcome is open");
                    r.unwrap_or_else(|e| panic!("t{id}: {e}"));
                    assert!(
                        ledger.highest.load(Ordering::SeqCst) >= id,
                        "t{id} Ok before the server applied it"
                    );
                    *resolved_upto = id;
                }
                None => {
                    gap = true;
                    still.push((id, d));
                }
            }
        }
        *open = still;
    };
    for id in 1..=total {
        let d = timeout(BOUND, handle.deliver(Message::text(format!("t{id}"))))
            .await
            .expect("deliver hung")
            .unwrap();
        open.push((id, d));
        if id % 16 == 0 {
            check(&mut open, &mut resolved_upto);
        }
    }
    let deadline = tokio::time::Instant::now() + BOUND;
    while !open.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "outcomes never resolved"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        check(&mut open, &mut resolved_upto);
    }
    assert_eq!(resolved_upto, total);
    assert!(
        ledger.resets.load(Ordering::SeqCst) > 0,
        "no reset happened"
    );
    assert!(ledger.gaps.lock().unwrap().is_empty());
    assert!(close(&handle).await.result.is_ok());
}
