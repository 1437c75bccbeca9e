//! Per-message outcomes, on the sink and through the handle: each resolves exactly once,
//! in the order the messages were accepted, `Ok` only once the message was delivered
//! (flushed and confirmed; acknowledged, in acknowledged mode), otherwise failed with the
//! message handed back (close, a failure for good, `take_undelivered`, the sink dropped).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::testing::Fault;
use ws_reconnect::{
    Delivery, Error, Message, Outgoing, ReconnectingSink, Undelivered, UndeliveredReason,
};

use crate::support::mock::{self, Script};
use crate::support::*;
use crate::{close, is_resolved, outcome, push_out, silent_ack_server, text_of, CLOSE};

#[tokio::test]
async fn plain_outcomes_resolve_ok_once_flushed_in_order() {
    let (server, log) = recording_server().await;
    let mut ws = connect(quick(), server.url()).await;
    let mut deliveries = Vec::new();
    for i in 0..200 {
        deliveries.push(
            ws.feed_outgoing(Message::text(format!("m{i}")))
                .await
                .unwrap(),
        );
    }
    timeout(BOUND, ws.flush()).await.unwrap().unwrap();
    for d in deliveries {
        outcome(d).await.expect("flushed");
    }
    eventually("the server has all 200", || log.len() == 200).await;
    assert_eq!(ws.undelivered_count(), 0);
}

#[tokio::test]
async fn a_dropped_delivery_does_not_cancel_its_message() {
    let (server, log) = recording_server().await;
    let mut ws = connect(quick(), server.url()).await;
    drop(ws.feed_outgoing(Message::text("kept")).await.unwrap());
    timeout(BOUND, ws.flush()).await.unwrap().unwrap();
    eventually("the server got it", || log.texts() == ["kept"]).await;
}

#[tokio::test]
async fn acknowledged_outcomes_wait_for_the_acknowledgement() {
    // The server acknowledges t1 only when t2 arrives.
    let log = Log::default();
    let respond = |_: usize, _: usize, t: &str| match t {
        "t2" => Respond::Send("ack:1".into()),
        _ => Respond::Nothing,
    };
    let server = serve(|_| Reply::Upgrade, responding(log.clone(), respond)).await;
    let mut ws = connect(quick().acknowledged(Numbered, 16), server.url()).await;
    let first = ws.feed_outgoing(Message::text("t1")).await.unwrap();
    // Flushed but not acknowledged: flush() waits, and so does the outcome.
    assert!(timeout(Duration::from_millis(200), ws.flush())
        .await
        .is_err());
    eventually("the server got t1", || log.texts() == ["t1"]).await;
    let mut first = first;
    assert!(
        (&mut first).now_or_never().is_none(),
        "not acknowledged yet"
    );
    let second = ws.feed_outgoing(Message::text("t2")).await.unwrap();
    // Reading brings the acknowledgement in.
    read_until(&mut ws, "t1 acknowledged", |ws| {
        ws.unacknowledged_count() == 1
    })
    .await;
    outcome(first).await.expect("acknowledged");
    let mut second = second;
    assert!(
        (&mut second).now_or_never().is_none(),
        "t2 is not acknowledged"
    );
}

#[tokio::test]
async fn across_resets_every_outcome_resolves_and_none_is_ok_before_the_server_had_it() {
    // Acknowledged mode through the fault proxy: the server resets connections at random
    // and the proxy resets them too; each Ok must be for a message the server applied.
    let (server, ledger) = serve_ledger(LedgerPlan {
        ack_every: 8,
        resets: Some((7, 300)),
    })
    .await;
    let (proxy, ws) = through_proxy(&server, quick_healthy().acknowledged(Numbered, 64)).await;
    let (handle, incoming) = ws.spawn();
    drop(incoming);
    const N: u64 = 3_000;
    let checked = Arc::new(Mutex::new(Vec::new()));
    let mut waits = Vec::new();
    for id in 1..=N {
        let delivery = handle.deliver(Message::text(id.to_string())).await.unwrap();
        let (ledger, checked) = (ledger.clone(), checked.clone());
        waits.push(tokio::spawn(async move {
            let result = outcome(delivery).await;
            // The server applied everything up to `highest` before acknowledging it.
            let applied = ledger.highest.load(Ordering::SeqCst);
            checked.lock().unwrap().push((id, result.is_ok(), applied));
        }));
        if id % 1_000 == 0 {
            proxy.inject(Fault::Reset);
        }
    }
    for w in waits {
        join(w, "an outcome").await;
    }
    let checked = std::mem::take(&mut *checked.lock().unwrap());
    assert_eq!(
        checked.len() as u64,
        N,
        "every outcome resolved exactly once"
    );
    for &(id, ok, applied) in checked.iter() {
        assert!(ok, "message {id} failed; nothing gave up on it");
        assert!(
            applied >= id,
            "message {id} Ok while the server had applied only {applied}"
        );
    }
    assert_eq!(ledger.highest.load(Ordering::SeqCst), N);
    assert!(
        ledger.resets.load(Ordering::SeqCst) + proxy.stats().resets as usize > 0,
        "the test reset no connection"
    );
    assert!(handle.close().await.result.is_ok());
}

