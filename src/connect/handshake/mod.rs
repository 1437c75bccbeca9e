//! The client side of the WebSocket upgrade: TCP (directly or through a proxy's tunnel,
//! see `proxy`), TLS for `wss://`, the HTTP request and the server's response.
//!
//! # Why the crate does the handshake itself
//!
//! tungstenite's client handshake writes the whole upgrade request to a `trace` record of
//! the `log` crate: the URL with its query and every header value (tokens, cookies). An
//! application whose subscriber forwards `log` records, as
//! `tracing_subscriber::fmt().init()` does, would print those secrets once per connection
//! attempt. This module writes the request and reads the response without logging
//! either, then hands the socket, with any bytes the server sent after its response, to
//! tungstenite for the WebSocket protocol itself.
//!
//! # The request
//!
//! `GET <path and query> HTTP/1.1`, then the handshake headers, then every other header of
//! the [`ClientRequest`]:
//!
//! - `Host`: the request's own `Host` when it has one (a closure may set it, e.g. for a
//!   virtual host), else the URL's host, with the port when it is not the scheme's default.
//!   Two `Host` headers are refused, as tungstenite refuses them.
//! - `Connection: Upgrade`, `Upgrade: websocket`, `Sec-WebSocket-Version: 13` and a fresh
//!   `Sec-WebSocket-Key` are always the connector's: the request's values for these names
//!   are not sent, so no header of the request can break the handshake or make the
//!   accept key unverifiable.
//!
//! # The response
//!
//! The head is read up to [`MAX_RESPONSE_HEAD`](super::response::MAX_RESPONSE_HEAD) bytes. A `101` must carry
//! `Upgrade: websocket`, `Connection: upgrade` (both case-insensitive token lists), the
//! `Sec-WebSocket-Accept` derived from the key, and a `Sec-WebSocket-Protocol` only when
//! the request offered that one. Any other status is a [`HandshakeError::Refused`].

use super::meter::MeteredStream;
use crate::progress::Progress;
use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode, Uri, Version};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::error::{
    Error as WsError, ProtocolError, SubProtocolError, UrlError,
};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::proxy::{self, InvalidProxy, ProxyConfig, ProxyFailure, TunnelError};
use super::response::{read_head, ResponseHead};
use crate::request::ClientRequest;

/// The connection [`TungsteniteConnector`](super::TungsteniteConnector) opens.
pub type TungsteniteConnection = WebSocketStream<MaybeTlsStream<MeteredStream<TcpStream>>>;

/// How `wss://` connections are encrypted: the TLS feature of the build.
#[derive(Clone)]
pub(crate) enum Tls {
    /// rustls with this configuration.
    #[cfg(feature = "rustls")]
    Rustls(std::sync::Arc<rustls::ClientConfig>),
    /// The operating system's TLS through native-tls, with its default settings.
    #[cfg(all(feature = "native-tls", not(feature = "rustls")))]
    NativeTls,
    /// No TLS feature: `wss://` URLs are refused.
    #[cfg(not(any(feature = "rustls", feature = "native-tls")))]
    Disabled,
}

/// Why a handshake failed.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// The server answered with a status other than `101 Switching Protocols`.
    Refused {
        /// The status.
        status: StatusCode,
        /// The response's headers, for `Retry-After`.
        headers: HeaderMap,
    },
    /// The URL, the transport, TLS, or a response that breaks the protocol.
    Ws(WsError),
    /// The proxy URL is malformed or names an unsupported protocol.
    InvalidProxy(InvalidProxy),
    /// The proxy did not open the tunnel.
    Proxy {
        /// The proxy's URL without credentials.
        proxy: String,
        /// What went wrong.
        failure: ProxyFailure,
    },
}

impl From<WsError> for HandshakeError {
    fn from(e: WsError) -> Self {
        HandshakeError::Ws(e)
    }
}

impl From<std::io::Error> for HandshakeError {
    fn from(e: std::io::Error) -> Self {
        HandshakeError::Ws(WsError::Io(e))
    }
}

