//! The loopback server of the benches and the comparison harness, on its own thread and
//! runtime: `/count/N[/ACK]` reads N binary messages (acknowledging every ACK) then
//! answers "done"; `/count/N/ACK/batch` acknowledges whenever the read side would block
//! and every ACK within a longer batch; `/echo` echoes; `/drop/K/ACKED` drops the TCP
//! connection (no Close frame) after every K numbered messages, recording what arrived
//! in a [`DropLedger`]; `/drop/K/ACKED/close` ends it with a Close 1001 instead (a
//! rolling deploy), and discards what arrives after it, as RFC 6455 has it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// What the drop-mode server saw.
#[derive(Default)]
pub struct DropLedger {
    pub counts: Mutex<Vec<u32>>,
    pub last_drop: Mutex<Option<Instant>>,
    pub gaps_first_message: Mutex<Vec<f64>>,
    pub drops: AtomicU64,
    /// When set, the drop-mode server records when each message arrived in `arrivals`
    /// and when it dropped each connection in `drop_times`.
    pub record_times: std::sync::atomic::AtomicBool,
    pub arrivals: Mutex<Vec<Instant>>,
    pub drop_times: Mutex<Vec<Instant>>,
}

impl DropLedger {
    /// Forgets the previous run, including a drop that no connection followed yet.
    pub fn reset(&self) {
        *self.counts.lock().unwrap() = Vec::new();
        *self.last_drop.lock().unwrap() = None;
        self.gaps_first_message.lock().unwrap().clear();
        self.drops.store(0, SeqCst);
        self.arrivals.lock().unwrap().clear();
        self.drop_times.lock().unwrap().clear();
    }

    /// How many times the messages numbered `1..=sent` arrived beyond the first.
    pub fn duplicates(&self, sent: usize) -> usize {
        let counts = self.counts.lock().unwrap();
        (1..=sent)
            .map(|i| counts.get(i).copied().unwrap_or(0).saturating_sub(1) as usize)
            .sum()
    }

    /// How many of the messages numbered `1..=sent` the server never received.
    pub fn lost(&self, sent: usize) -> usize {
        let counts = self.counts.lock().unwrap();
        (1..=sent)
            .filter(|&i| counts.get(i).copied().unwrap_or(0) == 0)
            .count()
    }
}

/// Completes the WebSocket handshake on `tcp` and returns the connection and the path
/// the client asked for; `None` if the handshake failed.
// tungstenite's handshake callback type fixes the large error variant.
#[allow(clippy::result_large_err)]
pub async fn accept_with_path(
    tcp: tokio::net::TcpStream,
) -> Option<(
    tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    String,
)> {
    let mut path = String::new();
    let callback =
        |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
         resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
            path = req.uri().path().to_string();
            Ok(resp)
        };
    let ws = tokio_tungstenite::accept_hdr_async(tcp, callback)
        .await
        .ok()?;
    Some((ws, path))
}

pub fn server_thread(ledger: Arc<DropLedger>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                tcp.set_nodelay(true).unwrap();
                tokio::spawn(serve(tcp, ledger.clone()));
            }
        });
    });
    rx.recv().unwrap()
}

