//! A round trip, the subprotocol negotiation, and broken frames either way.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::server::{negotiate, AttachError, Server, ServerConfig};
use ws_reconnect::{Error, Message, ResumeConfig};

use crate::harness::{client, next_item, quick, raw, App, Harness};
use crate::support::{echo, eventually, serve, Reply, BOUND};

/// A WELCOME as a server sends it to a new client: new session `07…07`, epoch 1,
/// `recv_next` 1, a window of 1024 frames and 4 MiB.
fn welcome() -> Message {
    let mut welcome = vec![0x04, 1];
    welcome.extend_from_slice(&[7; 16]);
    welcome.extend_from_slice(&1u64.to_be_bytes());
    welcome.extend_from_slice(&[0x01, 0x80, 0x08, 0x80, 0x80, 0x80, 0x02]);
    Message::binary(welcome)
}

#[tokio::test]
async fn messages_go_both_ways_and_close_ends_the_session() {
    let harness = Harness::start(ServerConfig::default(), App::Echo).await;
    let mut ws = client(&harness.url(), ResumeConfig::default()).await;
    assert!(ws.is_resuming());
    for i in 0..200 {
        ws.feed(Message::text(format!("m{i}"))).await.unwrap();
    }
    ws.flush().await.unwrap();
    assert_eq!(
        ws.unacknowledged_count(),
        0,
        "a flush waits for the server's acknowledgement"
    );
    for i in 0..200 {
        let item = next_item(&mut ws).await;
        assert_eq!(item.unwrap().unwrap(), Message::text(format!("m{i}")));
    }
    let binary = Message::binary(vec![0u8, 1, 2, 255]);
    ws.send(binary.clone()).await.unwrap();
    assert_eq!(next_item(&mut ws).await.unwrap().unwrap(), binary);
    assert!(ws.session().is_some());
    assert_eq!(ws.resume_stats().sessions, 1);
    timeout(BOUND, ws.close()).await.unwrap().unwrap();
    // BYE ended the session: the application's stream ends, and the server forgets it.
    eventually("the session's stream ends", || {
        harness.seen.ended.load(Ordering::SeqCst) == 1
    })
    .await;
    eventually("the session is gone", || {
        harness.server.session_count() == 0
    })
    .await;
}

#[tokio::test]
async fn a_delivery_resolves_when_the_server_has_the_message() {
    let harness = Harness::start(ServerConfig::default(), App::Echo).await;
    let mut ws = client(&harness.url(), ResumeConfig::default()).await;
    let delivery = ws.feed_outgoing(Message::text("order 7")).await.unwrap();
    ws.flush().await.unwrap();
    timeout(BOUND, delivery).await.unwrap().unwrap();
    assert_eq!(
        next_item(&mut ws).await.unwrap().unwrap(),
        Message::text("order 7")
    );
}

