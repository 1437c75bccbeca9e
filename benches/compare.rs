//! `cargo bench --bench compare`: ReconnectingSink against raw
//! tokio-tungstenite, side by side in one run, in interleaved rounds.
//!
//! Prints paired medians (with min–max) and ratios for: one-way throughput at 64 B,
//! 1 KiB and 64 KiB (plain and acknowledged mode), client CPU time per message, echo
//! round-trip p50/p99, reconnection gap and messages lost per server-side drop, and RSS per
//! idle connection (each client in a process of its own, the server in another).
//!
//! A second drop section runs the builder's defaults (only `initial_interval` set to zero)
//! against stream-reconnect with its defaults: the server drops the TCP connection every
//! 900 messages it received, with the client paced at 1,000 msg/s and unpaced.
//!
//! The scale section (`scale.rs`) holds 1,000 to 10,000 idle sinks in one client process
//! and measures memory, keepalive CPU and the reconnection of all of them at once.
//!
//! Options: `--rounds N` (default 5), `--quick` (smaller counts, for a smoke run),
//! `--only SECTION` (one of `throughput`, `echo`, `tuned-drops`, `drops`, `timeline`,
//! `latency`, `memory`, `scale`), `--out DIR` (where the CSV files go; default `target/compare`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use ws_reconnect::{Acknowledge, ReconnectingSink};

mod common;
#[path = "compare/latency.rs"]
mod latency;
#[path = "compare/out.rs"]
mod out;
#[path = "compare/scale.rs"]
mod scale;
#[path = "compare/timeline.rs"]
mod timeline;

use out::Csv;

// ---- measurement helpers ------------------------------------------------------------

use common::{flag_value, raise_fd_limit, rss_kib, server_thread, thread_cpu, DropLedger};

#[derive(Clone, Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn push(&mut self, v: f64) {
        self.0.push(v);
    }
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    }
    fn median(&self) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }
    fn quantile(&self, q: f64) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
    fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }
    fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }
}

// ---- the server (its own thread and runtime) ---------------------------------------

// ---- clients -----------------------------------------------------------------------

/// Binary messages carry their id in the first 8 bytes; the server acks "ack:<count>".
struct BinAcks {
    next: u64,
}

impl Acknowledge for BinAcks {
    fn id(&mut self, _outbound: &Message) -> Option<u64> {
        self.next += 1;
        Some(self.next)
    }
    fn acked(&mut self, inbound: &Message) -> Option<u64> {
        inbound.to_text().ok()?.strip_prefix("ack:")?.parse().ok()
    }
}

struct TextAcks;

impl Acknowledge for TextAcks {
    fn id(&mut self, outbound: &Message) -> Option<u64> {
        outbound.to_text().ok()?.parse().ok()
    }
    fn acked(&mut self, inbound: &Message) -> Option<u64> {
        inbound.to_text().ok()?.strip_prefix("ack:")?.parse().ok()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Raw,
    Peer,
    Ours,
    Acked,
    /// Acknowledged, against a server that acknowledges once per read batch.
    AckedBatch,
    /// Plain, through `spawn()`'s handle: one sender awaiting `Handle::send` per message.
    Handle,
    /// Plain with `ConfirmBy::Flush`: no fence Ping after a flush (0.2's confirmation).
    ConfirmAtFlush,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Raw => "raw tokio-tungstenite",
            Kind::Peer => "stream-reconnect",
            Kind::Ours => "ReconnectingSink",
            Kind::Acked => "ReconnectingSink, acked/64",
            Kind::AckedBatch => "ReconnectingSink, acked/batch",
            Kind::Handle => "spawn() handle, 1 sender",
            Kind::ConfirmAtFlush => "ReconnectingSink, confirm at flush",
        }
    }

    /// The name in the CSV files.
    fn key(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Peer => "stream-reconnect",
            Kind::Ours => "ws-reconnect",
            Kind::Acked => "ws-reconnect-acked-64",
            Kind::AckedBatch => "ws-reconnect-acked-batch",
            Kind::Handle => "ws-reconnect-handle",
            Kind::ConfirmAtFlush => "ws-reconnect-confirm-flush",
        }
    }
}

