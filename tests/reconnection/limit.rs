//! The reconnection limit: none unless asked for; a limit of 0 refuses every
//! reconnection and a server gone is still a `GaveUp`, not a refusal; when the sliding
//! window refuses, every operation says so at once, the state says `Refused`, and a
//! send reconnects once the window frees.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use ws_reconnect::ConnectionState;
use ws_reconnect::{Error, Message, ReconnectingSink};

use crate::support::*;

/// Echoes the first message of each connection, with a Close 1000 in the same write,
/// then reads until the client answers or goes away. Frames that arrived with the
/// message are read first: the client's Ping behind it is answered, confirming it.
async fn echo_once(_conn: usize, mut ws: Ws) {
    if let Some(Ok(m)) = ws.next().await {
        if m.is_text() {
            while let Some(Some(Ok(_))) = futures::FutureExt::now_or_never(ws.next()) {}
            let _ = ws.feed(m).await;
            let _ = ws
                .close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                }))
                .await;
        }
    }
    while let Some(Ok(_)) = ws.next().await {}
}

async fn echo_once_server() -> Server {
    serve(|_| Reply::Upgrade, echo_once).await
}

/// Sends `i` and reads its echo (skipping the echo of an earlier message sent again).
async fn round_trip(ws: &mut ReconnectingSink, i: usize) -> Result<(), Error> {
    timeout(BOUND, ws.send(Message::text(i.to_string())))
        .await
        .unwrap_or_else(|_| panic!("send({i}) did not complete before BOUND"))?;
    loop {
        let item = timeout(BOUND, ws.next())
            .await
            .unwrap_or_else(|_| panic!("the echo of {i}: nothing came"));
        let Some(Ok(Message::Text(t))) = &item else {
            panic!("the echo of {i}: {item:?}");
        };
        let echoed: usize = t.parse().unwrap();
        assert!(echoed <= i, "the echo of {i}: got {echoed}");
        if echoed == i {
            return Ok(());
        }
    }
}

#[tokio::test]
async fn the_default_builder_has_no_reconnection_count_limit() {
    let server = echo_once_server().await;
    // Each connection here lives a few milliseconds (the server answers and closes),
    // which the backoff would otherwise space with growing delays: healthy_after(0)
    // makes every reconnection immediate, so only a count limit could stop these.
    let mut ws = connect(
        ReconnectingSink::builder()
            .initial_interval(Duration::from_millis(10))
            .healthy_after(Duration::ZERO),
        server.url(),
    )
    .await;
    for i in 0..15 {
        if let Err(e) = round_trip(&mut ws, i).await {
            panic!(
                "message {i} of 15, after {} reconnections: {e:?}",
                ws.stats().reconnects
            );
        }
    }
    assert!(ws.stats().reconnects >= 14, "{:?}", ws.stats());
}

#[tokio::test]
async fn once_the_limit_refuses_every_operation_says_so_at_once() {
    let server = echo_once_server().await;
    let mut ws = connect(
        ReconnectingSink::builder()
            .initial_interval(Duration::from_millis(10))
            .max_reconnections_total(2)
            .max_reconnections_time(Duration::from_secs(60)),
        server.url(),
    )
    .await;

    // Message 0 on the first connection, 1 and 2 on the two reconnections allowed; the
    // third reconnection, for message 3, is refused.
    let mut refused_at = None;
    for i in 0..6 {
        match round_trip(&mut ws, i).await {
            Ok(()) => {}
            Err(Error::TooManyReconnects { .. }) => {
                refused_at = Some(i);
                break;
            }
            Err(e) => panic!("message {i}: {e:?}"),
        }
    }
    assert_eq!(refused_at, Some(3), "the third reconnection is refused");

    for k in 1..=3 {
        let again = timeout(BOUND, ws.send(Message::text("again")))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "send() #{k} after the refusal hung (the window frees in 60 s); state {:?}",
                    *ws.state().borrow()
                )
            });
        assert!(
            matches!(again, Err(Error::TooManyReconnects { .. })),
            "send() #{k} after the refusal: {again:?}"
        );
    }
    let state = ws.state().borrow().clone();
    assert!(
        matches!(state, ConnectionState::Refused { .. }),
        "state after the refusal: {state:?}"
    );
    let item = timeout(BOUND, ws.next())
        .await
        .expect("next() after the refusal hung");
    assert!(
        matches!(item, Some(Err(Error::TooManyReconnects { .. }))),
        "next() after the refusal: {item:?}"
    );
}

