//! The wire models' operations and their run: sends with and without outcomes (volatile
//! ones too), flushes and closes against a peer that reads, reads by the peer alone,
//! acknowledgements, resets, hang-ups, server Close frames crossing messages in flight,
//! refused reconnections and dials.

use std::future::Future;
use std::task::Poll;

use futures::Stream;
use proptest::prelude::*;
use ws_reconnect::{ConfirmBy, Error, Message, Outgoing, ReconnectingSink};

use crate::record::{Kind, Mode, Record};
use crate::wire::{number, Make};
use crate::{drive, POLLS};

#[derive(Debug, Clone)]
pub enum Op {
    Send(u8, Kind),
    /// A flush while the peer reads everything.
    Flush,
    /// The reader polls; the peer does nothing.
    Read,
    /// The peer reads this many frames.
    PeerRead(u8),
    /// The peer acknowledges what it read, less this many (acknowledged mode).
    Ack(u8),
    FailNextFlush,
    HangUp,
    /// The server sends a Close with this code after reading this many frames.
    ServerClose(u16, u8),
    Refuse(bool),
    /// `close()`; the peer reads and answers (`true`) or hangs up without reading.
    Close(bool),
    Dial,
}

/// The operations for `mode`; `vanish`: a `close()` may meet a peer that hangs up
/// without reading instead of answering.
pub fn op(mode: Mode, vanish: bool) -> impl Strategy<Value = Op> {
    let kind = prop_oneof![Just(Kind::Plain), Just(Kind::Outcome), Just(Kind::Volatile)];
    // Outside acknowledged mode an Ack does nothing.
    let ack = if matches!(mode, Mode::Acked(_)) { 2 } else { 1 };
    prop_oneof![
        4 => (1u8..6, kind).prop_map(|(n, k)| Op::Send(n, k)),
        2 => Just(Op::Flush),
        1 => Just(Op::Read),
        2 => (0u8..6).prop_map(Op::PeerRead),
        ack => (0u8..3).prop_map(Op::Ack),
        1 => Just(Op::FailNextFlush),
        1 => Just(Op::HangUp),
        2 => (prop_oneof![Just(1000u16), Just(1001u16)], 0u8..4)
            .prop_map(|(c, n)| Op::ServerClose(c, n)),
        1 => any::<bool>().prop_map(Op::Refuse),
        1 => any::<bool>().prop_map(move |answers| Op::Close(answers || !vanish)),
        1 => Just(Op::Dial),
    ]
}

/// Numbered model messages: the id is the number.
pub struct Numbered;

impl ws_reconnect::Acknowledge for Numbered {
    fn id(&mut self, outbound: &Message) -> Option<u64> {
        number(outbound.to_text().ok()?)
    }
    fn acked(&mut self, inbound: &Message) -> Option<u64> {
        inbound.to_text().ok()?.strip_prefix("ack ")?.parse().ok()
    }
}

pub type Sink = ReconnectingSink<Make>;
type Task = tokio_test::task::Spawn<()>;

/// The outbox bound of the wire models: more than a run accepts, so that the bound
/// never confirms anything by itself.
pub const BOUND: usize = 1024;

/// A sink over `make` in `mode`, with `bound` as `max_unflushed_messages`.
pub fn build(make: &Make, mode: Mode, bound: usize) -> Sink {
    let builder = ReconnectingSink::builder()
        .no_keepalive()
        .on_connect(Message::text("hello"))
        .max_unflushed_messages(bound);
    let builder = match mode {
        Mode::Flush => builder.confirm_by(ConfirmBy::Flush),
        Mode::Pong => builder.confirm_by(ConfirmBy::Pong),
        Mode::Acked(window) => builder.acknowledged(Numbered, window),
    };
    builder.build_over(
        make.clone(),
        ws_reconnect::Target::new("ws://wire/").unwrap(),
    )
}

/// The state of one run.
pub struct Run {
    pub mode: Mode,
    pub make: Make,
    pub ws: Sink,
    pub task: Task,
    pub record: Record,
    pub next: u64,
    pub dialed: bool,
}

impl Run {
    pub fn new(mode: Mode, bound: usize) -> Self {
        let make = Make::default();
        let ws = build(&make, mode, bound);
        Run {
            mode,
            make,
            ws,
            task: tokio_test::task::spawn(()),
            record: Record::default(),
            next: 1,
            dialed: false,
        }
    }

    fn acked(&self) -> bool {
        matches!(self.mode, Mode::Acked(_))
    }

