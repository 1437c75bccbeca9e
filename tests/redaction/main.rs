//! Secrets stay out of every log line, Debug output and error message.
//!
//! Each test installs a global subscriber, and tracing's callsite cache is process-wide:
//! the first test owns this test binary's process, every other one runs itself in a child
//! process of its own ([`in_child_process`](support::child::in_child_process)).

#[path = "../support/mod.rs"]
mod support;

use support::capture::Capture;
use support::child::in_child_process;

use futures::SinkExt;

use tokio::time::timeout;
use ws_reconnect::{Error, ReconnectingSink};

use support::{close_first, connect, quick, read_until, refuse_first, serve, Reply, Server, BOUND};

/// Dials `server` with a secret in the query, the `Authorization` header and a cookie.
async fn connect_with_secrets(server: &Server) -> ReconnectingSink {
    let secrets = quick()
        .header("Authorization", "Bearer SECRET-HEADER")
        .header("Cookie", "session=SECRET-COOKIE");
    let url = format!("ws://{}/feed?token=SECRET-QUERY", server.addr);
    connect(secrets, url).await
}

#[tokio::test]
async fn secrets_stay_out_of_logs_debug_output_and_errors() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    // Global, in a test binary of its own: tracing's callsite cache is process-wide.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    // The first handshake is refused, the first connection closed: the client retries
    // and reconnects.
    let server = serve(refuse_first(1, 503, vec![]), close_first).await;
    let mut ws = connect_with_secrets(&server).await;
    read_until(&mut ws, "reconnected", |_| server.upgrades() >= 2).await;
    let debug = format!("{ws:?} {:?}", ws.target());
    let bad = ReconnectingSink::builder()
        .build("https://user:SECRET-PW@host/?token=SECRET-Q2")
        .unwrap_err();
    let errors = format!("{bad} {bad:?}");
    ws.close().await.unwrap();
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("connected"), "nothing was logged: {logs}");
    assert!(
        logs.contains("<redacted>"),
        "URLs are not redacted in the logs"
    );
    for text in [&logs, &debug, &errors] {
        assert!(!text.contains("SECRET"), "a secret leaked:\n{text}");
    }
}

/// An application whose subscriber also forwards `log` records (what
/// `tracing_subscriber::fmt().init()` does through tracing-log) sees the records of
/// tungstenite and tokio-tungstenite: none of them may carry the upgrade request.
#[tokio::test]
async fn log_records_of_the_websocket_stack_carry_no_secrets() {
    if in_child_process("log_records_of_the_websocket_stack_carry_no_secrets", &[]).await {
        return;
    }
    let capture = Capture::default();
    // `init` installs tracing-log's LogTracer next to the subscriber.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .init();

    let server = serve(|_| Reply::Upgrade, close_first).await;
    let mut ws = connect_with_secrets(&server).await;
    read_until(&mut ws, "reconnected", |_| server.upgrades() >= 2).await;
    timeout(BOUND, ws.close()).await.unwrap().unwrap();

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.is_empty(), "nothing was logged");
    assert!(
        logs.contains("tungstenite"),
        "no log record of the WebSocket stack was forwarded: {logs}"
    );
    assert!(logs.contains("<redacted>"), "our own events are missing");
    assert!(!logs.contains("SECRET"), "a secret leaked:\n{logs}");
}

/// A password in a URL that does not parse stays out of the error, whatever the password
/// holds: the user-info is cut from the text before any parser reads it, up to the last
/// `@`. A proxy URL's error says it is about the proxy.
#[tokio::test]
async fn a_password_stays_out_of_the_error_of_a_url_that_does_not_parse() {
    // The proxy variable's password holds a `/`: read at the connection attempt.
    let variable = [("http_proxy", "http://user:PW1/PW2@proxy.invalid:3128")];
    if in_child_process(
        "a_password_stays_out_of_the_error_of_a_url_that_does_not_parse",
        &variable,
    )
    .await
    {
        return;
    }
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .init();

    let mut errors = Vec::new();
    for url in [
        "ws://user:PW1@ho st/",
        "ws://user:PW1@[::1/",
        "ws://user:PW1@/x",
        // Read as host "user" and a port that is not a number.
        "ws://user:PW1/PW2@host/",
        "ws://user:PW1?PW2@host/",
        "ws://user:PW1#PW2@host/",
    ] {
        let err = ReconnectingSink::builder().build(url).unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err:?}");
        let text = format!("{err} {err:?}");
        assert!(text.contains("invalid WebSocket URL"), "{url}: {text}");
        errors.push(text);
    }
    for proxy in [
        "http://user:PW1/PW2@proxy:3128",
        "http://user:PW1?PW2@proxy",
        "http://user:PW1#PW2@proxy",
        "socks5h://user:PW1@pro xy:1080",
    ] {
        let err = ReconnectingSink::builder()
            .proxy(proxy)
            .build("ws://example.com/")
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidProxyUrl { .. }),
            "{proxy}: {err:?}"
        );
        let text = format!("{err} {err:?}");
        assert!(text.contains("invalid proxy URL"), "{proxy}: {text}");
        assert!(!text.contains("WebSocket URL"), "{proxy}: {text}");
        errors.push(text);
    }
    // From the environment, at the connection attempt: not a loopback host, so that the
    // variable applies; nothing is dialed, the proxy URL is refused first.
    let err = timeout(
        BOUND,
        ReconnectingSink::builder().connect("ws://192.0.2.1:9/"),
    )
    .await
    .expect("an invalid proxy URL is not retried")
    .unwrap_err();
    assert!(matches!(err, Error::InvalidProxyUrl { .. }), "{err:?}");
    let text = format!("{err} {err:?}");
    assert!(text.contains("invalid proxy URL"), "{text}");
    errors.push(text);

    let logs = capture.text();
    assert!(
        logs.contains("invalid proxy URL"),
        "the failure was not logged: {logs}"
    );
    for text in errors.iter().chain([&logs]) {
        for secret in ["PW1", "PW2", "user"] {
            assert!(!text.contains(secret), "{secret} leaked:\n{text}");
        }
    }
}
