//! What the hello hook, the acknowledgement reader and the sink share.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use tokio::time::Instant;

use crate::resume::buffer::ReplayBuffer;
use crate::resume::frame::{ResumeViolation, SessionId, Window};
use crate::resume::inbound::{Inbound, PendingGaps};

use super::*;

/// What the hello hook, the acknowledgement reader and the sink share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) session: Option<(SessionId, u64)>,
    /// Messages sent and not yet acknowledged: sequence numbers and lengths (the sink
    /// underneath holds the messages themselves).
    pub(super) ledger: ReplayBuffer<()>,
    pub(super) peer_window: Window,
    pub(super) inbound: Inbound,
    pub(super) gaps: PendingGaps,
    /// Ask the server to send again from here.
    pub(super) replay_from: Option<u64>,
    pub(super) violations: VecDeque<ResumeViolation>,
    /// The server said BYE after the message before this position.
    pub(super) bye_at: Option<u64>,
    /// The highest acknowledgement seen, carried by DATA or not.
    pub(super) acked: u64,
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

    /// Applies a cumulative acknowledgement from the server to the ledger.
    pub(super) fn acknowledge(&mut self, ack: u64) {
        match self.ledger.ack(ack) {
            Ok(0) => {}
            Ok(_) => self.wake_writer(),
            Err(violation) => self.violation(violation),
        }
        self.acked = self.acked.max(ack.min(self.ledger.next() - 1));
    }

    /// The window in effect: ours, and the server's.
    pub(super) fn room(&self, config: &ResumeConfig) -> bool {
        let frames = (config.max_unacked_frames as u64).min(self.peer_window.frames.max(1));
        let bytes = (config.max_unacked_bytes as u64).min(self.peer_window.bytes);
        self.ledger.is_empty()
            || ((self.ledger.len() as u64) < frames && (self.ledger.bytes() as u64) < bytes)
    }
}

pub(super) type Cell = Arc<Mutex<Shared>>;

pub(super) fn lock(cell: &Cell) -> MutexGuard<'_, Shared> {
    cell.lock().unwrap_or_else(|p| p.into_inner())
}
