//! The proxy environment variables, read as curl and reqwest read them. Pure: the
//! variables come from a lookup function, so the rules are tested without touching the
//! process environment.
//!
//! | connection | variables, first set wins |
//! |---|---|
//! | `wss://` | `https_proxy`, `HTTPS_PROXY`, then `all_proxy`, `ALL_PROXY` |
//! | `ws://` | `http_proxy`, `HTTP_PROXY`, then `all_proxy`, `ALL_PROXY` |
//!
//! An empty variable counts as unset. `HTTP_PROXY` (upper case) is ignored when
//! `REQUEST_METHOD` is set: in a CGI program it holds the request's `Proxy:` header, which
//! any client can send ("httpoxy"); reqwest and Go do the same.
//!
//! `no_proxy`, then `NO_PROXY`, lists the hosts reached directly; see [`NoProxy`].
//! Loopback hosts (`localhost`, `127.0.0.0/8`, `::1`) are always reached directly, as
//! Go's `ProxyFromEnvironment` does: a proxy cannot reach this machine's loopback.

use std::net::IpAddr;

use super::url::{InvalidProxy, ProxyUrl};

/// The proxy the environment names for a connection to `host` (`secure` for `wss://`):
/// `None` for a direct connection, an error when the variable that applies does not parse.
pub(crate) fn proxy_for<F>(
    secure: bool,
    host: &str,
    lookup: F,
) -> Option<Result<ProxyUrl, InvalidProxy>>
where
    F: Fn(&str) -> Option<String>,
{
    if is_loopback(host) {
        // A proxy cannot reach this machine's loopback: as Go's ProxyFromEnvironment does,
        // the environment never applies to it (an explicit proxy still does).
        return None;
    }
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let cgi = get("REQUEST_METHOD").is_some();
    let by_scheme: &[&str] = match (secure, cgi) {
        (true, _) => &["https_proxy", "HTTPS_PROXY"],
        (false, false) => &["http_proxy", "HTTP_PROXY"],
        (false, true) => &["http_proxy"],
    };
    let value = by_scheme
        .iter()
        .chain(&["all_proxy", "ALL_PROXY"])
        .find_map(|name| get(name))?;
    let bypass = get("no_proxy").or_else(|| get("NO_PROXY"));
    if bypass.is_some_and(|list| NoProxy::parse(&list).matches(host)) {
        return None;
    }
    Some(ProxyUrl::parse(&value))
}

/// `localhost` (and its subdomains), `127.0.0.0/8` and `::1`.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host.ends_with(".localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A `NO_PROXY` list: comma-separated entries, each one of
///
/// - `*`: every host;
/// - an IP address (`10.0.0.1`, `::1` or `[::1]`) or a CIDR block (`10.0.0.0/8`,
///   `fd00::/8`): a host written as an address in it;
/// - a domain (`example.com` or `.example.com`; a leading `*.` or `.` is dropped):
///   that host and every subdomain (`api.example.com`), but not `badexample.com`.
///
/// Matching ignores case and a trailing dot; names are not resolved (an IP entry does not
/// match a host name that resolves to it), and ports are not compared, as in curl and
/// reqwest. Entries that fit none of the forms are ignored.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct NoProxy {
    all: bool,
    nets: Vec<(IpAddr, u8)>,
    domains: Vec<String>,
}

impl NoProxy {
    pub(crate) fn parse(list: &str) -> NoProxy {
        let mut out = NoProxy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                out.all = true;
            } else if let Some(net) = parse_net(entry) {
                out.nets.push(net);
            } else {
                let domain = entry
                    .strip_prefix("*.")
                    .or_else(|| entry.strip_prefix('.'))
                    .unwrap_or(entry)
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                if !domain.is_empty() {
                    out.domains.push(domain);
                }
            }
        }
        out
    }

    /// Whether a connection to `host` (a name or an address, IPv6 with or without
    /// brackets) goes direct.
    pub(crate) fn matches(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.nets.iter().any(|&(net, len)| in_net(ip, net, len));
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.domains.iter().any(|d| {
            host == *d
                || host
                    .strip_suffix(d.as_str())
                    .is_some_and(|head| head.ends_with('.'))
        })
    }
}

