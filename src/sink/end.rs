//! How a live connection ended, as the part of it that found out reports it, and what
//! that means for the next attempt. Only the driver acts on it
//! ([`Core::end_connection`](super::driver::Core::end_connection)).

use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use crate::error::BoxError;

/// How a live connection ended.
#[derive(Debug)]
pub(super) enum End {
    /// A reset, an EOF without a Close frame, an I/O error, a keepalive or
    /// acknowledgement timeout.
    Lost(Lost),
    /// The peer sent a Close frame.
    Closed(Option<CloseFrame>),
    /// The peer broke the protocol. The reader's error is already queued; holds the
    /// cause.
    Faulted(String),
}

impl From<Lost> for End {
    fn from(lost: Lost) -> Self {
        End::Lost(lost)
    }
}

/// Why a live connection was lost, and whether the next attempt may be immediate.
#[derive(Debug)]
pub(super) struct Lost {
    pub(super) cause: BoxError,
    pub(super) health: Health,
    /// For a loss found by silence (a keepalive or acknowledgement timeout): the last
    /// sign of life (what [`ConfirmBy::After`](super::ConfirmBy::After) is anchored at).
    pub(super) silent_since: Option<Instant>,
}

impl Lost {
    /// Lost; the connection's own record decides the next attempt.
    pub(super) fn new(cause: BoxError) -> Self {
        Lost {
            cause,
            health: Health::AsObserved,
            silent_since: None,
        }
    }

    /// Lost to silence since `since`: nothing came from the peer after it.
    pub(super) fn silent(cause: BoxError, since: Instant) -> Self {
        Lost {
            silent_since: Some(since),
            ..Lost::new(cause)
        }
    }

    /// Lost, and the next attempt waits for the backoff whatever the connection did.
    pub(super) fn unhealthy(cause: BoxError) -> Self {
        Lost {
            cause,
            health: Health::Unhealthy,
            silent_since: None,
        }
    }
}

/// Whether the next attempt after a lost connection may be immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Health {
    /// As the connection showed itself (see [`Link::healthy`](super::link::Link::healthy)).
    AsObserved,
    /// Wait for the backoff whatever the connection did: the peer broke the protocol or
    /// asked us to come back later (Close 1012, 1013).
    Unhealthy,
}
