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
mod tests;
