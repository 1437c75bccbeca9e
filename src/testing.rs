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
//! | [`Fault::Delay`] | every chunk arrives late |
//! | [`Fault::HalfOpen`] | a black hole: its writes are read and discarded, nothing comes back, nothing closes |
//! | [`Fault::Freeze`] | a frozen path: nothing is read or written any more, so its writes block once the buffers fill; nothing comes back, nothing closes |
//! | [`Fault::Refuse`] | new connections are accepted and reset for a while |
//!
//! Faults other than `Refuse` apply to the connections open at the time; connections made
//! afterwards are forwarded normally.
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

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Close every open connection (both ways) after this many more bytes, mid-frame if
    /// that is where the count ends.
    CutAfter(u64),
    /// Reset every open connection now (RST, `SO_LINGER` 0): whatever is in flight is lost.
    Reset,
    /// Delay every chunk forwarded on open connections by this much.
    Delay(Duration),
    /// Stop forwarding on every open connection, keeping both sockets open: the proxy
    /// still reads what the client writes and discards it (a black hole), so the
    /// client's writes keep succeeding.
    HalfOpen,
    /// Stop reading from and writing to both sockets of every open connection, keeping
    /// them open: the client's kernel send buffer fills and its writes block, and nothing
    /// reaches it (a peer whose host froze, or a path that stopped carrying packets). A
    /// later `Reset` still resets a frozen connection.
    Freeze,
    /// Refuse new connections (accept and reset them) for this long.
    Refuse(Duration),
}

/// Random faults: each new connection draws one fault, after a random number of bytes.
#[derive(Debug, Clone, Copy)]
pub struct RandomFaults {
    /// The seed of the generator.
    pub seed: u64,
    /// Mean bytes a connection carries (client to server) before its fault.
    pub mean_bytes: u64,
    /// Relative weights of cut, reset, half-open and delay faults.
    pub weights: [u32; 4],
    /// Chance that a new connection is refused (and the next few with it).
    pub refuse_probability: f64,
}

/// How many faults of each kind were injected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// Connections accepted and forwarded.
    pub connections: u64,
    /// Connections cut after a byte count.
    pub cuts: u64,
    /// Connections reset.
    pub resets: u64,
    /// Connections turned half-open.
    pub half_opens: u64,
    /// Connections frozen.
    pub freezes: u64,
    /// Connections slowed down.
    pub delays: u64,
    /// Connections refused.
    pub refused: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    cuts: AtomicU64,
    resets: AtomicU64,
    half_opens: AtomicU64,
    freezes: AtomicU64,
    delays: AtomicU64,
    refused: AtomicU64,
}

/// One forwarded connection's switches, shared by its two pumps.
#[derive(Debug)]
struct Conn {
    /// Bytes (client to server) left before a cut; `u64::MAX`: no cut pending.
    cut_after: AtomicU64,
    reset: AtomicBool,
    half_open: AtomicBool,
    frozen: AtomicBool,
    delay_nanos: AtomicU64,
    /// Bumped on every change of the switches. A watch channel, not a `Notify`: a pump
    /// busy writing when a fault is injected must still see it afterwards.
    wake: watch::Sender<()>,
    /// A random fault armed for this connection: fires when `cut_after` runs out.
    armed: Mutex<Option<Fault>>,
}

impl Conn {
    fn new() -> Arc<Conn> {
        Arc::new(Conn {
            cut_after: AtomicU64::new(u64::MAX),
            reset: AtomicBool::new(false),
            half_open: AtomicBool::new(false),
            frozen: AtomicBool::new(false),
            delay_nanos: AtomicU64::new(0),
            wake: watch::Sender::new(()),
            armed: Mutex::new(None),
        })
    }
}

