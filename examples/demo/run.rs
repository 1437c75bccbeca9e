//! The demo's client: numbered messages through `ReconnectingSink` into the fault server,
//! and the accounting at the end.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use futures::{stream, StreamExt};
use tokio::time::Instant;
use ws_reconnect::{Acknowledge, Error, Message, ReconnectingSink, StatsHandle};

use crate::faults::{self, FaultConfig, Ledger};

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub count: u64,
    /// Messages per second; 0 sends as fast as the connection takes them.
    pub rate: u64,
    /// Faults per 1,000 messages.
    pub faults_per_thousand: f64,
    pub seed: u64,
    /// Without acknowledgements (flushed messages may be lost in a reset).
    pub plain: bool,
    /// Send through a spawned `Handle` and await each message's delivery outcome.
    pub handle: bool,
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    pub sent: AtomicU64,
    pub replies: AtomicU64,
    pub stats: std::sync::Mutex<Option<StatsHandle>>,
}

impl Progress {
    pub fn reconnections(&self) -> u64 {
        self.stats
            .lock()
            .unwrap()
            .as_ref()
            .map_or(0, |s| s.get().reconnects)
    }
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub options: Options,
    pub sent: u64,
    pub received: u64,
    pub duplicates: u64,
    pub resent: u64,
    pub lost: u64,
    pub reconnections: u64,
    pub graceful_closes: u64,
    pub resets: u64,
    pub refused: u64,
    pub hellos: u64,
    pub replies: u64,
    /// With `--handle`: outcomes that resolved `Ok` (flushed; acknowledged in
    /// acknowledged mode), and ids so confirmed that the server never received.
    pub confirmed: Option<u64>,
    pub confirmed_but_lost: u64,
    pub longest_outage: Duration,
    pub elapsed: Duration,
    pub error: Option<String>,
}

impl Summary {
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Whether a message the library promised to deliver was lost: in acknowledged mode
    /// any loss; in plain mode a flushed message lost in a reset is allowed.
    pub fn broke_the_promise(&self) -> bool {
        self.error.is_some()
            || (!self.options.plain && (self.lost > 0 || self.confirmed_but_lost > 0))
    }
}

/// Outbound messages are their id; the server acknowledges with "ack:<id>".
struct DemoAcks;

impl Acknowledge for DemoAcks {
    fn id(&mut self, outbound: &Message) -> Option<u64> {
        outbound.to_text().ok()?.parse().ok()
    }
    fn acked(&mut self, inbound: &Message) -> Option<u64> {
        inbound.to_text().ok()?.strip_prefix("ack:")?.parse().ok()
    }
}

pub async fn run(options: Options, progress: Arc<Progress>) -> Summary {
    let ledger = Arc::new(Ledger::new(options.count));
    let mean = if options.faults_per_thousand > 0.0 {
        (1000.0 / options.faults_per_thousand) as u64
    } else {
        u64::MAX / 4
    };
    let config = FaultConfig {
        seed: options.seed,
        mean_messages_per_connection: mean,
        refuse_probability: if options.faults_per_thousand > 0.0 {
            0.15
        } else {
            0.0
        },
        acks: !options.plain,
    };
    let (addr, server) = faults::start(config, ledger.clone()).await;
    let started = Instant::now();
    let url = format!("ws://{addr}/demo");
    let confirmed = Arc::new(Confirmed::default());
    let outcome = if options.handle {
        drive_handle(options, &url, progress.clone(), confirmed.clone()).await
    } else {
        drive(options, &url, progress.clone()).await
    };
    let elapsed = started.elapsed();
    let (stats, error) = match outcome {
        Ok(stats) => (Some(stats), None),
        Err((stats, e)) => (stats, Some(e.to_string())),
    };
    server.abort();
    let sent = progress.sent.load(Relaxed);
    let tally = ledger.tally(sent);
    let stats = stats.map(|s| s.get()).unwrap_or_default();
    let confirmed_ids = std::mem::take(&mut *confirmed.ids.lock().unwrap());
    Summary {
        options,
        sent,
        received: tally.unique,
        duplicates: tally.duplicates,
        resent: stats.messages_resent,
        lost: tally.lost,
        reconnections: stats.reconnects,
        graceful_closes: ledger.graceful_closes.load(Relaxed),
        resets: ledger.resets.load(Relaxed),
        refused: ledger.refused.load(Relaxed),
        hellos: ledger.hellos.load(Relaxed),
        replies: progress.replies.load(Relaxed),
        confirmed: options.handle.then_some(confirmed_ids.len() as u64),
        confirmed_but_lost: confirmed_ids
            .iter()
            .filter(|&&id| !ledger.received(id))
            .count() as u64,
        longest_outage: ledger.longest_outage(),
        elapsed,
        error,
    }
}

