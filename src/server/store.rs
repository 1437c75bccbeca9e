//! The session store: the table of live sessions, the tombstones of ended ones, the epoch,
//! and the memory budget over all replay buffers.
//!
//! Lock order: the table, then a session; never the other way round.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::session::{Cell, Ending, Host, Item, Link, Session, State};
use super::ServerConfig;
use crate::resume::frame::{Claim, Hello, ResumeViolation, SessionId, Welcome};
use crate::resume::{Gap, GapReason};

/// What every connection and session of a server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(super) config: ServerConfig,
    pub(super) epoch: u64,
    table: Mutex<Table>,
    new_sessions: mpsc::Sender<Session>,
    /// Payload bytes held by every session's replay buffer.
    held: AtomicUsize,
    pub(super) counters: Counters,
}

/// The live counts behind [`ServerStats`](super::ServerStats).
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) sessions: AtomicU64,
    pub(super) resumed: AtomicU64,
    pub(super) expired: AtomicU64,
    pub(super) evicted: AtomicU64,
    pub(super) gaps: AtomicU64,
    pub(super) violations: AtomicU64,
}

/// What the table remembers of an ended session.
#[derive(Debug, Clone, Copy)]
struct Tomb {
    /// The next sequence number it would have sent.
    send_next: u64,
    /// The session started for the client that came back for it. Until its WELCOME
    /// reaches the client, the client asks for the ended one again: it is given this
    /// one again, with the same gap, rather than a third session (which would pass
    /// over what this one's application sent meanwhile).
    successor: Option<SessionId>,
}

#[derive(Debug, Default)]
struct Table {
    sessions: HashMap<SessionId, Arc<Cell>>,
    /// Ended sessions, so that a client that comes back learns exactly what it missed.
    tombstones: HashMap<SessionId, Tomb>,
    order: VecDeque<SessionId>,
}

impl Table {
    fn bury(&mut self, id: SessionId, send_next: u64, max: usize) {
        if max == 0 {
            return;
        }
        let tomb = Tomb {
            send_next,
            successor: None,
        };
        if self.tombstones.insert(id, tomb).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > max {
            if let Some(old) = self.order.pop_front() {
                self.tombstones.remove(&old);
            }
        }
    }
}

/// A connection attached to a session.
pub(super) struct Attached {
    pub(super) cell: Arc<Cell>,
    pub(super) generation: u64,
    pub(super) welcome: Welcome,
}

/// A session asked for by id: attached, or gone, with what the client missed of it.
enum Found {
    Attached(Attached),
    Gone(Gap),
}

/// Why a HELLO could not be attached.
pub(super) enum Refusal {
    Violation(ResumeViolation),
    /// A new session could not be handed to the application.
    Full,
}

