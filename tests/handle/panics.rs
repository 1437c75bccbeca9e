//! A panic in user code running in the task (the `on_connect` hook, `Acknowledge`, the
//! retain hook, the close policy, the headers hook) ends the task and its connection,
//! and every message the task owed comes back: through its outcome or in the
//! `Shutdown`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio::time::timeout;
use ws_reconnect::testing::Fault;
use ws_reconnect::{
    Acknowledge, Attempt, CloseAction, ClosePolicy, ConnectInfo, ConnectionState, DialKind, Error,
    Handle, Message, UndeliveredReason,
};

use crate::support::mock::{self, Script};
use crate::support::*;
use crate::{close, outcome, CLOSE};

#[tokio::test]
async fn a_panic_in_a_hook_ends_the_task_and_the_connection_and_hands_back_what_was_owed() {
    // Acknowledged mode against a server that never acknowledges: t1 and t2 stay owed
    // when the hook panics on the reconnection.
    let log = Log::default();
    let (server, open) = counting_server(recording(log.clone())).await;
    let builder =
        quick_healthy()
            .acknowledged(Numbered, 16)
            .on_connect_with(|info: &ConnectInfo| {
                assert!(!info.reconnect, "the hook fails on reconnection");
                Vec::new()
            });
    let (proxy, ws) = through_proxy(&server, builder).await;
    let (handle, mut incoming) = ws.spawn();
    handle.send(Message::text("t1")).await.unwrap();
    let delivery = handle.deliver(Message::text("t2")).await.unwrap();
    eventually("both sent", || log.len() == 2).await;
    proxy.inject(Fault::Reset);
    let end = timeout(BOUND, async { while incoming.next().await.is_some() {} }).await;
    assert!(end.is_ok(), "the stream ends with the task");
    let shutdown = timeout(BOUND, handle.close()).await.expect("close hung");
    assert!(
        matches!(&shutdown.result, Err(Error::TaskPanicked { message }) if message.contains("fails on reconnection")),
        "{:?}",
        shutdown.result
    );
    assert_eq!(shutdown.undelivered, [Message::text("t1")]);
    let failed = timeout(BOUND, delivery).await.unwrap().unwrap_err();
    assert!(matches!(failed.reason(), UndeliveredReason::Dropped));
    assert_eq!(failed.into_message(), Some(Message::text("t2")));
    assert!(handle.is_finished());
    eventually("no connection left open", || {
        open.load(Ordering::SeqCst) == 0
    })
    .await;
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
