//! The outbox alone: bounds, rewinds, acknowledgements.
use super::*;

fn texts(o: &mut Outbox) -> Vec<String> {
    o.rewind();
    let mut seen = Vec::new();
    while let Some(m) = o.next_unwritten(None) {
        seen.push(m.to_text().unwrap().to_owned());
        o.mark_written();
    }
    seen
}

#[test]
fn copied_payloads_are_resent_and_handed_back_as_they_were() {
    let mut o = Outbox::new(100, 1000);
    o.push_copy(&Message::text("a"), None, None);
    o.mark_written();
    o.push_copy(&Message::binary(vec![1, 2]), None, None);
    o.mark_written();
    o.push_copy(&Message::text("t3"), Some(3), None);
    o.mark_written();
    // The connection is lost before the flush: all three are written again.
    o.rewind();
    assert_eq!(o.next_unwritten(None), Some(Message::text("a")));
    o.mark_written();
    assert_eq!(o.next_unwritten(None), Some(Message::binary(vec![1, 2])));
    o.mark_written();
    o.mark_written();
    o.flushed(None);
    assert_eq!(o.len(), 1, "the tracked one waits for its acknowledgement");
    assert!(o.arena_is_empty(), "no copy owed: the buffer is reset");
    o.push_copy(&Message::text("b"), None, None);
    assert_eq!(o.take_all(), [Message::text("t3"), Message::text("b")]);
}

#[test]
fn bounded_by_count_and_bytes() {
    let mut o = Outbox::new(3, 10);
    o.push(Message::text("ab"), None, None);
    o.push(Message::text("cd"), None, None);
    assert!(!o.needs_flush());
    o.push(Message::text("ef"), None, None);
    assert!(o.needs_flush());
    let mut o = Outbox::new(100, 10);
    o.push(Message::binary(vec![0u8; 10]), None, None);
    assert!(o.needs_flush());
}

#[test]
fn rewind_rewrites_in_order_and_flush_clears_untracked() {
    let mut o = Outbox::new(10, 1000);
    for t in ["a", "b", "c"] {
        o.push(Message::text(t), None, None);
    }
    o.mark_written();
    o.mark_written();
    assert_eq!(texts(&mut o), ["a", "b", "c"]);
    o.flushed(None);
    assert!(o.is_empty());
    assert!(!o.needs_flush());
}

#[test]
fn tracked_entries_survive_a_flush_until_acknowledged() {
    let mut o = Outbox::new(2, 1000);
    o.push(Message::text("t1"), Some(1), None);
    o.push(Message::text("u"), None, None);
    o.push(Message::text("t2"), Some(2), None);
    assert!(o.needs_flush());
    for _ in 0..3 {
        o.mark_written();
    }
    o.flushed(None);
    assert!(
        !o.needs_flush(),
        "flushed tracked entries do not count as unflushed"
    );
    assert_eq!(o.len(), 2);
    assert_eq!(o.tracked(), 2);
    o.push(Message::text("t3"), Some(3), None);
    // Cumulative: 2 acknowledges 1 and 2, not 3.
    assert_eq!(o.acknowledge(2), 2);
    assert_eq!(o.tracked(), 1);
    // A lower acknowledgement than one already applied changes nothing.
    assert_eq!(o.acknowledge(1), 0);
    assert_eq!(texts(&mut o), ["t3"]);
}

#[test]
fn out_of_order_ids_and_untracked_fronts_still_acknowledge_everything_at_or_below() {
    let mut o = Outbox::new(100, 1000);
    o.push(Message::text("u"), None, None);
    o.push(Message::text("t5"), Some(5), None);
    o.push(Message::text("t3"), Some(3), None);
    o.push(Message::text("t9"), Some(9), None);
    assert_eq!(o.acknowledge(5), 2);
    assert_eq!(texts(&mut o), ["u", "t9"]);
    assert_eq!(o.tracked(), 1);
}

#[test]
fn in_order_acknowledgement_pops_the_front_and_keeps_counts() {
    let mut o = Outbox::new(100, 1000);
    for i in 1..=6 {
        o.push(Message::text(format!("t{i}")), Some(i), None);
    }
    for _ in 0..4 {
        o.mark_written();
    }
    o.flushed(None); // t1..t4 flushed, t5 t6 not written
    assert!(!o.needs_flush());
    assert_eq!(o.acknowledge(5), 5);
    assert_eq!(o.tracked(), 1);
    assert_eq!(o.next_unwritten(None).unwrap().to_text().unwrap(), "t6");
    o.mark_written();
    assert!(o.all_written());
}

