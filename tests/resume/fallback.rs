//! A resume server replaced on its address by one without resume mode, with
//! `required(false)`: each half is told once where resume mode ended, what was received
//! before is read as it was sent, what was kept goes to the new server unframed, and
//! plain mode carries on. (With resume mode required, a refusal is an error, as on the
//! first dial: `basics.rs`.)

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::server::ServerConfig;
use ws_reconnect::testing::{Fault, FaultProxy};
use ws_reconnect::{Error, Message, ResumeConfig, ResumingSink, UndeliveredReason};

use crate::harness::{client, next_item, quick, App, Harness};
use crate::support::{echo, eventually, serve_on, Reply, Server, Ws, BOUND};

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
    // A flush reads what arrives into the sink's inbox.
    timeout(BOUND, async {
        while ws.get_ref().stats().messages_received < 3 {
            let _ = timeout(Duration::from_millis(10), ws.flush()).await;
        }
    })
    .await
    .expect("s1..s3 never came");
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

/// Reads the session's `s1`..`s3`, as the server's application sent them.
async fn read_session(ws: &mut ResumingSink) {
    for n in 1..=3 {
        assert_eq!(text(next_item(ws).await), format!("s{n}"));
    }
}

/// Reads the item that says resume mode ended here.
async fn read_switch(ws: &mut ResumingSink) {
    let switch = next_item(ws).await;
    assert!(
        matches!(switch, Some(Err(Error::ResumeUnsupported))),
        "{switch:?}"
    );
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
    read_session(&mut ws).await;
    read_switch(&mut ws).await;
    assert_eq!(text(next_item(&mut ws).await), "c2");
    assert_eq!(text(next_item(&mut ws).await), "c3");
    ws.send(Message::text("plain")).await.unwrap();
    assert_eq!(text(next_item(&mut ws).await), "plain");
}

#[tokio::test]
async fn a_reader_that_meets_a_plain_server_falls_back_and_the_writer_is_told_once() {
    let (mut ws, proxy, _harness) = resumed_then_frozen().await;
    read_session(&mut ws).await;
    let _plain = replace_with_plain(proxy).await;

    read_switch(&mut ws).await;
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
async fn dial_after_the_server_was_replaced_says_so_then_connects_in_plain_mode() {
    let (mut ws, proxy, _harness) = resumed_then_frozen().await;
    // One more, with an outcome: the refusal ends the run as any permanent refusal
    // does, and hands it back.
    let outcome = ws.feed_outgoing(Message::text("c4")).await.unwrap();
    let _plain = replace_with_plain(proxy).await;

    let dialed = timeout(BOUND, ws.dial()).await.expect("dial hung");
    assert!(
        matches!(dialed, Err(Error::ResumeUnsupported)),
        "{dialed:?}"
    );
    assert!(!ws.is_resuming());
    timeout(BOUND, ws.dial())
        .await
        .expect("dial hung")
        .expect("dial in plain mode");
    let undelivered = timeout(BOUND, outcome).await.unwrap().unwrap_err();
    assert_eq!(undelivered.message(), Some(&Message::text("c4")));
    assert!(
        matches!(
            undelivered.reason(),
            UndeliveredReason::GaveUp(Error::ResumeUnsupported)
        ),
        "{undelivered}"
    );
    read_session(&mut ws).await;
    read_switch(&mut ws).await;
    assert_eq!(text(next_item(&mut ws).await), "c2");
    assert_eq!(text(next_item(&mut ws).await), "c3");
    ws.send(Message::text("plain")).await.unwrap();
    assert_eq!(text(next_item(&mut ws).await), "plain");
}

#[tokio::test]
async fn a_close_that_meets_a_plain_server_stops_with_the_messages_kept() {
    let (mut ws, proxy, _harness) = resumed_then_frozen().await;
    let plain = replace_with_plain(proxy).await;

    let closed = timeout(BOUND, ws.close()).await.expect("close hung");
    assert!(
        matches!(closed, Err(Error::ResumeUnsupported)),
        "{closed:?}"
    );
    assert!(ws.is_resuming(), "no switch on the way out");
    // The sink does not dial again behind the application's back: the refused attempt
    // is the plain server's only upgrade.
    let upgrades = plain.upgrades();
    // Nor does a read after it: the reader takes what came before, is told, and its
    // stream ends.
    read_session(&mut ws).await;
    let item = next_item(&mut ws).await;
    assert!(
        matches!(item, Some(Err(Error::ResumeUnsupported))),
        "{item:?}"
    );
    assert!(next_item(&mut ws).await.is_none(), "stopped");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(plain.upgrades(), upgrades, "no connection after close()");
    assert!(ws.is_resuming());
    assert!(!ws.get_ref().is_connected());
    assert_eq!(
        ws.take_undelivered(),
        [Message::text("c2"), Message::text("c3")]
    );
}

#[tokio::test]
async fn a_first_dial_cancelled_before_the_refusal_falls_back_without_a_word() {
    // A plain server that answers the upgrade late: the dial is dropped before it does.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    echo(0, ws).await;
                }
            });
        }
    });
    let mut ws = quick()
        .resume(ResumeConfig::default().required(false))
        .build(format!("ws://{addr}/"))
        .unwrap();
    assert!(timeout(Duration::from_millis(20), ws.dial()).await.is_err());

    // The next operation meets the refusal: no session was ever open, nothing to tell.
    timeout(BOUND, ws.send(Message::text("x")))
        .await
        .expect("send hung")
        .expect("plain mode, silently");
    assert!(!ws.is_resuming());
    assert_eq!(text(next_item(&mut ws).await), "x");
}

#[tokio::test]
async fn after_the_switch_a_reader_that_falls_behind_is_met_with_backpressure() {
    let app = App::Numbered {
        send: 0,
        pace: None,
    };
    let harness = Harness::start(ServerConfig::default(), app).await;
    let proxy = FaultProxy::start(harness.addr).await.unwrap();
    let url = format!("ws://{}/", proxy.addr());
    let config = ResumeConfig::default()
        .required(false)
        .recv_window_frames(16);
    let mut ws = client(&url, config).await;
    ws.send(Message::text("c1")).await.unwrap();
    // A plain server that sends 1,000 messages at once to every connection.
    let addr = proxy.addr();
    proxy.inject(Fault::Reset);
    drop(proxy);
    eventually("the proxy's address is free", || {
        std::net::TcpListener::bind(addr).is_ok()
    })
    .await;
    let _plain = serve_on(
        addr,
        |_| Reply::Upgrade,
        |_, mut ws: Ws| async move {
            for n in 0..1000 {
                if ws.feed(Message::text(format!("p{n}"))).await.is_err() {
                    return;
                }
            }
            let _ = ws.flush().await;
            while let Some(Ok(_)) = ws.next().await {}
        },
    )
    .await;

    // The writer meets the switch (its message is not taken), then goes on while nobody
    // reads; then the reader reads it all.
    let told = timeout(BOUND, ws.send(Message::text("w")))
        .await
        .expect("send hung");
    assert!(matches!(told, Err(Error::ResumeUnsupported)), "{told:?}");
    for i in 0..20 {
        timeout(BOUND, ws.send(Message::text(format!("w{i}"))))
            .await
            .expect("send hung")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    read_switch(&mut ws).await;
    for n in 0..1000 {
        assert_eq!(text(next_item(&mut ws).await), format!("p{n}"));
    }
}
