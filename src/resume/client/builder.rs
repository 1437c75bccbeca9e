//! From a [`Builder`] to a [`ResumingSink`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::connect::MakeConnection;
use crate::error::{shared, Error};
use crate::request::Target;
use crate::resume::inbound::{Inbound, PendingGaps};
use crate::sink::{Builder, DefaultConnector};

use super::framing::ResumeFraming;
use super::*;

impl Builder {
    /// Resume mode: nothing lost either way across a reconnection, with a server that
    /// speaks it (this crate's [`server`](crate::server) half, or any implementation of
    /// `docs/resume-protocol.md`). See [`ResumingSink`].
    ///
    /// Resume mode is acknowledged mode with its own envelope: it sets
    /// [`acknowledged`](Self::acknowledged), [`ack_timeout`](Self::ack_timeout),
    /// [`on_connect_with`](Self::on_connect_with) and
    /// [`max_queued_inbound`](Self::max_queued_inbound) itself, and cannot be combined
    /// with `on_connect` messages (HELLO goes first on every connection: send such
    /// messages again after a gap whose [`session_replaced`](crate::Gap::session_replaced)
    /// is true). Do not use [`retain_on_reconnect`](Self::retain_on_reconnect) with it:
    /// a message it drops is a gap for the server.
    ///
    /// ```
    /// use ws_reconnect::{ReconnectingSink, ResumeConfig};
    ///
    /// let ws = ReconnectingSink::builder()
    ///     .header("authorization", "Bearer ...")
    ///     .resume(ResumeConfig::default())
    ///     .build("ws://127.0.0.1:9000/feed")?; // undialed: no I/O yet
    /// assert_eq!(ws.session(), None);
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn resume(self, config: ResumeConfig) -> ResumeBuilder {
        ResumeBuilder {
            builder: self,
            config,
        }
    }
}

/// A [`Builder`] in resume mode: builds a [`ResumingSink`]. From [`Builder::resume`].
///
/// ```
/// use ws_reconnect::{ReconnectingSink, ResumeConfig};
///
/// let builder = ReconnectingSink::builder().resume(ResumeConfig::default());
/// let ws = builder.build("ws://127.0.0.1:9000/feed")?;
/// # let _ = ws;
/// # Ok::<(), ws_reconnect::Error>(())
/// ```
pub struct ResumeBuilder {
    pub(super) builder: Builder,
    pub(super) config: ResumeConfig,
}

impl fmt::Debug for ResumeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResumeBuilder")
            .field("builder", &self.builder)
            .field("config", &self.config)
            .finish()
    }
}

/// The parts a resuming sink is made of, before the sink underneath is built.
pub(super) struct Parts {
    pub(super) builder: Builder,
    pub(super) cell: Cell,
    pub(super) plain: Arc<AtomicBool>,
    pub(super) config: ResumeConfig,
}

impl ResumeBuilder {
    fn parts(self) -> Result<Parts, Error> {
        if self.builder.has_hello() {
            return Err(Error::Request(shared(
                "resume mode sends HELLO first on every connection: on_connect and \
                 on_connect_with cannot be used with it",
            )));
        }
        let config = self.config;
        let plain = Arc::new(AtomicBool::new(false));
        let cell = Arc::new(Common::new(Shared {
            session: Standing::new(),
            inbound: Inbound::new(1),
            gaps: PendingGaps::default(),
            replay_from: None,
            violations: VecDeque::new(),
            bye_at: None,
            owed_since: None,
            stats: ResumeStats::default(),
            reader: None,
            writer: None,
        }));
        let acks = ResumeAcks {
            cell: Arc::clone(&cell),
            plain: Arc::clone(&plain),
            carried: None,
        };
        let builder = self
            .builder
            .acknowledged(acks, config.max_unacked_frames)
            .framed(ResumeFraming::new(Arc::clone(&cell), Arc::clone(&plain)))
            .ack_timeout(config.ack_timeout)
            .max_queued_inbound(config.recv_window_frames + INBOX_SLACK)
            .on_connect_with(hello_hook(
                Arc::clone(&cell),
                Arc::clone(&plain),
                config.recv_window(),
            ));
        Ok(Parts {
            builder,
            cell,
            plain,
            config,
        })
    }

