//! Every inbound frame, read as it arrives: acknowledgements, WELCOME, GAP, BYE and
//! duplicate DATA take effect on the shared state here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::ack::Acknowledge;
use crate::resume::frame::{Data, Frame, ResumeViolation, Welcome};
use crate::resume::inbound::Arrival;
use crate::Message;

use super::*;

/// The sink's [`Acknowledge`] in resume mode: DATA frames are tracked by their sequence
/// number, and every inbound frame is read here first (see the [module docs](super)).
pub(super) struct ResumeAcks {
    pub(super) cell: Cell,
    pub(super) plain: Arc<AtomicBool>,
    /// The acknowledgement the last new DATA frame carried, for the sink to apply.
    pub(super) carried: Option<u64>,
}

impl Acknowledge for ResumeAcks {
    /// `None`: what this sink writes untracked stays untracked (control frames, Pings).
    /// DATA is tracked by the sequence number it is taken with
    /// ([`ReconnectingSink::take_framed`]).
    fn id(&mut self, _outbound: &Message) -> Option<u64> {
        None
    }

    fn acked(&mut self, inbound: &Message) -> Option<u64> {
        self.carried = None;
        if self.plain.load(Ordering::Relaxed) {
            return None;
        }
        let frame = Frame::from_message(inbound);
        let mut shared = lock(&self.cell);
        // Consumed frames acknowledge what the server last acknowledged: a no-op for the
        // sink, unless a DATA frame carried a newer acknowledgement.
        let frame = match frame {
            Ok(frame) => frame,
            Err(violation) => {
                shared.violation(violation);
                // It may have been DATA: ask for everything from the next one expected
                // (what was not missed comes again and is dropped as a duplicate).
                if shared.replay_from.is_none() {
                    shared.replay_from = Some(shared.inbound.received());
                }
                return Some(self.cell.acked.load(Ordering::Acquire));
            }
        };
        match frame {
            Frame::Data(data) => {
                if self.data(&mut shared, &data) == Arrival::New {
                    // The frame goes to the reader; the sink lets go of what its
                    // acknowledgement covers through `carried`.
                    self.carried = data.ack.map(|_| self.cell.acked.load(Ordering::Acquire));
                    return None;
                }
            }
            Frame::Ack(ack) => self.acknowledge(&mut shared, ack),
            Frame::Prompt(ack) => {
                self.acknowledge(&mut shared, ack);
                shared.inbound.prompt_received();
                // Whichever half polls next sends it, once the application took it all.
                shared.wake_reader();
                shared.wake_writer();
            }
            Frame::Welcome(welcome) => self.welcome(&mut shared, &welcome),
            Frame::Gap(gap) => {
                if let Some(gap) = shared.inbound.on_gap(gap) {
                    shared.gaps.push(gap);
                    shared.wake_reader();
                }
            }
            Frame::Bye => {
                tracing::debug!("the server ended the session");
                shared.bye_at = Some(shared.inbound.received());
                self.cell.bye.store(true, Ordering::Release);
                shared.wake_reader();
            }
            Frame::Hello(_) | Frame::Replay(_) | Frame::Batch(_) => {
                let kind = frame.kind_name();
                shared.violation(ResumeViolation::Unexpected { kind });
            }
        }
        Some(self.cell.acked.load(Ordering::Acquire))
    }

    fn carried(&mut self) -> Option<u64> {
        self.carried.take()
    }
}

impl ResumeAcks {
    /// A DATA frame: its acknowledgement taken in, and where it stands. A new one goes to
    /// the reader; a duplicate is counted; one past a hole asks for the missing ones
    /// again.
    fn data(&self, shared: &mut Shared, data: &Data) -> Arrival {
        if let Some(ack) = data.ack {
            self.acknowledge(shared, ack);
        }
        let arrival = shared.inbound.on_data(data.seq);
        match arrival {
            Arrival::New => {
                if data.prompt {
                    shared.inbound.prompt(data.seq);
                }
            }
            Arrival::Duplicate => shared.stats.duplicates += 1,
            // Frames were lost on the way here: ask for them again once.
            Arrival::Ahead { expected } if shared.replay_from.is_none() => {
                tracing::debug!(expected, got = data.seq, "a hole in the server's messages");
                shared.replay_from = Some(expected);
                shared.wake_reader();
            }
            Arrival::Ahead { .. } => {}
        }
        arrival
    }

    /// WELCOME: the session (new or resumed) and the server's window.
    fn welcome(&self, shared: &mut Shared, welcome: &Welcome) {
        let presented = shared.session.welcomed();
        shared.session = Standing::Welcomed {
            id: welcome.session,
            epoch: welcome.epoch,
        };
        self.cell
            .peer_frames
            .store(welcome.window.frames, Ordering::Release);
        self.cell
            .peer_bytes
            .store(welcome.window.bytes, Ordering::Release);
        self.cell.welcomes.fetch_add(1, Ordering::AcqRel);
        match (presented, welcome.resumed) {
            (Some(_), true) => {
                shared.stats.resumed += 1;
                tracing::debug!(session = %welcome.session, "session resumed");
            }
            (Some(old), false) => {
                shared.stats.sessions += 1;
                tracing::info!(session = %welcome.session, replaces = %old, "the server started a new session");
            }
            (None, resumed) => {
                shared.stats.sessions += 1;
                if resumed {
                    // Started on a connection lost before its WELCOME came back.
                    shared.stats.resumed += 1;
                }
                tracing::debug!(session = %welcome.session, resumed, "session started");
            }
        }
        shared.wake_writer();
    }

    /// Takes in a cumulative acknowledgement from the server: the writer trims its
    /// ledger by it (and is woken); one of a message never sent is a violation.
    fn acknowledge(&self, shared: &mut Shared, ack: u64) {
        let sent = self.cell.sent.load(Ordering::Acquire);
        if ack > sent {
            shared.violation(ResumeViolation::AckBeyondSent { ack, sent });
            return;
        }
        if ack > self.cell.acked.load(Ordering::Acquire) {
            self.cell.acked.store(ack, Ordering::Release);
            shared.wake_writer();
        }
    }
}
