//! Resume mode: nothing lost either way across a reconnection.
//!
//! The wire convention is written down in `docs/resume-protocol.md`. This module holds
//! its pure parts, shared by the client ([`ResumingSink`]) and the server
//! ([`server`](crate::server), feature `server`): the frame codec (`frame/`), one
//! direction's replay buffer (`buffer.rs`), its receiving side (`inbound.rs`) and when
//! its sender asks for an acknowledgement at once (`prompt.rs`).

// The server uses all of the replay buffer; the client holds sequence numbers only.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) mod buffer;
mod client;
pub(crate) mod frame;
mod gap;
pub(crate) mod inbound;
pub(crate) mod prompt;

pub use self::client::{ResumeBuilder, ResumeConfig, ResumeDelivery, ResumeStats, ResumingSink};
pub use self::frame::{ResumeViolation, SessionId, PROTOCOL};
pub use self::gap::{Gap, GapReason};
