//! Connections through real proxies that this crate did not write: Debian's `tinyproxy`
//! (HTTP `CONNECT`) and `microsocks` (SOCKS5), started by each test as child processes on
//! free loopback ports. Without them a test prints `SKIPPED: …` and returns; `.ci/run`
//! installs both.
//!
//! The proxies' own logs say which tunnels they opened: that is how a test knows a
//! connection went through the proxy and not around it. Tests that need a global
//! tracing subscriber or an environment of their own run in a child process of this test
//! binary, so that no test changes the environment the others read.

#[path = "../support/mod.rs"]
mod support;

mod child;
mod procs;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use tower::ServiceExt;
use ws_reconnect::ConnectionState;
use ws_reconnect::{Error, Message, ReconnectingSink, Target, TungsteniteConnector};
use ws_reconnect::{ProxyFailure, SocksReply};

use procs::ProxyProcess;
use support::{dead_port, echo, quick, serve, silent_listener, Log, Reply, Server, Ws, BOUND};

async fn echo_server() -> Server {
    serve(|_| Reply::Upgrade, echo).await
}

/// Sends `text` and expects it back, bounded.
async fn round_trip(ws: &mut ReconnectingSink, text: &str) {
    timeout(BOUND, ws.send(Message::text(text)))
        .await
        .expect("send hung")
        .unwrap();
    let echoed = timeout(BOUND, ws.next())
        .await
        .expect("no echo")
        .expect("the stream ended")
        .unwrap();
    assert_eq!(echoed, Message::text(text));
}

/// `Builder::connect`, bounded.
async fn connect(builder: ws_reconnect::Builder, url: &str) -> Result<ReconnectingSink, Error> {
    timeout(BOUND, builder.connect(url))
        .await
        .expect("connect hung: a refusal must not be retried forever")
}

#[tokio::test]
async fn ws_through_an_http_connect_tunnel() {
    let server = echo_server().await;
    let Some(proxy) = ProxyProcess::tinyproxy(&[server.addr.port()], None).await else {
        return;
    };
    let mut ws = connect(quick().proxy(proxy.url("http", None)), &server.url())
        .await
        .unwrap();
    round_trip(&mut ws, "through CONNECT").await;
    assert_eq!(
        proxy.connects_to(&server.addr.to_string()),
        1,
        "{}",
        proxy.log()
    );
    timeout(BOUND, ws.close()).await.unwrap().unwrap();
}

#[tokio::test]
async fn ws_through_an_http_connect_tunnel_with_basic_credentials() {
    let server = echo_server().await;
    let Some(proxy) =
        ProxyProcess::tinyproxy(&[server.addr.port()], Some(("ws-user", "pa.ss_1"))).await
    else {
        return;
    };
    // User-info is percent-decoded before it is sent (tinyproxy's configuration takes no
    // '@' or ':' in a password, so the escapes here stand for plain characters).
    let url = proxy.url("http", Some(("ws-user", "pa%2Ess%5F1")));
    let mut ws = connect(quick().proxy(url), &server.url()).await.unwrap();
    round_trip(&mut ws, "authenticated").await;
    assert_eq!(
        proxy.connects_to(&server.addr.to_string()),
        1,
        "{}",
        proxy.log()
    );
}

#[cfg(feature = "rustls")]
mod wss {
    //! wss:// through a `CONNECT` tunnel: TLS runs inside it, checked against the
    //! server's host name (a certificate for "localhost", made by the test).

    use std::sync::Arc;

    use futures::{SinkExt, StreamExt};
    use tokio::net::TcpListener;
    use tokio_rustls::rustls;

    use super::*;

    /// A wss echo server for "localhost" on 127.0.0.1:0, and a client configuration that
    /// trusts it.
    async fn tls_echo_server() -> (u16, Arc<rustls::ClientConfig>, tokio::task::JoinHandle<()>) {
        let (acceptor, cert) = crate::support::tls::self_signed_localhost();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tasks.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                        return;
                    };
                    while let Some(Ok(m)) = ws.next().await {
                        if m.is_text() && ws.send(m).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (port, crate::support::tls::trusting(cert), task)
    }

