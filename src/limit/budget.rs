//! The reconnection budget: a sliding window of reconnections, shared by every clone.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::window::SlidingWindow;
use crate::error::Error;

/// A shareable reconnection budget: at most `max_total` reconnections within any span of
/// `window`.
///
/// Clones share the budget.
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::{Error, ReconnectBudget};
///
/// let limiter = ReconnectBudget::new(1, Duration::from_secs(60));
/// assert!(limiter.try_acquire().is_ok());
/// assert!(!limiter.can_connect());
/// assert!(matches!(limiter.try_acquire(), Err(Error::TooManyReconnects { .. })));
/// ```
#[derive(Debug, Clone)]
pub struct ReconnectBudget {
    window: Arc<Mutex<SlidingWindow>>,
}

impl Default for ReconnectBudget {
    /// 10 reconnections within 1 hour.
    fn default() -> Self {
        ReconnectBudget::new(Self::DEFAULT_MAX_TOTAL, Self::DEFAULT_WINDOW)
    }
}

impl ReconnectBudget {
    /// Default maximum reconnections per window: 10.
    pub const DEFAULT_MAX_TOTAL: usize = 10;
    /// Default window: 1 hour.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);

    /// A budget with no limit: every reconnection is allowed and none is recorded (the
    /// default of [`ReconnectingSink::builder`](crate::ReconnectingSink::builder), whose
    /// backoff alone spaces reconnections).
    ///
    /// ```
    /// use ws_reconnect::ReconnectBudget;
    /// let limiter = ReconnectBudget::unlimited();
    /// for _ in 0..1000 {
    ///     limiter.try_acquire()?;
    /// }
    /// assert!(limiter.can_connect());
    /// assert_eq!(limiter.used(), 0); // nothing is recorded
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn unlimited() -> Self {
        ReconnectBudget::new(usize::MAX, Self::DEFAULT_WINDOW)
    }

    /// A budget of `max_total` reconnections within any span of `window`.
    /// `max_total == 0` forbids every reconnection; `usize::MAX` is
    /// [`unlimited`](Self::unlimited).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::ReconnectBudget;
    /// let limiter = ReconnectBudget::new(0, Duration::from_secs(1));
    /// assert!(!limiter.can_connect());
    /// ```
    pub fn new(max_total: usize, window: Duration) -> Self {
        ReconnectBudget {
            window: Arc::new(Mutex::new(SlidingWindow::new(max_total, window))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlidingWindow> {
        // The window stays consistent even if a holder panicked: every method leaves it
        // valid after each step.
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a reconnection would be allowed now. Takes no slot.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::ReconnectBudget;
    /// let limiter = ReconnectBudget::new(2, Duration::from_secs(1));
    /// assert!(limiter.can_connect());
    /// assert!(limiter.can_connect()); // asking does not use the budget
    /// ```
    pub fn can_connect(&self) -> bool {
        self.lock().would_allow(Instant::now())
    }

    /// Takes a slot for one reconnection.
    ///
    /// # Errors
    /// [`Error::TooManyReconnects`] when the window is full; its `retry_at` says when a
    /// slot frees (`None` when `max_total` is 0).
    pub fn try_acquire(&self) -> Result<(), Error> {
        let mut window = self.lock();
        window
            .try_acquire(Instant::now())
            .map_err(|retry_at| Error::TooManyReconnects {
                max_total: window.max_total(),
                window: window.window(),
                retry_at,
            })
    }

    /// Reconnections inside the window now.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::ReconnectBudget;
    /// let limiter = ReconnectBudget::new(5, Duration::from_secs(60));
    /// limiter.try_acquire()?;
    /// assert_eq!(limiter.used(), 1);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn used(&self) -> usize {
        self.lock().count(Instant::now())
    }

    /// The configured maximum per window.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use ws_reconnect::ReconnectBudget;
    /// assert_eq!(ReconnectBudget::new(5, Duration::from_secs(1)).max_total(), 5);
    /// ```
    pub fn max_total(&self) -> usize {
        self.lock().max_total()
    }

    /// The window length.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use ws_reconnect::ReconnectBudget;
    /// assert_eq!(ReconnectBudget::default().window(), Duration::from_secs(3600));
    /// ```
    pub fn window(&self) -> Duration {
        self.lock().window()
    }
}
