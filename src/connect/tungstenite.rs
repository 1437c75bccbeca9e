//! The default connection factory, over tokio-tungstenite.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Error as WsError};
use tower::Service;

use super::handshake::{self, HandshakeError, Tls};
use super::proxy::ProxyConfig;
use super::status::{parse_retry_after, StatusPolicy};
use crate::error::Error;
use crate::progress::Progress;
use crate::request::{redact_uri, AttemptReport, Target};

pub use super::handshake::TungsteniteConnection;

/// Opens WebSocket connections with tokio-tungstenite: the default
/// [`MakeConnection`](crate::MakeConnection).
///
/// The connector performs the HTTP upgrade itself and hands the upgraded socket to
/// tokio-tungstenite: tungstenite's own client handshake logs the whole request, query
/// and header values included, as a `log` record. Nothing here logs more than the URL
/// without user-info and query, the proxy without its credentials, and the response
/// status.
///
/// - A URL that is not `ws://` or `wss://` with a host fails with
///   [`Error::InvalidUrl`] before any network traffic.
/// - A handshake refused with an HTTP status fails with [`Error::Rejected`], classified by
///   the [`StatusPolicy`] and carrying the `Retry-After` header.
/// - A failed TLS handshake is [`Error::Tls`].
/// - Transport errors are [`Error::Transport`], among them a response head over 64 KiB
///   (a capacity error), a `101` that breaks the protocol (a wrong `Sec-WebSocket-Accept`,
///   say) and a connection closed before the response was complete (an incomplete
///   handshake, retried).
///
/// The `Host`, `Connection`, `Upgrade`, `Sec-WebSocket-Version` and `Sec-WebSocket-Key`
/// headers are the connector's (a request's own `Host` is kept); every other header of the
/// [`Target`]'s request is sent as it is. The bytes a server sends right after its `101`
/// are the connection's first.
///
/// Nagle's algorithm is disabled (WebSocket messages are small and latency matters).
///
/// Connections go through the proxy the environment names (`HTTPS_PROXY`, `HTTP_PROXY`,
/// `ALL_PROXY`, `NO_PROXY`), read at each attempt, unless [`proxy`](Self::proxy) sets one
/// or [`no_proxy`](Self::no_proxy) turns proxies off. A proxy that refuses is
/// [`Error::Proxy`]; a proxy URL that does not parse is [`Error::InvalidProxyUrl`].
///
/// ```
/// use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
/// use ws_reconnect::{StatusPolicy, TungsteniteConnector};
///
/// let connector = TungsteniteConnector::default()
///     .config(WebSocketConfig::default().max_message_size(Some(1 << 20)))
///     .status_policy(StatusPolicy::from_fn(|s| s.is_server_error()));
/// assert_eq!(connector.websocket_config().max_message_size, Some(1 << 20));
/// ```
#[derive(Clone, Default)]
pub struct TungsteniteConnector {
    config: WebSocketConfig,
    status_policy: StatusPolicy,
    #[cfg(feature = "rustls")]
    rustls: Option<std::sync::Arc<rustls::ClientConfig>>,
    proxy: ProxyConfig,
}

impl fmt::Debug for TungsteniteConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TungsteniteConnector")
            .field("config", &self.config)
            .field("status_policy", &self.status_policy)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl TungsteniteConnector {
    /// A connector with tungstenite's default `WebSocketConfig` and the default
    /// [`StatusPolicy`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the WebSocket settings: maximum message and frame size, buffer sizes.
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets which refused-handshake statuses are retryable.
    pub fn status_policy(mut self, policy: StatusPolicy) -> Self {
        self.status_policy = policy;
        self
    }

    /// The rustls client configuration for `wss://`: custom root certificates (a private
    /// CA, a self-signed test server), client certificates, ALPN. By default the webpki
    /// roots are trusted.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ws_reconnect::{rustls, TungsteniteConnector};
    ///
    /// let roots = rustls::RootCertStore::empty(); // add your CA here
    /// let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
    ///     .with_safe_default_protocol_versions()
    ///     .unwrap()
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let connector = TungsteniteConnector::new().rustls_config(Arc::new(config));
    /// # let _ = connector;
    /// ```
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn rustls_config(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.rustls = Some(config);
        self
    }

    /// Sends every connection through this proxy, whatever the environment says:
    ///
    /// - `http://[user:password@]host[:port]`: an HTTP proxy, asked for a `CONNECT`
    ///   tunnel, with Basic credentials from the user-info (default port 80);
    /// - `socks5://[user:password@]host[:port]`: a SOCKS5 proxy, given the server's
    ///   address: the host name is resolved here, as curl does (default port 1080);
    /// - `socks5h://…`: the same, but the proxy resolves the host name (use it when only
    ///   the proxy's side can resolve it, or to keep names out of local DNS).
    ///
    /// A URL without a scheme is an HTTP proxy. User-info is percent-decoded
    /// (`p%40ss` for `p@ss`) and never appears in logs, `Debug` output or errors. For
    /// `wss://`, TLS runs inside the tunnel and is checked against the server's host
    /// name; the proxy sees only `host:port`.
    ///
    /// The URL is parsed here and a malformed or unsupported one (`https://` to the proxy,
    /// `socks4://`, a port outside 1 to 65535: port 0 cannot be dialed) makes every
    /// connection attempt fail with [`Error::InvalidProxyUrl`], which is not retried;
    /// [`Builder::build`](crate::Builder::build) reports it before any.
    ///
    /// ```
    /// use ws_reconnect::TungsteniteConnector;
    ///
    /// let connector = TungsteniteConnector::new().proxy("socks5h://user:secret@127.0.0.1:1080");
    /// // Debug output names the proxy, never its credentials.
    /// let debug = format!("{connector:?}");
    /// assert!(debug.contains("socks5h://127.0.0.1:1080") && !debug.contains("secret"));
    /// ```
    pub fn proxy(mut self, url: impl AsRef<str>) -> Self {
        self.proxy = ProxyConfig::fixed(url.as_ref());
        self
    }

    /// Connects directly, ignoring the proxy environment variables and any
    /// [`proxy`](Self::proxy) set before: tokio-tungstenite's behaviour.
    ///
    /// ```
    /// use ws_reconnect::TungsteniteConnector;
    ///
    /// let connector = TungsteniteConnector::new().no_proxy();
    /// assert!(format!("{connector:?}").contains("proxy: none"));
    /// ```
    pub fn no_proxy(mut self) -> Self {
        self.proxy = ProxyConfig::Direct;
        self
    }

    /// The error of a proxy URL set with [`proxy`](Self::proxy) that does not parse.
    pub(crate) fn check_proxy(&self) -> Result<(), Error> {
        Ok(self.proxy.check()?)
    }

    #[cfg(feature = "rustls")]
    fn tls(&self) -> Tls {
        Tls::Rustls(self.rustls.clone().unwrap_or_else(default_rustls_config))
    }

    #[cfg(all(feature = "native-tls", not(feature = "rustls")))]
    fn tls(&self) -> Tls {
        Tls::NativeTls
    }

    #[cfg(not(any(feature = "rustls", feature = "native-tls")))]
    fn tls(&self) -> Tls {
        // Without a TLS feature, wss:// fails with Error::InvalidUrl.
        Tls::Disabled
    }

    /// The WebSocket settings in use.
    pub fn websocket_config(&self) -> &WebSocketConfig {
        &self.config
    }
}

