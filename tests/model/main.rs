//! Model-based test: arbitrary interleavings of send, flush, read, failures, hang-ups,
//! refused reconnections and close, against a scripted connection. Invariants:
//! every accepted message is delivered or still held, never silently gone; delivered
//! messages arrive once each, in the order accepted; no panic; every operation
//! completes within a bounded number of polls (no busy loop).

#[path = "../support/mod.rs"]
mod support;

use std::task::Poll;

use futures::{Sink, Stream};
use proptest::prelude::*;
use ws_reconnect::{ConfirmBy, Error, Message, ReconnectingSink};

use support::mock;

#[derive(Debug, Clone)]
enum Op {
    Send(u8),
    Flush,
    Read,
    Inbound,
    FailNextFlush,
    HangUp,
    Refuse(bool),
    Close,
    Dial,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..20).prop_map(Op::Send),
        2 => Just(Op::Flush),
        1 => Just(Op::Read),
        1 => Just(Op::Inbound),
        2 => Just(Op::FailNextFlush),
        1 => Just(Op::HangUp),
        1 => any::<bool>().prop_map(Op::Refuse),
        1 => Just(Op::Close),
        1 => Just(Op::Dial),
    ]
}

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

fn run(ops: Vec<Op>, confirm_by: ConfirmBy) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let script = mock::Script::new();
        let mut ws = mock::sink(
            &script,
            ReconnectingSink::builder()
                .no_keepalive()
                .max_unflushed_messages(16)
                .confirm_by(confirm_by),
        );
        let mut task = tokio_test::task::spawn(());
        let mut accepted: Vec<String> = Vec::new();
        let mut taken: Vec<String> = Vec::new();
        let mut next = 0u32;
        let mut dialed = false;
        let mut sink = std::pin::Pin::new(&mut ws);
        for op in ops {
            match op {
                Op::Send(n) => {
                    for _ in 0..n {
                        let ready = drive(&mut task, POLLS, |cx| sink.as_mut().poll_ready(cx));
                        match ready {
                            Some(Ok(())) => {
                                let text = format!("m{next}");
                                next += 1;
                                sink.as_mut()
                                    .start_send(Message::text(text.clone()))
                                    .map_err(|e| {
                                        TestCaseError::fail(format!("start_send after ready: {e}"))
                                    })?;
                                accepted.push(text);
                            }
                            Some(Err(Error::NotDialed)) => {
                                prop_assert!(!dialed, "NotDialed while dialed")
                            }
                            Some(Err(_)) => break, // a refused reconnection: reported, nothing accepted
                            None => {
                                return Err(TestCaseError::fail(
                                    "poll_ready did not complete: busy or stuck",
                                ))
                            }
                        }
                    }
                }
                Op::Flush => {
                    let r = drive(&mut task, POLLS, |cx| sink.as_mut().poll_flush(cx));
                    prop_assert!(r.is_some(), "flush did not complete");
                }
                Op::Read => {
                    // Either an item or parked; never spinning.
                    let _ = drive(&mut task, 3, |cx| sink.as_mut().poll_next(cx));
                }
                Op::Inbound => {
                    let conns = script.connects();
                    if conns > 0 {
                        let senders = script.inbound.lock().unwrap();
                        if let Some(Some(tx)) = senders.get(conns - 1) {
                            let _ = tx.unbounded_send(Message::text("in"));
                        }
                    }
                }
                Op::FailNextFlush => {
                    let n = script.flushes.load(std::sync::atomic::Ordering::SeqCst);
                    script.fail_flush(n);
                }
                Op::HangUp => {
                    let conns = script.connects();
                    if conns > 0 {
                        script.hang_up(conns - 1);
                    }
                }
                Op::Refuse(on) => script.set_refuse(on),
                Op::Close => {
                    let mut hung_up = false;
                    let r = drive(&mut task, POLLS, |cx| {
                        let p = sink.as_mut().poll_close(cx);
                        if p.is_pending() && !hung_up {
                            // The peer answers our Close by ending the connection.
                            hung_up = true;
                            let conns = script.connects();
                            if conns > 0 {
                                script.hang_up(conns - 1);
                            }
                        }
                        p
                    });
                    // close() always ends the sink; what it could not deliver is still
                    // held, and the error says how much.
                    match r {
                        None => return Err(TestCaseError::fail("close did not complete")),
                        Some(Ok(())) => {
                            prop_assert_eq!(
                                sink.undelivered_count(),
                                0,
                                "closed with messages still held"
                            )
                        }
                        Some(Err(Error::CloseIncomplete { undelivered, .. })) => {
                            prop_assert_eq!(undelivered, sink.undelivered_count());
                            prop_assert!(undelivered > 0, "CloseIncomplete with nothing owed");
                        }
                        Some(Err(e)) => {
                            return Err(TestCaseError::fail(format!("close failed with {e}")))
                        }
                    }
                    dialed = false;
                }
                Op::Dial => {
                    let r = drive(&mut task, POLLS, |cx| {
                        let fut = sink.as_mut().get_mut().dial();
                        futures::pin_mut!(fut);
                        fut.poll(cx)
                    });
                    match r {
                        Some(Ok(())) => dialed = true,
                        Some(Err(_)) => {}
                        None => return Err(TestCaseError::fail("dial did not complete")),
                    }
                }
            }
            // The books: every accepted message delivered or held; first deliveries in
            // the order accepted. Confirmed at the flush, each is delivered once and
            // delivered ++ held == accepted; confirmed by a Pong, a message the peer may
            // have read is held (and resent) until the Pong says so.
            let delivered = script.delivered_texts();
            let delivered: Vec<String> = delivered
                .into_iter()
                .filter(|t| t.starts_with('m'))
                .collect();
            let held = sink.undelivered_count();
            let expected: Vec<String> = accepted
                .iter()
                .filter(|t| !taken.contains(t))
                .cloned()
                .collect();
            let first = firsts(&delivered);
            prop_assert!(
                first.len() + held >= expected.len(),
                "delivered {} + held {} < accepted {}: lost",
                first.len(),
                held,
                expected.len()
            );
            prop_assert_eq!(&first[..], &expected[..first.len()], "order broken");
            if confirm_by == ConfirmBy::Flush {
                prop_assert_eq!(first.len() + held, expected.len(), "counted twice");
                prop_assert_eq!(&first, &delivered, "delivered twice");
            }
        }
        // Whatever is still held can be taken back, in order, and nothing else.
        let rest: Vec<String> = sink
            .as_mut()
            .get_mut()
            .take_undelivered()
            .into_iter()
            .map(|m| m.into_text().unwrap().to_string())
            .collect();
        let delivered: Vec<String> = script
            .delivered_texts()
            .into_iter()
            .filter(|t| t.starts_with('m'))
            .collect();
        taken.extend(rest.iter().cloned());
        let mut all = firsts(&delivered);
        all.extend(rest.into_iter().filter(|t| !delivered.contains(t)));
        prop_assert_eq!(all, accepted);
        Ok(())
    })
}

use std::future::Future;

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn nothing_accepted_is_lost_or_reordered(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops, ConfirmBy::Flush)?;
    }

    #[test]
    fn confirmed_by_pongs_nothing_is_lost_or_reordered(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops, ConfirmBy::Pong)?;
    }
}

mod bugs;
mod checks;
mod record;
mod run;
mod wire;

use record::Mode;

fn wire_ops(mode: Mode) -> impl Strategy<Value = (Vec<run::Op>, bool)> {
    (
        proptest::collection::vec(run::op(mode, false), 1..40),
        any::<bool>(),
    )
}

proptest! {
    // Failures are not persisted: the regressions file is shared with every test binary.
    #![proptest_config(ProptestConfig {
        cases: 200,
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
