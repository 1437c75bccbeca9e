//! The latency section: what each client loses and duplicates when the server ends its
//! connection while messages are on their way, through a real delay line (the crate's
//! `FaultProxy` with a latency each way) at 0, 20 and 50 ms, for a graceful close
//! (Close 1001, what follows discarded) and a bare TCP close; and acknowledged mode's
//! throughput against plain at those latencies.
//!
//! Clients: stream-reconnect (defaults), raw tokio-tungstenite with a reconnect loop that
//! offers the failed message again, ws-reconnect plain and acknowledged (defaults but
//! `initial_interval(0)`). Each writes 64-byte numbered messages at 1,000 msg/s; the
//! server ends each connection after 900.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Sink, SinkExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ws_reconnect::testing::{FaultProxy, Link};
use ws_reconnect::ReconnectingSink;

use crate::common::DropLedger;
use crate::out::Csv;
use crate::{send_until_drops, Samples, TextAcks, DROP_EVERY, SETTLE};

/// The clients of the section.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Client {
    Peer,
    Raw,
    Plain,
    Acked,
}

impl Client {
    const ALL: [Client; 4] = [Client::Peer, Client::Raw, Client::Plain, Client::Acked];

    fn key(self) -> &'static str {
        match self {
            Client::Peer => "stream-reconnect",
            Client::Raw => "raw-reconnect-loop",
            Client::Plain => "ws-reconnect",
            Client::Acked => "ws-reconnect-acked",
        }
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Connecting = Pin<Box<dyn Future<Output = Result<Ws, WsError>> + Send>>;

/// Raw tokio-tungstenite behind the simplest reconnect loop: a failed write or flush
/// drops the connection and returns the error; the next `poll_ready` connects again at
/// once (the caller offers the failed message again).
struct RawLoop {
    url: String,
    ws: Option<Ws>,
    connecting: Option<Connecting>,
}

impl RawLoop {
    fn new(url: &str) -> Self {
        RawLoop {
            url: url.to_owned(),
            ws: None,
            connecting: None,
        }
    }