    #[tokio::test]
    async fn wss_through_an_http_connect_tunnel() {
        let (port, client, server) = tls_echo_server().await;
        let Some(proxy) = ProxyProcess::tinyproxy(&[port], None).await else {
            return;
        };
        let mut ws = connect(
            quick().proxy(proxy.url("http", None)).rustls_config(client),
            &format!("wss://localhost:{port}/"),
        )
        .await
        .unwrap();
        round_trip(&mut ws, "encrypted end to end").await;
        // The proxy was asked for the host name, and TLS checked the certificate against
        // it through the tunnel.
        assert_eq!(
            proxy.connects_to(&format!("localhost:{port}")),
            1,
            "{}",
            proxy.log()
        );
        server.abort();
    }
}

#[tokio::test]
async fn ws_through_socks5h_sends_the_host_name_to_the_proxy() {
    let server = echo_server().await;
    let Some(proxy) = ProxyProcess::microsocks(None).await else {
        return;
    };
    let port = server.addr.port();
    let mut ws = connect(
        quick().proxy(proxy.url("socks5h", None)),
        &format!("ws://localhost:{port}/"),
    )
    .await
    .unwrap();
    round_trip(&mut ws, "socks5h").await;
    // microsocks resolved the name itself.
    assert_eq!(
        proxy.socks_connections_to(&format!("localhost:{port}")),
        1,
        "{}",
        proxy.log()
    );
}

#[tokio::test]
async fn ws_through_socks5_with_credentials() {
    let server = echo_server().await;
    let Some(proxy) = ProxyProcess::microsocks(Some(("ws-user", "s3cret"))).await else {
        return;
    };
    let port = server.addr.port();
    let creds = Some(("ws-user", "s3cret"));
    let mut ws = connect(quick().proxy(proxy.url("socks5h", creds)), &server.url())
        .await
        .unwrap();
    round_trip(&mut ws, "socks5h with a login").await;

    // socks5:// resolves here: the proxy gets an address, not the name.
    let mut ws = connect(
        quick().proxy(proxy.url("socks5", creds)),
        &format!("ws://localhost:{port}/"),
    )
    .await
    .unwrap();
    round_trip(&mut ws, "socks5 with a login").await;
    let log = proxy.log();
    assert_eq!(
        proxy.socks_connections_to(&server.addr.to_string()),
        2,
        "{log}"
    );
    assert_eq!(
        proxy.socks_connections_to(&format!("localhost:{port}")),
        0,
        "{log}"
    );
}

#[tokio::test]
async fn wrong_http_proxy_credentials_are_a_proxy_error_that_is_not_retried() {
    let server = echo_server().await;
    let Some(proxy) =
        ProxyProcess::tinyproxy(&[server.addr.port()], Some(("ws-user", "right"))).await
    else {
        return;
    };
    // tinyproxy answers wrong credentials with 401, missing ones with 407.
    for (creds, expected) in [(Some(("ws-user", "wrong")), 401), (None, 407)] {
        let err = connect(quick().proxy(proxy.url("http", creds)), &server.url())
            .await
            .unwrap_err();
        match &err {
            Error::Proxy {
                proxy: name,
                failure: ProxyFailure::Status(status),
                retryable: false,
            } => {
                assert_eq!(status.as_u16(), expected);
                assert_eq!(*name, proxy.url("http", None));
            }
            other => panic!("{other:?}"),
        }
        assert!(!err.is_retryable());
        let text = err.to_string();
        assert!(text.contains(&expected.to_string()), "{text}");
        assert!(text.contains("user:password of the proxy URL"), "{text}");
    }
    // Each attempt asked once and was not retried; the server was never reached.
    assert_eq!(
        proxy.connects_to(&server.addr.to_string()),
        2,
        "{}",
        proxy.log()
    );
    assert_eq!(server.attempts(), 0);
}

