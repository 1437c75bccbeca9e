//! Per-connection handlers for [`serve`](super::serve): what a server does with an
//! upgraded connection, and what it records.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use tokio_tungstenite::tungstenite::Message;

use super::{serve, Reply, Server, Ws};

/// A handler as [`serve`](super::serve) takes it.
pub type BoxHandler = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Messages received by a server, tagged with the connection they came on.
#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<(usize, String)>>>);

impl Log {
    pub fn push(&self, conn: usize, text: String) {
        self.0.lock().unwrap().push((conn, text));
    }
    pub fn texts(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| t.clone())
            .collect()
    }
    pub fn entries(&self) -> Vec<(usize, String)> {
        self.0.lock().unwrap().clone()
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A handler with shared state: `handler(state, conn, ws)` runs each connection with
/// its own clone of `state` (an `Arc`, a [`Log`]).
pub fn sharing<S, H, F>(state: S, handler: H) -> impl Fn(usize, Ws) -> F + Send + Sync
where
    S: Clone + Send + Sync + 'static,
    H: Fn(S, usize, Ws) -> F + Send + Sync,
    F: Future<Output = ()> + Send,
{
    move |conn, ws| handler(state.clone(), conn, ws)
}

/// What a [`responding`] handler does after recording a text message.
#[derive(Clone)]
pub enum Respond {
    /// Keep reading.
    Nothing,
    /// Send this text message.
    Send(String),
    /// Send this text message, then a Close frame.
    SendAndClose(String),
    /// Send a Close frame and keep reading until the client answers or goes away
    /// (RFC 6455 allows this).
    Close,
    /// Reset the connection (RST: zero linger, then drop).
    Reset,
}

/// A handler that records every text message in `log` with its connection, then does what
/// `respond(conn, seen, text)` says (`seen` counts this connection's text messages from
/// 1), until the peer goes away.
pub fn responding<R>(log: Log, respond: R) -> impl Fn(usize, Ws) -> BoxHandler + Send + Sync
where
    R: Fn(usize, usize, &str) -> Respond + Send + Sync + 'static,
{
    let respond = Arc::new(respond);
    move |conn, mut ws: Ws| {
        let (log, respond) = (log.clone(), respond.clone());
        Box::pin(async move {
            let mut seen = 0;
            while let Some(Ok(m)) = ws.next().await {
                let Message::Text(t) = m else { continue };
                log.push(conn, t.to_string());
                seen += 1;
                let (reply, close) = match respond(conn, seen, &t) {
                    Respond::Nothing => (None, false),
                    Respond::Send(reply) => (Some(reply), false),
                    Respond::SendAndClose(reply) => (Some(reply), true),
                    Respond::Close => (None, true),
                    Respond::Reset => {
                        let _ = ws.get_ref().set_zero_linger();
                        return;
                    }
                };
                if let Some(reply) = reply {
                    if ws.send(Message::text(reply)).await.is_err() {
                        break;
                    }
                }
                if close {
                    // Frames that already arrived are read first, as a server that reads
                    // until it decides to close does: a Ping among them is answered (the
                    // client's confirmation of what came before it), a message is
                    // recorded.
                    while let Some(Some(Ok(m))) = futures::FutureExt::now_or_never(ws.next()) {
                        if let Message::Text(t) = m {
                            log.push(conn, t.to_string());
                        }
                    }
                    let _ = ws.close(None).await;
                }
            }
        })
    }
}

/// Records every text message until the peer goes away.
pub fn recording(log: Log) -> impl Fn(usize, Ws) -> BoxHandler + Send + Sync {
    responding(log, |_, _, _| Respond::Nothing)
}

/// A server that upgrades every attempt and records what it receives.
pub async fn recording_server() -> (Server, Log) {
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, recording(log.clone())).await;
    (server, log)
}

/// Records, and does `then` once after each connection's `n`th text message.
fn after(n: usize, then: Respond, log: Log) -> impl Fn(usize, Ws) -> BoxHandler + Send + Sync {
    responding(log, move |_, seen, _| {
        if seen == n {
            then.clone()
        } else {
            Respond::Nothing
        }
    })
}

/// Records, and closes each connection (Close frame) after its `n`th text message.
pub fn close_after(n: usize, log: Log) -> impl Fn(usize, Ws) -> BoxHandler + Send + Sync {
    after(n, Respond::Close, log)
}

/// Records, and resets each connection (RST) after its `n`th text message.
pub fn reset_after(n: usize, log: Log) -> impl Fn(usize, Ws) -> BoxHandler + Send + Sync {
    after(n, Respond::Reset, log)
}

/// Records, and acknowledges every text message `"<n>"` with `"ack:<n>"` (the form
/// [`Numbered`](super::Numbered) reads).
pub fn acknowledging(log: Log) -> impl Fn(usize, Ws) -> BoxHandler + Send + Sync {
    responding(log, |_, _, t| Respond::Send(format!("ack:{t}")))
}

/// Echoes every text and binary message.
pub async fn echo(_conn: usize, mut ws: Ws) {
    while let Some(Ok(m)) = ws.next().await {
        if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
            break;
        }
    }
}

