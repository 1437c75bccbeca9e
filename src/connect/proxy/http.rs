//! An HTTP `CONNECT` tunnel (RFC 9110, section 9.3.6): one request, one response head,
//! then the connection carries the server's bytes.
//!
//! Written here with `httparse`, like the upgrade itself, rather than with hyper's client:
//! the exchange is one request and one response head, and hyper would add seven crates to
//! the build for it.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};

use super::url::Credentials;
use crate::connect::response::read_head;
use crate::error::ProxyFailure;

/// Asks the proxy on `stream` for a tunnel to `host:port` and reads its answer. On
/// success the stream is the tunnel.
pub(super) async fn connect<S>(
    stream: &mut S,
    credentials: Option<&Credentials>,
    host: &str,
    port: u16,
) -> Result<(), ProxyFailure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = request(credentials, host, port);
    stream.write_all(&request).await.map_err(ProxyFailure::Io)?;
    stream.flush().await.map_err(ProxyFailure::Io)?;
    let (head, leftover) = read_head(stream).await.map_err(|e| match e {
        WsError::Io(e) => ProxyFailure::Io(e),
        WsError::Protocol(ProtocolError::HandshakeIncomplete) => ProxyFailure::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the proxy closed the connection before answering CONNECT",
        )),
        WsError::Capacity(_) => {
            ProxyFailure::Protocol("the proxy's answer to CONNECT has a head over 64 KiB")
        }
        _ => ProxyFailure::Protocol("the proxy's answer to CONNECT is not an HTTP response"),
    })?;
    if !head.status.is_success() {
        return Err(ProxyFailure::Status(head.status));
    }
    // The server speaks second on both ws:// (after the request) and wss:// (after the
    // ClientHello): bytes here came from the proxy, and would corrupt the stream.
    if !leftover.is_empty() {
        return Err(ProxyFailure::Protocol(
            "the proxy sent bytes after accepting CONNECT, before the tunnel was used",
        ));
    }
    Ok(())
}

/// The `CONNECT` request. It may hold credentials: never log it.
fn request(credentials: Option<&Credentials>, host: &str, port: u16) -> Vec<u8> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut out = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    if let Some(c) = credentials {
        let token = data_encoding::BASE64.encode(format!("{}:{}", c.user, c.password).as_bytes());
        out.extend_from_slice(b"Proxy-Authorization: Basic ");
        out.extend_from_slice(token.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn the_request_names_the_target_and_carries_basic_credentials() {
        let text = String::from_utf8(request(None, "example.com", 443)).unwrap();
        assert_eq!(
            text,
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
        );
        let c = Credentials {
            user: "Aladdin".into(),
            password: "open sesame".into(),
        };
        let text = String::from_utf8(request(Some(&c), "::1", 80)).unwrap();
        // RFC 7617's example.
        assert_eq!(
            text,
            "CONNECT [::1]:80 HTTP/1.1\r\nHost: [::1]:80\r\n\
             Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
    }

    /// Runs `connect` against a proxy that answers `answer`.
    async fn answered(answer: &'static [u8]) -> Result<(), ProxyFailure> {
        let (mut client, mut proxy) = tokio::io::duplex(4096);
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = proxy.read(&mut buf).await;
            proxy.write_all(answer).await.unwrap();
        });
        let result = connect(&mut client, None, "h", 1).await;
        task.await.unwrap();
        result
    }

    #[tokio::test]
    async fn any_2xx_opens_the_tunnel() {
        answered(b"HTTP/1.0 200 Connection established\r\nProxy-agent: x\r\n\r\n")
            .await
            .unwrap();
        answered(b"HTTP/1.1 204 OK\r\n\r\n").await.unwrap();
    }

    #[tokio::test]
    async fn another_status_is_the_proxys_refusal() {
        let err = answered(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n<html>")
            .await
            .unwrap_err();
        assert!(
            matches!(err, ProxyFailure::Status(s) if s.as_u16() == 407),
            "{err:?}"
        );
        let err = answered(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
            .await
            .unwrap_err();
        assert!(matches!(err, ProxyFailure::Status(_)), "{err:?}");
    }

    #[tokio::test]
    async fn garbage_early_bytes_and_eof_are_told_apart() {
        let err = answered(b"\x05\x00garbage\r\n\r\n").await.unwrap_err();
        assert!(matches!(err, ProxyFailure::Protocol(_)), "{err:?}");
        let err = answered(b"HTTP/1.1 200 OK\r\n\r\nearly").await.unwrap_err();
        assert!(matches!(err, ProxyFailure::Protocol(_)), "{err:?}");
        let err = answered(b"HTTP/1.1 200 OK\r\n").await.unwrap_err();
        assert!(
            matches!(&err, ProxyFailure::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof),
            "{err:?}"
        );
        assert!(err.is_retryable());
    }
}
