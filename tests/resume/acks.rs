//! When the server acknowledges: at once for what the client prompted for (a DATA frame
//! or an ACK with the PROMPT flag) once the application took it, otherwise after
//! `ack_delay`, in virtual time, over channels. And the client's acknowledgement, lost
//! with a connection, goes again on the next one.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::mpsc;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::time::{timeout, Instant};
use ws_reconnect::server::{Server, ServerConfig};
use ws_reconnect::testing::{Fault, FaultProxy};
use ws_reconnect::{Message, ResumeConfig};

use crate::harness::{client, App, Harness};
use crate::support::BOUND;

/// The server's end of an in-memory connection.
struct Duplex {
    tx: mpsc::UnboundedSender<Message>,
    rx: mpsc::UnboundedReceiver<Result<Message, std::io::Error>>,
}

impl Stream for Duplex {
    type Item = Result<Message, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_next_unpin(cx)
    }
}

impl Sink<Message> for Duplex {
    type Error = mpsc::SendError;

    fn poll_ready(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.tx
            .unbounded_send(item)
            .map_err(|e| e.into_send_error())
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

/// Reads frames from the server until an ACK (with or without PROMPT) of `upto` comes;
/// returns the time it came and how many ACKs came before it.
async fn ack_of(from_server: &mut mpsc::UnboundedReceiver<Message>, upto: u8) -> (Instant, usize) {
    let mut earlier = 0;
    loop {
        let frame = timeout(BOUND, from_server.next())
            .await
            .expect("no acknowledgement")
            .expect("the connection ended");
        let bytes = frame.into_data();
        if bytes.first().is_some_and(|b| b & 0x0f == 0x02) {
            if bytes[1] == upto {
                return (Instant::now(), earlier);
            }
            earlier += 1;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn acknowledgements_come_at_once_when_prompted_and_after_ack_delay_otherwise() {
    let delay = Duration::from_millis(30);
    let (server, mut sessions) = Server::new(ServerConfig::default().ack_delay(delay));
    let (to_server, from_client) = mpsc::unbounded();
    let (to_client, mut from_server) = mpsc::unbounded();
    tokio::spawn(server.attach(Duplex {
        tx: to_client,
        rx: from_client,
    }));
    // HELLO: no session, recv_next 1, send_first 1, window 1024 frames, 4 MiB.
    let hello = vec![0x03, 1, 1, 1, 0x80, 0x08, 0x80, 0x80, 0x80, 0x02];
    let send = |bytes: Vec<u8>| {
        to_server
            .unbounded_send(Ok(Message::binary(bytes)))
            .unwrap()
    };
    send(hello);
    let mut session = timeout(BOUND, sessions.next()).await.unwrap().unwrap();
    // The application takes every message and waits for the next.
    tokio::spawn(async move { while session.next().await.is_some() {} });

    // DATA 1 with PROMPT (0x41): acknowledged as soon as the application took it.
    let start = Instant::now();
    send(vec![0x41, 1, b'x']);
    assert_eq!(ack_of(&mut from_server, 1).await, (start, 0), "at once");

    // DATA 2 and 3 without: one acknowledgement, `ack_delay` after the first.
    let start = Instant::now();
    send(vec![0x01, 2, b'x']);
    send(vec![0x01, 3, b'x']);
    let (at, earlier) = ack_of(&mut from_server, 3).await;
    assert_eq!(earlier, 0, "nothing before the delay");
    assert_eq!(at - start, delay, "after ack_delay");

    // DATA 4, then a standalone PROMPT (ACK 0x12, acknowledging nothing new of the
    // server's): acknowledged at once.
    let start = Instant::now();
    send(vec![0x01, 4, b'x']);
    send(vec![0x12, 0]);
    assert_eq!(ack_of(&mut from_server, 4).await, (start, 0), "at once");
}

/// A flush that starts while the sink reconnects completes once the new connection is up
/// and the server's application has the messages, not after the server's `ack_delay`
/// (here far past the test's bound): the messages' PROMPTs and the flush's own reach the
/// new connection.
#[tokio::test]
async fn a_flush_across_a_reconnection_is_acknowledged_at_once() {
    let harness = Harness::start(
        ServerConfig::default().ack_delay(Duration::from_secs(600)),
        App::Numbered {
            send: 0,
            pace: None,
        },
    )
    .await;
    let proxy = FaultProxy::start(harness.addr).await.unwrap();
    let mut ws = client(&format!("ws://{}/", proxy.addr()), ResumeConfig::default()).await;
    // The messages go into a path that holds them, then dies; the sink learns of it (its
    // reader runs) while new connections are refused for a while.
    proxy.inject(Fault::Freeze);
    for i in 1..=100 {
        ws.feed(Message::text(format!("c{i}"))).await.unwrap();
    }
    proxy.inject(Fault::Refuse(Duration::from_millis(300)));
    proxy.inject(Fault::Reset);
    let _ = timeout(Duration::from_millis(100), ws.next()).await;
    assert!(!ws.get_ref().is_connected(), "the reset went unnoticed");
    // The flush starts without a connection: the PROMPT goes on the next one.
    timeout(BOUND, ws.flush())
        .await
        .expect("the flush waited for the server's ack_delay")
        .expect("flush");
    assert_eq!(ws.unacknowledged_count(), 0);
    assert!(
        ws.get_ref().stats().connects >= 2,
        "no reconnection happened"
    );
    harness
        .seen
        .ledger(0)
        .lock()
        .unwrap()
        .assert_complete(100, "the server's application");
}

/// An acknowledgement the client's DATA frame carried, lost with the connection that
/// frame went out on, reaches the server all the same: the resent frame carries only
/// what is owed when it is written, so the client acknowledges everything again after
/// HELLO on the next connection.
#[tokio::test]
async fn an_acknowledgement_lost_on_a_data_frame_goes_again_on_the_next_connection() {
    let (server, mut sessions) = Server::new(ServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve(listener));
    let (ask, mut asked) = tokio::sync::mpsc::channel::<()>(1);
    let (done, mut acknowledged) = tokio::sync::mpsc::channel::<()>(1);
    tokio::spawn(async move {
        let mut session = sessions.next().await.unwrap();
        for i in 1..=3 {
            session.send(Message::text(format!("s{i}"))).await.unwrap();
        }
        // c1, resent on the second connection: taking it lets the client's flush end.
        assert_eq!(session.next().await.unwrap().unwrap(), Message::text("c1"));
        asked.recv().await;
        session.acknowledged().await.unwrap();
        let _ = done.send(()).await;
        std::future::pending::<()>().await;
    });
    let proxy = FaultProxy::start(addr).await.unwrap();
    // No acknowledgement on a timer: only prompted ones, and those carried by DATA.
    let config = ResumeConfig::default().ack_delay(Duration::from_secs(600));
    let mut ws = client(&format!("ws://{}/", proxy.addr()), config).await;
    for i in 1..=3 {
        let message = timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(message, Message::text(format!("s{i}")));
    }
    // s1 asked to be acknowledged and was; s2 and s3 are owed. c1 carries that into a
    // path that swallows it, which then dies.
    proxy.inject(Fault::HalfOpen);
    ws.feed(Message::text("c1")).await.unwrap();
    proxy.inject(Fault::Reset);
    timeout(BOUND, ws.flush())
        .await
        .expect("c1 was resent and acknowledged")
        .unwrap();
    ask.send(()).await.unwrap();
    timeout(BOUND, acknowledged.recv())
        .await
        .expect("the server learnt that the client's application has s1 to s3")
        .unwrap();
}
