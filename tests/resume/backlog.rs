//! A resent DATA frame carries the acknowledgement owed when it is written. The frame is
//! made only once the connection can take it: making it marks that acknowledgement sent,
//! so a frame made while the connection's `poll_ready` is Pending, then dropped, would
//! leave the server without it. And messages fed without a flush go as BATCH frames, in
//! order with what is written between them. The server's side is the test's own frames,
//! in memory.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::mpsc;
use futures::task::AtomicWaker;
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio::time::timeout;
use ws_reconnect::{Message, ReconnectingSink, ResumeConfig, Target};

use crate::support::BOUND;

/// Decides when a [`Conn`] can take a message: `budget` more (`None`: any number), then
/// none until [`open`](Self::open); counts the `poll_ready` calls it answered Pending.
#[derive(Default)]
struct Gate {
    budget: Mutex<Option<usize>>,
    waker: AtomicWaker,
    blocked: AtomicUsize,
}

impl Gate {
    /// From now on the connection takes everything.
    fn open(&self) {
        *self.budget.lock().unwrap() = None;
        self.waker.wake();
    }
}

/// The client's end of an in-memory connection: what it writes goes to `tx`, what the
/// test pushes comes from `rx`, and `gate` decides when it can take a message.
struct Conn {
    tx: mpsc::UnboundedSender<Message>,
    rx: mpsc::UnboundedReceiver<Message>,
    gate: Arc<Gate>,
}

