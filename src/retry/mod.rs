//! Retries a connection attempt with a backoff policy: [`ExponentialBackoff`] by default,

mod future;
mod layer;
mod policy;

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::Service;

pub use self::future::BackoffRetryFuture;
use self::future::Start;
pub use self::layer::BackoffRetryLayer;
use self::policy::RefreshOnUnauthorized;
pub use self::policy::{BackoffPolicy, IterBackoff};
use crate::backoff::ExponentialBackoff;
use crate::error::{BoxError, Error};
use crate::request::Target;

/// Retries the inner connection service with a [`BackoffPolicy`], an
/// [`ExponentialBackoff`] unless said otherwise.
///
/// Each `BackoffRetry` keeps its own policy state across calls; a clone starts fresh.
///
/// ```
/// use ws_reconnect::{BackoffRetry, ExponentialBackoff, TungsteniteConnector};
/// let service = BackoffRetry::new(TungsteniteConnector::default(), ExponentialBackoff::default());
/// assert_eq!(service.policy().multiplier(), 2.0);
/// ```
///
/// or any [`BackoffPolicy`].
///
/// [`BackoffRetry`] wraps a connection service. The first attempt is immediate; after a
/// retryable failure it waits the policy's next delay (or the server's `Retry-After`,
/// if longer, capped by the policy's [`max_retry_after`](BackoffPolicy::max_retry_after),
/// which is `max_interval` for the exponential backoff) and tries again. It stops at a permanent error,
/// returned as it is, or when the policy runs out, returning [`Error::GaveUp`] with the
/// last failure as its source.
///
/// # Why not `tower::retry::Policy`
/// tower's `Retry` hands back the inner service's last error unchanged and clones a
/// fresh policy per request. We need two things it cannot give: a distinct
/// [`Error::GaveUp`] (with attempts and elapsed time) so a caller can tell "the policy ran
/// out" from "this one attempt failed", and a policy that lives *across* calls, so that a
/// server which accepts and drops at once meets growing delays instead of an immediate
/// reconnection every time. The [`Target`] says when to start over
/// ([`Target::resets_backoff`]): on a first dial and after a connection that proved healthy.
///
/// ```
/// use ws_reconnect::{BackoffRetryLayer, ExponentialBackoff, TungsteniteConnector};
///
/// let service = tower::ServiceBuilder::new()
///     .layer(BackoffRetryLayer::new(ExponentialBackoff::default()))
///     .service(TungsteniteConnector::default());
/// # let _ = service;
/// ```
#[derive(Debug)]
pub struct BackoffRetry<S, P = ExponentialBackoff> {
    inner: S,
    policy: P,
    state: Arc<Mutex<Run<P>>>,
    refresh: RefreshOnUnauthorized,
}

/// The policy a `BackoffRetry` is using, and when its run started (for
/// [`Error::GaveUp`]'s `elapsed`): shared with the calls' futures.
#[derive(Debug)]
pub(crate) struct Run<P> {
    policy: P,
    started: Instant,
}

impl<P: BackoffPolicy> Run<P> {
    fn new(policy: P) -> Self {
        Run {
            policy,
            started: Instant::now(),
        }
    }

    fn reset(&mut self) {
        self.policy.reset();
        self.started = Instant::now();
    }

    pub(crate) fn next_delay(&mut self) -> Option<Duration> {
        self.policy.next_delay()
    }

    pub(crate) fn max_retry_after(&self) -> Duration {
        self.policy.max_retry_after()
    }

