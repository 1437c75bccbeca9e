//! The wire models' invariants, checked once the run is over and the sink is gone.

use std::collections::HashMap;

use proptest::prelude::*;
use ws_reconnect::{Message, Stats};

use crate::record::{Kind, Mode, Resolved};
use crate::run::{settle, Op, Run};
use crate::wire::{number, Conn, Ending, World};

/// The data texts written to `conn`, in order.
fn written(conn: &Conn) -> Vec<String> {
    conn.written
        .iter()
        .filter_map(|m| match m {
            Message::Text(t) if t.starts_with('m') => Some(t.to_string()),
            _ => None,
        })
        .collect()
}

/// Each connection is written the `on_connect` message first, then numbered messages in
/// increasing order (the resent ones, then new ones), so the order accepted holds on
/// every connection.
fn check_connections(world: &World) -> Result<(), TestCaseError> {
    for (k, conn) in world.conns.iter().enumerate() {
        if let Some(first) = conn.written.first() {
            prop_assert_eq!(first, &Message::text("hello"), "conn {} began otherwise", k);
        }
        let numbers: Vec<u64> = written(conn).iter().filter_map(|t| number(t)).collect();
        prop_assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "conn {}: written out of order: {:?}",
            k,
            numbers
        );
    }
    Ok(())
}

/// Whether `text`, written to `conn`, was confirmed there: flushed (`Flush`), read
/// before a Ping whose Pong the client took (`Pong`), or acknowledged by an
/// acknowledgement the client read by then (`acked`).
fn confirmed_on(mode: Mode, conn: &Conn, text: &str, acked: u64) -> bool {
    match mode {
        Mode::Flush => conn.flushed.iter().any(|t| t == text),
        Mode::Pong => conn.read[..conn.ponged].iter().any(|t| t == text),
        Mode::Acked(_) => number(text).is_some_and(|n| n <= acked),
    }
}

/// What a connection owed when it ended is written again to the next one, in order,
/// after the `on_connect` message: every message written to it and not confirmed there,
/// unless volatile (dropped with it) or handed back by its outcome when the sink gave up
/// or closed. A message the peer closed on a second time may be taken as delivered
/// instead; those are counted in `presumed_delivered`. Of the messages owed, those that
/// reached the peer are possible duplicates, each counted once per end in
/// `possible_duplicates` (plain mode, confirmed by Pongs).
fn check_resends(run: &Run, stats: &Stats) -> Result<(), TestCaseError> {
    let world = run.make.world();
    let (mut presumed, mut duplicates) = (0u64, 0u64);
    let mut ever_owed: HashMap<String, usize> = HashMap::new();
    for (k, conn) in world.conns.iter().enumerate() {
        let next = world.conns.get(k + 1);
        if conn.closed_by_client() || (next.is_none() && conn.ending == Ending::Open) {
            // Closed by close(), or still up when the sink was dropped. What a close left
            // unconfirmed stays owed (a later dial writes it again) and counts as an
            // earlier end for the presumption below.
            for t in written(conn) {
                if conn.flushed.contains(&t) && !confirmed_on(run.mode, conn, &t, world.acked_by(k))
                {
                    ever_owed.entry(t).or_insert(k);
                }
            }
            continue;
        }
        let owed: Vec<String> = written(conn)
            .into_iter()
            .filter(|t| run.record.kind(t) != Kind::Volatile)
            .filter(|t| !confirmed_on(run.mode, conn, t, world.acked_by(k)))
            .collect();
        let again = next.map(written).unwrap_or_default();
        let mut at = 0;
        for t in &owed {
            let reached = u64::from(conn.wired.contains(t) && run.mode == Mode::Pong);
            let given_up = matches!(
                run.record.resolved(t),
                Some(Resolved::Err("GaveUp" | "Closed", _))
            );
            // Written again after an earlier end and closed on by the peer once more.
            let presumable = matches!(conn.ending, Ending::Closed(_))
                && ever_owed.get(t).is_some_and(|&j| j < k)
                && run.mode == Mode::Pong;
            match again[at..].iter().position(|a| a == t) {
                Some(p) => at += p + 1,
                None if presumable && reached == 1 => {
                    presumed += 1;
                    continue;
                }
                None => prop_assert!(
                    given_up || next.is_none(),
                    "conn {} owed {} and conn {} was not written it (written {:?})",
                    k,
                    t,
                    k + 1,
                    again
                ),
            }
            duplicates += reached;
            if conn.flushed.contains(t) {
                ever_owed.entry(t.clone()).or_insert(k);
            }
        }
    }
    prop_assert!(presumed <= stats.presumed_delivered, "presumed miscounted");
    prop_assert_eq!(duplicates, stats.possible_duplicates, "possible duplicates");
    Ok(())
}

