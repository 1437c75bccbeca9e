//! The connector's own upgrade handshake against loopback servers: a real WebSocket
//! server, scripted responses no WebSocket server would send, IPv6.

#[path = "../support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tower::ServiceExt;
use ws_reconnect::tungstenite::error::{CapacityError, ProtocolError};
use ws_reconnect::tungstenite::handshake::derive_accept_key;
use ws_reconnect::tungstenite::handshake::server::{Request, Response};
use ws_reconnect::tungstenite::Error as WsError;
use ws_reconnect::{Error, Message, Target, TungsteniteConnection, TungsteniteConnector};

use support::{echo, raw_server, read_request, reply_and_hold, serve, RawServer, Reply, BOUND};

/// One attempt of the default connector, bounded.
async fn dial(target: Target) -> Result<TungsteniteConnection, Error> {
    timeout(BOUND, TungsteniteConnector::new().oneshot(target))
        .await
        .expect("the handshake hung")
}

async fn dial_url(url: &str) -> Result<TungsteniteConnection, Error> {
    dial(Target::new(url).unwrap()).await
}

/// Sends `text` over `ws` and reads it back from the echo server, bounded.
async fn echo_round_trip(ws: &mut TungsteniteConnection, text: &str) {
    timeout(BOUND, ws.send(Message::text(text)))
        .await
        .expect("send hung")
        .expect("send");
    let back = timeout(BOUND, ws.next()).await.expect("no echo").unwrap();
    assert_eq!(back.unwrap(), Message::text(text));
}

/// The `Sec-WebSocket-Accept` that answers a request head.
fn accept_for(request: &str) -> String {
    let key = request
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim())
        })
        .expect("the request has a Sec-WebSocket-Key");
    derive_accept_key(key.as_bytes())
}

/// A server that reads the request, writes `response(request)`, then holds the connection
/// until the client goes away.
async fn scripted(response: fn(&str) -> Vec<u8>) -> RawServer {
    raw_server("127.0.0.1:0", move |_, mut tcp: TcpStream| async move {
        let request = read_request(&mut tcp).await;
        reply_and_hold(&mut tcp, &response(&request)).await;
    })
    .await
    .unwrap()
}

/// A tungstenite server that records the upgrade request it accepted, then echoes.
async fn recording_upgrades(bind: &str) -> std::io::Result<(RawServer, Arc<Mutex<Vec<Request>>>)> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let server = raw_server(bind, move |_, tcp: TcpStream| {
        let record = record.clone();
        async move {
            // tungstenite's callback signature fixes the error type.
            #[allow(clippy::result_large_err)]
            let callback = |request: &Request, response: Response| {
                let mut copy = Request::new(());
                *copy.uri_mut() = request.uri().clone();
                *copy.headers_mut() = request.headers().clone();
                record.lock().unwrap().push(copy);
                Ok(response)
            };
            if let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await {
                echo(0, ws).await;
            }
        }
    })
    .await?;
    Ok((server, seen))
}

#[tokio::test]
async fn a_tokio_tungstenite_server_upgrades_and_the_connection_carries_messages() {
    let server = serve(|_| Reply::Upgrade, echo).await;
    let mut ws = dial_url(&server.url()).await.unwrap();
    echo_round_trip(&mut ws, "hello").await;
    // The connection's transport: the counting wrapper around the TCP socket.
    let tcp = ws.get_ref().get_ref().get_ref();
    assert!(tcp.nodelay().unwrap(), "Nagle is on");
}

#[tokio::test]
async fn the_path_query_and_the_users_headers_arrive_at_the_server() {
    let (server, seen) = recording_upgrades("127.0.0.1:0").await.unwrap();
    let target = Target::new(format!("ws://{}/feed?token=abc", server.addr))
        .unwrap()
        .header("Authorization", "Bearer t0k3n")
        .unwrap()
        .header("X-Client", "demo")
        .unwrap();
    let mut ws = dial(target).await.unwrap();
    echo_round_trip(&mut ws, "ping").await;

    let requests = seen.lock().unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.uri(), "/feed?token=abc");
    let headers: &HeaderMap = request.headers();
    assert_eq!(headers["authorization"], "Bearer t0k3n");
    assert_eq!(headers["x-client"], "demo");
    assert_eq!(headers["host"], server.addr.to_string().as_str());
    for name in [
        "host",
        "connection",
        "upgrade",
        "sec-websocket-version",
        "sec-websocket-key",
    ] {
        assert_eq!(headers.get_all(name).iter().count(), 1, "{name}");
    }
}

#[tokio::test]
async fn a_refusal_carries_its_status_retry_after_and_classification() {
    let server = serve(
        |_| Reply::Status(503, vec![("retry-after", "7".to_string())]),
        echo,
    )
    .await;
    match dial_url(&server.url()).await {
        Err(Error::Rejected {
            status,
            retry_after,
            retryable,
        }) => {
            assert_eq!(status.as_u16(), 503);
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert!(retryable);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    let server = serve(|_| Reply::Status(403, vec![]), echo).await;
    assert!(matches!(
        dial_url(&server.url()).await,
        Err(Error::Rejected { status, retryable: false, retry_after: None }) if status.as_u16() == 403
    ));
}

#[tokio::test]
async fn a_101_with_a_wrong_accept_key_is_a_protocol_error() {
    let server = scripted(|_| {
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"
            .to_vec()
    })
    .await;
    let err = dial_url(&server.url()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport(WsError::Protocol(
                ProtocolError::SecWebSocketAcceptKeyMismatch
            ))
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_response_head_over_64_kib_is_a_capacity_error() {
    let server = scripted(|_| {
        let mut head = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
        while head.len() < 70 * 1024 {
            head.extend_from_slice(b"X-Filler: 0123456789abcdef0123456789abcdef\r\n");
        }
        head
    })
    .await;
    let err = dial_url(&server.url()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport(WsError::Capacity(CapacityError::MessageTooLong {
                max_size: 65536,
                ..
            }))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn eof_in_the_middle_of_the_response_is_an_incomplete_handshake_and_retryable() {
    let server = raw_server("127.0.0.1:0", |_, mut tcp: TcpStream| async move {
        read_request(&mut tcp).await;
        let _ = tcp
            .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: webs")
            .await;
    })
    .await
    .unwrap();
    let err = dial_url(&server.url()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport(WsError::Protocol(ProtocolError::HandshakeIncomplete))
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn a_frame_sent_with_the_101_is_the_first_message() {
    let server = scripted(|request| {
        let mut bytes = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_for(request)
        )
        .into_bytes();
        // An unmasked text frame, "early", in the same write as the response.
        bytes.extend_from_slice(&[0x81, 5]);
        bytes.extend_from_slice(b"early");
        bytes
    })
    .await;
    let mut ws = dial_url(&server.url()).await.unwrap();
    let first = timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first, Message::text("early"));
}

#[tokio::test]
async fn ipv6_literals_connect() {
    let (server, seen) = match recording_upgrades("[::1]:0").await {
        Ok(server) => server,
        Err(e) => {
            support::skip(format!("no IPv6 loopback here ({e})"));
            return;
        }
    };
    let port = server.addr.port();
    let mut ws = dial_url(&format!("ws://[::1]:{port}/v6")).await.unwrap();
    echo_round_trip(&mut ws, "six").await;
    let requests = seen.lock().unwrap();
    assert_eq!(
        requests[0].headers()["host"],
        format!("[::1]:{port}").as_str()
    );
}
