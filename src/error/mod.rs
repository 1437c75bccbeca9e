//! The crate's error type and its classification into retryable and permanent.
//!
//! Every fallible operation in this crate returns [`Error`]. Errors from a custom
//! connection stack (any `tower` layer a user adds) arrive as a [`BoxError`] and are
//! converted once, at the boundary, by [`Error::from_boxed`]: our own errors, tungstenite
//! errors and tower's timeout come back as their own variants instead of an opaque box.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite;

mod clone;
mod proxy;

pub use self::proxy::{ProxyFailure, SocksReply};
use crate::backoff::InvalidBackoff;
use crate::resume::{Gap, ResumeViolation};

/// A boxed error, as produced by generic `tower` middleware.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// An error shared by every copy of the [`Error`] that carries it (`Error` is `Clone`).
///
/// ```
/// use ws_reconnect::{Error, SharedError};
/// let cause: SharedError = std::sync::Arc::new(std::io::Error::other("no route"));
/// let err = Error::Connection(cause);
/// assert_eq!(err.clone().to_string(), err.to_string());
/// ```
pub type SharedError = std::sync::Arc<dyn StdError + Send + Sync + 'static>;

/// `error` as a [`SharedError`].
pub(crate) fn shared(error: impl Into<BoxError>) -> SharedError {
    Arc::from(error.into())
}

