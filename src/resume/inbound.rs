//! One direction's receiving side: which sequence number comes next from the wire, which
//! goes next to the application, and when an acknowledgement is owed. Pure: no I/O, no
//! clock.
//!
//! Two positions, because a frame can be read from the wire before the application takes
//! it:
//!
//! - `received` (sent as `recv_next` in HELLO and WELCOME): the next sequence number
//!   taken from the wire. Frames below it are held (or were delivered); the peer resumes
//!   from it, and a frame below it is a duplicate, dropped.
//! - `delivered`: the next sequence number the application gets. Acknowledgements say
//!   `delivered - 1`: a peer lets a frame go only once the application has it.
//!
//! Both only move forward, except [`Inbound::rewind`], which takes `received` back to
//! `delivered` when frames read from the wire were lost before the application got them.

use std::collections::VecDeque;

use super::gap::Gap;

/// What a DATA frame's sequence number means on arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The next one: take it.
    New,
    /// Already taken (a replay after a reconnection): drop it.
    Duplicate,
    /// Past a hole: frames in between are missing.
    Ahead {
        /// The sequence number that was expected.
        expected: u64,
    },
}

/// When a standalone acknowledgement is due while the application keeps reading: after
/// this many frames or this many payload bytes delivered since the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckEvery {
    pub(crate) frames: u64,
    pub(crate) bytes: u64,
}

/// The receiving side of one direction; see the [module docs](self).
#[derive(Debug, Clone)]
pub(crate) struct Inbound {
    received: u64,
    delivered: u64,
    /// The last cumulative acknowledgement sent.
    acked: u64,
    /// The highest position the peer asked to have acknowledged as soon as the
    /// application has taken it (a PROMPT flag); 0: none.
    prompted: u64,
    owed_frames: u64,
    owed_bytes: u64,
}

impl Inbound {
    /// A receiver whose first frame is `first`.
    pub(crate) fn new(first: u64) -> Self {
        let first = first.max(1);
        Inbound {
            received: first,
            delivered: first,
            acked: first - 1,
            prompted: 0,
            owed_frames: 0,
            owed_bytes: 0,
        }
    }