#[tokio::test]
async fn zero_reconnections_allowed_gives_too_many_reconnects() {
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, close_after(1, log.clone())).await;
    let mut ws = connect(quick_healthy().max_reconnections_total(0), server.url()).await;
    send(&mut ws, "first").await.unwrap();
    eventually("first", || log.len() == 1).await;
    // The close may take a moment to arrive; sends before it still succeed.
    let err = send_until_error(&mut ws, "again").await;
    assert!(
        matches!(err, Error::TooManyReconnects { max_total: 0, .. }),
        "{err:?}"
    );
    assert!(!ws.can_connect());
    assert_eq!(server.upgrades(), 1);
}

#[tokio::test]
async fn with_the_server_gone_the_error_is_not_too_many_reconnects() {
    let (server, _log) = recording_server().await;
    let mut ws = connect(
        quick_healthy()
            .max_reconnections_total(1)
            .max_elapsed_time(Some(Duration::from_millis(300))),
        server.url(),
    )
    .await;
    drop(server); // stops listening and drops the connection
    let err = send_until_error(&mut ws, "x").await;
    assert!(matches!(err, Error::GaveUp { .. }), "{err:?}");
}

#[tokio::test]
async fn a_sliding_window_of_three_refuses_the_fourth_then_frees() {
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, close_after(1, log.clone())).await;
    let window = Duration::from_secs(2);
    let mut ws = connect(
        quick_healthy()
            .max_reconnections_total(3)
            .max_reconnections_time(window),
        server.url(),
    )
    .await;
    let started = Instant::now();
    // Every message makes the server close; reading notices it and reconnects.
    for k in 1..=3 {
        send(&mut ws, format!("m{k}")).await.unwrap();
        let errors = read_until(&mut ws, "reconnected", |_| server.upgrades() == k + 1).await;
        assert!(errors.is_empty(), "{errors:?}");
    }
    send(&mut ws, "m4").await.unwrap();
    eventually("m4 arrived", || log.len() == 4).await;
    // Reading notices the fourth close; the fourth reconnection is refused, once.
    let item = timeout(BOUND, ws.next()).await.unwrap();
    assert!(
        matches!(
            item,
            Some(Err(Error::TooManyReconnects { max_total: 3, .. }))
        ),
        "{item:?}"
    );
    assert_eq!(server.upgrades(), 4, "first dial + three reconnections");
    assert!(
        started.elapsed() < window,
        "the test was too slow to prove the window"
    );
    assert!(!ws.can_connect());
    // While the window is full every write is refused at once, with the time it frees.
    let mut retry_at = None;
    for _ in 0..3 {
        match timeout(BOUND, send(&mut ws, "refused"))
            .await
            .expect("a write waited")
        {
            Err(Error::TooManyReconnects {
                retry_at: Some(at), ..
            }) => retry_at = Some(at),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        *ws.state().borrow(),
        ws_reconnect::ConnectionState::Refused { .. }
    ));
    // Once the oldest reconnection leaves the window, a send reconnects.
    tokio::time::sleep_until(retry_at.unwrap()).await;
    send(&mut ws, "after").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    eventually("after", || {
        log.texts().last().map(String::as_str) == Some("after")
    })
    .await;
    assert_eq!(server.upgrades(), 5);
}
