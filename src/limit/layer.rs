use std::time::Duration;

use tower::Layer;

use super::{ReconnectBudget, ReconnectLimit};

/// Applies [`ReconnectLimit`] to a connection service.
///
/// [`new`](Self::new) gives every service it wraps a budget of its own, like tower's
/// rate limit; [`with_budget`](Self::with_budget) makes them all share one.
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceBuilder;
/// use ws_reconnect::{ReconnectLimitLayer, TungsteniteConnector};
///
/// let service = ServiceBuilder::new()
///     .layer(ReconnectLimitLayer::new(10, Duration::from_secs(3600)))
///     .service(TungsteniteConnector::default());
/// assert_eq!(service.budget().max_total(), 10);
/// ```
#[derive(Debug, Clone)]
pub struct ReconnectLimitLayer {
    budget: Allotment,
}

#[derive(Debug, Clone)]
enum Allotment {
    PerService { max_total: usize, window: Duration },
    Shared(ReconnectBudget),
}

impl ReconnectLimitLayer {
    /// Each wrapped service gets its own budget of `max_total` reconnections per `window`.
    pub const fn new(max_total: usize, window: Duration) -> Self {
        ReconnectLimitLayer {
            budget: Allotment::PerService { max_total, window },
        }
    }

    /// Every wrapped service draws from one shared `budget`.
    pub const fn with_budget(limiter: ReconnectBudget) -> Self {
        ReconnectLimitLayer {
            budget: Allotment::Shared(limiter),
        }
    }
}

impl<S> Layer<S> for ReconnectLimitLayer {
    type Service = ReconnectLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        let limiter = match &self.budget {
            Allotment::PerService { max_total, window } => {
                ReconnectBudget::new(*max_total, *window)
            }
            Allotment::Shared(limiter) => limiter.clone(),
        };
        ReconnectLimit::new(inner, limiter)
    }
}
