//! What the hello hook, the acknowledgement reader and the sink share.
//!
//! Most of it sits behind one lock ([`Shared`]). What the writer reads for every message
//! sits beside it in atomics ([`Common`]), each written by one side only: the
//! acknowledgement reader writes what the server acknowledged and its window, the
//! writer what it sent and what it took back. What is in flight is the sink's outbox's
//! to count: it keeps every message until the server acknowledges it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use tokio::time::Instant;

use crate::resume::frame::{Claim, ResumeViolation, SessionId, Window};
use crate::resume::inbound::{Inbound, PendingGaps};
use crate::resume::prompt::PromptCadence;
use crate::sink::Unacked;

use super::*;

/// What the hello hook, the acknowledgement reader and the sink share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) session: Standing,
    pub(super) inbound: Inbound,
    pub(super) gaps: PendingGaps,
    /// Ask the server to send again from here.
    pub(super) replay_from: Option<u64>,
    pub(super) violations: VecDeque<ResumeViolation>,
    /// The server said BYE after the message before this position.
    pub(super) bye_at: Option<u64>,
    /// An acknowledgement has been owed since then.
    pub(super) owed_since: Option<Instant>,
    pub(super) stats: ResumeStats,
    pub(super) reader: Option<Waker>,
    pub(super) writer: Option<Waker>,
}

impl Shared {
    pub(super) fn wake_reader(&mut self) {
        if let Some(waker) = self.reader.take() {
            waker.wake();
        }
    }

    pub(super) fn wake_writer(&mut self) {
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
    }

    pub(super) fn violation(&mut self, violation: ResumeViolation) {
        tracing::warn!(%violation, "the server broke the resume protocol");
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push_back(violation);
        }
        self.wake_reader();
    }

    /// The application took messages: an acknowledgement is owed from now on, if it was
    /// not already.
    pub(super) fn took(&mut self, common: &Common) {
        if self.owed_since.is_none() {
            self.owed_since = Some(Instant::now());
        }
        common.owed.store(true, Ordering::Release);
    }

    /// An acknowledgement of `ack` went out: nothing is owed up to there.
    pub(super) fn ack_sent(&mut self, ack: u64, common: &Common) {
        self.inbound.ack_sent(ack);
        if self.inbound.owed().is_none() {
            self.owed_since = None;
            common.owed.store(false, Ordering::Release);
        }
    }
}

/// Which session this client is in, as far as it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// No WELCOME read yet: the id this client asks its first session to have, and
    /// whether a HELLO already asked for it (the connection may have been lost before
    /// the WELCOME came back, with the session started and the server's messages in it).
    Opening { id: SessionId, asked: bool },
    /// The session the last WELCOME named, and its epoch.
    Welcomed { id: SessionId, epoch: u64 },
}

impl Standing {
    /// A client that has not been welcomed yet, with a fresh id to ask for.
    pub(super) fn new() -> Self {
        Standing::Opening {
            id: SessionId::random(),
            asked: false,
        }
    }

    /// What the next HELLO asks for: the session first asked for again until one is
    /// welcomed, then the welcomed one.
    pub(super) fn claim(&mut self) -> Claim {
        match self {
            Standing::Opening { id, asked } => {
                let again = std::mem::replace(asked, true);
                if again {
                    Claim::Reopen(*id)
                } else {
                    Claim::Open(*id)
                }
            }
            Standing::Welcomed { id, epoch } => Claim::Resume(*id, *epoch),
        }
    }

    /// The session a WELCOME named, if any has.
    pub(super) fn welcomed(&self) -> Option<SessionId> {
        match self {
            Standing::Opening { .. } => None,
            Standing::Welcomed { id, .. } => Some(*id),
        }
    }
}

/// [`Shared`] behind its lock, and what the writer reads on every message without it.
#[derive(Debug)]
pub(super) struct Common {
    state: Mutex<Shared>,
    /// The server said BYE: set once, with `bye_at`.
    pub(super) bye: AtomicBool,
    /// An acknowledgement may be owed to the server (`Shared::owed_since`): the writer
    /// takes the lock to carry it only then.
    pub(super) owed: AtomicBool,
    /// The highest acknowledgement from the server, never past `sent`. Written by the
    /// acknowledgement reader.
    pub(super) acked: AtomicU64,
    /// The server's window, from its last WELCOME. Written by the acknowledgement
    /// reader.
    pub(super) peer_frames: AtomicU64,
    pub(super) peer_bytes: AtomicU64,
    /// The last sequence number handed to the sink (0: none). Written by the writer.
    pub(super) sent: AtomicU64,
    /// WELCOMEs read: which connection is the current one.
    pub(super) welcomes: AtomicU64,
}