    /// An undialed sink for `url`, with the builder's headers: no I/O yet.
    ///
    /// # Errors
    /// As [`Builder::build`]; [`Error::Request`] when the builder has `on_connect`
    /// messages.
    ///
    /// ```
    /// use ws_reconnect::{ReconnectingSink, ResumeConfig};
    ///
    /// let ws = ReconnectingSink::builder()
    ///     .resume(ResumeConfig::default())
    ///     .build("ws://127.0.0.1:9000/feed")?; // no I/O until dial()
    /// assert!(ws.is_resuming());
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn build(self, url: impl AsRef<str>) -> Result<ResumingSink, Error> {
        let parts = self.parts()?;
        let target = parts.builder.target_for(url)?;
        ResumingSink::build(parts, target)
    }

    /// An undialed sink for a [`Target`] (see [`Builder::build_with`]).
    ///
    /// # Errors
    /// As [`Builder::build_with`] and [`build`](Self::build).
    ///
    /// ```
    /// use ws_reconnect::{ReconnectingSink, ResumeConfig, Target};
    ///
    /// let target = Target::new("ws://127.0.0.1:9000/feed")?.header("x-tenant", "7")?;
    /// let ws = ReconnectingSink::builder()
    ///     .resume(ResumeConfig::default())
    ///     .build_with(target)?;
    /// # let _ = ws;
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn build_with(self, target: Target) -> Result<ResumingSink, Error> {
        ResumingSink::build(self.parts()?, target)
    }

    /// Builds and dials `url`.
    ///
    /// # Errors
    /// As [`build`](Self::build) and [`ResumingSink::dial`].
    ///
    /// ```no_run
    /// use ws_reconnect::{ReconnectingSink, ResumeConfig};
    ///
    /// # async fn run() -> Result<(), ws_reconnect::Error> {
    /// let ws = ReconnectingSink::builder()
    ///     .resume(ResumeConfig::default())
    ///     .connect("ws://127.0.0.1:9000/feed")
    ///     .await?;
    /// # let _ = ws;
    /// # Ok(()) }
    /// ```
    pub async fn connect(self, url: impl AsRef<str>) -> Result<ResumingSink, Error> {
        let mut sink = self.build(url)?;
        sink.dial().await?;
        Ok(sink)
    }

    /// Builds and dials a [`Target`].
    ///
    /// # Errors
    /// As [`build_with`](Self::build_with) and [`ResumingSink::dial`].
    ///
    /// ```no_run
    /// use ws_reconnect::{ReconnectingSink, ResumeConfig, Target};
    ///
    /// # async fn run() -> Result<(), ws_reconnect::Error> {
    /// let target = Target::new("ws://127.0.0.1:9000/feed")?;
    /// let ws = ReconnectingSink::builder()
    ///     .resume(ResumeConfig::default())
    ///     .connect_with(target)
    ///     .await?;
    /// # let _ = ws;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(self, target: Target) -> Result<ResumingSink, Error> {
        let mut sink = self.build_with(target)?;
        sink.dial().await?;
        Ok(sink)
    }

    /// An undialed sink over a custom connection stack (see [`Builder::build_over`]). The
    /// subprotocol offer is added to the target's request: a stack whose connector builds
    /// its own request must offer `ws-reconnect.v1` itself.
    ///
    /// # Errors
    /// [`Error::Request`] when the builder has `on_connect` messages.
    ///
    /// ```
    /// use ws_reconnect::{ReconnectingSink, ResumeConfig, Target, TungsteniteConnector};
    ///
    /// // Any connection stack; here the bare connector, without retries or limits.
    /// let ws = ReconnectingSink::builder()
    ///     .resume(ResumeConfig::default())
    ///     .build_over(TungsteniteConnector::default(), Target::new("ws://127.0.0.1:9000/feed")?)?;
    /// # let _ = ws;
    /// # Ok::<(), ws_reconnect::Error>(())
    /// ```
    pub fn build_over<M: MakeConnection>(
        self,
        make: M,
        target: Target,
    ) -> Result<ResumingSink<M>, Error> {
        let parts = self.parts()?;
        let target = target.with_headers_hook(offer_hook(Arc::clone(&parts.plain)));
        let inner = parts.builder.build_over(make, target);
        Ok(ResumingSink::from_parts(
            inner,
            parts.cell,
            parts.plain,
            parts.config,
        ))
    }
}

impl ResumingSink<DefaultConnector> {
    fn build(parts: Parts, target: Target) -> Result<Self, Error> {
        let target = target.with_headers_hook(offer_hook(Arc::clone(&parts.plain)));
        let inner = parts.builder.build_with(target)?;
        Ok(ResumingSink::from_parts(
            inner,
            parts.cell,
            parts.plain,
            parts.config,
        ))
    }
}
