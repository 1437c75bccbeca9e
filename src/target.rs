//! What a connection attempt dials: the request, and whether it is a first dial or a
//! reconnection.
//!
//! A [`Target`] builds a fresh upgrade request for every attempt, so a new
//! `Sec-WebSocket-Key` is used each time, and a user-supplied closure can put a fresh
//! auth token or a different URL into each one ([`Target::from_fn`]).

use std::fmt;
use std::sync::{Arc, OnceLock};

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Uri};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::error::{BoxError, Error};
use crate::limit::ReconnectBudget;

/// The HTTP upgrade request that opens a WebSocket connection (tungstenite's).
pub type ClientRequest = tokio_tungstenite::tungstenite::handshake::client::Request;

type RequestFn = dyn Fn() -> Result<ClientRequest, BoxError> + Send + Sync;

/// Whether an attempt is the first dial of a connection or a reconnection after a drop.
///
/// The reconnect limiter counts reconnections only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialKind {
    /// The first dial, from `connect`/`dial`. Not counted by the limiter.
    First,
    /// A reconnection after the connection was lost.
    Reconnect,
}

#[derive(Clone)]
enum Source {
    Fixed { uri: Uri, headers: HeaderMap },
    Func(Arc<RequestFn>),
}

/// The request for one connection attempt, plus what kind of attempt it is.
///
/// `Target` is what a [`MakeConnection`](crate::MakeConnection) service is called with.
/// Cloning is cheap (the request closure is shared).
///
/// ```
/// use ws_reconnect::{DialKind, Target};
///
/// let target = Target::new("ws://127.0.0.1:9000/feed")?
///     .header("authorization", "Bearer secret")?;
/// assert_eq!(target.kind(), DialKind::First);
/// let request = target.request()?;
/// assert_eq!(request.uri().path(), "/feed");
/// // Secrets stay out of Debug output.
/// assert!(!format!("{target:?}").contains("secret"));
/// # Ok::<(), ws_reconnect::Error>(())
/// ```
#[derive(Clone)]
pub struct Target {
    source: Source,
    kind: DialKind,
    attempt: u32,
    reset_backoff: bool,
    /// The budget of the first reconnect limit layer that handled this target, shared by
    /// every clone: how a sink finds its stack's limiter.
    budget: Arc<OnceLock<ReconnectBudget>>,
}

impl Target {
    /// A target for a fixed `ws://` or `wss://` URL.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when the URL does not parse, has no host, or its scheme is not
    /// `ws`/`wss`. No network traffic happens here.
    ///
    /// ```
    /// use ws_reconnect::{Error, Target};
    ///
    /// assert!(Target::new("wss://example.com/socket").is_ok());
    /// assert!(matches!(Target::new("https://example.com"), Err(Error::InvalidUrl { .. })));
    /// ```
    pub fn new(url: impl AsRef<str>) -> Result<Target, Error> {
        let uri = parse_ws_url(url.as_ref())?;
        Ok(Target::from_source(Source::Fixed {
            uri,
            headers: HeaderMap::new(),
        }))
    }

    /// A target whose request is built by `make` before every attempt: a fresh token, a
    /// rotated URL. The request's URL is checked like [`Target::new`]'s.
    ///
    /// An error returned by `make` ends the attempt with [`Error::Request`], which is not
    /// retried; return one of this crate's [`Error`]s (boxed) to choose otherwise.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use ws_reconnect::Target;
    /// use ws_reconnect::tungstenite::client::IntoClientRequest;
    ///
    /// let counter = AtomicU32::new(0);
    /// let target = Target::from_fn(move || {
    ///     let mut request = "ws://127.0.0.1:9000/".into_client_request()?;
    ///     let token = format!("Bearer token-{}", counter.fetch_add(1, Ordering::Relaxed));
    ///     request.headers_mut().insert("authorization", token.parse()?);
    ///     Ok(request)
    /// });
    /// assert_eq!(target.request()?.headers()["authorization"], "Bearer token-0");
    /// assert_eq!(target.request()?.headers()["authorization"], "Bearer token-1");
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn from_fn<F>(make: F) -> Target
    where
        F: Fn() -> Result<ClientRequest, BoxError> + Send + Sync + 'static,
    {
        Target::from_source(Source::Func(Arc::new(make)))
    }

