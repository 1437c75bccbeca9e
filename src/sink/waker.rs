//! One waker that wakes both halves of the sink, and the signals a change sends.
//!
//! The connection, the connect future and the sleeps are polled with this waker, whoever
//! polls them. tungstenite keeps one read waker and one write waker; if the writing task
//! polled the socket with its own waker, a reader parked on the same socket would never
//! be woken again (and vice versa). Registering each half's waker here, and polling
//! everything with the fan-out, wakes both: a reconnection started by one half serves
//! the other.

use std::sync::Arc;
use std::task::{Wake, Waker};

use futures_util::task::AtomicWaker;
use tokio::sync::watch;

use super::state::ConnectionState;

/// Which half of the sink is polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Half {
    Read,
    Write,
}

#[derive(Debug, Default)]
pub(crate) struct Fanout {
    read: AtomicWaker,
    write: AtomicWaker,
}

impl Fanout {
    pub(crate) fn new() -> (Arc<Fanout>, Waker) {
        let fanout = Arc::new(Fanout::default());
        let waker = Waker::from(Arc::clone(&fanout));
        (fanout, waker)
    }

    /// Registers the waker of the half that is about to park.
    pub(crate) fn register(&self, half: Half, waker: &Waker) {
        match half {
            Half::Read => self.read.register(waker),
            Half::Write => self.write.register(waker),
        }
    }

    pub(crate) fn wake_read(&self) {
        self.read.wake();
    }

    /// Wakes the half that is not polling now: the polling one carries on by itself.
    pub(crate) fn wake_other(&self, current: Half) {
        match current {
            Half::Read => self.write.wake(),
            Half::Write => self.read.wake(),
        }
    }

    pub(crate) fn wake_all(&self) {
        self.read.wake();
        self.write.wake();
    }
}

impl Wake for Fanout {
    fn wake(self: Arc<Self>) {
        self.wake_all();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_all();
    }
}

/// Whom a change tells: the halves' wakers, and the state's watchers.
#[derive(Debug)]
pub(crate) struct Signals {
    pub(crate) wakers: Arc<Fanout>,
    state: Arc<watch::Sender<ConnectionState>>,
    /// The half polling now; a change wakes the other one.
    pub(crate) current: Half,
}

impl Signals {
    pub(crate) fn new(wakers: Arc<Fanout>, state: Arc<watch::Sender<ConnectionState>>) -> Self {
        Signals {
            wakers,
            state,
            current: Half::Write,
        }
    }

    /// Wakes the half that is not polling now.
    pub(crate) fn wake_other(&self) {
        self.wakers.wake_other(self.current);
    }

    /// Wakes the reader.
    pub(crate) fn wake_read(&self) {
        self.wakers.wake_read();
    }

    /// Shows `state` to the watchers.
    pub(crate) fn publish(&self, state: ConnectionState) {
        self.state.send_replace(state);
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<ConnectionState> {
        self.state.subscribe()
    }
}