/// Everything that can go wrong while dialing, reconnecting, sending or receiving.
///
/// Match on the variants you act on and keep a `_` arm: the enum is `#[non_exhaustive]`.
///
/// ```
/// use ws_reconnect::Error;
///
/// fn advice(err: &Error) -> &'static str {
///     match err {
///         Error::NotDialed => "call dial() first",
///         Error::TooManyReconnects { .. } => "wait for the reconnect window to free up",
///         Error::Rejected { status, .. } if status.as_u16() == 401 => "refresh the token",
///         e if e.is_retryable() => "try again later",
///         _ => "give up",
///     }
/// }
/// assert_eq!(advice(&Error::NotDialed), "call dial() first");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Writing before the first `dial`, or after `close`.
    NotDialed,
    /// The reconnect limiter refused: `max_total` reconnections already happened within
    /// `window`.
    TooManyReconnects {
        /// The configured maximum number of reconnections per window.
        max_total: usize,
        /// The length of the sliding window.
        window: Duration,
        /// When the oldest reconnection leaves the window and one is allowed again;
        /// `None` when no reconnection is ever allowed (`max_total == 0`).
        retry_at: Option<Instant>,
    },
    /// The WebSocket URL is malformed, its scheme is not `ws`/`wss`, or its port cannot be
    /// dialed (a port is from 1 to 65535, in decimal digits). Never retried.
    ///
    /// The URL is printed without its user-info, query and fragment, cut from the text
    /// before it is parsed: everything up to the last `@` is user-info, since a password
    /// may hold an unescaped `/`, `?` or `#`; when a `?` or `#` comes before that `@`,
    /// nothing after the scheme is printed.
    ///
    /// ```
    /// use ws_reconnect::{Error, ReconnectingSink};
    ///
    /// let err = ReconnectingSink::builder().build("ws://user:secret@ho st/").unwrap_err();
    /// assert!(matches!(err, Error::InvalidUrl { .. }));
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid WebSocket URL \"ws://<redacted>@ho st/\": the URL does not parse"
    /// );
    /// ```
    InvalidUrl {
        /// The URL as given, with user-info, query and fragment removed.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A proxy URL is malformed or names an unsupported protocol: one set with
    /// [`Builder::proxy`](crate::Builder::proxy) (from `build`) or
    /// [`TungsteniteConnector::proxy`](crate::TungsteniteConnector::proxy), or one read
    /// from `HTTPS_PROXY`, `HTTP_PROXY` or `ALL_PROXY` (from the connection attempt that
    /// reads it). Never retried. The URL is printed without its credentials, as
    /// [`Error::InvalidUrl`] prints a WebSocket URL.
    ///
    /// ```
    /// use ws_reconnect::{Error, ReconnectingSink};
    ///
    /// let err = ReconnectingSink::builder()
    ///     .proxy("socks4://user:secret@proxy.example:1080")
    ///     .build("ws://example.com/")
    ///     .unwrap_err();
    /// assert!(matches!(err, Error::InvalidProxyUrl { .. }));
    /// assert!(!err.is_retryable());
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid proxy URL \"socks4://<redacted>@proxy.example:1080\": \
    ///      the scheme must be http, socks5 or socks5h"
    /// );
    /// ```
    InvalidProxyUrl {
        /// The proxy URL as given, with user-info, query and fragment removed.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The server answered the upgrade request with an HTTP status instead of `101`.
    ///
    /// A 401 or 403 is permanent by default; during a reconnection,
    /// [`Builder::refresh_on_unauthorized`](crate::Builder::refresh_on_unauthorized) (or
    /// [`BackoffRetry::refresh_on_unauthorized`](crate::BackoffRetry::refresh_on_unauthorized))
    /// retries it a number of times with a rebuilt request, and this error comes back
    /// once those are spent.
    Rejected {
        /// The HTTP status the server answered with.
        status: StatusCode,
        /// The server's `Retry-After`, in seconds or as an HTTP date, if it sent one.
        retry_after: Option<Duration>,
        /// Whether the status policy classified the status as worth retrying.
        retryable: bool,
    },
    /// A proxy between this client and the server did not open the tunnel: it refused
    /// (an HTTP status to `CONNECT`, a SOCKS5 failure reply, rejected credentials), spoke
    /// another protocol, or could not be reached. The server was not contacted.
    ///
    /// ```
    /// use ws_reconnect::ProxyFailure;
    /// use ws_reconnect::Error;
    ///
    /// let err = Error::Proxy {
    ///     proxy: "http://proxy.example:3128".into(),
    ///     failure: ProxyFailure::Status(http::StatusCode::PROXY_AUTHENTICATION_REQUIRED),
    ///     retryable: false,
    /// };
    /// assert!(!err.is_retryable());
    /// assert!(err.to_string().contains("user:password of the proxy URL"));
    /// ```
    Proxy {
        /// The proxy, as `scheme://host:port`: never its credentials.
        proxy: String,
        /// What the proxy answered, or why it could not be reached.
        failure: ProxyFailure,
        /// Whether trying again may succeed ([`ProxyFailure::is_retryable`]): an
        /// unreachable proxy, 502/503/504, a SOCKS5 path failure are; credentials (407, a
        /// refused login), a forbidden destination (403) are not.
        retryable: bool,
    },
    /// A WebSocket or I/O error from tungstenite.
    Transport(tungstenite::Error),
    /// The TLS handshake failed: most often the server's certificate is not trusted.
    /// Not retried.
    Tls(SharedError),
    /// A connection attempt took longer than its timeout.
    Timeout,
    /// The backoff policy ran out (the exponential backoff's `max_elapsed_time` passed, or
    /// a [`BackoffPolicy`](crate::BackoffPolicy) returned `None`) while the connection
    /// kept failing; the last failure is the [`source`](StdError::source).
    GaveUp {
        /// Connection attempts made in this run of the policy.
        attempts: u32,
        /// Time since the policy started (or was last reset).
        elapsed: Duration,
        /// The last failure.
        source: Box<Error>,
    },
    /// The server closed the connection with a code the close policy says not to come
    /// back on (by default 1002, 1003, 1007, 1008, 1009, 1010).
    ClosedByServer {
        /// The close code.
        code: u16,
        /// The reason the server gave.
        reason: String,
    },
    /// The previous connection was lost before it proved healthy; the backoff keeps
    /// growing across such connections instead of reconnecting in a tight loop.
    ConnectionLost,
    /// `start_send` was called while the sink had no room, without a successful
    /// `poll_ready` first (the `Sink` contract); the message was not accepted.
    NotReady,
    /// A message kind that the sink does not send: `Close` (use `SinkExt::close`) or a
    /// raw `Frame`.
    UnsupportedMessage,
    /// In acknowledged mode, inbound data messages were dropped here because the inbox
    /// was full (nobody read the stream) while acknowledgements behind them had to be
    /// read. The reader meets this item at the place of the gap; the messages before and
    /// after it are intact. Reading the stream often enough (or a larger
    /// `max_queued_inbound`) avoids it.
    InboundDropped {
        /// Messages dropped in this gap.
        count: u64,
    },
    /// `close()` ended the sink without delivering everything it owed: its
    /// `close_timeout` ran out, or the reconnection it needed failed. The messages stay in
    /// the sink ([`take_undelivered`](crate::ReconnectingSink::take_undelivered)); no
    /// connection attempt is made after this.
    CloseIncomplete {
        /// Messages still owed when the sink closed.
        undelivered: usize,
        /// Why they could not be delivered ([`Error::Timeout`] when `close_timeout` ran
        /// out).
        source: Box<Error>,
    },
    /// The background task of a [`Handle`](crate::Handle) has ended: it was closed, every
    /// handle and the receiver were dropped, the connection failed for good, or the task
    /// panicked (see [`Error::TaskPanicked`]).
    TaskEnded,
    /// User code run by a [`Handle`](crate::Handle)'s task (a hook given to the builder,
    /// an [`Acknowledge`](crate::Acknowledge), a close policy) panicked; the task ended
    /// and dropped its connection.
    TaskPanicked {
        /// The panic's message, when it was a string.
        message: String,
    },
    /// An invalid backoff setting.
    InvalidBackoff(InvalidBackoff),
    /// The request factory supplied by the user failed: a [`Target::from_fn`] closure,
    /// a [`Target::from_async_fn`] or [`Builder::headers_with`] hook, a
    /// [`HeadersLayer`]'s hook. Not retried; a hook that returns one of this crate's
    /// errors, boxed, gets that error instead.
    ///
    /// [`Target::from_fn`]: crate::Target::from_fn
    /// [`Target::from_async_fn`]: crate::Target::from_async_fn
    /// [`Builder::headers_with`]: crate::Builder::headers_with
    /// [`HeadersLayer`]: crate::HeadersLayer
    Request(SharedError),
    /// Any other error from a custom connection stack.
    Connection(SharedError),
    /// Resume mode: messages the server sent will never arrive (see [`Gap`]). The reader
    /// meets this item at the place of the loss; the messages before and after it are
    /// intact, and polling again carries on.
    Gap(Gap),
    /// Resume mode was required, and the server did not choose the `ws-reconnect.v1`
    /// subprotocol. Not retried: the server does not speak resume mode (or a proxy strips
    /// the header). [`ResumeConfig::required`](crate::ResumeConfig::required)`(false)`
    /// falls back to plain mode instead.
    ResumeUnsupported,
    /// Resume mode: the server sent a frame that breaks the protocol. The frame is
    /// dropped and the messages from there on are asked for again; polling carries on.
    ResumeViolation(ResumeViolation),
    /// Resume mode: the server ended the session. The stream has ended; sends fail.
    SessionEnded,
}

impl Error {
    /// Converts an error from a generic connection stack, recovering our own variants.
    ///
    /// A boxed [`Error`] comes back as itself, a boxed tungstenite error as
    /// [`Error::Transport`], tower's `Elapsed` as [`Error::Timeout`]; anything else becomes
    /// [`Error::Connection`].
    ///
    /// ```
    /// use ws_reconnect::{BoxError, Error};
    ///
    /// let boxed: BoxError = Box::new(Error::NotDialed);
    /// assert!(matches!(Error::from_boxed(boxed), Error::NotDialed));
    /// let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
    /// assert!(matches!(Error::from_boxed(elapsed), Error::Timeout));
    /// ```
    pub fn from_boxed(err: BoxError) -> Error {
        let err = match err.downcast::<Error>() {
            Ok(e) => return *e,
            Err(e) => e,
        };
        let err = match err.downcast::<tungstenite::Error>() {
            Ok(e) => return Error::Transport(*e),
            Err(e) => e,
        };
        let err = match err.downcast::<std::io::Error>() {
            Ok(e) => return Error::Transport(tungstenite::Error::Io(*e)),
            Err(e) => e,
        };
        if err.is::<tower::timeout::error::Elapsed>() {
            return Error::Timeout;
        }
        Error::Connection(Arc::from(err))
    }

    /// Whether trying the connection again may succeed.
    ///
    /// Retryable: I/O errors (refused, reset, DNS), timeouts, statuses the status policy
    /// calls retryable (by default 408, 425, 429, 500, 502, 503, 504), a lost connection,
    /// a proxy failure marked retryable, and errors from a custom stack. Permanent: a bad
    /// WebSocket or proxy URL or setting, other statuses, a proxy's refusal of the
    /// credentials or the destination, protocol and TLS errors, the limiter's refusal and
    /// an exhausted backoff.
    ///
    /// ```
    /// use ws_reconnect::Error;
    /// assert!(Error::Timeout.is_retryable());
    /// assert!(!Error::NotDialed.is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Rejected { retryable, .. } | Error::Proxy { retryable, .. } => *retryable,
            Error::Transport(e) => matches!(
                e,
                tungstenite::Error::Io(_)
                    | tungstenite::Error::ConnectionClosed
                    | tungstenite::Error::AlreadyClosed
                    // The connection ended during the handshake: a transport failure
                    // (a restarting server, a dropped link), not a misbehaving peer.
                    | tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::HandshakeIncomplete
                    )
            ),
            Error::Timeout | Error::ConnectionLost | Error::Connection(_) => true,
            Error::NotDialed
            | Error::TooManyReconnects { .. }
            | Error::InvalidUrl { .. }
            | Error::InvalidProxyUrl { .. }
            | Error::GaveUp { .. }
            | Error::UnsupportedMessage
            | Error::Tls(_)
            | Error::ClosedByServer { .. }
            | Error::NotReady
            | Error::InboundDropped { .. }
            | Error::CloseIncomplete { .. }
            | Error::TaskEnded
            | Error::TaskPanicked { .. }
            | Error::InvalidBackoff(_)
            | Error::Request(_)
            | Error::Gap(_)
            | Error::ResumeUnsupported
            | Error::ResumeViolation(_)
            | Error::SessionEnded => false,
        }
    }

    /// The server's `Retry-After`, when the error carries one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::Error;
    ///
    /// let err = Error::Rejected {
    ///     status: http::StatusCode::TOO_MANY_REQUESTS,
    ///     retry_after: Some(Duration::from_secs(1)),
    ///     retryable: true,
    /// };
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Rejected { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotDialed => f.write_str(
                "the connection is not dialed: call dial() before sending, and again after close()",
            ),
            Error::TooManyReconnects {
                retry_at: None,
                window,
                ..
            } => write!(
                f,
                "reconnection refused: the limit allows no reconnection within {window:?} \
                 (max_reconnections_total is 0); only dial() connects again"
            ),
            Error::TooManyReconnects {
                max_total, window, ..
            } => write!(
                f,
                "too many reconnections: {max_total} already within {window:?}; \
                 a reconnection is allowed again once the oldest leaves the window"
            ),
            Error::InvalidUrl { url, reason } => {
                write!(f, "invalid WebSocket URL {url:?}: {reason}")
            }
            Error::InvalidProxyUrl { url, reason } => {
                write!(f, "invalid proxy URL {url:?}: {reason}")
            }
            Error::Rejected {
                status,
                retry_after,
                retryable,
            } => fmt_rejected(f, *status, *retry_after, *retryable),
            Error::Proxy {
                proxy,
                failure,
                retryable,
            } => fmt_proxy(f, proxy, failure, *retryable),
            Error::Transport(e) => write!(f, "WebSocket transport error: {e}"),
            Error::Tls(e) => write!(
                f,
                "TLS handshake failed: {e}; for a private or self-signed certificate, \
                 pass a rustls ClientConfig that trusts it (Builder::rustls_config)"
            ),
            Error::Timeout => f.write_str("the connection attempt timed out"),
            Error::GaveUp {
                attempts,
                elapsed,
                source,
            } => write!(
                f,
                "gave up reconnecting after {attempts} attempts in {elapsed:?} \
                 (the backoff policy ran out, e.g. max_elapsed_time passed); last error: {source}"
            ),
            Error::ClosedByServer { .. }
            | Error::ConnectionLost
            | Error::NotReady
            | Error::UnsupportedMessage
            | Error::InboundDropped { .. }
            | Error::CloseIncomplete { .. }
            | Error::TaskEnded
            | Error::TaskPanicked { .. } => fmt_delivery(self, f),
            Error::InvalidBackoff(e) => write!(f, "invalid backoff setting: {e}"),
            Error::Request(e) => write!(f, "building the upgrade request failed: {e}"),
            Error::Connection(e) => write!(f, "connection error: {e}"),
            Error::Gap(gap) => write!(f, "{gap}"),
            Error::ResumeUnsupported => f.write_str(
                "the server does not speak resume mode (it did not choose the ws-reconnect.v1 \
                 subprotocol); ResumeConfig::required(false) falls back to plain mode",
            ),
            Error::ResumeViolation(v) => write!(f, "the server broke the resume protocol: {v}"),
            Error::SessionEnded => f.write_str("the server ended the resume session"),
        }
    }
}