#[test]
fn acknowledging_keeps_the_written_index_consistent() {
    let mut o = Outbox::new(100, 1000);
    o.push(Message::text("t1"), Some(1), None);
    o.push(Message::text("u1"), None, None);
    o.push(Message::text("t2"), Some(2), None);
    o.push(Message::text("u2"), None, None);
    o.mark_written();
    o.mark_written();
    o.mark_written(); // t1 u1 t2 written, u2 not
    assert_eq!(o.acknowledge(2), 2);
    // u1 is still written; u2 is next.
    assert_eq!(o.next_unwritten(None).unwrap().to_text().unwrap(), "u2");
    o.mark_written();
    assert!(o.all_written());
    o.flushed(None);
    assert!(o.is_empty());
}

#[test]
fn untracked_entries_lose_their_ids_and_control_messages_leave() {
    let mut o = Outbox::new(100, 1000);
    let control = || {
        Some(Tag {
            volatile: false,
            promise: None,
            control: true,
        })
    };
    o.push_framed(Message::text("d1"), 1, true, None);
    o.push(Message::binary(vec![2, 1]), None, control());
    o.push_framed(Message::text("d2"), 2, false, None);
    o.mark_written();
    assert_eq!(o.tracked(), 2);
    assert_eq!(o.untrack(), 1, "the control message is dropped");
    assert_eq!(o.tracked(), 0);
    assert_eq!(o.acknowledge(2), 0, "no id to acknowledge any more");
    assert_eq!(texts(&mut o), ["d1", "d2"], "written again from the first");
    o.flushed(None);
    assert!(o.is_empty(), "a flush delivers them, as untracked messages");
}

#[test]
fn what_is_in_flight_is_counted_through_acknowledgements_and_take_backs() {
    let mut o = Outbox::new(100, 1000);
    let none = Unacked {
        messages: 0,
        bytes: 0,
    };
    o.push(Message::text("plain"), None, None);
    for (id, text) in [(1, "a"), (2, "bb"), (3, "ccc")] {
        o.push_framed(Message::text(text), id, false, None);
    }
    o.mark_written();
    o.mark_written();
    o.flushed(None);
    assert_eq!(
        o.unacked(),
        Unacked {
            messages: 3,
            bytes: 6
        }
    );
    // "plain" was delivered by the flush; "a" is flushed, the rest not even written.
    assert_eq!(o.acknowledge(2), 2);
    assert_eq!(
        o.unacked(),
        Unacked {
            messages: 1,
            bytes: 3
        }
    );
    assert_eq!(texts(&mut o), ["ccc"], "the marks moved with what left");
    o.push_framed(Message::text("dddd"), 4, false, None);
    assert_eq!(o.take_all().len(), 2);
    assert_eq!(o.unacked(), none);
    o.push_framed(Message::text("e"), 5, false, None);
    o.untrack();
    assert_eq!(o.unacked(), none);
}

#[test]
fn messages_let_go_of_count_as_unacknowledged_until_an_acknowledgement_passes_them() {
    let mut o = Outbox::new(100, 1000);
    o.count_released();
    let with_outcome = || {
        let (promise, _delivery) = crate::sink::Delivery::new();
        Some(Tag {
            volatile: false,
            promise: Some(promise),
            control: false,
        })
    };
    o.push_framed(Message::text("a"), 1, false, None);
    o.push_framed(Message::text("bb"), 2, false, with_outcome());
    o.push_framed(Message::text("ccc"), 3, false, None);
    // The sink gives up on "bb" (it has an outcome): the peer may hold it all the same.
    assert_eq!(o.give_up(|| UndeliveredReason::Closed), 1);
    assert_eq!(o.tracked(), 2);
    assert_eq!(o.oldest_tracked(), Some(1));
    assert_eq!(
        o.unacked(),
        Unacked {
            messages: 3,
            bytes: 6
        }
    );
    assert_eq!(o.take_all().len(), 2, "taken back");
    assert_eq!(o.oldest_tracked(), None);
    assert_eq!(
        o.unacked(),
        Unacked {
            messages: 3,
            bytes: 6
        }
    );
    assert!(!o.all_acknowledged());
    o.acknowledge(2);
    assert_eq!(
        o.unacked(),
        Unacked {
            messages: 1,
            bytes: 3
        }
    );
    o.acknowledge(3);
    assert!(o.all_acknowledged());
}

