//! Which refused-handshake statuses are worth retrying, and the `Retry-After` header.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

/// Decides whether an HTTP status that refused the WebSocket upgrade is worth retrying.
///
/// The default retries 408, 425, 429, 500, 502, 503 and 504, and treats every other
/// status as permanent ([`Error::Rejected`](crate::Error::Rejected) with
/// `retryable: false`, not retried). Replace it with [`StatusPolicy::from_fn`].
///
/// ```
/// use http::StatusCode;
/// use ws_reconnect::StatusPolicy;
///
/// let default = StatusPolicy::default();
/// assert!(default.is_retryable(StatusCode::SERVICE_UNAVAILABLE));
/// assert!(!default.is_retryable(StatusCode::BAD_REQUEST));
///
/// // Also retry 401, e.g. when a fresh token comes with each attempt.
/// let custom = StatusPolicy::from_fn(|s| s == StatusCode::UNAUTHORIZED || StatusPolicy::default().is_retryable(s));
/// assert!(custom.is_retryable(StatusCode::UNAUTHORIZED));
/// ```
#[derive(Clone, Default)]
pub struct StatusPolicy {
    custom: Option<Arc<dyn Fn(StatusCode) -> bool + Send + Sync>>,
}

impl StatusPolicy {
    /// The statuses retried by default.
    pub const DEFAULT_RETRYABLE: [u16; 7] = [408, 425, 429, 500, 502, 503, 504];

    /// A policy given by a function from status to "retryable".
    pub fn from_fn<F>(f: F) -> Self
    where
        F: Fn(StatusCode) -> bool + Send + Sync + 'static,
    {
        StatusPolicy {
            custom: Some(Arc::new(f)),
        }
    }

    /// Whether `status` is worth retrying.
    pub fn is_retryable(&self, status: StatusCode) -> bool {
        match &self.custom {
            Some(f) => f(status),
            None => Self::DEFAULT_RETRYABLE.contains(&status.as_u16()),
        }
    }
}

impl fmt::Debug for StatusPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.custom {
            Some(_) => f.write_str("StatusPolicy(custom)"),
            None => write!(f, "StatusPolicy(retry {:?})", Self::DEFAULT_RETRYABLE),
        }
    }
}

/// Reads a `Retry-After` header: delay-seconds or an HTTP date (a date in the past gives
/// zero). Unparsable values are ignored.
///
/// ```
/// use std::time::Duration;
/// use http::HeaderMap;
/// use ws_reconnect::parse_retry_after;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", "120".parse().unwrap());
/// assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(120)));
/// headers.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
/// assert_eq!(parse_retry_after(&headers), Some(Duration::ZERO));
/// ```
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_classification() {
        let p = StatusPolicy::default();
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert!(p.is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 301, 400, 401, 403, 404, 426, 501, 505] {
            assert!(!p.is_retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_retry_after(&h), None);
        h.insert("retry-after", "garbage".parse().unwrap());
        assert_eq!(parse_retry_after(&h), None);
        let future = SystemTime::now() + Duration::from_secs(3600);
        h.insert(
            "retry-after",
            httpdate::fmt_http_date(future).parse().unwrap(),
        );
        let d = parse_retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(3590) && d <= Duration::from_secs(3600),
            "{d:?}"
        );
    }
}
