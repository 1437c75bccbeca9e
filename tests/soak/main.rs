//! Soak with accounting: numbered messages through a fault-injecting proxy that cuts,
//! resets, half-opens, slows and refuses connections at random. Acknowledged mode must
//! lose nothing. 10,000 messages by default; `WS_RECONNECT_SOAK_MESSAGES` for more.

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::testing::{FaultProxy, RandomFaults};
use ws_reconnect::{Acknowledge, Message, ReconnectingSink};

use support::{serve, Reply, Ws};

struct Acks;

impl Acknowledge for Acks {
    fn id(&mut self, m: &Message) -> Option<u64> {
        m.to_text().ok()?.parse().ok()
    }
    fn acked(&mut self, m: &Message) -> Option<u64> {
        m.to_text().ok()?.strip_prefix("ack:")?.parse().ok()
    }
}

#[derive(Default)]
struct Ledger {
    highest: AtomicU64,
    duplicates: AtomicU64,
    gaps: Mutex<Vec<(u64, u64)>>,
}

fn server(
    ledger: Arc<Ledger>,
) -> impl Fn(usize, Ws) -> futures::future::BoxFuture<'static, ()> + Send + Sync + 'static {
    move |_, mut ws: Ws| {
        let ledger = ledger.clone();
        Box::pin(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            let mut acked = 0;
            loop {
                tokio::select! {
                    m = ws.next() => {
                        let Some(Ok(Message::Text(t))) = m else { return };
                        let Ok(id) = t.as_str().parse::<u64>() else { continue };
                        let highest = ledger.highest.load(SeqCst);
                        if id <= highest {
                            ledger.duplicates.fetch_add(1, SeqCst);
                        } else if id == highest + 1 {
                            ledger.highest.store(id, SeqCst);
                        } else {
                            ledger.gaps.lock().unwrap().push((highest, id));
                        }
                    }
                    _ = tick.tick() => {}
                }
                let highest = ledger.highest.load(SeqCst);
                if highest != acked {
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

#[tokio::test]
async fn acknowledged_soak_through_random_faults_loses_nothing() {
    let n: u64 = std::env::var("WS_RECONNECT_SOAK_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let ledger = Arc::new(Ledger::default());
    let upstream = serve(|_| Reply::Upgrade, server(ledger.clone())).await;
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    proxy.random(RandomFaults {
        seed: 11,
        mean_bytes: 16 * 1024,
        weights: [1, 1, 1, 1],
        refuse_probability: 0.1,
    });
    let ws = ReconnectingSink::builder()
        .initial_interval(Duration::from_millis(5))
        .max_interval(Duration::from_millis(100))
        .max_reconnections_total(1_000_000)
        .keepalive(Duration::from_millis(200), Duration::from_millis(200))
        .ack_timeout(Duration::from_millis(500))
        .acknowledged(Acks, 512)
        .connect(format!("ws://{}/", proxy.addr()))
        .await
        .unwrap();
    let stats = ws.stats_handle();
    let source = futures::stream::iter((1..=n).map(|i| Ok(Message::text(i.to_string()))));
    let mut ws = ws;
    timeout(
        Duration::from_secs(240),
        ws.send_all(&mut source.map(|m: Result<Message, ws_reconnect::Error>| m)),
    )
    .await
    .expect("soak hung")
    .expect("soak failed");
    timeout(Duration::from_secs(60), ws.close())
        .await
        .expect("close hung")
        .expect("close failed");
    let faults = proxy.stats();
    let s = stats.get();
    eprintln!(
        "soak: {n} messages, {} connections through the proxy; faults: {} cuts, {} resets, {} half-open, {} delays, {} refused; \
         {} duplicates, {} resent, {} reconnects, lost 0",
        faults.connections,
        faults.cuts,
        faults.resets,
        faults.half_opens,
        faults.delays,
        faults.refused,
        ledger.duplicates.load(SeqCst),
        s.messages_resent,
        s.reconnects,
    );
    assert!(
        ledger.gaps.lock().unwrap().is_empty(),
        "gaps: {:?}",
        ledger.gaps.lock().unwrap()
    );
    assert_eq!(ledger.highest.load(SeqCst), n, "lost messages");
    assert!(
        faults.cuts + faults.resets + faults.half_opens >= 3,
        "too few faults to prove anything: {faults:?}"
    );
}
