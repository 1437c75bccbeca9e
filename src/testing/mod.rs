//! A fault-injecting TCP proxy for testing reconnection (feature `testing`).
//!
//! [`FaultProxy`] sits between a client and a server on loopback and, on command or at
//! random from a seed, injects the ways connections fail in production. Use it to test
//! your own application's reconnection the way this crate's tests and demo do.
//!
//! | fault | what the client sees |
//! |---|---|
//! | [`Fault::CutAfter`] | the connection closes after some more bytes, mid-frame if that is where the count ends |
//! | [`Fault::Reset`] | an RST now; whatever is in flight is lost |
//! | [`Fault::Delay`] | every byte arrives this much later, at the same rate (a latency, not a throttle) |
//! | [`Fault::HalfOpen`] | a black hole: its writes are read and discarded, nothing comes back, nothing closes |
//! | [`Fault::Freeze`] | a frozen path: nothing is read or written any more, so its writes block once the buffers fill; nothing comes back, nothing closes |
//! | [`Fault::Refuse`] | new connections are accepted and reset for a while |
//!
//! Faults other than `Refuse` apply to the connections open at the time; connections made
//! afterwards are forwarded normally (through the proxy's path, below).
//!
//! ```
//! use std::time::Duration;
//! use ws_reconnect::testing::{Fault, FaultProxy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! # let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let proxy = FaultProxy::start(upstream.local_addr()?).await?;
//! let url = format!("ws://{}/", proxy.addr()); // point the client here
//! proxy.inject(Fault::Reset);                   // reset every open connection now
//! proxy.inject(Fault::Freeze);                  // or freeze them: writes block, no FIN
//! proxy.inject(Fault::Refuse(Duration::from_millis(100)));
//! assert_eq!(proxy.stats().resets, 0);          // nothing was open yet
//! # let _ = url;
//! # Ok(()) }
//! ```
//!
//! # Paths: latency, jitter, bandwidth
//! Every connection goes through a [`Path`]: a [`Link`] per direction, each with a
//! latency, a jitter, an optional bandwidth cap and a buffer. The default path forwards at
//! once. Give one from the start with [`FaultProxy::start_with`], or change it for open
//! and new connections with [`FaultProxy::set_path`]; the faults above apply on top (a
//! reset on a slow path resets now, a freeze stops both directions).
//!
//! ```
//! use std::time::Duration;
//! use ws_reconnect::testing::{Fault, FaultProxy, Link};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! # let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let path = Link::new()
//!     .latency(Duration::from_millis(30))
//!     .jitter(Duration::from_millis(5))
//!     .bandwidth(500_000);
//! let proxy = FaultProxy::start_with(upstream.local_addr()?, path).await?;
//! proxy.inject(Fault::Reset); // still resets at once
//! # Ok(()) }
//! ```
//!
//! ## A delay line, not a sleep
//! Each direction reads chunks as they arrive and stamps each with the time it is due,
//! `arrival + latency + jitter`; a separate writing side sleeps until each is due and
//! writes it. Later chunks travel while earlier ones wait, so a 20 ms path carries as
//! many bytes a second as a 0 ms one. Jitter never reorders: a chunk is never due before
//! the one ahead of it. With a bandwidth cap of `B` bytes/s the link sends one piece
//! after another, each taking `len / B`, and delivers each `latency` after it is sent.
//!
//! ## Bounded, with backpressure
//! Each direction holds at most its link's [buffer](Link::buffer) in bytes (by default
//! 256 KiB; with a cap, what the link carries in its latency plus 100 ms). When it is
//! full the proxy stops reading that direction, so the sender's socket buffers fill and
//! its writes block, as on a real slow path. So memory stays bounded, and a path carries
//! at most `buffer` bytes per `latency`, as a TCP window does.

mod conn;
mod fault;
mod line;
mod link;
mod pump;
mod schedule;
#[cfg(test)]
mod tests;

pub use fault::{Fault, FaultStats, RandomFaults};
pub use link::{Link, Path};

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex, Weak};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use conn::{Conn, Mode, Trigger};
use fault::{Counters, Draws, Kinds};
use line::Gauges;
use link::Direction;

/// What the proxy and its connections share.
#[derive(Debug)]
struct Shared {
    conns: Mutex<Vec<Weak<Conn>>>,
    /// The path new connections go through.
    path: Mutex<Path>,
    refuse_until: Mutex<Option<Instant>>,
    random: Mutex<Option<Draws>>,
    counters: Counters,
    gauges: Gauges,
}

