//! URLs as the user wrote them, before any parser reads them: WebSocket URLs and proxy
//! URLs alike. How one is printed without its secrets ([`redact`]), and which port it
//! names ([`port`]).
//!
//! # Why the secrets are cut from the text, before parsing
//! A URL that does not parse is printed in its error, and a parser that failed has not
//! said where the user-info ends. People paste passwords unescaped, and a password may
//! hold a `/`, `?` or `#`: the first of those is then not the end of the user-info, and a
//! rule that cuts there prints the rest of the password. The last `@` of the text is the
//! only end that no character of a password can hide.
//!
//! That `@` may also sit in a query or a fragment (`?email=a@b`, `?token=x@y`): when a
//! `?` or `#` comes before it, what follows it may be the query's secret, and nothing
//! after the scheme is printed. Printing less than the URL is the price of never printing
//! a secret.

/// The longest host and path printed, in characters.
const MAX_SHOWN: usize = 200;

/// What stands for a secret cut from a URL.
const REDACTED: &str = "<redacted>";

/// `raw` fit to print in an error or a log line, whether or not it parses: the scheme,
/// `<redacted>@` in place of any user-info, the host, port and path, and `?<redacted>`
/// (or `#<redacted>`) in place of a query or fragment.
///
/// Everything before the last `@` is user-info (see the module's docs); when a `?` or `#`
/// comes before that `@`, only the scheme and `<redacted>` are printed.
pub(crate) fn redact(raw: &str) -> String {
    let raw = raw.trim();
    let (scheme, rest) = match raw.split_once("://") {
        Some((scheme, rest)) if is_scheme(scheme) => (Some(scheme), rest),
        _ => (None, raw),
    };
    let mut out = String::new();
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    let shown = match rest.rsplit_once('@') {
        // The '@' may be in a query or fragment: what follows it may be their secret.
        Some((hidden, _)) if hidden.contains(['?', '#']) => {
            out.push_str(REDACTED);
            return out;
        }
        Some((_, shown)) => {
            out.push_str(REDACTED);
            out.push('@');
            shown
        }
        None => rest,
    };
    let (before, cut) = match shown.find(['?', '#']) {
        Some(at) => (&shown[..at], shown[at..].chars().next()),
        None => (shown, None),
    };
    out.extend(before.chars().take(MAX_SHOWN));
    if let Some(delimiter) = cut {
        out.push(delimiter);
        out.push_str(REDACTED);
    }
    out
}

/// Why the port written in a URL cannot be dialed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InvalidPort {
    /// A `:` with nothing after it.
    Empty,
    /// Something other than the digits 0 to 9 (a sign, a letter, a space).
    NotANumber,
    /// A number above 65535.
    TooLarge,
    /// Port 0, which asks the system for any free port when binding and names no port
    /// when dialing.
    Zero,
}

impl InvalidPort {
    /// What the error says.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            InvalidPort::Empty => {
                "the port after ':' is empty: write one from 1 to 65535, or no ':' for the \
                 scheme's default"
            }
            InvalidPort::NotANumber => "the port is not a number from 1 to 65535",
            InvalidPort::TooLarge => "the port is above 65535",
            InvalidPort::Zero => "port 0 cannot be dialed: write one from 1 to 65535",
        }
    }
}

/// The port written in `authority` (`[user-info@]host[:port]`, as it appears in a URL),
/// `None` when none is written. The one rule for WebSocket and proxy URLs: a port is
/// written in decimal digits (leading zeros allowed) and is from 1 to 65535.
///
/// The `http` crate accepts any text after the host's `:` and reports no port when it
/// does not fit a `u16`: a connector that asked it would dial the scheme's default port
/// instead. The text is read here.
///
/// A host that does not parse (`[::1` without its `]`) is left to the parser: only the
/// port is judged here.
pub(crate) fn port(authority: &str) -> Result<Option<u16>, InvalidPort> {
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host_port)| host_port);
    let text = if host_port.starts_with('[') {
        // An IPv6 literal: the port follows its ']'.
        match host_port.split_once(']') {
            Some((_, after)) => after.strip_prefix(':'),
            None => None,
        }
    } else {
        host_port.rsplit_once(':').map(|(_, port)| port)
    };
    text.map(decimal_port).transpose()
}

