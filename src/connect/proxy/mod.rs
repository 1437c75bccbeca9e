//! Reaching the server through an HTTP `CONNECT` or a SOCKS5 proxy: which proxy a
//! connection takes, and opening the tunnel.
//!
//! A connection goes through a proxy set with
//! [`TungsteniteConnector::proxy`](crate::TungsteniteConnector::proxy), else through the
//! one the environment names for its host (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
//! `NO_PROXY`, read as curl and reqwest read them), unless
//! [`no_proxy`](crate::TungsteniteConnector::no_proxy) turned proxies off.
//!
//! # Why a tunnel for `ws://` too
//! An HTTP proxy could forward a plain `ws://` upgrade as a request, but `Upgrade` and
//! `Connection` are hop-by-hop headers that many proxies drop or refuse. A `CONNECT`
//! tunnel carries bytes unchanged, so `ws://` and `wss://` take the same path; for
//! `wss://`, TLS runs inside the tunnel with the server's host name, and the proxy sees
//! only `host:port`.
//!
//! # Why the environment is read by default
//! Where a proxy is mandatory, the variables are how users and administrators say so,
//! and the HTTP clients of the same program (reqwest, curl) already follow them: a
//! WebSocket client that ignored them would fail where everything else works, with no
//! hint why. tokio-tungstenite reads nothing; [`no_proxy`](crate::TungsteniteConnector::no_proxy)
//! gives that behaviour back.
//!
//! # Why once per connection attempt
//! The connector is a plain value that may be made long before the program's
//! environment is final (a `Default` in a static, a builder made at start-up); reading
//! at each attempt means a reconnection goes where a fresh client would, and making a
//! connector has no side effects. The cost, a few variable look-ups per attempt, is
//! nothing beside a TCP handshake.

mod env;
mod http;
mod socks;
mod url;

use std::fmt;

use tokio::net::TcpStream;

pub(crate) use self::url::InvalidProxy;
use self::url::{ProxyKind, ProxyUrl};
pub(crate) use crate::error::ProxyFailure;

/// Which proxy the connector uses.
#[derive(Clone, Default)]
pub(crate) enum ProxyConfig {
    /// The one the environment names for each connection's host, read at each attempt.
    #[default]
    Environment,
    /// None: every connection is direct.
    Direct,
    /// This one for every connection, or the reason its URL was refused.
    Fixed(Result<ProxyUrl, InvalidProxy>),
}

impl ProxyConfig {
    /// An explicit proxy URL; a malformed one is kept as its error.
    pub(crate) fn fixed(url: &str) -> Self {
        ProxyConfig::Fixed(ProxyUrl::parse(url))
    }

    /// Checks an explicit proxy URL; the environment is checked at each attempt.
    pub(crate) fn check(&self) -> Result<(), InvalidProxy> {
        match self {
            ProxyConfig::Fixed(Err(e)) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// The proxy for a connection to `host` on `port` (`secure` for `wss://`), `None` for
    /// a direct one; reads the environment now when it is configured to. `port` is the
    /// port the connection dials, which a `NO_PROXY` entry with a port is compared with.
    pub(crate) fn route(
        &self,
        secure: bool,
        host: &str,
        port: u16,
    ) -> Result<Option<ProxyUrl>, InvalidProxy> {
        match self {
            ProxyConfig::Direct => Ok(None),
            ProxyConfig::Fixed(fixed) => fixed.clone().map(Some),
            ProxyConfig::Environment => {
                env::proxy_for(secure, host, port, |name| std::env::var(name).ok()).transpose()
            }
        }
    }
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyConfig::Environment => f.write_str("from the environment"),
            ProxyConfig::Direct => f.write_str("none"),
            ProxyConfig::Fixed(Ok(url)) => write!(f, "{url:?}"),
            ProxyConfig::Fixed(Err(e)) => write!(f, "invalid {:?}", e.url),
        }
    }
}

/// Why a tunnel could not be opened.
#[derive(Debug)]
pub(crate) enum TunnelError {
    /// The proxy failed or refused.
    Proxy(ProxyFailure),
    /// The server's host name did not resolve here (`socks5://`).
    Resolve(std::io::Error),
}

/// Opens a TCP connection to the proxy (Nagle off) and a tunnel through it to
/// `host:port`. The caller bounds the time.
pub(crate) async fn tunnel(
    proxy: &ProxyUrl,
    host: &str,
    port: u16,
) -> Result<TcpStream, TunnelError> {
    let destination = match proxy.kind {
        ProxyKind::Socks5 { remote_dns: false } => socks::Destination::Addr(
            tokio::net::lookup_host((host, port))
                .await
                .map_err(TunnelError::Resolve)?
                .next()
                .ok_or_else(|| {
                    TunnelError::Resolve(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the host name has no address",
                    ))
                })?,
        ),
        _ => socks::Destination::of(host, port),
    };
    let proxy_failure = |e| TunnelError::Proxy(ProxyFailure::io(e));
    let mut tcp = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(proxy_failure)?;
    tcp.set_nodelay(true).map_err(proxy_failure)?;
    let credentials = proxy.credentials.as_ref();
    match proxy.kind {
        ProxyKind::Http => http::connect(&mut tcp, credentials, host, port)
            .await
            .map(|()| tcp),
        ProxyKind::Socks5 { .. } => socks::connect(tcp, credentials, &destination).await,
    }
    .map_err(TunnelError::Proxy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_proxy_wins_and_direct_is_direct() {
        let fixed = ProxyConfig::fixed("socks5h://u:p@proxy:1080");
        fixed.check().unwrap();
        let route = fixed.route(true, "example.com", 443).unwrap().unwrap();
        assert_eq!(route.to_string(), "socks5h://proxy:1080");
        assert_eq!(
            ProxyConfig::Direct.route(true, "example.com", 443).unwrap(),
            None
        );
    }

    #[test]
    fn a_bad_explicit_proxy_is_reported_by_check_and_route() {
        let bad = ProxyConfig::fixed("gopher://u:SECRET@proxy:70");
        let err = bad.check().unwrap_err();
        assert!(!err.url.contains("SECRET"));
        assert_eq!(bad.route(false, "h", 80).unwrap_err(), err);
        assert!(!format!("{bad:?}").contains("SECRET"));
    }

    #[test]
    fn debug_shows_the_proxy_without_credentials() {
        let fixed = ProxyConfig::fixed("http://user:SECRET@proxy:3128");
        assert_eq!(
            format!("{fixed:?}"),
            "\"http://proxy:3128\" (with credentials)"
        );
        assert_eq!(
            format!("{:?}", ProxyConfig::default()),
            "from the environment"
        );
    }
}
