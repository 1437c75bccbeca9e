//! Retries a connection attempt with exponential backoff.
//!
//! [`BackoffRetry`] wraps a connection service. The first attempt is immediate; after a
//! retryable failure it waits the policy's next delay (or the server's `Retry-After`,
//! if longer, capped by `max_interval`) and tries again. It stops at a permanent error,
//! returned as it is, or when the policy runs out, returning [`Error::GaveUp`] with the
//! last failure as its source.
//!
//! # Why not `tower::retry::Policy`
//! tower's `Retry` hands back the inner service's last error unchanged and clones a
//! fresh policy per request. We need two things it cannot give: a distinct
//! [`Error::GaveUp`] (with attempts and elapsed time) so a caller can tell "the policy ran
//! out" from "this one attempt failed", and a policy that lives *across* calls, so that a
//! server which accepts and drops at once meets growing delays instead of an immediate
//! reconnection every time. The [`Target`] says when to start over
//! ([`Target::resets_backoff`]): on a first dial and after a connection that proved healthy.
//!
//! ```
//! use ws_reconnect::{BackoffRetryLayer, ExponentialBackoff, TungsteniteConnector};
//!
//! let service = tower::ServiceBuilder::new()
//!     .layer(BackoffRetryLayer::new(ExponentialBackoff::default()))
//!     .service(TungsteniteConnector::default());
//! # let _ = service;
//! ```

mod future;
mod layer;

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tower::Service;

pub use self::future::ResponseFuture;
use self::future::Start;
pub use self::layer::BackoffRetryLayer;
use crate::backoff::ExponentialBackoff;
use crate::error::{BoxError, Error};
use crate::target::Target;

/// Retries the inner connection service with an [`ExponentialBackoff`]; see the
/// [module docs](self).
///
/// Each `BackoffRetry` keeps its own policy state across calls; a clone starts fresh.
///
/// ```
/// use ws_reconnect::{BackoffRetry, ExponentialBackoff, TungsteniteConnector};
/// let service = BackoffRetry::new(TungsteniteConnector::default(), ExponentialBackoff::default());
/// assert_eq!(service.policy().multiplier(), 2.0);
/// ```
#[derive(Debug)]
pub struct BackoffRetry<S> {
    inner: S,
    policy: ExponentialBackoff,
    state: Arc<Mutex<ExponentialBackoff>>,
}

/// Deprecated: renamed [`BackoffRetry`]: it is the retrying service, not a backoff
/// policy (that is [`ExponentialBackoff`]).
#[deprecated(since = "0.2.0", note = "renamed `BackoffRetry`")]
pub type Backoff<S> = BackoffRetry<S>;

/// Deprecated: renamed [`BackoffRetryLayer`].
#[deprecated(since = "0.2.0", note = "renamed `BackoffRetryLayer`")]
pub type BackoffLayer = BackoffRetryLayer;

impl<S: Clone> Clone for BackoffRetry<S> {
    fn clone(&self) -> Self {
        BackoffRetry::new(self.inner.clone(), self.policy.clone())
    }
}

impl<S> BackoffRetry<S> {
    /// Wraps `inner`, retrying with `policy`.
    pub fn new(inner: S, policy: ExponentialBackoff) -> Self {
        BackoffRetry {
            inner,
            state: Arc::new(Mutex::new(policy.clone())),
            policy,
        }
    }

    /// The policy's settings.
    pub fn policy(&self) -> &ExponentialBackoff {
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

impl<S> Service<Target> for BackoffRetry<S>
where
    S: Service<Target> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::from_boxed(e.into()))
    }

    fn call(&mut self, target: Target) -> Self::Future {
        let mut policy = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let start = if target.resets_backoff() {
            policy.reset();
            Start::Now
        } else {
            // The last connection dropped before it proved healthy: wait before this
            // attempt too, growing the delay, or give up if the policy has run out.
            policy.next_delay().map_or(Start::Exhausted, Start::After)
        };
        drop(policy);
        // The inner service is ready (poll_ready passed); the clone serves the retries.
        let retries = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, retries);
        ResponseFuture::new(inner, Arc::clone(&self.state), target, start)
    }
}
