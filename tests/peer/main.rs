//! The core scenarios against a server that is not tungstenite: Python's `websockets`.
//!
//! `.ci/run` installs `websockets` into a local virtual environment and sets
//! `WS_RECONNECT_PYTHON`; then these tests must run. Without it they look for `python3`
//! with `websockets` and, when that is missing, say so and skip.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use ws_reconnect::{Error, Message, ReconnectingSink};

#[path = "../support/mod.rs"]
mod support;

use support::python::{self, PythonServer};
use support::BOUND;

/// Starts the Python server, or explains why it cannot and returns `None`.
fn peer() -> Option<PythonServer> {
    let python = python::interpreter()?;
    Some(PythonServer::start(&python, "tests/peer/server.py", &[]))
}

fn quick() -> ws_reconnect::Builder {
    ReconnectingSink::builder()
        .initial_interval(Duration::from_millis(20))
        .randomization_factor(0.0)
        .max_interval(Duration::from_millis(200))
}

async fn attempts(port: u16, path: &str) -> u64 {
    let mut ws = ReconnectingSink::connect(format!("ws://127.0.0.1:{port}/count/{path}"))
        .await
        .unwrap();
    let m = timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap();
    m.to_text().unwrap().parse().unwrap()
}

#[tokio::test]
async fn python_peer_core_scenarios() {
    let Some(peer) = peer() else { return };
    let port = peer.port;

    // A send after the server closed goes to a new connection.
    let mut ws = quick()
        .connect(format!("ws://127.0.0.1:{port}/echo-close"))
        .await
        .unwrap();
    ws.send(Message::text("one")).await.unwrap();
    assert_eq!(
        timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap(),
        Message::text("one")
    );
    // Reading notices the server's close and reconnects; the echo of "two" comes from
    // the second connection.
    let deadline = Instant::now() + BOUND;
    while ws.stats().reconnects == 0 {
        assert!(
            Instant::now() < deadline,
            "no reconnection after the Python server closed"
        );
        let _ = timeout(Duration::from_millis(20), ws.next()).await;
    }
    ws.send(Message::text("two")).await.unwrap();
    assert_eq!(
        timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap(),
        Message::text("two")
    );
    ws.close().await.unwrap();

    // Reads continue across a server close, with no error item.
    let mut ws = quick()
        .connect(format!("ws://127.0.0.1:{port}/push"))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = timeout(BOUND, ws.next())
            .await
            .unwrap()
            .unwrap()
            .expect("no error item");
        got.push(m.into_text().unwrap().to_string());
    }
    assert_eq!(got, ["a", "b", "c"]);

    // The on_connect message is the first message of every connection.
    let mut ws = quick()
        .on_connect(Message::text("hello"))
        .connect(format!("ws://127.0.0.1:{port}/hello"))
        .await
        .unwrap();
    assert_eq!(
        timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap(),
        Message::text("0:hello")
    );
    ws.send(Message::text("x")).await.unwrap();
    assert_eq!(
        timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap(),
        Message::text("0:x")
    );

    // 400 is not retried.
    let err = timeout(
        BOUND,
        quick().connect(format!("ws://127.0.0.1:{port}/reject400")),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(err, Error::Rejected { status, .. } if status.as_u16() == 400),
        "{err:?}"
    );
    assert_eq!(attempts(port, "reject400").await, 1);

    // 503 is retried, and the third attempt connects.
    let mut ws = timeout(
        BOUND,
        quick().connect(format!("ws://127.0.0.1:{port}/flaky503")),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(attempts(port, "flaky503").await, 3);
    ws.send(Message::text("up")).await.unwrap();
    assert_eq!(
        timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap(),
        Message::text("up")
    );
}