type Failure = (Option<StatsHandle>, Error);

/// The ids whose delivery outcome resolved `Ok`.
#[derive(Debug, Default)]
pub struct Confirmed {
    ids: std::sync::Mutex<Vec<u64>>,
}

fn builder(options: Options) -> ws_reconnect::Builder {
    let builder = ReconnectingSink::builder()
        .initial_interval(Duration::from_millis(20))
        .randomization_factor(0.5)
        .max_interval(Duration::from_millis(500))
        .max_reconnections_total(10_000)
        .max_reconnections_time(Duration::from_secs(60))
        .healthy_after(Duration::from_millis(500))
        .on_connect(Message::text("hello"));
    if options.plain {
        builder
    } else {
        builder
            .acknowledged(DemoAcks, 1024)
            .ack_timeout(Duration::from_secs(2))
    }
}

async fn drive(
    options: Options,
    url: &str,
    progress: Arc<Progress>,
) -> Result<StatsHandle, Failure> {
    let ws = builder(options).connect(url).await.map_err(|e| (None, e))?;
    let stats = ws.stats_handle();
    *progress.stats.lock().unwrap() = Some(stats.clone());
    let (sink, mut replies) = ws.split();

    let counter = progress.clone();
    let reader = tokio::spawn(async move {
        while let Some(item) = replies.next().await {
            match item {
                Ok(m) if m.to_text().is_ok_and(|t| t.starts_with("reply ")) => {
                    counter.replies.fetch_add(1, Relaxed);
                }
                Ok(_) => {}
                Err(e) => eprintln!("reader: {e}"),
            }
        }
    });

    let start = Instant::now();
    let numbers = stream::unfold(1u64, move |id| {
        let progress = progress.clone();
        async move {
            if id > options.count {
                return None;
            }
            if options.rate > 0 {
                let due = start + Duration::from_secs_f64(id as f64 / options.rate as f64);
                tokio::time::sleep_until(due).await;
            }
            progress.sent.fetch_add(1, Relaxed);
            Some((Ok(Message::text(id.to_string())), id + 1))
        }
    });
    let result = numbers.forward(sink).await;
    reader.abort();
    match result {
        Ok(()) => Ok(stats),
        Err(e) => Err((Some(stats), e)),
    }
}

/// The same run through a spawned [`ws_reconnect::Handle`]: each message is sent with
/// `deliver`, and its outcome is awaited (in order) by a task that records the ids
/// confirmed.
async fn drive_handle(
    options: Options,
    url: &str,
    progress: Arc<Progress>,
    confirmed: Arc<Confirmed>,
) -> Result<StatsHandle, Failure> {
    let ws = builder(options).connect(url).await.map_err(|e| (None, e))?;
    let stats = ws.stats_handle();
    *progress.stats.lock().unwrap() = Some(stats.clone());
    let (handle, mut incoming) = ws.spawn();

    let counter = progress.clone();
    let reader = tokio::spawn(async move {
        while let Some(item) = incoming.next().await {
            match item {
                Ok(m) if m.to_text().is_ok_and(|t| t.starts_with("reply ")) => {
                    counter.replies.fetch_add(1, Relaxed);
                }
                Ok(_) => {}
                Err(e) => eprintln!("reader: {e}"),
            }
        }
    });
    // Outcomes resolve in order: one task awaits them one after the other.
    let (outcomes_tx, mut outcomes_rx) = tokio::sync::mpsc::unbounded_channel();
    let awaiter = tokio::spawn(async move {
        let mut failed = None;
        while let Some((id, delivery)) = outcomes_rx.recv().await {
            match delivery.await {
                Ok(()) => confirmed.ids.lock().unwrap().push(id),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        failed
    });

    let start = Instant::now();
    for id in 1..=options.count {
        if options.rate > 0 {
            let due = start + Duration::from_secs_f64(id as f64 / options.rate as f64);
            tokio::time::sleep_until(due).await;
        }
        match handle.deliver(Message::text(id.to_string())).await {
            Ok(delivery) => {
                progress.sent.fetch_add(1, Relaxed);
                let _ = outcomes_tx.send((id, delivery));
            }
            Err(e) => return Err((Some(stats), Error::from_boxed(Box::new(e)))),
        }
    }
    drop(outcomes_tx);
    let shutdown = handle.close().await;
    let failed = awaiter.await.unwrap_or(None);
    reader.abort();
    if let Err(e) = shutdown.result {
        return Err((Some(stats), e));
    }
    match failed {
        None => Ok(stats),
        Some(e) => Err((Some(stats), Error::from_boxed(Box::new(e)))),
    }
}