#[test]
fn a_control_message_is_discarded_unless_written_on_the_live_connection() {
    let control = || {
        Some(Tag {
            volatile: false,
            promise: None,
            control: true,
        })
    };
    let bye = Message::binary(vec![9]);
    let mut o = Outbox::new(100, 1000);
    o.push_framed(Message::text("d1"), 1, false, None);
    o.push(bye.clone(), None, control());
    o.mark_written();
    o.mark_written();
    assert_eq!(o.discard_control(|m| *m == bye, true), 0, "the peer has it");
    assert_eq!(o.len(), 2);
    // The connection is gone: written again on the next one, unless discarded.
    assert_eq!(o.discard_control(|m| *m == bye, false), 1);
    assert_eq!(texts(&mut o), ["d1"]);
    o.push(bye.clone(), None, control());
    o.push(Message::text("u"), None, None);
    assert_eq!(
        o.discard_control(|m| *m == bye, true),
        1,
        "queued, never written"
    );
    assert_eq!(o.len(), 2);
    assert_eq!(o.next_unwritten(None), Some(Message::text("u")));
}

/// A framing that writes a message as its text, and a batch as the texts joined by `+`
/// (checking the count it is given).
pub(super) struct Joining;

impl Framing for Joining {
    fn frame(&mut self, message: &Message, _id: u64, _prompt: bool) -> Message {
        message.clone()
    }

    fn batch_limit(&self) -> usize {
        3
    }

    fn frame_batch(
        &mut self,
        entries: &mut dyn Iterator<Item = crate::sink::Tracked<'_>>,
        count: usize,
        _bytes: usize,
    ) -> Message {
        let texts: Vec<&str> = entries.map(|t| t.message.to_text().unwrap()).collect();
        assert_eq!(texts.len(), count, "the count given to frame_batch");
        Message::text(texts.join("+"))
    }
}

#[test]
fn messages_held_back_are_written_as_one_and_marked_written_together() {
    let mut o = Outbox::new(100, 1000);
    for (id, text) in [(1, "a"), (2, "b")] {
        o.push_deferred(Message::text(text), id, false, None, 3);
    }
    assert!(o.all_written_or_deferred() && !o.all_written());
    assert!(!o.deferred().full());
    o.push_deferred(Message::text("c"), 3, false, None, 3);
    assert!(o.deferred().full());
    let gathered = o.gather(&mut Joining).unwrap();
    assert_eq!(
        (gathered.message, gathered.entries),
        (Message::text("a+b+c"), 3)
    );
    o.mark_written_n(3);
    assert!(o.all_written());
    assert!(o.gather(&mut Joining).is_none());
    // One alone is framed as one.
    o.push_deferred(Message::text("d"), 4, false, None, 3);
    assert_eq!(o.gather(&mut Joining).unwrap().message, Message::text("d"));
}

#[test]
fn anything_else_that_changes_the_queue_makes_what_was_held_back_ordinary_backlog() {
    let mut o = Outbox::new(100, 1000);
    o.push_deferred(Message::text("a"), 1, false, None, 3);
    // A message pushed otherwise (not connected, or untracked): the held-back one is
    // written before it, one by one.
    o.push(Message::text("u"), None, None);
    assert_eq!(o.deferred().count, 0);
    assert!(!o.all_written_or_deferred());
    assert_eq!(texts(&mut o), ["a", "u"]);
    // A lost connection.
    o.push_deferred(Message::text("b"), 2, false, None, 3);
    o.rewind();
    assert_eq!(o.deferred().count, 0);
    // An acknowledgement that reaches an unwritten one.
    let mut o = Outbox::new(100, 1000);
    o.push_deferred(Message::text("a"), 1, false, None, 3);
    o.push_deferred(Message::text("b"), 2, false, None, 3);
    o.acknowledge(1);
    assert_eq!(o.deferred().count, 0, "a was never written");
    assert_eq!(texts(&mut o), ["b"]);
    // Taken back.
    o.push_deferred(Message::text("c"), 3, false, None, 3);
    o.take_all();
    assert!(o.all_written_or_deferred() && o.deferred().count == 0);
}