#[derive(Debug)]
struct Shared {
    conns: Mutex<Vec<std::sync::Weak<Conn>>>,
    refuse_until: Mutex<Option<Instant>>,
    random: Mutex<Option<(RandomFaults, SmallRng)>>,
    counters: Counters,
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
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            conns: Mutex::new(Vec::new()),
            refuse_until: Mutex::new(None),
            random: Mutex::new(None),
            counters: Counters::default(),
        });
        let s = shared.clone();
        let task = tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                if s.refusing() {
                    s.counters.refused.fetch_add(1, SeqCst);
                    let _ = client.set_zero_linger();
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                s.counters.connections.fetch_add(1, SeqCst);
                let conn = Conn::new();
                s.arm_random(&conn);
                lock(&s.conns).push(Arc::downgrade(&conn));
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tasks.spawn(pump(cr, sw, conn.clone(), s.clone(), true));
                tasks.spawn(pump(sr, cw, conn, s.clone(), false));
            }
        });
        Ok(FaultProxy { addr, shared, task })
    }

    /// The proxy's address: point the client here.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Injects `fault` into every open connection (or, for `Refuse`, new ones).
    pub fn inject(&self, fault: Fault) {
        if let Fault::Refuse(d) = fault {
            *lock(&self.shared.refuse_until) = Some(Instant::now() + d);
            return;
        }
        let conns: Vec<Arc<Conn>> = lock(&self.shared.conns)
            .iter()
            .filter_map(|w| w.upgrade())
            .collect();
        for conn in conns {
            self.shared.apply(&conn, fault);
        }
    }

    /// From now on, every new connection draws a random fault.
    pub fn random(&self, plan: RandomFaults) {
        *lock(&self.shared.random) = Some((plan, SmallRng::seed_from_u64(plan.seed)));
    }

    /// Faults injected so far.
    pub fn stats(&self) -> FaultStats {
        let c = &self.shared.counters;
        FaultStats {
            connections: c.connections.load(SeqCst),
            cuts: c.cuts.load(SeqCst),
            resets: c.resets.load(SeqCst),
            half_opens: c.half_opens.load(SeqCst),
            freezes: c.freezes.load(SeqCst),
            delays: c.delays.load(SeqCst),
            refused: c.refused.load(SeqCst),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn refusing(&self) -> bool {
        let mut until = lock(&self.refuse_until);
        if until.is_some_and(|t| Instant::now() < t) {
            return true;
        }
        // A random spell of refusals starts with this connection.
        let mut random = lock(&self.random);
        if let Some((plan, rng)) = random.as_mut() {
            if rng.random_bool(plan.refuse_probability.clamp(0.0, 1.0)) {
                *until = Some(Instant::now() + Duration::from_millis(rng.random_range(20..200)));
                return true;
            }
        }
        false
    }

    /// Draws this connection's fault. A delay slows a connection without ending it, so
    /// after a delay fires another fault is drawn (`ending_only`).
    fn arm_random(&self, conn: &Conn) {
        self.arm_random_with(conn, false);
    }

    fn arm_random_with(&self, conn: &Conn, ending_only: bool) {
        let mut random = lock(&self.random);
        let Some((plan, rng)) = random.as_mut() else {
            return;
        };
        let mut weights = plan.weights;
        if ending_only {
            weights[3] = 0;
        }
        let total: u32 = weights.iter().sum();
        if total == 0 {
            return;
        }
        let mut pick = rng.random_range(0..total);
        let mut kind = 0;
        while pick >= weights[kind] {
            pick -= weights[kind];
            kind += 1;
        }
        let after = rng.random_range(1..=2 * plan.mean_bytes.max(1));
        let fault = match kind {
            0 => Fault::CutAfter(0),
            1 => Fault::Reset,
            2 => Fault::HalfOpen,
            _ => Fault::Delay(Duration::from_micros(rng.random_range(100..2000))),
        };
        *lock(&conn.armed) = Some(fault);
        conn.cut_after.store(after, SeqCst);
    }

    fn apply(&self, conn: &Conn, fault: Fault) {
        let c = &self.counters;
        match fault {
            Fault::CutAfter(n) => {
                c.cuts.fetch_add(1, SeqCst);
                conn.cut_after.store(n, SeqCst);
            }
            Fault::Reset => {
                c.resets.fetch_add(1, SeqCst);
                conn.reset.store(true, SeqCst);
            }
            Fault::HalfOpen => {
                c.half_opens.fetch_add(1, SeqCst);
                conn.half_open.store(true, SeqCst);
            }
            Fault::Freeze => {
                c.freezes.fetch_add(1, SeqCst);
                conn.frozen.store(true, SeqCst);
            }
            Fault::Delay(d) => {
                c.delays.fetch_add(1, SeqCst);
                conn.delay_nanos.store(d.as_nanos() as u64, SeqCst);
            }
            Fault::Refuse(_) => {}
        }
        conn.wake.send_replace(());
    }
}

/// Forwards `from` to `to` until the connection ends or is frozen. A frozen pump keeps
/// both halves open and touches neither, until a reset.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    upstream: bool,
) {
    let mut wake = conn.wake.subscribe();
    tokio::select! {
        // The freeze wins over a read or write in progress: dropping `forward` abandons
        // it (a read not yet done consumes nothing; a write may have sent part of a chunk,
        // as a path that stops mid-packet would).
        biased;
        () = frozen(&conn) => {}
        () = forward(&mut from, &mut to, &conn, &shared, upstream, &mut wake) => return,
    }
    loop {
        if wake.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        if conn.reset.load(SeqCst) {
            let _ = from.as_ref().set_zero_linger();
            let _ = to.as_ref().set_zero_linger();
            return;
        }
    }
}