impl Common {
    pub(super) fn new(state: Shared) -> Self {
        Common {
            state: Mutex::new(state),
            bye: AtomicBool::new(false),
            owed: AtomicBool::new(false),
            acked: AtomicU64::new(0),
            peer_frames: AtomicU64::new(Window::DEFAULT.frames),
            peer_bytes: AtomicU64::new(Window::DEFAULT.bytes),
            sent: AtomicU64::new(0),
            welcomes: AtomicU64::new(0),
        }
    }

    /// HELLO's `send_first`: the lowest sequence number this client still holds
    /// (`oldest_held`, from the sink's outbox), or the next one when it holds none. What
    /// it let go of below that (given up, taken back) the server is told of as a gap.
    pub(super) fn send_first(&self, oldest_held: Option<u64>) -> u64 {
        let acked = self.acked.load(Ordering::Acquire);
        let next = self.sent.load(Ordering::Acquire) + 1;
        oldest_held.unwrap_or(next).max(acked + 1)
    }
}

/// A message numbered by [`InFlight::push`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Numbered {
    pub(super) seq: u64,
    /// Its DATA frame carries a PROMPT.
    pub(super) prompt: bool,
}

/// The writer's numbering: the next sequence number, when to ask for an
/// acknowledgement, and the window. What is in flight is the sink's to keep: its outbox
/// holds every message until the server acknowledges it, and says how many and how many
/// bytes ([`Unacked`]). Owned by the writer.
#[derive(Debug)]
pub(super) struct InFlight {
    /// The next sequence number.
    next: u64,
    cadence: PromptCadence,
    /// What the last PROMPT covered.
    prompted: Prompted,
}

/// The last sequence number a PROMPT covered, and the connection it went out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Prompted {
    seq: u64,
    /// A count of WELCOMEs (`Common::welcomes`).
    connection: u64,
}

impl Prompted {
    fn now(seq: u64, common: &Common) -> Self {
        Prompted {
            seq,
            connection: common.welcomes.load(Ordering::Acquire),
        }
    }
}

impl InFlight {
    pub(super) fn new() -> Self {
        InFlight {
            next: 1,
            cadence: PromptCadence::default(),
            prompted: Prompted::default(),
        }
    }

    /// Numbers the next message, of `len` payload bytes, with `unacked` in flight before
    /// it.
    #[inline]
    pub(super) fn push(
        &mut self,
        len: usize,
        unacked: Unacked,
        config: &ResumeConfig,
        common: &Common,
    ) -> Numbered {
        let seq = self.next;
        self.next += 1;
        common.sent.store(seq, Ordering::Release);
        let prompt = self
            .cadence
            .next(unacked.messages == 0, len, window(config, common));
        if prompt {
            self.prompted = Prompted::now(seq, common);
        }
        Numbered { seq, prompt }
    }

    /// Whether a flush has to ask for an acknowledgement itself (a standalone PROMPT):
    /// messages are unacknowledged (`unacked`) that no PROMPT on the current connection
    /// covers.
    pub(super) fn needs_prompt(&self, unacked: Unacked, common: &Common) -> bool {
        unacked.messages > 0 && self.prompted != Prompted::now(self.next - 1, common)
    }

    /// A standalone PROMPT went out, covering everything sent.
    pub(super) fn prompted(&mut self, common: &Common) {
        self.cadence.restart();
        self.prompted = Prompted::now(self.next - 1, common);
    }

    /// Whether one more message fits in the window in effect, with `unacked` in flight.
    #[inline]
    pub(super) fn room(unacked: Unacked, config: &ResumeConfig, common: &Common) -> bool {
        let window = window(config, common);
        unacked.messages == 0
            || ((unacked.messages as u64) < window.frames && (unacked.bytes as u64) < window.bytes)
    }
}

/// The window in effect: ours, and the server's.
#[inline]
fn window(config: &ResumeConfig, common: &Common) -> Window {
    let peer_frames = common.peer_frames.load(Ordering::Acquire).max(1);
    let peer_bytes = common.peer_bytes.load(Ordering::Acquire);
    Window {
        frames: (config.max_unacked_frames as u64).min(peer_frames),
        bytes: (config.max_unacked_bytes as u64).min(peer_bytes),
    }
}

pub(super) type Cell = Arc<Common>;

#[inline]
pub(super) fn lock(cell: &Cell) -> MutexGuard<'_, Shared> {
    cell.state.lock().unwrap_or_else(|p| p.into_inner())
}