    /// The next sequence number expected from the wire (`recv_next`).
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// The next sequence number the application gets.
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered
    }

    /// A DATA frame read from the wire.
    pub(crate) fn on_data(&mut self, seq: u64) -> Arrival {
        // The last sequence number is never taken: the next position would not fit. Only
        // a peer that sent a GAP up to it can get here.
        if seq < self.received || seq == u64::MAX {
            Arrival::Duplicate
        } else if seq == self.received {
            self.received += 1;
            Arrival::New
        } else {
            Arrival::Ahead {
                expected: self.received,
            }
        }
    }

    /// A GAP read from the wire: `received` moves past the range. Returns the gap as the
    /// application should see it (starting where the receiver stands; frames missing
    /// before a gap that starts further on are part of it), or `None` for a stale one
    /// that covers only frames already taken.
    pub(crate) fn on_gap(&mut self, gap: Gap) -> Option<Gap> {
        let from = self.received;
        match gap.to {
            Some(to) if to < from || (to == from && gap.from < from) => None,
            Some(to) => {
                self.received = to;
                Some(Gap::new(from, Some(to), gap.reason))
            }
            None => Some(Gap::new(from, None, gap.reason)),
        }
    }

    /// Frames read from the wire were lost before the application got them: expect them
    /// again from where the application stands. Returns that position.
    pub(crate) fn rewind(&mut self) -> u64 {
        self.received = self.delivered;
        self.delivered
    }

    /// The application takes frame `seq` of `bytes` payload bytes. `false` (and nothing
    /// changes) unless it is the next one.
    pub(crate) fn deliver(&mut self, seq: u64, bytes: usize) -> bool {
        if seq != self.delivered || seq == u64::MAX {
            return false;
        }
        self.delivered += 1;
        self.received = self.received.max(self.delivered);
        self.owed_frames += 1;
        self.owed_bytes += bytes as u64;
        true
    }

    /// The application was told of `gap`: it moves past it.
    pub(crate) fn pass(&mut self, gap: &Gap) {
        if let Some(to) = gap.to {
            self.delivered = self.delivered.max(to);
            self.received = self.received.max(self.delivered);
        }
    }

    /// The acknowledgement owed, if the application took frames since the last one.
    pub(crate) fn owed(&self) -> Option<u64> {
        let ack = self.delivered - 1;
        (ack > self.acked).then_some(ack)
    }

    /// The peer asks for an acknowledgement as soon as the application has taken
    /// everything up to `position`: a DATA frame with its PROMPT flag (its own sequence
    /// number), or an ACK with it (the last sequence number received before it).
    pub(crate) fn prompt(&mut self, position: u64) {
        self.prompted = self.prompted.max(position);
    }

    /// A standalone PROMPT arrived: it names every DATA frame that arrived before it.
    pub(crate) fn prompt_received(&mut self) {
        self.prompt(self.received - 1);
    }

    /// The acknowledgement owed, if one is due now: the application has taken what the
    /// peer prompted for, or what `every` counts.
    pub(crate) fn due(&self, every: AckEvery) -> Option<u64> {
        self.owed().filter(|&ack| {
            (self.prompted > self.acked && ack >= self.prompted)
                || self.owed_frames >= every.frames
                || self.owed_bytes >= every.bytes
        })
    }

    /// An acknowledgement of `ack` went out (standalone or carried by a DATA frame).
    pub(crate) fn ack_sent(&mut self, ack: u64) {
        if ack > self.acked {
            self.acked = ack;
            self.owed_frames = 0;
            self.owed_bytes = 0;
        }
    }
}

/// Gaps read from the wire before the application reached them, by position: each is
/// told when the application has taken everything before it, however the frames around
/// it were queued.
#[derive(Debug, Default)]
pub(crate) struct PendingGaps {
    gaps: VecDeque<Gap>,
}

impl PendingGaps {
    /// Queues `gap`. An open-ended gap at the same place as the last one queued adds
    /// nothing (the reader is told once), so a peer that repeats it cannot grow the list.
    pub(crate) fn push(&mut self, gap: Gap) {
        if let Some(last) = self.gaps.back() {
            if gap.to.is_none() && last.to.is_none() && last.from == gap.from {
                return;
            }
        }
        self.gaps.push_back(gap);
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.gaps.is_empty()
    }

    /// The gap to tell the application now that it stands at `delivered`, if any.
    pub(crate) fn take_at(&mut self, delivered: u64) -> Option<Gap> {
        while let Some(gap) = self.gaps.front() {
            if gap
                .to
                .is_some_and(|to| to <= delivered && gap.from < delivered)
            {
                // Covered by what the application already passed.
                self.gaps.pop_front();
                continue;
            }
            if gap.from > delivered {
                return None;
            }
            let gap = self.gaps.pop_front()?;
            return Some(Gap::new(delivered, gap.to, gap.reason));
        }
        None
    }

    /// Whether a gap is due at `delivered` (see [`take_at`](Self::take_at)).
    pub(crate) fn ready_at(&self, delivered: u64) -> bool {
        self.gaps.front().is_some_and(|gap| gap.from <= delivered)
    }