impl Service<Target> for TungsteniteConnector {
    type Response = TungsteniteConnection;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<TungsteniteConnection, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, target: Target) -> Self::Future {
        let config = self.config;
        let policy = self.status_policy.clone();
        let tls = self.tls();
        let proxy = self.proxy.clone();
        Box::pin(async move {
            let request = target.resolve().await?;
            let url = redact_uri(request.uri());
            tracing::debug!(%url, kind = ?target.kind(), attempt = target.attempt(), "connecting");
            let progress = Arc::new(Progress::default());
            match handshake::connect(&request, config, &tls, &proxy, progress.clone()).await {
                Ok(stream) => {
                    tracing::debug!(%url, status = 101, "WebSocket handshake done");
                    target.report(AttemptReport::Connected { progress });
                    Ok(stream)
                }
                Err(HandshakeError::Refused { status, headers }) => {
                    tracing::debug!(%url, %status, "the server refused the upgrade");
                    Err(Error::Rejected {
                        status,
                        retry_after: parse_retry_after(&headers),
                        retryable: policy.is_retryable(status),
                    })
                }
                Err(HandshakeError::Proxy { proxy, failure }) => {
                    tracing::debug!(%url, %proxy, %failure, "the proxy did not open the tunnel");
                    Err(Error::Proxy {
                        retryable: failure.is_retryable(),
                        proxy,
                        failure,
                    })
                }
                Err(HandshakeError::InvalidProxy(e)) => Err(e.into()),
                Err(HandshakeError::Ws(WsError::Url(e))) => Err(Error::InvalidUrl {
                    url,
                    reason: url_reason(&e),
                }),
                Err(HandshakeError::Ws(WsError::Io(e))) if is_tls_failure(&e) => {
                    Err(Error::Tls(Arc::new(e)))
                }
                // native-tls and an invalid server name report tungstenite's TLS error.
                Err(HandshakeError::Ws(WsError::Tls(e))) => Err(Error::Tls(Arc::new(e))),
                Err(HandshakeError::Ws(e)) => Err(Error::Transport(e)),
            }
        })
    }
}

/// With rustls, a failed TLS handshake (an untrusted certificate, say) is an I/O error
/// wrapping rustls' error; retrying it would never succeed.
fn is_tls_failure(e: &std::io::Error) -> bool {
    #[cfg(feature = "rustls")]
    if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
        return true;
    }
    let _ = e;
    false
}

/// The default rustls configuration: ring, safe protocol versions, the webpki roots.
/// Built once.
#[cfg(feature = "rustls")]
fn default_rustls_config() -> std::sync::Arc<rustls::ClientConfig> {
    use std::sync::{Arc, OnceLock};
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

fn url_reason(e: &tungstenite::error::UrlError) -> &'static str {
    use tungstenite::error::UrlError::*;
    match e {
        TlsFeatureNotEnabled => "wss:// needs a TLS feature of ws-reconnect",
        NoHostName | EmptyHostName => "the URL has no host",
        UnsupportedUrlScheme => "the scheme must be ws or wss",
        UnableToConnect(_) => "no address of the host could be reached",
        NoPathOrQuery => "the URL has no path",
    }
}
