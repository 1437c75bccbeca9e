//! Model-based tests: arbitrary interleavings of operations against connections whose
//! peer the test scripts, with the sink's promises checked after each step and at the
//! end. No panic, and every operation completes within a bounded number of polls (no
//! busy loop), in all of them.
//!
//! - `plain.rs`, over `tests/support/mock` (a flush delivers): every accepted message is
//!   delivered or still held, never silently gone; delivered messages arrive once each,
//!   in the order accepted (`nothing_accepted_is_lost_or_reordered`,
//!   `confirmed_by_pongs_nothing_is_lost_or_reordered`).
//! - `run.rs` and `checks.rs`, over the peer of `wire.rs`, which reads what was flushed
//!   only when the test says so, answers Pings as it reads them, acknowledges, hangs up
//!   or sends a Close (1000, 1001) with messages still in flight:
//!   - outcomes: every `Delivery` resolves exactly once, by `close()` or when the sink
//!     is dropped, in the order accepted; `Ok` only with evidence the peer has the
//!     message (flushed with `ConfirmBy::Flush`, read before a Pong the sink took with
//!     `ConfirmBy::Pong`, acknowledged in acknowledged mode; or counted in
//!     `presumed_delivered`); a failure hands the message back, for a reason that
//!     happened;
//!   - volatile messages are written to one connection at most, and each one dropped is
//!     counted in `messages_dropped` and fails with `ConnectionLost`;
//!   - what a connection owed when it ended is written again to the next one after the
//!     `on_connect` message, in order, and each owed message that had reached the peer
//!     counts once in `possible_duplicates`; the peer reads no more duplicates than that;
//!   - acknowledged mode: nothing lost, in order, nothing written again once
//!     acknowledged, at most `window` unacknowledged, and a flush completes only when
//!     everything is acknowledged.
//! - `bugs.rs`: the cases where the sink breaks a promise, as ignored tests.

#[path = "../support/mod.rs"]
mod support;

mod bugs;
mod checks;
mod plain;
mod record;
mod run;
mod wire;

use std::task::Poll;

use proptest::prelude::*;
use ws_reconnect::ConfirmBy;

use record::Mode;

/// Polls `f` until it is ready, at most `limit` times; `None` if it stayed pending.
fn drive<T>(
    task: &mut tokio_test::task::Spawn<()>,
    limit: usize,
    mut f: impl FnMut(&mut std::task::Context<'_>) -> Poll<T>,
) -> Option<T> {
    for _ in 0..limit {
        if let Poll::Ready(v) = task.enter(|cx, _| f(cx)) {
            return Some(v);
        }
    }
    None
}

const POLLS: usize = 50;

/// The messages in `delivered` the first time each came, in that order.
fn firsts(delivered: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    delivered
        .iter()
        .filter(|t| seen.insert((*t).clone()))
        .cloned()
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn nothing_accepted_is_lost_or_reordered(ops in proptest::collection::vec(plain::op(), 1..40)) {
        plain::run(ops, ConfirmBy::Flush)?;
    }

    #[test]
    fn confirmed_by_pongs_nothing_is_lost_or_reordered(ops in proptest::collection::vec(plain::op(), 1..40)) {
        plain::run(ops, ConfirmBy::Pong)?;
    }
}

/// Up to 40 operations after the first dial, and whether the end takes what is owed
/// (`take_undelivered`) or drops the sink with it.
fn wire_ops(mode: Mode) -> impl Strategy<Value = (Vec<run::Op>, bool)> {
    (
        proptest::collection::vec(run::op(mode, false), 1..40),
        any::<bool>(),
    )
}

proptest! {
    // Failures are not persisted: the regressions file is shared with every test binary.
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]
    #[test]
    fn outcomes_volatile_and_crossings_confirmed_by_pongs((ops, take) in wire_ops(Mode::Pong)) {
        checks::run_wire(ops, Mode::Pong, take)?;
    }

    #[test]
    fn outcomes_volatile_and_crossings_confirmed_at_the_flush((ops, take) in wire_ops(Mode::Flush)) {
        checks::run_wire(ops, Mode::Flush, take)?;
    }

    #[test]
    fn acknowledged_mode_loses_nothing_within_the_window((ops, take) in wire_ops(Mode::Acked(4))) {
        checks::run_wire(ops, Mode::Acked(4), take)?;
    }
}