impl Shared {
    pub(super) fn new(config: ServerConfig, new_sessions: mpsc::Sender<Session>) -> Self {
        Shared {
            config,
            // Never 0: a HELLO with epoch 0 asks for a session never welcomed.
            epoch: rand::random::<u64>().max(1),
            table: Mutex::new(Table::default()),
            new_sessions,
            held: AtomicUsize::new(0),
            counters: Counters::default(),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sessions alive now.
    pub(super) fn session_count(&self) -> usize {
        self.table().sessions.len()
    }

    /// Payload bytes held by every replay buffer.
    pub(super) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Attaches a connection that said `hello`: resumes the session it asks for, or starts
    /// a new one (telling the client, by a gap, what the one it asked for had sent).
    pub(super) fn attach(self: &Arc<Self>, hello: Hello) -> Result<Attached, Refusal> {
        let mut table = self.table();
        let (lost, id) = match hello.claim {
            Claim::New => (None, None),
            Claim::Open(id) => {
                if table.sessions.contains_key(&id) || table.tombstones.contains_key(&id) {
                    // A client opens an id once, on its first connection; every later
                    // one asks again (`Reopen`). So this is that first connection,
                    // read after a later one: its client has moved on, and a session
                    // started here would only take in what the client resends to the
                    // other (duplicates nobody reads).
                    return Err(Refusal::Violation(ResumeViolation::SessionInUse));
                }
                (None, Some(id))
            }
            Claim::Reopen(id) => match self.find(&table, id, &hello)? {
                Found::Attached(attached) => return Ok(attached),
                Found::Gone(gap) if gap.reason == GapReason::Expired => {
                    return self.succeed(&mut table, id, &hello, gap)
                }
                // Never started, or lost in a restart: the new session keeps the id the
                // client knows it by.
                Found::Gone(gap) => (Some(gap), Some(id)),
            },
            Claim::Resume(id, epoch) if epoch == self.epoch => {
                match self.find(&table, id, &hello)? {
                    Found::Attached(attached) => return Ok(attached),
                    Found::Gone(gap) if gap.reason == GapReason::Expired => {
                        return self.succeed(&mut table, id, &hello, gap)
                    }
                    Found::Gone(gap) => (Some(gap), None),
                }
            }
            Claim::Resume(..) => (
                Some(Gap::new(hello.recv_next, None, GapReason::EpochChanged)),
                None,
            ),
        };
        self.start(&mut table, &hello, lost, id)
    }

    /// Starts the session that takes over from the ended session `ended`, whose client
    /// is told of `gap`, and remembers it in the tombstone.
    fn succeed(
        self: &Arc<Self>,
        table: &mut Table,
        ended: SessionId,
        hello: &Hello,
        gap: Gap,
    ) -> Result<Attached, Refusal> {
        let attached = self.start(table, hello, Some(gap), None)?;
        if let Some(tomb) = table.tombstones.get_mut(&ended) {
            tomb.successor = Some(attached.welcome.session);
        }
        Ok(attached)
    }

    /// Resumes session `id` of this epoch for a connection that said `hello`, or says
    /// what the client missed of it if it is gone. A session that ended and was
    /// succeeded by one whose WELCOME the client never read gives that one again, with
    /// the same gap.
    fn find(&self, table: &Table, id: SessionId, hello: &Hello) -> Result<Found, Refusal> {
        if let Some(cell) = table.sessions.get(&id).cloned() {
            if let Some(attached) = self.resume(cell, id, hello, None)? {
                return Ok(Found::Attached(attached));
            }
        }
        let Some(&tomb) = table.tombstones.get(&id) else {
            return Ok(Found::Gone(Gap::new(
                hello.recv_next,
                None,
                GapReason::SessionUnknown,
            )));
        };
        let gap = Gap::new(
            hello.recv_next,
            Some(tomb.send_next.max(hello.recv_next)),
            GapReason::Expired,
        );
        let successor = tomb
            .successor
            .and_then(|next| Some((next, table.sessions.get(&next).cloned()?)));
        if let Some((next, cell)) = successor {
            if let Some(attached) = self.resume(cell, next, hello, Some(gap))? {
                return Ok(Found::Attached(attached));
            }
        }
        Ok(Found::Gone(gap))
    }

    /// Resumes session `id` for a connection that said `hello`; `None` when the session
    /// has expired (its handle has not let go of it yet). `replacing`: the session is
    /// new to the client, which asked for an ended one; this gap goes first.
    fn resume(
        &self,
        cell: Arc<Cell>,
        id: SessionId,
        hello: &Hello,
        replacing: Option<Gap>,
    ) -> Result<Option<Attached>, Refusal> {
        let mut state = cell.lock();
        if state.ending == Some(Ending::Expired) {
            return Ok(None);
        }
        let resumed = replacing.is_none();
        let point = state
            .out
            .resume_from(hello.recv_next)
            .map_err(Refusal::Violation)?;
        // Take over: the connection attached before is fenced off.
        state.generation += 1;
        state.wake_conn();
        state.link = Link::Attached;
        state.cursor = point.cursor;
        state.pending_gap = replacing.or_else(|| {
            point
                .lost
                .map(|r| Gap::new(r.start, Some(r.end), GapReason::Overflow))
        });
        state.peer_window = hello.window;
        state.ack_again = true;
        state.attached();
        if hello.send_first > state.inbound.received() {
            // The client gave up messages it never delivered.
            let gap = Gap::new(
                state.inbound.received(),
                Some(hello.send_first),
                GapReason::Abandoned,
            );
            if let Some(gap) = state.inbound.on_gap(gap) {
                state.queue.push_back(Item::Gap(gap));
                state.wake_reader();
            }
        }
        state.wake_writer();
        if resumed {
            tracing::debug!(session = %id, generation = state.generation, cursor = state.cursor, "session resumed");
            self.counters.resumed.fetch_add(1, Ordering::Relaxed);
        } else {
            tracing::debug!(session = %id, "the session that replaced an ended one, asked for again");
        }
        let welcome = Welcome {
            session: id,
            epoch: self.epoch,
            resumed,
            recv_next: state.inbound.received(),
            window: self.config.recv_window(),
        };
        let generation = state.generation;
        drop(state);
        Ok(Some(Attached {
            cell,
            generation,
            welcome,
        }))
    }

    /// Starts a new session for a connection that said `hello`, under `id` (a fresh one
    /// if `None`), `lost` the range of the session it asked for that will never arrive.
    /// Its numbering goes on from where the client stands (past the lost range, when its
    /// end is known).
    fn start(
        self: &Arc<Self>,
        table: &mut Table,
        hello: &Hello,
        lost: Option<Gap>,
        id: Option<SessionId>,
    ) -> Result<Attached, Refusal> {
        let out_first = lost.and_then(|g| g.to).unwrap_or(hello.recv_next);
        let mut state = State::new(out_first, hello.send_first, hello.window);
        state.pending_gap = lost;
        // Nothing before the client's `send_first` is owed to this session: acknowledged
        // at once, so that what the client let go of before it counts in no window.
        state.ack_again = true;
        let id = id.unwrap_or_else(SessionId::random);
        let cell = Arc::new(Cell::new(id, state));
        let session = Session::new(Arc::clone(&cell), Arc::clone(self) as Arc<dyn Host>);
        if let Err(e) = self.new_sessions.try_send(session) {
            // Dropping the handle inside the error marks the cell ended; it was never
            // in the table.
            drop(e);
            return Err(Refusal::Full);
        }
        table.sessions.insert(id, Arc::clone(&cell));
        self.counters.sessions.fetch_add(1, Ordering::Relaxed);
        match lost {
            Some(gap) => {
                tracing::info!(session = %id, replaced = %gap, "new session replaces one that is gone")
            }
            None => tracing::info!(session = %id, "new session"),
        }
        let welcome = Welcome {
            session: id,
            epoch: self.epoch,
            resumed: false,
            recv_next: hello.send_first,
            window: self.config.recv_window(),
        };
        Ok(Attached {
            cell,
            generation: 0,
            welcome,
        })
    }

    /// The connection of `generation` is gone: unless a newer one took over, the session
    /// is detached and expires after its time to live.
    pub(super) fn detach(self: &Arc<Self>, cell: &Arc<Cell>, generation: u64) {
        let mut state = cell.lock();
        if state.generation != generation || !state.is_attached() {
            return;
        }
        let now = Instant::now();
        state.link = Link::Detached { since: now };
        // The overflow policy for an absent client applies now.
        state.wake_writer();
        let ended = matches!(state.ending, Some(Ending::ClientBye))
            || (state.ending == Some(Ending::AppClosed) && state.bye_sent && state.out.is_empty());
        drop(state);
        if ended {
            self.remove(cell, None);
            return;
        }
        tracing::debug!(session = %cell.id, ttl = ?self.config.session_ttl, "session detached");
        let shared = Arc::clone(self);
        let cell = Arc::clone(cell);
        let ttl = self.config.session_ttl;
        tokio::spawn(async move {
            tokio::time::sleep_until(now + ttl).await;
            let expired = {
                let state = cell.lock();
                state.generation == generation && !state.is_attached()
            };
            if expired {
                tracing::info!(session = %cell.id, "session expired: the client did not come back");
                shared.counters.expired.fetch_add(1, Ordering::Relaxed);
                shared.remove(&cell, Some(Ending::Expired));
            }
        });
    }

    /// Takes a session out of the table (leaving a tombstone), marking it `ending` if
    /// given, and lets go of its buffer.
    pub(super) fn remove(&self, cell: &Arc<Cell>, ending: Option<Ending>) {
        let mut table = self.table();
        let mut state = cell.lock();
        if let Some(ending) = ending {
            if state.ending != Some(Ending::ClientBye) {
                state.ending = Some(ending);
            }
        }
        let removed = table
            .sessions
            .get(&cell.id)
            .is_some_and(|c| Arc::ptr_eq(c, cell));
        if removed {
            table.sessions.remove(&cell.id);
            table.bury(cell.id, state.out.next(), self.config.max_tombstones);
        }
        let freed = state.out.bytes();
        // Nothing more will be sent: the buffer goes.
        while state.out.drop_oldest().is_some() {}
        state.wake_all();
        drop(state);
        drop(table);
        self.held_changed(0, freed);
    }

    /// A replay buffer grew by `added` payload bytes and shrank by `freed`: past the
    /// budget, detached sessions are evicted, the longest detached first.
    pub(super) fn held_changed(&self, added: usize, freed: usize) {
        if added >= freed {
            self.held.fetch_add(added - freed, Ordering::Relaxed);
        } else {
            self.held.fetch_sub(freed - added, Ordering::Relaxed);
        }
        let Some(budget) = self.config.global_budget_bytes else {
            return;
        };
        if self.held() <= budget {
            return;
        }
        let mut detached: Vec<(Instant, Arc<Cell>)> = self
            .table()
            .sessions
            .values()
            .filter_map(|cell| match cell.lock().link {
                Link::Detached { since } => Some((since, Arc::clone(cell))),
                Link::Attached => None,
            })
            .collect();
        detached.sort_by_key(|(since, _)| *since);
        for (_, cell) in detached {
            if self.held() <= budget {
                break;
            }
            tracing::info!(session = %cell.id, "session evicted: the server's memory budget is spent");
            self.counters.evicted.fetch_add(1, Ordering::Relaxed);
            self.remove(&cell, Some(Ending::Expired));
        }
    }
}

impl Host for Shared {
    fn config(&self) -> &ServerConfig {
        &self.config
    }

    fn buffer_changed(&self, added: usize, freed: usize) {
        self.held_changed(added, freed);
    }
}