    fn from_source(source: Source) -> Target {
        Target {
            source,
            kind: DialKind::First,
            attempt: 0,
            reset_backoff: true,
            budget: Arc::default(),
        }
    }

    /// Called by a reconnect limit layer for each attempt: the first one to offer its
    /// budget is remembered.
    pub(crate) fn offer_budget(&self, budget: &ReconnectBudget) {
        let _ = self.budget.get_or_init(|| budget.clone());
    }

    /// The budget a reconnect limit layer offered, once one has handled this target.
    pub(crate) fn budget(&self) -> Option<&ReconnectBudget> {
        self.budget.get()
    }

    /// The URL of a fixed-URL target; `None` for a closure's, known only per attempt.
    #[cfg(feature = "metrics")]
    pub(crate) fn fixed_uri(&self) -> Option<&Uri> {
        match &self.source {
            Source::Fixed { uri, .. } => Some(uri),
            Source::Func(_) => None,
        }
    }

    /// Adds a header to every request of a fixed-URL target.
    ///
    /// # Errors
    /// [`Error::Request`] when the name or value is not a valid header, or when the target
    /// was made by [`Target::from_fn`] (set headers in the closure there).
    ///
    /// ```
    /// use ws_reconnect::Target;
    /// let target = Target::new("ws://localhost/")?.header("x-client", "demo")?;
    /// assert_eq!(target.request()?.headers()["x-client"], "demo");
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Result<Self, Error> {
        let name = HeaderName::try_from(name.as_ref()).map_err(|e| Error::Request(e.into()))?;
        let value = HeaderValue::try_from(value.as_ref()).map_err(|e| Error::Request(e.into()))?;
        match &mut self.source {
            Source::Fixed { headers, .. } => {
                headers.append(name, value);
                Ok(self)
            }
            Source::Func(_) => Err(Error::Request(
                "headers of a Target::from_fn target are set by its closure".into(),
            )),
        }
    }

    /// Builds the upgrade request for one attempt, with a fresh `Sec-WebSocket-Key`.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a bad URL from a closure, [`Error::Request`] when the
    /// closure fails.
    ///
    /// ```
    /// use ws_reconnect::Target;
    /// let target = Target::new("ws://localhost:1234/x")?;
    /// let a = target.request()?;
    /// let b = target.request()?;
    /// assert_ne!(a.headers()["sec-websocket-key"], b.headers()["sec-websocket-key"]);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn request(&self) -> Result<ClientRequest, Error> {
        match &self.source {
            Source::Fixed { uri, headers } => {
                let mut request = uri.clone().into_client_request()?;
                for (name, value) in headers {
                    request.headers_mut().append(name.clone(), value.clone());
                }
                Ok(request)
            }
            Source::Func(make) => {
                let request = make().map_err(|e| match Error::from_boxed(e) {
                    Error::Connection(e) => Error::Request(e),
                    other => other,
                })?;
                check_ws_uri(request.uri(), &request.uri().to_string())?;
                Ok(request)
            }
        }
    }

    /// Whether this attempt is a first dial or a reconnection.
    ///
    /// ```
    /// use ws_reconnect::{DialKind, Target};
    /// let t = Target::new("ws://localhost/")?.with_kind(DialKind::Reconnect);
    /// assert_eq!(t.kind(), DialKind::Reconnect);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn kind(&self) -> DialKind {
        self.kind
    }

    /// Sets the dial kind.
    pub fn with_kind(mut self, kind: DialKind) -> Self {
        self.kind = kind;
        self
    }

    /// The attempt number within one backoff run: 0 for the first attempt, set by
    /// [`BackoffRetry`](crate::BackoffRetry) for the retries.
    ///
    /// ```
    /// use ws_reconnect::Target;
    /// assert_eq!(Target::new("ws://localhost/")?.with_attempt(3).attempt(), 3);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Sets the attempt number.
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Whether the backoff should start over for this dial: true for a first dial and
    /// after a connection that proved healthy; false after a connection that dropped
    /// before it did, so the delays keep growing.
    ///
    /// ```
    /// use ws_reconnect::Target;
    /// let t = Target::new("ws://localhost/")?;
    /// assert!(t.resets_backoff());
    /// assert!(!t.with_reset_backoff(false).resets_backoff());
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn resets_backoff(&self) -> bool {
        self.reset_backoff
    }

    /// Sets whether the backoff starts over.
    pub fn with_reset_backoff(mut self, reset: bool) -> Self {
        self.reset_backoff = reset;
        self
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Target");
        match &self.source {
            Source::Fixed { uri, headers } => {
                d.field("url", &redact_uri(uri));
                let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
                d.field("headers", &names);
            }
            Source::Func(_) => {
                d.field("url", &"<from closure>");
            }
        }
        d.field("kind", &self.kind)
            .field("attempt", &self.attempt)
            .finish()
    }
}

