//! Unit tests of `env`.

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
