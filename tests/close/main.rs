//! Closing: the user's `close()` delivers what is owed, completes the closing handshake,
//! returns within `close_timeout` in every state, hands back what it could not deliver,
//! and no attempt follows it; the server's Close is followed as its code says.
//!
//! | file | what it holds |
//! |---|---|
//! | `user.rs` | `close()` connected, while dialing, while reconnecting, dropped half-way, then `dial()` again |
//! | `server.rs` | each close code of the close policy's table: reconnect, reconnect after the backoff, stop |
//!
//! `Handle::close()` is in `tests/handle` (`closing.rs`); what the reader gets of the
//! messages read while closing is in `tests/inbound`. Every await that could hang is
//! bounded by [`BOUND`](support::BOUND).

#[path = "../support/mod.rs"]
mod support;

mod server;
mod user;
