//! What is not resent after a connection ends: volatile messages are dropped with the
//! connection they belong to (their outcomes fail with `ConnectionLost`, their window
//! slots free), the rest is resent; `retain_on_reconnect` decides for each owed message.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{FutureExt, SinkExt};
use tokio::time::timeout;
use ws_reconnect::testing::Fault;
use ws_reconnect::{ConfirmBy, ConnectInfo, Message, Outgoing, UndeliveredReason};

use crate::support::mock::{self, Script};
use crate::support::*;
use crate::{close, outcome, push_out, silent_ack_server, text_of, CLOSE};

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
