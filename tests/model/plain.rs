//! The model over the scripted connection of `tests/support/mock`: arbitrary
//! interleavings of send, flush, read, inbound messages, failed flushes, hang-ups,
//! refused reconnections, close and dial. Every accepted message is delivered or still
//! held, never silently gone; delivered messages arrive once each, in the order accepted
//! (confirmed by a Pong, a message the peer may have read is held, and resent, until the
//! Pong says so); every operation completes within a bounded number of polls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Sink, Stream};
use proptest::prelude::*;
use ws_reconnect::{ConfirmBy, Error, Message, ReconnectingSink};

use crate::support::mock;
use crate::{drive, firsts, POLLS};

#[derive(Debug, Clone)]
pub enum Op {
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

pub fn op() -> impl Strategy<Value = Op> {
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

struct Plain {
    script: Arc<mock::Script>,
    ws: ReconnectingSink<mock::Make>,
    task: tokio_test::task::Spawn<()>,
    confirm_by: ConfirmBy,
    accepted: Vec<String>,
    next: u32,
    dialed: bool,
}

impl Plain {
    fn send(&mut self, n: u8) -> Result<(), TestCaseError> {
        for _ in 0..n {
            let ws = &mut self.ws;
            match drive(&mut self.task, POLLS, |cx| {
                Pin::new(&mut *ws).poll_ready(cx)
            }) {
                Some(Ok(())) => {
                    let text = format!("m{}", self.next);
                    self.next += 1;
                    self.ws
                        .start_send(Message::text(text.clone()))
                        .map_err(|e| TestCaseError::fail(format!("start_send after ready: {e}")))?;
                    self.accepted.push(text);
                }
                Some(Err(Error::NotDialed)) => prop_assert!(!self.dialed, "NotDialed while dialed"),
                Some(Err(_)) => break, // a refused reconnection: reported, nothing accepted
                None => {
                    return Err(TestCaseError::fail(
                        "poll_ready did not complete: busy or stuck",
                    ))
                }
            }
        }
        Ok(())
    }

    /// close() always ends the sink; what it could not deliver is still held, and the
    /// error says how much.
    fn close(&mut self) -> Result<(), TestCaseError> {
        let (ws, script) = (&mut self.ws, &self.script);
        let mut hung_up = false;
        let r = drive(&mut self.task, POLLS, |cx| {
            let p = Pin::new(&mut *ws).poll_close(cx);
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
        match r {
            None => return Err(TestCaseError::fail("close did not complete")),
            Some(Ok(())) => {
                prop_assert_eq!(
                    self.ws.undelivered_count(),
                    0,
                    "closed with messages still held"
                )
            }
            Some(Err(Error::CloseIncomplete { undelivered, .. })) => {
                prop_assert_eq!(undelivered, self.ws.undelivered_count());
                prop_assert!(undelivered > 0, "CloseIncomplete with nothing owed");
            }
            Some(Err(e)) => return Err(TestCaseError::fail(format!("close failed with {e}"))),
        }
        self.dialed = false;
        Ok(())
    }

    fn dial(&mut self) -> Result<(), TestCaseError> {
        let fut = self.ws.dial();
        futures::pin_mut!(fut);
        match drive(&mut self.task, POLLS, |cx| fut.as_mut().poll(cx)) {
            Some(Ok(())) => self.dialed = true,
            Some(Err(_)) => {}
            None => return Err(TestCaseError::fail("dial did not complete")),
        }
        Ok(())
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        let script = &self.script;
        match op {
            Op::Send(n) => self.send(n)?,
            Op::Flush => {
                let ws = &mut self.ws;
                let r = drive(&mut self.task, POLLS, |cx| {
                    Pin::new(&mut *ws).poll_flush(cx)
                });
                prop_assert!(r.is_some(), "flush did not complete");
            }
            Op::Read => {
                // Either an item or parked; never spinning.
                let ws = &mut self.ws;
                let _ = drive(&mut self.task, 3, |cx| Pin::new(&mut *ws).poll_next(cx));
            }
            Op::Inbound => {
                let conns = script.connects();
                let senders = script.inbound.lock().unwrap();
                if let Some(Some(tx)) = conns.checked_sub(1).and_then(|c| senders.get(c)) {
                    let _ = tx.unbounded_send(Message::text("in"));
                }
            }
            Op::FailNextFlush => {
                script.fail_flush(script.flushes.load(std::sync::atomic::Ordering::SeqCst))
            }
            Op::HangUp => {
                if let Some(conn) = script.connects().checked_sub(1) {
                    script.hang_up(conn);
                }
            }
            Op::Refuse(on) => script.set_refuse(on),
            Op::Close => self.close()?,
            Op::Dial => self.dial()?,
        }
        Ok(())
    }

    /// The messages the peer was delivered, in order.
    fn delivered(&self) -> Vec<String> {
        let delivered = self.script.delivered_texts();
        delivered
            .into_iter()
            .filter(|t| t.starts_with('m'))
            .collect()
    }

    /// The books: every accepted message delivered or held; first deliveries in the
    /// order accepted. Confirmed at the flush, each is delivered once and delivered ++
    /// held == accepted; confirmed by a Pong, a message the peer may have read is held
    /// (and resent) until the Pong says so.
    fn check_books(&self) -> Result<(), TestCaseError> {
        let delivered = self.delivered();
        let held = self.ws.undelivered_count();
        let first = firsts(&delivered);
        let expected = &self.accepted;
        prop_assert!(
            first.len() + held >= expected.len(),
            "delivered {} + held {} < accepted {}: lost",
            first.len(),
            held,
            expected.len()
        );
        prop_assert_eq!(&first[..], &expected[..first.len()], "order broken");
        if self.confirm_by == ConfirmBy::Flush {
            prop_assert_eq!(first.len() + held, expected.len(), "counted twice");
            prop_assert_eq!(&first, &delivered, "delivered twice");
        }
        Ok(())
    }
}

pub fn run(ops: Vec<Op>, confirm_by: ConfirmBy) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let script = mock::Script::new();
    let builder = ReconnectingSink::builder()
        .no_keepalive()
        .max_unflushed_messages(16)
        .confirm_by(confirm_by);
    let mut plain = Plain {
        ws: mock::sink(&script, builder),
        script,
        task: tokio_test::task::spawn(()),
        confirm_by,
        accepted: Vec::new(),
        next: 0,
        dialed: false,
    };
    for op in ops {
        plain.step(op)?;
        plain.check_books()?;
    }
    // Whatever is still held can be taken back, in order, and nothing else.
    let rest: Vec<String> = (plain.ws.take_undelivered().into_iter())
        .map(|m| m.into_text().unwrap().to_string())
        .collect();
    let delivered = plain.delivered();
    let mut all = firsts(&delivered);
    all.extend(rest.into_iter().filter(|t| !delivered.contains(t)));
    prop_assert_eq!(all, plain.accepted);
    Ok(())
}
