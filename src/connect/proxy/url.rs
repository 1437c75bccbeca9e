//! Proxy URLs: `http://[user:pass@]host[:port]`, `socks5://…` and `socks5h://…`, parsed
//! once and printed only without their credentials.

use std::fmt;

use http::Uri;

use crate::error::Error;
use crate::raw_url;

/// The protocol spoken to a proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProxyKind {
    /// An HTTP proxy: a `CONNECT host:port` tunnel.
    Http,
    /// A SOCKS5 proxy; `remote_dns` sends the host name to the proxy (`socks5h://`),
    /// otherwise the name is resolved here and the proxy gets an address (`socks5://`).
    Socks5 {
        /// The proxy resolves the host name.
        remote_dns: bool,
    },
}

impl ProxyKind {
    fn scheme(self) -> &'static str {
        match self {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 { remote_dns: false } => "socks5",
            ProxyKind::Socks5 { remote_dns: true } => "socks5h",
        }
    }
}

/// The user name and password from a proxy URL's user-info, percent-decoded. Never
/// printed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A parsed proxy URL. `Display` and `Debug` show `scheme://host:port` only.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ProxyUrl {
    pub(crate) kind: ProxyKind,
    /// The host, without the brackets of an IPv6 literal.
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) credentials: Option<Credentials>,
}

/// A proxy URL that does not parse or names an unsupported protocol: becomes
/// [`Error::InvalidProxyUrl`], with the URL redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InvalidProxy {
    /// The URL without user-info, query or fragment ([`raw_url::redact`]).
    pub(crate) url: String,
    pub(crate) reason: &'static str,
}

impl From<InvalidProxy> for Error {
    fn from(e: InvalidProxy) -> Self {
        Error::InvalidProxyUrl {
            url: e.url,
            reason: e.reason,
        }
    }
}

/// The default port of an HTTP proxy URL without one (reqwest's choice; curl uses 1080
/// for every scheme).
const HTTP_DEFAULT_PORT: u16 = 80;
/// The default port of a SOCKS5 proxy URL without one.
const SOCKS_DEFAULT_PORT: u16 = 1080;

impl ProxyUrl {
    /// Parses a proxy URL. A URL without a scheme is an HTTP proxy (`proxy:3128`), as
    /// curl and reqwest read `HTTP_PROXY`.
    pub(crate) fn parse(raw: &str) -> Result<ProxyUrl, InvalidProxy> {
        // Redacted from the text before anything is parsed: a password may hold a '/',
        // '?' or '#' that ends the authority early.
        let invalid = |reason| InvalidProxy {
            url: raw_url::redact(raw),
            reason,
        };
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(invalid("the URL is empty"));
        }
        let (scheme, rest) = match raw.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => ("http".to_owned(), raw),
        };
        let kind = ProxyKind::from_scheme(&scheme).map_err(invalid)?;
        // The authority ends at the path; a proxy URL has no path beyond "/".
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if !(tail.is_empty() || tail == "/") {
            return Err(invalid(
                "a proxy URL has no path, query or fragment (in a password, write / ? # as \
                 %2F %3F %23)",
            ));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let port = raw_url::port(hostport)
            .map_err(|e| invalid(e.reason()))?
            .unwrap_or(match kind {
                ProxyKind::Http => HTTP_DEFAULT_PORT,
                ProxyKind::Socks5 { .. } => SOCKS_DEFAULT_PORT,
            });
        let uri: Uri = format!("{}://{hostport}", kind.scheme())
            .parse()
            .map_err(|_| invalid("the host or port does not parse"))?;
        let host = uri.host().unwrap_or_default();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(invalid("the URL has no host"));
        }
        let credentials = userinfo
            .map(|userinfo| Credentials::from_userinfo(userinfo, kind))
            .transpose()
            .map_err(invalid)?;
        Ok(ProxyUrl {
            kind,
            host: host.to_owned(),
            port,
            credentials,
        })
    }
}

impl fmt::Display for ProxyUrl {
    /// `scheme://host:port`: never the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.kind.scheme();
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The same text as Display, and whether credentials are set (never their value).
        write!(f, "\"{self}\"")?;
        if self.credentials.is_some() {
            f.write_str(" (with credentials)")?;
        }
        Ok(())
    }
}

impl ProxyKind {
    /// The kind a proxy URL's scheme names.
    fn from_scheme(scheme: &str) -> Result<ProxyKind, &'static str> {
        match scheme {
            "http" => Ok(ProxyKind::Http),
            "socks5" => Ok(ProxyKind::Socks5 { remote_dns: false }),
            "socks5h" => Ok(ProxyKind::Socks5 { remote_dns: true }),
            "https" => Err(
                "TLS to the proxy (https://) is not supported; use http://, socks5:// or \
                 socks5h://",
            ),
            _ => Err("the scheme must be http, socks5 or socks5h"),
        }
    }
}