/// An IP entry: an address (a block of its full length) or `address/prefix`.
fn parse_net(entry: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match entry.split_once('/') {
        Some((addr, len)) => (addr, Some(len.parse::<u8>().ok()?)),
        None => (entry, None),
    };
    let addr = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((ip, len))
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::proxy::url::ProxyKind;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn proxy(secure: bool, host: &str, vars: &[(&str, &str)]) -> Option<String> {
        proxy_for(secure, host, env(vars)).map(|p| p.unwrap().to_string())
    }

    #[test]
    fn each_scheme_has_its_variable_and_all_proxy_is_the_fallback() {
        let vars = [
            ("HTTPS_PROXY", "http://tls-proxy:1"),
            ("HTTP_PROXY", "http://plain-proxy:2"),
            ("ALL_PROXY", "socks5h://all:3"),
        ];
        assert_eq!(proxy(true, "h", &vars).unwrap(), "http://tls-proxy:1");
        assert_eq!(proxy(false, "h", &vars).unwrap(), "http://plain-proxy:2");
        let only_all = [("all_proxy", "socks5h://all:3")];
        assert_eq!(proxy(true, "h", &only_all).unwrap(), "socks5h://all:3");
        assert_eq!(proxy(false, "h", &only_all).unwrap(), "socks5h://all:3");
        assert_eq!(proxy(false, "h", &[]), None);
        // http_proxy does not apply to wss://, nor https_proxy to ws://.
        assert_eq!(proxy(true, "h", &[("http_proxy", "p:1")]), None);
        assert_eq!(proxy(false, "h", &[("https_proxy", "p:1")]), None);
    }

    #[test]
    fn lower_case_wins_and_empty_is_unset() {
        let vars = [("https_proxy", "lower:1"), ("HTTPS_PROXY", "upper:2")];
        assert_eq!(proxy(true, "h", &vars).unwrap(), "http://lower:1");
        let vars = [
            ("https_proxy", " "),
            ("HTTPS_PROXY", ""),
            ("ALL_PROXY", "all:3"),
        ];
        assert_eq!(proxy(true, "h", &vars).unwrap(), "http://all:3");
    }

    #[test]
    fn upper_case_http_proxy_is_ignored_under_cgi() {
        let vars = [("HTTP_PROXY", "evil:1"), ("REQUEST_METHOD", "GET")];
        assert_eq!(proxy(false, "h", &vars), None);
        let vars = [("http_proxy", "good:1"), ("REQUEST_METHOD", "GET")];
        assert_eq!(proxy(false, "h", &vars).unwrap(), "http://good:1");
    }

    #[test]
    fn no_proxy_sends_matching_hosts_direct() {
        let vars = [
            ("ALL_PROXY", "socks5://p:1"),
            ("NO_PROXY", "internal.example, 10.0.0.0/8"),
        ];
        assert_eq!(proxy(true, "api.internal.example", &vars), None);
        assert_eq!(proxy(true, "10.1.2.3", &vars), None);
        assert!(proxy(true, "example.com", &vars).is_some());
        // no_proxy (lower case) wins over NO_PROXY.
        let vars = [
            ("ALL_PROXY", "socks5://p:1"),
            ("no_proxy", "a.example"),
            ("NO_PROXY", "*"),
        ];
        assert!(proxy(true, "b.example", &vars).is_some());
        assert_eq!(proxy(true, "a.example", &vars), None);
    }

    #[test]
    fn a_malformed_variable_is_an_error_only_when_it_applies() {
        let vars = [("https_proxy", "ftp://p:1"), ("no_proxy", "direct.example")];
        let err = proxy_for(true, "h", env(&vars)).unwrap().unwrap_err();
        assert!(err.reason.contains("scheme"), "{err:?}");
        assert!(proxy_for(true, "direct.example", env(&vars)).is_none());
        assert!(proxy_for(false, "h", env(&vars)).is_none());
    }

    #[test]
    fn a_malformed_variable_keeps_its_password_out_of_the_error() {
        for value in [
            "http://user:SEC/RET@proxy:3128",
            "http://user:SEC?RET@proxy",
            "http://user:SEC#RET@proxy",
        ] {
            let vars = [("HTTPS_PROXY", value)];
            let err = proxy_for(true, "h", env(&vars)).unwrap().unwrap_err();
            for secret in ["SEC", "RET", "user"] {
                assert!(!err.url.contains(secret), "{value}: {err:?}");
            }
        }
    }

    #[test]
    fn credentials_come_from_the_variable() {
        let vars = [("HTTPS_PROXY", "socks5h://u:p@proxy:1080")];
        let p = proxy_for(true, "h", env(&vars)).unwrap().unwrap();
        assert_eq!(p.kind, ProxyKind::Socks5 { remote_dns: true });
        let c = p.credentials.unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("u", "p"));
    }

    #[test]
    fn the_environment_never_sends_loopback_through_a_proxy() {
        let vars = [
            ("https_proxy", "http://proxy:3128"),
            ("http_proxy", "http://proxy:3128"),
        ];
        for host in [
            "localhost",
            "api.localhost",
            "127.0.0.1",
            "127.9.9.9",
            "[::1]",
            "::1",
        ] {
            assert_eq!(proxy(true, host, &vars), None, "{host}");
            assert_eq!(proxy(false, host, &vars), None, "{host}");
        }
        assert!(proxy(true, "example.com", &vars).is_some());
    }

    #[test]
    fn no_proxy_hosts_and_domain_suffixes() {
        let list = NoProxy::parse("example.com, .corp.example ,*.wild.example,LOCALHOST");
        for direct in [
            "example.com",
            "api.example.com",
            "a.b.example.com",
            "EXAMPLE.COM.",
            "corp.example",
            "x.corp.example",
            "wild.example",
            "x.wild.example",
            "localhost",
        ] {
            assert!(list.matches(direct), "{direct} should go direct");
        }
        for proxied in [
            "badexample.com",
            "example.com.evil",
            "com",
            "xcorp.example",
            "localhost2",
        ] {
            assert!(!list.matches(proxied), "{proxied} should be proxied");
        }
    }

    #[test]
    fn no_proxy_ip_entries_and_blocks() {
        let list = NoProxy::parse("127.0.0.1, 10.0.0.0/8, ::1, [fd00::]/8, 192.168.1.0/33");
        for direct in ["127.0.0.1", "10.255.0.1", "::1", "[::1]", "fd12::1"] {
            assert!(list.matches(direct), "{direct} should go direct");
        }
        // 192.168.1.0/33 is not a block: ignored.
        for proxied in ["127.0.0.2", "11.0.0.1", "::2", "fe80::1", "192.168.1.1"] {
            assert!(!list.matches(proxied), "{proxied} should be proxied");
        }
        // Names are not resolved, and an address matches no domain entry.
        assert!(!list.matches("localhost"));
        assert!(!NoProxy::parse("1.2.3.4.example").matches("1.2.3.4"));
        // A zero-length block matches its whole family.
        let any_v4 = NoProxy::parse("0.0.0.0/0");
        assert!(any_v4.matches("8.8.8.8") && !any_v4.matches("::1"));
    }

    #[test]
    fn no_proxy_star_and_empty_lists() {
        assert!(NoProxy::parse("*").matches("anything.example"));
        assert!(NoProxy::parse("a.example, *").matches("10.0.0.1"));
        assert!(!NoProxy::parse("").matches("a.example"));
        assert!(!NoProxy::parse(" , ,").matches("a.example"));
        // "*" only stands for every host alone; "*.x" is a suffix.
        assert!(!NoProxy::parse("*.x").matches("y"));
    }
}