/// A port's digits, as a number from 1 to 65535.
fn decimal_port(text: &str) -> Result<u16, InvalidPort> {
    if text.is_empty() {
        return Err(InvalidPort::Empty);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidPort::NotANumber);
    }
    let digits = text.trim_start_matches('0');
    if digits.len() > 5 {
        return Err(InvalidPort::TooLarge);
    }
    match digits.parse::<u32>() {
        Err(_) => Err(InvalidPort::Zero), // every digit was a '0'
        Ok(n) => u16::try_from(n).map_err(|_| InvalidPort::TooLarge),
    }
}

/// Whether `text` is a URL scheme (RFC 3986: a letter, then letters, digits, `+`, `-`,
/// `.`), so that a password holding `://` is not taken for one.
fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    text.len() <= MAX_SHOWN
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_ends_at_the_last_at() {
        for (raw, printed) in [
            ("ws://user:secret@ho st/", "ws://<redacted>@ho st/"),
            ("ws://user:secret@[::1/", "ws://<redacted>@[::1/"),
            ("ws://user:secret@/x", "ws://<redacted>@/x"),
            (
                "http://user:se/cret@proxy:3128",
                "http://<redacted>@proxy:3128",
            ),
            ("http://u:p@ss@host:1/x", "http://<redacted>@host:1/x"),
            ("u:p@host", "<redacted>@host"),
            // A password holding "://" is not a scheme.
            ("u:a://b@host", "<redacted>@host"),
            ("ws://u:a://b@host/", "ws://<redacted>@host/"),
        ] {
            assert_eq!(redact(raw), printed, "{raw}");
        }
    }

    #[test]
    fn an_at_after_a_query_or_fragment_mark_hides_everything_after_the_scheme() {
        for (raw, printed) in [
            // A password holding '?' or '#'.
            ("http://user:se?cret@proxy", "http://<redacted>"),
            ("http://user:se#cret@proxy", "http://<redacted>"),
            // Or an '@' in the query: what follows it is the query's.
            ("ws://host/?token=abc@SECRET", "ws://<redacted>"),
            ("ws://host/#a@SECRET", "ws://<redacted>"),
        ] {
            assert_eq!(redact(raw), printed, "{raw}");
        }
    }

    #[test]
    fn queries_and_fragments_are_hidden() {
        assert_eq!(redact("ws://host/p?token=abc"), "ws://host/p?<redacted>");
        assert_eq!(
            redact("ws://u:p@host/p#frag"),
            "ws://<redacted>@host/p#<redacted>"
        );
        assert_eq!(redact(" host:1 "), "host:1");
        assert_eq!(redact(""), "");
    }

    #[test]
    fn ports_are_digits_from_1_to_65535() {
        for (authority, found) in [
            ("host", Ok(None)),
            ("host:1", Ok(Some(1))),
            ("host:65535", Ok(Some(65535))),
            ("host:080", Ok(Some(80))),
            ("user:pw@host:81", Ok(Some(81))),
            ("u:p@ss@host", Ok(None)),
            ("[::1]", Ok(None)),
            ("[::1]:8080", Ok(Some(8080))),
            ("[::1", Ok(None)),
            ("host:", Err(InvalidPort::Empty)),
            ("[::1]:", Err(InvalidPort::Empty)),
            ("host:abc", Err(InvalidPort::NotANumber)),
            ("host:+80", Err(InvalidPort::NotANumber)),
            ("host:-1", Err(InvalidPort::NotANumber)),
            ("host: 80", Err(InvalidPort::NotANumber)),
            ("host:65536", Err(InvalidPort::TooLarge)),
            ("host:99999", Err(InvalidPort::TooLarge)),
            ("host:99999999999999999999", Err(InvalidPort::TooLarge)),
            ("host:0", Err(InvalidPort::Zero)),
            ("host:0000", Err(InvalidPort::Zero)),
        ] {
            assert_eq!(port(authority), found, "{authority}");
        }
        for invalid in [
            InvalidPort::Empty,
            InvalidPort::NotANumber,
            InvalidPort::TooLarge,
            InvalidPort::Zero,
        ] {
            assert!(invalid.reason().contains("port"), "{invalid:?}");
        }
    }

    #[test]
    fn long_urls_are_cut() {
        let long = format!("ws://{}/?token=x", "h".repeat(1000));
        let printed = redact(&long);
        assert_eq!(
            printed.len(),
            "ws://".len() + MAX_SHOWN + "?<redacted>".len()
        );
        assert!(printed.ends_with("h?<redacted>"), "{printed}");
    }
}