async fn one_way<S, E>(mut ws: S, payload: &Bytes, n: u64) -> (Duration, Duration)
where
    S: Sink<Message> + Stream<Item = Result<Message, E>> + Unpin,
    <S as Sink<Message>>::Error: std::fmt::Debug,
{
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    for _ in 0..n {
        ws.feed(Message::Binary(payload.clone())).await.unwrap();
    }
    ws.flush().await.unwrap();
    while let Some(Ok(m)) = ws.next().await {
        if m.to_text().is_ok_and(|t| t == "done") {
            break;
        }
    }
    let out = (t0.elapsed(), thread_cpu() - cpu0);
    let _ = ws.close().await;
    out
}

/// [`one_way`] through `spawn()`: the handle's task runs on the same thread, so the CPU
/// figure covers the sender and the task.
async fn handle_one_way(ws: ReconnectingSink, payload: &Bytes, n: u64) -> (Duration, Duration) {
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    let (handle, mut incoming) = ws.spawn();
    for _ in 0..n {
        handle.send(Message::Binary(payload.clone())).await.unwrap();
    }
    while let Some(Ok(m)) = incoming.next().await {
        if m.to_text().is_ok_and(|t| t == "done") {
            break;
        }
    }
    let out = (t0.elapsed(), thread_cpu() - cpu0);
    let _ = handle.close().await;
    out
}

/// The batch-acknowledging server also acknowledges within a batch every this many
/// messages, a quarter of the client's window of 1,024: a client faster than the server
/// never sees a batch end, and with acknowledgements every half window (512) its window
/// filled and it parked (0.75× plain at 64 B); every quarter it measured 0.93–0.98×.
const BATCH_ACK_EVERY: u64 = 256;

/// The acknowledgement window of the acknowledged clients in the throughput rows: what
/// loopback needs (a quarter of it per acknowledgement, see [`BATCH_ACK_EVERY`]).
const ACK_WINDOW: usize = 1024;

async fn throughput(addr: SocketAddr, kind: Kind, size: usize, n: u64) -> (f64, f64) {
    throughput_with_window(addr, kind, size, n, ACK_WINDOW).await
}