    /// The receiver rewound to `position`: gaps from there on will be told again by the
    /// sender's replay.
    pub(crate) fn rewind(&mut self, position: u64) {
        self.gaps.retain(|gap| gap.from < position);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::resume::gap::GapReason;

    #[test]
    fn duplicates_are_dropped_and_holes_noticed() {
        let mut inbound = Inbound::new(1);
        assert_eq!(inbound.on_data(1), Arrival::New);
        assert_eq!(inbound.on_data(1), Arrival::Duplicate);
        assert_eq!(inbound.on_data(3), Arrival::Ahead { expected: 2 });
        assert_eq!(inbound.received(), 2);
        assert!(inbound.deliver(1, 10));
        assert!(!inbound.deliver(3, 10));
        assert_eq!(inbound.owed(), Some(1));
        inbound.ack_sent(1);
        assert_eq!(inbound.owed(), None);
    }

    #[test]
    fn a_gap_moves_both_positions_once_passed() {
        let mut inbound = Inbound::new(1);
        assert_eq!(inbound.on_data(1), Arrival::New);
        let gap = inbound
            .on_gap(Gap::new(2, Some(5), GapReason::Overflow))
            .unwrap();
        assert_eq!(gap, Gap::new(2, Some(5), GapReason::Overflow));
        assert_eq!(inbound.received(), 5);
        assert_eq!(inbound.on_data(5), Arrival::New);
        assert!(inbound.deliver(1, 1));
        inbound.pass(&gap);
        assert!(inbound.deliver(5, 1));
        assert_eq!(inbound.owed(), Some(5));
        // A stale gap.
        assert_eq!(
            inbound.on_gap(Gap::new(2, Some(5), GapReason::Overflow)),
            None
        );
        // One of unknown length leaves the numbering where it is.
        let unknown = inbound
            .on_gap(Gap::new(6, None, GapReason::EpochChanged))
            .unwrap();
        assert_eq!(unknown.from, 6);
        assert_eq!(inbound.received(), 6);
    }

    #[test]
    fn gaps_wait_for_the_data_before_them() {
        let mut gaps = PendingGaps::default();
        gaps.push(Gap::new(4, Some(6), GapReason::Overflow));
        gaps.push(Gap::new(9, None, GapReason::Expired));
        assert_eq!(gaps.take_at(3), None);
        assert_eq!(
            gaps.take_at(4),
            Some(Gap::new(4, Some(6), GapReason::Overflow))
        );
        assert_eq!(gaps.take_at(6), None);
        gaps.rewind(7);
        assert!(
            gaps.is_empty(),
            "a rewind forgets gaps the replay tells again"
        );
    }

    #[test]
    fn acknowledgements_fall_due_by_count_or_bytes() {
        let every = AckEvery {
            frames: 3,
            bytes: 100,
        };
        let mut inbound = Inbound::new(1);
        for seq in 1..=2 {
            inbound.on_data(seq);
            inbound.deliver(seq, 1);
        }
        assert_eq!(inbound.due(every), None);
        inbound.on_data(3);
        inbound.deliver(3, 1);
        assert_eq!(inbound.due(every), Some(3));
        inbound.ack_sent(3);
        inbound.on_data(4);
        inbound.deliver(4, 100);
        assert_eq!(inbound.due(every), Some(4));
    }

    #[test]
    fn a_prompt_is_due_once_the_application_took_up_to_it() {
        let every = AckEvery {
            frames: 100,
            bytes: 1 << 20,
        };
        let mut inbound = Inbound::new(1);
        for seq in 1..=3 {
            inbound.on_data(seq);
        }
        inbound.prompt(2);
        inbound.deliver(1, 1);
        assert_eq!(
            inbound.due(every),
            None,
            "the prompted message is not taken yet"
        );
        inbound.deliver(2, 1);
        assert_eq!(inbound.due(every), Some(2));
        inbound.ack_sent(2);
        inbound.deliver(3, 1);
        assert_eq!(inbound.due(every), None, "the prompt was answered");
        inbound.prompt_received();
        assert_eq!(
            inbound.due(every),
            Some(3),
            "a standalone prompt for what arrived"
        );
    }

    proptest! {
        /// A sender replays from any earlier position, any number of times, and drops
        /// ranges it reports as gaps: the application gets every frame not in a gap
        /// exactly once, in order, and each gap once, at its place.
        #[test]
        fn exactly_once_in_order_through_replays(
            steps in proptest::collection::vec((0u8..4, 0u64..6), 1..120)
        ) {
            let mut inbound = Inbound::new(1);
            let mut gaps = PendingGaps::default();
            // The sender: what it sends next, and the ranges it dropped.
            let mut next = 1u64;
            let mut wire: VecDeque<Result<u64, Gap>> = VecDeque::new();
            let mut delivered = Vec::new();
            let mut lost = Vec::new();
            let mut told = Vec::new();
            for (op, n) in steps {
                match op {
                    // Send n frames.
                    0 | 1 => {
                        for _ in 0..n {
                            wire.push_back(Ok(next));
                            next += 1;
                        }
                    }
                    // A reconnection: what was in flight is lost, and the sender replays
                    // from the receiver's position, a GAP for each range it dropped.
                    2 => {
                        wire.clear();
                        let mut seq = inbound.received();
                        while seq < next {
                            if lost.contains(&seq) {
                                let start = seq;
                                while seq < next && lost.contains(&seq) {
                                    seq += 1;
                                }
                                wire.push_back(Err(Gap::new(start, Some(seq), GapReason::Overflow)));
                            } else {
                                wire.push_back(Ok(seq));
                                seq += 1;
                            }
                        }
                    }
                    // The sender drops n frames it has not sent yet, and says so.
                    _ => {
                        if n > 0 {
                            wire.push_back(Err(Gap::new(next, Some(next + n), GapReason::Overflow)));
                            lost.extend(next..next + n);
                            next += n;
                        }
                    }
                }
                // The receiver reads everything that arrived, and the application takes it.
                let pass = |inbound: &mut Inbound, gaps: &mut PendingGaps, told: &mut Vec<u64>| {
                    while let Some(gap) = gaps.take_at(inbound.delivered()) {
                        told.extend(gap.from..gap.to.unwrap_or(gap.from));
                        inbound.pass(&gap);
                    }
                };
                while let Some(item) = wire.pop_front() {
                    match item {
                        Ok(seq) => match inbound.on_data(seq) {
                            Arrival::New => {
                                pass(&mut inbound, &mut gaps, &mut told);
                                prop_assert!(inbound.deliver(seq, 1));
                                delivered.push(seq);
                            }
                            Arrival::Duplicate => {}
                            Arrival::Ahead { .. } => prop_assert!(false, "a hole at {}", seq),
                        },
                        Err(gap) => {
                            if let Some(gap) = inbound.on_gap(gap) {
                                gaps.push(gap);
                            }
                        }
                    }
                }
                pass(&mut inbound, &mut gaps, &mut told);
            }
            let expected: Vec<u64> = (1..next).filter(|s| !lost.contains(s)).collect();
            prop_assert_eq!(delivered, expected);
            prop_assert_eq!(told, lost, "each lost frame is told once, in order");
        }
    }

    #[test]
    fn a_gap_to_the_last_sequence_number_then_data_there_neither_panics_nor_wraps() {
        let mut inbound = Inbound::new(1);
        let gap = inbound
            .on_gap(Gap::new(1, Some(u64::MAX), GapReason::Abandoned))
            .unwrap();
        assert_eq!(inbound.received(), u64::MAX);
        assert!(matches!(inbound.on_data(u64::MAX), Arrival::Duplicate));
        inbound.pass(&gap);
        assert!(
            !inbound.deliver(u64::MAX, 1),
            "the last number is never delivered"
        );
        assert_eq!(inbound.received(), u64::MAX);
    }

    #[test]
    fn a_repeated_open_ended_gap_is_queued_once() {
        let mut gaps = PendingGaps::default();
        for _ in 0..1_000 {
            gaps.push(Gap::new(5, None, GapReason::Abandoned));
        }
        assert!(gaps.take_at(5).is_some());
        assert!(gaps.take_at(5).is_none(), "told once");
    }
}
