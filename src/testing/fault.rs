//! The faults the proxy injects, the random plan that draws them, and their counts.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Close every open connection (both ways) after this many more client-to-server
    /// bytes, mid-frame if that is where the count ends. Bytes are counted as they reach
    /// the proxy; those before the cut are still delivered, after the path's latency, and
    /// then the server sees the connection close.
    CutAfter(u64),
    /// Reset every open connection now (RST, `SO_LINGER` 0): whatever is in flight is
    /// lost, including what the path's delay lines hold.
    Reset,
    /// Give every open connection a latency of this much, both ways: every byte arrives
    /// this much later, and the rate is kept (later bytes travel meanwhile). The rest of
    /// the connection's [`Path`](super::Path) (jitter, bandwidth cap, buffer) is kept;
    /// connections made afterwards get the proxy's path (see
    /// [`FaultProxy::set_path`](super::FaultProxy::set_path)).
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
    /// Relative weights of cut, reset, half-open and delay faults. A delay gives the
    /// connection a latency of 0.1 to 2 ms, and the connection draws another fault.
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
    /// Connections given a latency by [`Fault::Delay`], injected or drawn at random.
    pub delays: u64,
    /// Connections refused.
    pub refused: u64,
}

/// The live counts behind [`FaultStats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) connections: AtomicU64,
    pub(super) cuts: AtomicU64,
    pub(super) resets: AtomicU64,
    pub(super) half_opens: AtomicU64,
    pub(super) freezes: AtomicU64,
    pub(super) delays: AtomicU64,
    pub(super) refused: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> FaultStats {
        FaultStats {
            connections: self.connections.load(SeqCst),
            cuts: self.cuts.load(SeqCst),
            resets: self.resets.load(SeqCst),
            half_opens: self.half_opens.load(SeqCst),
            freezes: self.freezes.load(SeqCst),
            delays: self.delays.load(SeqCst),
            refused: self.refused.load(SeqCst),
        }
    }
}

/// Which faults a draw may pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kinds {
    /// Any, as the weights say.
    Any,
    /// Only those that end a connection (after a delay fired: a delay alone would leave
    /// the connection up for good).
    Ending,
}

/// A fault drawn for a connection: `fault` fires after `after` client-to-server bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Drawn {
    pub(super) after: u64,
    pub(super) fault: Fault,
}

/// A [`RandomFaults`] plan and its generator.
#[derive(Debug)]
pub(super) struct Draws {
    plan: RandomFaults,
    rng: SmallRng,
}

impl Draws {
    pub(super) fn new(plan: RandomFaults) -> Draws {
        Draws {
            plan,
            rng: SmallRng::seed_from_u64(plan.seed),
        }
    }

    /// Whether a new connection starts a spell of refusals, and for how long.
    pub(super) fn refusal(&mut self) -> Option<Duration> {
        let p = self.plan.refuse_probability.clamp(0.0, 1.0);
        self.rng
            .random_bool(p)
            .then(|| Duration::from_millis(self.rng.random_range(20..200)))
    }

    /// A connection's fault; `None` if no weight allows one.
    pub(super) fn fault(&mut self, kinds: Kinds) -> Option<Drawn> {
        let mut weights = self.plan.weights;
        if kinds == Kinds::Ending {
            weights[3] = 0;
        }
        let total: u32 = weights.iter().sum();
        if total == 0 {
            return None;
        }
        let mut pick = self.rng.random_range(0..total);
        let mut kind = 0;
        while pick >= weights[kind] {
            pick -= weights[kind];
            kind += 1;
        }
        let after = self.rng.random_range(1..=2 * self.plan.mean_bytes.max(1));
        let fault = match kind {
            0 => Fault::CutAfter(0),
            1 => Fault::Reset,
            2 => Fault::HalfOpen,
            _ => Fault::Delay(Duration::from_micros(self.rng.random_range(100..2000))),
        };
        Some(Drawn { after, fault })
    }
}