/// [`throughput`] with the acknowledged clients' window given.
async fn throughput_with_window(
    addr: SocketAddr,
    kind: Kind,
    size: usize,
    n: u64,
    window: usize,
) -> (f64, f64) {
    let payload = Bytes::from(vec![7u8; size]);
    let url = match kind {
        Kind::Acked => format!("ws://{addr}/count/{n}/64"),
        Kind::AckedBatch => format!("ws://{addr}/count/{n}/{BATCH_ACK_EVERY}/batch"),
        _ => format!("ws://{addr}/count/{n}/0"),
    };
    let (elapsed, cpu) = match kind {
        Kind::Raw => {
            let (ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
                .await
                .unwrap();
            one_way(ws, &payload, n).await
        }
        Kind::Peer => one_way(common::peer::connect(&url).await, &payload, n).await,
        Kind::Ours => one_way(ReconnectingSink::connect(&url).await.unwrap(), &payload, n).await,
        Kind::ConfirmAtFlush => one_way(confirm_at_flush(&url).await, &payload, n).await,
        Kind::Handle => {
            let ws = ReconnectingSink::connect(&url).await.unwrap();
            handle_one_way(ws, &payload, n).await
        }
        Kind::Acked | Kind::AckedBatch => {
            let ws = ReconnectingSink::builder()
                .acknowledged(BinAcks { next: 0 }, window)
                .connect(&url)
                .await
                .unwrap();
            one_way(ws, &payload, n).await
        }
    };
    (
        n as f64 / elapsed.as_secs_f64(),
        cpu.as_nanos() as f64 / n as f64,
    )
}

async fn echo_rtts<S, E>(mut ws: S, n: usize) -> Vec<f64>
where
    S: Sink<Message> + Stream<Item = Result<Message, E>> + Unpin,
    <S as Sink<Message>>::Error: std::fmt::Debug,
{
    let payload = Bytes::from(vec![1u8; 64]);
    let mut rtts = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        ws.send(Message::Binary(payload.clone())).await.unwrap();
        let _ = ws.next().await;
        rtts.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let _ = ws.close().await;
    rtts
}

async fn echo(addr: SocketAddr, kind: Kind, n: usize) -> Vec<f64> {
    let url = format!("ws://{addr}/echo");
    match kind {
        Kind::Raw => {
            let (ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
                .await
                .unwrap();
            echo_rtts(ws, n).await
        }
        Kind::ConfirmAtFlush => echo_rtts(confirm_at_flush(&url).await, n).await,
        _ => echo_rtts(ReconnectingSink::connect(&url).await.unwrap(), n).await,
    }
}

/// A plain sink that counts a message delivered at its flush (no fence Ping).
async fn confirm_at_flush(url: &str) -> ReconnectingSink {
    ReconnectingSink::builder()
        .confirm_by(ws_reconnect::ConfirmBy::Flush)
        .connect(url)
        .await
        .unwrap()
}

/// A close that could not confirm everything (the server dropped the connection during
/// it) is not a failure of the run: the server's ledger counts what did not arrive.
fn closed_enough(closed: Result<(), ws_reconnect::Error>) -> Result<(), String> {
    match closed {
        Ok(()) | Err(ws_reconnect::Error::CloseIncomplete { .. }) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

struct DropResult {
    lost_per_drop: f64,
    gap_ms: f64,
    drops: u64,
}

/// Sends `total` numbered messages to a server that drops the TCP connection every `k`.
async fn drops(
    addr: SocketAddr,
    ledger: &Arc<DropLedger>,
    acked: bool,
    rate: u64,
    total: usize,
    k: usize,
) -> DropResult {
    ledger.reset();
    let url = format!("ws://{addr}/drop/{k}/{}", u8::from(acked));
    // A connection that stayed up 100 ms counts as healthy here (the default, 5 s, would
    // treat these short-lived benchmark connections as an accept-and-drop loop and wait
    // for the backoff before reconnecting).
    let builder = ReconnectingSink::builder()
        .initial_interval(Duration::ZERO)
        .max_interval(Duration::from_millis(1))
        .healthy_after(Duration::from_millis(100))
        .max_reconnections_total(100_000);
    let builder = if acked {
        builder.acknowledged(TextAcks, 4096)
    } else {
        builder
    };
    let ws = builder.connect(&url).await.unwrap();
    let start = tokio::time::Instant::now();
    let source = futures::stream::iter(1..=total).then(move |i| async move {
        if rate > 0 {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate as f64)).await;
        }
        Ok(Message::text(i.to_string()))
    });
    // The server may drop the last connection during the close: what it then left
    // unconfirmed is counted by the ledger like any loss.
    closed_enough(source.forward(ws).await).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let lost = ledger.lost(total);
    let drops = ledger.drops.load(SeqCst).max(1);
    let gaps = Samples(ledger.gaps_first_message.lock().unwrap().clone());
    DropResult {
        lost_per_drop: lost as f64 / drops as f64,
        gap_ms: gaps.median(),
        drops,
    }
}

// ---- server-side drops with default settings ----------------------------------------

/// The server drops the TCP connection after this many messages received on it.
const DROP_EVERY: usize = 900;
/// Messages sent after the last drop the sender waits for (they end the round on a
/// connection that stays up, so every drop is followed by a first message).
const TAIL: usize = DROP_EVERY / 2;
/// Time for the server to read what was sent before the round is counted.
const SETTLE: Duration = Duration::from_millis(100);

/// A client of the default-settings drop scenario.
#[derive(Clone, Copy, Debug, PartialEq)]
enum DropClient {
    /// stream-reconnect with its defaults (a fixed 5 s wait before each reconnection).
    Peer,
    /// `ReconnectingSink`, defaults except `initial_interval(0)`.
    Plain,
    /// The same, acknowledged mode (the server acks the contiguous prefix).
    Acked,
    /// Plain mode through `spawn()`: the task reads while the application writes, so a
    /// drop is noticed when it happens, not at the next write.
    Handle,
}

impl DropClient {
    const ALL: [DropClient; 4] = [
        DropClient::Peer,
        DropClient::Plain,
        DropClient::Acked,
        DropClient::Handle,
    ];

    fn name(self) -> &'static str {
        match self {
            DropClient::Peer => "stream-reconnect",
            DropClient::Plain => "ReconnectingSink, plain",
            DropClient::Acked => "ReconnectingSink, acknowledged",
            DropClient::Handle => "spawn() handle, plain",
        }
    }

    /// The name in the CSV files.
    fn key(self) -> &'static str {
        match self {
            DropClient::Peer => "stream-reconnect",
            DropClient::Plain => "ws-reconnect",
            DropClient::Acked => "ws-reconnect-acked",
            DropClient::Handle => "ws-reconnect-handle",
        }
    }
}