#[tokio::test]
async fn close_that_cannot_deliver_hands_the_messages_back_through_their_outcomes() {
    let (server, _log) = silent_ack_server().await;
    let builder = quick()
        .acknowledged(Numbered, 16)
        .close_timeout(Duration::from_millis(200));
    let mut ws = connect(builder, server.url()).await;
    let with_outcome = ws.feed_outgoing(Message::text("t1")).await.unwrap();
    ws.feed(Message::text("t2")).await.unwrap();
    let closed = timeout(BOUND, ws.close()).await.unwrap();
    assert!(
        matches!(closed, Err(Error::CloseIncomplete { undelivered: 2, .. })),
        "{closed:?}"
    );
    let failed = outcome(with_outcome).await.unwrap_err();
    assert!(matches!(failed.reason(), UndeliveredReason::Closed));
    assert_eq!(text_of(&failed), "t1");
    // The message without an outcome stays for take_undelivered, the other does not.
    assert_eq!(ws.take_undelivered(), [Message::text("t2")]);
}

#[tokio::test]
async fn a_permanent_failure_hands_the_messages_back() {
    let (server, _log) = silent_ack_server().await;
    let builder = quick()
        .acknowledged(Numbered, 16)
        .max_elapsed_time(Some(Duration::from_millis(300)));
    let mut ws = connect(builder, server.url()).await;
    let delivery = ws.feed_outgoing(Message::text("t1")).await.unwrap();
    server.stop().await;
    let error = timeout(BOUND, ws.flush())
        .await
        .expect("flush hung")
        .unwrap_err();
    assert!(matches!(error, Error::GaveUp { .. }), "{error:?}");
    let failed = outcome(delivery).await.unwrap_err();
    assert!(
        matches!(
            failed.reason(),
            UndeliveredReason::GaveUp(Error::GaveUp { .. })
        ),
        "{failed:?}"
    );
    assert_eq!(text_of(&failed), "t1");
    assert_eq!(ws.undelivered_count(), 0);
}

#[tokio::test]
async fn take_undelivered_and_dropping_the_sink_settle_the_outcomes() {
    let (server, _log) = silent_ack_server().await;
    let mut ws = connect(quick().acknowledged(Numbered, 16), server.url()).await;
    let taken = ws.feed_outgoing(Message::text("t1")).await.unwrap();
    assert_eq!(ws.take_undelivered(), [Message::text("t1")]);
    let e = outcome(taken).await.unwrap_err();
    assert!(matches!(e.reason(), UndeliveredReason::Taken));
    assert_eq!(text_of(&e), "t1");

    let dropped = ws.feed_outgoing(Message::text("t2")).await.unwrap();
    drop(ws);
    let e = outcome(dropped).await.unwrap_err();
    assert!(matches!(e.reason(), UndeliveredReason::Dropped));
    assert_eq!(text_of(&e), "t2");
}

#[tokio::test]
async fn a_message_the_sink_does_not_take_gets_no_outcome() {
    let mut ws = ReconnectingSink::builder()
        .build("ws://127.0.0.1:9/")
        .unwrap();
    assert!(matches!(
        ws.start_send_outgoing(Message::text("early")),
        Err(Error::NotDialed)
    ));
}

#[tokio::test]
async fn outcomes_resolve_in_order_when_untracked_messages_flush_first() {
    // Acknowledged mode with an untracked message behind a tracked one: the untracked
    // one is delivered at the flush, but its outcome waits for the tracked one's.
    let (server, log) = silent_ack_server().await;
    let mut ws = connect(quick().acknowledged(Numbered, 16), server.url()).await;
    let tracked = ws.feed_outgoing(Message::text("t1")).await.unwrap();
    let untracked = ws.feed_outgoing(Message::text("note")).await.unwrap();
    push_out(&mut ws).await;
    eventually("both sent", || log.len() == 2).await;
    let mut untracked = untracked;
    assert!(
        (&mut untracked).now_or_never().is_none(),
        "held behind t1's outcome"
    );
    let taken = ws.take_undelivered();
    assert_eq!(taken, [Message::text("t1")]);
    assert!(outcome(tracked).await.is_err());
    outcome(untracked).await.expect("flushed");
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
    let seeds: u64 = env_or("WS_RECONNECT_WALK_SEEDS", 6);
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
