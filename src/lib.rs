//! A WebSocket client connection that stays up.
//!
//! (crate docs are completed with the sink)

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod backoff;
mod connect;
mod error;
mod limit;
mod retry;
mod sink;
mod target;

pub use tokio_tungstenite::tungstenite;
pub use tokio_tungstenite::tungstenite::Message;

pub use crate::backoff::{ExponentialBackoff, ExponentialBackoffBuilder, InvalidBackoff};
pub use crate::connect::{
    parse_retry_after, MakeConnection, StatusPolicy, TungsteniteConnection, TungsteniteConnector,
};
pub use crate::error::{BoxError, Error};
pub use crate::limit::{ReconnectLimit, ReconnectLimitLayer, ReconnectLimiter};
pub use crate::retry::{Backoff, BackoffLayer};
pub use crate::sink::{Builder, DefaultConnector, ReconnectingSink};
pub use crate::target::{ClientRequest, DialKind, Target};

/// The futures of the connection layers.
pub mod future {
    pub use crate::limit::ResponseFuture as ReconnectLimitFuture;
    pub use crate::retry::ResponseFuture as BackoffFuture;
}
