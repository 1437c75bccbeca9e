//! `cargo run --example custom_backoff`: two backoff policies of your own, a constant
//! delay and decorrelated jitter, and how they go into a connection stack.
//!
//! Nothing here touches the network: it prints the first delays of each policy.
//! tests/policy runs these same policies through `BackoffRetry`.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use ws_reconnect::TungsteniteConnector;
use ws_reconnect::{BackoffPolicy, BackoffRetryLayer, IterBackoff};

/// The same delay before every retry; after `max_retries` retries in a row without a
/// healthy connection (if set), it stops and the caller gets `Error::GaveUp`.
#[derive(Debug, Clone)]
pub struct Constant {
    delay: Duration,
    max_retries: Option<u32>,
    retries: u32,
}

impl Constant {
    /// Retries every `delay`, forever.
    pub fn new(delay: Duration) -> Self {
        Constant {
            delay,
            max_retries: None,
            retries: 0,
        }
    }

    /// Stops after `n` retries in a row.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }
}

impl BackoffPolicy for Constant {
    fn next_delay(&mut self) -> Option<Duration> {
        if self.max_retries.is_some_and(|max| self.retries >= max) {
            return None;
        }
        self.retries += 1;
        Some(self.delay)
    }

    fn reset(&mut self) {
        self.retries = 0;
    }
}

/// Decorrelated jitter, from the AWS Architecture Blog's "Exponential Backoff and
/// Jitter": `sleep = min(cap, random_between(base, sleep * 3))`, starting from
/// `sleep = base`, in whole milliseconds. Each delay grows from the last one drawn
/// rather than from an attempt count, which spreads out clients that failed together.
/// It never gives up.
#[derive(Debug, Clone)]
pub struct DecorrelatedJitter {
    base_ms: u64,
    cap_ms: u64,
    sleep_ms: u64,
    rng: SmallRng,
}

impl DecorrelatedJitter {
    /// Delays between `base` (at least 1 ms, so they can grow) and `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self::with_rng(base, cap, SmallRng::from_os_rng())
    }

    /// The same, with reproducible delays (a clone draws the same ones too).
    pub fn seeded(base: Duration, cap: Duration, seed: u64) -> Self {
        Self::with_rng(base, cap, SmallRng::seed_from_u64(seed))
    }

    fn with_rng(base: Duration, cap: Duration, rng: SmallRng) -> Self {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let base_ms = millis(base).max(1);
        DecorrelatedJitter {
            base_ms,
            cap_ms: millis(cap).max(base_ms),
            sleep_ms: base_ms,
            rng,
        }
    }
}

impl BackoffPolicy for DecorrelatedJitter {
    fn next_delay(&mut self) -> Option<Duration> {
        let upper = self.sleep_ms.saturating_mul(3);
        self.sleep_ms = self.rng.random_range(self.base_ms..=upper).min(self.cap_ms);
        Some(Duration::from_millis(self.sleep_ms))
    }

    fn reset(&mut self) {
        self.sleep_ms = self.base_ms;
    }

    /// A server's `Retry-After` is honoured up to the cap.
    fn max_retry_after(&self) -> Duration {
        Duration::from_millis(self.cap_ms)
    }
}

/// The first `n` delays of `policy` (fewer if it stops), in milliseconds.
fn first_delays(mut policy: impl BackoffPolicy, n: usize) -> Vec<String> {
    (0..n)
        .map_while(|_| policy.next_delay())
        .map(|d| format!("{}ms", d.as_millis()))
        .collect()
}

fn main() {
    let ms = Duration::from_millis;

    let constant = Constant::new(ms(500)).max_retries(4);
    println!(
        "constant 500 ms, 4 retries: {:?} then gives up",
        first_delays(constant.clone(), 10)
    );

    let jitter = DecorrelatedJitter::new(ms(100), Duration::from_secs(10));
    println!(
        "decorrelated jitter 100 ms..10 s: {:?}",
        first_delays(jitter.clone(), 10)
    );

    let schedule = IterBackoff::new(move || [ms(100), ms(1000), ms(5000)].into_iter());
    println!(
        "a fixed schedule (IterBackoff): {:?} then gives up",
        first_delays(schedule, 10)
    );

    // Each goes where the ExponentialBackoff would; a ReconnectingSink takes the stack
    // with ReconnectingSink::new.
    let _stack = tower::ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(jitter))
        .timeout(Duration::from_secs(10))
        .service(TungsteniteConnector::default());
    let _stack = tower::ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(constant))
        .service(TungsteniteConnector::default());
}
