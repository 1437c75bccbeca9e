//! The settings of resume mode and its counters.

use std::time::Duration;

use crate::resume::frame::Window;
use crate::resume::inbound::AckEvery;

/// Settings of resume mode, for [`Builder::resume`](crate::Builder::resume).
///
/// | setting | default | what it does |
/// |---|---|---|
/// | `required` | `true` | a server that does not speak resume mode is an error ([`Error::ResumeUnsupported`](crate::Error::ResumeUnsupported)); `false`: plain mode |
/// | `max_unacked_frames` | 16,384 | messages in flight until the server acknowledges them (also bounded by the server's window) |
/// | `max_unacked_bytes` | 4 MiB | the same in payload bytes |
/// | `recv_window_frames` | 16,384 | the server's messages in flight at once (advertised to it) |
/// | `recv_window_bytes` | 4 MiB | the same in payload bytes |
/// | `ack_delay` | 100 ms | longest wait before acknowledging what the application took |
/// | `ack_timeout` | 30 s | no acknowledgement progress this long: the connection is replaced |
///
/// ```
/// use std::time::Duration;
/// use ws_reconnect::ResumeConfig;
///
/// let config = ResumeConfig::new()
///     .required(false)
///     .max_unacked_frames(256)
///     .ack_delay(Duration::from_millis(5));
/// assert!(!config.is_required());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ResumeConfig {
    pub(super) required: bool,
    pub(super) max_unacked_frames: usize,
    pub(super) max_unacked_bytes: usize,
    pub(super) recv_window_frames: usize,
    pub(super) recv_window_bytes: usize,
    pub(super) ack_delay: Duration,
    pub(super) ack_timeout: Duration,
}

impl Default for ResumeConfig {
    fn default() -> Self {
        ResumeConfig::new()
    }
}

impl ResumeConfig {
    /// The defaults (see the table).
    ///
    /// ```
    /// use ws_reconnect::ResumeConfig;
    ///
    /// let config = ResumeConfig::new();
    /// assert!(config.is_required());
    /// ```
    pub const fn new() -> Self {
        ResumeConfig {
            required: true,
            max_unacked_frames: 16_384,
            max_unacked_bytes: 4 << 20,
            recv_window_frames: 16_384,
            recv_window_bytes: 4 << 20,
            ack_delay: Duration::from_millis(100),
            ack_timeout: Duration::from_secs(30),
        }
    }

    /// Whether a server that does not choose the `ws-reconnect.v1` subprotocol is an error
    /// ([`Error::ResumeUnsupported`](crate::Error::ResumeUnsupported), the default), or is spoken to in plain mode: no
    /// envelope, no resume, the guarantees of acknowledged-less delivery, for good.
    ///
    /// A server replaced mid-session by one without resume mode is the same refusal, on a
    /// reconnection: with `false`, the sink switches to plain mode there and tells each
    /// half once, with `Error::ResumeUnsupported` at the place where resume mode ended;
    /// the messages it kept go to the new server unframed (see
    /// `docs/resume-protocol.md`, section 2).
    ///
    /// ```
    /// use ws_reconnect::ResumeConfig;
    ///
    /// // Resume with a server that speaks it; plain mode with one that does not.
    /// let config = ResumeConfig::new().required(false);
    /// assert!(!config.is_required());
    /// ```
    pub const fn required(mut self, value: bool) -> Self {
        self.required = value;
        self
    }

    /// Whether resume mode is required.
    ///
    /// ```
    /// use ws_reconnect::ResumeConfig;
    ///
    /// assert!(ResumeConfig::default().is_required());
    /// ```
    pub const fn is_required(&self) -> bool {
        self.required
    }

    /// Messages sent and not yet acknowledged by the server, at most (at least 1;
    /// default 16,384); the server's advertised window may lower it. `poll_ready` waits
    /// beyond it.
    ///
    /// ```
    /// use ws_reconnect::ResumeConfig;
    ///
    /// let config = ResumeConfig::new().max_unacked_frames(256);
    /// # let _ = config;
    /// ```
    pub const fn max_unacked_frames(mut self, value: usize) -> Self {
        self.max_unacked_frames = if value == 0 { 1 } else { value };
        self
    }

