//! What a connection attempt dials: the request, and whether it is a first dial or a
//! reconnection.
//!
//! A [`Target`] builds a fresh upgrade request for every attempt, so a new
//! `Sec-WebSocket-Key` is used each time, and a user-supplied closure can put a fresh
//! auth token or a different URL into each one ([`Target::from_fn`]), or an async hook
//! can fetch one first ([`Target::from_async_fn`]), told which [`Attempt`] it serves.
//!
//! # Why requests are resolved inside the connection attempt
//!
//! A token fetched from an identity provider is an HTTP call: it can be slow, and it
//! belongs to the attempt it is for. The connector awaits [`Target::resolve`] inside its
//! connection future, so the connect timeout bounds the hook as it bounds the TCP and
//! WebSocket handshakes, and a hook that hangs is an attempt that timed out (retried).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri, Version};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::error::{shared, BoxError, Error};
use crate::limit::budget::ReconnectBudget;
use crate::raw_url;

/// The HTTP upgrade request that opens a WebSocket connection (tungstenite's).
pub type ClientRequest = tokio_tungstenite::tungstenite::handshake::client::Request;

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type RequestFn = dyn Fn() -> Result<ClientRequest, BoxError> + Send + Sync;
type AsyncRequestFn = dyn Fn(Attempt) -> BoxFuture<Result<ClientRequest, BoxError>> + Send + Sync;
/// A hook computing headers for an attempt, as the builder keeps it.
pub(crate) type HeadersFn = dyn Fn(Attempt) -> BoxFuture<Result<HeaderMap, BoxError>> + Send + Sync;

/// Boxes a headers hook for [`Target::with_headers_hook`].
pub(crate) fn headers_hook<F, Fut>(hook: F) -> Arc<HeadersFn>
where
    F: Fn(Attempt) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<HeaderMap, BoxError>> + Send + 'static,
{
    Arc::new(move |attempt| Box::pin(hook(attempt)))
}

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

/// What a request hook is told about the attempt it builds the request for: its number
/// within the run of attempts, whether the run is a first dial or a reconnection, and
/// how the previous attempt of the run failed.
///
/// A hook gets it by value, so its future can keep it.
///
/// ```
/// use ws_reconnect::{Attempt, DialKind, Target};
/// use ws_reconnect::tungstenite::client::IntoClientRequest;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ws_reconnect::Error> {
/// let target = Target::from_async_fn(|attempt: Attempt| async move {
///     assert_eq!(attempt.number(), 2);
///     assert_eq!(attempt.kind(), DialKind::Reconnect);
///     assert!(attempt.previous_failure().is_none());
///     Ok::<_, ws_reconnect::BoxError>("ws://127.0.0.1:9000/".into_client_request()?)
/// });
/// // BackoffRetry sets these for each attempt; here by hand.
/// let request = target.with_kind(DialKind::Reconnect).with_attempt(2).resolve().await?;
/// assert_eq!(request.uri().port_u16(), Some(9000));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Attempt {
    number: u32,
    kind: DialKind,
    previous_failure: Option<Arc<Error>>,
}

