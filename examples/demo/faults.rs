//! The demo's deliberately unreliable WebSocket server, and its ledger of every message
//! id it received.
//!
//! Faults, drawn from a seeded generator: each connection ends after a random number of
//! messages, half the time with a graceful Close (it keeps reading until the client's
//! Close, as RFC 6455 allows) and half the time with an abrupt reset (RST: whatever was
//! in flight is gone); and now and then the server refuses handshakes with 503 for a few
//! attempts. In acknowledged mode it acknowledges the contiguous prefix of ids it has
//! applied, every 64 messages and every 10 ms.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, Copy)]
pub struct FaultConfig {
    pub seed: u64,
    /// Mean number of messages a connection carries before its fault.
    pub mean_messages_per_connection: u64,
    /// Chance that a new connection attempt starts a spell of 503 refusals.
    pub refuse_probability: f64,
    /// Acknowledge ids ("ack:<id>").
    pub acks: bool,
}

/// Everything the server saw.
#[derive(Debug, Default)]
pub struct Ledger {
    /// How many times each id arrived (index = id).
    counts: Mutex<Vec<u32>>,
    /// Highest id such that every id up to it has arrived.
    pub contiguous: AtomicU64,
    pub connections: AtomicU64,
    pub graceful_closes: AtomicU64,
    pub resets: AtomicU64,
    pub refused: AtomicU64,
    pub hellos: AtomicU64,
    outage: Mutex<Outage>,
}

#[derive(Debug, Default)]
struct Outage {
    down_since: Option<Instant>,
    longest: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub unique: u64,
    pub duplicates: u64,
    pub lost: u64,
}

impl Ledger {
    pub fn new(count: u64) -> Self {
        Ledger {
            counts: Mutex::new(vec![0; count as usize + 1]),
            ..Ledger::default()
        }
    }

    fn record(&self, id: u64) {
        let mut counts = self.counts.lock().unwrap();
        if let Some(c) = counts.get_mut(id as usize) {
            *c += 1;
        }
        let mut next = self.contiguous.load(SeqCst) + 1;
        while counts.get(next as usize).is_some_and(|&c| c > 0) {
            next += 1;
        }
        self.contiguous.store(next - 1, SeqCst);
    }

    /// Whether `id` arrived at least once.
    pub fn received(&self, id: u64) -> bool {
        self.counts
            .lock()
            .unwrap()
            .get(id as usize)
            .is_some_and(|&c| c > 0)
    }

    /// Unique ids received, duplicates, and ids in `1..=sent` never received.
    pub fn tally(&self, sent: u64) -> Tally {
        let counts = self.counts.lock().unwrap();
        let mut t = Tally::default();
        for (id, &c) in counts.iter().enumerate().skip(1) {
            if c > 0 {
                t.unique += 1;
                t.duplicates += u64::from(c - 1);
            } else if (id as u64) <= sent {
                t.lost += 1;
            }
        }
        t
    }

    pub fn longest_outage(&self) -> Duration {
        self.outage.lock().unwrap().longest
    }

    fn connection_ended(&self) {
        let mut o = self.outage.lock().unwrap();
        o.down_since.get_or_insert_with(Instant::now);
    }

    fn connection_started(&self) {
        self.connections.fetch_add(1, SeqCst);
        let mut o = self.outage.lock().unwrap();
        if let Some(since) = o.down_since.take() {
            o.longest = o.longest.max(since.elapsed());
        }
    }
}

/// Starts the server on 127.0.0.1:0; dropping the handle stops it and its connections.
pub async fn start(config: FaultConfig, ledger: Arc<Ledger>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let mut rng = SmallRng::seed_from_u64(config.seed);
        let mut refusals_left = 0u32;
        let mut tasks = tokio::task::JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            if refusals_left == 0 && rng.random_bool(config.refuse_probability) {
                refusals_left = rng.random_range(1..=3);
            }
            if refusals_left > 0 {
                refusals_left -= 1;
                ledger.refused.fetch_add(1, SeqCst);
                tasks.spawn(refuse(tcp));
                continue;
            }
            let mean = config.mean_messages_per_connection.max(1);
            let budget = rng.random_range(1..=2 * mean);
            let graceful = rng.random_bool(0.5);
            tasks.spawn(serve(tcp, ledger.clone(), budget, graceful, config.acks));
        }
    });
    (addr, task)
}

async fn refuse(tcp: tokio::net::TcpStream) {
    #[allow(clippy::result_large_err)] // tungstenite's callback signature
    let callback = |_: &Request, _: Response| -> Result<Response, ErrorResponse> {
        let mut response = ErrorResponse::new(Some("busy, try again".into()));
        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        Err(response)
    };
    let _ = tokio_tungstenite::accept_hdr_async(tcp, callback).await;
}

async fn serve(
    tcp: tokio::net::TcpStream,
    ledger: Arc<Ledger>,
    budget: u64,
    graceful: bool,
    acks: bool,
) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    ledger.connection_started();
    let mut on_this = 0u64;
    let mut closing = false;
    let mut last_acked = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        let ack_now = tokio::select! {
            item = ws.next() => {
                let Some(Ok(message)) = item else { break };
                let Message::Text(text) = message else { continue };
                if text.as_str() == "hello" {
                    ledger.hellos.fetch_add(1, SeqCst);
                    continue;
                }
                let Ok(id) = text.as_str().parse::<u64>() else { continue };
                ledger.record(id);
                on_this += 1;
                if id % 1000 == 0 {
                    let _ = ws.feed(Message::text(format!("reply {id}"))).await;
                }
                if on_this == budget && !closing {
                    if graceful {
                        ledger.graceful_closes.fetch_add(1, SeqCst);
                        closing = true;
                        let _ = ws.close(None).await;
                    } else {
                        ledger.resets.fetch_add(1, SeqCst);
                        let _ = ws.get_ref().set_zero_linger();
                        break;
                    }
                }
                on_this % 64 == 0
            }
            _ = tick.tick() => true,
        };
        let contiguous = ledger.contiguous.load(SeqCst);
        if acks && ack_now && !closing && contiguous != last_acked {
            last_acked = contiguous;
            if ws
                .send(Message::text(format!("ack:{contiguous}")))
                .await
                .is_err()
            {
                break;
            }
        } else if ack_now && !closing {
            let _ = ws.flush().await;
        }
    }
    ledger.connection_ended();
}
