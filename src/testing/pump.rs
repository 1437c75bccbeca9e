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
    let mut schedule = super::schedule::Schedule::new(SmallRng::from_os_rng());
    let mut buf = vec![0u8; READ_LEN];
    loop {
        let bound = conn.link(direction).buffer_len();
        let read = tokio::select! {
            biased;
            () = changes.next() => Read::Woken,
            read = async {
                let room = line.room(bound).await;
                let len = room.min(READ_LEN);
                match from.read(&mut buf[..len]).await {
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
        let mut keep = n;
        if direction == Direction::Upstream {
            if let Spent::RanOut { at, then } = conn.spend(n) {
                match then {
                    Trigger::Cut | Trigger::Drawn(Fault::CutAfter(_)) => {
                        if matches!(then, Trigger::Drawn(_)) {
                            shared
                                .counters
                                .cuts
                                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        queue(line, &mut schedule, conn, direction, &buf[..at]);
                        conn.enter(Mode::Cut);
                        return;
                    }
                    Trigger::Drawn(fault) => {
                        shared.apply(conn, fault);
                        if matches!(fault, Fault::Delay(_)) {
                            shared.arm_random(conn, Kinds::Ending);
                        }
                        if conn.mode() != Mode::Forwarding {
                            // The fault swallows this chunk.
                            keep = 0;
                        }
                    }
                }
            }
        }
        queue(line, &mut schedule, conn, direction, &buf[..keep]);
    }
}

/// Stamps `bytes`, which reached the proxy now, and queues their pieces.
fn queue(
    line: &Line<'_>,
    schedule: &mut super::schedule::Schedule,
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
