//! Unit tests of `handshake`.

use super::*;
use crate::connect::response::{ends_head, parse_head, MAX_RESPONSE_HEAD};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::CapacityError;

fn request(url: &str) -> ClientRequest {
    url.into_client_request().unwrap()
}

fn written(request: &ClientRequest) -> String {
    let endpoint = Endpoint::of(request.uri()).unwrap();
    String::from_utf8(write_request(request, &endpoint, "KEY").unwrap()).unwrap()
}

#[test]
fn endpoints_default_ports_and_ipv6() {
    let uri: Uri = "ws://example.com/x".parse().unwrap();
    let e = Endpoint::of(&uri).unwrap();
    assert_eq!((e.host, e.port, e.secure), ("example.com", 80, false));
    assert_eq!(e.authority(), "example.com");

    let uri: Uri = "WSS://[::1]:8443/x".parse().unwrap();
    let e = Endpoint::of(&uri).unwrap();
    assert_eq!((e.host, e.port, e.secure), ("::1", 8443, true));
    assert_eq!(e.authority(), "[::1]:8443");

    let uri: Uri = "wss://example.com:443".parse().unwrap();
    assert_eq!(Endpoint::of(&uri).unwrap().authority(), "example.com");

    let uri: Uri = "http://example.com/".parse().unwrap();
    assert!(matches!(
        Endpoint::of(&uri),
        Err(WsError::Url(UrlError::UnsupportedUrlScheme))
    ));
}

#[test]
fn the_request_has_the_handshake_headers_once_and_the_users_headers() {
    let mut req = request("ws://h:9000?token=t");
    let headers = req.headers_mut();
    headers.append("authorization", "Bearer x".parse().unwrap());
    // Values that would break the handshake are not sent.
    headers.append("connection", "close".parse().unwrap());
    headers.insert("sec-websocket-key", "mine".parse().unwrap());
    headers.append("sec-websocket-protocol", "chat".parse().unwrap());
    let text = written(&req);
    assert_eq!(
        text,
        "GET /?token=t HTTP/1.1\r\n\
         Host: h:9000\r\n\
         Connection: Upgrade\r\n\
         Upgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: KEY\r\n\
         authorization: Bearer x\r\n\
         Sec-WebSocket-Protocol: chat\r\n\
         \r\n"
    );
}

#[test]
fn host_comes_from_the_request_or_the_url() {
    let mut req = request("ws://10.0.0.1/");
    req.headers_mut()
        .insert("host", "virtual.example".parse().unwrap());
    assert!(written(&req).contains("\r\nHost: virtual.example\r\n"));

    req.headers_mut().remove("host");
    assert!(written(&req).contains("\r\nHost: 10.0.0.1\r\n"));

    req.headers_mut().append("host", "a".parse().unwrap());
    req.headers_mut().append("host", "b".parse().unwrap());
    let endpoint = Endpoint::of(req.uri()).unwrap();
    assert!(matches!(
        write_request(&req, &endpoint, "KEY"),
        Err(WsError::Protocol(ProtocolError::InvalidHeader(_)))
    ));
}

#[test]
fn only_get_over_http_1_1_or_later() {
    let mut req = request("ws://h/");
    *req.method_mut() = Method::POST;
    let endpoint = Endpoint::of(req.uri()).unwrap();
    assert!(matches!(
        write_request(&req, &endpoint, "KEY"),
        Err(WsError::Protocol(ProtocolError::WrongHttpMethod))
    ));
    let mut req = request("ws://h/");
    *req.version_mut() = Version::HTTP_10;
    assert!(matches!(
        write_request(&req, &endpoint, "KEY"),
        Err(WsError::Protocol(ProtocolError::WrongHttpVersion))
    ));
}

fn expected(protocols: Option<&[&str]>) -> Expected {
    Expected {
        accept_key: derive_accept_key(b"KEY"),
        offered_protocols: protocols.map(|p| p.iter().map(|s| s.as_bytes().to_vec()).collect()),
    }
}

fn head(text: &str) -> ResponseHead {
    parse_head(text.as_bytes()).unwrap().unwrap().1
}

fn upgrade(extra: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n\
         Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extra}\r\n",
        derive_accept_key(b"KEY")
    )
}

