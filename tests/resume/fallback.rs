//! A resume server replaced on its address by one without resume mode, with
//! `required(false)`: each half is told once where resume mode ended, what was received
//! before is read as it was sent, what was kept goes to the new server unframed, and
//! plain mode carries on. (With resume mode required, a refusal is an error, as on the
//! first dial: `basics.rs`.)

use std::time::Duration;

use futures::SinkExt;
use tokio::time::timeout;
use ws_reconnect::server::ServerConfig;
use ws_reconnect::testing::{Fault, FaultProxy};
use ws_reconnect::{Error, Message, ResumeConfig, ResumingSink};

use crate::harness::{client, next_item, App, Harness};
use crate::support::{echo, eventually, serve_on, Reply, Server, BOUND};

/// A resuming client (resume mode not required) of a server that sends `s1`..`s3` when
/// the session starts, through a proxy; `c1` sent and acknowledged, and the three
/// received into the sink, not yet read.
async fn resumed_then_frozen() -> (ResumingSink, FaultProxy, Harness) {
    let app = App::Numbered {
        send: 3,
        pace: None,
    };
    let harness = Harness::start(ServerConfig::default(), app).await;
    let proxy = FaultProxy::start(harness.addr).await.unwrap();
    let url = format!("ws://{}/", proxy.addr());
    let mut ws = client(&url, ResumeConfig::default().required(false)).await;
    ws.send(Message::text("c1")).await.unwrap();
    let deadline = tokio::time::Instant::now() + BOUND;
    // A flush reads what arrives into the sink's inbox.
    while ws.get_ref().stats().messages_received < 3 {
        assert!(tokio::time::Instant::now() < deadline, "s1..s3 never came");
        let _ = timeout(Duration::from_millis(10), ws.flush()).await;
    }
    // Two more, never acknowledged: the path freezes under them.
    proxy.inject(Fault::Freeze);
    ws.feed(Message::text("c2")).await.unwrap();
    ws.feed(Message::text("c3")).await.unwrap();
    assert!(timeout(Duration::from_millis(100), ws.flush())
        .await
        .is_err());
    assert_eq!(ws.unacknowledged_count(), 2);
    (ws, proxy, harness)
}

/// The proxy's connections reset and the proxy gone; a plain echo server on its address.
async fn replace_with_plain(proxy: FaultProxy) -> Server {
    let addr = proxy.addr();
    proxy.inject(Fault::Reset);
    drop(proxy);
    // The proxy's listener closes once its aborted task is dropped.
    eventually("the proxy's address is free", || {
        std::net::TcpListener::bind(addr).is_ok()
    })
    .await;
    serve_on(addr, |_| Reply::Upgrade, echo).await
}

fn text(item: Option<Result<Message, Error>>) -> String {
    match item {
        Some(Ok(Message::Text(text))) => text.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

#[tokio::test]
async fn a_writer_that_meets_a_plain_server_falls_back_and_the_reader_is_told_in_place() {
    let (mut ws, proxy, _harness) = resumed_then_frozen().await;
    let _plain = replace_with_plain(proxy).await;

    let flushed = timeout(BOUND, ws.flush()).await.expect("flush hung");
    assert!(
        matches!(flushed, Err(Error::ResumeUnsupported)),
        "{flushed:?}"
    );
    assert!(!ws.is_resuming());
    assert_eq!(
        ws.unacknowledged_count(),
        0,
        "nothing waits for an acknowledgement"
    );
    // The writer was told; it carries on in plain mode.
    timeout(BOUND, ws.flush())
        .await
        .expect("a plain flush hung")
        .unwrap();

    // The session's messages as the server's application sent them, then the switch,
    // then the plain server's echo of what was kept: no frame of the protocol's.
    for n in 1..=3 {
        assert_eq!(text(next_item(&mut ws).await), format!("s{n}"));
    }
    let switch = next_item(&mut ws).await;
    assert!(
        matches!(switch, Some(Err(Error::ResumeUnsupported))),
        "{switch:?}"
    );
    assert_eq!(text(next_item(&mut ws).await), "c2");
    assert_eq!(text(next_item(&mut ws).await), "c3");
    ws.send(Message::text("plain")).await.unwrap();
    assert_eq!(text(next_item(&mut ws).await), "plain");
}

#[tokio::test]
async fn a_reader_that_meets_a_plain_server_falls_back_and_the_writer_is_told_once() {
    let (mut ws, proxy, _harness) = resumed_then_frozen().await;
    for n in 1..=3 {
        assert_eq!(text(next_item(&mut ws).await), format!("s{n}"));
    }
    let _plain = replace_with_plain(proxy).await;

    let switch = next_item(&mut ws).await;
    assert!(
        matches!(switch, Some(Err(Error::ResumeUnsupported))),
        "{switch:?}"
    );
    assert!(!ws.is_resuming());
    assert_eq!(text(next_item(&mut ws).await), "c2");
    assert_eq!(text(next_item(&mut ws).await), "c3");

    let told = timeout(BOUND, ws.send(Message::text("d"))).await.unwrap();
    assert!(matches!(told, Err(Error::ResumeUnsupported)), "{told:?}");
    timeout(BOUND, ws.send(Message::text("d")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(text(next_item(&mut ws).await), "d");
}

#[tokio::test]
async fn with_resume_required_a_plain_server_mid_session_is_an_error_and_the_messages_stay() {
    let harness = Harness::start(ServerConfig::default(), App::Echo).await;
    let proxy = FaultProxy::start(harness.addr).await.unwrap();
    let mut ws = client(&format!("ws://{}/", proxy.addr()), ResumeConfig::default()).await;
    ws.send(Message::text("a")).await.unwrap();
    assert_eq!(text(next_item(&mut ws).await), "a");
    proxy.inject(Fault::Freeze);
    ws.feed(Message::text("b")).await.unwrap();
    let _plain = replace_with_plain(proxy).await;

    let flushed = timeout(BOUND, ws.flush()).await.expect("flush hung");
    assert!(
        matches!(flushed, Err(Error::ResumeUnsupported)),
        "{flushed:?}"
    );
    assert!(ws.is_resuming());
    let item = next_item(&mut ws).await;
    assert!(
        matches!(item, Some(Err(Error::ResumeUnsupported))),
        "{item:?}"
    );
    assert!(next_item(&mut ws).await.is_none(), "failed for good");
    assert_eq!(ws.take_undelivered(), [Message::text("b")]);
}

#[tokio::test]
async fn dial_after_the_server_was_replaced_connects_in_plain_mode() {
    let (mut ws, proxy, _harness) = resumed_then_frozen().await;
    // One more, with an outcome: the refusal ends the run as any permanent refusal
    // does, and hands it back.
    let outcome = ws.feed_outgoing(Message::text("c4")).await.unwrap();
    let _plain = replace_with_plain(proxy).await;

    timeout(BOUND, ws.dial())
        .await
        .expect("dial hung")
        .expect("dial in plain mode");
    assert!(!ws.is_resuming());
    let undelivered = timeout(BOUND, outcome).await.unwrap().unwrap_err();
    assert_eq!(undelivered.message(), Some(&Message::text("c4")));
    for n in 1..=3 {
        assert_eq!(text(next_item(&mut ws).await), format!("s{n}"));
    }
    let switch = next_item(&mut ws).await;
    assert!(
        matches!(switch, Some(Err(Error::ResumeUnsupported))),
        "{switch:?}"
    );
    assert_eq!(text(next_item(&mut ws).await), "c2");
    assert_eq!(text(next_item(&mut ws).await), "c3");
}
