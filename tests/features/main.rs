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
async fn a_half_open_connection_is_replaced_within_interval_plus_timeout() {
    let server = serve(|_| Reply::Upgrade, echo).await;
    let (interval, keep_timeout) = (Duration::from_millis(300), Duration::from_millis(300));
    let (proxy, mut ws) = through_proxy(&server, quick().keepalive(interval, keep_timeout)).await;
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(
        timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap(),
        Message::text("before")
    );
    // "before" is confirmed (its Pong came back) before the path goes half-open, so that
    // the new connection carries no copy of it.
    read_until(&mut ws, "before confirmed", |ws| {
        ws.undelivered_count() == 0
    })
    .await;
    let state = ws.state();
    proxy.inject(Fault::HalfOpen);
    assert_eq!(
        proxy.stats().half_opens,
        1,
        "one open connection black-holed"
    );
    let cut = Instant::now();
    // A reader waiting in next() is enough to run the keepalive.
    let reader = async {
        loop {
            let _ = ws.next().await;
        }
    };
    let reconnected = async {
        eventually("reconnected", || server.upgrades() == 2).await;
    };
    tokio::select! {
        _ = reader => unreachable!(),
        _ = timeout(BOUND, reconnected) => {}
    }
    let took = cut.elapsed();
    assert_eq!(server.upgrades(), 2, "not replaced");
    assert!(took >= interval, "replaced before any silence: {took:?}");
    assert!(
        took < interval + keep_timeout + Duration::from_millis(700),
        "took {took:?}"
    );
    assert!(matches!(
        *state.borrow(),
        ConnectionState::Connected | ConnectionState::Reconnecting { .. }
    ));
    ws.send(Message::text("after")).await.unwrap();
    assert_eq!(
        timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap(),
        Message::text("after")
    );
}

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

#[tokio::test]
async fn state_transitions_are_published_in_order() {
    // The first connection is closed by the server after one message; the next two
    // handshakes are refused, so Reconnecting lasts long enough to be seen.
    let server = serve(
        |n| match n {
            1 | 2 => Reply::Status(503, vec![]),
            _ => Reply::Upgrade,
        },
        |conn, mut ws: Ws| async move {
            if conn == 0 {
                let _ = ws.next().await;
                let _ = ws.close(None).await;
            }
            while let Some(Ok(_)) = ws.next().await {}
        },
    )
    .await;
    let mut ws = quick()
        .initial_interval(Duration::from_millis(50))
        .build(server.url())
        .unwrap();
    let mut rx = ws.state();
    let seen = Arc::new(Mutex::new(vec![rx.borrow().clone()]));
    let s = seen.clone();
    let watcher = tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            s.lock().unwrap().push(rx.borrow_and_update().clone());
        }
    });
    ws.dial().await.unwrap();
    ws.send(Message::text("x")).await.unwrap();
    // Reading notices the Close and reconnects through two refusals.
    read_until(&mut ws, "reconnected", |ws| {
        server.upgrades() >= 2 && ws.is_connected()
    })
    .await;
    // A watch channel keeps only the latest value: let the watcher see the second
    // Connected before the next transitions replace it.
    eventually("the watcher saw the reconnection", || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|s| **s == ConnectionState::Connected)
            .count()
            >= 2
    })
    .await;
    ws.close().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(ws);
    let _ = timeout(BOUND, watcher).await;
    let seen = seen.lock().unwrap().clone();
    let names: Vec<&str> = seen
        .iter()
        .map(|s| match s {
            ConnectionState::Idle => "Idle",
            ConnectionState::Connecting { .. } => "Connecting",
            ConnectionState::Connected => "Connected",
            ConnectionState::Reconnecting { .. } => "Reconnecting",
            ConnectionState::Closing => "Closing",
            ConnectionState::Closed => "Closed",
            ConnectionState::GaveUp { .. } => "GaveUp",
            _ => "other",
        })
        .collect();
    let mut dedup = names.clone();
    dedup.dedup();
    assert_eq!(
        dedup,
        [
            "Idle",
            "Connecting",
            "Connected",
            "Reconnecting",
            "Connected",
            "Closing",
            "Closed"
        ],
        "{seen:?}"
    );
    let reconnecting = seen
        .iter()
        .find(|s| matches!(s, ConnectionState::Reconnecting { .. }))
        .unwrap();
    match reconnecting {
        ConnectionState::Reconnecting {
            attempt,
            last_error,
        } => {
            assert_eq!(*attempt, 1);
            assert!(
                last_error.as_deref().unwrap_or("").contains("Close"),
                "{last_error:?}"
            );
        }
        _ => unreachable!(),
    }
}

fn close_with(code: u16) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: "bye".into(),
    }))
}

#[tokio::test]
async fn each_close_code_of_the_table_is_followed() {
    for code in [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 4000,
    ] {
        let script = mock::Script::new();
        // Healthy at once: only the close policy decides whether the backoff starts over.
        let mut ws = mock::sink(
            &script,
            ReconnectingSink::builder().healthy_after(Duration::ZERO),
        );
        ws.dial().await.unwrap();
        script.push(0, close_with(code));
        let expected = ws_reconnect::ClosePolicy::default().decide(Some(code));
        match expected {
            CloseAction::Stop => {
                let item = timeout(BOUND, ws.next()).await.unwrap();
                match item {
                    Some(Err(Error::ClosedByServer { code: c, reason })) => {
                        assert_eq!((c, reason.as_str()), (code, "bye"));
                    }
                    other => panic!("{code}: {other:?}"),
                }
                assert!(
                    timeout(BOUND, ws.next()).await.unwrap().is_none(),
                    "{code}: the stream ends"
                );
                assert_eq!(script.connects(), 1, "{code}: reconnected");
                assert!(matches!(
                    *ws.state().borrow(),
                    ConnectionState::GaveUp { .. }
                ));
            }
            action => {
                script.push(0, Message::text("unused")); // queued behind the Close
                let _ = timeout(Duration::from_millis(50), ws.next()).await;
                assert_eq!(script.connects(), 2, "{code}: not reconnected");
                let targets = script.targets.lock().unwrap().clone();
                assert_eq!(targets[1].0, DialKind::Reconnect);
                let reset = targets[1].1;
                // 1012/1013 wait for the backoff: the target says not to start it over.
                assert_eq!(reset, action == CloseAction::Reconnect, "{code}");
            }
        }
    }
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