/// Reads (and so answers Pings) and discards until the peer goes away.
pub async fn drain(_conn: usize, mut ws: Ws) {
    while let Some(Ok(_)) = ws.next().await {}
}

/// Closes the first connection at once (Close frame); drains the others.
pub async fn close_first(conn: usize, mut ws: Ws) {
    if conn == 0 {
        let _ = ws.close(None).await;
    }
    drain(conn, ws).await;
}

/// Drops every connection as soon as it is upgraded.
pub async fn drop_at_once(_conn: usize, ws: Ws) {
    drop(ws);
}

/// What a [`ledger_server`] saw of numbered messages (ids from 1).
#[derive(Default)]
pub struct Ledger {
    /// Highest id applied, in order.
    pub highest: AtomicU64,
    pub duplicates: AtomicU64,
    /// (highest applied, id) for ids that arrived after a gap: a loss or a reordering.
    pub gaps: Mutex<Vec<(u64, u64)>>,
    /// Connections the server reset.
    pub resets: AtomicUsize,
}

impl Ledger {
    /// Applies `id` if it is the next one; counts a duplicate or records a gap otherwise.
    pub fn apply(&self, id: u64) {
        let highest = self.highest.load(Ordering::SeqCst);
        if id <= highest {
            self.duplicates.fetch_add(1, Ordering::SeqCst);
        } else if id == highest + 1 {
            self.highest.store(id, Ordering::SeqCst);
        } else {
            self.gaps.lock().unwrap().push((highest, id));
        }
    }
}

/// How a [`ledger_server`] acknowledges and fails.
#[derive(Clone, Copy)]
pub struct LedgerPlan {
    /// Acknowledge after every this many messages on a connection (and every 5 ms).
    pub ack_every: u32,
    /// Reset each connection (RST) after a random number of messages in
    /// `1..=max_before_reset`, drawn from `seed` and the connection number.
    pub resets: Option<(u64, u32)>,
}

/// A server that applies numbered messages `"<id>"` (or `"t<id>"`) in order to its
/// [`Ledger`], and acknowledges the contiguous prefix with `"ack:<highest>"` as `plan`
/// says.
pub async fn serve_ledger(plan: LedgerPlan) -> (Server, Arc<Ledger>) {
    let ledger = Arc::new(Ledger::default());
    let server = serve(|_| Reply::Upgrade, ledger_server(ledger.clone(), plan)).await;
    (server, ledger)
}

fn ledger_server(
    ledger: Arc<Ledger>,
    plan: LedgerPlan,
) -> impl Fn(usize, Ws) -> BoxHandler + Send + Sync {
    move |conn, mut ws: Ws| {
        let ledger = ledger.clone();
        Box::pin(async move {
            let reset_after = plan.resets.map(|(seed, max)| {
                rand::rngs::SmallRng::seed_from_u64(seed ^ conn as u64).random_range(1..=max)
            });
            let mut on_this = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            let mut acked = 0;
            loop {
                let ack = tokio::select! {
                    m = ws.next() => {
                        let Some(Ok(Message::Text(t))) = m else { return };
                        let Ok(id) = t.trim_start_matches('t').parse() else { continue };
                        ledger.apply(id);
                        on_this += 1;
                        if reset_after.is_some_and(|n| on_this >= n) {
                            ledger.resets.fetch_add(1, Ordering::SeqCst);
                            let _ = ws.get_ref().set_zero_linger();
                            return; // drop: RST, whatever was in flight is gone
                        }
                        on_this % plan.ack_every == 0
                    }
                    _ = tick.tick() => true,
                };
                let highest = ledger.highest.load(Ordering::SeqCst);
                if ack && highest != acked {
                    acked = highest;
                    if ws
                        .send(Message::text(format!("ack:{highest}")))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        })
    }
}

/// A server whose `handler` runs each connection, and the count of connections open now.
pub async fn counting_server(
    handler: impl Fn(usize, Ws) -> BoxHandler + Send + Sync + 'static,
) -> (Server, Arc<AtomicUsize>) {
    let open = Arc::new(AtomicUsize::new(0));
    let counter = open.clone();
    let handler = Arc::new(handler);
    let server = serve(
        |_| Reply::Upgrade,
        move |conn, ws| {
            let (open, handler) = (counter.clone(), handler.clone());
            async move {
                open.fetch_add(1, Ordering::SeqCst);
                handler(conn, ws).await;
                open.fetch_sub(1, Ordering::SeqCst);
            }
        },
    )
    .await;
    (server, open)
}

/// The numbers `"<n>"` among `texts` (what a [`Log`] holds), as a sorted set.
pub fn numbers(texts: impl IntoIterator<Item = String>) -> std::collections::BTreeSet<u64> {
    texts.into_iter().filter_map(|t| t.parse().ok()).collect()
}

/// Sends `count` messages `"<prefix><i>"` as fast as it can (one flush); `false` if the
/// connection failed.
pub async fn flood(ws: &mut Ws, prefix: &str, count: usize) -> bool {
    for i in 0..count {
        if ws
            .feed(Message::text(format!("{prefix}{i}")))
            .await
            .is_err()
        {
            return false;
        }
    }
    ws.flush().await.is_ok()
}
