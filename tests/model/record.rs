//! What the test accepted and how each outcome resolved, for the wire models.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::prelude::*;
use ws_reconnect::{Delivery, UndeliveredReason};

/// When a flushed message counts as delivered, or acknowledged mode with its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Flush,
    Pong,
    Acked(usize),
}

/// How a message was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `start_send`: no outcome.
    Plain,
    /// `feed_outgoing` with a `Delivery`.
    Outcome,
    /// `feed_outgoing` of a volatile `Outgoing`.
    Volatile,
}

/// How an outcome resolved: `Ok`, or the reason with the text handed back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Ok,
    Err(&'static str, Option<String>),
}

pub struct Sent {
    pub text: String,
    pub kind: Kind,
    pub delivery: Option<Delivery>,
    pub resolved: Option<Resolved>,
}

/// What happened that a failed outcome may name.
#[derive(Debug, Default)]
pub struct Events {
    pub close_incomplete: bool,
    pub gave_up: bool,
    pub taken: bool,
    pub dropped: bool,
}

fn reason_name(reason: &UndeliveredReason) -> &'static str {
    match reason {
        UndeliveredReason::ConnectionLost => "ConnectionLost",
        UndeliveredReason::Refused(_) => "Refused",
        UndeliveredReason::Discarded => "Discarded",
        UndeliveredReason::GaveUp(_) => "GaveUp",
        UndeliveredReason::Closed => "Closed",
        UndeliveredReason::Taken => "Taken",
        UndeliveredReason::Dropped => "Dropped",
        _ => "other",
    }
}

#[derive(Default)]
pub struct Record {
    pub sent: Vec<Sent>,
    pub events: Events,
}

impl Record {
    pub fn accept(&mut self, text: String, kind: Kind, delivery: Option<Delivery>) {
        self.sent.push(Sent {
            text,
            kind,
            delivery,
            resolved: None,
        });
    }

    /// Polls every open outcome, oldest first: outcomes resolve in the order the
    /// messages were accepted, so an open one is never followed by a resolved one.
    pub fn poll_outcomes(&mut self) -> Result<(), TestCaseError> {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut open_before: Option<String> = None;
        for sent in self.sent.iter_mut().filter(|s| s.kind != Kind::Plain) {
            if sent.resolved.is_some() {
                prop_assert!(
                    open_before.is_none(),
                    "{} resolved after {} which is still open",
                    sent.text,
                    open_before.unwrap()
                );
                continue;
            }
            let delivery = sent.delivery.as_mut().expect("open outcome");
            match Pin::new(delivery).poll(&mut cx) {
                Poll::Pending => {
                    open_before.get_or_insert_with(|| sent.text.clone());
                }
                Poll::Ready(r) => {
                    prop_assert!(
                        open_before.is_none(),
                        "{} resolved while {} is still open",
                        sent.text,
                        open_before.clone().unwrap()
                    );
                    sent.delivery = None;
                    sent.resolved = Some(match r {
                        Ok(()) => Resolved::Ok,
                        Err(e) => Resolved::Err(
                            reason_name(e.reason()),
                            e.into_message()
                                .map(|m| m.into_text().map(|t| t.to_string()).unwrap_or_default()),
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    pub fn resolved(&self, text: &str) -> Option<&Resolved> {
        self.sent
            .iter()
            .find(|s| s.text == text)
            .and_then(|s| s.resolved.as_ref())
    }

    pub fn kind(&self, text: &str) -> Kind {
        self.sent
            .iter()
            .find(|s| s.text == text)
            .map_or(Kind::Plain, |s| s.kind)
    }

    /// Whether the message's outcome failed, handing it back.
    pub fn handed_back(&self, text: &str) -> bool {
        matches!(self.resolved(text), Some(Resolved::Err(..)))
    }

    /// Every failed outcome hands back its own message, for a reason that happened.
    pub fn check_failures(&self) -> Result<(), TestCaseError> {
        let ev = &self.events;
        for sent in &self.sent {
            let Some(Resolved::Err(reason, message)) = &sent.resolved else {
                continue;
            };
            prop_assert_eq!(
                message.as_deref(),
                Some(sent.text.as_str()),
                "not handed back"
            );
            let allowed = match *reason {
                "ConnectionLost" => sent.kind == Kind::Volatile,
                "GaveUp" => ev.gave_up,
                "Closed" => ev.close_incomplete,
                "Taken" => ev.taken,
                "Dropped" => ev.dropped,
                _ => false,
            };
            prop_assert!(allowed, "{} failed with {} ({:?})", sent.text, reason, ev);
        }
        Ok(())
    }
}