/// Opens a WebSocket connection for `request`: TCP (Nagle off), directly or through the
/// tunnel of the proxy `proxy` chooses, TLS for `wss://`, the upgrade. Nothing here logs
/// the request or the response.
///
/// The request and the proxy URL are checked before any network traffic. The caller
/// bounds the time.
pub(crate) async fn connect(
    request: &ClientRequest,
    config: WebSocketConfig,
    tls: &Tls,
    proxy: &ProxyConfig,
    progress: Arc<Progress>,
) -> Result<TungsteniteConnection, HandshakeError> {
    let endpoint = Endpoint::of(request.uri())?;
    #[cfg(not(any(feature = "rustls", feature = "native-tls")))]
    if endpoint.secure {
        return Err(WsError::Url(UrlError::TlsFeatureNotEnabled).into());
    }
    let key = generate_key();
    let bytes = write_request(request, &endpoint, &key)?;
    let expected = Expected {
        accept_key: derive_accept_key(key.as_bytes()),
        offered_protocols: offered_protocols(request.headers()),
    };
    let route = proxy
        .route(endpoint.secure, endpoint.host, endpoint.port)
        .map_err(HandshakeError::InvalidProxy)?;

    let tcp = match route {
        None => {
            let tcp = TcpStream::connect((endpoint.host, endpoint.port)).await?;
            tcp.set_nodelay(true)?;
            tcp
        }
        Some(proxy) => {
            tracing::debug!(%proxy, "through a proxy");
            proxy::tunnel(&proxy, endpoint.host, endpoint.port)
                .await
                .map_err(|e| match e {
                    TunnelError::Proxy(failure) => HandshakeError::Proxy {
                        proxy: proxy.to_string(),
                        failure,
                    },
                    TunnelError::Resolve(e) => e.into(),
                })?
        }
    };
    let mut stream = wrap_tls(MeteredStream::new(tcp, progress), &endpoint, tls).await?;
    stream.write_all(&bytes).await?;
    stream.flush().await?;

    let (head, leftover) = read_head(&mut stream).await?;
    expected.check(head)?;
    Ok(WebSocketStream::from_partially_read(stream, leftover, Role::Client, Some(config)).await)
}

/// Where a WebSocket URL points.
#[derive(Debug, PartialEq, Eq)]
struct Endpoint<'a> {
    /// The host, without the brackets of an IPv6 literal.
    host: &'a str,
    port: u16,
    secure: bool,
    /// The port was written in the URL and is not the scheme's default.
    explicit_port: bool,
}

impl<'a> Endpoint<'a> {
    fn of(uri: &'a Uri) -> Result<Self, WsError> {
        let secure = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("ws") => false,
            Some(s) if s.eq_ignore_ascii_case("wss") => true,
            _ => return Err(WsError::Url(UrlError::UnsupportedUrlScheme)),
        };
        let host = uri.host().ok_or(WsError::Url(UrlError::NoHostName))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(WsError::Url(UrlError::EmptyHostName));
        }
        let default_port = if secure { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        Ok(Endpoint {
            host,
            port,
            secure,
            explicit_port: port != default_port,
        })
    }

    /// The `Host` header's value: the host (in brackets for IPv6), and the port when it
    /// is not the default.
    fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.to_owned()
        };
        if self.explicit_port {
            format!("{host}:{}", self.port)
        } else {
            host
        }
    }
}

/// The headers this module writes itself; the request's values for them are not sent
/// (`Host` is handled apart).
const HANDSHAKE_HEADERS: [HeaderName; 4] = [
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_KEY,
];