/// Resolves once the connection is frozen.
async fn frozen(conn: &Conn) {
    let mut wake = conn.wake.subscribe();
    while !conn.frozen.load(SeqCst) {
        if wake.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn forward(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    conn: &Arc<Conn>,
    shared: &Shared,
    upstream: bool,
    wake: &mut watch::Receiver<()>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = wake.changed() => 0,
        };
        if conn.reset.load(SeqCst) {
            let _ = from.as_ref().set_zero_linger();
            let _ = to.as_ref().set_zero_linger();
            conn.wake.send_replace(());
            return;
        }
        if conn.half_open.load(SeqCst) {
            // Swallow everything, close nothing.
            continue;
        }
        if upstream {
            let left = conn.cut_after.load(SeqCst);
            if left != u64::MAX {
                if (n as u64) >= left {
                    let armed = lock(&conn.armed).take();
                    match armed {
                        // A cut (commanded, or drawn at random): forward up to the budget,
                        // mid-frame if that is where it ends, and close both ways.
                        Some(Fault::CutAfter(_)) | None => {
                            let _ = to.write_all(&buf[..left as usize]).await;
                            if armed.is_some() {
                                shared.counters.cuts.fetch_add(1, SeqCst);
                            }
                            conn.reset.store(false, SeqCst);
                            conn.cut_after.store(0, SeqCst);
                            conn.half_open.store(false, SeqCst);
                            // Close both ways: the other pump sees the wake and stops.
                            conn.wake.send_replace(());
                            let _ = to.shutdown().await;
                            return;
                        }
                        // Any other random fault starts now; a delay forwards this
                        // whole chunk (slowly), the others swallow it.
                        Some(other) => {
                            conn.cut_after.store(u64::MAX, SeqCst);
                            shared.apply(conn, other);
                            if matches!(other, Fault::Delay(_)) {
                                shared.arm_random_with(conn, true);
                            }
                            if conn.reset.load(SeqCst) || conn.half_open.load(SeqCst) {
                                continue;
                            }
                        }
                    }
                } else {
                    conn.cut_after.store(left - n as u64, SeqCst);
                }
            }
        } else if conn.cut_after.load(SeqCst) == 0 {
            return; // the upstream pump cut the connection
        }
        if n == 0 {
            continue;
        }
        let delay = conn.delay_nanos.load(SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_nanos(delay)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if conn.half_open.load(SeqCst) {
        // Keep this side open while half-open: the peer must see no FIN.
        let _ = wake.changed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(20);

    /// An upstream that echoes bytes on every connection.
    async fn echo_upstream() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = tcp.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(client: &mut TcpStream, bytes: &[u8]) {
        client.write_all(bytes).await.unwrap();
        let mut back = vec![0; bytes.len()];
        tokio::time::timeout(BOUND, client.read_exact(&mut back))
            .await
            .expect("the echo came back")
            .unwrap();
        assert_eq!(back, bytes);
    }

    #[tokio::test]
    async fn a_frozen_connection_blocks_the_writer_and_stays_open_while_new_ones_flow() {
        let proxy = FaultProxy::start(echo_upstream().await).await.unwrap();
        let mut frozen = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut frozen, b"before").await;

        proxy.inject(Fault::Freeze);
        assert_eq!(proxy.stats().freezes, 1);

        // Nothing comes back, and the socket is not closed either (no EOF, no reset).
        frozen.write_all(b"after").await.unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_millis(300), frozen.read(&mut buf)).await;
        assert!(read.is_err(), "a frozen connection delivered {read:?}");

        // Nobody reads the client's bytes any more: its writes block once the kernel
        // buffers on the way are full (a black hole would take them forever).
        let chunk = vec![0u8; 64 * 1024];
        let mut blocked = false;
        for _ in 0..4096 {
            let write =
                tokio::time::timeout(Duration::from_millis(500), frozen.write_all(&chunk)).await;
            if write.is_err() {
                blocked = true;
                break;
            }
            write.unwrap().unwrap();
        }
        assert!(blocked, "256 MiB written into a frozen connection");

        // A connection made after the freeze is forwarded normally.
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        round_trip(&mut fresh, b"fresh").await;
        assert_eq!(proxy.stats().connections, 2);

        // A reset still ends a frozen connection.
        proxy.inject(Fault::Reset);
        let end = tokio::time::timeout(BOUND, async {
            loop {
                match frozen.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(end.is_ok(), "a reset frozen connection stayed open");
    }
}
