//! The reconnect limiter: at most `max_total` reconnections within any sliding `window`.

pub(crate) mod budget;
mod future;
mod layer;
pub(crate) mod window;

use std::task::{Context, Poll};

use tower::Service;

pub use self::budget::ReconnectBudget;
pub use self::future::ReconnectLimitFuture;
pub use self::layer::ReconnectLimitLayer;
use crate::error::{BoxError, Error};
use crate::request::{DialKind, Target};

/// Limits the reconnections passing through the inner connection service.
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::{ReconnectLimit, ReconnectBudget, TungsteniteConnector};
///
/// let service = ReconnectLimit::new(
///     TungsteniteConnector::default(),
///     ReconnectBudget::new(10, Duration::from_secs(3600)),
/// );
/// assert!(service.budget().can_connect());
/// ```
///
/// [`ReconnectLimit`] wraps a connection service. A call whose [`Target`] is a
/// reconnection ([`DialKind::Reconnect`]) and the first attempt of its backoff run takes a
/// slot in the window; when the window is full the call fails at once with
/// [`Error::TooManyReconnects`], which says when a slot frees. First dials and the
/// backoff's retries are never counted, so one reconnection counts once however many
/// attempts it takes, whichever order the layers are stacked in.
///
/// The budget lives in a [`ReconnectBudget`] handle. Cloning it shares the budget, so
/// many connections of one process can draw from one: a server restart that drops them
/// all cannot turn into a reconnect storm beyond what the budget allows.
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::{ReconnectLimitLayer, ReconnectBudget};
///
/// // Shared by every connection built with this layer.
/// let limiter = ReconnectBudget::new(100, Duration::from_secs(60));
/// let layer = ReconnectLimitLayer::with_budget(limiter.clone());
/// assert!(limiter.can_connect());
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct ReconnectLimit<S> {
    inner: S,
    limiter: ReconnectBudget,
}

impl<S> ReconnectLimit<S> {
    /// Wraps `inner`, drawing from `limiter`'s budget.
    pub const fn new(inner: S, limiter: ReconnectBudget) -> Self {
        ReconnectLimit { inner, limiter }
    }

    /// The budget this service draws from.
    pub fn budget(&self) -> &ReconnectBudget {
        &self.limiter
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

impl<S> Service<Target> for ReconnectLimit<S>
where
    S: Service<Target>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ReconnectLimitFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Refusals happen in `call`, with a typed error; readiness is the inner service's.
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::from_boxed(e.into()))
    }

    fn call(&mut self, target: Target) -> Self::Future {
        target.offer_budget(&self.limiter);
        if target.kind() == DialKind::Reconnect && target.attempt() == 0 {
            if let Err(err) = self.limiter.try_acquire() {
                tracing::warn!(error = %err, "reconnection refused by the limiter");
                return ReconnectLimitFuture::refused(err);
            }
        }
        ReconnectLimitFuture::called(self.inner.call(target))
    }
}
