//! Messages that cross the server's Close (or its end of the connection) on the wire.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use ws_reconnect::{Message, ReconnectingSink};

use crate::support::*;

/// How the server ends a connection.
#[derive(Debug, Clone, Copy)]
pub enum Ending {
    /// A Close frame with this code, then nothing more is answered (RFC 6455: after
    /// sending Close, an endpoint takes no more data).
    Close(u16),
    /// The TCP connection is closed without a Close frame.
    Bare,
}

/// Ends `ws` as `ending` says: after a Close, reads and discards until the client's
/// Close or EOF.
pub async fn end(mut ws: Ws, ending: Ending) {
    match ending {
        Ending::Close(code) => {
            let frame = CloseFrame {
                code: code.into(),
                reason: "".into(),
            };
            let _ = ws.send(Message::Close(Some(frame))).await;
            while let Some(Ok(_)) = ws.next().await {}
        }
        Ending::Bare => drop(ws),
    }
}

/// When a server closes.
#[derive(Debug, Clone, Copy)]
pub enum When {
    /// After its `n`th answer on the connection (and every one after it that had already
    /// arrived: a server that closes when it is idle).
    AfterAnswers(usize),
    /// At a moment of its own: this long after the connection came up, between two
    /// messages.
    After(Duration),
}

/// A server that answers `req <i>` with `ans <i>` and ends each connection as `when`
/// says, with `ending`. Counts the answers it sent.
pub async fn answering(when: When, ending: Ending) -> (Server, Arc<AtomicUsize>) {
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    let server = serve(
        |_| Reply::Upgrade,
        move |_, mut ws: Ws| {
            let count = count.clone();
            async move {
                // As production servers do (Go, Node's ws, Python's asyncio): otherwise
                // Nagle's algorithm holds the Close behind the answer until the client's
                // delayed acknowledgement (40 ms).
                let _ = ws.get_ref().set_nodelay(true);
                let deadline = match when {
                    When::After(after) => tokio::time::Instant::now() + after,
                    When::AfterAnswers(_) => tokio::time::Instant::now() + BOUND * 10,
                };
                let mut here = 0;
                // A message read while looking whether the server is idle.
                let mut waiting: Option<Message> = None;
                loop {
                    let message = match waiting.take() {
                        Some(m) => Some(Ok(m)),
                        None => tokio::select! {
                            m = ws.next() => m,
                            _ = tokio::time::sleep_until(deadline) => return end(ws, ending).await,
                        },
                    };
                    let Some(Ok(message)) = message else { return };
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let Some(i) = text.strip_prefix("req ") else {
                        continue;
                    };
                    if ws.send(Message::text(format!("ans {i}"))).await.is_err() {
                        return;
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    here += 1;
                    if matches!(when, When::AfterAnswers(n) if here >= n) {
                        // Idle: no request already waiting (a Ping is answered by the
                        // WebSocket layer, and is no request).
                        loop {
                            match futures::FutureExt::now_or_never(ws.next()) {
                                None => return end(ws, ending).await,
                                Some(Some(Ok(m @ Message::Text(_)))) => {
                                    waiting = Some(m);
                                    break;
                                }
                                Some(Some(Ok(_))) => {}
                                Some(_) => return,
                            }
                        }
                    }
                }
            }
        },
    )
    .await;
    (server, answered)
}

/// Sends `requests` requests one after the other, each after the answer to the one
/// before: the most common WebSocket pattern. Fails if an answer never comes.
pub async fn request_loop(ws: &mut ReconnectingSink, requests: usize) {
    for i in 0..requests {
        timeout(BOUND, ws.send(Message::text(format!("req {i}"))))
            .await
            .unwrap_or_else(|_| panic!("request {i}: send hung"))
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        loop {
            let item = timeout(BOUND, ws.next())
                .await
                .unwrap_or_else(|_| panic!("request {i} was never answered: lost"));
            match item {
                Some(Ok(m)) => {
                    let text = m.to_text().unwrap_or_default().to_owned();
                    let j: usize = text
                        .strip_prefix("ans ")
                        .and_then(|j| j.parse().ok())
                        .unwrap_or_else(|| panic!("unexpected {text:?}"));
                    assert!(j <= i, "answer {j} before request {j}");
                    // An earlier answer again: a request sent twice (allowed).
                    if j == i {
                        break;
                    }
                }
                Some(Err(e)) => panic!("request {i}: error item {e}"),
                None => panic!("request {i}: the stream ended"),
            }
        }
    }
}

#[tokio::test]
async fn a_request_loop_survives_a_server_that_closes_after_every_nth_answer() {
    for (when, ending) in [
        (When::AfterAnswers(1), Ending::Close(1000)),
        (When::AfterAnswers(7), Ending::Close(1001)),
        (When::AfterAnswers(3), Ending::Bare),
    ] {
        let (server, answered) = answering(when, ending).await;
        let mut ws = connect(quick_healthy(), server.url()).await;
        request_loop(&mut ws, 1_000).await;
        assert!(answered.load(Ordering::SeqCst) >= 1_000);
        assert!(
            server.upgrades() > 100,
            "{when:?}: {} connections",
            server.upgrades()
        );
        timeout(BOUND, ws.close()).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_request_loop_survives_a_server_that_closes_at_moments_of_its_own() {
    trace();
    for ending in [Ending::Close(1001), Ending::Bare] {
        let (server, answered) = answering(When::After(Duration::from_millis(7)), ending).await;
        let mut ws = connect(quick_healthy(), server.url()).await;
        request_loop(&mut ws, 1_000).await;
        assert!(answered.load(Ordering::SeqCst) >= 1_000);
        timeout(BOUND, ws.close()).await.unwrap().unwrap();
    }
}

/// A server that records every `<n>` it reads and ends each connection after `every`
/// messages (counting from the connection's start).
pub async fn recording_and_ending(every: usize, ending: Ending) -> (Server, Log) {
    let log = Log::default();
    let record = log.clone();
    let server = serve(
        |_| Reply::Upgrade,
        move |conn, mut ws: Ws| {
            let log = record.clone();
            async move {
                let _ = ws.get_ref().set_nodelay(true);
                let mut here = 0;
                while let Some(Ok(message)) = ws.next().await {
                    if let Message::Text(text) = message {
                        log.push(conn, text.to_string());
                        here += 1;
                    }
                    if here == every {
                        return end(ws, ending).await;
                    }
                }
            }
        },
    )
    .await;
    (server, log)
}

/// Streams `count` numbered messages, one per `pace`, and returns once the server has
/// them all (duplicates allowed); fails with the missing ones otherwise.
pub async fn stream_and_check(ws: &mut ReconnectingSink, log: &Log, count: usize, pace: Duration) {
    let mut ticker = tokio::time::interval(pace);
    for i in 0..count {
        ticker.tick().await;
        timeout(BOUND, ws.send(Message::text(i.to_string())))
            .await
            .expect("send hung")
            .expect("send");
        // Reading is the application's business; the sink notices closes either way.
        while let Ok(Some(_)) = timeout(Duration::ZERO, ws.next()).await {}
    }
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let seen: BTreeSet<usize> = log.texts().iter().filter_map(|t| t.parse().ok()).collect();
        if seen.len() == count {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let missing: Vec<usize> = (0..count).filter(|i| !seen.contains(i)).collect();
            panic!("{} of {count} never arrived: {missing:?}", missing.len());
        }
        // Read, so that a close after the last message is noticed and its window resent.
        let _ = timeout(Duration::from_millis(20), ws.next()).await;
    }
}

#[tokio::test]
async fn a_stream_across_rolling_deploy_closes_loses_nothing() {
    for ending in [Ending::Close(1001), Ending::Bare] {
        let (server, log) = recording_and_ending(300, ending).await;
        let mut ws = connect(quick_healthy(), server.url()).await;
        stream_and_check(&mut ws, &log, 1_500, Duration::from_millis(1)).await;
        assert!(server.upgrades() >= 5, "{} connections", server.upgrades());
    }
}
