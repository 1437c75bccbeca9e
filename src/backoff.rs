//! The exponential backoff policy: a pure value that yields the delays between attempts.

use std::fmt;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// A bad backoff setting, reported by [`ExponentialBackoffBuilder::build`].
///
/// ```
/// use ws_reconnect::{ExponentialBackoff, InvalidBackoff};
///
/// let err = ExponentialBackoff::builder().multiplier(0.5).build().unwrap_err();
/// assert_eq!(err, InvalidBackoff::Multiplier(0.5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum InvalidBackoff {
    /// The randomization factor must be a number in `[0, 1]`.
    RandomizationFactor(f64),
    /// The multiplier must be a finite number `>= 1`.
    Multiplier(f64),
    /// `max_interval` must be positive: zero would retry back to back forever.
    ZeroMaxInterval,
    /// `max_interval` must not be shorter than `initial_interval`.
    MaxInterval {
        /// The initial interval given.
        initial: Duration,
        /// The maximum interval given.
        max: Duration,
    },
}

impl fmt::Display for InvalidBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidBackoff::RandomizationFactor(v) => {
                write!(f, "randomization_factor must be within [0, 1], got {v}")
            }
            InvalidBackoff::Multiplier(v) => {
                write!(f, "multiplier must be a finite number >= 1, got {v}")
            }
            InvalidBackoff::ZeroMaxInterval => {
                f.write_str("max_interval must be positive: zero would retry back to back forever")
            }
            InvalidBackoff::MaxInterval { initial, max } => write!(
                f,
                "max_interval ({max:?}) must not be shorter than initial_interval ({initial:?})"
            ),
        }
    }
}

impl std::error::Error for InvalidBackoff {}

/// Where the randomization comes from: the thread's generator, or a seeded one for
/// reproducible tests.
#[derive(Clone, Debug)]
enum Jitter {
    Thread,
    Seeded(SmallRng),
}

impl Jitter {
    /// A number in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        match self {
            Jitter::Thread => rand::rng().random::<f64>(),
            Jitter::Seeded(rng) => rng.random::<f64>(),
        }
    }
}

/// The exponential backoff policy.
///
/// Build it with [`ExponentialBackoff::builder`] (settings are validated) or take the
/// [`Default`]: 1 s initial interval, randomization 0.5, multiplier 2, 5 min cap, and no
/// elapsed-time limit. It is an [`Iterator`] of delays as well.
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::ExponentialBackoff;
///
/// let mut policy = ExponentialBackoff::default();
/// let first = policy.next_delay().unwrap();
/// assert!(first >= Duration::from_millis(500) && first <= Duration::from_millis(1500));
/// ```
///
/// This is the classic exponential backoff: delay `n` is
/// drawn uniformly from `[i·(1−f), i·(1+f)]` where `i = min(initial·multiplierⁿ, max)`
/// and `f` is the randomization factor. A delay is given only while the time since the
/// start (or the last [`reset`](ExponentialBackoff::reset)) plus that delay stays within
/// `max_elapsed_time`; after that the policy yields `None` and the caller gives up.
///
/// Time is read from [`tokio::time::Instant`], so tests can pause and advance it.
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::ExponentialBackoff;
///
/// let mut policy = ExponentialBackoff::builder()
///     .initial_interval(Duration::from_millis(100))
///     .randomization_factor(0.0)
///     .multiplier(2.0)
///     .max_interval(Duration::from_millis(300))
///     .build()?;
/// let delays: Vec<_> = policy.by_ref().take(4).collect();
/// assert_eq!(delays, [100, 200, 300, 300].map(Duration::from_millis));
/// # Ok::<(), ws_reconnect::InvalidBackoff>(())
/// ```
#[derive(Clone, Debug)]
pub struct ExponentialBackoff {
    initial_interval: Duration,
    randomization_factor: f64,
    multiplier: f64,
    max_interval: Duration,
    max_elapsed_time: Option<Duration>,
    current_interval: Duration,
    start: Instant,
    jitter: Jitter,
}

impl Default for ExponentialBackoff {
    fn default() -> Self {
        ExponentialBackoffBuilder::default().assemble()
    }
}

impl ExponentialBackoff {
    /// Default initial interval: 1 s.
    pub const DEFAULT_INITIAL_INTERVAL: Duration = Duration::from_secs(1);
    /// Default randomization factor: 0.5.
    pub const DEFAULT_RANDOMIZATION_FACTOR: f64 = 0.5;
    /// Default multiplier: 2.
    pub const DEFAULT_MULTIPLIER: f64 = 2.0;
    /// Where a zero interval grows from: with `initial_interval` 0 the first delay is 0,
    /// the next 1 ms, then 2 ms, 4 ms... (with multiplier 2).
    pub const ZERO_GROWTH_FLOOR: Duration = Duration::from_millis(1);
    /// Default maximum interval: 5 minutes.
    pub const DEFAULT_MAX_INTERVAL: Duration = Duration::from_secs(300);

