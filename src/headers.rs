//! [`HeadersLayer`]: headers computed by an async hook for every connection attempt.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::HeaderMap;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::error::{BoxError, Error};
use crate::request::{hook_error, Attempt, BoxFuture, ClientRequest, Target};

/// Adds headers computed by an async hook to the request of every connection attempt:
/// a token fetched from an identity provider, refreshed when the server refused the last
/// one. The layer form of [`Target::from_async_fn`], for a connection stack of your own;
/// the [`Builder`](crate::Builder) has [`headers_with`](crate::Builder::headers_with).
///
/// The service resolves the request of the [`Target`] it is called with, awaits the
/// hook, adds its headers (replacing those of the same name) and calls the inner service
/// with a target carrying that request, so the connector sends it as it is. The hook is
/// told the [`Attempt`]: put the layer *below* [`BackoffRetryLayer`](crate::BackoffRetryLayer)
/// so that it sees every retry's number and previous failure, and below the connect
/// timeout so that the timeout bounds it:
///
/// ```no_run
/// use std::time::Duration;
/// use ws_reconnect::{Attempt, BackoffRetryLayer, ExponentialBackoff, HeadersLayer, ReconnectingSink, Target, TungsteniteConnector};
///
/// /// Stands in for an HTTP call to an identity provider.
/// async fn fetch_token(refresh: bool) -> Result<String, ws_reconnect::BoxError> {
///     Ok(if refresh { "fresh" } else { "cached" }.to_owned())
/// }
///
/// # async fn run() -> Result<(), ws_reconnect::Error> {
/// let make = tower::ServiceBuilder::new()
///     // A 401/403 on a reconnection gets 2 more attempts, each with a fresh token.
///     .layer(BackoffRetryLayer::new(ExponentialBackoff::default()).refresh_on_unauthorized(2))
///     .timeout(Duration::from_secs(10)) // bounds the hook too
///     .layer(HeadersLayer::new(|attempt: Attempt| async move {
///         let token = fetch_token(attempt.after_unauthorized()).await?;
///         let mut headers = http::HeaderMap::new();
///         headers.insert("authorization", format!("Bearer {token}").parse()?);
///         Ok::<_, ws_reconnect::BoxError>(headers)
///     }))
///     .service(TungsteniteConnector::default());
/// let mut ws = ReconnectingSink::new(make, Target::new("ws://127.0.0.1:9000/")?);
/// ws.dial().await?;
/// # Ok(()) }
/// ```
///
/// A hook's error ends the attempt with [`Error::Request`], not retried, unless it is one
/// of this crate's errors, boxed (see [`Target::from_async_fn`]). The layer only clones
/// the hook (shared behind an `Arc`).
pub struct HeadersLayer<F> {
    hook: Arc<F>,
}

impl<F> HeadersLayer<F> {
    /// A layer adding the headers `hook` computes for each attempt.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ws_reconnect::Error> {
    /// use tower::{Layer, ServiceExt};
    /// use ws_reconnect::{Attempt, HeadersLayer, Target};
    ///
    /// // An inner service that shows the request it would send.
    /// let show = tower::service_fn(|target: Target| async move { target.request() });
    /// let service = HeadersLayer::new(|attempt: Attempt| async move {
    ///     let mut headers = http::HeaderMap::new();
    ///     headers.insert("authorization", format!("Bearer token-{}", attempt.number()).parse()?);
    ///     Ok::<_, ws_reconnect::BoxError>(headers)
    /// })
    /// .layer(show);
    /// let request = service.oneshot(Target::new("ws://127.0.0.1:9000/feed")?.with_attempt(3)).await?;
    /// assert_eq!(request.headers()["authorization"], "Bearer token-3");
    /// assert_eq!(request.uri().path(), "/feed");
    /// # Ok(()) }
    /// ```
    pub fn new<Fut>(hook: F) -> Self
    where
        F: Fn(Attempt) -> Fut,
        Fut: Future<Output = Result<HeaderMap, BoxError>>,
    {
        HeadersLayer {
            hook: Arc::new(hook),
        }
    }
}

impl<F> Clone for HeadersLayer<F> {
    fn clone(&self) -> Self {
        HeadersLayer {
            hook: Arc::clone(&self.hook),
        }
    }
}

impl<F> fmt::Debug for HeadersLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadersLayer").finish_non_exhaustive()
    }
}

impl<S, F> Layer<S> for HeadersLayer<F> {
    type Service = HeadersService<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        HeadersService {
            inner,
            hook: Arc::clone(&self.hook),
        }
    }
}

/// The service of a [`HeadersLayer`]: resolves each call's request, adds the hook's
/// headers, and calls the inner service with a target carrying that request.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ws_reconnect::Error> {
/// use tower::ServiceExt;
/// use ws_reconnect::{Attempt, HeadersService, Target};
///
/// let show = tower::service_fn(|target: Target| async move { target.request() });
/// let service = HeadersService::new(show, |_: Attempt| async {
///     let mut headers = http::HeaderMap::new();
///     headers.insert("x-client", "demo".parse()?);
///     Ok::<_, ws_reconnect::BoxError>(headers)
/// });
/// let request = service.oneshot(Target::new("ws://127.0.0.1:9000/")?).await?;
/// assert_eq!(request.headers()["x-client"], "demo");
/// # Ok(()) }
/// ```
pub struct HeadersService<S, F> {
    inner: S,
    hook: Arc<F>,
}