async fn serve(tcp: tokio::net::TcpStream, ledger: Arc<DropLedger>) {
    let Some((mut ws, path)) = accept_with_path(tcp).await else {
        return;
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["count", n, ack] => {
            let (n, ack): (u64, u64) = (n.parse().unwrap(), ack.parse().unwrap());
            let mut seen = 0;
            while let Some(Ok(m)) = ws.next().await {
                if !m.is_binary() {
                    continue;
                }
                seen += 1;
                if ack > 0 && seen % ack == 0 {
                    let _ = ws.send(Message::text(format!("ack:{seen}"))).await;
                }
                if seen == n {
                    if ack > 0 {
                        let _ = ws.feed(Message::text(format!("ack:{seen}"))).await;
                    }
                    let _ = ws.send(Message::text("done")).await;
                }
            }
        }
        ["count", n, ack, "batch"] => {
            let (n, ack): (u64, u64) = (n.parse().unwrap(), ack.parse().unwrap());
            let (mut seen, mut acked) = (0, 0);
            'connection: while let Some(Ok(first)) = ws.next().await {
                // A batch: what has arrived, read until the next read would wait.
                let mut next = Some(first);
                while let Some(m) = next.take() {
                    if m.is_binary() {
                        seen += 1;
                        if seen - acked >= ack && seen != n {
                            acked = seen;
                            let _ = ws.send(Message::text(format!("ack:{seen}"))).await;
                        }
                    }
                    match ws.next().now_or_never() {
                        Some(Some(Ok(m))) => next = Some(m),
                        Some(_) => break 'connection,
                        None => {}
                    }
                }
                if seen != acked {
                    acked = seen;
                    let _ = ws.feed(Message::text(format!("ack:{seen}"))).await;
                }
                if seen == n {
                    let _ = ws.feed(Message::text("done")).await;
                }
                let _ = ws.flush().await;
            }
        }
        ["count", n] => {
            let n: u64 = n.parse().unwrap();
            let mut seen = 0;
            while let Some(Ok(m)) = ws.next().await {
                if m.is_binary() {
                    seen += 1;
                    if seen == n {
                        let _ = ws.send(Message::text("done")).await;
                    }
                }
            }
        }
        ["echo"] => {
            while let Some(Ok(m)) = ws.next().await {
                if m.is_binary() && ws.send(m).await.is_err() {
                    break;
                }
            }
        }
        ["drop", k, ack, rest @ ..] => {
            let (k, ack): (u64, bool) = (k.parse().unwrap(), *ack == "1");
            let graceful = rest == ["close"];
            let mut on_this = 0;
            let mut first = true;
            let mut highest = 0;
            let mut acked = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            loop {
                let m = tokio::select! {
                    m = ws.next() => m,
                    _ = tick.tick() => {
                        if ack && highest != acked {
                            acked = highest;
                            let _ = ws.send(Message::text(format!("ack:{highest}"))).await;
                        }
                        continue;
                    }
                };
                let Some(Ok(m)) = m else { return };
                let Message::Text(t) = m else { continue };
                let Ok(id) = t.as_str().parse::<usize>() else {
                    continue;
                };
                if first {
                    first = false;
                    if let Some(at) = ledger.last_drop.lock().unwrap().take() {
                        ledger
                            .gaps_first_message
                            .lock()
                            .unwrap()
                            .push(at.elapsed().as_secs_f64() * 1e3);
                    }
                }
                if ledger.record_times.load(SeqCst) {
                    ledger.arrivals.lock().unwrap().push(Instant::now());
                }
                {
                    let mut c = ledger.counts.lock().unwrap();
                    if c.len() <= id {
                        c.resize(id + 1, 0);
                    }
                    c[id] += 1;
                    // The contiguous prefix received so far is what may be acknowledged.
                    while c.get(highest + 1).is_some_and(|&n| n > 0) {
                        highest += 1;
                    }
                }
                on_this += 1;
                if ack && on_this % 64 == 0 && highest != acked {
                    acked = highest;
                    let _ = ws.send(Message::text(format!("ack:{highest}"))).await;
                }
                if on_this == k {
                    ledger.drops.fetch_add(1, SeqCst);
                    let now = Instant::now();
                    *ledger.last_drop.lock().unwrap() = Some(now);
                    ledger.drop_times.lock().unwrap().push(now);
                    if graceful {
                        // A Close 1001, then whatever arrives is discarded until the
                        // client answers (or 2 s pass).
                        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                            code: 1001.into(),
                            reason: "".into(),
                        };
                        let _ = ws.send(Message::Close(Some(frame))).await;
                        let drain = async { while let Some(Ok(_)) = ws.next().await {} };
                        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
                    }
                    // Otherwise the TCP connection closes without a Close frame.
                    return;
                }
            }
        }
        _ => {}
    }
}
