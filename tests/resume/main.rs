//! Resume mode end to end: this crate's client and server, through the fault proxy.
//!
//! | file | what |
//! |---|---|
//! | `abandoned.rs` | messages given up or taken back, a `close()` abandoned: the window and the gap |
//! | `acks.rs` | when the server acknowledges a waiting application |
//! | `backlog.rs` | the acknowledgement a resent DATA frame carries, on a connection slow to take it; BATCH frames |
//! | `basics.rs` | a round trip, negotiation, broken frames either way |
//! | `fallback.rs` | a server replaced mid-session by one without resume mode |
//! | `bounds.rs` | bounds against callers that skip `poll_ready`; `close()` within its bound |
//! | `streams.rs` | numbered streams both ways through resets, on a fast and a slow path |
//! | `opening.rs` | a first connection lost before WELCOME; a session asked for again |
//! | `gaps.rs` | a session that expired, a buffer that overflowed: one gap each, then on |
//! | `restart.rs` | a server process killed and started again: one gap, then on |

#[path = "../support/mod.rs"]
mod support;

mod abandoned;
mod acks;
mod backlog;
mod basics;
mod bounds;
mod fallback;
mod gaps;
mod harness;
mod opening;
mod restart;
mod streams;
