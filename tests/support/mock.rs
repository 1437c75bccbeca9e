//! A scripted connection factory without sockets: each connection records what it
//! delivers (what was flushed), fails the flushes the script names, and yields inbound
//! messages the test pushes.

use std::collections::HashSet;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::channel::mpsc;
use futures::{Sink, Stream, StreamExt};
use tokio::sync::Notify;
use ws_reconnect::{Builder, Error, Message, ReconnectingSink, Target};

#[derive(Default)]
pub struct Script {
    /// (connection, text) for every message a successful flush delivered.
    pub delivered: Mutex<Vec<(usize, String)>>,
    /// Global flush numbers (from 0) that fail, killing their connection.
    pub fail_flushes: Mutex<HashSet<usize>>,
    pub flushes: AtomicUsize,
    pub connects: AtomicUsize,
    /// Inbound senders, one per connection; dropping one ends that connection's stream.
    pub inbound: Mutex<Vec<Option<mpsc::UnboundedSender<Message>>>>,
    /// (kind, resets_backoff) of every connection attempt's target.
    pub targets: Mutex<Vec<(ws_reconnect::DialKind, bool)>>,
    /// While true, connection attempts are refused with a permanent 403.
    pub refuse: std::sync::atomic::AtomicBool,
    /// When set, each connection attempt waits for a notification.
    pub gate: Option<Arc<Notify>>,
}

impl Script {
    pub fn new() -> Arc<Script> {
        Arc::new(Script::default())
    }

    pub fn gated(gate: Arc<Notify>) -> Arc<Script> {
        Arc::new(Script {
            gate: Some(gate),
            ..Script::default()
        })
    }

    pub fn fail_flush(&self, n: usize) {
        self.fail_flushes.lock().unwrap().insert(n);
    }

    pub fn delivered_texts(&self) -> Vec<String> {
        self.delivered
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// Pushes an inbound message on connection `conn`.
    pub fn push(&self, conn: usize, m: Message) {
        let senders = self.inbound.lock().unwrap();
        senders[conn].as_ref().unwrap().unbounded_send(m).unwrap();
    }

    /// Ends connection `conn` from the peer's side (EOF).
    pub fn hang_up(&self, conn: usize) {
        self.inbound.lock().unwrap()[conn] = None;
    }

    pub fn set_refuse(&self, refuse: bool) {
        self.refuse.store(refuse, Ordering::SeqCst);
    }

    pub fn connects(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }
}

pub struct MockConn {
    id: usize,
    script: Arc<Script>,
    pending: Vec<Message>,
    rx: mpsc::UnboundedReceiver<Message>,
    /// Pongs owed for the Pings a flush delivered: a peer answers each when it reads it.
    pongs: std::collections::VecDeque<Message>,
    dead: bool,
}

fn broken() -> io::Error {
    io::Error::from(io::ErrorKind::BrokenPipe)
}

impl Sink<Message> for MockConn {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(if self.dead { Err(broken()) } else { Ok(()) })
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), io::Error> {
        if self.dead {
            return Err(broken());
        }
        self.pending.push(item);
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        if self.dead {
            return Poll::Ready(Err(broken()));
        }
        let n = self.script.flushes.fetch_add(1, Ordering::SeqCst);
        if self.script.fail_flushes.lock().unwrap().contains(&n) {
            // The connection dies with these messages unconfirmed.
            self.dead = true;
            self.pending.clear();
            return Poll::Ready(Err(broken()));
        }
        let id = self.id;
        let drained: Vec<_> = self.pending.drain(..).collect();
        let script = self.script.clone();
        let mut log = script.delivered.lock().unwrap();
        for m in drained {
            match m {
                // The peer has read everything before it: it answers, as peers do.
                Message::Ping(payload) => self.pongs.push_back(Message::Pong(payload)),
                m => log.push((id, m.into_text().map(|t| t.to_string()).unwrap_or_default())),
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        self.poll_flush(cx)
    }
}

impl Stream for MockConn {
    type Item = Result<Message, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.dead {
            return Poll::Ready(None);
        }
        if let Some(pong) = self.pongs.pop_front() {
            return Poll::Ready(Some(Ok(pong)));
        }
        self.rx.poll_next_unpin(cx).map(|m| m.map(Ok))
    }
}

/// The connection factory over a [`Script`]: each attempt waits for the script's gate (if
/// any), is refused while the script says so, and otherwise opens a [`MockConn`].
#[derive(Clone)]
pub struct Make(Arc<Script>);

/// The connection factory over `script`, for a stack of the test's own.
pub fn make(script: Arc<Script>) -> Make {
    Make(script)
}

/// An undialed sink over `script` (its target: `ws://mock/`), with `builder`'s settings.
pub fn sink(script: &Arc<Script>, builder: Builder) -> ReconnectingSink<Make> {
    builder.build_over(Make(script.clone()), Target::new("ws://mock/").unwrap())
}

/// A default sink over a gated script, dialed (the gate opened once for it): the next
/// connection attempt waits until the test calls `notify_one` on the gate.
pub async fn gated_and_dialed() -> (Arc<Notify>, Arc<Script>, ReconnectingSink<Make>) {
    let gate = Arc::new(Notify::new());
    let script = Script::gated(gate.clone());
    let mut ws = sink(&script, Builder::default());
    gate.notify_one();
    tokio::time::timeout(super::BOUND, ws.dial())
        .await
        .expect("dial hung")
        .expect("dial");
    (gate, script, ws)
}

impl tower::Service<Target> for Make {
    type Response = MockConn;
    type Error = Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<MockConn, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, t: Target) -> Self::Future {
        let script = self.0.clone();
        script
            .targets
            .lock()
            .unwrap()
            .push((t.kind(), t.resets_backoff()));
        Box::pin(async move {
            if let Some(gate) = &script.gate {
                gate.notified().await;
            }
            if script.refuse.load(Ordering::SeqCst) {
                return Err(Error::Rejected {
                    status: http::StatusCode::FORBIDDEN,
                    retry_after: None,
                    retryable: false,
                });
            }
            let id = script.connects.fetch_add(1, Ordering::SeqCst);
            let (tx, rx) = mpsc::unbounded();
            script.inbound.lock().unwrap().push(Some(tx));
            Ok(MockConn {
                id,
                script: script.clone(),
                pending: Vec::new(),
                rx,
                pongs: std::collections::VecDeque::new(),
                dead: false,
            })
        })
    }
}
