//! One direction of a forwarded connection: reads the sender, applies the faults, and
//! carries the bytes through the direction's delay line to the receiver.
//!
//! A pump goes through the connection's modes (see `conn.rs`):
//!
//! | mode | the pump |
//! |---|---|
//! | `Forwarding` | reads into the delay line and writes what is due ([`carry`]) |
//! | `HalfOpen` | reads and discards; writes nothing; closes nothing |
//! | `Cut` | client to server: delivers what the line holds, then closes; server to client: closes now |
//! | `Frozen` | touches neither socket, keeps both open |
//! | `Reset` | resets both sockets |
//!
//! A change of mode wins over a read or write in progress: the pump drops it (a read not
//! yet done consumes nothing; a write may have sent part of a piece, as a path that stops
//! mid-packet would) and with it what the line holds.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use super::conn::{Conn, Mode, Spent, Trigger};
use super::fault::{Fault, Kinds};
use super::line::{deliver, Line, Piece};
use super::link::Direction;
use super::schedule::Schedule;
use super::Shared;

/// The most a pump reads at once.
const READ_LEN: usize = 16 * 1024;

/// Forwards `from` to `to` in `direction` until the connection ends.
pub(super) async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    direction: Direction,
) {
    let mut mode = Mode::Forwarding;
    loop {
        mode = match mode {
            Mode::Forwarding => tokio::select! {
                biased;
                mode = conn.until(|mode| mode.stops(direction)) => mode,
                () = carry(&mut from, &mut to, &conn, &shared, direction) => return,
            },
            Mode::HalfOpen => tokio::select! {
                biased;
                mode = conn.until(|mode| mode > Mode::HalfOpen) => mode,
                // The sender closed: keep this side open all the same (no FIN while
                // half-open) until the connection is frozen or reset.
                () = swallow(&mut from) => conn.until(|mode| mode > Mode::HalfOpen).await,
            },
            Mode::Cut => return,
            Mode::Frozen => conn.until(|mode| mode > Mode::Frozen).await,
            Mode::Reset => {
                let _ = from.as_ref().set_zero_linger();
                let _ = to.as_ref().set_zero_linger();
                return;
            }
        };
        tracing::trace!(?direction, ?mode, "fault proxy pump");
    }
}

/// Reads and discards until the sender closes.
async fn swallow(from: &mut OwnedReadHalf) {
    let mut buf = vec![0u8; READ_LEN];
    while let Ok(1..) = from.read(&mut buf).await {}
}

/// Forwards through the delay line until the sender closes and the line has delivered
/// everything (or the budget of a cut ran out and the line delivered what came before
/// it), or the receiver is gone.
async fn carry(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    conn: &Conn,
    shared: &Shared,
    direction: Direction,
) {
    let line = Line::new(shared.gauges.get(direction));
    let reading = async {
        fill(from, &line, conn, shared, direction).await;
        line.close();
        // The writing side ends the carry.
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = deliver(&line, to) => {}
        () = reading => {}
    }
}

/// What the reading side got.
enum Read {
    Bytes(usize),
    /// The switches changed: look at the budget again.
    Woken,
    /// The sender closed, or the socket failed.
    End,
}

/// What becomes of a chunk, once the client-to-server budget has had its say.
enum Take {
    /// Forward it all.
    All,
    /// A fault that stops forwarding fired with it: drop it.
    Swallow,
    /// Forward its first bytes, up to the cut, and close.
    CutAt(usize),
}

/// The reading side of the delay line: reads while the line has room, stamps each chunk
/// with its due time and queues it. Returns when the sender closes or a cut's budget runs
/// out; waits for ever once a fault stops forwarding (the pump then drops it).
async fn fill(
    from: &mut OwnedReadHalf,
    line: &Line<'_>,
    conn: &Conn,
    shared: &Shared,
    direction: Direction,
) {
    let mut changes = conn.changes();
    let mut schedule = Schedule::new(SmallRng::from_os_rng());
    let mut buf = vec![0u8; READ_LEN];
    loop {
        let bound = conn.link(direction).buffer_len();
        let read = tokio::select! {
            biased;
            () = changes.next() => Read::Woken,
            read = async {
                let room = line.room(bound).await;
                match from.read(&mut buf[..room.min(READ_LEN)]).await {
                    Ok(0) | Err(_) => Read::End,
                    Ok(n) => Read::Bytes(n),
                }
            } => read,
        };
        let n = match read {
            Read::End => return,
            Read::Woken => 0,
            Read::Bytes(n) => n,
        };
        if conn.mode() != Mode::Forwarding {
            // The pump is about to see it and stop this side.
            std::future::pending::<()>().await;
        }
        let take = match direction {
            Direction::Upstream => spend(conn, shared, n),
            Direction::Downstream => Take::All,
        };
        match take {
            Take::All => queue(line, &mut schedule, conn, direction, &buf[..n]),
            Take::Swallow => {}
            Take::CutAt(at) => {
                queue(line, &mut schedule, conn, direction, &buf[..at]);
                conn.enter(Mode::Cut);
                return;
            }
        }
    }
}

/// Takes `n` client-to-server bytes (0: a check after a wake) from the connection's
/// budget and, if it ran out, sets off what was armed.
fn spend(conn: &Conn, shared: &Shared, n: usize) -> Take {
    let Spent::RanOut { at, then } = conn.spend(n) else {
        return Take::All;
    };
    match then {
        Trigger::Cut => Take::CutAt(at),
        Trigger::Drawn(Fault::CutAfter(_)) => {
            // A drawn cut counts when it fires (an injected one did when injected).
            shared.counters.cuts.fetch_add(1, SeqCst);
            Take::CutAt(at)
        }
        Trigger::Drawn(fault) => {
            shared.apply(conn, fault);
            if matches!(fault, Fault::Delay(_)) {
                // A delay alone would leave the connection up for good: draw its end.
                shared.arm_random(conn, Kinds::Ending);
            }
            // A delay forwards the chunk (late); a reset or black hole swallows it.
            if conn.mode() == Mode::Forwarding {
                Take::All
            } else {
                Take::Swallow
            }
        }
    }
}

/// Stamps `bytes`, which reached the proxy now, and queues their pieces.
fn queue(
    line: &Line<'_>,
    schedule: &mut Schedule,
    conn: &Conn,
    direction: Direction,
    bytes: &[u8],
) {
    let link = conn.link(direction);
    let mut offset = 0;
    for stamp in schedule.stamp(&link, Instant::now(), bytes.len()) {
        let piece = &bytes[offset..offset + stamp.len];
        offset += stamp.len;
        line.push(Piece {
            due: stamp.due,
            bytes: piece.to_vec(),
        });
    }
}