    /// Connects (again at once after a failure) unless a connection is up.
    fn poll_connect(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while self.ws.is_none() {
            let url = self.url.clone();
            let connecting = self.connecting.get_or_insert_with(|| {
                Box::pin(async move {
                    tokio_tungstenite::connect_async(url.as_str())
                        .await
                        .map(|(ws, _)| ws)
                })
            });
            if let Ok(ws) = futures::ready!(connecting.as_mut().poll(cx)) {
                self.ws = Some(ws);
            }
            self.connecting = None;
        }
        Poll::Ready(())
    }
}

impl Sink<Message> for RawLoop {
    type Error = WsError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        futures::ready!(self.poll_connect(cx));
        let Some(ws) = self.ws.as_mut() else {
            return Poll::Ready(Err(WsError::ConnectionClosed));
        };
        let ready = futures::ready!(ws.poll_ready_unpin(cx));
        if ready.is_err() {
            self.ws = None;
        }
        Poll::Ready(ready)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        let Some(ws) = self.ws.as_mut() else {
            return Err(WsError::ConnectionClosed);
        };
        let sent = ws.start_send_unpin(item);
        if sent.is_err() {
            self.ws = None;
        }
        sent
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let Some(ws) = self.ws.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let flushed = futures::ready!(ws.poll_flush_unpin(cx));
        if flushed.is_err() {
            self.ws = None;
        }
        Poll::Ready(flushed)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        match self.ws.as_mut() {
            Some(ws) => ws.poll_close_unpin(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// One round's figures for one client.
struct Round {
    lost: usize,
    duplicates: usize,
    drops: u64,
    gaps_ms: Vec<f64>,
    failed: Option<String>,
}

async fn round(
    proxy: SocketAddr,
    ledger: &Arc<DropLedger>,
    client: Client,
    graceful: bool,
    drops: u64,
) -> Round {
    ledger.reset();
    let acked = u8::from(client == Client::Acked);
    let url = if graceful {
        format!("ws://{proxy}/drop/{DROP_EVERY}/{acked}/close")
    } else {
        format!("ws://{proxy}/drop/{DROP_EVERY}/{acked}")
    };
    let max_total = (drops as usize + 1) * DROP_EVERY * 5;
    let bound = Duration::from_secs(30) + Duration::from_secs(8) * drops as u32;
    let (sent, errors) = (AtomicU64::new(0), AtomicU64::new(0));
    let run = async {
        match client {
            Client::Peer => {
                let mut ws = crate::common::peer::connect(&url).await;
                send_until_drops(&mut ws, ledger, true, drops, max_total, &sent, &errors).await?;
                tokio::time::sleep(SETTLE * 5).await;
            }
            Client::Raw => {
                let mut ws = RawLoop::new(&url);
                send_until_drops(&mut ws, ledger, true, drops, max_total, &sent, &errors).await?;
                let _ = ws.close().await;
                tokio::time::sleep(SETTLE * 5).await;
            }
            Client::Plain | Client::Acked => {
                let builder = ReconnectingSink::builder().initial_interval(Duration::ZERO);
                let builder = if client == Client::Acked {
                    builder.acknowledged(TextAcks, 1024)
                } else {
                    builder
                };
                let mut ws = builder.connect(&url).await.map_err(|e| e.to_string())?;
                send_until_drops(&mut ws, ledger, true, drops, max_total, &sent, &errors).await?;
                crate::closed_enough(ws.close().await)?;
                tokio::time::sleep(SETTLE * 5).await;
            }
        }
        Ok::<(), String>(())
    };
    let failed = match tokio::time::timeout(bound, run).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(format!("not done within {bound:?}")),
    };
    let sent = sent.load(SeqCst) as usize;
    Round {
        lost: ledger.lost(sent),
        duplicates: ledger.duplicates(sent),
        drops: ledger.drops.load(SeqCst),
        gaps_ms: ledger.gaps_first_message.lock().unwrap().clone(),
        failed,
    }
}

/// Loss, duplicates and drop → first message per client, ending and latency.
pub fn section(
    rt: &tokio::runtime::Runtime,
    server: SocketAddr,
    ledger: &Arc<DropLedger>,
    rounds: usize,
    quick: bool,
    csv: &Csv,
) {
    let drops: u64 = if quick { 2 } else { 4 };
    println!(
        "## Latency: the server ends its connection every {DROP_EVERY} messages (Close 1001 or a bare TCP close) while 64 B messages stream at 1,000 msg/s through a delay line; {drops} drops a round, {rounds} rounds"
    );
    let mut rows = Vec::new();
    for latency_ms in [0u64, 20, 50] {
        let link = Link::new().latency(Duration::from_millis(latency_ms));
        let proxy = rt.block_on(FaultProxy::start_with(server, link)).unwrap();
        for graceful in [true, false] {
            let ending = if graceful { "close-1001" } else { "bare-close" };
            for client in Client::ALL {
                let (mut lost, mut dups, mut gaps) =
                    (Samples::default(), Samples::default(), Samples::default());
                let mut failed = 0;
                for _ in 0..rounds {
                    let r = rt.block_on(round(proxy.addr(), ledger, client, graceful, drops));
                    if let Some(e) = &r.failed {
                        println!("  {latency_ms} ms {ending} {}: failed ({e})", client.key());
                        failed += 1;
                        continue;
                    }
                    let per = r.drops.max(1) as f64;
                    lost.push(r.lost as f64 / per);
                    dups.push(r.duplicates as f64 / per);
                    for g in r.gaps_ms {
                        gaps.push(g);
                    }
                }
                println!(
                    "{latency_ms:>3} ms each way  {ending:<10}  {:<20} lost per drop {:>7.1}   duplicates per drop {:>6.1}   drop → first message {:>7.1} ms median   [{failed} rounds failed]",
                    client.key(),
                    lost.median(),
                    dups.median(),
                    gaps.median(),
                );
                rows.push(format!(
                    "{latency_ms},{ending},{},{},{},{},{failed}",
                    client.key(),
                    lost.median(),
                    dups.median(),
                    gaps.median(),
                ));
            }
        }
    }
    csv.write(
        "latency",
        &[
            "latency_ms_each_way",
            "ending",
            "contender",
            "lost_per_drop_median",
            "duplicates_per_drop_median",
            "gap_ms_median",
            "rounds_failed",
        ],
        &rows,
    );
}

/// Acknowledged mode's throughput against plain through each latency: `n` 64 B and 1 KiB
/// messages, the batch-acknowledging server, with the loopback window (1,024) and with a
/// window sized by the rule the builder documents: at least what the link carries in a
/// round trip, here twice the plain rate measured times the round trip, rounded up to a
/// power of two.
pub fn throughput_section(
    rt: &tokio::runtime::Runtime,
    server: SocketAddr,
    rounds: usize,
    quick: bool,
    csv: &Csv,
) {
    let n: u64 = if quick { 5_000 } else { 50_000 };
    println!(
        "## Acknowledged against plain through latency: {n} messages, the batch-acknowledging server, {rounds} rounds"
    );
    let mut rows = Vec::new();
    for latency_ms in [0u64, 20, 50] {
        let link = Link::new().latency(Duration::from_millis(latency_ms));
        let proxy = rt.block_on(FaultProxy::start_with(server, link)).unwrap();
        for size in [64usize, 1024] {
            let rate = |kind, window| {
                rt.block_on(crate::throughput_with_window(
                    proxy.addr(),
                    kind,
                    size,
                    n,
                    window,
                ))
                .0
            };
            let mut plain = Samples::default();
            let mut small = Samples::default();
            let mut sized = Samples::default();
            let mut window = crate::ACK_WINDOW;
            for _ in 0..rounds {
                plain.push(rate(crate::Kind::Ours, 0));
                window = bdp_window(plain.median(), latency_ms);
                small.push(rate(crate::Kind::AckedBatch, crate::ACK_WINDOW));
                sized.push(rate(crate::Kind::AckedBatch, window));
            }
            let (p, s, w) = (plain.median(), small.median(), sized.median());
            println!(
                "{latency_ms:>3} ms each way  {size:>5} B  plain {p:>10.0} msg/s   acknowledged, window 1,024 {s:>10.0} ({:.2}×)   window {window} {w:>10.0} ({:.2}×)",
                s / p,
                w / p
            );
            rows.push(format!(
                "{latency_ms},{size},{p},{s},{},{window},{w},{}",
                s / p,
                w / p
            ));
        }
    }
    csv.write(
        "latency_throughput",
        &[
            "latency_ms_each_way",
            "size",
            "plain_msgs_per_s",
            "acked_1024_msgs_per_s",
            "ratio_1024",
            "sized_window",
            "acked_sized_msgs_per_s",
            "ratio_sized",
        ],
        &rows,
    );
}

/// The window the builder's rule gives for a path: twice what it carries in a round trip
/// at `rate` messages a second, as a power of two, never under the loopback window.
fn bdp_window(rate: f64, latency_ms: u64) -> usize {
    let round_trip = 2.0 * latency_ms as f64 / 1000.0;
    let in_flight = (2.0 * rate * round_trip).ceil() as usize;
    in_flight.next_power_of_two().max(crate::ACK_WINDOW)
}