    /// Starts a builder with the default settings.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::ExponentialBackoff;
    ///
    /// let policy = ExponentialBackoff::builder()
    ///     .max_elapsed_time(Some(Duration::from_secs(60)))
    ///     .build()
    ///     .expect("valid settings");
    /// assert_eq!(policy.max_elapsed_time(), Some(Duration::from_secs(60)));
    /// ```
    pub fn builder() -> ExponentialBackoffBuilder {
        ExponentialBackoffBuilder::default()
    }

    /// The next delay, or `None` once `max_elapsed_time` would be exceeded.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::ExponentialBackoff;
    ///
    /// let mut policy = ExponentialBackoff::builder()
    ///     .randomization_factor(0.0)
    ///     .build()?;
    /// assert_eq!(policy.next_delay(), Some(Duration::from_secs(1)));
    /// assert_eq!(policy.next_delay(), Some(Duration::from_secs(2)));
    /// # Ok::<(), ws_reconnect::InvalidBackoff>(())
    /// ```
    pub fn next_delay(&mut self) -> Option<Duration> {
        let interval = self.current_interval;
        let delta = interval.as_secs_f64() * self.randomization_factor;
        let low = interval.as_secs_f64() - delta;
        let delay_secs = low + 2.0 * delta * self.jitter.unit();
        let delay = secs_saturating(delay_secs);
        let grown = secs_saturating(interval.as_secs_f64() * self.multiplier);
        // A zero interval would stay zero forever (0 × multiplier): retries back to back
        // against a server that fails every attempt. The first retry stays immediate;
        // after it the interval grows from a floor.
        let grown = if grown.is_zero() {
            Self::ZERO_GROWTH_FLOOR
        } else {
            grown
        };
        self.current_interval = grown
            .min(self.max_interval)
            .max(self.initial_interval.min(self.max_interval));
        if let Some(max_elapsed) = self.max_elapsed_time {
            if self.elapsed().saturating_add(delay) > max_elapsed {
                return None;
            }
        }
        Some(delay)
    }

    /// Starts over: the next delay is drawn around `initial_interval` again, and the
    /// elapsed time counts from now.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::ExponentialBackoff;
    ///
    /// let mut policy = ExponentialBackoff::builder().randomization_factor(0.0).build()?;
    /// policy.next_delay();
    /// policy.reset();
    /// assert_eq!(policy.next_delay(), Some(Duration::from_secs(1)));
    /// # Ok::<(), ws_reconnect::InvalidBackoff>(())
    /// ```
    pub fn reset(&mut self) {
        self.current_interval = self.initial_interval;
        self.start = Instant::now();
    }

    /// Time since the policy was built or last reset.
    ///
    /// ```
    /// use ws_reconnect::ExponentialBackoff;
    /// assert!(ExponentialBackoff::default().elapsed().as_secs() < 1);
    /// ```
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The first interval.
    ///
    /// ```
    /// # use ws_reconnect::ExponentialBackoff;
    /// assert_eq!(ExponentialBackoff::default().initial_interval().as_secs(), 1);
    /// ```
    pub fn initial_interval(&self) -> Duration {
        self.initial_interval
    }

    /// The randomization factor `f`.
    ///
    /// ```
    /// # use ws_reconnect::ExponentialBackoff;
    /// assert_eq!(ExponentialBackoff::default().randomization_factor(), 0.5);
    /// ```
    pub fn randomization_factor(&self) -> f64 {
        self.randomization_factor
    }

    /// The factor the interval grows by after each delay.
    ///
    /// ```
    /// # use ws_reconnect::ExponentialBackoff;
    /// assert_eq!(ExponentialBackoff::default().multiplier(), 2.0);
    /// ```
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// The cap on the interval (a randomized delay may exceed it by the factor).
    ///
    /// ```
    /// # use ws_reconnect::ExponentialBackoff;
    /// assert_eq!(ExponentialBackoff::default().max_interval().as_secs(), 300);
    /// ```
    pub fn max_interval(&self) -> std::time::Duration {
        self.max_interval
    }

    /// The limit on the whole retry; `None` never stops.
    ///
    /// ```
    /// # use ws_reconnect::ExponentialBackoff;
    /// assert_eq!(ExponentialBackoff::default().max_elapsed_time(), None);
    /// ```
    pub fn max_elapsed_time(&self) -> Option<Duration> {
        self.max_elapsed_time
    }
}

impl Iterator for ExponentialBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.next_delay()
    }
}