#[tokio::test]
async fn a_server_without_resume_mode_is_a_typed_error_when_required() {
    let plain = serve(|_| Reply::Upgrade, echo).await;
    let result = timeout(
        BOUND,
        quick().resume(ResumeConfig::default()).connect(plain.url()),
    )
    .await
    .unwrap();
    assert!(
        matches!(result, Err(Error::ResumeUnsupported)),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_server_without_resume_mode_gets_plain_mode_when_not_required() {
    let plain = serve(|_| Reply::Upgrade, echo).await;
    let mut ws = timeout(
        BOUND,
        quick()
            .resume(ResumeConfig::default().required(false))
            .connect(plain.url()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!ws.is_resuming());
    ws.send(Message::text("plain")).await.unwrap();
    assert_eq!(
        next_item(&mut ws).await.unwrap().unwrap(),
        Message::text("plain"),
        "no envelope in plain mode"
    );
}

#[tokio::test]
async fn a_broken_frame_from_the_server_is_a_typed_item() {
    // A server that chooses the subprotocol, then sends garbage.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, negotiate)
            .await
            .unwrap();
        let _hello = ws.next().await;
        ws.send(Message::binary(vec![0x0f, 1, 2])).await.unwrap();
        let _ = ws.next().await;
    });
    let mut ws = client(&url, ResumeConfig::default()).await;
    match next_item(&mut ws).await {
        Some(Err(Error::ResumeViolation(v))) => {
            assert_eq!(v, ws_reconnect::ResumeViolation::UnknownKind(15));
        }
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[tokio::test]
async fn a_data_frame_the_client_cannot_read_is_asked_for_again() {
    // A server whose first DATA frame is broken (a flag DATA does not have), and which
    // sends it properly only when asked to (REPLAY), never on its own.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, negotiate)
            .await
            .unwrap();
        let _hello = ws.next().await;
        ws.send(welcome()).await.unwrap();
        // DATA seq 1, "x", with the reserved flag 0x80.
        ws.send(Message::binary(vec![0x81, 1, b'x'])).await.unwrap();
        while let Some(Ok(message)) = ws.next().await {
            // REPLAY from 1: DATA seq 1, TEXT and PROMPT, "x".
            if message == Message::binary(vec![0x06, 1]) {
                ws.send(Message::binary(vec![0x51, 1, b'x'])).await.unwrap();
            }
        }
    });
    let mut ws = client(&url, ResumeConfig::default()).await;
    match next_item(&mut ws).await {
        Some(Err(Error::ResumeViolation(v))) => assert!(
            matches!(
                v,
                ws_reconnect::ResumeViolation::ReservedFlags { kind: 1, .. }
            ),
            "{v:?}"
        ),
        other => panic!("expected a violation, got {other:?}"),
    }
    assert_eq!(
        next_item(&mut ws).await.unwrap().unwrap(),
        Message::text("x"),
        "the broken frame's message, asked for again"
    );
}

#[tokio::test]
async fn a_client_that_does_not_say_hello_is_closed_with_1002() {
    let (server, _sessions) = Server::new(ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        server.accept(tcp).await
    });
    let mut ws = raw(addr).await;
    ws.send(Message::text("hello?")).await.unwrap();
    match timeout(BOUND, ws.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1002),
        other => panic!("expected a Close with 1002, got {other:?}"),
    }
    let result = timeout(BOUND, accepted).await.unwrap().unwrap();
    assert!(
        matches!(result, Err(AttachError::Violation(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_client_that_does_not_offer_the_subprotocol_is_refused() {
    let (server, _sessions) = Server::new(ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        server.accept(tcp).await
    });
    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await;
    assert!(refused.is_err());
    let result = timeout(BOUND, accepted).await.unwrap().unwrap();
    assert!(matches!(result, Err(AttachError::NotOffered)), "{result:?}");
}

#[tokio::test]
async fn an_acknowledgement_carried_by_server_data_completes_a_flush() {
    // A server that acknowledges only on its own DATA (ACK flag), never with an ACK frame.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, negotiate)
            .await
            .unwrap();
        let _hello = ws.next().await;
        ws.send(welcome()).await.unwrap();
        // The client's DATA 1, then ours: DATA seq 1 carrying ACK 1, payload "x".
        while let Some(Ok(message)) = ws.next().await {
            if matches!(&message, Message::Binary(b) if b.first().map(|k| k & 0x0f) == Some(1)) {
                ws.send(Message::binary(vec![0x21, 1, 1, b'x']))
                    .await
                    .unwrap();
                break;
            }
        }
        while ws.next().await.is_some() {}
    });
    let config = ResumeConfig::default().ack_timeout(Duration::from_secs(600));
    let mut ws = client(&url, config).await;
    ws.feed(Message::text("m1")).await.unwrap();
    timeout(BOUND, ws.flush())
        .await
        .expect("flush() waits for an acknowledgement it was given")
        .unwrap();
    assert_eq!(ws.unacknowledged_count(), 0);
    assert_eq!(
        next_item(&mut ws).await.unwrap().unwrap(),
        Message::binary(vec![b'x'])
    );
}

#[tokio::test]
async fn a_client_past_the_servers_byte_window_is_closed_with_1002() {
    // 2 MiB: above what any client assumes before WELCOME (1 MiB).
    let config = ServerConfig::default().recv_window_bytes(2 << 20);
    let (server, _sessions) = Server::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        server.accept(tcp).await
    });
    let mut ws = raw(addr).await;
    // HELLO: no session, recv_next 1, send_first 1, window 1024 frames, 4 MiB.
    let hello = vec![0x03, 1, 1, 1, 0x80, 0x08, 0x80, 0x80, 0x80, 0x02];
    ws.send(Message::binary(hello)).await.unwrap();
    // Five DATA frames of 512 KiB, none acknowledged (the application reads nothing):
    // the fifth starts past the 2 MiB window.
    for seq in 1..=5u8 {
        let mut data = vec![0x01, seq];
        data.resize(2 + (512 << 10), 0);
        if ws.send(Message::binary(data)).await.is_err() {
            break;
        }
    }
    let close = timeout(BOUND, async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(frame) = message {
                return frame;
            }
        }
        None
    })
    .await
    .expect("no Close from the server");
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1002));
    let result = timeout(BOUND, accepted).await.unwrap().unwrap();
    assert!(
        matches!(
            result,
            Err(AttachError::Violation(
                ws_reconnect::ResumeViolation::WindowExceeded
            ))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn take_undelivered_hands_back_the_applications_messages_and_nothing_of_the_protocols() {
    let harness = Harness::start(
        ServerConfig::default(),
        App::Numbered {
            send: 0,
            pace: None,
        },
    )
    .await;
    let proxy = ws_reconnect::testing::FaultProxy::start(harness.addr)
        .await
        .unwrap();
    let mut ws = client(&format!("ws://{}/", proxy.addr()), ResumeConfig::default()).await;
    proxy.inject(ws_reconnect::testing::Fault::Freeze);
    for i in 1..=3 {
        ws.feed(Message::text(format!("c{i}"))).await.unwrap();
    }
    // The flush asks for an acknowledgement (a standalone PROMPT, a frame of the
    // protocol's own, kept until confirmed), then waits on the frozen path.
    let _ = timeout(Duration::from_millis(300), ws.flush()).await;
    let taken = ws.take_undelivered();
    let expected: Vec<Message> = (1..=3).map(|i| Message::text(format!("c{i}"))).collect();
    assert_eq!(taken, expected);
    assert_eq!(ws.unacknowledged_count(), 0);
}

#[tokio::test]
async fn a_batch_stays_within_a_message_size_the_server_allows_each_message() {
    const LIMIT: usize = 64 * 1024;
    let websocket = ws_reconnect::WebSocketConfig::default()
        .max_frame_size(Some(LIMIT))
        .max_message_size(Some(LIMIT));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let (server, mut sessions) = Server::new(ServerConfig::default().websocket_config(websocket));
    tokio::spawn(server.serve(listener));
    let mut ws = client(&url, ResumeConfig::default()).await;
    let mut session = timeout(BOUND, sessions.next()).await.unwrap().unwrap();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 4 {
            match timeout(BOUND, session.next()).await {
                Ok(Some(Ok(m))) => got.push(m.len()),
                other => panic!("after {got:?}: {other:?}"),
            }
        }
        got
    });
    timeout(BOUND, ws.send(Message::text("warm")))
        .await
        .unwrap()
        .unwrap();
    // A small message held back, then one that alone is near the server's limit: the
    // two would not fit in one message of the limit's size.
    ws.feed(Message::text("small")).await.unwrap();
    let near = LIMIT - 8;
    ws.feed(Message::binary(vec![7; near])).await.unwrap();
    // The large one fills a batch alone: written before the next.
    ws.feed(Message::text("tail")).await.unwrap();
    timeout(BOUND, ws.flush()).await.unwrap().unwrap();
    let got = crate::support::join(reader, "the server's reader").await;
    assert_eq!(got, [4, 5, near, 4]);
    assert_eq!(
        ws.get_ref().stats().connects,
        1,
        "the server never refused a message"
    );
}
