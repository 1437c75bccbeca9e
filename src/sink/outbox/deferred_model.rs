//! A randomized model of the outbox with messages held back for a batch: after every
//! operation, in any order, the marks (written, flushed, unflushed bytes), the tracked
//! counts, and the held-back claim (exactly the unwritten tracked end of the queue, with
//! its bytes) hold, and everything left is written in the end.
use super::deferred::BATCH_BYTES;
use super::tests::Joining;
use super::*;
use crate::sink::outcome::Delivery;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    PushDeferred(u8),
    Push {
        tracked: bool,
        control: bool,
        volatile: bool,
        promised: bool,
    },
    WriteOne,
    Gather,
    Rewind,
    Ack(u8),
    Flushed,
    FlushedConfirm,
    Confirm,
    ConnectionLost(bool),
    TakeAll,
    GiveUp,
    DiscardControl(bool),
    Untrack,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3).prop_map(Op::PushDeferred),
        2 => (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(tracked, control, volatile, promised)| Op::Push { tracked, control: control && !tracked, volatile, promised }),
        2 => Just(Op::WriteOne),
        2 => Just(Op::Gather),
        1 => Just(Op::Rewind),
        2 => any::<u8>().prop_map(Op::Ack),
        1 => Just(Op::Flushed),
        1 => Just(Op::FlushedConfirm),
        1 => Just(Op::Confirm),
        1 => any::<bool>().prop_map(Op::ConnectionLost),
        1 => Just(Op::TakeAll),
        1 => Just(Op::GiveUp),
        1 => any::<bool>().prop_map(Op::DiscardControl),
        1 => Just(Op::Untrack),
    ]
}

fn check(o: &Outbox, step: usize, op: &Op) {
    let len = o.queue.len();
    assert!(
        o.written <= len,
        "{step} {op:?}: written {} > len {len}",
        o.written
    );
    assert!(
        o.flushed <= o.written,
        "{step} {op:?}: flushed {} > written {}",
        o.flushed,
        o.written
    );
    let unflushed: usize = o.queue.iter().skip(o.flushed).map(|e| e.kept.len()).sum();
    assert_eq!(
        o.unflushed_bytes, unflushed,
        "{step} {op:?}: unflushed_bytes"
    );
    let tracked = o.queue.iter().filter(|e| e.id.is_some()).count();
    assert_eq!(o.tracked, tracked, "{step} {op:?}: tracked");
    let tracked_bytes: usize = o
        .queue
        .iter()
        .filter(|e| e.id.is_some())
        .map(|e| e.kept.len())
        .sum();
    assert_eq!(
        o.tracked_bytes, tracked_bytes,
        "{step} {op:?}: tracked_bytes"
    );
    let d = o.deferred;
    if d.count > 0 {
        assert!(
            d.count == 1 || d.bytes <= BATCH_BYTES,
            "{step} {op:?}: a batch past its bound"
        );
        assert_eq!(
            o.written + d.count,
            len,
            "{step} {op:?}: deferred not the unwritten tail"
        );
        let tail: Vec<&Entry> = o.queue.range(len - d.count..).collect();
        assert!(
            tail.iter()
                .all(|e| e.id.is_some() && matches!(e.kept, Kept::Whole(_))),
            "{step} {op:?}: untracked in deferred"
        );
        let bytes: usize = tail.iter().map(|e| e.kept.len()).sum();
        assert_eq!(d.bytes, bytes, "{step} {op:?}: deferred bytes");
    } else {
        assert_eq!(d.bytes, 0, "{step} {op:?}: bytes without count");
    }
    assert!(
        o.unconfirmed <= o.flushed,
        "{step} {op:?}: unconfirmed {} > flushed {}",
        o.unconfirmed,
        o.flushed
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]
    #[test]
    fn deferred_marks_stay_consistent(confirmed in any::<bool>(), ops in proptest::collection::vec(op(), 1..80)) {
        let mut o = Outbox::new(6, 64);
        let mut next_id = 1u64;
        let mut n = 0u32;
        let mut deliveries = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            match op {
                Op::PushDeferred(size) => {
                    let text = format!("d{}{}", n + 1, "x".repeat(*size as usize * 10));
                    if o.all_written_or_deferred() && o.deferred().fits(text.len()) {
                        n += 1;
                        o.push_deferred(Message::text(text), next_id, false, None, 4);
                        next_id += 1;
                    }
                }
                Op::Push { tracked, control, volatile, promised } => {
                    n += 1;
                    let promise = promised.then(|| { let (p, d) = Delivery::new(); deliveries.push(d); p });
                    let tag = (*control || *volatile || promise.is_some()).then(|| Tag { volatile: *volatile, promise, control: *control });
                    if *tracked {
                        o.push_framed(Message::text(format!("t{n}")), next_id, false, tag);
                        next_id += 1;
                    } else {
                        o.push(Message::text(format!("u{n}")), None, tag);
                    }
                }
                Op::WriteOne => {
                    if !o.all_written_or_deferred() {
                        o.next_unwritten(Some(&mut Joining)).unwrap();
                        o.mark_written();
                    }
                }
                Op::Gather => {
                    if let Some(g) = o.gather(&mut Joining) {
                        o.mark_written_n(g.entries);
                    }
                }
                Op::Rewind => { o.rewind(); }
                Op::Ack(k) => { o.acknowledge(u64::from(*k) % next_id); }
                Op::Flushed | Op::FlushedConfirm => o.flushed(confirmed.then(Instant::now)),
                Op::Confirm => { o.confirm(Instant::now()); }
                Op::ConnectionLost(presume) => { o.connection_lost(None, *presume); }
                Op::TakeAll => { o.take_all(); }
                Op::GiveUp => { o.give_up(|| UndeliveredReason::Dropped); }
                Op::DiscardControl(live) => {
                    o.discard_control(|_| true, *live);
                }
                Op::Untrack => { o.untrack(); }
            }
            check(&o, step, op);
        }
        // Everything left is written eventually: the backlog one by one, then what is held
        // back as one.
        let mut guard = 0;
        while !o.all_written() {
            guard += 1;
            assert!(guard < 1000, "stuck");
            if !o.all_written_or_deferred() {
                o.next_unwritten(Some(&mut Joining)).unwrap();
                o.mark_written();
            } else {
                let g = o.gather(&mut Joining).expect("held back but nothing gathered");
                o.mark_written_n(g.entries);
            }
            check(&o, usize::MAX, &Op::WriteOne);
        }
    }
}
