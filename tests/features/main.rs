//! Beyond reconnecting: keepalive, connect timeout, visible state, close codes, jitter,
//! redaction, input limits, cancellation.

#[path = "../support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use ws_reconnect::testing::Fault;
use ws_reconnect::{CloseAction, ConnectionState};
use ws_reconnect::{DialKind, Error, Message, ReconnectingSink};

use support::{
    connect, connect_err, echo, eventually, mock, quick, read_until, serve, sharing,
    silent_listener, through_proxy, Reply, Ws, BOUND,
};

#[tokio::test]
async fn a_silent_server_hits_the_connect_timeout_is_retried_and_given_up() {
    let server = silent_listener().await;
    let started = Instant::now();
    let err = connect_err(
        quick()
            .connect_timeout(Duration::from_millis(150))
            .max_elapsed_time(Some(Duration::from_millis(600))),
        server.url(),
    )
    .await;
    match err {
        Error::GaveUp { source, .. } => assert!(matches!(*source, Error::Timeout), "{source:?}"),
        other => panic!("{other:?}"),
    }
    assert!(server.attempts() >= 2);
    assert!(started.elapsed() < Duration::from_secs(3));
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

#[tokio::test]
async fn an_oversized_message_is_an_error_item_then_a_reconnection() {
    let server = serve(
        |_| Reply::Upgrade,
        |conn, mut ws: Ws| async move {
            let text = if conn == 0 {
                "x".repeat(4096)
            } else {
                "small".to_string()
            };
            let _ = ws.send(Message::text(text)).await;
            while let Some(Ok(_)) = ws.next().await {}
        },
    )
    .await;
    let config = WebSocketConfig::default()
        .max_message_size(Some(1024))
        .max_frame_size(Some(1024));
    let mut ws = connect(quick().websocket_config(config), server.url()).await;
    let first = timeout(BOUND, ws.next()).await.unwrap().unwrap();
    assert!(
        matches!(
            first,
            Err(Error::Transport(
                ws_reconnect::tungstenite::Error::Capacity(_)
            ))
        ),
        "{first:?}"
    );
    let second = timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(second, Message::text("small"));
    assert_eq!(server.upgrades(), 2);
}