#[tokio::test]
async fn wrong_socks5_credentials_are_a_proxy_error_that_is_not_retried() {
    let server = echo_server().await;
    let Some(proxy) = ProxyProcess::microsocks(Some(("ws-user", "right"))).await else {
        return;
    };
    let err = connect(
        quick().proxy(proxy.url("socks5h", Some(("ws-user", "wrong")))),
        &server.url(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Proxy {
                failure: ProxyFailure::AuthRejected,
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );
    let err = connect(quick().proxy(proxy.url("socks5h", None)), &server.url())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Proxy {
                failure: ProxyFailure::AuthRequired,
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("user:password"), "{err}");
    assert_eq!(server.attempts(), 0);
}

#[tokio::test]
async fn a_forbidden_port_is_final_and_an_unreachable_server_is_retried() {
    let server = echo_server().await;
    let closed = dead_port().await;
    // tinyproxy allows CONNECT to the closed port only.
    let Some(http) = ProxyProcess::tinyproxy(&[closed.port()], None).await else {
        return;
    };
    let err = connect(quick().proxy(http.url("http", None)), &server.url())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Proxy { failure: ProxyFailure::Status(s), retryable: false, .. } if s.as_u16() == 403),
        "{err:?}"
    );

    // Nothing listens on the allowed port: tinyproxy answers 500, which is retried
    // until the backoff gives up.
    let gave_up = connect(
        quick()
            .proxy(http.url("http", None))
            .max_elapsed_time(Some(Duration::from_millis(300))),
        &format!("ws://{closed}/"),
    )
    .await
    .unwrap_err();
    match &gave_up {
        Error::GaveUp {
            attempts, source, ..
        } => {
            assert!(*attempts > 1, "{gave_up:?}");
            assert!(
                matches!(&**source, Error::Proxy { failure: ProxyFailure::Status(s), retryable: true, .. } if s.as_u16() == 500),
                "{source:?}"
            );
        }
        other => panic!("{other:?}"),
    }

    // microsocks answers "connection refused", which is retried too.
    let Some(socks) = ProxyProcess::microsocks(None).await else {
        return;
    };
    let gave_up = connect(
        quick()
            .proxy(socks.url("socks5h", None))
            .max_elapsed_time(Some(Duration::from_millis(300))),
        &format!("ws://{closed}/"),
    )
    .await
    .unwrap_err();
    match &gave_up {
        Error::GaveUp { source, .. } => assert!(
            matches!(
                &**source,
                Error::Proxy {
                    failure: ProxyFailure::Socks(SocksReply::ConnectionRefused),
                    retryable: true,
                    ..
                }
            ),
            "{source:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_proxy_is_a_retryable_proxy_error() {
    let server = echo_server().await;
    let nowhere = dead_port().await;
    let target = Target::new(server.url()).unwrap();
    let err = timeout(
        BOUND,
        TungsteniteConnector::new()
            .proxy(format!("socks5h://{nowhere}"))
            .oneshot(target),
    )
    .await
    .unwrap()
    .unwrap_err();
    match &err {
        Error::Proxy {
            proxy,
            failure: ProxyFailure::Io(e),
            retryable: true,
        } => {
            assert_eq!(*proxy, format!("socks5h://{nowhere}"));
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(server.attempts(), 0);
}

/// A proxy that accepts TCP and never answers is bounded by the connect timeout, which is
/// retried like any timeout.
#[tokio::test]
async fn a_silent_proxy_is_bounded_by_the_connect_timeout() {
    let server = echo_server().await;
    let silent_server = silent_listener().await;
    let silent = silent_server.addr;
    for scheme in ["http", "socks5h"] {
        let err = connect(
            quick()
                .proxy(format!("{scheme}://{silent}"))
                .connect_timeout(Duration::from_millis(100))
                .max_elapsed_time(Some(Duration::from_millis(300))),
            &server.url(),
        )
        .await
        .unwrap_err();
        match &err {
            Error::GaveUp { source, .. } => {
                assert!(matches!(**source, Error::Timeout), "{source:?}")
            }
            other => panic!("{scheme}: {other:?}"),
        }
    }
    assert!(silent_server.attempts() >= 2);
    assert_eq!(server.attempts(), 0);
}

#[tokio::test]
async fn a_malformed_proxy_url_is_an_invalid_proxy_url_from_build() {
    for bad in [
        "socks4://127.0.0.1:1080",
        "https://127.0.0.1:3128",
        "http://127.0.0.1:99999",
    ] {
        let err = quick().proxy(bad).build("ws://127.0.0.1:9/").unwrap_err();
        assert!(
            matches!(err, Error::InvalidProxyUrl { .. }),
            "{bad}: {err:?}"
        );
        assert!(!err.is_retryable());
    }
    // The connector alone reports it at connect time, without network traffic.
    let err = timeout(
        BOUND,
        TungsteniteConnector::new()
            .proxy("ftp://proxy")
            .oneshot(Target::new("ws://127.0.0.1:9/").unwrap()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(err, Error::InvalidProxyUrl { .. }), "{err:?}");
}

/// A server that records every text message with the connection it came on, and drops
/// its first connection (no Close frame) after the first message.
async fn drops_first_connection() -> (Server, Log) {
    let log = Log::default();
    let record = log.clone();
    let server = serve(
        |_| Reply::Upgrade,
        move |conn, mut ws: Ws| {
            let record = record.clone();
            async move {
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Text(text) = m {
                        record.push(conn, text.to_string());
                        if conn == 0 {
                            return;
                        }
                    }
                }
            }
        },
    )
    .await;
    (server, log)
}

/// Polls the sink's stream (which drives it) until `done`, bounded.
async fn drive_until(
    ws: &mut ReconnectingSink,
    what: &str,
    mut done: impl FnMut(&ReconnectingSink) -> bool,
) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !done(ws) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        let _ = timeout(Duration::from_millis(20), ws.next()).await;
    }
}

/// The server drops the first connection; the sink reconnects through the proxy and the
/// next message arrives on the second connection.
#[tokio::test]
async fn the_sink_reconnects_through_the_proxy_after_the_server_drops_it() {
    let (server, log) = drops_first_connection().await;
    let Some(proxy) = ProxyProcess::tinyproxy(&[server.addr.port()], None).await else {
        return;
    };
    let mut ws = connect(quick().proxy(proxy.url("http", None)), &server.url())
        .await
        .unwrap();
    timeout(BOUND, ws.send(Message::text("one")))
        .await
        .unwrap()
        .unwrap();
    drive_until(&mut ws, "a second connection", |ws| {
        server.upgrades() == 2 && ws.is_connected()
    })
    .await;
    timeout(BOUND, ws.send(Message::text("two")))
        .await
        .unwrap()
        .unwrap();
    support::eventually("the message on the new connection", || {
        log.entries().contains(&(1, "two".to_string()))
    })
    .await;
    assert_eq!(log.entries()[0], (0, "one".to_string()));
    assert_eq!(
        proxy.connects_to(&server.addr.to_string()),
        2,
        "{}",
        proxy.log()
    );
    assert_eq!(ws.stats().reconnects, 1);
}

/// The proxy process dies (SIGKILL) and comes back on the same port: the sink notices the
/// broken tunnel, reconnects through the new process and carries on.
#[tokio::test]
async fn the_sink_carries_on_after_the_proxy_restarts() {
    let (server, log) = support::recording_server().await;
    let Some(mut proxy) = ProxyProcess::microsocks(None).await else {
        return;
    };
    let mut ws = connect(quick().proxy(proxy.url("socks5h", None)), &server.url())
        .await
        .unwrap();
    timeout(BOUND, ws.send(Message::text("before")))
        .await
        .unwrap()
        .unwrap();
    support::eventually("the first message", || log.len() == 1).await;

    proxy.kill();
    let state = ws.state();
    drive_until(&mut ws, "the sink to notice the broken tunnel", |_| {
        matches!(*state.borrow(), ConnectionState::Reconnecting { .. })
    })
    .await;
    proxy.restart().await;

    timeout(BOUND, ws.send(Message::text("after")))
        .await
        .expect("no reconnection through the restarted proxy")
        .unwrap();
    support::eventually("the message after the restart", || {
        log.entries().contains(&(1, "after".to_string()))
    })
    .await;
    assert_eq!(
        proxy.socks_connections_to(&server.addr.to_string()),
        2,
        "{}",
        proxy.log()
    );
    assert_eq!(ws.stats().reconnects, 1);
}

/// The environment variables, end to end: each case runs the dial in a child process
/// with an environment of its own (the rules themselves are unit tests of the crate).
#[tokio::test]
async fn environment_variables_choose_the_proxy() {
    let server = echo_server().await;
    let (Some(http), Some(socks)) = (
        ProxyProcess::tinyproxy(&[server.addr.port()], None).await,
        ProxyProcess::microsocks(None).await,
    ) else {
        return;
    };
    // The environment never applies to loopback names and addresses, so these cases dial
    // 0.0.0.0, which Linux connects to this machine (through loopback) and which is not a
    // loopback address to the proxy rules.
    let port = server.addr.port();
    let target = format!("0.0.0.0:{port}");
    let url = format!("ws://{target}/");
    let dead = format!("http://{}", dead_port().await);
    let http_url = http.url("http", None);

    // Loopback goes direct whatever the environment says.
    let env = [("HTTP_PROXY", dead.as_str()), ("ALL_PROXY", dead.as_str())];
    assert_eq!(
        child::dial(&server.url(), "default", &env).await,
        "connected"
    );

    // Read by default: ws:// takes HTTP_PROXY.
    let outcome = child::dial(&url, "default", &[("HTTP_PROXY", &http_url)]).await;
    assert_eq!(outcome, "connected");
    assert_eq!(http.connects_to(&target), 1);

    // NO_PROXY sends the host direct.
    let env = [
        ("HTTP_PROXY", http_url.as_str()),
        ("NO_PROXY", "localhost,0.0.0.0"),
    ];
    assert_eq!(child::dial(&url, "default", &env).await, "connected");
    assert_eq!(http.connects_to(&target), 1);

    // HTTPS_PROXY is for wss:// only; ALL_PROXY is the fallback.
    let env = [
        ("HTTPS_PROXY", dead.as_str()),
        ("all_proxy", &socks.url("socks5h", None)),
    ];
    assert_eq!(child::dial(&url, "default", &env).await, "connected");
    assert_eq!(socks.socks_connections_to(&target), 1, "{}", socks.log());

    // An explicit proxy wins over the environment; no_proxy() ignores it.
    let env = [("HTTP_PROXY", dead.as_str())];
    let explicit = format!("proxy={http_url}");
    assert_eq!(child::dial(&url, &explicit, &env).await, "connected");
    assert_eq!(http.connects_to(&target), 2);
    assert_eq!(child::dial(&url, "no_proxy", &env).await, "connected");

    // The variable is used: a dead proxy there is a proxy error.
    let outcome = child::dial(&url, "default", &env).await;
    assert!(
        outcome.contains("Proxy") && outcome.contains("ConnectionRefused"),
        "{outcome}"
    );

    // A malformed variable is an invalid proxy URL, reported at connect, even when the
    // password holds a '/' that ends the authority early.
    for variable in ["ftp://u:SECRET@127.0.0.1:1", "http://u:SEC/RET@127.0.0.1:1"] {
        let outcome = child::dial(&url, "default", &[("http_proxy", variable)]).await;
        assert!(outcome.contains("InvalidProxyUrl"), "{outcome}");
        assert!(outcome.contains("invalid proxy URL"), "{outcome}");
        for secret in ["SEC", "RET"] {
            assert!(!outcome.contains(secret), "{outcome}");
        }
    }

    assert_eq!(http.connects_to(&target), 2);
    assert_eq!(socks.socks_connections_to(&target), 1);
}

/// A `NO_PROXY` entry with a port sends its host direct on that port only, as Go's
/// httpproxy reads it; an entry that can never match is named in a warning.
#[tokio::test]
async fn a_no_proxy_entry_with_a_port_matches_that_port_only() {
    let server = echo_server().await;
    let Some(http) = ProxyProcess::tinyproxy(&[server.addr.port()], None).await else {
        return;
    };
    // 0.0.0.0, not loopback, so that the environment applies (see above).
    let port = server.addr.port();
    let target = format!("0.0.0.0:{port}");
    let url = format!("ws://{target}/");
    let http_url = http.url("http", None);

    // The server's port: direct.
    let entry = format!("example.com, {target}");
    let env = [("HTTP_PROXY", http_url.as_str()), ("NO_PROXY", &entry)];
    assert_eq!(child::dial(&url, "default", &env).await, "connected");
    assert_eq!(http.connects_to(&target), 0, "{}", http.log());

    // Another port, or the scheme's default (80 for ws://): through the proxy.
    let other = format!("0.0.0.0:{}", if port == 65535 { 1 } else { port + 1 });
    for entry in [other.as_str(), "0.0.0.0:80"] {
        let env = [("HTTP_PROXY", http_url.as_str()), ("NO_PROXY", entry)];
        assert_eq!(child::dial(&url, "default", &env).await, "connected");
    }
    assert_eq!(http.connects_to(&target), 2, "{}", http.log());

    // An entry that can never match is named in a warning; the others still apply.
    let entry = format!("example.com:99999, {target}");
    let env = [("HTTP_PROXY", http_url.as_str()), ("NO_PROXY", &entry)];
    let (outcome, logs) = child::dial_logged(&url, "default", &env).await;
    assert_eq!(outcome, "connected");
    assert_eq!(http.connects_to(&target), 2, "{}", http.log());
    assert!(
        logs.contains("WARN") && logs.contains("example.com:99999"),
        "no warning names the entry:\n{logs}"
    );
}

/// The child side of [`environment_variables_choose_the_proxy`]: a no-op unless this
/// process was started as that child.
#[tokio::test]
async fn child_dial_with_this_environment() {
    if let Some(outcome) = child::dial_as_child().await {
        println!("{}{outcome}", child::OUTCOME);
    }
}

/// Proxy credentials never appear in log lines (ours and the WebSocket stack's), `Debug`
/// output or errors, through either kind of proxy, across a reconnection and in refusals.
#[tokio::test]
async fn proxy_credentials_stay_out_of_logs_debug_output_and_errors() {
    if !procs::installed() {
        return;
    }
    if child::in_child_process(
        "proxy_credentials_stay_out_of_logs_debug_output_and_errors",
        &[],
    )
    .await
    {
        return;
    }
    let capture = child::Capture::default();
    // `init` also forwards `log` records (tungstenite's) to the subscriber.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .init();

    let (via_http, _) = drops_first_connection().await;
    let (via_socks, _) = drops_first_connection().await;
    let http = ProxyProcess::tinyproxy(&[via_http.addr.port()], Some(("ws-user", "SECRET-HTTP")))
        .await
        .unwrap();
    let socks = ProxyProcess::microsocks(Some(("ws-user", "SECRET-SOCKS")))
        .await
        .unwrap();
    let mut debug = Vec::new();
    let mut errors = Vec::new();

    for (proxy, server) in [
        (
            http.url("http", Some(("ws-user", "SECRET-HTTP"))),
            &via_http,
        ),
        (
            socks.url("socks5h", Some(("ws-user", "SECRET-SOCKS"))),
            &via_socks,
        ),
    ] {
        let builder = quick().proxy(&proxy);
        debug.push(format!("{builder:?}"));
        debug.push(format!("{:?}", TungsteniteConnector::new().proxy(&proxy)));
        let mut ws = connect(builder, &server.url()).await.unwrap();
        timeout(BOUND, ws.send(Message::text("one")))
            .await
            .unwrap()
            .unwrap();
        // The server drops the first connection: reconnect through the proxy.
        drive_until(&mut ws, "a reconnection", |ws| {
            server.upgrades() == 2 && ws.is_connected()
        })
        .await;
        debug.push(format!("{ws:?} {:?}", *ws.state().borrow()));
        timeout(BOUND, ws.close()).await.unwrap().unwrap();

        // Refused: the wrong password, in another secret.
        let wrong = proxy
            .replace("SECRET-HTTP", "SECRET-WRONG")
            .replace("SECRET-SOCKS", "SECRET-WRONG");
        let err = connect(quick().proxy(&wrong), &server.url())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Proxy {
                    retryable: false,
                    ..
                }
            ),
            "{err:?}"
        );
        errors.push(format!("{err} {err:?}"));
    }
    let bad = quick()
        .proxy("htps://ws-user:SECRET-BAD@127.0.0.1:1/?token=SECRET-Q")
        .build(via_http.url())
        .unwrap_err();
    errors.push(format!("{bad} {bad:?}"));

    let logs = capture.text();
    assert!(
        logs.contains("through a proxy"),
        "no proxy event was logged:\n{logs}"
    );
    assert!(logs.contains(&http.url("http", None)), "{logs}");
    assert!(logs.contains(&socks.url("socks5h", None)), "{logs}");
    assert!(errors[0].contains(&http.url("http", None)), "{}", errors[0]);
    // The Basic token is the credentials in base64: it must not leak either.
    let token = data_encoding::BASE64.encode(b"ws-user:SECRET-HTTP");
    for text in [&logs, &debug.join("\n"), &errors.join("\n")] {
        assert!(!text.contains("SECRET"), "a secret leaked:\n{text}");
        assert!(!text.contains(&token), "the Basic token leaked:\n{text}");
    }
}
