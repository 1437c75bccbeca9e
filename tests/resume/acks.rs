//! When the server acknowledges: an application that waits for more is acknowledged at
//! once, and again at most once a millisecond. In virtual time, over channels.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::mpsc;
use futures::{Sink, Stream, StreamExt};
use tokio::time::{timeout, Instant};
use ws_reconnect::server::{Server, ServerConfig};
use ws_reconnect::Message;

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

#[tokio::test(start_paused = true)]
async fn a_waiting_application_is_acknowledged_at_once_then_at_most_once_a_millisecond() {
    let (server, mut sessions) = Server::new(ServerConfig::default());
    let (to_server, from_client) = mpsc::unbounded();
    let (to_client, mut from_server) = mpsc::unbounded();
    tokio::spawn(server.attach(Duplex {
        tx: to_client,
        rx: from_client,
    }));
    // HELLO: no session, recv_next 1, send_first 1, window 1024 frames, 4 MiB.
    let hello = vec![0x03, 1, 1, 1, 0x80, 0x08, 0x80, 0x80, 0x80, 0x02];
    to_server
        .unbounded_send(Ok(Message::binary(hello)))
        .unwrap();
    let mut session = timeout(BOUND, sessions.next()).await.unwrap().unwrap();
    // The application takes every message and waits for the next.
    tokio::spawn(async move { while session.next().await.is_some() {} });
    let start = Instant::now();
    let mut acks = Vec::new();
    for seq in 1..=3u8 {
        let data = Message::binary(vec![0x01, seq, b'x']);
        to_server.unbounded_send(Ok(data)).unwrap();
        loop {
            let frame = timeout(BOUND, from_server.next())
                .await
                .expect("no acknowledgement")
                .expect("the connection ended");
            let bytes = frame.into_data();
            if bytes.first() == Some(&0x02) {
                acks.push((bytes[1], Instant::now()));
                if bytes[1] == seq {
                    break;
                }
            }
        }
    }
    assert_eq!(acks.len(), 3, "{acks:?}");
    assert_eq!(acks[0].1, start, "the first acknowledgement goes at once");
    for pair in acks.windows(2) {
        assert!(
            pair[1].1 - pair[0].1 >= Duration::from_millis(1),
            "acknowledgements less than a millisecond apart: {acks:?}"
        );
    }
}