/// How the errors of sending, receiving and closing read (the rest of the match in
/// `Display`).
fn fmt_delivery(error: &Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match error {
        Error::ClosedByServer { code, reason } => write!(
            f,
            "the server closed the connection with code {code} ({reason:?}); not reconnecting"
        ),
        Error::ConnectionLost => f.write_str("the connection was lost before it proved healthy"),
        Error::NotReady => f.write_str(
            "the sink is full: call poll_ready (or use SinkExt::send) before start_send",
        ),
        Error::UnsupportedMessage => f.write_str(
            "Close and raw Frame messages cannot be sent: use SinkExt::close() to close",
        ),
        Error::InboundDropped { count } => write!(
            f,
            "{count} inbound messages were dropped: the inbox was full while \
             acknowledgements had to be read; read the stream more often or raise \
             max_queued_inbound"
        ),
        Error::CloseIncomplete {
            undelivered,
            source,
        } => write!(
            f,
            "closed with {undelivered} messages undelivered (take_undelivered() returns \
             them): {source}"
        ),
        Error::TaskEnded => f.write_str(
            "the connection's background task has ended (closed, all handles dropped, or \
             failed for good)",
        ),
        Error::TaskPanicked { message } => {
            write!(f, "the connection's background task panicked: {message}")
        }
        _ => Ok(()),
    }
}