impl<S, F> HeadersService<S, F> {
    /// Wraps `inner`, adding the headers `hook` computes for each attempt.
    ///
    /// ```
    /// use ws_reconnect::{Attempt, HeadersService, TungsteniteConnector};
    ///
    /// let service = HeadersService::new(TungsteniteConnector::default(), |_: Attempt| async {
    ///     Ok::<_, ws_reconnect::BoxError>(http::HeaderMap::new())
    /// });
    /// # let _ = service;
    /// ```
    pub fn new<Fut>(inner: S, hook: F) -> Self
    where
        F: Fn(Attempt) -> Fut,
        Fut: Future<Output = Result<HeaderMap, BoxError>>,
    {
        HeadersService {
            inner,
            hook: Arc::new(hook),
        }
    }

    /// The inner service.
    ///
    /// ```
    /// use ws_reconnect::{Attempt, HeadersService, TungsteniteConnector};
    ///
    /// let service = HeadersService::new(TungsteniteConnector::default(), |_: Attempt| async {
    ///     Ok::<_, ws_reconnect::BoxError>(http::HeaderMap::new())
    /// });
    /// assert!(service.get_ref().websocket_config().max_message_size.is_some());
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    ///
    /// ```
    /// use ws_reconnect::{Attempt, HeadersService, TungsteniteConnector};
    ///
    /// let mut service = HeadersService::new(TungsteniteConnector::default(), |_: Attempt| async {
    ///     Ok::<_, ws_reconnect::BoxError>(http::HeaderMap::new())
    /// });
    /// *service.get_mut() = TungsteniteConnector::new().no_proxy();
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    ///
    /// ```
    /// use ws_reconnect::{Attempt, HeadersService, TungsteniteConnector};
    ///
    /// let service = HeadersService::new(TungsteniteConnector::default(), |_: Attempt| async {
    ///     Ok::<_, ws_reconnect::BoxError>(http::HeaderMap::new())
    /// });
    /// let connector: TungsteniteConnector = service.into_inner();
    /// # let _ = connector;
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, F> Clone for HeadersService<S, F> {
    fn clone(&self) -> Self {
        HeadersService {
            inner: self.inner.clone(),
            hook: Arc::clone(&self.hook),
        }
    }
}

impl<S: fmt::Debug, F> fmt::Debug for HeadersService<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadersService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, F, Fut> Service<Target> for HeadersService<S, F>
where
    S: Service<Target> + Clone,
    S::Error: Into<BoxError>,
    F: Fn(Attempt) -> Fut,
    Fut: Future<Output = Result<HeaderMap, BoxError>>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = HeadersFuture<S, Fut>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::from_boxed(e.into()))
    }

    fn call(&mut self, target: Target) -> Self::Future {
        let attempt = target.attempt_info();
        let base = target.resolve_source(attempt.clone());
        let headers = (self.hook)(attempt);
        // The inner service is ready (poll_ready passed); the clone serves the next call.
        let next = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, next);
        HeadersFuture {
            service,
            target,
            state: HeadersState::Resolving {
                base,
                request: None,
                headers,
            },
        }
    }
}

pin_project! {
    /// The future of a [`HeadersService`] call: the target's request, the hook's
    /// headers, then the inner service's attempt.
    ///
    /// ```text
    /// Resolving --request and headers--> Calling --inner done--> done
    /// an error resolving either: done with it (the inner service is not called)
    /// ```
    ///
    /// # Cancellation safety
    /// Dropping it drops the hook's future and the inner attempt.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), ws_reconnect::Error> {
    /// use tower::{Service, ServiceExt};
    /// use ws_reconnect::{Attempt, BoxError, Error, HeadersFuture, HeadersService, Target};
    ///
    /// let show = tower::service_fn(|target: Target| async move { target.request() });
    /// let mut service = HeadersService::new(show, |_: Attempt| async {
    ///     Err::<http::HeaderMap, _>(BoxError::from("identity provider down"))
    /// });
    /// let future: HeadersFuture<_, _> = service.ready().await?.call(Target::new("ws://127.0.0.1:9000/")?);
    /// // The hook's own error: not retried.
    /// assert!(matches!(future.await, Err(Error::Request(_))));
    /// # Ok(()) }
    /// ```
    pub struct HeadersFuture<S: Service<Target>, Fut> {
        service: S,
        target: Target,
        #[pin]
        state: HeadersState<S::Future, Fut>,
    }
}

pin_project! {
    #[project = HeadersStateProj]
    enum HeadersState<F, Fut> {
        Resolving {
            base: BoxFuture<Result<ClientRequest, Error>>,
            // The target's request, once resolved, while the hook is still running.
            request: Option<ClientRequest>,
            #[pin]
            headers: Fut,
        },
        Calling { #[pin] future: F },
    }
}

impl<S: Service<Target>, Fut> fmt::Debug for HeadersFuture<S, Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadersFuture")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<S, Fut> Future for HeadersFuture<S, Fut>
where
    S: Service<Target>,
    S::Error: Into<BoxError>,
    Fut: Future<Output = Result<HeaderMap, BoxError>>,
{
    type Output = Result<S::Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                HeadersStateProj::Resolving {
                    base,
                    request,
                    headers,
                } => {
                    let mut resolved = match request.take() {
                        Some(resolved) => resolved,
                        None => ready!(base.as_mut().poll(cx))?,
                    };
                    let extra = match headers.poll(cx) {
                        Poll::Ready(extra) => extra.map_err(hook_error)?,
                        Poll::Pending => {
                            *request = Some(resolved);
                            return Poll::Pending;
                        }
                    };
                    resolved.headers_mut().extend(extra);
                    let target = this.target.clone().with_request(resolved);
                    let future = this.service.call(target);
                    // Resolving -> Calling
                    this.state.set(HeadersState::Calling { future });
                }
                HeadersStateProj::Calling { future } => {
                    return future.poll(cx).map_err(|e| Error::from_boxed(e.into()));
                }
            }
        }
    }
}
