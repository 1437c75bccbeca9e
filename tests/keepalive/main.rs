//! Keepalive: a dead path is replaced within `interval + timeout`, whatever the sink is
//! doing (writing, blocked on a full socket, reading, waiting for acknowledgements), and
//! a live one is kept however little it reads.
//!
//! | file | what it holds |
//! |---|---|
//! | `dead.rs` | half-open and frozen paths replaced under a reader, a blocked writer, acknowledged sends, a full inbox, an upload on a slow link |
//! | `alive.rs` | a healthy connection behind a full inbox is kept |
//!
//! The keepalive through real latency and on a slow link is in `tests/delivery`
//! (`latency.rs`). Every await that could hang is bounded by [`BOUND`](support::BOUND).

#[path = "../support/mod.rs"]
mod support;

mod alive;
mod dead;