    /// The same in payload bytes (default 4 MiB, the server's default receive window).
    /// One message is always allowed when none is in flight, however large.
    ///
    /// ```
    /// use ws_reconnect::ResumeConfig;
    ///
    /// let config = ResumeConfig::new().max_unacked_bytes(256 * 1024);
    /// # let _ = config;
    /// ```
    pub const fn max_unacked_bytes(mut self, value: usize) -> Self {
        self.max_unacked_bytes = value;
        self
    }

    /// How many of the server's messages may be in flight at once (at least 1; default
    /// 16,384): advertised in HELLO, and what the sink's inbox holds.
    ///
    /// ```
    /// use ws_reconnect::ResumeConfig;
    ///
    /// let config = ResumeConfig::new().recv_window_frames(128);
    /// # let _ = config;
    /// ```
    pub const fn recv_window_frames(mut self, value: usize) -> Self {
        self.recv_window_frames = if value == 0 { 1 } else { value };
        self
    }

    /// The same in payload bytes (default 4 MiB).
    ///
    /// ```
    /// use ws_reconnect::ResumeConfig;
    ///
    /// let config = ResumeConfig::new().recv_window_bytes(1 << 20);
    /// # let _ = config;
    /// ```
    pub const fn recv_window_bytes(mut self, value: usize) -> Self {
        self.recv_window_bytes = value;
        self
    }

    /// The longest wait before acknowledging what the application took (default 100 ms).
    /// The sink acknowledges at once what the server asked for (a PROMPT), and after a
    /// quarter of the receive window. Otherwise a timer wakes the task that last polled
    /// the sink (either half) once `ack_delay` has passed, and the acknowledgement goes
    /// out as that task polls it; a sink nobody polls sends nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::ResumeConfig;
    ///
    /// let config = ResumeConfig::new().ack_delay(Duration::from_millis(5));
    /// # let _ = config;
    /// ```
    pub const fn ack_delay(mut self, value: Duration) -> Self {
        self.ack_delay = value;
        self
    }

    /// No acknowledgement progress for this long while messages wait for one: the
    /// connection is taken for dead and replaced (default 30 s; see
    /// [`Builder::ack_timeout`](crate::Builder::ack_timeout)). A server application that does not read for longer
    /// makes the client reconnect and resume: nothing is lost.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::ResumeConfig;
    ///
    /// let config = ResumeConfig::new().ack_timeout(Duration::from_secs(10));
    /// # let _ = config;
    /// ```
    pub const fn ack_timeout(mut self, value: Duration) -> Self {
        self.ack_timeout = value;
        self
    }

    pub(super) fn recv_window(&self) -> Window {
        Window {
            frames: self.recv_window_frames as u64,
            bytes: self.recv_window_bytes as u64,
        }
    }

    #[inline]
    pub(super) fn ack_every(&self) -> AckEvery {
        AckEvery {
            frames: (self.recv_window_frames as u64 / 4).max(1),
            bytes: (self.recv_window_bytes as u64 / 4).max(1),
        }
    }
}

/// Counters of resume mode, from [`ResumingSink::resume_stats`](crate::ResumingSink::resume_stats).
///
/// ```
/// use ws_reconnect::{ReconnectingSink, ResumeConfig};
///
/// let ws = ReconnectingSink::builder()
///     .resume(ResumeConfig::default())
///     .build("ws://127.0.0.1:9000/feed")?; // undialed: no I/O yet
/// let stats = ws.resume_stats();
/// assert_eq!((stats.sessions, stats.resumed, stats.gaps), (0, 0, 0));
/// # Ok::<(), ws_reconnect::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResumeStats {
    /// Sessions the server started for this client (1 after the first WELCOME).
    pub sessions: u64,
    /// Connections on which the server resumed the session.
    pub resumed: u64,
    /// Gaps told to the reader.
    pub gaps: u64,
    /// Times the reader asked the server for messages again.
    pub replays: u64,
    /// Duplicate messages dropped (resent by the server after a reconnection).
    pub duplicates: u64,
}