/// The upgrade request's bytes, with `key` as its `Sec-WebSocket-Key`. They hold secrets:
/// never log them.
fn write_request(
    request: &ClientRequest,
    endpoint: &Endpoint<'_>,
    key: &str,
) -> Result<Vec<u8>, WsError> {
    if request.method() != Method::GET {
        return Err(WsError::Protocol(ProtocolError::WrongHttpMethod));
    }
    if request.version() < Version::HTTP_11 {
        return Err(WsError::Protocol(ProtocolError::WrongHttpVersion));
    }
    let uri = request.uri();
    let path = match uri.path() {
        "" => "/",
        path => path,
    };
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(path.as_bytes());
    if let Some(query) = uri.query() {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");

    let mut hosts = request.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => put_header(&mut out, "Host", host.as_bytes()),
        (None, _) => put_header(&mut out, "Host", endpoint.authority().as_bytes()),
        (Some(_), Some(_)) => {
            return Err(WsError::Protocol(ProtocolError::InvalidHeader(Box::new(
                header::HOST,
            ))))
        }
    }
    put_header(&mut out, "Connection", b"Upgrade");
    put_header(&mut out, "Upgrade", b"websocket");
    put_header(&mut out, "Sec-WebSocket-Version", b"13");
    put_header(&mut out, "Sec-WebSocket-Key", key.as_bytes());

    for (name, value) in request.headers() {
        if *name == header::HOST || HANDSHAKE_HEADERS.contains(name) {
            continue;
        }
        // Some servers match these two names case-sensitively (tungstenite writes them
        // the same way).
        let name = match name.as_str() {
            "sec-websocket-protocol" => "Sec-WebSocket-Protocol",
            "origin" => "Origin",
            other => other,
        };
        put_header(&mut out, name, value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

fn put_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The subprotocols a request offers (every `Sec-WebSocket-Protocol` token), or `None`
/// when it offers none.
fn offered_protocols(headers: &HeaderMap) -> Option<Vec<Vec<u8>>> {
    let mut values = headers.get_all(header::SEC_WEBSOCKET_PROTOCOL).iter();
    let first = values.next()?;
    Some(
        std::iter::once(first)
            .chain(values)
            .flat_map(|v| tokens(v.as_bytes()))
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

/// The comma-separated tokens of a header value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

/// Whether any `name` header holds `token` (ASCII case-insensitive) in its token list.
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| tokens(v.as_bytes()))
        .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

/// What a `101` response must carry for this request.
#[derive(Debug)]
struct Expected {
    accept_key: String,
    offered_protocols: Option<Vec<Vec<u8>>>,
}

impl Expected {
    /// Checks a response head: the upgrade, or why not.
    fn check(&self, head: ResponseHead) -> Result<(), HandshakeError> {
        if head.status != StatusCode::SWITCHING_PROTOCOLS {
            return Err(HandshakeError::Refused {
                status: head.status,
                headers: head.headers,
            });
        }
        let protocol = |e| Err(HandshakeError::Ws(WsError::Protocol(e)));
        if head.minor_version < 1 {
            return protocol(ProtocolError::WrongHttpVersion);
        }
        let headers = &head.headers;
        if !has_token(headers, header::UPGRADE, "websocket") {
            return protocol(ProtocolError::MissingUpgradeWebSocketHeader);
        }
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return protocol(ProtocolError::MissingConnectionUpgradeHeader);
        }
        let accepted = headers
            .get(header::SEC_WEBSOCKET_ACCEPT)
            .is_some_and(|v| v.as_bytes() == self.accept_key.as_bytes());
        if !accepted {
            return protocol(ProtocolError::SecWebSocketAcceptKeyMismatch);
        }
        let chosen = headers.get(header::SEC_WEBSOCKET_PROTOCOL);
        let subprotocol = match (&self.offered_protocols, chosen) {
            (None, None) => return Ok(()),
            (None, Some(_)) => SubProtocolError::ServerSentSubProtocolNoneRequested,
            (Some(_), None) => SubProtocolError::NoSubProtocol,
            (Some(offered), Some(chosen)) => {
                let chosen = chosen.as_bytes().trim_ascii();
                if offered.iter().any(|o| o.as_slice() == chosen) {
                    return Ok(());
                }
                SubProtocolError::InvalidSubProtocol
            }
        };
        protocol(ProtocolError::SecWebSocketSubProtocolError(subprotocol))
    }
}

/// Puts TLS around `tcp` for `wss://`.
async fn wrap_tls(
    tcp: MeteredStream<TcpStream>,
    endpoint: &Endpoint<'_>,
    tls: &Tls,
) -> Result<MaybeTlsStream<MeteredStream<TcpStream>>, WsError> {
    if !endpoint.secure {
        return Ok(MaybeTlsStream::Plain(tcp));
    }
    match tls {
        #[cfg(feature = "rustls")]
        Tls::Rustls(config) => {
            use tokio_tungstenite::tungstenite::error::TlsError;
            let name = rustls::pki_types::ServerName::try_from(endpoint.host.to_owned())
                .map_err(|_| TlsError::InvalidDnsName)?;
            // A refused certificate comes back as an I/O error wrapping rustls' error.
            let stream = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await?;
            Ok(MaybeTlsStream::Rustls(stream))
        }
        #[cfg(all(feature = "native-tls", not(feature = "rustls")))]
        Tls::NativeTls => {
            use tokio_tungstenite::tungstenite::error::TlsError;
            let connector =
                tokio_native_tls::native_tls::TlsConnector::new().map_err(TlsError::from)?;
            let stream = tokio_native_tls::TlsConnector::from(connector)
                .connect(endpoint.host, tcp)
                .await
                .map_err(TlsError::from)?;
            Ok(MaybeTlsStream::NativeTls(stream))
        }
        #[cfg(not(any(feature = "rustls", feature = "native-tls")))]
        Tls::Disabled => {
            drop(tcp);
            Err(WsError::Url(UrlError::TlsFeatureNotEnabled))
        }
    }
}

#[cfg(test)]
mod tests;
