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
//!
//! Every await that could hang is bounded by [`BOUND`](support::BOUND); no test asserts
//! how long something took.

#[path = "../support/python.rs"]
mod python;
#[path = "../support/mod.rs"]
mod support;

mod crash;
mod protocol;

use std::time::Duration;

use ws_reconnect::{Acknowledge, Builder, Message, ReconnectingSink};

/// Quick reconnections: 20 ms first delay, no randomization, at most 200 ms.
fn quick() -> Builder {
    ReconnectingSink::builder()
        .initial_interval(Duration::from_millis(20))
        .randomization_factor(0.0)
        .max_interval(Duration::from_millis(200))
}

/// Acknowledged mode as the servers here speak it: the message `"<n>"` is acknowledged
/// by `"ack <n>"`.
struct Numbered;

impl Acknowledge for Numbered {
    fn id(&mut self, outbound: &Message) -> Option<u64> {
        outbound.to_text().ok()?.parse().ok()
    }
    fn acked(&mut self, inbound: &Message) -> Option<u64> {
        inbound.to_text().ok()?.strip_prefix("ack ")?.parse().ok()
    }
}

/// The numbers `"<n>"` a log holds, as a sorted set.
fn numbers(texts: impl IntoIterator<Item = String>) -> std::collections::BTreeSet<u64> {
    texts.into_iter().filter_map(|t| t.parse().ok()).collect()
}