/// A loopback TCP proxy that injects faults; see the [module docs](self).
/// Dropping it stops the proxy and every connection through it.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards every connection to `upstream`.
    ///
    /// # Errors
    /// Binding the listener failed.
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        FaultProxy::start_with(upstream, Path::default()).await
    }

    /// Listens on 127.0.0.1 (a free port) and forwards every connection to `upstream`
    /// through `path` (a [`Link`] for both directions, or a [`Path`] with one per
    /// direction), from its first byte on.
    ///
    /// # Errors
    /// Binding the listener failed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::testing::{FaultProxy, Link};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// // 40 ms each way, 80 ms round trips, 1 MB/s each way.
    /// let link = Link::new().latency(Duration::from_millis(40)).bandwidth(1_000_000);
    /// let proxy = FaultProxy::start_with(upstream.local_addr()?, link).await?;
    /// let url = format!("ws://{}/", proxy.addr());
    /// # let _ = url;
    /// # Ok(()) }
    /// ```
    pub async fn start_with(upstream: SocketAddr, path: impl Into<Path>) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            conns: Mutex::new(Vec::new()),
            path: Mutex::new(path.into()),
            refuse_until: Mutex::new(None),
            random: Mutex::new(None),
            counters: Counters::default(),
            gauges: Gauges::default(),
        });
        let task = tokio::spawn(accept(listener, upstream, shared.clone()));
        Ok(FaultProxy { addr, shared, task })
    }

    /// The proxy's address: point the client here.
    ///
    /// ```
    /// # use ws_reconnect::testing::FaultProxy;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let proxy = FaultProxy::start(upstream.local_addr()?).await?;
    /// assert!(proxy.addr().ip().is_loopback());
    /// # Ok(()) }
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Injects `fault` into every open connection (or, for `Refuse`, new ones).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::testing::{Fault, FaultProxy};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let proxy = FaultProxy::start(upstream.local_addr()?).await?;
    /// // The open connections get 50 ms of latency each way; new ones do not.
    /// proxy.inject(Fault::Delay(Duration::from_millis(50)));
    /// # Ok(()) }
    /// ```
    pub fn inject(&self, fault: Fault) {
        if let Fault::Refuse(d) = fault {
            *lock(&self.shared.refuse_until) = Some(Instant::now() + d);
            return;
        }
        for conn in self.shared.open() {
            self.shared.apply(&conn, fault);
        }
    }

    /// Sends every open connection and every new one through `path` (a [`Link`] for both
    /// directions, or a [`Path`]). On an open connection the change applies from the next
    /// chunk read on: bytes already on their way keep their due times, and nothing is
    /// delivered out of order (a chunk on a shorter latency waits for those ahead of it).
    ///
    /// ```
    /// use std::time::Duration;
    /// use ws_reconnect::testing::{FaultProxy, Link, Path};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// # let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// let proxy = FaultProxy::start(upstream.local_addr()?).await?;
    /// // The network degrades: slow uploads from now on.
    /// proxy.set_path(Path {
    ///     upstream: Link::new().latency(Duration::from_millis(100)).bandwidth(20_000),
    ///     downstream: Link::new().latency(Duration::from_millis(100)),
    /// });
    /// // And recovers.
    /// proxy.set_path(Link::new());
    /// # Ok(()) }
    /// ```
    pub fn set_path(&self, path: impl Into<Path>) {
        let path = path.into();
        *lock(&self.shared.path) = path;
        for conn in self.shared.open() {
            conn.set_path(path);
        }
    }

    /// From now on, every new connection draws a random fault.
    pub fn random(&self, plan: RandomFaults) {
        *lock(&self.shared.random) = Some(Draws::new(plan));
    }

    /// Faults injected so far.
    pub fn stats(&self) -> FaultStats {
        self.shared.counters.snapshot()
    }
}

/// Accepts connections and starts their pumps, until the proxy is dropped.
async fn accept(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut pumps = JoinSet::new();
    while let Ok((client, _)) = listener.accept().await {
        if shared.refusing() {
            shared.counters.refused.fetch_add(1, SeqCst);
            let _ = client.set_zero_linger();
            continue;
        }
        let Ok(server) = TcpStream::connect(upstream).await else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let conn = Conn::new(*lock(&shared.path));
        shared.arm_random(&conn, Kinds::Any);
        {
            let mut conns = lock(&shared.conns);
            conns.retain(|conn| conn.strong_count() > 0);
            conns.push(Arc::downgrade(&conn));
        }
        // Counted once faults reach it.
        shared.counters.connections.fetch_add(1, SeqCst);
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        let (up, down) = (Direction::Upstream, Direction::Downstream);
        pumps.spawn(pump::pump(cr, sw, conn.clone(), shared.clone(), up));
        pumps.spawn(pump::pump(sr, cw, conn, shared.clone(), down));
        // Reap the pumps that ended.
        while pumps.try_join_next().is_some() {}
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// The connections still open.
    fn open(&self) -> Vec<Arc<Conn>> {
        lock(&self.conns).iter().filter_map(Weak::upgrade).collect()
    }

    fn refusing(&self) -> bool {
        let mut until = lock(&self.refuse_until);
        if until.is_some_and(|t| Instant::now() < t) {
            return true;
        }
        // A random spell of refusals starts with this connection.
        if let Some(spell) = lock(&self.random).as_mut().and_then(Draws::refusal) {
            *until = Some(Instant::now() + spell);
            return true;
        }
        false
    }

    /// Draws this connection's fault, if faults are drawn at random.
    fn arm_random(&self, conn: &Conn, kinds: Kinds) {
        if let Some(drawn) = lock(&self.random).as_mut().and_then(|d| d.fault(kinds)) {
            conn.arm(drawn.after, Trigger::Drawn(drawn.fault));
        }
    }

    fn apply(&self, conn: &Conn, fault: Fault) {
        tracing::debug!(?fault, "fault proxy injects");
        let c = &self.counters;
        match fault {
            Fault::CutAfter(n) => {
                c.cuts.fetch_add(1, SeqCst);
                conn.cut_after(n);
            }
            Fault::Reset => {
                c.resets.fetch_add(1, SeqCst);
                conn.enter(Mode::Reset);
            }
            Fault::HalfOpen => {
                c.half_opens.fetch_add(1, SeqCst);
                conn.enter(Mode::HalfOpen);
            }
            Fault::Freeze => {
                c.freezes.fetch_add(1, SeqCst);
                conn.enter(Mode::Frozen);
            }
            Fault::Delay(d) => {
                c.delays.fetch_add(1, SeqCst);
                conn.set_latency(d);
            }
            Fault::Refuse(_) => {}
        }
    }
}
