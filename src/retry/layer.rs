use tower::Layer;

use super::policy::RefreshOnUnauthorized;
use super::{BackoffPolicy, BackoffRetry};
use crate::backoff::ExponentialBackoff;

/// Applies [`BackoffRetry`] to a connection service. The layer only clones the policy;
/// each wrapped service keeps its own state. Any [`BackoffPolicy`] fits; the
/// [`ExponentialBackoff`] is the default.
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
pub struct BackoffRetryLayer<P = ExponentialBackoff> {
    policy: P,
    refresh: RefreshOnUnauthorized,
}

impl<P> BackoffRetryLayer<P> {
    /// A layer retrying with `policy`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::{BackoffRetryLayer, IterBackoff};
    ///
    /// let layer = BackoffRetryLayer::new(IterBackoff::new(|| {
    ///     std::iter::repeat(Duration::from_millis(500)).take(10)
    /// }));
    /// # let _ = layer;
    /// ```
    pub const fn new(policy: P) -> Self {
        BackoffRetryLayer {
            policy,
            refresh: RefreshOnUnauthorized::new(0),
        }
    }

    /// Retries a 401 or 403 refusal of a reconnection up to `max_tries` times per
    /// reconnection run, with the request its hook rebuilds; a first dial is not covered.
    /// See [`BackoffRetry::refresh_on_unauthorized`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::{BackoffRetryLayer, ExponentialBackoff, TungsteniteConnector};
    ///
    /// let service = tower::ServiceBuilder::new()
    ///     .layer(BackoffRetryLayer::new(ExponentialBackoff::default()).refresh_on_unauthorized(1))
    ///     .timeout(Duration::from_secs(10))
    ///     .service(TungsteniteConnector::default());
    /// # let _ = service;
    /// ```
    pub const fn refresh_on_unauthorized(mut self, max_tries: u32) -> Self {
        self.refresh = RefreshOnUnauthorized::new(max_tries);
        self
    }
}

impl<S, P: BackoffPolicy> Layer<S> for BackoffRetryLayer<P> {
    type Service = BackoffRetry<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        let mut service = BackoffRetry::new(inner, self.policy.clone());
        service.refresh = self.refresh;
        service
    }
}