/// One round of the default-settings drop scenario for one client.
struct DefaultDropRound {
    sent: usize,
    /// Sends that returned an error (the message was sent again).
    errors: u64,
    lost: usize,
    drops: u64,
    gaps_ms: Vec<f64>,
    /// The round hit its time bound, or the sink returned an error.
    failed: Option<String>,
}

/// Sends numbered 64-byte text messages until the server has dropped `drops` connections,
/// then [`TAIL`] more (at most `max_total` in all), and flushes.
///
/// It drives the sink as `Stream::forward` does: `poll_ready` and `start_send` for each
/// message, and `poll_flush` while the next message is not due yet, so a sink is polled
/// between paced messages (acknowledged mode reads its acknowledgements then; plain
/// mode's flush has nothing owed and returns at once). Paced: one message per
/// millisecond; after a stall (a reconnection wait) the sender goes on at 1,000 msg/s
/// from where it is instead of bursting to catch up. Unpaced: the next message is always
/// due, and the sink decides when to write.
///
/// Unlike `forward`, an error does not end the run: it is counted in `errors`, the
/// sender flushes and offers the same message again, as a caller that must not lose it
/// would do; 100 errors in a row end the round. Messages lost are the ones whose send
/// returned `Ok`. (stream-reconnect's `start_send` passes the dead connection's I/O error
/// through, and only a failing `poll_ready` or `poll_flush` makes it reconnect;
/// tungstenite's `poll_ready` does not fail, so a caller that does not flush after the
/// error never reconnects.)
async fn send_until_drops<S>(
    ws: &mut S,
    ledger: &DropLedger,
    paced: bool,
    drops: u64,
    max_total: usize,
    sent: &AtomicU64,
    errors: &AtomicU64,
) -> Result<(), String>
where
    S: Sink<Message> + Unpin,
    S::Error: std::fmt::Debug,
{
    use std::future::Future;
    use std::task::Poll;

    let period = Duration::from_millis(1);
    let mut due = tokio::time::Instant::now();
    let mut sleep = Box::pin(tokio::time::sleep_until(due));
    let mut item: Option<(usize, Message)> = None;
    let mut last = 0usize;
    let mut stop_at = max_total;
    let mut in_a_row = 0u32;
    let mut recovering = false;
    let failed = |e: &dyn std::fmt::Debug, in_a_row: &mut u32| {
        errors.fetch_add(1, SeqCst);
        *in_a_row += 1;
        if *in_a_row >= 100 {
            Err(format!("{in_a_row} errors in a row, the last {e:?}"))
        } else {
            Ok(())
        }
    };
    std::future::poll_fn(|cx| loop {
        if recovering {
            // A caller that was handed an error flushes before it tries again.
            match futures::ready!(ws.poll_flush_unpin(cx)) {
                Ok(()) => recovering = false,
                Err(e) => {
                    failed(&e, &mut in_a_row)?;
                    continue;
                }
            }
        }
        if item.is_some() {
            // The message stays in `item` until the sink takes it: a Pending poll_ready
            // returns here, and the next poll resumes the same readiness wait.
            let accepted = match futures::ready!(ws.poll_ready_unpin(cx)) {
                Ok(()) => {
                    let (_, message) = item.as_ref().expect("an item is waiting");
                    ws.start_send_unpin(message.clone())
                }
                Err(e) => Err(e),
            };
            match accepted {
                Ok(()) => {
                    let (id, _) = item.take().expect("an item is waiting");
                    in_a_row = 0;
                    last = id;
                    sent.store(id as u64, SeqCst);
                }
                Err(e) => {
                    failed(&e, &mut in_a_row)?;
                    recovering = true;
                    continue;
                }
            }
        }
        let id = last + 1;
        if stop_at == max_total && ledger.drops.load(SeqCst) >= drops {
            stop_at = (id - 1 + TAIL).min(max_total);
        }
        if id > stop_at {
            // Done: everything accepted must be flushed.
            match futures::ready!(ws.poll_flush_unpin(cx)) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(e) => {
                    failed(&e, &mut in_a_row)?;
                    continue;
                }
            }
        }
        if paced {
            if sleep.as_mut().poll(cx).is_pending() {
                // Not due yet: flush meanwhile, as forward() does.
                match ws.poll_flush_unpin(cx) {
                    Poll::Ready(Err(e)) => {
                        failed(&e, &mut in_a_row)?;
                        recovering = true;
                        continue;
                    }
                    _ => return Poll::Pending,
                }
            }
            let now = tokio::time::Instant::now();
            due = (due + period).max(now.checked_sub(2 * period).unwrap_or(now));
            sleep.as_mut().reset(due);
        }
        item = Some((id, Message::text(format!("{id:0>64}"))));
    })
    .await
}

