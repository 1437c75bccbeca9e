//! The proxy environment variables, read as curl and reqwest read them. The variables
//! come from a lookup function, so the rules are tested without touching the process
//! environment; the one side effect is the warning that names a `NO_PROXY` entry that
//! can never match.
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

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

use super::url::{InvalidProxy, ProxyUrl};
use crate::raw_url;

/// The proxy the environment names for a connection to `host` on `port` (`secure` for
/// `wss://`): `None` for a direct connection, an error when the variable that applies does
/// not parse. `port` is the one the connection dials: the URL's, else the scheme's default.
pub(crate) fn proxy_for<F>(
    secure: bool,
    host: &str,
    port: u16,
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
    if let Some(list) = get("no_proxy").or_else(|| get("NO_PROXY")) {
        let list = NoProxy::parse(&list);
        list.warn_unmatchable();
        if list.matches(host, port) {
            return None;
        }
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
///   that host and every subdomain (`api.example.com`), but not `badexample.com`;
/// - an address or a domain with a port (`10.1.2.3:8080`, `[2001:db8::1]:8080`,
///   `example.com:8080`, `.example.com:8080`), as Go's `httpproxy` reads them: the same
///   hosts, on that port only. The port compared is the one the connection dials: the
///   URL's, else the scheme's default (80 for `ws://`, 443 for `wss://`). An IPv6 address
///   with a port is written in brackets; `*` and CIDR blocks take no port.
///
/// An entry without a port matches every port. Matching ignores case and a trailing dot;
/// names are not resolved (an IP entry does not match a host name that resolves to it).
///
/// An entry that can never match (a port that is not from 1 to 65535, a `/` outside a
/// CIDR block, a `*` inside a name, brackets around anything but an IPv6 address, no host
/// before the port) is skipped, and named in a `warn` event the first time a connection
/// attempt reads it; the other entries still apply.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct NoProxy {
    all: bool,
    nets: Vec<NetEntry>,
    domains: Vec<DomainEntry>,
    /// The entries that can never match, each with why.
    unmatchable: Vec<(String, &'static str)>,
}

/// An address or a CIDR block, and the port it is limited to.
#[derive(Debug, PartialEq, Eq)]
struct NetEntry {
    net: IpAddr,
    len: u8,
    port: Option<u16>,
}

/// A domain (lower case, without a leading or trailing dot), and the port it is limited to.
#[derive(Debug, PartialEq, Eq)]
struct DomainEntry {
    domain: String,
    port: Option<u16>,
}

/// One entry of the list, read.
enum Entry {
    All,
    Net(NetEntry),
    Domain(DomainEntry),
}

/// The unmatchable entries already named in a warning: one warning per entry per
/// process, not one per connection attempt.
static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

impl NoProxy {
    pub(crate) fn parse(list: &str) -> NoProxy {
        let mut out = NoProxy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match parse_entry(entry) {
                Ok(Entry::All) => out.all = true,
                Ok(Entry::Net(net)) => out.nets.push(net),
                Ok(Entry::Domain(domain)) => out.domains.push(domain),
                Err(why) => out.unmatchable.push((entry.to_owned(), why)),
            }
        }
        out
    }

    /// Whether a connection to `host` (a name or an address, IPv6 with or without
    /// brackets) on `port` goes direct.
    pub(crate) fn matches(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let port_fits = |limit: Option<u16>| limit.is_none_or(|limit| limit == port);
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self
                .nets
                .iter()
                .any(|e| in_net(ip, e.net, e.len) && port_fits(e.port));
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.domains.iter().any(|e| {
            let d = e.domain.as_str();
            let named = host == d || host.strip_suffix(d).is_some_and(|head| head.ends_with('.'));
            named && port_fits(e.port)
        })
    }

    /// Names each entry that can never match in a `warn` event, once per process.
    fn warn_unmatchable(&self) {
        if self.unmatchable.is_empty() {
            return;
        }
        let mut warned = WARNED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (entry, why) in &self.unmatchable {
            if warned.insert(entry.clone()) {
                tracing::warn!(entry = %entry, "a NO_PROXY entry can never match and is skipped: {why}");
            }
        }
    }
}

/// Reads one entry; `Err` says why it can never match.
fn parse_entry(entry: &str) -> Result<Entry, &'static str> {
    if entry == "*" {
        return Ok(Entry::All);
    }
    if let Some((net, len)) = parse_net(entry) {
        return Ok(Entry::Net(NetEntry {
            net,
            len,
            port: None,
        }));
    }
    if entry.contains('/') {
        return Err(
            "a '/' belongs only in a CIDR block (10.0.0.0/8, fd00::/8), which takes no port",
        );
    }
    // The same port rule as a URL's.
    let port = raw_url::port(entry).map_err(|e| e.reason())?;
    let host = match entry.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((v6, rest))
                if v6.parse::<Ipv6Addr>().is_ok() && (rest.is_empty() || rest.starts_with(':')) =>
            {
                v6
            }
            _ => return Err("brackets hold an IPv6 address: [2001:db8::1]:8080"),
        },
        None => {
            let host = match port {
                Some(_) => entry.rsplit_once(':').map_or(entry, |(host, _)| host),
                None => entry,
            };
            if host.contains([':', '[', ']']) {
                return Err(
                    "an IPv6 address with a port is written in brackets: [2001:db8::1]:8080",
                );
            }
            host
        }
    };
    if host.is_empty() {
        return Err("there is no host before the port");
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        let len = if ip.is_ipv4() { 32 } else { 128 };
        return Ok(Entry::Net(NetEntry { net: ip, len, port }));
    }
    let domain = host
        .strip_prefix("*.")
        .or_else(|| host.strip_prefix('.'))
        .unwrap_or(host)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if domain.is_empty() {
        return Err("there is no host");
    }
    if domain.contains('*') {
        return Err("'*' stands alone for every host, or begins a domain as '*.'");
    }
    Ok(Entry::Domain(DomainEntry { domain, port }))
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

    /// The scheme's default port: what a URL without one dials.
    fn default_port(secure: bool) -> u16 {
        if secure {
            443
        } else {
            80
        }
    }

    fn proxy(secure: bool, host: &str, vars: &[(&str, &str)]) -> Option<String> {
        proxy_for(secure, host, default_port(secure), env(vars)).map(|p| p.unwrap().to_string())
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
        let err = proxy_for(true, "h", default_port(true), env(&vars))
            .unwrap()
            .unwrap_err();
        assert!(err.reason.contains("scheme"), "{err:?}");
        assert!(proxy_for(true, "direct.example", default_port(true), env(&vars)).is_none());
        assert!(proxy_for(false, "h", default_port(false), env(&vars)).is_none());
    }

    #[test]
    fn a_malformed_variable_keeps_its_password_out_of_the_error() {
        for value in [
            "http://user:SEC/RET@proxy:3128",
            "http://user:SEC?RET@proxy",
            "http://user:SEC#RET@proxy",
        ] {
            let vars = [("HTTPS_PROXY", value)];
            let err = proxy_for(true, "h", default_port(true), env(&vars))
                .unwrap()
                .unwrap_err();
            for secret in ["SEC", "RET", "user"] {
                assert!(!err.url.contains(secret), "{value}: {err:?}");
            }
        }
    }

    #[test]
    fn credentials_come_from_the_variable() {
        let vars = [("HTTPS_PROXY", "socks5h://u:p@proxy:1080")];
        let p = proxy_for(true, "h", default_port(true), env(&vars))
            .unwrap()
            .unwrap();
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
            assert!(list.matches(direct, 443), "{direct} should go direct");
        }
        for proxied in [
            "badexample.com",
            "example.com.evil",
            "com",
            "xcorp.example",
            "localhost2",
        ] {
            assert!(!list.matches(proxied, 443), "{proxied} should be proxied");
        }
    }

    #[test]
    fn no_proxy_ip_entries_and_blocks() {
        let list = NoProxy::parse("127.0.0.1, 10.0.0.0/8, ::1, [fd00::]/8, 192.168.1.0/33");
        for direct in ["127.0.0.1", "10.255.0.1", "::1", "[::1]", "fd12::1"] {
            assert!(list.matches(direct, 443), "{direct} should go direct");
        }
        // 192.168.1.0/33 is not a block: skipped, and named.
        for proxied in ["127.0.0.2", "11.0.0.1", "::2", "fe80::1", "192.168.1.1"] {
            assert!(!list.matches(proxied, 443), "{proxied} should be proxied");
        }
        // Names are not resolved, and an address matches no domain entry.
        assert!(!list.matches("localhost", 443));
        assert!(!NoProxy::parse("1.2.3.4.example").matches("1.2.3.4", 443));
        // A zero-length block matches its whole family.
        let any_v4 = NoProxy::parse("0.0.0.0/0");
        assert!(any_v4.matches("8.8.8.8", 443) && !any_v4.matches("::1", 443));
    }

    #[test]
    fn no_proxy_star_and_empty_lists() {
        assert!(NoProxy::parse("*").matches("anything.example", 443));
        assert!(NoProxy::parse("a.example, *").matches("10.0.0.1", 443));
        assert!(!NoProxy::parse("").matches("a.example", 443));
        assert!(!NoProxy::parse(" , ,").matches("a.example", 443));
        // "*" only stands for every host alone; "*.x" is a suffix.
        assert!(!NoProxy::parse("*.x").matches("y", 443));
    }

    #[test]
    fn no_proxy_entries_without_a_port_match_every_port() {
        let list = NoProxy::parse("example.com, 10.0.0.0/8, [2001:db8::1], *.wild.example");
        for port in [1, 80, 443, 8080, 65535] {
            for host in [
                "api.example.com",
                "10.1.2.3",
                "2001:db8::1",
                "x.wild.example",
            ] {
                assert!(list.matches(host, port), "{host}:{port} should go direct");
            }
        }
        assert!(NoProxy::parse("*").matches("anything.example", 8080));
    }

    #[test]
    fn no_proxy_entries_with_a_port_match_that_port_only() {
        let list = NoProxy::parse(
            "example.com:8080, .corp.example:9000, *.wild.example:7000, 10.1.2.3:8080, \
             [2001:db8::1]:8080",
        );
        for (host, port) in [
            ("example.com", 8080),
            ("api.example.com", 8080),
            ("EXAMPLE.COM.", 8080),
            ("corp.example", 9000),
            ("x.corp.example", 9000),
            ("x.wild.example", 7000),
            ("10.1.2.3", 8080),
            ("2001:db8::1", 8080),
            ("[2001:db8::1]", 8080),
        ] {
            assert!(list.matches(host, port), "{host}:{port} should go direct");
        }
        for (host, port) in [
            // The wrong port.
            ("example.com", 8081),
            ("corp.example", 8080),
            ("10.1.2.3", 80),
            ("2001:db8::1", 443),
            // The right port, another host.
            ("badexample.com", 8080),
            ("10.1.2.4", 8080),
            ("2001:db8::2", 8080),
        ] {
            assert!(!list.matches(host, port), "{host}:{port} should be proxied");
        }
        assert!(list.unmatchable.is_empty(), "{:?}", list.unmatchable);
    }

    #[test]
    fn no_proxy_ports_are_compared_with_the_port_dialed() {
        // A URL without a port dials the scheme's default: ws:// 80, wss:// 443.
        let vars = |list| [("ALL_PROXY", "socks5://p:1"), ("NO_PROXY", list)];
        assert_eq!(proxy(false, "example.com", &vars("example.com:80")), None);
        assert!(proxy(true, "example.com", &vars("example.com:80")).is_some());
        assert_eq!(proxy(true, "example.com", &vars("example.com:443")), None);
        assert!(proxy(false, "example.com", &vars("example.com:443")).is_some());
        // A URL with a port dials that one.
        let direct = |port| proxy_for(true, "example.com", port, env(&vars("example.com:8443")));
        assert!(direct(8443).is_none());
        assert!(direct(443).is_some());
    }

    #[test]
    fn no_proxy_entries_that_can_never_match_are_named() {
        let list = NoProxy::parse(
            "example.com:99999, example.com:0, example.com:abc, example.com:, :8080, \
             10.0.0.0/8:80, 192.168.1.0/33, *:8080, a*.example, [example.com]:80, [::1]x, \
             2001:db8::zz, ., ok.example",
        );
        let named: Vec<&str> = list.unmatchable.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(
            named,
            [
                "example.com:99999",
                "example.com:0",
                "example.com:abc",
                "example.com:",
                ":8080",
                "10.0.0.0/8:80",
                "192.168.1.0/33",
                "*:8080",
                "a*.example",
                "[example.com]:80",
                "[::1]x",
                "2001:db8::zz",
                ".",
            ]
        );
        for (entry, why) in &list.unmatchable {
            assert!(!why.is_empty(), "{entry}");
        }
        let port_reason = |entry: &str| {
            let (_, why) = list.unmatchable.iter().find(|(e, _)| e == entry).unwrap();
            *why
        };
        assert!(port_reason("example.com:99999").contains("port"));
        assert!(port_reason("example.com:0").contains("port 0"));
        // The rest of the list still applies.
        assert!(list.matches("ok.example", 443));
        assert!(!list.matches("example.com", 99));
    }
}
