//! Per-message delivery outcomes, volatile messages and the `retain_on_reconnect` hook,
//! on the sink itself (the handle's side is in `tests/handle`).
//!
//! Every await that could hang is bounded by [`BOUND`](support::BOUND); no test asserts
//! how long something took.

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, SinkExt};
use support::mock::{self, Script};
use support::*;
use tokio::time::timeout;
use ws_reconnect::testing::Fault;
use ws_reconnect::{
    ConfirmBy, ConnectInfo, Delivery, Error, Message, Outgoing, ReconnectingSink, Undelivered,
    UndeliveredReason,
};

async fn outcome(delivery: Delivery) -> Result<(), Undelivered> {
    timeout(BOUND, delivery)
        .await
        .expect("the outcome never resolved")
}

fn text_of(e: &Undelivered) -> String {
    e.message()
        .expect("the message is handed back")
        .to_text()
        .unwrap()
        .to_owned()
}

/// Flushes what was fed to the socket; in acknowledged mode `flush()` then waits for
/// acknowledgements that may never come, so it is cut short.
async fn push_out(ws: &mut ReconnectingSink) {
    let _ = timeout(Duration::from_millis(100), ws.flush()).await;
}

/// A server that records and never acknowledges: acknowledged-mode messages stay owed.
async fn silent_ack_server() -> (Server, Log) {
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, recording(log.clone())).await;
    (server, log)
}

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
async fn a_volatile_message_is_dropped_with_its_connection_and_the_rest_is_resent() {
    // Mock connections: the first flush fails, killing connection 0 with both messages
    // written but not flushed.
    let script = Script::new();
    script.fail_flush(1); // flush 0 is dial()'s
    let mut ws = mock::sink(&script, quick_healthy());
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    let volatile = ws
        .feed_outgoing(Outgoing::new(Message::text("cursor")).volatile())
        .await
        .unwrap();
    let plain = ws.feed_outgoing(Message::text("order")).await.unwrap();
    timeout(BOUND, ws.flush()).await.unwrap().unwrap();
    let dropped = outcome(volatile).await.unwrap_err();
    assert!(matches!(
        dropped.reason(),
        UndeliveredReason::ConnectionLost
    ));
    assert_eq!(text_of(&dropped), "cursor");
    outcome(plain).await.expect("resent and flushed");
    assert_eq!(script.delivered_texts(), ["order"]);
    assert_eq!(ws.stats().messages_dropped, 1);
    assert_eq!(ws.stats().messages_resent, 1);
}

#[tokio::test]
async fn a_volatile_message_flushed_before_the_drop_is_delivered() {
    let script = Script::new();
    script.fail_flush(2);
    // Flushes are numbered: no confirmation Pings in between; a flush confirms.
    let mut ws = mock::sink(&script, quick_healthy().confirm_by(ConfirmBy::Flush));
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    let first = ws
        .feed_outgoing(Outgoing::new(Message::text("v1")).volatile())
        .await
        .unwrap();
    timeout(BOUND, ws.flush()).await.unwrap().unwrap();
    outcome(first).await.expect("flushed on its connection");
    // Volatile without asking for the outcome: sent as a plain Message would be.
    let second = ws
        .feed_outgoing(Outgoing::new(Message::text("v2")).volatile())
        .await
        .unwrap();
    timeout(BOUND, ws.flush()).await.unwrap().unwrap();
    assert!(
        outcome(second).await.is_err(),
        "flush 2 failed: v2 is dropped"
    );
    assert_eq!(script.delivered_texts(), ["v1"]);
    assert_eq!(ws.stats().messages_dropped, 1);
}

#[tokio::test]
async fn acknowledged_volatile_messages_are_not_resent_after_a_reset() {
    let (server, log) = silent_ack_server().await;
    let (proxy, mut ws) = through_proxy(&server, quick_healthy().acknowledged(Numbered, 16)).await;
    let volatile = ws
        .feed_outgoing(Outgoing::new(Message::text("t1")).volatile())
        .await
        .unwrap();
    let plain = ws.feed_outgoing(Message::text("t2")).await.unwrap();
    push_out(&mut ws).await;
    eventually("the server has t1 and t2", || log.len() == 2).await;
    proxy.inject(Fault::Reset);
    // Reading lets the sink see the reset and reconnect; t2 is resent, t1 is not.
    read_until(&mut ws, "t2 resent", |ws| ws.stats().messages_resent >= 1).await;
    eventually("t2 on the new connection", || log.len() == 3).await;
    let entries = log.entries();
    assert_eq!(entries[2], (1, "t2".to_owned()), "{entries:?}");
    let dropped = outcome(volatile).await.unwrap_err();
    assert!(matches!(
        dropped.reason(),
        UndeliveredReason::ConnectionLost
    ));
    assert_eq!(ws.stats().messages_dropped, 1);
    let mut plain = plain;
    assert!((&mut plain).now_or_never().is_none(), "t2 is still owed");
}

#[tokio::test]
async fn retain_on_reconnect_decides_what_is_resent() {
    let (server, log) = silent_ack_server().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_by_hook = seen.clone();
    let builder = quick_healthy()
        .acknowledged(Numbered, 16)
        .retain_on_reconnect(move |info: &ConnectInfo, m: &Message| {
            seen_by_hook
                .lock()
                .unwrap()
                .push((info.reconnect, m.to_text().unwrap().to_owned()));
            m.to_text().unwrap() != "t2"
        });
    let (proxy, mut ws) = through_proxy(&server, builder).await;
    let mut deliveries = Vec::new();
    for t in ["t1", "t2", "t3"] {
        deliveries.push(ws.feed_outgoing(Message::text(t)).await.unwrap());
    }
    push_out(&mut ws).await;
    eventually("the server has all three", || log.len() == 3).await;
    proxy.inject(Fault::Reset);
    read_until(&mut ws, "resent", |ws| ws.stats().messages_resent >= 2).await;
    eventually("two resent", || log.len() == 5).await;
    assert_eq!(&log.texts()[3..], ["t1", "t3"]);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (true, "t1".to_owned()),
            (true, "t2".to_owned()),
            (true, "t3".to_owned())
        ]
    );
    assert_eq!(ws.stats().messages_dropped, 1);
    assert_eq!(ws.undelivered_count(), 2);
    // Outcomes resolve in order: t2's failure waits for t1, which is still owed.
    let mut deliveries = deliveries.into_iter();
    let (t1, mut t2) = (deliveries.next().unwrap(), deliveries.next().unwrap());
    assert!((&mut t2).now_or_never().is_none(), "held behind t1");
    assert_eq!(ws.take_undelivered().len(), 2);
    assert!(matches!(
        outcome(t1).await.unwrap_err().reason(),
        UndeliveredReason::Taken
    ));
    let discarded = outcome(t2).await.unwrap_err();
    assert!(matches!(discarded.reason(), UndeliveredReason::Discarded));
    assert_eq!(text_of(&discarded), "t2");
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