/// `Duration::from_secs_f64` without its panics: negative and NaN give zero, overflow the
/// largest duration.
fn secs_saturating(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }
}

/// Builds a validated [`ExponentialBackoff`].
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::ExponentialBackoff;
///
/// let policy = ExponentialBackoff::builder()
///     .initial_interval(Duration::from_millis(50))
///     .seed(7) // reproducible jitter, for tests
///     .build()?;
/// assert_eq!(policy.initial_interval(), Duration::from_millis(50));
/// # Ok::<(), ws_reconnect::InvalidBackoff>(())
/// ```
#[derive(Clone, Debug)]
pub struct ExponentialBackoffBuilder {
    initial_interval: Duration,
    randomization_factor: f64,
    multiplier: f64,
    max_interval: Duration,
    max_elapsed_time: Option<Duration>,
    seed: Option<u64>,
}

impl Default for ExponentialBackoffBuilder {
    fn default() -> Self {
        ExponentialBackoffBuilder {
            initial_interval: ExponentialBackoff::DEFAULT_INITIAL_INTERVAL,
            randomization_factor: ExponentialBackoff::DEFAULT_RANDOMIZATION_FACTOR,
            multiplier: ExponentialBackoff::DEFAULT_MULTIPLIER,
            max_interval: ExponentialBackoff::DEFAULT_MAX_INTERVAL,
            max_elapsed_time: None,
            seed: None,
        }
    }
}

impl ExponentialBackoffBuilder {
    /// The first interval (default 1 s). Zero makes the first retry immediate; later ones
    /// grow from [`ZERO_GROWTH_FLOOR`](ExponentialBackoff::ZERO_GROWTH_FLOOR).
    pub fn initial_interval(mut self, value: Duration) -> Self {
        self.initial_interval = value;
        self
    }

    /// How far each delay may stray from its interval, as a fraction (default 0.5).
    pub fn randomization_factor(mut self, value: f64) -> Self {
        self.randomization_factor = value;
        self
    }

    /// The growth factor of the interval (default 2).
    pub fn multiplier(mut self, value: f64) -> Self {
        self.multiplier = value;
        self
    }

    /// The cap on the interval (default 5 minutes).
    pub fn max_interval(mut self, value: Duration) -> Self {
        self.max_interval = value;
        self
    }

    /// The limit on the whole retry; `None` (the default) never gives up.
    pub fn max_elapsed_time(mut self, value: Option<Duration>) -> Self {
        self.max_elapsed_time = value;
        self
    }

    /// Seeds the jitter for reproducible delays; by default the thread's generator is used.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Validates the settings.
    ///
    /// # Errors
    /// [`InvalidBackoff`] when the randomization factor is outside `[0, 1]` or NaN, the
    /// multiplier is below 1 or not finite, or `max_interval < initial_interval`.
    pub fn build(self) -> Result<ExponentialBackoff, InvalidBackoff> {
        let f = self.randomization_factor;
        if !(0.0..=1.0).contains(&f) {
            return Err(InvalidBackoff::RandomizationFactor(f));
        }
        let m = self.multiplier;
        if !(m.is_finite() && m >= 1.0) {
            return Err(InvalidBackoff::Multiplier(m));
        }
        if self.max_interval.is_zero() {
            return Err(InvalidBackoff::ZeroMaxInterval);
        }
        if self.max_interval < self.initial_interval {
            return Err(InvalidBackoff::MaxInterval {
                initial: self.initial_interval,
                max: self.max_interval,
            });
        }
        Ok(self.assemble())
    }