impl Credentials {
    /// The credentials of a proxy URL's user-info (`user:password`, %-escaped), checked
    /// against what `kind` can carry.
    fn from_userinfo(userinfo: &str, kind: ProxyKind) -> Result<Credentials, &'static str> {
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let decode = |s| percent_decode(s).ok_or("the user-info has an invalid % escape");
        let credentials = Credentials {
            user: decode(user)?,
            password: decode(password)?,
        };
        if let ProxyKind::Socks5 { .. } = kind {
            // RFC 1929: one length byte each, and neither may be empty.
            let fits = |s: &str| (1..=255).contains(&s.len());
            if !fits(&credentials.user) || !fits(&credentials.password) {
                return Err("SOCKS5 user name and password must be 1 to 255 bytes each");
            }
        }
        Ok(credentials)
    }
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str, password: &str) -> Option<Credentials> {
        Some(Credentials {
            user: user.into(),
            password: password.into(),
        })
    }

    #[test]
    fn the_three_schemes_with_and_without_credentials() {
        let p = ProxyUrl::parse("http://proxy.example:3128").unwrap();
        assert_eq!(p.kind, ProxyKind::Http);
        assert_eq!((p.host.as_str(), p.port), ("proxy.example", 3128));
        assert_eq!(p.credentials, None);

        let p = ProxyUrl::parse("SOCKS5H://u:p%40ss%3A@10.0.0.1:1081/").unwrap();
        assert_eq!(p.kind, ProxyKind::Socks5 { remote_dns: true });
        assert_eq!((p.host.as_str(), p.port), ("10.0.0.1", 1081));
        assert_eq!(p.credentials, creds("u", "p@ss:"));

        let p = ProxyUrl::parse("socks5://[::1]:1080").unwrap();
        assert_eq!(p.kind, ProxyKind::Socks5 { remote_dns: false });
        assert_eq!(p.host, "::1");
        assert_eq!(p.to_string(), "socks5://[::1]:1080");
    }

    #[test]
    fn defaults_a_missing_scheme_and_port() {
        let p = ProxyUrl::parse("proxy:3128").unwrap();
        assert_eq!((p.kind, p.port), (ProxyKind::Http, 3128));
        assert_eq!(ProxyUrl::parse("http://proxy").unwrap().port, 80);
        assert_eq!(ProxyUrl::parse("socks5h://proxy").unwrap().port, 1080);
        // Ports are read by the same rule as a WebSocket URL's.
        assert_eq!(ProxyUrl::parse("proxy:65535").unwrap().port, 65535);
        assert_eq!(ProxyUrl::parse("[::1]:0080").unwrap().port, 80);
        for bad in ["proxy:0", "proxy:65536", "proxy:abc", "proxy:", "[::1]:+1"] {
            let err = ProxyUrl::parse(bad).expect_err(bad);
            assert!(err.reason.contains("port"), "{bad}: {err:?}");
        }
        // An HTTP user without a password sends "user:".
        let p = ProxyUrl::parse("http://user@proxy:1").unwrap();
        assert_eq!(p.credentials, creds("user", ""));
    }

    #[test]
    fn malformed_and_unsupported_urls_are_refused_without_their_secrets() {
        for bad in [
            "",
            "   ",
            "https://user:SECRET@proxy:443",
            "socks4://user:SECRET@proxy:1080",
            "ftp://proxy",
            "http://user:SECRET@:3128",
            "http://user:SECRET@proxy:99999",
            "http://user:SECRET@proxy:",
            "http://user:SECRET@proxy:3128/path?token=SECRET",
            "http://user:SECRET%zz@proxy:3128",
            "socks5://user@proxy:1080",
            "http://us er:SECRET@pro xy:1",
            // Unescaped '/', '?', '#' in the password end the authority early.
            "http://user:SEC/RET@proxy:3128",
            "http://user:SEC?RET@proxy",
            "http://user:SEC#RET@proxy",
        ] {
            let err = ProxyUrl::parse(bad).expect_err(bad);
            for secret in ["SEC", "RET", "user"] {
                assert!(!err.url.contains(secret), "{bad:?} -> {err:?}");
            }
        }
    }

    #[test]
    fn an_invalid_proxy_url_is_an_error_that_says_proxy() {
        let err = Error::from(ProxyUrl::parse("http://user:SEC/RET@proxy:3128").unwrap_err());
        assert!(matches!(err, Error::InvalidProxyUrl { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "invalid proxy URL \"http://<redacted>@proxy:3128\": a proxy URL has no path, \
             query or fragment (in a password, write / ? # as %2F %3F %23)"
        );
        // The same password, escaped, is read.
        let p = ProxyUrl::parse("http://user:SEC%2FRET@proxy:3128").unwrap();
        assert_eq!(p.credentials, creds("user", "SEC/RET"));
    }

    #[test]
    fn printing_never_shows_credentials() {
        let p = ProxyUrl::parse("http://user:SECRET@proxy:3128").unwrap();
        assert_eq!(p.to_string(), "http://proxy:3128");
        let debug = format!("{p:?} {:?}", p.credentials);
        assert!(
            !debug.contains("SECRET") && !debug.contains("user"),
            "{debug}"
        );
        assert!(debug.contains("with credentials"), "{debug}");
    }
}
