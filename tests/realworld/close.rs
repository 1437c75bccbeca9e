//! 6. `close()` wherever the sink is (dialing, reconnecting), `close()` cancelled
//!    half-way, and every operation cancelled at random points.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::timeout;
use ws_reconnect::testing::Fault;
use ws_reconnect::ConnectionState;
use ws_reconnect::{Error, Message, ReconnectingSink};

use crate::support::{
    connect, drain, echo, env_or, eventually, quick, raw_server, serve, sharing, through_proxy,
    Log, RawServer, Reply, Ws, BOUND,
};

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
