//! `cargo bench --features server --bench resume`: resume mode against plain mode.
//!
//! One-way throughput (client to server) and CPU per message at 64 B and 1 KiB, on
//! loopback and through a [`FaultProxy`] delay line of 20 ms each way, in interleaved
//! rounds:
//!
//! - plain: a [`ReconnectingSink`] `feed`ing to a tokio-tungstenite server that answers
//!   "done" after the last message;
//! - resume: a [`ResumingSink`] (default settings) `feed`ing to this crate's resume
//!   server, whose application answers "done" after the last message. Every message is
//!   acknowledged by the server and kept by the client until then.
//!
//! The client runs on a current-thread runtime on the main thread, so its thread CPU
//! time is the cost of the sink; the servers and the proxy run on a thread of their own.
//! "process" CPU counts every thread: client, server and proxy. "User" CPU is the client
//! thread's time in user space: the sink's own work, without the kernel's socket work
//! (which on loopback swings with scheduling; see BENCHMARKS.md).
//!
//! Each row twice: with one payload buffer shared by every message (the sink's own cost),
//! and with a buffer of its own per message (as an application that produces data: the
//! allocation, and the memory held while messages are in flight, which resume mode holds
//! until the server acknowledges and plain mode only until its Pong).
//!
//! Options: `--rounds N` (default 3), `--quick` (smaller counts, for a smoke run),
//! `--profile plain|resume [SIZE]` (that mode, 64 B or SIZE on loopback, over and over, for a
//! profiler; with `--slow`, through the 20 ms delay line; with `--fresh`, a buffer per
//! message; with `--messages N`, N messages a round, e.g. fewer under valgrind).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::net::TcpListener;
use ws_reconnect::server::{Server, ServerConfig};
use ws_reconnect::testing::{FaultProxy, Link};
use ws_reconnect::{Error, Message, ReconnectingSink, ResumeConfig};

mod common;

use common::{flag_value, median, process_cpu, thread_cpu, thread_user_cpu, wait_done};

/// The latency of the slow path, each way.
const LATENCY: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Resume,
}

/// Where each message's payload comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    /// One buffer for every message (a clone is a reference count): the sink's cost alone.
    Shared,
    /// A buffer of its own for every message, as an application that produces data makes
    /// them: the allocation, and the memory a sink holds while messages are in flight.
    Fresh,
}

/// Where the servers listen: directly, and behind the delay line.
#[derive(Debug, Clone, Copy)]
struct Addrs {
    plain: SocketAddr,
    resume: SocketAddr,
    plain_slow: SocketAddr,
    resume_slow: SocketAddr,
}

impl Addrs {
    fn get(&self, mode: Mode, slow: bool) -> SocketAddr {
        match (mode, slow) {
            (Mode::Plain, false) => self.plain,
            (Mode::Resume, false) => self.resume,
            (Mode::Plain, true) => self.plain_slow,
            (Mode::Resume, true) => self.resume_slow,
        }
    }
}

/// One run's outcome.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rate: f64,
    client_ns: f64,
    /// The client thread's user-space CPU: the sink's own work, without the kernel's.
    client_user_ns: f64,
    process_ns: f64,
}

/// The resume server, and a delay line in front of each server, on a thread of their own.
fn servers() -> Addrs {
    let plain = common::server();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (server, mut sessions) = Server::new(ServerConfig::default());
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let resume = listener.local_addr().unwrap();
            tokio::spawn(server.serve(listener));
            let slow = Link::new().latency(LATENCY);
            let plain_slow = FaultProxy::start_with(plain, slow).await.unwrap();
            let resume_slow = FaultProxy::start_with(resume, slow).await.unwrap();
            tx.send(Addrs {
                plain,
                resume,
                plain_slow: plain_slow.addr(),
                resume_slow: resume_slow.addr(),
            })
            .unwrap();
            // Each session: count the client's messages; "done" after the number its
            // first message names.
            while let Some(mut session) = sessions.next().await {
                tokio::spawn(async move {
                    let Some(Ok(first)) = session.next().await else {
                        return;
                    };
                    let n: u64 = first.to_text().unwrap().parse().unwrap();
                    let mut seen = 0;
                    while let Some(Ok(m)) = session.next().await {
                        seen += 1;
                        if seen == n {
                            let _ = session.send(Message::text("done")).await;
                        }
                        drop(m);
                    }
                });
            }
            drop((plain_slow, resume_slow));
        });
    });
    rx.recv().unwrap()
}

/// A run: which mode, through which path, what messages.
#[derive(Debug, Clone, Copy)]
struct Case {
    slow: bool,
    size: usize,
    n: u64,
    payload: Payload,
}