/// One round: a fresh client sends until the server dropped `drops` connections; every
/// phase is bounded, so a client that stops making progress ends the round as failed.
async fn default_drops(
    addr: SocketAddr,
    ledger: &Arc<DropLedger>,
    client: DropClient,
    paced: bool,
    drops: u64,
) -> DefaultDropRound {
    ledger.reset();
    let url = format!(
        "ws://{addr}/drop/{DROP_EVERY}/{}",
        u8::from(client == DropClient::Acked)
    );
    // A cap on the messages a round sends: room for ~3,600 lost per drop. A client that
    // loses more reaches it first and ends the round with fewer drops; loss is still
    // counted per drop seen.
    let max_total = (drops as usize + 1) * DROP_EVERY * 5;
    // stream-reconnect waits 5 s before each reconnection; pacing takes 1 ms a message.
    let bound = Duration::from_secs(20)
        + Duration::from_secs(7) * drops as u32
        + if paced {
            Duration::from_millis(((drops as usize + 1) * DROP_EVERY) as u64)
        } else {
            Duration::ZERO
        };
    let sent = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let run = async {
        match client {
            DropClient::Peer => {
                let mut ws = common::peer::connect(&url).await;
                send_until_drops(&mut ws, ledger, paced, drops, max_total, &sent, &errors).await?;
                // No close(): stream-reconnect's close starts a reconnection, and one
                // called while it is reconnecting never completes.
                tokio::time::sleep(SETTLE).await;
            }
            DropClient::Plain | DropClient::Acked => {
                let builder = ReconnectingSink::builder().initial_interval(Duration::ZERO);
                let builder = if client == DropClient::Acked {
                    builder.acknowledged(TextAcks, 1024)
                } else {
                    builder
                };
                let mut ws = builder.connect(&url).await.map_err(|e| e.to_string())?;
                send_until_drops(&mut ws, ledger, paced, drops, max_total, &sent, &errors).await?;
                // Acknowledged mode: close() waits for what is still unacknowledged.
                closed_enough(ws.close().await)?;
                tokio::time::sleep(SETTLE).await;
            }
            DropClient::Handle => {
                let ws = ReconnectingSink::builder()
                    .initial_interval(Duration::ZERO)
                    .connect(&url)
                    .await
                    .map_err(|e| e.to_string())?;
                let (handle, incoming) = ws.spawn();
                drop(incoming);
                let sender = handle.clone();
                let mut sink = Box::pin(futures::sink::unfold(
                    sender,
                    |sender, message: Message| async move {
                        sender.send(message).await.map_err(|e| e.to_string())?;
                        Ok::<_, String>(sender)
                    },
                ));
                send_until_drops(&mut sink, ledger, paced, drops, max_total, &sent, &errors)
                    .await?;
                closed_enough(handle.close().await.result)?;
                tokio::time::sleep(SETTLE).await;
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
    DefaultDropRound {
        sent,
        errors: errors.load(SeqCst),
        lost: ledger.lost(sent),
        drops: ledger.drops.load(SeqCst),
        gaps_ms: ledger.gaps_first_message.lock().unwrap().clone(),
        failed,
    }
}

fn default_drops_section(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    ledger: &Arc<DropLedger>,
    rounds: usize,
    quick: bool,
    csv: &Csv,
) {
    let drops: u64 = if quick { 2 } else { 5 };
    println!(
        "## Server-side drops with default settings (initial_interval 0): TCP closed without a Close frame every {DROP_EVERY} messages received, 64 B messages, {drops} drops a round, {rounds} interleaved rounds"
    );
    let scenarios = [("1k msg/s", true), ("unpaced", false)];
    // [scenario][client]: lost per drop (one sample a round), drop → first message (every drop).
    let clients = DropClient::ALL.len();
    let mut lost = vec![vec![Samples::default(); clients]; 2];
    let mut gaps = vec![vec![Samples::default(); clients]; 2];
    // [scenario][client]: drops, messages sent, send errors, rounds failed.
    let mut seen = vec![vec![(0u64, 0usize, 0u64, 0usize); clients]; 2];
    for round in 0..rounds {
        for (s, &(label, paced)) in scenarios.iter().enumerate() {
            for (c, &client) in DropClient::ALL.iter().enumerate() {
                let r = rt.block_on(default_drops(addr, ledger, client, paced, drops));
                if let Some(e) = &r.failed {
                    println!(
                        "  round {round} {label} {}: failed ({e}) after {} sent, {} lost, {} drops",
                        client.name(),
                        r.sent,
                        r.lost,
                        r.drops
                    );
                    seen[s][c].3 += 1;
                    continue;
                }
                lost[s][c].push(r.lost as f64 / r.drops.max(1) as f64);
                for g in r.gaps_ms {
                    gaps[s][c].push(g);
                }
                seen[s][c].0 += r.drops;
                seen[s][c].1 += r.sent;
                seen[s][c].2 += r.errors;
            }
        }
    }
    let mut rows = Vec::new();
    for (s, &(label, _)) in scenarios.iter().enumerate() {
        for (c, &client) in DropClient::ALL.iter().enumerate() {
            let (d, sent, errors, failed) = seen[s][c];
            println!(
                "{label:<9} {:<31} lost per drop {:>7.1} ({:.1}–{:.1})   drop → first message {:>8.3} ms median, {:>8.3} max   [{d} drops, {sent} sent, {errors} send errors, {failed} rounds failed]",
                client.name(),
                lost[s][c].median(),
                lost[s][c].min(),
                lost[s][c].max(),
                gaps[s][c].median(),
                gaps[s][c].max(),
            );
            rows.push(format!(
                "{label},{},{},{},{},{},{},{d},{sent},{errors},{failed}",
                client.key(),
                lost[s][c].median(),
                lost[s][c].min(),
                lost[s][c].max(),
                gaps[s][c].median(),
                gaps[s][c].max(),
            ));
        }
    }
    csv.write(
        "drops",
        &[
            "traffic",
            "contender",
            "lost_per_drop_median",
            "lost_per_drop_min",
            "lost_per_drop_max",
            "gap_ms_median",
            "gap_ms_max",
            "drops",
            "sent",
            "send_errors",
            "rounds_failed",
        ],
        &rows,
    );
}

// ---- memory: each client in its own process --------------------------------------

fn memory_server() {
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let _ = ws.send(Message::text("hello")).await;
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
}

fn memory_client(kind: &str, addr: &str, n: usize) {
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("ws://{addr}/");
        // Warm up allocator and runtime with one connection of each kind first.
        let before = rss_kib();
        let mut raw = Vec::new();
        let mut ours = Vec::new();
        for _ in 0..n {
            if kind == "raw" {
                let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
                    .await
                    .unwrap();
                let _ = ws.next().await; // one read: the read buffer is allocated
                raw.push(ws);
            } else {
                let mut ws = ReconnectingSink::connect(&url).await.unwrap();
                let _ = ws.next().await;
                ours.push(ws);
            }
        }
        let after = rss_kib();
        println!("{:.1}", (after.saturating_sub(before)) as f64 / n as f64);
    });
}

fn memory(n: usize) -> (f64, f64) {
    let me = std::env::current_exe().unwrap();
    let (mut server, addr) = common::spawn_server("--memory-server");
    let run = |kind: &str| -> f64 {
        let out = std::process::Command::new(&me)
            .args(["--memory-client", kind, &addr, &n.to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(f64::NAN)
    };
    let result = (run("raw"), run("ours"));
    let _ = server.kill();
    let _ = server.wait();
    result
}

// ---- main --------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--memory-server") {
        return memory_server();
    }
    if args.get(1).map(String::as_str) == Some("--memory-client") {
        return memory_client(&args[2], &args[3], args[4].parse().unwrap());
    }
    if args.get(1).map(String::as_str) == Some("--scale-server") {
        return scale::server_main();
    }
    if args.get(1).map(String::as_str) == Some("--scale-client") {
        return scale::client_main(&args[2..]);
    }
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    let quick = args.iter().any(|a| a == "--quick");
    let rounds: usize = flag_value(&args, "--rounds").unwrap_or(5);
    let scale = if quick { 20 } else { 1 };
    let only = args
        .iter()
        .position(|a| a == "--only")
        .map(|i| args.get(i + 1).cloned().unwrap_or_default());
    let csv = Csv::new(
        args.iter()
            .position(|a| a == "--out")
            .and_then(|i| args.get(i + 1))
            .map(String::as_str),
    );
    const SECTIONS: [&str; 8] = [
        "throughput",
        "echo",
        "tuned-drops",
        "drops",
        "timeline",
        "latency",
        "memory",
        "scale",
    ];
    if let Some(name) = &only {
        if !SECTIONS.contains(&name.as_str()) {
            eprintln!("--only takes one of {SECTIONS:?}, got {name:?}");
            std::process::exit(2);
        }
    }
    let run = |section: &str| only.as_deref().is_none_or(|o| o == section);
    // `--profile-64 [raw|peer|ours|acked|acked-batch]`: one client (default ours) at
    // 64 B, for a profiler; `raw` gives the baseline profile to subtract.
    if let Some(i) = args.iter().position(|a| a == "--profile-64") {
        let kind = match args.get(i + 1).map(String::as_str) {
            Some("raw") => Kind::Raw,
            Some("peer") => Kind::Peer,
            Some("acked") => Kind::Acked,
            Some("acked-batch") => Kind::AckedBatch,
            Some("handle") => Kind::Handle,
            _ => Kind::Ours,
        };
        let addr = server_thread(Arc::new(DropLedger::default()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for _ in 0..rounds {
            let (r, c) = rt.block_on(throughput(addr, kind, 64, 2_000_000));
            println!("{r:.0} msg/s {c:.1} ns/msg");
        }
        return;
    }

    let ledger = Arc::new(DropLedger::default());
    let addr = server_thread(ledger.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    println!(
        "ws-reconnect vs raw tokio-tungstenite, {rounds} interleaved rounds, loopback, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if run("throughput") {
        throughput_section(&rt, addr, rounds, scale, &csv);
    }
    if run("echo") {
        echo_section(&rt, addr, rounds, scale, &csv);
    }
    if run("tuned-drops") {
        tuned_drops_section(&rt, addr, &ledger, rounds, quick, &csv);
    }
    if run("drops") {
        println!();
        default_drops_section(&rt, addr, &ledger, rounds, quick, &csv);
    }
    if run("timeline") {
        timeline::section(&rt, addr, &ledger, &csv);
    }
    if run("latency") {
        println!();
        latency::section(&rt, addr, &ledger, rounds.min(3), quick, &csv);
        println!();
        latency::throughput_section(&rt, addr, rounds.min(3), quick, &csv);
    }
    if run("memory") {
        memory_section(quick, &csv);
    }
    if run("scale") {
        scale::section(quick, &csv);
    }
}

fn throughput_section(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    rounds: usize,
    scale: u64,
    csv: &Csv,
) {
    println!();
    println!("## One-way throughput (messages/s; client CPU ns/message)");
    let mut rows = Vec::new();
    for (size, n) in [(64usize, 2_000_000u64), (1024, 1_000_000), (65536, 20_000)] {
        let n = n / scale;
        let kinds = [
            Kind::Raw,
            Kind::Peer,
            Kind::Ours,
            Kind::Acked,
            Kind::AckedBatch,
            Kind::Handle,
        ];
        let mut rate: Vec<Samples> = vec![Samples::default(); kinds.len()];
        let mut cpu: Vec<Samples> = vec![Samples::default(); kinds.len()];
        for _ in 0..rounds {
            for (i, kind) in kinds.iter().enumerate() {
                let (r, c) = rt.block_on(throughput(addr, *kind, size, n));
                rate[i].push(r);
                cpu[i].push(c);
            }
        }
        for (i, kind) in kinds.iter().enumerate() {
            println!(
                "{:>6} B  {:<28} {:>11.0} msg/s ({:.0}–{:.0})  ratio {:.3}   cpu {:>6.1} ns/msg ({:.1}–{:.1})  ratio {:.3}",
                size,
                kind.name(),
                rate[i].median(),
                rate[i].min(),
                rate[i].max(),
                rate[i].median() / rate[0].median(),
                cpu[i].median(),
                cpu[i].min(),
                cpu[i].max(),
                cpu[i].median() / cpu[0].median(),
            );
            rows.push(format!(
                "{size},{},{},{},{},{},{},{}",
                kind.key(),
                rate[i].median(),
                rate[i].min(),
                rate[i].max(),
                cpu[i].median(),
                cpu[i].min(),
                cpu[i].max(),
            ));
        }
    }
    csv.write(
        "throughput",
        &[
            "size",
            "contender",
            "rate_median",
            "rate_min",
            "rate_max",
            "cpu_ns_median",
            "cpu_ns_min",
            "cpu_ns_max",
        ],
        &rows,
    );
}

fn echo_section(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    rounds: usize,
    scale: u64,
    csv: &Csv,
) {
    println!();
    println!("## Echo, 64 B round trip (µs)");
    let kinds = [Kind::Raw, Kind::Ours, Kind::ConfirmAtFlush];
    let mut p50 = vec![Samples::default(); kinds.len()];
    let mut p99 = vec![Samples::default(); kinds.len()];
    for _ in 0..rounds {
        for (i, kind) in kinds.iter().enumerate() {
            let rtts = Samples(rt.block_on(echo(addr, *kind, 20_000 / scale as usize)));
            p50[i].push(rtts.quantile(0.5));
            p99[i].push(rtts.quantile(0.99));
        }
    }
    for (i, kind) in kinds.iter().enumerate() {
        println!(
            "{:<28} p50 {:>6.1} ({:.1}–{:.1}) ratio {:.3}   p99 {:>6.1} ({:.1}–{:.1}) ratio {:.3}",
            kind.name(),
            p50[i].median(),
            p50[i].min(),
            p50[i].max(),
            p50[i].median() / p50[0].median(),
            p99[i].median(),
            p99[i].min(),
            p99[i].max(),
            p99[i].median() / p99[0].median(),
        );
    }
    let rows: Vec<String> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            format!(
                "{},{},{},{},{},{},{}",
                kind.key(),
                p50[i].median(),
                p50[i].min(),
                p50[i].max(),
                p99[i].median(),
                p99[i].min(),
                p99[i].max(),
            )
        })
        .collect();
    csv.write(
        "echo",
        &[
            "contender",
            "p50_us_median",
            "p50_us_min",
            "p50_us_max",
            "p99_us_median",
            "p99_us_min",
            "p99_us_max",
        ],
        &rows,
    );
}

fn tuned_drops_section(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    ledger: &Arc<DropLedger>,
    rounds: usize,
    quick: bool,
    csv: &Csv,
) {
    println!();
    println!("## Server-side drops (TCP close without a Close frame), zero initial interval, healthy_after 100 ms");
    let mut rows = Vec::new();
    for (label, acked, rate, total, k) in [
        ("plain, 1k msg/s", false, 1_000u64, 3_000usize, 500usize),
        ("plain, unpaced", false, 0, 200_000, 20_000),
        ("acknowledged, unpaced", true, 0, 200_000, 20_000),
    ] {
        let total = if quick { total / 4 } else { total };
        let k = if quick { k / 4 } else { k };
        let mut lost = Samples::default();
        let mut gap = Samples::default();
        let mut drops_seen = 0;
        for _ in 0..rounds.min(3) {
            let r = rt.block_on(drops(addr, ledger, acked, rate, total, k));
            lost.push(r.lost_per_drop);
            gap.push(r.gap_ms);
            drops_seen += r.drops;
        }
        println!(
            "{label:<24} lost per drop {:>7.1} ({:.1}–{:.1})   drop → first message on the new connection {:.3} ms median ({:.3}–{:.3})   [{drops_seen} drops]",
            lost.median(),
            lost.min(),
            lost.max(),
            gap.median(),
            gap.min(),
            gap.max(),
        );
        rows.push(format!(
            "{},{},{},{},{},{},{},{drops_seen}",
            label.replace(',', ""),
            lost.median(),
            lost.min(),
            lost.max(),
            gap.median(),
            gap.min(),
            gap.max(),
        ));
    }
    csv.write(
        "tuned_drops",
        &[
            "scenario",
            "lost_per_drop_median",
            "lost_per_drop_min",
            "lost_per_drop_max",
            "gap_ms_median",
            "gap_ms_min",
            "gap_ms_max",
            "drops",
        ],
        &rows,
    );
}

fn memory_section(quick: bool, csv: &Csv) {
    println!();
    let n = if quick { 200 } else { 2_000 };
    let (raw, ours) = memory(n);
    println!("## Memory: RSS per idle connection ({n} connections, one message read each)");
    println!(
        "raw tokio-tungstenite {raw:.1} KiB   ReconnectingSink {ours:.1} KiB   ratio {:.3}",
        ours / raw
    );
    csv.write(
        "memory",
        &["connections", "raw_kib_per_conn", "ours_kib_per_conn"],
        &[format!("{n},{raw},{ours}")],
    );
}
