//! `dial()` and what comes before it: a sink is built without I/O, a write before `dial()`
//! is refused and dials nothing, a bad URL or port fails at once without a connection,
//! `dial()` returns once connected (waiting for a reconnection under way), and the sink
//! is `Send + Unpin + Debug`.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use ws_reconnect::{ConnectionState, Error, ReconnectingSink};

use crate::support::*;

#[tokio::test]
async fn dial_connects_and_messages_arrive() {
    let (server, log) = recording_server().await;
    let mut ws = connect(ReconnectingSink::builder(), server.url()).await;
    assert!(ws.is_connected());
    assert!(ws.can_connect());
    send(&mut ws, "one").await.unwrap();
    send(&mut ws, "two").await.unwrap();
    eventually("two messages", || log.len() == 2).await;
    assert_eq!(log.texts(), ["one", "two"]);
    assert_eq!(server.upgrades(), 1);
}

/// The server goes away and the reader notices: the sink is reconnecting with nothing
/// owed. `dial()` must wait for a connection, not return Ok while there is none.
#[tokio::test]
async fn dial_while_reconnecting_waits_for_the_connection() {
    let server = serve(|_| Reply::Upgrade, drain).await;
    let addr = server.addr;
    let mut ws = connect(quick(), server.url()).await;
    let mut states = ws.state();
    drop(server);
    timeout(BOUND, async {
        loop {
            tokio::select! {
                _ = ws.next() => {}
                _ = states.wait_for(|s| matches!(s, ConnectionState::Reconnecting { .. })) => break,
            }
        }
    })
    .await
    .expect("the reader never noticed the server was gone");
    // Nothing listens: dial() keeps waiting.
    assert!(timeout(Duration::from_millis(300), ws.dial())
        .await
        .is_err());
    // The server comes back on the same port: dial() returns once connected.
    let _server = crate::support::serve_on(addr, |_| Reply::Upgrade, drain).await;
    timeout(BOUND, ws.dial())
        .await
        .expect("dial() hung after the server came back")
        .expect("dial");
    assert!(ws.is_connected());
    assert_eq!(state(&ws), ConnectionState::Connected);
}

#[tokio::test]
async fn writing_before_dial_is_not_dialed_and_makes_no_connection() {
    let (server, _log) = recording_server().await;
    let mut ws = quick_healthy().build(server.url()).unwrap();
    assert!(matches!(
        send(&mut ws, "early").await,
        Err(Error::NotDialed)
    ));
    assert!(matches!(timeout(BOUND, ws.flush()).await.unwrap(), Ok(())));
    assert!(timeout(BOUND, ws.next()).await.unwrap().is_none());
    tokio::task::yield_now().await;
    assert_eq!(server.attempts(), 0);
}

#[tokio::test]
async fn invalid_urls_fail_fast() {
    for bad in ["foo", "https://127.0.0.2:1234/x", "ws://", ""] {
        let started = Instant::now();
        let err = timeout(BOUND, ReconnectingSink::connect(bad))
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{bad:?}: {err:?}");
        assert!(started.elapsed() < Duration::from_millis(100));
        assert!(matches!(
            ReconnectingSink::builder().build(bad),
            Err(Error::InvalidUrl { .. })
        ));
    }
}

/// A port that cannot be dialed is refused when the URL is read, for the server and for a
/// proxy alike: nothing falls back to the scheme's default port.
#[tokio::test]
async fn a_port_that_cannot_be_dialed_is_an_invalid_url() {
    for port in [
        "65536",
        "99999",
        "0",
        "abc",
        "",
        "+80",
        "99999999999999999999",
    ] {
        let url = format!("ws://127.0.0.1:{port}/feed");
        let err = ReconnectingSink::builder().build(&url).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidUrl { reason, .. } if reason.contains("port")),
            "{url}: {err:?}"
        );
        assert!(!err.is_retryable());

        let proxy = format!("http://127.0.0.1:{port}");
        let err = ReconnectingSink::builder()
            .proxy(&proxy)
            .build("ws://example.com/")
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidProxyUrl { reason, .. } if reason.contains("port")),
            "{proxy}: {err:?}"
        );
    }
    // A request built per attempt is checked the same way, before any connection.
    let target = ws_reconnect::Target::from_fn(|| {
        use ws_reconnect::tungstenite::client::IntoClientRequest;
        Ok("ws://127.0.0.1:65536/feed".into_client_request()?)
    });
    let mut ws = ReconnectingSink::builder().build_with(target).unwrap();
    let err = timeout(BOUND, ws.dial()).await.unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::InvalidUrl { reason, .. } if reason.contains("port")),
        "{err:?}"
    );
    // The ports that can be dialed still can.
    for good in [
        "ws://127.0.0.1:1/",
        "ws://127.0.0.1:65535/",
        "wss://[::1]:08443/",
    ] {
        ReconnectingSink::builder().build(good).unwrap();
    }
}

#[tokio::test]
async fn the_sink_is_send_unpin_and_debug() {
    fn check<T: Send + Unpin + std::fmt::Debug>(_: &T) {}
    let ws = ReconnectingSink::builder()
        .build("ws://127.0.0.1:1/")
        .unwrap();
    check(&ws);
    let text = format!("{ws:?}");
    assert!(text.contains("Idle"), "{text}");
}
