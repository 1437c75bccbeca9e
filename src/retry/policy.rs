//! What [`BackoffRetry`](super::BackoffRetry) asks of a backoff policy, the two
//! policies the crate ships ([`ExponentialBackoff`] and [`IterBackoff`]), and the rule
//! that retries a refused token on a reconnection.

use std::fmt;
use std::time::Duration;

use crate::backoff::ExponentialBackoff;
use crate::error::Error;
use crate::request::{is_unauthorized, DialKind};

/// A backoff policy: the delays [`BackoffRetry`](super::BackoffRetry) waits between
/// connection attempts.
///
/// The service keeps one policy across calls. It calls [`reset`](Self::reset) when a
/// run starts over (a first dial, or a reconnection after a connection that proved
/// healthy) and [`next_delay`](Self::next_delay) before every retry, including the
/// first attempt of a reconnection after a connection that dropped before it proved
/// healthy. `None` stops the run: the call ends with
/// [`Error::GaveUp`](crate::Error::GaveUp), whose `elapsed` the service measures
/// itself from the last reset, so a policy needs no clock of its own.
///
/// A policy is `Clone`, because a layer gives each service it wraps its own copy and
/// a clone of the service starts fresh, and `Send`, because services and their
/// futures move between tasks.
///
/// [`ExponentialBackoff`] is the crate's default; [`IterBackoff`] adapts any iterator
/// of delays (such as another crate's backoff). Writing one is short: a constant
/// delay, given up after a number of retries:
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::BackoffPolicy;
///
/// #[derive(Debug, Clone)]
/// struct Constant {
///     delay: Duration,
///     max_retries: u32,
///     retries: u32,
/// }
///
/// impl BackoffPolicy for Constant {
///     fn next_delay(&mut self) -> Option<Duration> {
///         self.retries += 1;
///         (self.retries <= self.max_retries).then_some(self.delay)
///     }
///
///     fn reset(&mut self) {
///         self.retries = 0;
///     }
/// }
///
/// let mut policy = Constant { delay: Duration::from_millis(250), max_retries: 2, retries: 0 };
/// assert_eq!(policy.next_delay(), Some(Duration::from_millis(250)));
/// assert_eq!(policy.next_delay(), Some(Duration::from_millis(250)));
/// assert_eq!(policy.next_delay(), None); // the caller gets Error::GaveUp
/// policy.reset();
/// assert_eq!(policy.next_delay(), Some(Duration::from_millis(250)));
///
/// // In a connection stack, in place of ExponentialBackoff:
/// let service = tower::ServiceBuilder::new()
///     .layer(ws_reconnect::BackoffRetryLayer::new(policy))
///     .service(ws_reconnect::TungsteniteConnector::default());
/// # let _ = service;
/// ```
///
/// `examples/custom_backoff.rs` has this policy and decorrelated jitter.
pub trait BackoffPolicy: Clone + Send {
    /// The delay before the next attempt, or `None` to stop retrying: the call then
    /// fails with [`Error::GaveUp`](crate::Error::GaveUp), the last failure as its
    /// source. A zero delay retries at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::{BackoffPolicy, ExponentialBackoff};
    ///
    /// let mut policy = ExponentialBackoff::builder().randomization_factor(0.0).build()?;
    /// assert_eq!(BackoffPolicy::next_delay(&mut policy), Some(Duration::from_secs(1)));
    /// # Ok::<(), ws_reconnect::InvalidBackoff>(())
    /// ```
    fn next_delay(&mut self) -> Option<Duration>;

    /// Starts over: the next delay is the first one again. Called on a first dial and
    /// before a reconnection that follows a connection that proved healthy.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::{BackoffPolicy, ExponentialBackoff};
    ///
    /// let mut policy = ExponentialBackoff::builder().randomization_factor(0.0).build()?;
    /// BackoffPolicy::next_delay(&mut policy);
    /// BackoffPolicy::reset(&mut policy);
    /// assert_eq!(BackoffPolicy::next_delay(&mut policy), Some(Duration::from_secs(1)));
    /// # Ok::<(), ws_reconnect::InvalidBackoff>(())
    /// ```
    fn reset(&mut self);

    /// The longest a server's `Retry-After` (on a 429 or 503) may make the next attempt
    /// wait. The wait is the longer of the policy's delay and the server's, the
    /// server's capped by this. Default: 5 minutes, the default `max_interval` of
    /// [`ExponentialBackoff`], which returns its own `max_interval`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::{BackoffPolicy, ExponentialBackoff};
    ///
    /// let policy = ExponentialBackoff::builder().max_interval(Duration::from_secs(30)).build()?;
    /// assert_eq!(policy.max_retry_after(), Duration::from_secs(30));
    /// # Ok::<(), ws_reconnect::InvalidBackoff>(())
    /// ```
    fn max_retry_after(&self) -> Duration {
        ExponentialBackoff::DEFAULT_MAX_INTERVAL
    }
}

/// The classic exponential backoff; `max_retry_after` is its `max_interval`.
impl BackoffPolicy for ExponentialBackoff {
    fn next_delay(&mut self) -> Option<Duration> {
        ExponentialBackoff::next_delay(self)
    }

    fn reset(&mut self) {
        ExponentialBackoff::reset(self)
    }

    fn max_retry_after(&self) -> Duration {
        self.max_interval()
    }
}

