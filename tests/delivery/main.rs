//! Delivery: every message the sink accepted is delivered, held for the next connection,
//! or handed back; never lost silently, in order, at least once.
//!
//! | file | what it holds |
//! |---|---|
//! | `accepting.rs` | what the sink takes: the outbox bound, Close and raw frames refused |
//! | `resend.rs` | what was not delivered goes to the next connection, in order, once; kept or handed back after a failure for good |
//! | `crossing.rs` | a server that closes (gracefully, or by dropping the connection) while a message is on its way: the request/response loop, a stream across rolling-deploy closes, closes at moments of the server's own |
//! | `latency.rs` | the delivery, keepalive and close promises through a path with real latency and on a slow link |
//! | `acknowledged.rs` | acknowledged mode: zero loss through random resets, the window, cumulative acknowledgements, resend first, the acknowledgement timeout |
//!
//! The property model of every delivery invariant is `tests/model`; outcomes and
//! volatile messages are in `tests/handle`. Every await that could hang is bounded by
//! [`BOUND`](support::BOUND).

#[path = "../support/mod.rs"]
mod support;

mod accepting;
mod acknowledged;
mod crossing;
mod latency;
mod resend;
