use std::time::Duration;

use tower::Layer;

use super::{ReconnectLimit, ReconnectLimiter};

/// Applies [`ReconnectLimit`] to a connection service.
///
/// [`new`](Self::new) gives every service it wraps a budget of its own, like tower's
/// rate limit; [`with_limiter`](Self::with_limiter) makes them all share one.
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceBuilder;
/// use ws_reconnect::{ReconnectLimitLayer, TungsteniteConnector};
///
/// let service = ServiceBuilder::new()
///     .layer(ReconnectLimitLayer::new(10, Duration::from_secs(3600)))
///     .service(TungsteniteConnector::default());
/// assert_eq!(service.limiter().max_total(), 10);
/// ```
#[derive(Debug, Clone)]
pub struct ReconnectLimitLayer {
    budget: Budget,
}

#[derive(Debug, Clone)]
enum Budget {
    PerService { max_total: usize, window: Duration },
    Shared(ReconnectLimiter),
}

impl ReconnectLimitLayer {
    /// Each wrapped service gets its own budget of `max_total` reconnections per `window`.
    pub const fn new(max_total: usize, window: Duration) -> Self {
        ReconnectLimitLayer {
            budget: Budget::PerService { max_total, window },
        }
    }

    /// Every wrapped service draws from `limiter`'s shared budget.
    pub const fn with_limiter(limiter: ReconnectLimiter) -> Self {
        ReconnectLimitLayer {
            budget: Budget::Shared(limiter),
        }
    }
}

impl<S> Layer<S> for ReconnectLimitLayer {
    type Service = ReconnectLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let limiter = match &self.budget {
            Budget::PerService { max_total, window } => ReconnectLimiter::new(*max_total, *window),
            Budget::Shared(limiter) => limiter.clone(),
        };
        ReconnectLimit::new(inner, limiter)
    }
}
