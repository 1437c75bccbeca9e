//! What arrives: classifying frames, and the reader's bounded inbox.
//!
//! The inbox holds what the reader has not taken yet, in order: data messages, and the
//! errors the reader must meet where they happened (a peer's protocol violation found
//! while writing, a gap of dropped messages, a refused reconnection). It is bounded by
//! `max_queued_inbound` data messages; past that the sink stops reading the socket (TCP
//! backpressure) in plain mode. In acknowledged mode acknowledgements must be read
//! whatever is queued, so data past the bound is dropped, counted, and marked by one
//! [`Error::InboundDropped`] item per gap.

use std::collections::VecDeque;

use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Error as WsError;

use super::end::Lost;
use crate::error::Error;
use crate::Message;

/// What one inbound frame means to the sink.
pub(super) enum Inbound {
    Data(Message),
    Control,
    Closed(Option<CloseFrame>),
}

pub(super) fn classify(message: Message) -> Inbound {
    match message {
        Message::Text(_) | Message::Binary(_) => Inbound::Data(message),
        Message::Close(frame) => Inbound::Closed(frame),
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Inbound::Control,
    }
}

/// Whether a read error is the peer's fault worth reporting to the reader, rather than
/// a drop the sink simply recovers from.
pub(super) fn is_peer_fault(error: &Error) -> bool {
    match error {
        Error::Transport(WsError::Capacity(_) | WsError::Utf8(_) | WsError::AttackAttempt) => true,
        // The peer vanished (a crash, a reset, a cut during the handshake): a drop.
        Error::Transport(WsError::Protocol(
            ProtocolError::ResetWithoutClosingHandshake | ProtocolError::HandshakeIncomplete,
        )) => false,
        Error::Transport(WsError::Protocol(_)) => true,
        _ => false,
    }
}

/// What a read error means: `Ok(lost)` for a drop the sink recovers from (a reset, an EOF
/// without a Close frame, an I/O error), `Err(error)` for the peer's fault, which the
/// reader must be told of.
pub(super) fn read_failure(error: Error) -> Result<Lost, Error> {
    if is_peer_fault(&error) {
        Err(error)
    } else {
        Ok(Lost::new(error.to_string().into()))
    }
}

/// Whether a data message went to the reader or was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Queued {
    Kept,
    Dropped,
}

/// The reader's queue; see the [module docs](self).
#[derive(Debug)]
pub(super) struct Inbox {
    items: VecDeque<Result<Message, Error>>,
    capacity: usize,
    dropped: u64,
}

impl Inbox {
    pub(super) fn new(capacity: usize) -> Self {
        Inbox {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    pub(super) fn pop(&mut self) -> Option<Result<Message, Error>> {
        self.items.pop_front()
    }

    /// Room for another data message.
    pub(super) fn has_room(&self) -> bool {
        self.items.len() < self.capacity
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// Data messages dropped so far.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queues a data message, or drops it when the inbox is full (marking the gap).
    pub(super) fn push(&mut self, message: Message) -> Queued {
        if self.has_room() {
            self.items.push_back(Ok(message));
            return Queued::Kept;
        }
        self.dropped += 1;
        match self.items.back_mut() {
            Some(Err(Error::InboundDropped { count })) => *count += 1,
            _ => self
                .items
                .push_back(Err(Error::InboundDropped { count: 1 })),
        }
        Queued::Dropped
    }

    /// Queues an error for the reader, after what is already queued, whatever the bound
    /// (at most one per connection or refusal).
    pub(super) fn push_error(&mut self, error: Error) {
        self.items.push_back(Err(error));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_is_one_item_where_it_happened() {
        let mut inbox = Inbox::new(2);
        for text in ["a", "b", "c", "d"] {
            inbox.push(Message::text(text));
        }
        assert!(matches!(inbox.pop(), Some(Ok(m)) if m == Message::text("a")));
        // The marker takes a place too: still full.
        assert_eq!(inbox.push(Message::text("x")), Queued::Dropped);
        assert!(matches!(inbox.pop(), Some(Ok(m)) if m == Message::text("b")));
        assert_eq!(inbox.push(Message::text("e")), Queued::Kept);
        assert!(matches!(
            inbox.pop(),
            Some(Err(Error::InboundDropped { count: 3 }))
        ));
        assert!(matches!(inbox.pop(), Some(Ok(m)) if m == Message::text("e")));
        assert!(inbox.pop().is_none());
        assert_eq!(inbox.dropped(), 3);
    }

    #[test]
    fn a_reset_is_a_drop_and_a_violation_is_reported() {
        let reset = Error::Transport(WsError::Protocol(
            ProtocolError::ResetWithoutClosingHandshake,
        ));
        let bad = Error::Transport(WsError::Protocol(ProtocolError::NonZeroReservedBits));
        assert!(!is_peer_fault(&reset));
        assert!(is_peer_fault(&bad));
        assert!(!is_peer_fault(&Error::Transport(WsError::ConnectionClosed)));
    }
}
