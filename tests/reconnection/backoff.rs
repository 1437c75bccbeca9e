//! When the sink reconnects: a connection that carried messages and then died is
//! followed by an immediate reconnection; one that died at once (accepted and dropped,
//! greeted and closed) meets growing delays, whether the client reads or writes; the
//! reconnect jitter spreads reconnections uniformly within its bound.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use ws_reconnect::{Message, ReconnectingSink};

use crate::support::*;

#[tokio::test]
async fn productive_connections_are_followed_by_an_immediate_reconnection() {
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, reset_after(50, log.clone())).await;
    // Any backoff wait would be 30 s or more: longer than BOUND.
    let mut ws = connect(
        ReconnectingSink::builder().initial_interval(Duration::from_secs(60)),
        server.url(),
    )
    .await;

    let mut sent = 0;
    let all = timeout(BOUND, async {
        for i in 0..200 {
            ws.send(Message::text(i.to_string()))
                .await
                .unwrap_or_else(|e| panic!("send({i}): {e:?}"));
            sent += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(
        all.is_ok(),
        "{sent} of 200 sends completed before BOUND; the server saw {} connections and \
         {} messages",
        server.upgrades(),
        log.len()
    );
    assert!(
        server.upgrades() >= 3,
        "{} connections for 200 messages reset every 50",
        server.upgrades()
    );
}

#[tokio::test]
async fn an_accept_and_drop_server_meets_growing_delays() {
    let (server, mut ws) = accept_and_drop().await;
    // Keep reading for 1.3 s: delays 20, 40, 80, 160, 320, 640 ms sum to 1260 ms, so
    // at most about 7 connections; a tight loop would make hundreds.
    let until = Instant::now() + Duration::from_millis(1300);
    while Instant::now() < until {
        let _ = timeout(until - Instant::now(), ws.next()).await;
    }
    let n = server.upgrades();
    assert!((3..=9).contains(&n), "{n} connections");
}

/// The protection the previous test must not remove: a server that upgrades and drops
/// at once, met by a client that writes all the time.
#[tokio::test]
async fn an_accept_and_drop_server_meets_growing_delays_while_the_client_writes() {
    let (server, mut ws) = accept_and_drop().await;
    // Write for 1.3 s: delays 20, 40, 80, 160, 320, 640 ms sum to 1260 ms, so about 7
    // connections; a tight loop would make hundreds.
    let until = Instant::now() + Duration::from_millis(1300);
    let mut i = 0u64;
    while Instant::now() < until {
        let _ = timeout(
            until - Instant::now(),
            ws.send(Message::text(i.to_string())),
        )
        .await;
        i += 1;
        // Let the server run: a send into a healthy socket never returns Pending.
        tokio::task::yield_now().await;
    }
    let n = server.upgrades();
    assert!((2..=12).contains(&n), "{n} connections in 1.3 s of writing");
}

/// A server that greets and closes at once (an application-level refusal: "invalid
/// token", then Close 1000). Each connection delivered a message, but lived no time: the
/// backoff must space the reconnections, not reconnect back to back.
#[tokio::test]
async fn a_server_that_greets_and_closes_at_once_meets_growing_delays() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    let server = serve(
        |_| Reply::Upgrade,
        |_, mut ws: Ws| async move {
            let _ = ws.send(Message::text("error: invalid token")).await;
            let _ = ws
                .close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "bye".into(),
                }))
                .await;
            while let Some(Ok(_)) = ws.next().await {}
        },
    )
    .await;
    let mut ws = connect(
        ReconnectingSink::builder()
            .initial_interval(Duration::from_millis(20))
            .randomization_factor(0.0)
            .multiplier(2.0)
            .max_interval(Duration::from_secs(10)),
        server.url(),
    )
    .await;
    // Read for 1.3 s: delays of 20, 40, 80, 160, 320, 640 ms allow about 7 connections;
    // back to back, there were over a thousand.
    let until = Instant::now() + Duration::from_millis(1300);
    while Instant::now() < until {
        let _ = timeout(until - Instant::now(), ws.next()).await;
    }
    let n = server.upgrades();
    assert!((2..=12).contains(&n), "{n} connections");
}

#[tokio::test(start_paused = true)]
async fn reconnect_jitter_spreads_a_thousand_reconnections_within_its_bound() {
    let max = Duration::from_secs(1);
    let script = mock::Script::new();
    let mut ws = mock::sink(
        &script,
        ReconnectingSink::builder()
            .reconnect_jitter(max)
            .no_keepalive(),
    );
    ws.dial().await.unwrap();
    let mut delays = Vec::new();
    for i in 0..1000 {
        script.hang_up(i);
        let started = Instant::now();
        let watch = async {
            while script.connects() < i + 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        tokio::select! {
            _ = ws.next() => panic!("no item expected"),
            _ = watch => {}
        }
        delays.push(started.elapsed());
    }
    let slack = Duration::from_millis(2);
    assert!(
        delays.iter().all(|d| *d <= max + slack),
        "max {:?}",
        delays.iter().max()
    );
    let ms: Vec<f64> = delays.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    let below_100 = ms.iter().filter(|&&m| m < 100.0).count();
    let above_900 = ms.iter().filter(|&&m| m > 900.0).count();
    assert!(
        (400.0..600.0).contains(&mean),
        "mean {mean} ms: not uniform"
    );
    assert!(
        below_100 > 50 && above_900 > 50,
        "degenerate spread: {below_100} low, {above_900} high"
    );
}
