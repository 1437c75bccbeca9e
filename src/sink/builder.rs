//! Settings of a [`ReconnectingSink`] and the default connection stack.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tower::timeout::Timeout;
use tower::ServiceBuilder;

use super::framing::Framing;
use super::hello::{ConnectInfo, Hello, HelloFn};
use super::outbox::Outbox;
use super::outcome::RetainFn;
use super::{Acks, ClosePolicy, ConfirmBy, Keepalive, ReconnectingSink};
use crate::ack::Acknowledge;
use crate::backoff::{ExponentialBackoff, ExponentialBackoffBuilder};
use crate::connect::{MakeConnection, StatusPolicy, TungsteniteConnector};
use crate::error::{BoxError, Error};
use crate::limit::{ReconnectBudget, ReconnectLimit, ReconnectLimitLayer};
use crate::request::{headers_hook, Attempt, HeadersFn, Target};
use crate::retry::{BackoffRetry, BackoffRetryLayer};
use crate::Message;

/// What the sink takes from the builder besides the connection stack.
pub(super) struct Settings {
    pub(super) hello: Hello,
    pub(super) outbox: Outbox,
    pub(super) inbox_capacity: usize,
    pub(super) healthy_after: Duration,
    pub(super) close_timeout: Duration,
    pub(super) acks: Option<Acks>,
    pub(super) keepalive: Option<Keepalive>,
    pub(super) close_policy: ClosePolicy,
    pub(super) reconnect_jitter: Duration,
    pub(super) retain: Option<RetainFn>,
    pub(super) confirm_by: ConfirmBy,
}

/// The connection stack the [`Builder`] assembles: limiter, backoff, connect timeout,
/// tokio-tungstenite.
pub type DefaultConnector = ReconnectLimit<BackoffRetry<Timeout<TungsteniteConnector>>>;