/// How [`Error::Rejected`] reads.
fn fmt_rejected(
    f: &mut fmt::Formatter<'_>,
    status: StatusCode,
    retry_after: Option<Duration>,
    retryable: bool,
) -> fmt::Result {
    write!(
        f,
        "the server refused the WebSocket upgrade with HTTP {status}"
    )?;
    if let Some(after) = retry_after {
        write!(f, " (Retry-After: {after:?})")?;
    }
    if !retryable {
        f.write_str("; not retried: check the URL, credentials and headers")?;
    }
    Ok(())
}

/// How [`Error::Proxy`] reads.
fn fmt_proxy(
    f: &mut fmt::Formatter<'_>,
    proxy: &str,
    failure: &ProxyFailure,
    retryable: bool,
) -> fmt::Result {
    write!(
        f,
        "the proxy {proxy} did not open a tunnel to the server: {failure}"
    )?;
    let advice = failure.advice(retryable);
    if retryable {
        write!(f, " ({advice}; retried)")
    } else {
        write!(f, "; not retried: {advice}")
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Transport(e) => Some(e),
            Error::GaveUp { source, .. } | Error::CloseIncomplete { source, .. } => Some(&**source),
            Error::InvalidBackoff(e) => Some(e),
            Error::ResumeViolation(v) => Some(v),
            Error::Proxy {
                failure: ProxyFailure::Io(e),
                ..
            } => Some(e),
            Error::Request(e) | Error::Connection(e) | Error::Tls(e) => Some(&**e),
            _ => None,
        }
    }
}

impl From<tungstenite::Error> for Error {
    fn from(e: tungstenite::Error) -> Self {
        Error::Transport(e)
    }
}

impl From<InvalidBackoff> for Error {
    fn from(e: InvalidBackoff) -> Self {
        Error::InvalidBackoff(e)
    }
}

impl From<tower::timeout::error::Elapsed> for Error {
    fn from(_: tower::timeout::error::Elapsed) -> Self {
        Error::Timeout
    }
}
