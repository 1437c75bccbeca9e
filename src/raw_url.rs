//! URLs as the user wrote them, before any parser reads them: WebSocket URLs and proxy
//! URLs alike.
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
