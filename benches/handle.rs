//! `cargo bench --bench handle`: sending through a spawned [`Handle`] against using the
//! sink directly, in interleaved rounds.
//!
//! One-way throughput and client CPU per message at 64 B and 1 KiB: the sink fed
//! directly (`feed` in a loop, one flush), a handle with one sending task, and a handle
//! with eight sending tasks sharing the count. The client runs on a current-thread
//! runtime on the main thread, so its thread CPU time covers the senders and the
//! handle's task; the server runs on a thread of its own. The last way is what a user
//! without a handle would write: eight tasks sharing the sink behind a
//! `tokio::sync::Mutex`, each locking it to `feed` one message (one flush at the end).
//!
//! Options: `--rounds N` (default 5), `--quick` (smaller counts, for a smoke run),
//! `--profile WAY` (one way, `direct`, `handle` or `handle8`, at 64 B over and over, for
//! a profiler).
//!
//! [`Handle`]: ws_reconnect::Handle

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use ws_reconnect::ReconnectingSink;

mod common;

use common::{flag_value, median, thread_cpu, wait_done};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Direct,
    Handle { senders: u64 },
    Mutex { senders: u64 },
}

impl Way {
    fn name(self) -> String {
        match self {
            Way::Direct => "sink, direct".into(),
            Way::Handle { senders: 1 } => "handle, 1 sender".into(),
            Way::Handle { senders } => format!("handle, {senders} senders"),
            Way::Mutex { senders } => format!("sink in a mutex, {senders} senders"),
        }
    }
}

/// One run: `n` messages of `size` bytes to a server that answers "done" after `n`.
/// Returns (messages per second, client CPU ns per message).
async fn run(addr: SocketAddr, way: Way, size: usize, n: u64) -> (f64, f64) {
    let payload = Bytes::from(vec![7u8; size]);
    let url = format!("ws://{addr}/count/{n}/0");
    let ws = ReconnectingSink::connect(&url).await.unwrap();
    let cpu0 = thread_cpu();
    let t0 = Instant::now();
    match way {
        Way::Direct => {
            let mut ws = ws;
            for _ in 0..n {
                ws.feed(Message::Binary(payload.clone())).await.unwrap();
            }
            ws.flush().await.unwrap();
            wait_done(&mut ws).await;
            let out = (t0.elapsed(), thread_cpu() - cpu0);
            let _ = ws.close().await;
            rates(out, n)
        }
        Way::Handle { senders } => {
            let (handle, mut incoming) = ws.spawn();
            let per = n / senders;
            let tasks: Vec<_> = (0..senders)
                .map(|s| {
                    let (handle, payload) = (handle.clone(), payload.clone());
                    let count = if s == senders - 1 { n - per * s } else { per };
                    tokio::spawn(async move {
                        for _ in 0..count {
                            handle.send(Message::Binary(payload.clone())).await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            wait_done(&mut incoming).await;
            let out = (t0.elapsed(), thread_cpu() - cpu0);
            let _ = handle.close().await;
            rates(out, n)
        }
        Way::Mutex { senders } => {
            let ws = std::sync::Arc::new(tokio::sync::Mutex::new(ws));
            let per = n / senders;
            let tasks: Vec<_> = (0..senders)
                .map(|s| {
                    let (ws, payload) = (ws.clone(), payload.clone());
                    let count = if s == senders - 1 { n - per * s } else { per };
                    tokio::spawn(async move {
                        for _ in 0..count {
                            let msg = Message::Binary(payload.clone());
                            ws.lock().await.feed(msg).await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let mut ws = ws.lock().await;
            ws.flush().await.unwrap();
            wait_done(&mut *ws).await;
            let out = (t0.elapsed(), thread_cpu() - cpu0);
            let _ = ws.close().await;
            rates(out, n)
        }
    }
}

fn rates((elapsed, cpu): (Duration, Duration), n: u64) -> (f64, f64) {
    (
        n as f64 / elapsed.as_secs_f64(),
        cpu.as_nanos() as f64 / n as f64,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = flag_value(&args, "--rounds").unwrap_or(if quick { 2 } else { 5 });
    if args.iter().any(|a| a == "--bench") && !quick && rounds == 0 {
        return;
    }
    let addr = common::server();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        let way = match args.get(i + 1).map(String::as_str) {
            Some("direct") => Way::Direct,
            Some("handle8") => Way::Handle { senders: 8 },
            _ => Way::Handle { senders: 1 },
        };
        for _ in 0..rounds.max(1) {
            let (rate, cpu) = rt.block_on(run(addr, way, 64, 1_000_000));
            println!("{}: {rate:.0} msg/s, {cpu:.0} ns/msg", way.name());
        }
        return;
    }
    let ways = [
        Way::Direct,
        Way::Handle { senders: 1 },
        Way::Handle { senders: 8 },
        Way::Mutex { senders: 8 },
    ];
    println!("| size | way | msg/s (median of {rounds}) | ratio | client CPU ns/msg | ratio |");
    println!("|---|---|---|---|---|---|");
    for (size, n) in [(64usize, 200_000u64), (1024, 100_000)] {
        let n = if quick { n / 10 } else { n };
        let mut results = vec![(Vec::new(), Vec::new()); ways.len()];
        for _ in 0..rounds {
            for (i, way) in ways.iter().enumerate() {
                let (rate, cpu) = rt.block_on(run(addr, *way, size, n));
                results[i].0.push(rate);
                results[i].1.push(cpu);
            }
        }
        let medians: Vec<(f64, f64)> = results
            .into_iter()
            .map(|(r, c)| (median(r), median(c)))
            .collect();
        let (base_rate, base_cpu) = medians[0];
        for (way, (rate, cpu)) in ways.iter().zip(&medians) {
            println!(
                "| {size} B | {} | {:.0} | {:.2} | {:.0} | {:.2} |",
                way.name(),
                rate,
                rate / base_rate,
                cpu,
                cpu / base_cpu
            );
        }
    }
}
