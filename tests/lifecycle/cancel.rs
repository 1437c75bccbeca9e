//! Dropping: the sink, both halves of it, or any of its futures (`send`, `feed`, `flush`,
//! `close`, `dial`, `next`) at any point. Dropping the sink closes the socket and leaves
//! no task behind; a future dropped half-way leaves a sink that still works and a state
//! that tells the truth.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::timeout;
use ws_reconnect::testing::Fault;
use ws_reconnect::{ConnectionState, Message};

use crate::support::*;

#[tokio::test]
async fn dropping_the_sink_or_both_halves_stops_everything() {
    for split in [false, true] {
        let closed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counting = sharing(closed.clone(), |closed, _, mut ws: Ws| async move {
            while let Some(Ok(_)) = ws.next().await {}
            closed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let server = serve(|_| Reply::Upgrade, counting).await;
        let tasks_before = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let ws = connect(quick(), server.url()).await;
        if split {
            let (tx, rx) = ws.split();
            drop(tx);
            drop(rx);
        } else {
            drop(ws);
        }
        eventually("the server saw the socket close", || {
            closed.load(std::sync::atomic::Ordering::SeqCst) == 1
        })
        .await;
        // The sink spawns nothing: only the server's own tasks are alive.
        let tasks_after = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        assert!(
            tasks_after <= tasks_before,
            "{tasks_before} -> {tasks_after}"
        );
    }
}

/// The seed of the random-cancellation test; `WS_RECONNECT_SEED` overrides it.
const SEED: u64 = 0x5eed_0006;

#[tokio::test]
async fn operations_cancelled_at_random_points_leave_a_usable_truthful_sink() {
    let seed = env_or("WS_RECONNECT_SEED", SEED);
    eprintln!("seed {seed} (WS_RECONNECT_SEED={seed} repeats this run)");
    let server = serve(|_| Reply::Upgrade, echo).await;
    let (proxy, mut ws) = through_proxy(&server, quick()).await;
    let mut rng = SmallRng::seed_from_u64(seed);

    const OPS: [&str; 6] = ["send", "feed", "flush", "close", "dial", "next"];
    // Per operation: completed, cancelled.
    let mut outcomes = [(0u32, 0u32); OPS.len()];
    let mut resets = 0;
    for round in 0..200 {
        if rng.random_bool(0.05) {
            proxy.inject(Fault::Reset);
            resets += 1;
        } else if rng.random_bool(0.2) {
            // Slow the open connections down, so that operations waiting for the server
            // (a handshake, an echo, its Close reply) are cut at more points.
            proxy.inject(Fault::Delay(Duration::from_micros(
                rng.random_range(0..3000),
            )));
        }
        let limit = Duration::from_micros(rng.random_range(0..5000));
        let pick = rng.random_range(0..OPS.len());
        let op = OPS[pick];
        let message = Message::text(format!("r{round}"));
        // Whether the operation completed, and whether it was a close() that returned Ok.
        let (completed, closed) = match op {
            "send" => (timeout(limit, ws.send(message)).await.is_ok(), false),
            "feed" => (timeout(limit, ws.feed(message)).await.is_ok(), false),
            "flush" => (timeout(limit, ws.flush()).await.is_ok(), false),
            "close" => match timeout(limit, ws.close()).await {
                Ok(r) => (true, r.is_ok()),
                Err(_) => (false, false),
            },
            "dial" => (timeout(limit, ws.dial()).await.is_ok(), false),
            _ => (timeout(limit, ws.next()).await.is_ok(), false),
        };
        if completed {
            outcomes[pick].0 += 1;
        } else {
            outcomes[pick].1 += 1;
        }
        let state = ws.state().borrow().clone();
        if closed {
            assert_eq!(
                state,
                ConnectionState::Closed,
                "seed {seed}, round {round}: close() returned Ok"
            );
        }
        if ws.is_connected() {
            assert!(
                !matches!(state, ConnectionState::Closed | ConnectionState::Idle),
                "seed {seed}, round {round} ({op}): connected, but the state says {state:?}"
            );
        }
    }

    let summary: Vec<String> = OPS
        .iter()
        .zip(outcomes)
        .map(|(op, (done, cut))| format!("{op} {done}/{cut}"))
        .collect();
    eprintln!(
        "seed {seed}: completed/cancelled {}; {resets} resets; {} connections",
        summary.join(", "),
        proxy.stats().connections
    );

    if !ws.is_connected() {
        timeout(BOUND, ws.dial())
            .await
            .unwrap_or_else(|_| panic!("seed {seed}: dial() after the rounds hung"))
            .unwrap_or_else(|e| panic!("seed {seed}: dial() after the rounds: {e:?}"));
    }
    let marker = Message::text(format!("marker {seed}"));
    timeout(BOUND, ws.send(marker.clone()))
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: send(marker) hung"))
        .unwrap_or_else(|e| {
            panic!(
                "seed {seed}: send(marker): {e:?}; is_connected() {}, state {:?}",
                ws.is_connected(),
                *ws.state().borrow()
            )
        });
    timeout(BOUND, async {
        loop {
            match ws.next().await {
                Some(Ok(m)) if m == marker => break,
                Some(_) => {}
                None => panic!("seed {seed}: the stream ended before the marker's echo"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("seed {seed}: the marker's echo never came"));
}
