//! One server-side drop, seen from the server: messages received per millisecond
//! around it, for each contender.
//!
//! The client sends numbered 64-byte text messages as fast as it can (as in the
//! `drops` section); the server closes the TCP connection without a Close frame after
//! [`DROP_AFTER`] messages on it and records when every message arrived. The client
//! sends until [`AFTER`] past the drop, once something arrived on a new connection (or
//! [`GIVE_UP`] after the drop). Raw tokio-tungstenite stops at its first error.
//! Clients: raw, stream-reconnect with its defaults, `ReconnectingSink` with defaults
//! except `initial_interval(0)`, plain and acknowledged.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use futures::{Sink, SinkExt};
use tokio_tungstenite::tungstenite::Message;
use ws_reconnect::ReconnectingSink;

use crate::common::{self, DropLedger};
use crate::out::Csv;

/// Messages on a connection before the server drops it: long enough for a steady rate
/// before the drop, and no second drop within the charted window after it.
const DROP_AFTER: usize = 300_000;
/// The charted window around the drop, in whole milliseconds.
const BEFORE_MS: i64 = 20;
const AFTER_MS: i64 = 80;
const AFTER: Duration = Duration::from_millis(AFTER_MS as u64);
/// Time after the drop at which a client that has not come back is given up on.
const GIVE_UP: Duration = Duration::from_secs(7);

#[derive(Clone, Copy, PartialEq)]
enum Client {
    Raw,
    Peer,
    Plain,
    Acked,
}

impl Client {
    const ALL: [Client; 4] = [Client::Raw, Client::Peer, Client::Plain, Client::Acked];

    fn key(self) -> &'static str {
        match self {
            Client::Raw => "raw",
            Client::Peer => "stream-reconnect",
            Client::Plain => "ws-reconnect",
            Client::Acked => "ws-reconnect-acked",
        }
    }
}

/// Sends until the stop rule holds; `stops`: end at the first error (raw).
async fn send<S>(ws: &mut S, ledger: &DropLedger, stops: bool)
where
    S: Sink<Message> + Unpin,
{
    let mut id = 0usize;
    loop {
        for _ in 0..256 {
            id += 1;
            while ws.feed(Message::text(format!("{id:0>64}"))).await.is_err() {
                if stops {
                    return;
                }
                // As in the drops section: flush, and offer the same message again (it
                // was not accepted, so it must not count as lost).
                let _ = ws.flush().await;
            }
        }
        let dropped = ledger.drop_times.lock().unwrap().first().copied();
        if let Some(at) = dropped {
            let resumed = !ledger.gaps_first_message.lock().unwrap().is_empty();
            if (resumed && at.elapsed() >= AFTER) || at.elapsed() >= GIVE_UP {
                let _ = ws.flush().await;
                return;
            }
        }
    }
}

struct Run {
    /// Arrival times relative to the first drop, in ms.
    arrivals_ms: Vec<f64>,
    /// From the drop to the first message on a new connection, in ms (NaN: none).
    first_after_ms: f64,
    /// Messages up to the last one received that the server never received.
    lost: usize,
}

async fn one(addr: SocketAddr, ledger: &Arc<DropLedger>, client: Client) -> Option<Run> {
    ledger.reset();
    ledger.record_times.store(true, SeqCst);
    let url = format!(
        "ws://{addr}/drop/{DROP_AFTER}/{}",
        u8::from(client == Client::Acked)
    );
    let run = async {
        match client {
            Client::Raw => {
                let (mut ws, _) =
                    tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
                        .await
                        .unwrap();
                send(&mut ws, ledger, true).await;
            }
            Client::Peer => {
                let mut ws = common::peer::connect(&url).await;
                send(&mut ws, ledger, false).await;
            }
            Client::Plain | Client::Acked => {
                let builder = ReconnectingSink::builder().initial_interval(Duration::ZERO);
                let builder = if client == Client::Acked {
                    builder.acknowledged(crate::TextAcks, 1024)
                } else {
                    builder
                };
                let mut ws = builder.connect(&url).await.unwrap();
                send(&mut ws, ledger, false).await;
                let _ = ws.close().await;
            }
        }
    };
    let bounded = tokio::time::timeout(GIVE_UP + Duration::from_secs(10), run).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    ledger.record_times.store(false, SeqCst);
    if bounded.is_err() {
        println!("  {}: not done within the bound", client.key());
    }
    let drop_at = *ledger.drop_times.lock().unwrap().first()?;
    let arrivals_ms = ledger
        .arrivals
        .lock()
        .unwrap()
        .iter()
        .map(|&t| {
            if t >= drop_at {
                (t - drop_at).as_secs_f64() * 1e3
            } else {
                -(drop_at - t).as_secs_f64() * 1e3
            }
        })
        .collect::<Vec<_>>();
    let first_after_ms = ledger
        .gaps_first_message
        .lock()
        .unwrap()
        .first()
        .copied()
        .unwrap_or(f64::NAN);
    // Loss is counted up to the last message that arrived.
    let highest = ledger.counts.lock().unwrap().len().saturating_sub(1);
    Some(Run {
        arrivals_ms,
        first_after_ms,
        lost: ledger.lost(highest),
    })
}

pub fn section(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    ledger: &Arc<DropLedger>,
    csv: &Csv,
) {
    println!();
    println!(
        "## Timeline of one server-side drop (TCP closed without a Close frame after {DROP_AFTER} messages), unpaced 64 B: messages received per ms"
    );
    let mut rows = Vec::new();
    let mut summary = Vec::new();
    for client in Client::ALL {
        let Some(run) = rt.block_on(one(addr, ledger, client)) else {
            println!("{:<20} no drop happened", client.key());
            continue;
        };
        let mut buckets = vec![0u32; (BEFORE_MS + AFTER_MS) as usize];
        for &a in &run.arrivals_ms {
            let b = a.floor() as i64 + BEFORE_MS;
            if (0..BEFORE_MS + AFTER_MS).contains(&b) {
                buckets[b as usize] += 1;
            }
        }
        let before: u32 = buckets[..BEFORE_MS as usize].iter().sum();
        let after: u32 = buckets[BEFORE_MS as usize..].iter().sum();
        println!(
            "{:<20} {:>6.0} msg/ms in the {BEFORE_MS} ms before the drop, {:>6.0} msg/ms in the {AFTER_MS} ms after; first message on a new connection {:>9.3} ms after the drop; lost {}",
            client.key(),
            before as f64 / BEFORE_MS as f64,
            after as f64 / AFTER_MS as f64,
            run.first_after_ms,
            run.lost,
        );
        for (i, count) in buckets.iter().enumerate() {
            rows.push(format!("{},{},{count}", client.key(), i as i64 - BEFORE_MS));
        }
        summary.push(format!(
            "{},{},{},{},{}",
            client.key(),
            run.first_after_ms,
            before as f64 / BEFORE_MS as f64,
            after as f64 / AFTER_MS as f64,
            run.lost
        ));
    }
    csv.write("timeline", &["contender", "ms", "received"], &rows);
    csv.write(
        "timeline_summary",
        &[
            "contender",
            "first_after_ms",
            "per_ms_before",
            "per_ms_after",
            "lost",
        ],
        &summary,
    );
}
