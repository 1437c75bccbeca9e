//! One direction's replay buffer: what was sent and is not acknowledged yet, by sequence
//! number, with its bounds and the overflow policy's one operation (drop the oldest).
//! Pure: no I/O, no clock.
//!
//! Sequence numbers are assigned here and nowhere else ([`ReplayBuffer::push`]): a frame
//! gets the next number the moment it enters the buffer. Acknowledgements only trim the
//! front; a sender replays from a cursor (a sequence number), never from an index, so an
//! acknowledgement that arrives during a replay cannot shift what is sent next. Whether a
//! receiver's position can be resumed is decided by ranges alone
//! ([`ReplayBuffer::resume_from`]): a receiver that missed nothing resumes whatever was
//! trimmed or dropped.

use std::collections::VecDeque;
use std::ops::Range;

use super::frame::ResumeViolation;

/// Bounds on a replay buffer: frames and payload bytes held at once. One frame is always
/// allowed in an empty buffer, however large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) frames: usize,
    pub(crate) bytes: usize,
}

#[derive(Debug)]
struct Entry<T> {
    item: T,
    len: usize,
    /// Payload bytes pushed into the buffer up to and including this entry.
    end: u64,
}

/// The frames of one direction not yet acknowledged; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct ReplayBuffer<T> {
    entries: VecDeque<Entry<T>>,
    /// The sequence number of the first entry (the next one when empty).
    front: u64,
    /// The sequence number the next push gets.
    next: u64,
    /// Payload bytes held.
    bytes: usize,
    /// Payload bytes ever pushed.
    pushed: u64,
}

/// Where a receiver resumes: the range lost before it (dropped by overflow before the
/// receiver had it), and the first sequence number to send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResumePoint {
    pub(crate) lost: Option<Range<u64>>,
    pub(crate) cursor: u64,
}

impl<T> ReplayBuffer<T> {
    /// An empty buffer whose first frame gets `first`.
    pub(crate) fn new(first: u64) -> Self {
        let first = first.max(1);
        ReplayBuffer {
            entries: VecDeque::new(),
            front: first,
            next: first,
            bytes: 0,
            pushed: 0,
        }
    }

    /// The lowest sequence number still held (the next one when empty): `send_first`.
    pub(crate) fn front(&self) -> u64 {
        self.front
    }

    /// The sequence number the next push gets.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// Frames held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Payload bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a frame of `len` bytes fits within `limits` now.
    pub(crate) fn fits(&self, len: usize, limits: Limits) -> bool {
        self.entries.is_empty()
            || (self.entries.len() < limits.frames
                && self.bytes.saturating_add(len) <= limits.bytes)
    }

    /// Holds a frame and returns the sequence number it gets: the one choke point where
    /// numbers are assigned.
    pub(crate) fn push(&mut self, item: T, len: usize) -> u64 {
        let seq = self.next;
        self.next += 1;
        self.bytes += len;
        self.pushed += len as u64;
        self.entries.push_back(Entry {
            item,
            len,
            end: self.pushed,
        });
        seq
    }

    /// Applies a cumulative acknowledgement: every frame with a sequence number `<= ack`
    /// is let go. A stale acknowledgement changes nothing; one of a frame never sent is a
    /// violation. Returns the frames let go.
    pub(crate) fn ack(&mut self, ack: u64) -> Result<usize, ResumeViolation> {
        if ack >= self.next {
            return Err(ResumeViolation::AckBeyondSent {
                ack,
                sent: self.next - 1,
            });
        }
        let mut trimmed = 0;
        while self.front <= ack {
            // An acknowledgement past the front of a buffer that dropped frames: the
            // dropped ones are gone already.
            if let Some(entry) = self.entries.pop_front() {
                self.bytes -= entry.len;
                trimmed += 1;
            }
            self.front += 1;
        }
        Ok(trimmed)
    }

    /// Drops the oldest frame (the overflow policy's step); returns its sequence number.
    pub(crate) fn drop_oldest(&mut self) -> Option<u64> {
        let entry = self.entries.pop_front()?;
        self.bytes -= entry.len;
        let seq = self.front;
        self.front += 1;
        Some(seq)
    }

    /// Drops the oldest frames until one of `len` bytes fits; returns the range dropped.
    pub(crate) fn make_room(&mut self, len: usize, limits: Limits) -> Option<Range<u64>> {
        let start = self.front;
        while !self.fits(len, limits) {
            self.drop_oldest()?;
        }
        (self.front > start).then_some(start..self.front)
    }

    /// The frame with sequence number `seq`, if held.
    pub(crate) fn get(&self, seq: u64) -> Option<&T> {
        let index = seq.checked_sub(self.front)?;
        self.entries
            .get(usize::try_from(index).ok()?)
            .map(|e| &e.item)
    }

    /// Frames and payload bytes in `[self.front(), until)`: what is in flight when
    /// everything before `until` was sent.
    pub(crate) fn span(&self, until: u64) -> (usize, u64) {
        let until = until.clamp(self.front, self.next);
        let count = (until - self.front) as usize;
        if count == 0 {
            return (0, 0);
        }
        let first = &self.entries[0];
        let last = &self.entries[count - 1];
        (count, last.end - (first.end - first.len as u64))
    }

