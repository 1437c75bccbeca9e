//! Why a live connection ended: the cause its parts report, and what it means for the
//! next attempt. Only the driver acts on it.

use crate::error::BoxError;

/// Why a live connection ended, and whether the next attempt may be immediate.
#[derive(Debug)]
pub(super) struct Lost {
    pub(super) cause: BoxError,
    pub(super) health: Health,
}

impl Lost {
    /// Lost; the connection's own record decides the next attempt.
    pub(super) fn new(cause: BoxError) -> Self {
        Lost {
            cause,
            health: Health::AsObserved,
        }
    }

    /// Lost, and the next attempt waits for the backoff whatever the connection did.
    pub(super) fn unhealthy(cause: BoxError) -> Self {
        Lost {
            cause,
            health: Health::Unhealthy,
        }
    }
}

/// Whether the next attempt after a lost connection may be immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Health {
    /// As the connection showed itself (see [`Live::healthy`](super::live::Live::healthy)).
    AsObserved,
    /// Wait for the backoff whatever the connection did: the peer broke the protocol or
    /// asked us to come back later (Close 1012, 1013).
    Unhealthy,
}