    fn assemble(self) -> ExponentialBackoff {
        ExponentialBackoff {
            initial_interval: self.initial_interval,
            randomization_factor: self.randomization_factor,
            multiplier: self.multiplier,
            max_interval: self.max_interval,
            max_elapsed_time: self.max_elapsed_time,
            current_interval: self.initial_interval,
            start: Instant::now(),
            jitter: match self.seed {
                Some(seed) => Jitter::Seeded(SmallRng::seed_from_u64(seed)),
                None => Jitter::Thread,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn without_randomization_delays_are_geometric_and_capped() {
        let mut p = ExponentialBackoff::builder()
            .initial_interval(ms(100))
            .randomization_factor(0.0)
            .multiplier(3.0)
            .max_interval(ms(2000))
            .build()
            .unwrap();
        let got: Vec<_> = p.by_ref().take(6).collect();
        assert_eq!(got, [100, 300, 900, 2000, 2000, 2000].map(ms));
    }

    #[test]
    fn seeded_delays_lie_in_their_intervals_and_use_the_whole_range() {
        let mut p = ExponentialBackoff::builder()
            .initial_interval(ms(1000))
            .randomization_factor(0.5)
            .multiplier(2.0)
            .max_interval(ms(8000))
            .seed(42)
            .build()
            .unwrap();
        let mut interval = 1000.0_f64;
        let (mut below, mut above) = (false, false);
        for _ in 0..200 {
            let d = p.next_delay().unwrap().as_secs_f64() * 1000.0;
            assert!(
                d >= interval * 0.5 - 1e-6 && d <= interval * 1.5 + 1e-6,
                "{d} not in [{}, {}]",
                interval * 0.5,
                interval * 1.5
            );
            below |= d < interval;
            above |= d > interval;
            interval = (interval * 2.0).min(8000.0);
        }
        assert!(below && above, "jitter never strayed both ways");
    }

    #[test]
    fn same_seed_same_delays() {
        let build = || ExponentialBackoff::builder().seed(9).build().unwrap();
        let a: Vec<_> = build().take(10).collect();
        let b: Vec<_> = build().take(10).collect();
        assert_eq!(a, b);
    }

    #[tokio::test(start_paused = true)]
    async fn ends_after_max_elapsed_time() {
        let mut p = ExponentialBackoff::builder()
            .initial_interval(ms(100))
            .randomization_factor(0.0)
            .multiplier(2.0)
            .max_interval(ms(400))
            .max_elapsed_time(Some(ms(1000)))
            .build()
            .unwrap();
        // 100 + 200 + 400 = 700 elapsed; the next 400 would end at 1100 > 1000.
        for expect in [100, 200, 400] {
            let d = p.next_delay().unwrap();
            assert_eq!(d, ms(expect));
            tokio::time::advance(d).await;
        }
        assert_eq!(p.next_delay(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_delay_that_fits_exactly_is_still_given() {
        let mut p = ExponentialBackoff::builder()
            .initial_interval(ms(500))
            .randomization_factor(0.0)
            .max_elapsed_time(Some(ms(500)))
            .build()
            .unwrap();
        assert_eq!(p.next_delay(), Some(ms(500)));
        tokio::time::advance(ms(1)).await;
        assert_eq!(p.next_delay(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn reset_starts_over_in_interval_and_elapsed_time() {
        let mut p = ExponentialBackoff::builder()
            .initial_interval(ms(100))
            .randomization_factor(0.0)
            .max_elapsed_time(Some(ms(1000)))
            .build()
            .unwrap();
        tokio::time::advance(ms(950)).await;
        assert_eq!(p.next_delay(), None);
        p.reset();
        assert_eq!(p.next_delay(), Some(ms(100)));
        assert_eq!(p.next_delay(), Some(ms(200)));
    }

    #[test]
    fn bad_settings_are_rejected() {
        let b = ExponentialBackoff::builder;
        assert_eq!(
            b().randomization_factor(-0.1).build().unwrap_err(),
            InvalidBackoff::RandomizationFactor(-0.1)
        );
        assert!(matches!(
            b().randomization_factor(f64::NAN).build().unwrap_err(),
            InvalidBackoff::RandomizationFactor(_)
        ));
        assert!(b().randomization_factor(1.5).build().is_err());
        assert_eq!(
            b().multiplier(0.9).build().unwrap_err(),
            InvalidBackoff::Multiplier(0.9)
        );
        assert!(b().multiplier(f64::INFINITY).build().is_err());
        assert!(matches!(
            b().initial_interval(ms(10)).max_interval(ms(5)).build(),
            Err(InvalidBackoff::MaxInterval { .. })
        ));
        assert!(b().build().is_ok());
    }

    #[test]
    fn huge_settings_saturate_instead_of_panicking() {
        let mut p = ExponentialBackoff::builder()
            .initial_interval(Duration::from_secs(u64::MAX / 4))
            .max_interval(Duration::MAX)
            .multiplier(1e300)
            .build()
            .unwrap();
        for _ in 0..5 {
            assert!(p.next_delay().is_some());
        }
    }

    #[test]
    fn a_zero_initial_interval_retries_at_once_then_grows_instead_of_spinning() {
        let mut p = ExponentialBackoff::builder()
            .initial_interval(Duration::ZERO)
            .randomization_factor(0.0)
            .build()
            .unwrap();
        assert_eq!(p.next_delay(), Some(Duration::ZERO));
        assert_eq!(p.next_delay(), Some(ms(1)));
        assert_eq!(p.next_delay(), Some(ms(2)));
        assert_eq!(p.next_delay(), Some(ms(4)));
        assert_eq!(
            ExponentialBackoff::builder()
                .initial_interval(Duration::ZERO)
                .max_interval(Duration::ZERO)
                .build()
                .unwrap_err(),
            InvalidBackoff::ZeroMaxInterval
        );
    }
}