    /// Where a receiver whose next expected sequence number is `recv_next` resumes.
    ///
    /// # Errors
    /// [`ResumeViolation::AheadOfSender`] when it claims frames never sent.
    pub(crate) fn resume_from(&self, recv_next: u64) -> Result<ResumePoint, ResumeViolation> {
        if recv_next > self.next {
            return Err(ResumeViolation::AheadOfSender {
                recv_next,
                send_next: self.next,
            });
        }
        if recv_next < self.front {
            return Ok(ResumePoint {
                lost: Some(recv_next..self.front),
                cursor: self.front,
            });
        }
        Ok(ResumePoint {
            lost: None,
            cursor: recv_next,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn numbers_are_assigned_in_order_and_acks_trim_the_front() {
        let mut buffer = ReplayBuffer::new(1);
        assert_eq!(buffer.push("a", 1), 1);
        assert_eq!(buffer.push("b", 2), 2);
        assert_eq!(buffer.push("c", 3), 3);
        assert_eq!(buffer.span(4), (3, 6));
        assert_eq!(buffer.ack(0), Ok(0), "a stale acknowledgement");
        assert_eq!(buffer.ack(2), Ok(2));
        assert_eq!((buffer.front(), buffer.len(), buffer.bytes()), (3, 1, 3));
        assert_eq!(buffer.get(3), Some(&"c"));
        assert_eq!(buffer.get(2), None);
        assert_eq!(
            buffer.ack(9),
            Err(ResumeViolation::AckBeyondSent { ack: 9, sent: 3 })
        );
    }

    #[test]
    fn overflow_drops_the_oldest_and_the_range_says_what_is_lost() {
        let limits = Limits {
            frames: 2,
            bytes: 100,
        };
        let mut buffer = ReplayBuffer::new(1);
        for i in 0..2 {
            assert!(buffer.fits(1, limits));
            buffer.push(i, 1);
        }
        assert!(!buffer.fits(1, limits));
        assert_eq!(buffer.make_room(1, limits), Some(1..2));
        buffer.push(2, 1);
        // A receiver that expects 2 lost nothing: 2 is still held.
        assert_eq!(
            buffer.resume_from(2).unwrap(),
            ResumePoint {
                lost: None,
                cursor: 2
            }
        );
        // One that expects 1 lost it.
        assert_eq!(
            buffer.resume_from(1).unwrap(),
            ResumePoint {
                lost: Some(1..2),
                cursor: 2
            }
        );
        assert!(buffer.resume_from(5).is_err());
        // A large frame empties the buffer but is taken.
        assert_eq!(buffer.make_room(1000, limits), Some(2..4));
        assert!(buffer.fits(1000, limits));
    }

    #[test]
    fn a_quiet_receiver_resumes_whatever_was_trimmed() {
        let mut buffer = ReplayBuffer::new(1);
        for i in 0..10 {
            buffer.push(i, 1);
        }
        buffer.ack(10).unwrap();
        assert!(buffer.is_empty());
        assert_eq!(
            buffer.resume_from(11).unwrap(),
            ResumePoint {
                lost: None,
                cursor: 11
            }
        );
    }

    proptest! {
        /// Under any mix of pushes, acknowledgements and drops: numbers stay contiguous
        /// from the front, the byte count matches the entries, an acknowledgement never
        /// lets go of an unacknowledged frame, and every receiver position either resumes
        /// exactly or names the lost range.
        #[test]
        fn invariants(ops in proptest::collection::vec((0u8..3, 0usize..50), 0..200)) {
            let mut buffer = ReplayBuffer::new(1);
            let mut acked = 0u64;
            let mut dropped_to = 1u64;
            for (op, n) in ops {
                match op {
                    0 => {
                        let seq = buffer.push(n, n);
                        prop_assert_eq!(seq, buffer.next() - 1);
                    }
                    1 => {
                        let ack = acked + n as u64 % 4;
                        if ack < buffer.next() {
                            buffer.ack(ack).unwrap();
                            acked = acked.max(ack);
                        } else {
                            prop_assert!(buffer.ack(ack).is_err());
                        }
                    }
                    _ => {
                        if buffer.drop_oldest().is_some() {
                            dropped_to = buffer.front();
                        }
                    }
                }
                prop_assert_eq!(buffer.front() + buffer.len() as u64, buffer.next());
                let bytes: usize = (buffer.front()..buffer.next())
                    .map(|s| *buffer.get(s).unwrap())
                    .sum();
                prop_assert_eq!(bytes, buffer.bytes());
                prop_assert_eq!(buffer.span(buffer.next()), (buffer.len(), bytes as u64));
                prop_assert!(buffer.front() > acked);
                prop_assert!(buffer.front() == (acked + 1).max(dropped_to) || buffer.front() > acked);
                for recv_next in 1..=buffer.next() {
                    let point = buffer.resume_from(recv_next).unwrap();
                    match point.lost {
                        Some(range) => {
                            prop_assert_eq!(range.start, recv_next);
                            prop_assert_eq!(range.end, buffer.front());
                            prop_assert_eq!(point.cursor, buffer.front());
                        }
                        None => prop_assert_eq!(point.cursor, recv_next),
                    }
                }
            }
        }
    }
}
