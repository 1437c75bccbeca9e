//! The core scenarios against a server that is not tungstenite: Python's `websockets`.
//!
//! `.ci/run` installs `websockets` into a local virtual environment and sets
//! `WS_RECONNECT_PYTHON`; then these tests must run. Without it they look for `python3`
//! with `websockets` and, when that is missing, skip visibly: `SKIPPED: <test>: <why>`,
//! recorded for `.ci/run`'s summary (see `support::skip`).

use futures::SinkExt;
use ws_reconnect::{Error, Message, ReconnectingSink};

#[path = "../support/mod.rs"]
mod support;

use support::python::{self, PythonServer};
use support::{connect, connect_err, next_message, quick, read_until};

/// Starts the Python server, or records that the calling test skips and returns `None`.
fn peer() -> Option<PythonServer> {
    let python = python::interpreter()?;
    Some(PythonServer::start(&python, "tests/peer/server.py", &[]))
}

async fn attempts(port: u16, path: &str) -> u64 {
    let url = format!("ws://127.0.0.1:{port}/count/{path}");
    let mut ws = connect(ReconnectingSink::builder(), url).await;
    next_message(&mut ws)
        .await
        .to_text()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn python_peer_core_scenarios() {
    let Some(peer) = peer() else { return };
    let port = peer.port;

    // A send after the server closed goes to a new connection.
    let mut ws = connect(quick(), format!("ws://127.0.0.1:{port}/echo-close")).await;
    ws.send(Message::text("one")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("one"));
    // Reading notices the server's close and reconnects; the echo of "two" comes from
    // the second connection.
    read_until(
        &mut ws,
        "a reconnection after the Python server closed",
        |ws| ws.stats().reconnects > 0,
    )
    .await;
    ws.send(Message::text("two")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("two"));
    ws.close().await.unwrap();

    // Reads continue across a server close, with no error item.
    let mut ws = connect(quick(), format!("ws://127.0.0.1:{port}/push")).await;
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = next_message(&mut ws).await; // no error item
        got.push(m.into_text().unwrap().to_string());
    }
    assert_eq!(got, ["a", "b", "c"]);

    // The on_connect message is the first message of every connection.
    let mut ws = connect(
        quick().on_connect(Message::text("hello")),
        format!("ws://127.0.0.1:{port}/hello"),
    )
    .await;
    assert_eq!(next_message(&mut ws).await, Message::text("0:hello"));
    ws.send(Message::text("x")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("0:x"));

    // 400 is not retried.
    let err = connect_err(quick(), format!("ws://127.0.0.1:{port}/reject400")).await;
    assert!(
        matches!(err, Error::Rejected { status, .. } if status.as_u16() == 400),
        "{err:?}"
    );
    assert_eq!(attempts(port, "reject400").await, 1);

    // 503 is retried, and the third attempt connects.
    let mut ws = connect(quick(), format!("ws://127.0.0.1:{port}/flaky503")).await;
    assert_eq!(attempts(port, "flaky503").await, 3);
    ws.send(Message::text("up")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("up"));
}