/// `case.n` messages one way, then the server's "done".
async fn run(addrs: Addrs, mode: Mode, case: Case) -> Sample {
    let Case {
        slow,
        size,
        payload,
        n,
    } = case;
    let payload = (Bytes::from(vec![7u8; size]), payload);
    let addr = addrs.get(mode, slow);
    match mode {
        Mode::Plain => {
            let url = format!("ws://{addr}/count/{n}/0");
            let mut ws = ReconnectingSink::connect(&url).await.unwrap();
            let sample = timed(&mut ws, &payload, n).await;
            let _ = ws.close().await;
            sample
        }
        Mode::Resume => {
            let mut ws = ReconnectingSink::builder()
                .resume(ResumeConfig::default())
                .connect(format!("ws://{addr}/"))
                .await
                .unwrap();
            ws.send(Message::text(n.to_string())).await.unwrap();
            let sample = timed(&mut ws, &payload, n).await;
            let _ = ws.close().await;
            sample
        }
    }
}

/// Feeds `n` messages of `payload`'s bytes into `ws`, flushes, waits for "done": timed,
/// with the client thread's and the process's CPU.
async fn timed<S>(ws: &mut S, payload: &(Bytes, Payload), n: u64) -> Sample
where
    S: Sink<Message, Error = Error> + Stream<Item = Result<Message, Error>> + Unpin,
{
    let (cpu0, user0, all0) = (thread_cpu(), thread_user_cpu(), process_cpu());
    let t0 = Instant::now();
    for _ in 0..n {
        let bytes = match payload {
            (shared, Payload::Shared) => shared.clone(),
            (shared, Payload::Fresh) => Bytes::copy_from_slice(shared),
        };
        ws.feed(Message::Binary(bytes)).await.unwrap();
    }
    ws.flush().await.unwrap();
    wait_done(ws).await;
    let per = |d: Duration| d.as_nanos() as f64 / n as f64;
    Sample {
        rate: n as f64 / t0.elapsed().as_secs_f64(),
        client_ns: per(thread_cpu() - cpu0),
        client_user_ns: per(thread_user_cpu() - user0),
        process_ns: per(process_cpu() - all0),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = flag_value(&args, "--rounds").unwrap_or(if quick { 1 } else { 3 });
    if args.iter().any(|a| a == "--bench") && !quick && rounds == 0 {
        return;
    }
    let addrs = servers();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        let mode = match args.get(i + 1).map(String::as_str) {
            Some("plain") => Mode::Plain,
            _ => Mode::Resume,
        };
        let size = args.get(i + 2).and_then(|s| s.parse().ok()).unwrap_or(64);
        let slow = args.iter().any(|a| a == "--slow");
        let case = Case {
            slow,
            size,
            n: flag_value(&args, "--messages").unwrap_or(if slow { 100_000 } else { 1_000_000 }),
            payload: if args.iter().any(|a| a == "--fresh") {
                Payload::Fresh
            } else {
                Payload::Shared
            },
        };
        for _ in 0..rounds.max(1) {
            let s = rt.block_on(run(addrs, mode, case));
            println!(
                "{mode:?}: {:.0} msg/s, {:.0} ns/msg client CPU, {:.0} user",
                s.rate, s.client_ns, s.client_user_ns
            );
        }
        return;
    }
    println!(
        "| payload | path | size | plain msg/s | resume msg/s | rate resume/plain | client CPU ns/msg plain \
         → resume | CPU resume/plain | client user CPU ns/msg plain → resume | user CPU \
         resume/plain | process CPU ns/msg plain → resume | process resume/plain |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let runs = [
        (false, 64usize, 1_000_000u64),
        (false, 1024, 500_000),
        (true, 64, 50_000),
        (true, 1024, 50_000),
    ];
    let cases = [Payload::Shared, Payload::Fresh]
        .into_iter()
        .flat_map(|payload| {
            runs.map(|(slow, size, n)| Case {
                slow,
                size,
                n: if quick { n / 10 } else { n },
                payload,
            })
        });
    for case in cases {
        let mut samples = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (i, mode) in [Mode::Plain, Mode::Resume].into_iter().enumerate() {
                samples[i].push(rt.block_on(run(addrs, mode, case)));
            }
        }
        let m = |i: usize, f: fn(&Sample) -> f64| median(samples[i].iter().map(f).collect());
        let pair = |f: fn(&Sample) -> f64| (m(0, f), m(1, f));
        let (plain_rate, resume_rate) = pair(|s| s.rate);
        let (plain_cpu, resume_cpu) = pair(|s| s.client_ns);
        let (plain_user, resume_user) = pair(|s| s.client_user_ns);
        let (plain_all, resume_all) = pair(|s| s.process_ns);
        let path = if case.slow {
            "20 ms each way"
        } else {
            "loopback"
        };
        let (size, payload) = (case.size, case.payload);
        println!(
            "| {payload:?} | {path} | {size} B | {plain_rate:.0} | {resume_rate:.0} | {:.2} | {plain_cpu:.0} → \
             {resume_cpu:.0} | {:.2} | {plain_user:.0} → {resume_user:.0} | {:.2} | \
             {plain_all:.0} → {resume_all:.0} | {:.2} |",
            resume_rate / plain_rate,
            resume_cpu / plain_cpu,
            resume_user / plain_user,
            resume_all / plain_all,
        );
    }
}