impl Attempt {
    /// The attempt number within its run: 0 for the first attempt of a first dial or of
    /// a reconnection, then 1, 2, … for the retries ([`Target::attempt`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ws_reconnect::Error> {
    /// use ws_reconnect::{Attempt, Target};
    /// use ws_reconnect::tungstenite::client::IntoClientRequest;
    ///
    /// let target = Target::from_async_fn(|attempt: Attempt| async move {
    ///     let url = format!("ws://127.0.0.1:9000/?try={}", attempt.number());
    ///     Ok::<_, ws_reconnect::BoxError>(url.into_client_request()?)
    /// });
    /// let request = target.with_attempt(3).resolve().await?;
    /// assert_eq!(request.uri().query(), Some("try=3"));
    /// # Ok(()) }
    /// ```
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Whether the run is a first dial or a reconnection ([`Target::kind`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ws_reconnect::Error> {
    /// use ws_reconnect::{Attempt, DialKind, Target};
    /// use ws_reconnect::tungstenite::client::IntoClientRequest;
    ///
    /// let target = Target::from_async_fn(|attempt: Attempt| async move {
    ///     let mut request = "ws://127.0.0.1:9000/".into_client_request()?;
    ///     if attempt.kind() == DialKind::Reconnect {
    ///         request.headers_mut().insert("x-resume", "1".parse()?);
    ///     }
    ///     Ok::<_, ws_reconnect::BoxError>(request)
    /// });
    /// assert!(target.resolve().await?.headers().get("x-resume").is_none());
    /// let again = target.with_kind(DialKind::Reconnect).resolve().await?;
    /// assert_eq!(again.headers()["x-resume"], "1");
    /// # Ok(()) }
    /// ```
    pub fn kind(&self) -> DialKind {
        self.kind
    }

    /// How the previous attempt of this run failed; `None` for the first attempt of a
    /// run. [`BackoffRetry`](crate::BackoffRetry) records it on the target it passes to
    /// the next attempt ([`Target::with_previous_failure`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ws_reconnect::Error> {
    /// use std::sync::Arc;
    /// use ws_reconnect::{Attempt, Error, Target};
    /// use ws_reconnect::tungstenite::client::IntoClientRequest;
    ///
    /// let target = Target::from_async_fn(|attempt: Attempt| async move {
    ///     let timed_out = matches!(attempt.previous_failure(), Some(Error::Timeout));
    ///     let host = if timed_out { "backup.example" } else { "main.example" };
    ///     Ok::<_, ws_reconnect::BoxError>(format!("ws://{host}/").into_client_request()?)
    /// });
    /// let retry = target.with_attempt(1).with_previous_failure(Some(Arc::new(Error::Timeout)));
    /// assert_eq!(retry.resolve().await?.uri().host(), Some("backup.example"));
    /// # Ok(()) }
    /// ```
    pub fn previous_failure(&self) -> Option<&Error> {
        self.previous_failure.as_deref()
    }

    /// Whether the previous attempt of this run was refused with 401 Unauthorized or 403
    /// Forbidden: the moment to fetch a new token instead of reusing a cached one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ws_reconnect::Error> {
    /// use std::sync::Arc;
    /// use ws_reconnect::{Attempt, Error, Target};
    /// use ws_reconnect::tungstenite::client::IntoClientRequest;
    ///
    /// let target = Target::from_async_fn(|attempt: Attempt| async move {
    ///     let token = if attempt.after_unauthorized() { "refreshed" } else { "cached" };
    ///     let mut request = "ws://127.0.0.1:9000/".into_client_request()?;
    ///     request.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    ///     Ok::<_, ws_reconnect::BoxError>(request)
    /// });
    /// let refused = Error::Rejected {
    ///     status: http::StatusCode::UNAUTHORIZED,
    ///     retry_after: None,
    ///     retryable: false,
    /// };
    /// let retry = target.with_attempt(1).with_previous_failure(Some(Arc::new(refused)));
    /// assert_eq!(retry.resolve().await?.headers()["authorization"], "Bearer refreshed");
    /// # Ok(()) }
    /// ```
    pub fn after_unauthorized(&self) -> bool {
        self.previous_failure
            .as_deref()
            .is_some_and(is_unauthorized)
    }
}

/// Whether `failure` is the server refusing the credentials: a 401 or 403 answer to the
/// upgrade request.
pub(crate) fn is_unauthorized(failure: &Error) -> bool {
    matches!(
        failure,
        Error::Rejected { status, .. }
            if *status == http::StatusCode::UNAUTHORIZED || *status == http::StatusCode::FORBIDDEN
    )
}

#[derive(Clone)]
enum Source {
    Fixed {
        uri: Uri,
        headers: HeaderMap,
    },
    Func(Arc<RequestFn>),
    Async(Arc<AsyncRequestFn>),
    /// Another source's request, plus the headers a hook computes for the attempt
    /// ([`Builder::headers_with`](crate::Builder::headers_with)).
    WithHeaders {
        base: Arc<Source>,
        hook: Arc<HeadersFn>,
    },
    /// A request a layer above resolved for this attempt ([`HeadersService`]): sent as
    /// it is.
    Resolved(Arc<ResolvedRequest>),
}

/// A resolved request, kept in parts: `http::Request` is not `Clone`, a `Target` is.
struct ResolvedRequest {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

impl ResolvedRequest {
    fn new(request: ClientRequest) -> Self {
        let (parts, ()) = request.into_parts();
        ResolvedRequest {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
        }
    }

    fn request(&self) -> ClientRequest {
        let mut request = ClientRequest::new(());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

impl Source {
    /// The request, for the sources that need no awaiting.
    fn request(&self) -> Result<ClientRequest, Error> {
        match self {
            Source::Fixed { uri, headers } => {
                let mut request = uri.clone().into_client_request()?;
                for (name, value) in headers {
                    request.headers_mut().append(name.clone(), value.clone());
                }
                Ok(request)
            }
            Source::Func(make) => {
                let request = make().map_err(hook_error)?;
                check_ws_uri(request.uri(), &request.uri().to_string())?;
                Ok(request)
            }
            Source::Async(_) | Source::WithHeaders { .. } => Err(Error::Request(shared(
                "this target builds its request asynchronously: use Target::resolve",
            ))),
            Source::Resolved(resolved) => Ok(resolved.request()),
        }
    }

    /// The request for `attempt`, awaiting the hooks that build it. The future owns
    /// what it needs.
    fn resolve(self, attempt: Attempt) -> BoxFuture<Result<ClientRequest, Error>> {
        Box::pin(async move {
            match self {
                Source::Async(make) => {
                    let request = make(attempt).await.map_err(hook_error)?;
                    check_ws_uri(request.uri(), &request.uri().to_string())?;
                    Ok(request)
                }
                Source::WithHeaders { base, hook } => {
                    let mut request = Source::clone(&base).resolve(attempt.clone()).await?;
                    let headers = hook(attempt).await.map_err(hook_error)?;
                    request.headers_mut().extend(headers);
                    Ok(request)
                }
                sync => sync.request(),
            }
        })
    }

    /// The URL when it is known before any attempt.
    #[cfg(feature = "metrics")]
    fn fixed_uri(&self) -> Option<&Uri> {
        match self {
            Source::Fixed { uri, .. } => Some(uri),
            Source::Resolved(resolved) => Some(&resolved.uri),
            Source::WithHeaders { base, .. } => base.fixed_uri(),
            Source::Func(_) | Source::Async(_) => None,
        }
    }

    /// The URL without user-info or query, and the header names: never the values.
    fn describe(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        let names = |headers: &HeaderMap| -> Vec<String> {
            headers
                .keys()
                .map(|name| name.as_str().to_owned())
                .collect()
        };
        match self {
            Source::Fixed { uri, headers } => {
                d.field("url", &redact_uri(uri));
                d.field("headers", &names(headers));
            }
            Source::Func(_) | Source::Async(_) => {
                d.field("url", &"<from closure>");
            }
            Source::WithHeaders { base, .. } => {
                base.describe(d);
                d.field("headers_hook", &true);
            }
            Source::Resolved(resolved) => {
                d.field("url", &redact_uri(&resolved.uri));
                d.field("headers", &names(&resolved.headers));
            }
        }
    }
}

/// A request hook's error: this crate's own errors (boxed) and the ones
/// [`Error::from_boxed`] recognises keep their classification, anything else is
/// [`Error::Request`], not retried.
pub(crate) fn hook_error(e: BoxError) -> Error {
    match Error::from_boxed(e) {
        Error::Connection(e) => Error::Request(e),
        other => other,
    }
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
    previous_failure: Option<Arc<Error>>,
    reset_backoff: bool,
    /// The budget of the first reconnect limit layer that handled this target, shared by
    /// every clone: how a sink finds its stack's limiter.
    budget: Arc<OnceLock<ReconnectBudget>>,
    /// Told of what happens to the attempts made for this target (by a retry layer,
    /// a connector): how a sink follows the attempts it does not see.
    observer: Option<AttemptObserver>,
}

/// What a [`Target`] tells its observer (see [`Target::report`]).
#[derive(Debug, Clone)]
pub(crate) enum AttemptReport<'a> {
    /// An attempt failed and a retry layer will try again.
    Retrying(&'a Error),
    /// The connector's attempt succeeded: what moves on its socket is counted here.
    Connected {
        progress: Arc<crate::progress::Progress>,
    },
}

/// Who hears a [`Target`]'s reports.
pub(crate) type AttemptObserver = Arc<dyn Fn(AttemptReport<'_>) + Send + Sync>;

impl Target {
    /// A target for a fixed `ws://` or `wss://` URL.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] when the URL does not parse, has no host, its scheme is not
    /// `ws`/`wss`, or it names a port that cannot be dialed: a port is written in decimal
    /// digits and is from 1 to 65535 (port 0 is refused). No network traffic happens here.
    ///
    /// ```
    /// use ws_reconnect::{Error, Target};
    ///
    /// assert!(Target::new("wss://example.com/socket").is_ok());
    /// assert!(matches!(Target::new("https://example.com"), Err(Error::InvalidUrl { .. })));
    /// assert!(matches!(Target::new("ws://example.com:65536"), Err(Error::InvalidUrl { .. })));
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

    /// A target whose request is built by an async `hook` before every attempt: a token
    /// fetched from an identity provider, a refresh when the server refused the last one.
    /// The hook is told which [`Attempt`] it serves: its number, whether it is a first
    /// dial or a reconnection, and how the previous attempt of the run failed
    /// ([`Attempt::after_unauthorized`] says when that was a refused token). The
    /// request's URL is checked like [`Target::new`]'s.
    ///
    /// The connector awaits the hook inside its connection attempt
    /// ([`resolve`](Self::resolve)), so the connect timeout bounds the hook too: a hook
    /// that takes longer fails the attempt with [`Error::Timeout`], which is retried.
    ///
    /// An error returned by the hook ends the attempt with [`Error::Request`], which is
    /// not retried; return one of this crate's [`Error`]s (boxed) to choose otherwise (an
    /// I/O error counts as [`Error::Transport`], retried, as in
    /// [`Error::from_boxed`]). [`request`](Self::request) cannot run the hook: it
    /// returns [`Error::Request`] for such a target.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use ws_reconnect::{Attempt, Target};
    /// use ws_reconnect::tungstenite::client::IntoClientRequest;
    ///
    /// /// Stands in for an HTTP call to an identity provider.
    /// async fn fetch_token() -> Result<String, ws_reconnect::BoxError> {
    ///     Ok("fresh".to_owned())
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ws_reconnect::Error> {
    /// let cached = Arc::new(Mutex::new(String::from("stale")));
    /// let target = Target::from_async_fn(move |attempt: Attempt| {
    ///     let cached = Arc::clone(&cached);
    ///     async move {
    ///         // Reuse the cached token, unless the server just refused it.
    ///         if attempt.after_unauthorized() {
    ///             *cached.lock().unwrap() = fetch_token().await?;
    ///         }
    ///         let token = cached.lock().unwrap().clone();
    ///         let mut request = "ws://127.0.0.1:9000/".into_client_request()?;
    ///         request.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    ///         Ok::<_, ws_reconnect::BoxError>(request)
    ///     }
    /// });
    /// assert_eq!(target.resolve().await?.headers()["authorization"], "Bearer stale");
    /// // The request is built by the hook: only `resolve` can await it.
    /// assert!(matches!(target.request(), Err(ws_reconnect::Error::Request(_))));
    /// # Ok(()) }
    /// ```
    pub fn from_async_fn<F, Fut>(hook: F) -> Target
    where
        F: Fn(Attempt) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ClientRequest, BoxError>> + Send + 'static,
    {
        let hook: Arc<AsyncRequestFn> = Arc::new(move |attempt| Box::pin(hook(attempt)));
        Target::from_source(Source::Async(hook))
    }

    fn from_source(source: Source) -> Target {
        Target {
            source,
            kind: DialKind::First,
            attempt: 0,
            previous_failure: None,
            reset_backoff: true,
            budget: Arc::default(),
            observer: None,
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

    /// Tells `observer` what happens to the attempts made for this target (and its
    /// clones).
    pub(crate) fn with_observer(mut self, observer: AttemptObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Called by a retry layer or a connector: see [`AttemptReport`].
    pub(crate) fn report(&self, report: AttemptReport<'_>) {
        if let Some(observer) = &self.observer {
            observer(report);
        }
    }

    /// The URL of a fixed-URL target; `None` for a closure's, known only per attempt.
    #[cfg(feature = "metrics")]
    pub(crate) fn fixed_uri(&self) -> Option<&Uri> {
        self.source.fixed_uri()
    }

    /// Adds a header to every request of a fixed-URL target.
    ///
    /// # Errors
    /// [`Error::Request`] when the name or value is not a valid header, or when the target
    /// was made by [`Target::from_fn`] or [`Target::from_async_fn`] (set headers in the
    /// closure there).
    ///
    /// ```
    /// use ws_reconnect::Target;
    /// let target = Target::new("ws://localhost/")?.header("x-client", "demo")?;
    /// assert_eq!(target.request()?.headers()["x-client"], "demo");
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Result<Self, Error> {
        let name = HeaderName::try_from(name.as_ref()).map_err(|e| Error::Request(shared(e)))?;
        let value = HeaderValue::try_from(value.as_ref()).map_err(|e| Error::Request(shared(e)))?;
        match &mut self.source {
            Source::Fixed { headers, .. } => {
                headers.append(name, value);
                Ok(self)
            }
            _ => Err(Error::Request(shared(
                "headers of a target made from a closure are set by the closure",
            ))),
        }
    }

    /// Builds the upgrade request for one attempt, with a fresh `Sec-WebSocket-Key`.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`] for a bad URL from a closure, [`Error::Request`] when the
    /// closure fails or when the target was made by [`Target::from_async_fn`], whose
    /// request only [`resolve`](Self::resolve) can build.
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
        self.source.request()
    }

    /// Builds the upgrade request for this attempt, awaiting the target's hook if it has
    /// one ([`Target::from_async_fn`]); for the other targets it is
    /// [`request`](Self::request). The hook is told this target's [`attempt`](Self::attempt),
    /// [`kind`](Self::kind) and [`previous_failure`](Self::previous_failure). This is how
    /// the [`TungsteniteConnector`](crate::TungsteniteConnector) obtains its request, and
    /// what a connector of your own should call.
    ///
    /// The future owns what it needs: it does not borrow the target.
    ///
    /// # Errors
    /// As [`request`](Self::request); a hook's error is [`Error::Request`] unless it is
    /// one of this crate's errors, boxed.
    ///
    /// # Cancellation safety
    /// Dropping the future drops the hook's future: a token fetch in flight is abandoned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ws_reconnect::Error> {
    /// use ws_reconnect::{Attempt, Error, Target};
    ///
    /// let fixed = Target::new("ws://localhost:1234/x")?;
    /// assert_eq!(fixed.resolve().await?.uri().path(), "/x");
    ///
    /// let failing = Target::from_async_fn(|_: Attempt| async { Err("identity provider down".into()) });
    /// assert!(matches!(failing.resolve().await, Err(Error::Request(_))));
    /// # Ok(()) }
    /// ```
    pub fn resolve(&self) -> impl Future<Output = Result<ClientRequest, Error>> + Send + 'static {
        self.source.clone().resolve(self.attempt_info())
    }

    /// This target, with `request` as the request of its attempt: what a layer that
    /// resolved the request passes down.
    pub(crate) fn with_request(mut self, request: ClientRequest) -> Target {
        self.source = Source::Resolved(Arc::new(ResolvedRequest::new(request)));
        self
    }

    /// This target, with the headers `hook` computes for each attempt added to its
    /// request (replacing those of the same name).
    pub(crate) fn with_headers_hook(mut self, hook: Arc<HeadersFn>) -> Target {
        self.source = Source::WithHeaders {
            base: Arc::new(self.source),
            hook,
        };
        self
    }

    /// What a request hook is told about this attempt.
    /// The request of this target's own source (without any headers layer's), for the
    /// attempt `attempt`.
    pub(crate) fn resolve_source(
        &self,
        attempt: Attempt,
    ) -> BoxFuture<Result<ClientRequest, Error>> {
        self.source.clone().resolve(attempt)
    }

    pub(crate) fn attempt_info(&self) -> Attempt {
        Attempt {
            number: self.attempt,
            kind: self.kind,
            previous_failure: self.previous_failure.clone(),
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

    /// How the previous attempt of this run failed, as a request hook sees it
    /// ([`Attempt::previous_failure`]); `None` for the first attempt of a run.
    ///
    /// ```
    /// use ws_reconnect::Target;
    /// assert!(Target::new("ws://localhost/")?.previous_failure().is_none());
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn previous_failure(&self) -> Option<&Error> {
        self.previous_failure.as_deref()
    }

    /// Sets how the previous attempt of this run failed.
    /// [`BackoffRetry`](crate::BackoffRetry) sets it on the target of each retry; a retry
    /// layer of your own can do the same so that request hooks see it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ws_reconnect::{Error, Target};
    ///
    /// let target = Target::new("ws://localhost/")?
    ///     .with_attempt(1)
    ///     .with_previous_failure(Some(Arc::new(Error::Timeout)));
    /// assert!(matches!(target.previous_failure(), Some(Error::Timeout)));
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn with_previous_failure(mut self, failure: Option<Arc<Error>>) -> Self {
        self.previous_failure = failure;
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
        self.source.describe(&mut d);
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

/// Parses and checks a WebSocket URL.
pub(crate) fn parse_ws_url(url: &str) -> Result<Uri, Error> {
    let invalid = |reason| Error::InvalidUrl {
        url: raw_url::redact(url),
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
        url: raw_url::redact(raw),
        reason,
    };
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("ws") || s.eq_ignore_ascii_case("wss") => {}
        Some(_) => return Err(invalid("the scheme must be ws or wss")),
        None => return Err(invalid("the URL has no scheme (expected ws:// or wss://)")),
    }
    match uri.host() {
        Some(h) if !h.is_empty() => {}
        _ => return Err(invalid("the URL has no host")),
    }
    // `Uri` takes any text as a port and reports none when it does not fit a `u16`:
    // the connector would dial the default port instead. The port is read from the text.
    if let Some(authority) = uri.authority() {
        raw_url::port(authority.as_str()).map_err(|e| invalid(e.reason()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
