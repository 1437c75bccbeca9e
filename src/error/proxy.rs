//! What a proxy answered when it did not open the tunnel.

use std::fmt;
use std::io;
use std::sync::Arc;

use http::StatusCode;

use crate::connect::status::StatusPolicy;

/// Why a proxy did not open the tunnel to the server: the `failure` of
/// [`Error::Proxy`](crate::Error::Proxy).
///
/// ```
/// use http::StatusCode;
/// use ws_reconnect::{ProxyFailure, SocksReply};
///
/// assert!(!ProxyFailure::Status(StatusCode::PROXY_AUTHENTICATION_REQUIRED).is_retryable());
/// assert!(ProxyFailure::Status(StatusCode::BAD_GATEWAY).is_retryable());
/// assert!(ProxyFailure::Socks(SocksReply::HostUnreachable).is_retryable());
/// assert!(!ProxyFailure::AuthRejected.is_retryable());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ProxyFailure {
    /// An HTTP proxy answered `CONNECT` with a status other than 2xx: 407 or 401
    /// (credentials missing or wrong), 403 (the proxy does not allow this destination),
    /// 500/502/503/504 (it could not reach the server).
    Status(StatusCode),
    /// A SOCKS5 proxy answered the connect request with a failure reply.
    Socks(SocksReply),
    /// The SOCKS5 proxy accepts none of the authentication methods offered: no
    /// authentication, and username/password when the proxy URL has user-info. It most
    /// often means the proxy needs credentials and the URL has none.
    AuthRequired,
    /// The SOCKS5 proxy refused the user name and password.
    AuthRejected,
    /// The proxy's answer is neither HTTP nor SOCKS5 as the proxy URL's scheme says: most
    /// often a URL with the wrong scheme or the port of another service.
    Protocol(&'static str),
    /// Connecting to the proxy failed (refused, unreachable, its name not found), or the
    /// connection to it broke before the tunnel was open.
    Io(Arc<io::Error>),
}

impl ProxyFailure {
    /// The proxy could not be reached, or the connection to it failed.
    pub(crate) fn io(error: io::Error) -> Self {
        ProxyFailure::Io(Arc::new(error))
    }

    /// Whether trying again may succeed: I/O failures, the HTTP statuses retried after a
    /// refused upgrade (408, 425, 429, 500, 502, 503, 504; tinyproxy answers 500 when it
    /// cannot reach the server), and the SOCKS5 replies that describe the path rather than
    /// the request (general failure, network or host unreachable, connection refused, TTL
    /// expired). Not retried: credentials (407, or the 401 some proxies answer wrong ones
    /// with; a refused or missing SOCKS5 login), a destination the proxy forbids (403,
    /// "not allowed by ruleset"), and a proxy that does not speak the protocol.
    ///
    /// ```
    /// use ws_reconnect::{ProxyFailure, SocksReply};
    /// assert!(ProxyFailure::Socks(SocksReply::ConnectionRefused).is_retryable());
    /// assert!(!ProxyFailure::Socks(SocksReply::NotAllowed).is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            ProxyFailure::Status(status) => StatusPolicy::default().is_retryable(*status),
            ProxyFailure::Socks(reply) => reply.is_retryable(),
            ProxyFailure::Io(_) => true,
            ProxyFailure::AuthRequired | ProxyFailure::AuthRejected | ProxyFailure::Protocol(_) => {
                false
            }
        }
    }

    /// What the user can do about it, for the error message.
    pub(crate) fn advice(&self, retryable: bool) -> &'static str {
        match self {
            // Some proxies (tinyproxy) answer wrong credentials with 401.
            ProxyFailure::Status(s)
                if *s == StatusCode::PROXY_AUTHENTICATION_REQUIRED
                    || *s == StatusCode::UNAUTHORIZED =>
            {
                "check the user:password of the proxy URL (Basic authentication)"
            }
            ProxyFailure::Status(s) if *s == StatusCode::FORBIDDEN => {
                "the proxy does not allow this destination: check its access rules and the \
                 ports it lets CONNECT reach"
            }
            ProxyFailure::AuthRequired => {
                "put user:password in the proxy URL (socks5h://user:password@host:port)"
            }
            ProxyFailure::AuthRejected => "check the user:password of the proxy URL",
            ProxyFailure::Protocol(_) => {
                "check the proxy URL's scheme (http, socks5, socks5h) and port"
            }
            ProxyFailure::Io(_) => "check that the proxy runs at that address",
            _ if retryable => "the proxy could not reach the server",
            _ => "check the proxy's rules for this destination",
        }
    }
}

impl fmt::Display for ProxyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyFailure::Status(status) => write!(f, "CONNECT answered with HTTP {status}"),
            ProxyFailure::Socks(reply) => write!(f, "SOCKS5 reply {}: {reply}", reply.code()),
            ProxyFailure::AuthRequired => {
                f.write_str("the SOCKS5 proxy accepts none of the offered authentication methods")
            }
            ProxyFailure::AuthRejected => {
                f.write_str("the SOCKS5 proxy rejected the user name and password")
            }
            ProxyFailure::Protocol(what) => f.write_str(what),
            ProxyFailure::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A SOCKS5 failure reply (RFC 1928, section 6).
///
/// ```
/// use ws_reconnect::SocksReply;
/// assert_eq!(SocksReply::HostUnreachable.code(), 4);
/// assert_eq!(SocksReply::HostUnreachable.to_string(), "host unreachable");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocksReply {
    /// 1: general SOCKS server failure.
    GeneralFailure,
    /// 2: the proxy's rules do not allow this connection.
    NotAllowed,
    /// 3: network unreachable.
    NetworkUnreachable,
    /// 4: host unreachable.
    HostUnreachable,
    /// 5: the server refused the connection.
    ConnectionRefused,
    /// 6: TTL expired.
    TtlExpired,
    /// 7: the proxy does not support the CONNECT command.
    CommandNotSupported,
    /// 8: the proxy does not support the address type (a host name for a `socks5h://`
    /// proxy that resolves nothing itself: try `socks5://`).
    AddressTypeNotSupported,
}

impl SocksReply {
    /// The reply code on the wire.
    pub fn code(self) -> u8 {
        match self {
            SocksReply::GeneralFailure => 1,
            SocksReply::NotAllowed => 2,
            SocksReply::NetworkUnreachable => 3,
            SocksReply::HostUnreachable => 4,
            SocksReply::ConnectionRefused => 5,
            SocksReply::TtlExpired => 6,
            SocksReply::CommandNotSupported => 7,
            SocksReply::AddressTypeNotSupported => 8,
        }
    }

    /// Whether the reply describes the path to the server, which may recover, rather than
    /// the request, which will be refused again.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            SocksReply::GeneralFailure
                | SocksReply::NetworkUnreachable
                | SocksReply::HostUnreachable
                | SocksReply::ConnectionRefused
                | SocksReply::TtlExpired
        )
    }
}

impl fmt::Display for SocksReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SocksReply::GeneralFailure => "general SOCKS server failure",
            SocksReply::NotAllowed => "connection not allowed by ruleset",
            SocksReply::NetworkUnreachable => "network unreachable",
            SocksReply::HostUnreachable => "host unreachable",
            SocksReply::ConnectionRefused => "connection refused",
            SocksReply::TtlExpired => "TTL expired",
            SocksReply::CommandNotSupported => "command not supported",
            SocksReply::AddressTypeNotSupported => "address type not supported",
        })
    }
}