    /// Sends `n` messages of `kind`; stops at a refusal, or when acknowledged mode's
    /// window is full and the peer idle.
    fn send(&mut self, n: u8, kind: Kind) -> Result<(), TestCaseError> {
        for _ in 0..n {
            let text = format!("m{}", self.next);
            let ws = &mut self.ws;
            let got = match kind {
                Kind::Plain => drive(&mut self.task, POLLS, |cx| ws.poll_ready(cx)).map(|r| {
                    r.map(|()| {
                        ws.start_send(Message::text(text.clone())).unwrap();
                        None
                    })
                }),
                _ => {
                    let mut item = Outgoing::new(Message::text(text.clone()));
                    if kind == Kind::Volatile {
                        item = item.volatile();
                    }
                    let fut = ws.feed_outgoing(item);
                    futures::pin_mut!(fut);
                    drive(&mut self.task, POLLS, |cx| fut.as_mut().poll(cx)).map(|r| r.map(Some))
                }
            };
            match got {
                Some(Ok(delivery)) => {
                    self.next += 1;
                    self.record.accept(text, kind, delivery);
                }
                Some(Err(Error::NotDialed)) => {
                    prop_assert!(!self.dialed, "NotDialed while dialed");
                    break;
                }
                Some(Err(_)) => break,
                None => {
                    let full = match self.mode {
                        Mode::Acked(window) => self.ws.unacknowledged_count() >= window,
                        _ => false,
                    };
                    prop_assert!(full, "poll_ready did not complete with room");
                    break;
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TestCaseError> {
        let ack = self.acked();
        let (ws, make) = (&mut self.ws, &self.make);
        let r = drive(&mut self.task, POLLS, |cx| {
            make.world().peer_reads(usize::MAX, ack);
            ws.poll_flush(cx)
        });
        prop_assert!(r.is_some(), "flush did not complete with a peer that reads");
        if let (Some(Ok(())), true) = (r, self.acked()) {
            prop_assert_eq!(self.ws.unacknowledged_count(), 0, "flushed with acks owed");
            let acked = self.make.world().acked;
            for sent in &self.record.sent {
                let n = number(&sent.text).unwrap();
                let back = self.record.handed_back(&sent.text);
                prop_assert!(
                    n <= acked || back || sent.kind == Kind::Volatile,
                    "flush Ok before {} was acknowledged",
                    sent.text
                );
            }
        }
        Ok(())
    }

    fn close(&mut self, answers: bool) -> Result<(), TestCaseError> {
        let ack = self.acked();
        let (ws, make) = (&mut self.ws, &self.make);
        let r = drive(&mut self.task, POLLS, |cx| {
            let mut world = make.world();
            if !answers && world.close_written() {
                // The peer goes away as our Close comes, without reading what came first.
                world.hang_up();
            } else if answers || ack {
                world.peer_reads(usize::MAX, ack);
            }
            drop(world);
            ws.poll_close(cx)
        });
        match r {
            None => return Err(TestCaseError::fail("close did not complete")),
            Some(Ok(())) => prop_assert_eq!(self.ws.undelivered_count(), 0),
            Some(Err(Error::CloseIncomplete { undelivered, .. })) => {
                prop_assert!(undelivered > 0, "CloseIncomplete with nothing owed");
                self.record.events.close_incomplete = true;
            }
            Some(Err(e)) => return Err(TestCaseError::fail(format!("close failed: {e}"))),
        }
        self.dialed = false;
        // Closed: every outcome is settled, delivered or handed back.
        self.record.poll_outcomes()?;
        for sent in self.record.sent.iter().filter(|s| s.kind != Kind::Plain) {
            prop_assert!(sent.resolved.is_some(), "{} open after close", sent.text);
        }
        Ok(())
    }

    /// Dials while the peer reads: dialing a connected sink flushes, which waits for
    /// confirmations and acknowledgements.
    fn dial(&mut self) -> Result<(), TestCaseError> {
        let ack = self.acked();
        let (ws, make) = (&mut self.ws, &self.make);
        let fut = ws.dial();
        futures::pin_mut!(fut);
        let dialed = drive(&mut self.task, POLLS, |cx| {
            make.world().peer_reads(usize::MAX, ack);
            fut.as_mut().poll(cx)
        });
        match dialed {
            Some(Ok(())) => self.dialed = true,
            Some(Err(_)) => {}
            None => return Err(TestCaseError::fail("dial did not complete")),
        }
        Ok(())
    }

    pub fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        let ack = self.acked();
        match op {
            Op::Send(n, kind) => self.send(n, kind)?,
            Op::Flush => self.flush()?,
            Op::Read => {
                let ws = &mut self.ws;
                let _ = drive(&mut self.task, 3, |cx| {
                    std::pin::Pin::new(&mut *ws).poll_next(cx)
                });
            }
            Op::PeerRead(n) => self.make.world().peer_reads(n.into(), ack),
            Op::Ack(_) if !ack => {}
            Op::Ack(less) => {
                let mut world = self.make.world();
                if let Some(top) = world.read_top() {
                    world.ack(top.saturating_sub(less.into()));
                }
            }
            Op::FailNextFlush => self.make.world().fail_next_flush(),
            Op::HangUp => self.make.world().hang_up(),
            Op::ServerClose(code, n) => self.make.world().server_close(code, n.into(), ack),
            Op::Refuse(on) => {
                self.make.world().refuse = on;
                self.record.events.gave_up |= on;
            }
            Op::Close(answers) => self.close(answers)?,
            Op::Dial => self.dial()?,
        }
        self.record.poll_outcomes()?;
        if let Mode::Acked(window) = self.mode {
            prop_assert!(self.ws.unacknowledged_count() <= window, "window exceeded");
            // A volatile message whose connection ended is no longer held, though its
            // outcome may wait for earlier ones.
            let mut world = self.make.world();
            let acked = world.acked;
            let live = world.live().map(|c| c.written.clone()).unwrap_or_default();
            let ended = |t: &str| {
                let on = |c: &[Message]| c.iter().any(|m| m.to_text().ok() == Some(t));
                world.conns.iter().any(|c| on(&c.written)) && !on(&live)
            };
            let out = self.record.sent.iter().filter(|s| {
                let gone = s.kind == Kind::Volatile && ended(&s.text);
                number(&s.text).unwrap() > acked && !self.record.handed_back(&s.text) && !gone
            });
            prop_assert!(out.count() <= window, "more than the window unacknowledged");
        }
        Ok(())
    }
}

/// Polls the reader until it parks, so that a Close or an EOF the peer sent is seen.
pub fn settle(run: &mut Run) {
    let ws = &mut run.ws;
    let _ = drive(&mut run.task, 3, |cx| {
        let _ = std::pin::Pin::new(&mut *ws).poll_next(cx);
        Poll::<()>::Pending
    });
}