impl Sink<Message> for Conn {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.gate.waker.register(cx.waker());
        if *self.gate.budget.lock().unwrap() == Some(0) {
            self.gate.blocked.fetch_add(1, Ordering::SeqCst);
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> io::Result<()> {
        if let Some(n) = self.gate.budget.lock().unwrap().as_mut() {
            *n = n.checked_sub(1).expect("a write past poll_ready");
        }
        self.tx
            .unbounded_send(item)
            .map_err(|_| io::ErrorKind::BrokenPipe.into())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Stream for Conn {
    type Item = io::Result<Message>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_next_unpin(cx).map(|m| m.map(Ok))
    }
}

/// The server's end of a [`Conn`]: frames to the client, and what the client wrote.
struct Peer {
    to_client: mpsc::UnboundedSender<Message>,
    from_client: mpsc::UnboundedReceiver<Message>,
}

impl Peer {
    /// A connection whose client end takes `budget` messages, then waits for its gate.
    fn pair(budget: Option<usize>) -> (Conn, Peer) {
        let (tx, from_client) = mpsc::unbounded();
        let (to_client, rx) = mpsc::unbounded();
        let gate = Arc::new(Gate {
            budget: Mutex::new(budget),
            ..Gate::default()
        });
        let peer = Peer {
            to_client,
            from_client,
        };
        (Conn { tx, rx, gate }, peer)
    }

    fn send(&self, frame: &[u8]) {
        let message = Message::binary(frame.to_vec());
        self.to_client.unbounded_send(message).unwrap();
    }

    /// The frames the client has written so far.
    fn written(&mut self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.from_client.try_recv().ok())
            .map(|m| m.into_data().to_vec())
            .collect()
    }
}

/// The acknowledgement of the server's messages a client frame carries: an ACK's (with or
/// without PROMPT), or a DATA frame's with the ACK flag. One-byte varints only.
fn acknowledges(frame: &[u8]) -> Option<u8> {
    match frame {
        [k, ack, ..] if k & 0x0f == 0x02 => Some(*ack),
        [k, _seq, ack, ..] if k & 0x0f == 0x01 && k & 0x20 != 0 => Some(*ack),
        _ => None,
    }
}

/// WELCOME of session `[7; 16]`, epoch 1, recv_next 1, window 1024 frames, 4 MiB.
fn welcome(resumed: bool) -> Vec<u8> {
    let mut frame = vec![if resumed { 0x14 } else { 0x04 }, 1];
    frame.extend_from_slice(&[7; 16]);
    frame.extend_from_slice(&1u64.to_be_bytes());
    frame.extend_from_slice(&[0x01, 0x80, 0x08, 0x80, 0x80, 0x80, 0x02]);
    frame
}

#[tokio::test]
async fn a_message_taken_while_the_backlog_waits_is_acknowledged_when_it_goes() {
    let (first, mut a) = Peer::pair(None);
    let (second, mut b) = Peer::pair(Some(1));
    let gate = second.gate.clone();
    let conns = Arc::new(Mutex::new(VecDeque::from([first, second])));
    let make = tower::service_fn(move |_: Target| {
        let conn = conns.lock().unwrap().pop_front();
        async move { conn.ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused)) }
    });
    // No acknowledgement on a timer, no connection given up for a missing one.
    let config = ResumeConfig::default()
        .ack_delay(Duration::from_secs(600))
        .ack_timeout(Duration::from_secs(600));
    let mut ws = ReconnectingSink::builder()
        .resume(config)
        .build_over(make, Target::new("ws://mock/").unwrap())
        .unwrap();
    a.send(&welcome(false));
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    let c1 = ws.feed(Message::text("c1"));
    timeout(BOUND, c1).await.unwrap().unwrap();
    // Held back for a batch until a flush, which writes it and waits for its
    // acknowledgement.
    assert!(ws.flush().now_or_never().is_none(), "c1 is unacknowledged");
    let c1_written = a.written().iter().any(|f| f.starts_with(&[0x51, 1]));
    assert!(c1_written, "c1 on the first connection");

    // The first connection ends; the second takes HELLO, then nothing until its gate
    // opens. The server resumes the session without c1 and sends s1.
    b.send(&welcome(true));
    b.send(&[0x11, 1, b's', b'1']);
    drop(a);
    assert!(ws.flush().now_or_never().is_none(), "c1 is unacknowledged");
    let kinds: Vec<u8> = b.written().iter().map(|f| f[0] & 0x0f).collect();
    assert_eq!(kinds, [0x03], "the gate let through HELLO only");
    let s1 = ws.next().now_or_never().flatten().map(Result::unwrap);
    assert_eq!(s1, Some(Message::text("s1")), "s1 read with the WELCOME");

    // The application took s1 and the sink tries the backlog again: still blocked.
    let blocked = gate.blocked.load(Ordering::SeqCst);
    assert!(ws.next().now_or_never().is_none());
    let tried = gate.blocked.load(Ordering::SeqCst) > blocked;
    assert!(tried, "c1 was not tried");
    assert!(b.written().is_empty());

    // The gate opens and the server asks for an acknowledgement (a PROMPT, acknowledging
    // none of the client's messages): s1's reaches it, on c1 or on its own.
    gate.open();
    b.send(&[0x12, 0]);
    let mut seen = Vec::new();
    let acked = timeout(Duration::from_secs(1), async {
        loop {
            tokio::select! {
                item = ws.next() => panic!("unexpected item {item:?}"),
                frame = b.from_client.next() => {
                    let frame = frame.expect("the second connection ended").into_data();
                    seen.push(frame.to_vec());
                    if acknowledges(&frame) == Some(1) {
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(acked.is_ok(), "no ACK of s1 in {seen:x?}");
}

/// The DATA frames in a BATCH client frame, by sequence number (entries of fewer than
/// 128 bytes, one-byte sequence numbers).
fn batch_seqs(frame: &[u8]) -> Vec<u8> {
    assert_eq!(frame[0], 0x08, "a BATCH");
    let (mut seqs, mut at) = (Vec::new(), 1);
    while at < frame.len() {
        let len = frame[at] as usize;
        seqs.push(frame[at + 2]);
        at += 1 + len;
    }
    seqs
}

#[tokio::test]
async fn messages_fed_without_a_flush_go_as_batches_in_order_around_a_ping() {
    let (first, mut a) = Peer::pair(None);
    let conns = Arc::new(Mutex::new(VecDeque::from([first])));
    let make = tower::service_fn(move |_: Target| {
        let conn = conns.lock().unwrap().pop_front();
        async move { conn.ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused)) }
    });
    let mut ws = ReconnectingSink::builder()
        .resume(ResumeConfig::default())
        .build_over(make, Target::new("ws://mock/").unwrap())
        .unwrap();
    a.send(&welcome(false));
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    for i in 1..=40 {
        timeout(BOUND, ws.feed(Message::text(format!("m{i}"))))
            .await
            .unwrap()
            .unwrap();
    }
    timeout(BOUND, ws.feed(Message::Ping(vec![9].into())))
        .await
        .unwrap()
        .unwrap();
    for i in 41..=43 {
        timeout(BOUND, ws.feed(Message::text(format!("m{i}"))))
            .await
            .unwrap()
            .unwrap();
    }
    // Held back until a flush, which writes them, then waits for their acknowledgement.
    let before_flush = a.from_client.try_recv().into_iter().count();
    assert!(
        ws.flush().now_or_never().is_none(),
        "nothing is acknowledged"
    );
    let written: Vec<Message> = std::iter::from_fn(|| a.from_client.try_recv().ok()).collect();
    assert_eq!(
        before_flush, 1,
        "HELLO, then nothing but full batches before the Ping"
    );
    let kinds: Vec<String> = written
        .iter()
        .map(|m| match m {
            Message::Binary(b) if b[0] == 0x08 => format!("batch {:?}", batch_seqs(b)),
            Message::Binary(b) => format!("kind {:#04x}", b[0]),
            Message::Ping(p) => format!("ping {:?}", &p[..]),
            other => format!("{other:?}"),
        })
        .collect();
    let seqs = |r: std::ops::RangeInclusive<u8>| format!("batch {:?}", r.collect::<Vec<_>>());
    // (Then the flush's own frames: a PROMPT, the Ping that confirms the flush.)
    assert_eq!(
        kinds[..4],
        [
            seqs(1..=32),
            seqs(33..=40),
            "ping [9]".to_owned(),
            seqs(41..=43)
        ]
    );
}