/// A policy that takes its delays from an iterator, made afresh by `make` at every
/// [`reset`](BackoffPolicy::reset): the iterator's end stops the retries.
///
/// Any iterator of [`Duration`]s fits: a fixed schedule, or the backoff of another
/// crate whose backoffs are iterators (`backon`'s builders, for instance:
/// `IterBackoff::new(|| ExponentialBuilder::default().with_jitter().build())`).
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::{BackoffPolicy, IterBackoff};
///
/// let ms = Duration::from_millis;
/// let mut policy = IterBackoff::new(move || [ms(100), ms(500), ms(2000)].into_iter());
/// assert_eq!(policy.next_delay(), Some(ms(100)));
/// assert_eq!(policy.next_delay(), Some(ms(500)));
/// assert_eq!(policy.next_delay(), Some(ms(2000)));
/// assert_eq!(policy.next_delay(), None); // the caller gets Error::GaveUp
/// policy.reset();
/// assert_eq!(policy.next_delay(), Some(ms(100)));
///
/// let service = tower::ServiceBuilder::new()
///     .layer(ws_reconnect::BackoffRetryLayer::new(policy))
///     .service(ws_reconnect::TungsteniteConnector::default());
/// # let _ = service;
/// ```
pub struct IterBackoff<F, I> {
    make: F,
    delays: I,
}

impl<F, I> IterBackoff<F, I>
where
    F: Fn() -> I,
    I: Iterator<Item = Duration>,
{
    /// A policy whose delays are those of `make()`'s iterator, restarted by each reset.
    /// A server's `Retry-After` is honoured up to the trait's default, 5 minutes (a
    /// policy of your own can choose another cap).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::{BackoffPolicy, IterBackoff};
    ///
    /// // Forever one second apart.
    /// let mut policy = IterBackoff::new(|| std::iter::repeat(Duration::from_secs(1)));
    /// assert_eq!(policy.next_delay(), Some(Duration::from_secs(1)));
    /// ```
    pub fn new(make: F) -> Self {
        let delays = make();
        IterBackoff { make, delays }
    }
}

/// A clone starts from the beginning of a fresh iterator.
impl<F, I> Clone for IterBackoff<F, I>
where
    F: Fn() -> I + Clone,
    I: Iterator<Item = Duration>,
{
    fn clone(&self) -> Self {
        IterBackoff {
            make: self.make.clone(),
            delays: (self.make)(),
        }
    }
}

impl<F, I> fmt::Debug for IterBackoff<F, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IterBackoff").finish_non_exhaustive()
    }
}

impl<F, I> BackoffPolicy for IterBackoff<F, I>
where
    F: Fn() -> I + Clone + Send,
    I: Iterator<Item = Duration> + Send,
{
    fn next_delay(&mut self) -> Option<Duration> {
        self.delays.next()
    }

    fn reset(&mut self) {
        self.delays = (self.make)();
    }
}

/// Which refusals of the credentials (401 Unauthorized, 403 Forbidden) a
/// [`BackoffRetry`](super::BackoffRetry) retries although the status policy calls them
/// permanent: those of a reconnection, at most `max_tries` per run. A first dial is never
/// covered: credentials wrong from the start do not get better by retrying.
///
/// Why a reconnection differs: the request worked when the connection was opened, so a
/// refusal now most likely means the server rotated its credentials while the connection
/// was up, and the request hook can fetch fresh ones for the next attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct RefreshOnUnauthorized {
    max_tries: u32,
}

impl RefreshOnUnauthorized {
    /// Retries up to `max_tries` refusals per reconnection run; 0 retries none.
    pub(super) const fn new(max_tries: u32) -> Self {
        RefreshOnUnauthorized { max_tries }
    }

    /// Whether `failure`, which the status policy calls permanent, is retried anyway:
    /// a 401 or 403 refusal of a reconnection, when fewer than `max_tries` such refusals
    /// were retried in this run (`retried`).
    pub(super) fn retries(&self, failure: &Error, kind: DialKind, retried: u32) -> bool {
        kind == DialKind::Reconnect && retried < self.max_tries && is_unauthorized(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16) -> Error {
        Error::Rejected {
            status: http::StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            retryable: false,
        }
    }

    #[test]
    fn a_refused_token_is_retried_on_a_reconnection_only_and_up_to_max_tries() {
        let rule = RefreshOnUnauthorized::new(2);
        for status in [401, 403] {
            let failure = rejected(status);
            assert!(rule.retries(&failure, DialKind::Reconnect, 0), "{status}");
            assert!(rule.retries(&failure, DialKind::Reconnect, 1), "{status}");
            assert!(!rule.retries(&failure, DialKind::Reconnect, 2), "{status}");
            assert!(!rule.retries(&failure, DialKind::First, 0), "{status}");
        }
        for other in [rejected(400), rejected(404), Error::NotDialed] {
            assert!(!rule.retries(&other, DialKind::Reconnect, 0), "{other:?}");
        }
        let off = RefreshOnUnauthorized::default();
        assert!(!off.retries(&rejected(401), DialKind::Reconnect, 0));
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn the_exponential_backoff_caps_retry_after_at_its_max_interval() {
        let policy = ExponentialBackoff::builder()
            .initial_interval(ms(10))
            .max_interval(ms(700))
            .build()
            .unwrap();
        assert_eq!(BackoffPolicy::max_retry_after(&policy), ms(700));
    }

    #[test]
    fn an_iterator_policy_ends_with_its_iterator_and_restarts_on_reset_and_clone() {
        let mut policy = IterBackoff::new(|| (1..=2).map(ms));
        assert_eq!(policy.next_delay(), Some(ms(1)));
        let mut fresh = policy.clone();
        assert_eq!(policy.next_delay(), Some(ms(2)));
        assert_eq!(policy.next_delay(), None);
        assert_eq!(fresh.next_delay(), Some(ms(1)));
        policy.reset();
        assert_eq!(policy.next_delay(), Some(ms(1)));
        assert_eq!(
            BackoffPolicy::max_retry_after(&policy),
            ExponentialBackoff::DEFAULT_MAX_INTERVAL
        );
    }
}