/// Settings for a [`ReconnectingSink`], every one in this table by what it governs: the
/// backoff and the reconnection limit (named as in the Go package this crate ports),
/// liveness, delivery, buffers, the connection, the request and the close. The defaults
/// suit a long-lived client; each setter says when to change it.
///
/// | group | setting | default | what it does |
/// |---|---|---|---|
/// | backoff | `initial_interval` | 1 s | first backoff delay |
/// | backoff | `randomization_factor` | 0.5 | each delay is drawn from `[i·(1−f), i·(1+f)]` |
/// | backoff | `multiplier` | 2.0 | growth of the interval per attempt |
/// | backoff | `max_interval` | 5 min | cap on the interval |
/// | backoff | `max_elapsed_time` | `None` | give up reconnecting after this long (`None`: never) |
/// | backoff | `backoff_seed` | from the OS | seeds the jitter, for reproducible runs |
/// | backoff | `reconnect_jitter` | 0 | random delay, uniform in `[0, value]`, before each reconnection: spreads a reconnect storm |
/// | backoff | `healthy_after` | 5 s | uptime after which any connection counts as healthy (so does one that carried traffic): the next reconnection is immediate |
/// | limits | `max_reconnections_total` | no limit | reconnections allowed per sliding window (0: none) |
/// | limits | `max_reconnections_time` | 1 h | the sliding window, when a limit is set |
/// | limits | `budget(ReconnectBudget)` | own | share one reconnection budget between sinks |
/// | liveness | `keepalive(interval, timeout)` | 20 s / 20 s | Ping after `interval` of silence; nothing (no frame, no byte, no draining send queue) within `timeout` after it: replace the connection |
/// | liveness | `no_keepalive()` | | turns the keepalive off |
/// | delivery | `confirm_by(ConfirmBy)` | `Pong` | when a flushed message counts as delivered; until then it is resent after a drop (`After(d)` for peers that do not answer Pings, `Flush` for 0.2's behaviour) |
/// | delivery | `acknowledged(acks, window)` | off | acknowledged mode, at most `window` unacknowledged (it caps the rate at `window` per round trip) |
/// | delivery | `ack_timeout` | 10 s | no ack progress for this long: the connection is replaced |
/// | delivery | `on_connect(Message)` | none | sent first on every connection |
/// | delivery | `on_connect_with(hook)` | none | messages computed for each connection from a `ConnectInfo` (connection number, outage, resend count) and what you captured: "resume from sequence N" |
/// | delivery | `retain_on_reconnect(hook)` | keep all | which owed messages a new connection resends |
/// | buffers | `max_unflushed_messages` / `max_unflushed_bytes` | 1024 / 1 MiB | outbox bound; `poll_ready` flushes when reached |
/// | buffers | `max_queued_inbound` | 256 | inbound messages queued while only writing; then TCP backpressure |
/// | connection | `connect_timeout` | 10 s | bound on one attempt (TCP + handshake); retried |
/// | connection | `websocket_config` | tungstenite's, but an 8 KiB read buffer | max message/frame size (64 MiB / 16 MiB), buffer sizes |
/// | connection | `status_policy` | 408 425 429 500 502 503 504 retried | which refused-handshake statuses are retried |
/// | connection | `rustls_config` | webpki roots | TLS settings for `wss://`: private CA, self-signed certificate, client certificates |
/// | connection | `connector(TungsteniteConnector)` | the default | the connector, with its own settings |
/// | connection | `proxy(url)` / `no_proxy()` | the environment | an HTTP CONNECT or SOCKS5 proxy; `no_proxy()` ignores `HTTP_PROXY` and the like |
/// | request | `header(name, value)` | none | added to every upgrade request |
/// | request | `headers_with(hook)` | none | headers computed per attempt (a token that expires) |
/// | request | `refresh_on_unauthorized(tries)` | 0 | a reconnection refused with 401/403 is tried again with a rebuilt request |
/// | close | `close_policy` | see below | which server close codes end the stream instead of reconnecting |
/// | close | `close_timeout` | 5 s | bound on `close()`: delivering what is owed and the Close handshake |
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::{Message, ReconnectingSink};
///
/// let ws = ReconnectingSink::builder()
///     .initial_interval(Duration::from_millis(100))
///     .randomization_factor(0.5)
///     .multiplier(2.0)
///     .max_interval(Duration::from_secs(30))
///     .max_elapsed_time(Some(Duration::from_secs(60)))
///     .max_reconnections_total(10)
///     .max_reconnections_time(Duration::from_secs(3600))
///     .header("authorization", "Bearer ...")
///     .on_connect(Message::text(r#"{"register":"me"}"#))
///     .build("ws://127.0.0.1:9000/v2/heartbeat/")?;
/// # let _ = ws;
/// # Ok::<(), ws_reconnect::Error>(())
/// ```
pub struct Builder {
    backoff: ExponentialBackoffBuilder,
    max_total: usize,
    window: Duration,
    limiter: Option<ReconnectBudget>,
    headers: Vec<(String, String)>,
    headers_with: Option<Arc<HeadersFn>>,
    refresh_unauthorized: u32,
    on_connect: Vec<Message>,
    on_connect_with: Option<HelloFn>,
    connect_timeout: Duration,
    /// Opens each connection: WebSocket settings, status policy, TLS.
    connector: TungsteniteConnector,
    healthy_after: Duration,
    close_timeout: Duration,
    max_unflushed_messages: usize,
    max_unflushed_bytes: usize,
    max_queued_inbound: usize,
    acks: Option<Box<dyn Acknowledge>>,
    framing: Option<Box<dyn Framing>>,
    ack_window: usize,
    ack_timeout: Duration,
    keepalive: Option<Keepalive>,
    close_policy: ClosePolicy,
    reconnect_jitter: Duration,
    confirm_by: ConfirmBy,
    retain_on_reconnect: Option<RetainFn>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            backoff: ExponentialBackoff::builder(),
            // No count limit by default: the backoff spaces reconnections, and a client
            // behind a server that restarts often must not lock itself out.
            max_total: usize::MAX,
            window: ReconnectBudget::DEFAULT_WINDOW,
            limiter: None,
            headers: Vec::new(),
            headers_with: None,
            refresh_unauthorized: 0,
            on_connect: Vec::new(),
            on_connect_with: None,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            connector: TungsteniteConnector::new().config(Self::default_websocket_config()),
            healthy_after: Self::DEFAULT_HEALTHY_AFTER,
            close_timeout: Self::DEFAULT_CLOSE_TIMEOUT,
            max_unflushed_messages: Self::DEFAULT_MAX_UNFLUSHED_MESSAGES,
            max_unflushed_bytes: Self::DEFAULT_MAX_UNFLUSHED_BYTES,
            max_queued_inbound: Self::DEFAULT_MAX_QUEUED_INBOUND,
            acks: None,
            framing: None,
            ack_window: 0,
            ack_timeout: Self::DEFAULT_ACK_TIMEOUT,
            keepalive: Some(Self::DEFAULT_KEEPALIVE),
            close_policy: ClosePolicy::default(),
            reconnect_jitter: Duration::ZERO,
            confirm_by: ConfirmBy::Pong,
            retain_on_reconnect: None,
        }
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Builder")
            .field("backoff", &self.backoff)
            .field("max_reconnections_total", &self.max_total)
            .field("max_reconnections_time", &self.window)
            .field("headers", &header_names)
            .field("on_connect", &self.on_connect.len())
            .field("connect_timeout", &self.connect_timeout)
            .field("healthy_after", &self.healthy_after)
            .field("acknowledged", &self.acks.is_some())
            .field("framed", &self.framing.is_some())
            .field("ack_window", &self.ack_window)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Default bound on one connection attempt: 10 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default uptime after which a connection counts as healthy: 5 s.
    pub const DEFAULT_HEALTHY_AFTER: Duration = Duration::from_secs(5);
    /// Default keepalive: a Ping after 20 s of silence, dead if nothing arrives within
    /// 20 s of it.
    pub const DEFAULT_KEEPALIVE: Keepalive =
        Keepalive::new(Duration::from_secs(20), Duration::from_secs(20));
    /// Default acknowledgement timeout: 10 s.
    pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default read buffer: 8 KiB (tungstenite's own default is 128 KiB).
    ///
    /// tungstenite zero-fills its read buffer's spare capacity before every read attempt,
    /// including the ones that find nothing, and keeps it for the life of the connection.
    /// 8 KiB keeps an idle connection small and the sink's checks for inbound frames
    /// cheap; a client that receives large messages at high rates reads them in more
    /// system calls and may want a larger buffer (see `websocket_config`).
    pub const DEFAULT_READ_BUFFER_SIZE: usize = 8 * 1024;

    fn default_websocket_config() -> WebSocketConfig {
        WebSocketConfig::default().read_buffer_size(Self::DEFAULT_READ_BUFFER_SIZE)
    }

    /// Default bound on the closing handshake: 5 s.
    pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default outbox bound in messages: 1024.
    pub const DEFAULT_MAX_UNFLUSHED_MESSAGES: usize = 1024;
    /// Default outbox bound in bytes: 1 MiB.
    pub const DEFAULT_MAX_UNFLUSHED_BYTES: usize = 1 << 20;
    /// Default bound on inbound messages queued while only writing: 256.
    pub const DEFAULT_MAX_QUEUED_INBOUND: usize = 256;

    /// The first backoff delay (default 1 s): how long the second attempt of a
    /// reconnection waits after the first failed. The first attempt after a connection that
    /// proved healthy is always immediate. Lower it for a local or latency-critical
    /// service; raise it for one that should not be hammered while it restarts.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = ws_reconnect::ReconnectingSink::builder()
    ///     .initial_interval(Duration::from_millis(100));
    /// # let _ = builder;
    /// ```
    pub fn initial_interval(mut self, value: Duration) -> Self {
        self.backoff = self.backoff.initial_interval(value);
        self
    }

    /// Jitter fraction of each delay, within `[0, 1]` (default 0.5): each delay is drawn
    /// from `[d·(1−f), d·(1+f)]` so that clients dropped together do not retry together.
    /// 0 makes delays exact (useful in tests).
    pub fn randomization_factor(mut self, value: f64) -> Self {
        self.backoff = self.backoff.randomization_factor(value);
        self
    }

    /// Growth of the delay per failed attempt, at least 1 (default 2.0). 1 retries at a
    /// constant interval.
    pub fn multiplier(mut self, value: f64) -> Self {
        self.backoff = self.backoff.multiplier(value);
        self
    }

    /// Cap on the delay between attempts (default 5 min): the longest a client waits after
    /// the server is back. Lower it when a quick return matters more than the load of
    /// attempts during a long outage.
    pub fn max_interval(mut self, value: Duration) -> Self {
        self.backoff = self.backoff.max_interval(value);
        self
    }

    /// Give up reconnecting after this long without success; `None` (the default) never
    /// gives up. Set it when a caller must learn within a bound that the service is gone:
    /// the operation then fails with [`Error::GaveUp`].
    pub fn max_elapsed_time(mut self, value: Option<Duration>) -> Self {
        self.backoff = self.backoff.max_elapsed_time(value);
        self
    }

    /// Seeds the backoff's random jitter, for reproducible tests; by default it is drawn
    /// from the operating system.
    pub fn backoff_seed(mut self, seed: u64) -> Self {
        self.backoff = self.backoff.seed(seed);
        self
    }

    /// Reconnections allowed within [`max_reconnections_time`](Self::max_reconnections_time)
    /// 0 forbids reconnecting. Default: no limit.
    ///
    /// Set a limit when a reconnection costs the server something you must cap (a login,
    /// a replay). While the limiter refuses, every write fails with
    /// [`Error::TooManyReconnects`] (its `retry_at` says until when),
    /// [`state()`](ReconnectingSink::state) shows
    /// [`ConnectionState::Refused`](crate::sink::ConnectionState::Refused), and the reader
    /// gets one error item; reconnection resumes by itself once the window frees.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ws = ws_reconnect::ReconnectingSink::builder()
    ///     .max_reconnections_total(10)
    ///     .max_reconnections_time(Duration::from_secs(3600))
    ///     .build("ws://127.0.0.1:9000/")?;
    /// assert!(ws.can_connect());
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn max_reconnections_total(mut self, value: usize) -> Self {
        self.max_total = value;
        self
    }

    /// The sliding window of the reconnection limit (default 1 h); it matters only when
    /// [`max_reconnections_total`](Self::max_reconnections_total) sets a limit.
    pub fn max_reconnections_time(mut self, value: Duration) -> Self {
        self.window = value;
        self
    }

    /// Draws reconnections from a shared budget instead of the sink's own; overrides
    /// `max_reconnections_total` and `max_reconnections_time`. Share one budget between
    /// the many connections of a process so that a server restart cannot turn into a
    /// reconnection storm beyond it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::{ReconnectBudget, ReconnectingSink};
    ///
    /// let budget = ReconnectBudget::new(100, Duration::from_secs(60));
    /// let a = ReconnectingSink::builder().budget(budget.clone()).build("ws://127.0.0.1:9000/a")?;
    /// let b = ReconnectingSink::builder().budget(budget.clone()).build("ws://127.0.0.1:9000/b")?;
    /// assert!(a.can_connect() && b.can_connect());
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn budget(mut self, budget: ReconnectBudget) -> Self {
        self.limiter = Some(budget);
        self
    }

    /// Adds a header to every upgrade request (authentication, a client id). Invalid names
    /// or values are reported by `build`/`connect`. Values never appear in logs, `Debug`
    /// output or errors. For a value that changes per attempt (a fresh token), use
    /// [`headers_with`](Self::headers_with) (async), or build a [`Target::from_fn`] and use
    /// [`build_with`](Self::build_with).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Headers computed by an async `hook` before every connection attempt and added to
    /// its request, replacing any [`header`](Self::header) of the same name: a token
    /// fetched from an identity provider, refreshed when the server refused the last one.
    /// The hook is told the [`Attempt`]: its number, whether it is a first dial or a
    /// reconnection, and how the previous attempt of the run failed
    /// ([`Attempt::after_unauthorized`]). With
    /// [`refresh_on_unauthorized`](Self::refresh_on_unauthorized), a reconnection refused
    /// with 401 or 403 is tried again with the headers the hook then computes.
    ///
    /// The hook is awaited inside the connection attempt, so
    /// [`connect_timeout`](Self::connect_timeout) bounds it: a hook that takes longer fails
    /// the attempt with [`Error::Timeout`], which is retried. Its error ends the attempt
    /// with [`Error::Request`], not retried, unless it is one of this crate's errors,
    /// boxed (see [`Target::from_async_fn`]). Header values never appear in logs, `Debug`
    /// output or errors.
    ///
    /// The hook applies to [`build`](Self::build) and [`connect`](Self::connect) and to
    /// the targets of [`build_with`](Self::build_with) and
    /// [`connect_with`](Self::connect_with); a stack of your own
    /// ([`build_over`](Self::build_over)) adds headers with a
    /// [`HeadersLayer`](crate::HeadersLayer). To build the whole request, URL included,
    /// use [`Target::from_async_fn`] with `build_with`.
    ///
    /// ```
    /// use ws_reconnect::{Attempt, BoxError, ReconnectingSink};
    ///
    /// /// Stands in for an HTTP call to an identity provider.
    /// async fn fetch_token(refresh: bool) -> Result<String, BoxError> {
    ///     Ok(if refresh { "fresh" } else { "cached" }.to_owned())
    /// }
    ///
    /// let ws = ReconnectingSink::builder()
    ///     .header("x-client", "demo")
    ///     .headers_with(|attempt: Attempt| async move {
    ///         let token = fetch_token(attempt.after_unauthorized()).await?;
    ///         let mut headers = http::HeaderMap::new();
    ///         headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
    ///         Ok::<_, BoxError>(headers)
    ///     })
    ///     .refresh_on_unauthorized(2)
    ///     .build("ws://127.0.0.1:9000/feed")?;
    /// // The target's request is built per attempt, by the connector.
    /// assert!(ws.target().request().is_err());
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn headers_with<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Attempt) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HeaderMap, BoxError>> + Send + 'static,
    {
        self.headers_with = Some(headers_hook(hook));
        self
    }

    /// On a reconnection refused with 401 Unauthorized or 403 Forbidden, tries again up to
    /// `max_tries` times per reconnection, with the request rebuilt by
    /// [`headers_with`](Self::headers_with) or the target's hook
    /// ([`Target::from_async_fn`]), instead of ending the stream with
    /// [`Error::Rejected`] (default 0: off). Each retry waits the backoff's next delay.
    /// Past `max_tries`, the reader gets the last refusal, then the end of the stream, as
    /// without this setting. See
    /// [`BackoffRetry::refresh_on_unauthorized`](crate::BackoffRetry::refresh_on_unauthorized).
    ///
    /// The first dial is not covered: a 401 or 403 there makes `dial`/`connect` fail at
    /// once, as any 4xx other than 408, 425 and 429 does. To retry it there too, call the
    /// status retryable with [`status_policy`](Self::status_policy); it is then retried on
    /// every attempt for as long as the backoff allows:
    ///
    /// ```
    /// use http::StatusCode;
    /// use ws_reconnect::{ReconnectingSink, StatusPolicy};
    ///
    /// // A refused token on a reconnection: two more attempts.
    /// let ws = ReconnectingSink::builder()
    ///     .refresh_on_unauthorized(2)
    ///     .build("ws://127.0.0.1:9000/feed")?;
    /// # let _ = ws;
    ///
    /// // 401 retried everywhere, the first dial included.
    /// let everywhere = StatusPolicy::from_fn(|s| {
    ///     s == StatusCode::UNAUTHORIZED || StatusPolicy::default().is_retryable(s)
    /// });
    /// let ws = ReconnectingSink::builder()
    ///     .status_policy(everywhere)
    ///     .build("ws://127.0.0.1:9000/feed")?;
    /// # let _ = ws;
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn refresh_on_unauthorized(mut self, max_tries: u32) -> Self {
        self.refresh_unauthorized = max_tries;
        self
    }

    /// A message sent first on every connection, the first dial and each reconnection,
    /// before anything resent: a subscription, a login, a "hello". Several are sent in the
    /// order given.
    pub fn on_connect(mut self, message: Message) -> Self {
        self.on_connect.push(message);
        self
    }

    /// Messages computed for each connection, sent after the fixed
    /// [`on_connect`](Self::on_connect) messages and before anything resent: for
    /// protocols that resume ("subscribe from sequence N", "resume session S", a nonce
    /// signed per connection). The hook gets what the sink knows ([`ConnectInfo`]) and
    /// whatever it captured, such as the last sequence number the reader saw. It runs
    /// inside the sink's poll, so it must be quick and must not block.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use ws_reconnect::{ConnectInfo, Message, ReconnectingSink};
    ///
    /// let last_seen = Arc::new(AtomicU64::new(0)); // the reader stores each sequence number
    /// let seen = Arc::clone(&last_seen);
    /// let ws = ReconnectingSink::builder()
    ///     .on_connect_with(move |info: &ConnectInfo| {
    ///         let from = seen.load(Ordering::Relaxed) + 1;
    ///         vec![Message::text(format!(r#"{{"subscribe":"ticks","from":{from},"reconnect":{}}}"#, info.reconnect))]
    ///     })
    ///     .build("ws://127.0.0.1:9000/feed")?;
    /// # let _ = (ws, last_seen);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn on_connect_with<F>(mut self, hook: F) -> Self
    where
        F: FnMut(&ConnectInfo) -> Vec<Message> + Send + 'static,
    {
        self.on_connect_with = Some(Box::new(hook));
        self
    }

    /// Decides, each time a connection comes up with messages still owed, which of them
    /// to resend: `true` keeps a message, `false` drops it (counted in
    /// [`Stats::messages_dropped`](crate::Stats::messages_dropped); its outcome, if it was
    /// sent with one, fails with
    /// [`UndeliveredReason::Discarded`](crate::UndeliveredReason::Discarded)). The sync
    /// point for protocols where some messages make no sense on a new session; see also
    /// [`Outgoing::volatile`](crate::Outgoing::volatile) for marking them one by one. The
    /// hook runs inside the sink's poll, before the [`on_connect_with`](Self::on_connect_with)
    /// hook (whose [`ConnectInfo::resending`] counts what was kept); it must be quick.
    ///
    /// ```
    /// use ws_reconnect::{ConnectInfo, Message, ReconnectingSink};
    ///
    /// // Requests older than the outage are answered from a cache on reconnection:
    /// // resend only the orders.
    /// let ws = ReconnectingSink::builder()
    ///     .retain_on_reconnect(|_info: &ConnectInfo, message: &Message| {
    ///         message.to_text().is_ok_and(|t| t.starts_with("order "))
    ///     })
    ///     .build("ws://127.0.0.1:9000/feed")?;
    /// # let _ = ws;
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn retain_on_reconnect<F>(mut self, hook: F) -> Self
    where
        F: FnMut(&ConnectInfo, &Message) -> bool + Send + 'static,
    {
        self.retain_on_reconnect = Some(Box::new(hook));
        self
    }

    /// Bound on one connection attempt, TCP, TLS and the HTTP upgrade together (default
    /// 10 s); a timeout is retried. Lower it on a LAN, where 10 s of silence means the
    /// attempt is lost.
    pub fn connect_timeout(mut self, value: Duration) -> Self {
        self.connect_timeout = value;
        self
    }

    /// tungstenite's settings: maximum message and frame size (defaults 64 MiB and
    /// 16 MiB), buffer sizes. The default here differs from tungstenite's in one field:
    /// an 8 KiB read buffer ([`DEFAULT_READ_BUFFER_SIZE`](Self::DEFAULT_READ_BUFFER_SIZE)).
    ///
    /// ```
    /// use ws_reconnect::WebSocketConfig;
    /// let builder = ws_reconnect::ReconnectingSink::builder()
    ///     .websocket_config(WebSocketConfig::default().max_message_size(Some(1 << 20)));
    /// # let _ = builder;
    /// ```
    pub fn websocket_config(mut self, config: WebSocketConfig) -> Self {
        self.connector = self.connector.config(config);
        self
    }

    /// Replaces the connector that opens each connection, with its WebSocket settings,
    /// status policy and TLS configuration (the setters above change the current one).
    ///
    /// ```
    /// use ws_reconnect::{StatusPolicy, TungsteniteConnector};
    /// let connector = TungsteniteConnector::new().status_policy(StatusPolicy::from_fn(|s| s.is_server_error()));
    /// let builder = ws_reconnect::ReconnectingSink::builder().connector(connector);
    /// # let _ = builder;
    /// ```
    pub fn connector(mut self, connector: TungsteniteConnector) -> Self {
        self.connector = connector;
        self
    }

    /// Which refused-handshake statuses are retried (by default 408, 425, 429, 500, 502,
    /// 503, 504). Change it when your server answers a transient condition with another
    /// status. A 401/403 on a reconnection is better handled by
    /// [`refresh_on_unauthorized`](Self::refresh_on_unauthorized), which retries it only
    /// after the token hook ran again; this policy also covers the first dial.
    pub fn status_policy(mut self, policy: StatusPolicy) -> Self {
        self.connector = self.connector.status_policy(policy);
        self
    }

    /// The rustls configuration for `wss://` (see
    /// [`TungsteniteConnector::rustls_config`]): trust a private CA or a self-signed
    /// certificate, present a client certificate.
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    pub fn rustls_config(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.connector = self.connector.rustls_config(config);
        self
    }

    /// Sends every connection through this proxy (see [`TungsteniteConnector::proxy`]):
    /// `http://[user:password@]host:port` for an HTTP `CONNECT` tunnel,
    /// `socks5://…` (the host name resolved here) or `socks5h://…` (resolved by the
    /// proxy) for SOCKS5. It wins over the environment. A malformed or unsupported URL is
    /// [`Error::InvalidProxyUrl`] from `build`/`connect`; the credentials never appear in
    /// logs, `Debug` output or errors.
    ///
    /// Without this setter, connections follow `HTTPS_PROXY` (`wss://`), `HTTP_PROXY`
    /// (`ws://`), `ALL_PROXY` and `NO_PROXY`, read at each attempt, as curl and reqwest
    /// do; [`no_proxy`](Self::no_proxy) turns that off.
    ///
    /// ```
    /// use ws_reconnect::{Error, ReconnectingSink};
    ///
    /// let ws = ReconnectingSink::builder()
    ///     .proxy("http://user:secret@127.0.0.1:3128")
    ///     .build("wss://example.com/feed")?;
    /// # let _ = ws;
    ///
    /// let bad = ReconnectingSink::builder().proxy("socks4://127.0.0.1:1080").build("ws://example.com/");
    /// assert!(matches!(bad, Err(Error::InvalidProxyUrl { .. })));
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn proxy(mut self, url: impl AsRef<str>) -> Self {
        self.connector = self.connector.proxy(url);
        self
    }

    /// Connects directly: no proxy, whatever the environment says (see
    /// [`TungsteniteConnector::no_proxy`]).
    ///
    /// ```
    /// let ws = ws_reconnect::ReconnectingSink::builder().no_proxy().build("ws://127.0.0.1:9000/")?;
    /// # let _ = ws;
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn no_proxy(mut self) -> Self {
        self.connector = self.connector.no_proxy();
        self
    }

    /// Uptime after which any connection counts as healthy: the next drop then starts the
    /// backoff over, with an immediate attempt. A shorter-lived connection also counts as
    /// healthy once it carried traffic (it delivered a message or an acknowledgement, or
    /// messages written on it were flushed) and stayed up for 100 ms. A connection that
    /// did neither (a server that accepts and drops, or greets and closes, at once)
    /// makes the next attempt wait for the backoff, with delays growing across such
    /// connections.
    /// Default 5 s.
    pub fn healthy_after(mut self, value: Duration) -> Self {
        self.healthy_after = value;
        self
    }

    /// Acknowledged delivery (see [`Acknowledge`]): tracked messages are kept until the
    /// peer acknowledges them and resent after every reconnection; at most `window` may be
    /// unacknowledged at once (`poll_ready` waits beyond that). `flush` and `close`
    /// complete only when everything tracked is acknowledged.
    ///
    /// The window bounds the rate: at most `window` messages per round trip. Size it for
    /// the path, at least twice the rate you need times the round trip. 1,024 fills
    /// loopback and a LAN; at 20 ms each way it caps 64-byte messages at about 25,000 a
    /// second, where 16,384 carries the 150,000 a second that plain mode does through the
    /// same path (BENCHMARKS.md, "Acknowledged against plain through latency"). The
    /// memory it holds is `window` messages.
    ///
    /// ```
    /// use ws_reconnect::{Acknowledge, Message, ReconnectingSink};
    ///
    /// struct Acks;
    /// impl Acknowledge for Acks {
    ///     fn id(&mut self, m: &Message) -> Option<u64> { m.to_text().ok()?.parse().ok() }
    ///     fn acked(&mut self, m: &Message) -> Option<u64> {
    ///         m.to_text().ok()?.strip_prefix("ack ")?.parse().ok()
    ///     }
    /// }
    /// let ws = ReconnectingSink::builder()
    ///     .acknowledged(Acks, 1024)
    ///     .ack_timeout(std::time::Duration::from_secs(10))
    ///     .build("ws://127.0.0.1:9000/")?;
    /// assert_eq!(ws.unacknowledged_count(), 0);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn acknowledged(mut self, acks: impl Acknowledge, window: usize) -> Self {
        self.acks = Some(Box::new(acks));
        self.ack_window = window.max(1);
        self
    }

    /// The outbox, within the builder's bounds. A framed protocol numbers its messages in
    /// order and grants a window: the outbox counts the messages it lets go of until
    /// they are acknowledged (`Outbox::count_released`).
    fn outbox(&self) -> Outbox {
        let mut outbox = Outbox::new(self.max_unflushed_messages, self.max_unflushed_bytes);
        if self.framing.is_some() {
            outbox.count_released();
        }
        outbox
    }

    /// In acknowledged mode, writes each tracked message as `framing` frames it, every
    /// time it is written (see [`Framing`]).
    pub(crate) fn framed(mut self, framing: impl Framing + 'static) -> Self {
        self.framing = Some(Box::new(framing));
        self
    }

    /// In acknowledged mode, a connection that makes no acknowledgement progress for this
    /// long while tracked messages are outstanding is treated as dead, replaced, and the
    /// window resent (default 10 s). Raise it if the server may take longer to process a
    /// window; lower it to fail over sooner.
    pub fn ack_timeout(mut self, value: Duration) -> Self {
        self.ack_timeout = value;
        self
    }

    /// Keepalive: after `interval` with nothing received, send a Ping; if no frame at all
    /// arrives within `timeout` after it, the connection is dead and is replaced. A
    /// half-open connection (the peer vanished without FIN or RST) is noticed within
    /// `interval + timeout` while the sink is polled (a reader waiting in `next()` or a
    /// writer waiting in `send()` is enough). Default 20 s / 20 s. The keepalive counts
    /// whole frames: a single message that takes longer than `interval + timeout` to
    /// arrive or to leave is taken for a dead path; raise both for very large messages
    /// over slow links.
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive = Some(Keepalive::new(interval, timeout));
        self
    }

    /// Turns keepalive off: for a server that does not answer Pings, or when the
    /// application has its own heartbeat. A half-open connection is then noticed only
    /// by a failing write or the acknowledgement timeout.
    pub fn no_keepalive(mut self) -> Self {
        self.keepalive = None;
        self
    }

    /// What to do when the server sends a Close frame, by close code (see
    /// [`ClosePolicy`] for the default table and an example). Change it when your server
    /// uses application codes (4000-4999) that mean "do not come back".
    pub fn close_policy(mut self, policy: ClosePolicy) -> Self {
        self.close_policy = policy;
        self
    }

    /// A random delay, uniform in `[0, value]`, before the first attempt of every
    /// reconnection, so that many clients dropped at once by a server restart do not all
    /// come back in the same millisecond (default 0: off). Set it on fleets of clients:
    /// a fraction of a second to a few seconds.
    pub fn reconnect_jitter(mut self, value: Duration) -> Self {
        self.reconnect_jitter = value;
        self
    }

    /// When a flushed message counts as delivered in plain mode (default
    /// [`ConfirmBy::Pong`]: when the peer answers a Ping sent after it). Until then it is
    /// kept, and sent again if the connection ends: a server that closes while a message
    /// is on its way discards it. See the crate's delivery guarantee.
    ///
    /// ```
    /// use ws_reconnect::{ConfirmBy, ReconnectingSink};
    /// // 0.2's behaviour: a flushed message counts as delivered.
    /// let ws = ReconnectingSink::builder()
    ///     .confirm_by(ConfirmBy::Flush)
    ///     .build("ws://127.0.0.1:9000/")?;
    /// # let _ = ws;
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn confirm_by(mut self, value: ConfirmBy) -> Self {
        self.confirm_by = value;
        self
    }

    /// Bound on `close()` (default 5 s): delivering what is still owed (reconnecting if
    /// needed) and the closing handshake together. When it runs out, `close()` ends the
    /// sink anyway and reports what it could not deliver
    /// ([`Error::CloseIncomplete`]).
    pub fn close_timeout(mut self, value: Duration) -> Self {
        self.close_timeout = value;
        self
    }

    /// Outbox bound in messages (at least 1; default 1024): unflushed messages beyond it
    /// make `poll_ready` flush first. A larger bound batches more writes per flush and
    /// holds more for resending after a drop.
    pub fn max_unflushed_messages(mut self, value: usize) -> Self {
        self.max_unflushed_messages = value;
        self
    }

    /// Outbox bound in bytes (default 1 MiB), as `max_unflushed_messages` for large
    /// messages.
    pub fn max_unflushed_bytes(mut self, value: usize) -> Self {
        self.max_unflushed_bytes = value;
        self
    }

    /// Inbound messages queued while the sink is only written to (default 256); beyond it
    /// the socket is not read until the stream is (TCP backpressure; the keepalive clock
    /// is held meanwhile). In acknowledged mode data past it is dropped and reported
    /// ([`Error::InboundDropped`]): raise it if your reader is slow.
    pub fn max_queued_inbound(mut self, value: usize) -> Self {
        self.max_queued_inbound = value;
        self
    }

    /// An undialed sink for `url`: the URL and settings are checked, no I/O happens.
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], [`Error::InvalidProxyUrl`] for a bad [`proxy`](Self::proxy)
    /// URL, [`Error::InvalidBackoff`], or [`Error::Request`] for an invalid header.
    pub fn build(self, url: impl AsRef<str>) -> Result<ReconnectingSink, Error> {
        let target = self.target_for(url)?;
        self.build_with(target)
    }

    /// The target [`build`](Self::build) dials: `url` with the fixed headers.
    pub(crate) fn target_for(&self, url: impl AsRef<str>) -> Result<Target, Error> {
        let mut target = Target::new(url)?;
        for (name, value) in &self.headers {
            target = target.header(name, value)?;
        }
        Ok(target)
    }

    /// Whether messages are set to go first on every connection (`on_connect`,
    /// `on_connect_with`): a mode that sends its own hello first cannot have them.
    pub(crate) fn has_hello(&self) -> bool {
        !self.on_connect.is_empty() || self.on_connect_with.is_some()
    }

    /// An undialed sink for a [`Target`], e.g. one that builds a fresh request per attempt
    /// ([`Target::from_fn`], [`Target::from_async_fn`]). Headers set with
    /// [`header`](Self::header) are ignored here: put them in the target. Those of
    /// [`headers_with`](Self::headers_with) are added to the target's request.
    ///
    /// # Errors
    /// [`Error::InvalidBackoff`], or [`Error::InvalidProxyUrl`] for a bad
    /// [`proxy`](Self::proxy) URL.
    pub fn build_with(self, target: Target) -> Result<ReconnectingSink, Error> {
        let policy = self.backoff.clone().build()?;
        self.connector.check_proxy()?;
        let limiter = self
            .limiter
            .clone()
            .unwrap_or_else(|| ReconnectBudget::new(self.max_total, self.window));
        let connector = self.connector.clone();
        let target = match &self.headers_with {
            Some(hook) => target.with_headers_hook(Arc::clone(hook)),
            None => target,
        };
        let make = ServiceBuilder::new()
            .layer(ReconnectLimitLayer::with_budget(limiter.clone()))
            .layer(
                BackoffRetryLayer::new(policy).refresh_on_unauthorized(self.refresh_unauthorized),
            )
            .timeout(self.connect_timeout)
            .service(connector);
        Ok(self.build_core(make, target, Some(limiter)))
    }

    /// Builds and dials `url`.
    ///
    /// # Errors
    /// As [`build`](Self::build) and [`ReconnectingSink::dial`].
    pub async fn connect(self, url: impl AsRef<str>) -> Result<ReconnectingSink, Error> {
        let mut sink = self.build(url)?;
        sink.dial().await?;
        Ok(sink)
    }

    /// Builds and dials a [`Target`].
    ///
    /// # Errors
    /// As [`build_with`](Self::build_with) and [`ReconnectingSink::dial`].
    pub async fn connect_with(self, target: Target) -> Result<ReconnectingSink, Error> {
        let mut sink = self.build_with(target)?;
        sink.dial().await?;
        Ok(sink)
    }

    /// An undialed sink over a custom connection stack, with this builder's `on_connect`
    /// messages and buffer bounds (the backoff and limit settings belong to the stack).
    pub fn build_over<M>(self, make: M, target: Target) -> ReconnectingSink<M>
    where
        M: MakeConnection,
    {
        self.build_core(make, target, None)
    }

    pub(super) fn build_core<M>(
        self,
        make: M,
        target: Target,
        limiter: Option<ReconnectBudget>,
    ) -> ReconnectingSink<M>
    where
        M: MakeConnection,
    {
        let outbox = self.outbox();
        ReconnectingSink::from_parts(
            make,
            target,
            Settings {
                hello: Hello::new(self.on_connect, self.on_connect_with),
                outbox,
                inbox_capacity: self.max_queued_inbound,
                healthy_after: self.healthy_after,
                close_timeout: self.close_timeout,
                keepalive: self.keepalive,
                close_policy: self.close_policy,
                reconnect_jitter: self.reconnect_jitter,
                confirm_by: self.confirm_by,
                retain: self.retain_on_reconnect,
                acks: self.acks.map(|acks| Acks {
                    acks,
                    framing: self.framing,
                    window: self.ack_window,
                    timeout: self.ack_timeout,
                }),
            },
            limiter,
        )
    }
}
