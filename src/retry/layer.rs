use tower::Layer;

use super::Backoff;
use crate::backoff::ExponentialBackoff;

/// Applies [`Backoff`] to a connection service. The layer only clones the policy's
/// settings; each wrapped service keeps its own state.
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::{BackoffLayer, ExponentialBackoff, TungsteniteConnector};
///
/// let policy = ExponentialBackoff::builder()
///     .initial_interval(Duration::from_millis(100))
///     .max_elapsed_time(Some(Duration::from_secs(30)))
///     .build()?;
/// let service = tower::ServiceBuilder::new()
///     .layer(BackoffLayer::new(policy))
///     .service(TungsteniteConnector::default());
/// assert_eq!(service.policy().initial_interval(), Duration::from_millis(100));
/// # Ok::<(), ws_reconnect::InvalidBackoff>(())
/// ```
#[derive(Debug, Clone)]
pub struct BackoffLayer {
    policy: ExponentialBackoff,
}

impl BackoffLayer {
    /// A layer retrying with `policy`.
    pub const fn new(policy: ExponentialBackoff) -> Self {
        BackoffLayer { policy }
    }
}

impl<S> Layer<S> for BackoffLayer {
    type Service = Backoff<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Backoff::new(inner, self.policy.clone())
    }
}
