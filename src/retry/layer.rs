use tower::Layer;

use super::BackoffRetry;
use crate::backoff::ExponentialBackoff;

/// Applies [`BackoffRetry`] to a connection service. The layer only clones the policy's
/// settings; each wrapped service keeps its own state.
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::{BackoffRetryLayer, ExponentialBackoff, TungsteniteConnector};
///
/// let policy = ExponentialBackoff::builder()
///     .initial_interval(Duration::from_millis(100))
///     .max_elapsed_time(Some(Duration::from_secs(30)))
///     .build()?;
/// let service = tower::ServiceBuilder::new()
///     .layer(BackoffRetryLayer::new(policy))
///     .service(TungsteniteConnector::default());
/// assert_eq!(service.policy().initial_interval(), Duration::from_millis(100));
/// # Ok::<(), ws_reconnect::InvalidBackoff>(())
/// ```
#[derive(Debug, Clone)]
pub struct BackoffRetryLayer {
    policy: ExponentialBackoff,
}

impl BackoffRetryLayer {
    /// A layer retrying with `policy`.
    pub const fn new(policy: ExponentialBackoff) -> Self {
        BackoffRetryLayer { policy }
    }
}

impl<S> Layer<S> for BackoffRetryLayer {
    type Service = BackoffRetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BackoffRetry::new(inner, self.policy.clone())
    }
}
