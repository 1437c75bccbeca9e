//! The sink tested the way connections fail in production: a server process that
//! crashes and comes back, a peer that violates the protocol, a path that freezes, a
//! reader that falls behind, a `close()` or any other operation cancelled half-way,
//! servers that cut every connection, and the reconnection limit.
//!
//! One file per topic:
//!
//! | file | what fails |
//! |---|---|
//! | `crash.rs` | the server process is killed (SIGKILL) and restarted on the same port (Python, `server.py`) |
//! | `protocol.rs` | the server sends a frame with a reserved bit set |
//! | `freeze.rs` | the path stops carrying bytes without closing (`Fault::Freeze`) |
//! | `inbox.rs` | nobody reads the stream while the server pushes |
//! | `close.rs` | `close()` while dialing, while reconnecting, dropped half-way; random cancellation |
//! | `churn.rs` | every connection is reset after some messages; the accept-and-drop control |
//! | `limit.rs` | the reconnection limit: none by default, `Refused` when configured |
//! | `lifecycle.rs` | `dial()`, `close()`, `state()` and the reader while a reconnection is under way or has failed |
//!
//! Every await that could hang is bounded by [`BOUND`](support::BOUND); no test asserts
//! how long something took.

#[path = "../support/mod.rs"]
mod support;

mod protocol;

/// The numbers `"<n>"` a log holds, as a sorted set.
fn numbers(texts: impl IntoIterator<Item = String>) -> std::collections::BTreeSet<u64> {
    texts.into_iter().filter_map(|t| t.parse().ok()).collect()
}
