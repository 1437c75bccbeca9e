//! The connection layers, alone and composed: the connector, the backoff-retry layer
//! with its policies, and the reconnect-limit layer, in tower stacks of their own (the
//! sink's use of them is in `tests/reconnection`).
//!
//! | file | what it holds |
//! |---|---|
//! | `connector.rs` | the default connector and the documented composition; invalid URLs |
//! | `retry.rs` | the backoff-retry layer over sockets and in paused time: delays, `Retry-After`, permanent errors, `max_elapsed_time`, healthy and unhealthy reconnections, tower's timeout |
//! | `policy.rs` | backoff policies of one's own (`examples/custom_backoff.rs`, `IterBackoff`) through `BackoffRetry` and a sink |
//! | `limit.rs` | the reconnect-limit layer: the sliding window, a shared budget, a zero limit, one count per reconnection |
//!
//! Here: the scripted services and small constructors the files share.

#[path = "../../examples/custom_backoff.rs"]
#[allow(dead_code)]
mod custom_backoff;
#[path = "../support/mod.rs"]
mod support;

mod connector;
mod limit;
mod policy;
mod retry;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::timeout;
use tower::Service;
use ws_reconnect::{
    BackoffRetry, BackoffRetryLayer, Error, ExponentialBackoff, ReconnectLimitLayer, Target,
    TungsteniteConnector,
};

use support::BOUND;

/// A backoff without randomization: 20 ms, growing by 1.5, at most 5 s.
fn fast_backoff(max_elapsed: Option<Duration>) -> ExponentialBackoff {
    ExponentialBackoff::builder()
        .initial_interval(Duration::from_millis(20))
        .randomization_factor(0.0)
        .multiplier(1.5)
        .max_interval(Duration::from_secs(5))
        .max_elapsed_time(max_elapsed)
        .build()
        .unwrap()
}

/// The target for `url`, which must be valid.
fn target(url: &str) -> Target {
    Target::new(url).unwrap()
}

/// One call of `make` for `target`, bounded by [`BOUND`].
async fn dial<S>(make: &mut S, target: Target) -> Result<S::Response, S::Error>
where
    S: Service<Target>,
{
    timeout(BOUND, make.call(target))
        .await
        .expect("the dial hung")
}

/// `Layer::layer` as a method of the backoff-retry layer.
trait LayerOn {
    fn layer_on<S>(self, s: S) -> ws_reconnect::BackoffRetry<S>;
}
impl LayerOn for BackoffRetryLayer {
    fn layer_on<S>(self, s: S) -> ws_reconnect::BackoffRetry<S> {
        tower::Layer::layer(&self, s)
    }
}

// ---- paused time, no sockets -------------------------------------------------------

/// A connection factory that fails `fail_first` times with a retryable error, then
/// succeeds with the attempt number; counts calls.
fn scripted(
    fail_first: u32,
    error: fn() -> Error,
) -> (
    impl Service<
            Target,
            Response = u32,
            Error = Error,
            Future = impl std::future::Future<Output = Result<u32, Error>> + Send,
        > + Clone,
    Arc<AtomicU32>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let svc = tower::service_fn(move |t: Target| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < fail_first {
                Err(error())
            } else {
                Ok(t.attempt())
            }
        }
    });
    (svc, calls)
}

/// A retryable failure: the connection was refused.
fn refused() -> Error {
    Error::Transport(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into())
}

/// `Layer::layer` as a method of the reconnect-limit layer.
trait LimitOn {
    fn layer_on_limit<S>(self, s: S) -> ws_reconnect::ReconnectLimit<S>;
}
impl LimitOn for ReconnectLimitLayer {
    fn layer_on_limit<S>(self, s: S) -> ws_reconnect::ReconnectLimit<S> {
        tower::Layer::layer(&self, s)
    }
}

/// The default connector behind a backoff-retry layer with [`fast_backoff`].
fn retrying(max_elapsed: Option<Duration>) -> BackoffRetry<TungsteniteConnector> {
    BackoffRetryLayer::new(fast_backoff(max_elapsed)).layer_on(TungsteniteConnector::default())
}
