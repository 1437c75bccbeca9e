//! The user's `close()` wherever the sink is: connected (and a `dial()` after it),
//! during a first dial that keeps failing, while reconnecting, and after a `close()`
//! dropped half-way. It returns within its bound, hands back what it could not deliver,
//! publishes `Closed`, and no connection attempt follows it.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::{ConnectionState, Error, Message, ReconnectingSink};

use crate::support::*;

/// A target whose every connection attempt fails: it accepts TCP connections and drops
/// them at once (the handshake fails).
async fn refusing() -> RawServer {
    raw_server("127.0.0.1:0", |_, tcp| async move { drop(tcp) })
        .await
        .unwrap()
}

/// An undialed sink on `server` whose `dial()` was started and dropped after 200 ms: it
/// is in the middle of a first dial that keeps failing.
async fn mid_dial(server: &RawServer) -> ReconnectingSink {
    let mut ws = ReconnectingSink::builder()
        .initial_interval(Duration::from_millis(20))
        .close_timeout(Duration::from_secs(1))
        .build(server.url())
        .unwrap();
    let dialing = timeout(Duration::from_millis(200), ws.dial()).await;
    assert!(
        dialing.is_err(),
        "dial() to a target that drops every connection returned {dialing:?}"
    );
    eventually("a connection attempt", || server.attempts() > 0).await;
    ws
}

/// After a completed `close()`: the state says Closed, the stream has ended, and no
/// connection attempt starts over the next second.
async fn assert_closed_for_good(ws: &mut ReconnectingSink, server: &RawServer) {
    assert_eq!(*ws.state().borrow(), ConnectionState::Closed);
    // An attempt dropped by close() may have sent its SYN already; the server's accept
    // loop (late on a loaded machine) may count it after close() returned. Wait until the
    // count settles, then no new attempt may come.
    let mut attempts = server.attempts();
    let settle = tokio::time::Instant::now() + BOUND;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = server.attempts();
        if now == attempts {
            break;
        }
        assert!(
            tokio::time::Instant::now() < settle,
            "attempts kept coming after close()"
        );
        attempts = now;
    }
    let next = timeout(BOUND, ws.next())
        .await
        .expect("next() after close() hung");
    assert!(next.is_none(), "next() after close(): {next:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        server.attempts(),
        attempts,
        "connection attempts after close() completed"
    );
}

#[tokio::test]
async fn close_during_a_failing_first_dial_ends_the_dial() {
    let server = refusing().await;
    let mut ws = mid_dial(&server).await;
    let closed = timeout(BOUND, ws.close())
        .await
        .expect("close() during a failing first dial did not complete before BOUND");
    assert!(
        closed.is_ok(),
        "close() with nothing owed returned {closed:?}"
    );
    assert_closed_for_good(&mut ws, &server).await;
}

#[tokio::test]
async fn close_during_a_failing_first_dial_hands_back_what_was_fed() {
    let server = refusing().await;
    let mut ws = mid_dial(&server).await;
    let fed: Vec<Message> = (0..3).map(|i| Message::text(format!("m{i}"))).collect();
    // `feed` waits in poll_ready for the connection, which never comes; `start_send`
    // keeps a message in the outbox whenever it has room, connected or not.
    for m in &fed {
        ws.start_send(m.clone())
            .unwrap_or_else(|e| panic!("start_send({m}) while dialing: {e:?}"));
    }
    let closed = timeout(BOUND, ws.close())
        .await
        .expect("close() during a failing first dial did not complete before BOUND");
    assert!(
        matches!(closed, Err(Error::CloseIncomplete { undelivered: 3, .. })),
        "close() owing 3 messages returned {closed:?}"
    );
    assert_eq!(ws.take_undelivered(), fed);
    assert_closed_for_good(&mut ws, &server).await;
}

#[tokio::test]
async fn close_while_reconnecting_publishes_closed() {
    let server = serve(|_| Reply::Upgrade, drain).await;
    let mut ws = connect(quick(), server.url()).await;
    let mut state = ws.state();

    // The server dies and stays down; the reader notices.
    drop(server);
    timeout(BOUND, async {
        loop {
            tokio::select! {
                item = ws.next() => assert!(item.is_some(), "the stream ended"),
                _ = state.wait_for(|s| matches!(s, ConnectionState::Reconnecting { .. })) => break,
            }
        }
    })
    .await
    .expect("the reader never noticed the server was gone");

    let closed = timeout(BOUND, ws.close())
        .await
        .expect("close() while reconnecting did not return before BOUND");
    assert_eq!(
        *ws.state().borrow(),
        ConnectionState::Closed,
        "after close() returned {closed:?}"
    );
}

#[tokio::test]
async fn dial_after_a_dropped_close_makes_a_new_connection() {
    let log = Log::default();
    // The first connection holds back its reply to the client's Close for 5 s (it stops
    // reading); later ones record what they receive.
    let holding_back = sharing(log.clone(), |log, conn, mut ws: Ws| async move {
        while let Some(Ok(m)) = ws.next().await {
            match m {
                Message::Text(t) => log.push(conn, t.to_string()),
                Message::Close(_) if conn == 0 => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                _ => {}
            }
        }
    });
    let server = serve(|_| Reply::Upgrade, holding_back).await;
    let mut ws = connect(quick(), server.url()).await;
    timeout(BOUND, ws.send(Message::text("before")))
        .await
        .expect("send hung")
        .expect("send");
    eventually("\"before\" reaches the server", || log.len() == 1).await;

    for _ in 0..2 {
        let cut = timeout(Duration::from_millis(5), ws.close()).await;
        assert!(
            cut.is_err(),
            "close() completed while the server held back its Close: {cut:?}"
        );
    }

    timeout(BOUND, ws.dial())
        .await
        .expect("dial() after a dropped close() hung")
        .expect("dial() after a dropped close()");
    let state = ws.state().borrow().clone();
    assert!(
        ws.is_connected(),
        "dial() returned Ok, but is_connected() is false (state {state:?}, upgrades {})",
        server.upgrades()
    );
    assert_eq!(state, ConnectionState::Connected);
    assert_eq!(server.upgrades(), 2, "dial() must make a new connection");
    timeout(BOUND, ws.send(Message::text("after")))
        .await
        .expect("send after dial hung")
        .expect("send after dial");
    eventually("\"after\" reaches the new connection", || {
        log.entries().contains(&(1, "after".to_string()))
    })
    .await;
}

#[tokio::test]
async fn dial_close_dial_close_with_sends_between() {
    let (server, log) = recording_server().await;
    let mut ws = quick_healthy().build(server.url()).unwrap();
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    send(&mut ws, "a").await.unwrap();
    timeout(BOUND, ws.close()).await.unwrap().unwrap();
    assert!(!ws.is_connected());
    assert!(matches!(
        send(&mut ws, "lost?").await,
        Err(Error::NotDialed)
    ));
    assert!(
        timeout(BOUND, ws.next()).await.unwrap().is_none(),
        "stream ends after close"
    );
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    send(&mut ws, "b").await.unwrap();
    timeout(BOUND, ws.close()).await.unwrap().unwrap();
    eventually("both messages", || log.len() == 2).await;
    let entries = log.entries();
    assert_eq!(entries, [(0, "a".to_string()), (1, "b".to_string())]);
    assert_eq!(server.upgrades(), 2);
}