/// `scheme://host:port/path` without user-info or query: what may appear in logs.
pub(crate) fn redact_uri(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("");
    let host = uri.host().unwrap_or("");
    let mut out = format!("{scheme}://{host}");
    if let Some(port) = uri.port_u16() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(uri.path());
    if uri.query().is_some() {
        out.push_str("?<redacted>");
    }
    out
}

/// Redacts a raw URL string that may not even parse.
fn redact_str(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(uri) if uri.host().is_some() => redact_uri(&uri),
        _ => {
            let cut = url.find(['?', '@']).unwrap_or(url.len());
            let mut s: String = url[..cut].chars().take(200).collect();
            if cut < url.len() {
                s.push_str("<redacted>");
            }
            s
        }
    }
}

/// Parses and checks a WebSocket URL.
pub(crate) fn parse_ws_url(url: &str) -> Result<Uri, Error> {
    let invalid = |reason| Error::InvalidUrl {
        url: redact_str(url),
        reason,
    };
    if url.trim().is_empty() {
        return Err(invalid("the URL is empty"));
    }
    let uri: Uri = url.parse().map_err(|_| invalid("the URL does not parse"))?;
    check_ws_uri(&uri, url)?;
    Ok(uri)
}

fn check_ws_uri(uri: &Uri, raw: &str) -> Result<(), Error> {
    let invalid = |reason| Error::InvalidUrl {
        url: redact_str(raw),
        reason,
    };
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("ws") || s.eq_ignore_ascii_case("wss") => {}
        Some(_) => return Err(invalid("the scheme must be ws or wss")),
        None => return Err(invalid("the URL has no scheme (expected ws:// or wss://)")),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => Ok(()),
        _ => Err(invalid("the URL has no host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_urls_are_rejected_with_a_reason() {
        for bad in [
            "foo",
            "https://127.0.0.2:1234/x",
            "ws://",
            "",
            "   ",
            "ws:///path",
            "http://x",
        ] {
            match Target::new(bad) {
                Err(Error::InvalidUrl { .. }) => {}
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn valid_urls_pass() {
        for good in [
            "ws://127.0.0.1:9000/v2/heartbeat/",
            "wss://example.com",
            "WS://[::1]:80/",
        ] {
            Target::new(good).unwrap();
        }
    }

    #[test]
    fn redaction_hides_userinfo_and_query() {
        let uri: Uri = "ws://user:pass@host:81/p?token=abc".parse().unwrap();
        let s = redact_uri(&uri);
        assert_eq!(s, "ws://host:81/p?<redacted>");
        let err = Target::new("https://user:pw@host/?token=abc").unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("pw") && !text.contains("abc"), "{text}");
    }

    #[test]
    fn closure_urls_are_checked_too() {
        let t = Target::from_fn(|| Ok("http://localhost/".into_client_request()?));
        assert!(matches!(t.request(), Err(Error::InvalidUrl { .. })));
    }
}
