//! The bounds either way hold against a caller that skips `poll_ready` (with messages
//! taken back too), and `close()` returns within its bound.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::time::timeout;
use ws_reconnect::server::{Server, ServerConfig, Session, SessionError};
use ws_reconnect::{Error, Message, ResumeConfig, ResumingSink};

use crate::harness::{client, next_item, quick};
use crate::support::BOUND;

/// A server with `config`, a client of it, and the client's session on the server.
async fn pair(config: ServerConfig, resume: ResumeConfig) -> (Server, ResumingSink, Session) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let (server, mut sessions) = Server::new(config);
    tokio::spawn(server.clone().serve(listener));
    let ws = client(&url, resume).await;
    let session = timeout(BOUND, sessions.next())
        .await
        .expect("no session")
        .expect("sessions ended");
    (server, ws, session)
}

#[tokio::test]
async fn start_send_without_room_is_refused_on_the_server() {
    let config = ServerConfig::default().max_unacked_frames(4);
    let (_server, _ws, mut session) = pair(config, ResumeConfig::default()).await;
    // The client's application never reads: nothing is acknowledged.
    for i in 0..4 {
        session.start_send(Message::text(format!("m{i}"))).unwrap();
    }
    for i in 4..100 {
        match session.start_send(Message::text(format!("m{i}"))) {
            Err(SessionError::NotReady) => break,
            Ok(()) if i < 99 => {}
            other => panic!("start_send past the buffer's bound: {other:?}"),
        }
    }
    assert_eq!(
        session.unacknowledged().0,
        4,
        "the replay buffer stays bounded"
    );
}

#[tokio::test]
async fn close_returns_within_close_timeout_while_the_server_holds_back_acknowledgements() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let (server, mut sessions) = Server::new(ServerConfig::default());
    tokio::spawn(server.serve(listener));
    let mut ws = timeout(
        BOUND,
        quick()
            .close_timeout(Duration::from_millis(200))
            .resume(ResumeConfig::default())
            .connect(&url),
    )
    .await
    .expect("connect hung")
    .expect("connect");
    // The server's application holds its session and never reads: nothing is
    // acknowledged, so the flush before BYE cannot complete.
    let _session = timeout(BOUND, sessions.next()).await.expect("no session");
    for i in 0..3 {
        ws.feed(Message::text(format!("m{i}"))).await.unwrap();
    }
    match timeout(BOUND, ws.close()).await.expect("close() hung") {
        Err(Error::CloseIncomplete { undelivered, .. }) => assert_eq!(undelivered, 3),
        other => panic!("close() with messages unacknowledged: {other:?}"),
    }
}

#[tokio::test]
async fn ack_delay_sends_the_acknowledgement_without_another_read() {
    let resume = ResumeConfig::default().ack_delay(Duration::from_millis(20));
    let (_server, mut ws, mut session) = pair(ServerConfig::default(), resume).await;
    // c1 is never taken by the server's application: the client's flush keeps waiting,
    // and no acknowledgement can ride on a later DATA frame.
    ws.feed(Message::text("c1")).await.unwrap();
    session.send(Message::text("s1")).await.unwrap();
    assert_eq!(
        next_item(&mut ws).await.unwrap().unwrap(),
        Message::text("s1")
    );
    // The client's application does not read again: only ack_delay acknowledges s1.
    tokio::select! {
        acked = timeout(BOUND, session.acknowledged()) => {
            acked.expect("s1 not acknowledged after ack_delay").unwrap();
        }
        _ = ws.flush() => panic!("the flush completed, yet c1 was never taken"),
    }
}

#[tokio::test]
async fn start_send_without_room_is_refused_on_the_client_with_messages_taken_back() {
    let resume = ResumeConfig::default().max_unacked_frames(4);
    // The server's application never reads: nothing is acknowledged.
    let (_server, mut ws, _session) = pair(ServerConfig::default(), resume).await;
    let mut accepted = 0;
    for _ in 0..100 {
        while ws.start_send(Message::text(format!("m{accepted}"))).is_ok() {
            accepted += 1;
            assert!(accepted <= 4, "start_send past the window");
        }
        // Taken back, still unacknowledged: the server may hold them.
        ws.take_undelivered();
    }
    assert_eq!(accepted, 4);
}

#[tokio::test]
async fn start_send_without_room_is_refused_within_the_servers_window() {
    // The server's window is far below the client's own bound (16,384).
    let config = ServerConfig::default().recv_window_frames(256);
    let (server, mut ws, mut session) = pair(config, ResumeConfig::default()).await;
    let mut accepted = 0;
    while accepted < 600 {
        match ws.start_send(Message::text(format!("m{accepted}"))) {
            Ok(()) => accepted += 1,
            Err(Error::NotReady) => break,
            Err(e) => panic!("start_send: {e}"),
        }
    }
    assert!(
        accepted <= 256,
        "{accepted} accepted past the server's window"
    );
    let reader = tokio::spawn(async move {
        for i in 0..accepted {
            let item = timeout(BOUND, session.next()).await.expect("next() hung");
            assert_eq!(item.unwrap().unwrap(), Message::text(format!("m{i}")));
        }
    });
    timeout(BOUND, ws.flush())
        .await
        .expect("flush() hung")
        .unwrap();
    crate::support::join(reader, "the server's reader").await;
    assert_eq!(server.stats().violations, 0);
}
