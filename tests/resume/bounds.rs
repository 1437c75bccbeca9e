//! The bounds either way hold against a caller that skips `poll_ready`, and `close()`
//! returns within its bound.

use futures::StreamExt;
use tokio::net::TcpListener;
use tokio::time::timeout;
use ws_reconnect::server::{Server, ServerConfig, Session, SessionError};
use ws_reconnect::{Message, ResumeConfig, ResumingSink};

use crate::harness::client;
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