/// The messages the peer read more than once, counted once per extra read.
fn extra_reads(world: &World) -> u64 {
    let mut reads: HashMap<&str, u64> = HashMap::new();
    for conn in &world.conns {
        for t in conn.read.iter().filter(|t| number(t).is_some()) {
            *reads.entry(t).or_default() += 1;
        }
    }
    reads.values().map(|n| n - 1).sum()
}

/// Outcomes and losses: `Ok` only with evidence the peer has the message, volatile
/// messages on one connection at most, their drops counted, nothing accepted gone
/// without a trace (`held`: messages the dropped sink still owed).
fn check_outcomes(run: &Run, stats: &Stats, held: usize) -> Result<(), TestCaseError> {
    let world = run.make.world();
    let read = |t: &str| world.conns.iter().any(|c| c.read.iter().any(|r| r == t));
    // Confirmed by a Pong the client took, or read before the peer answered our Close.
    let proven = |t: &str| {
        world.conns.iter().any(|c| {
            let read = c.read.iter().any(|r| r == t);
            c.read[..c.ponged].iter().any(|r| r == t) || (c.closed_by_client() && read)
        })
    };
    let flushed = |t: &str| world.conns.iter().any(|c| c.flushed.iter().any(|r| r == t));
    let has_it = |t: &str| match run.mode {
        Mode::Flush => flushed(t),
        _ => read(t),
    };
    let (mut unproven, mut lost, mut lost_volatile) = (0u64, 0usize, 0u64);
    for sent in &run.record.sent {
        let t = sent.text.as_str();
        if let Mode::Acked(_) = run.mode {
            if sent.resolved == Some(Resolved::Ok) {
                prop_assert!(number(t).unwrap() <= world.acked, "{} Ok unacknowledged", t);
            }
        }
        if sent.kind == Kind::Volatile {
            let on = world
                .conns
                .iter()
                .filter(|c| written(c).iter().any(|w| w == t));
            prop_assert!(on.count() <= 1, "volatile {} written to two connections", t);
            let gone = matches!(&sent.resolved, Some(Resolved::Err("ConnectionLost", _)));
            lost_volatile += u64::from(gone);
            continue;
        }
        if run.mode == Mode::Pong && sent.resolved == Some(Resolved::Ok) && !proven(t) {
            unproven += 1;
            continue;
        }
        if has_it(t) || run.record.handed_back(t) {
            continue;
        }
        if sent.resolved == Some(Resolved::Ok) {
            unproven += 1;
        } else if sent.kind == Kind::Plain {
            lost += 1;
        }
    }
    prop_assert_eq!(stats.messages_dropped, lost_volatile, "drops miscounted");
    prop_assert!(
        unproven <= stats.presumed_delivered,
        "{} resolved Ok the peer never had ({} presumed)",
        unproven,
        stats.presumed_delivered
    );
    prop_assert!(
        lost <= held + (stats.presumed_delivered - unproven) as usize,
        "{} plain messages gone, {} held",
        lost,
        held
    );
    Ok(())
}

/// Runs `ops` against the wire in `mode`, then either takes what is owed (`take`) or
/// drops the sink with it, and checks every invariant.
pub fn run_wire(ops: Vec<Op>, mode: Mode, take: bool) -> Result<(), TestCaseError> {
    run_bounded(ops, mode, take, crate::run::BOUND)
}

/// [`run_wire`] with `bound` as the outbox bound.
pub fn run_bounded(
    ops: Vec<Op>,
    mode: Mode,
    take: bool,
    bound: usize,
) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut run = Run::new(mode, bound);
    for op in std::iter::once(Op::Dial).chain(ops) {
        run.step(op)?;
        settle(&mut run);
        run.record.poll_outcomes()?;
    }
    let mut held = 0;
    if take {
        let taken = run.ws.take_undelivered();
        run.record.events.taken = true;
        held = taken.len();
    } else {
        held += run.ws.undelivered_count();
        run.record.events.dropped = true;
    }
    let stats = run.ws.stats();
    let sink = std::mem::replace(&mut run.ws, crate::run::build(&run.make, mode, 1));
    drop(sink);
    run.record.poll_outcomes()?;
    for sent in run.record.sent.iter().filter(|s| s.kind != Kind::Plain) {
        prop_assert!(sent.resolved.is_some(), "{} never resolved", sent.text);
    }
    run.record.check_failures()?;
    check_connections(&run.make.world())?;
    check_resends(&run, &stats)?;
    check_outcomes(&run, &stats, held)?;
    let world = run.make.world();
    if let Mode::Acked(_) = mode {
        prop_assert!(
            world.resent_after_ack.is_empty(),
            "written again after its acknowledgement: {:?}",
            world.resent_after_ack
        );
    } else {
        let extra = extra_reads(&world);
        prop_assert!(
            extra <= stats.possible_duplicates,
            "duplicates read {}, counted {}",
            extra,
            stats.possible_duplicates
        );
    }
    Ok(())
}