#[test]
fn a_good_101_passes_with_token_lists_in_any_case() {
    expected(None).check(head(&upgrade(""))).unwrap();
    expected(Some(&["a", "chat"]))
        .check(head(&upgrade("Sec-WebSocket-Protocol: chat\r\n")))
        .unwrap();
}

#[test]
fn a_101_that_breaks_the_protocol_is_a_protocol_error() {
    let cases: [(&str, Expected, ProtocolError); 6] = [
        (
            "HTTP/1.1 101 OK\r\nConnection: upgrade\r\n\r\n",
            expected(None),
            ProtocolError::MissingUpgradeWebSocketHeader,
        ),
        (
            "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n",
            expected(None),
            ProtocolError::MissingConnectionUpgradeHeader,
        ),
        (
            "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
             Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
            expected(None),
            ProtocolError::SecWebSocketAcceptKeyMismatch,
        ),
        (
            &upgrade("Sec-WebSocket-Protocol: chat\r\n"),
            expected(None),
            ProtocolError::SecWebSocketSubProtocolError(
                SubProtocolError::ServerSentSubProtocolNoneRequested,
            ),
        ),
        (
            &upgrade(""),
            expected(Some(&["chat"])),
            ProtocolError::SecWebSocketSubProtocolError(SubProtocolError::NoSubProtocol),
        ),
        (
            &upgrade("Sec-WebSocket-Protocol: other\r\n"),
            expected(Some(&["chat"])),
            ProtocolError::SecWebSocketSubProtocolError(SubProtocolError::InvalidSubProtocol),
        ),
    ];
    for (text, expected, want) in cases {
        match expected.check(head(text)) {
            Err(HandshakeError::Ws(WsError::Protocol(got))) => assert_eq!(got, want, "{text}"),
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn another_status_is_refused_with_its_headers() {
    let text = "HTTP/1.0 503 Busy\r\nRetry-After: 7\r\n\r\nbody";
    match expected(None).check(head(text)) {
        Err(HandshakeError::Refused { status, headers }) => {
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(headers[header::RETRY_AFTER], "7");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn heads_are_parsed_once_complete() {
    assert!(parse_head(b"HTTP/1.1 101 OK\r\nUpgrade: x\r\n")
        .unwrap()
        .is_none());
    let (len, _) = parse_head(b"HTTP/1.1 101 OK\r\n\r\nframes")
        .unwrap()
        .unwrap();
    assert_eq!(len, 19);
    assert!(parse_head(b"\x00garbage\r\n\r\n").is_err());
    assert!(parse_head(b"HTTP/1.1 099 Low\r\n\r\n").is_err());
}

#[test]
fn the_end_of_a_head_is_found_across_reads() {
    assert!(!ends_head(b"HTTP/1.1 101 OK\r\n", 0));
    assert!(ends_head(b"HTTP/1.1 101 OK\r\n\r\n", 0));
    // The empty line's first bytes came with the previous read.
    assert!(ends_head(b"HTTP/1.1 101 OK\r\n\r\n", 17));
    assert!(ends_head(b"HTTP/1.1 101 OK\n\n", 16));
    assert!(!ends_head(b"HTTP/1.1 101 OK\r\n\r\nab", 19));
    assert!(!ends_head(b"", 0));
}

#[tokio::test]
async fn reading_keeps_the_bytes_after_the_head() {
    let mut input: &[u8] = b"HTTP/1.1 101 OK\r\n\r\n\x81\x02hi";
    let (head, leftover) = read_head(&mut input).await.unwrap();
    assert_eq!(head.status, StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(leftover, b"\x81\x02hi");
}

#[tokio::test]
async fn reading_is_bounded_and_eof_is_an_incomplete_handshake() {
    let mut input: &[u8] = b"HTTP/1.1 101 Switching";
    assert!(matches!(
        read_head(&mut input).await,
        Err(WsError::Protocol(ProtocolError::HandshakeIncomplete))
    ));
    let mut big = b"HTTP/1.1 101 OK\r\n".to_vec();
    while big.len() <= MAX_RESPONSE_HEAD {
        big.extend_from_slice(b"x-filler: 0123456789abcdef\r\n");
    }
    big.extend_from_slice(b"\r\n");
    let mut input = big.as_slice();
    assert!(matches!(
        read_head(&mut input).await,
        Err(WsError::Capacity(CapacityError::MessageTooLong { max_size, .. }))
            if max_size == MAX_RESPONSE_HEAD
    ));
}