    /// Time since the service was made or the policy last reset.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

// The service is never pinned (its futures own their own clone of the inner service), so
// an `!Unpin` policy need not make it `!Unpin`: a sink needs an `Unpin` stack.
impl<S: Unpin, P> Unpin for BackoffRetry<S, P> {}

impl<S: Clone, P: BackoffPolicy> Clone for BackoffRetry<S, P> {
    fn clone(&self) -> Self {
        let mut clone = BackoffRetry::new(self.inner.clone(), self.policy.clone());
        clone.refresh = self.refresh;
        clone
    }
}

impl<S, P: BackoffPolicy> BackoffRetry<S, P> {
    /// Wraps `inner`, retrying with `policy`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::{BackoffRetry, IterBackoff};
    /// use ws_reconnect::TungsteniteConnector;
    ///
    /// // Three retries, a second apart.
    /// let policy = IterBackoff::new(|| std::iter::repeat(Duration::from_secs(1)).take(3));
    /// let service = BackoffRetry::new(TungsteniteConnector::default(), policy);
    /// # let _ = service;
    /// ```
    pub fn new(inner: S, policy: P) -> Self {
        BackoffRetry {
            inner,
            state: Arc::new(Mutex::new(Run::new(policy.clone()))),
            policy,
            refresh: RefreshOnUnauthorized::default(),
        }
    }
}

impl<S, P> BackoffRetry<S, P> {
    /// Retries a 401 Unauthorized or 403 Forbidden refusal of a *reconnection*, up to
    /// `max_tries` times per reconnection run, instead of ending the run with it. The
    /// request worked when the connection was opened, so the server most likely rotated
    /// its credentials meanwhile: the request hook ([`Target::from_async_fn`],
    /// [`HeadersLayer`](crate::HeadersLayer)) sees the refusal
    /// ([`Attempt::after_unauthorized`](crate::Attempt::after_unauthorized)) and fetches
    /// fresh ones for the next attempt. Default 0: off.
    ///
    /// Each such retry waits the backoff policy's next delay, as any retry does, and
    /// counts toward its limits (when the policy runs out first, the call ends with
    /// [`Error::GaveUp`], the refusal as its source). Past `max_tries`, the last refusal
    /// comes back as it would without this setting: [`Error::Rejected`] with
    /// `retryable: false`.
    ///
    /// A first dial is not covered: there a 401 or 403, like any 4xx other than 408,
    /// 425 and 429, ends the dial at once, because credentials wrong from the start do
    /// not get better by retrying. To retry it anyway, make the status retryable with a
    /// [`StatusPolicy`](crate::StatusPolicy) (on the connector, or
    /// [`Builder::status_policy`](crate::Builder::status_policy)): it is then retried on
    /// every attempt, first dial or reconnection, for as long as the backoff policy
    /// allows.
    ///
    /// ```
    /// use ws_reconnect::{BackoffRetry, ExponentialBackoff, TungsteniteConnector};
    ///
    /// // A reconnection refused with 401 or 403 gets two more attempts, each with the
    /// // request its hook rebuilds.
    /// let service = BackoffRetry::new(TungsteniteConnector::default(), ExponentialBackoff::default())
    ///     .refresh_on_unauthorized(2);
    /// # let _ = service;
    /// ```
    pub fn refresh_on_unauthorized(mut self, max_tries: u32) -> Self {
        self.refresh = RefreshOnUnauthorized::new(max_tries);
        self
    }

    /// The policy as it was given: its settings (the delays in use are drawn from a copy).
    ///
    /// ```
    /// use ws_reconnect::{BackoffRetry, ExponentialBackoff, TungsteniteConnector};
    /// let service = BackoffRetry::new(TungsteniteConnector::default(), ExponentialBackoff::default());
    /// assert_eq!(service.policy().max_interval().as_secs(), 300);
    /// ```
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, P> Service<Target> for BackoffRetry<S, P>
where
    S: Service<Target> + Clone,
    S::Error: Into<BoxError>,
    P: BackoffPolicy,
{
    type Response = S::Response;
    type Error = Error;
    type Future = BackoffRetryFuture<S, P>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::from_boxed(e.into()))
    }

    fn call(&mut self, target: Target) -> Self::Future {
        let mut run = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let start = if target.resets_backoff() {
            run.reset();
            Start::Now
        } else {
            // The last connection dropped before it proved healthy: wait before this
            // attempt too, growing the delay, or give up if the policy has run out.
            run.next_delay().map_or(Start::Exhausted, Start::After)
        };
        drop(run);
        // The inner service is ready (poll_ready passed); the clone serves the retries.
        let retries = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, retries);
        BackoffRetryFuture::new(inner, Arc::clone(&self.state), target, start, self.refresh)
    }
}
