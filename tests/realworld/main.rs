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
//!
//! Every await that could hang is bounded by [`BOUND`](support::BOUND); no test asserts
//! how long something took.

#[path = "../support/mod.rs"]
mod support;

mod churn;
mod close;
mod crash;
mod freeze;
mod inbox;
mod limit;
mod protocol;

use futures::{SinkExt, StreamExt};
use ws_reconnect::{Acknowledge, Message};

use support::{Log, Ws};

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

/// A handler that acknowledges: records every text message `"<n>"` with its connection
/// and answers `"ack <n>"`.
fn acknowledging(
    log: Log,
) -> impl Fn(usize, Ws) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
       + Send
       + Sync
       + 'static {
    move |conn, mut ws: Ws| {
        let log = log.clone();
        Box::pin(async move {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    log.push(conn, t.to_string());
                    if ws.send(Message::text(format!("ack {t}"))).await.is_err() {
                        break;
                    }
                }
            }
        })
    }
}

/// A handler that reads (and so answers Pings) and discards until the peer goes away.
async fn drain(_conn: usize, mut ws: Ws) {
    while let Some(Ok(_)) = ws.next().await {}
}

/// The numbers `"<n>"` a log holds, as a sorted set.
fn numbers(texts: impl IntoIterator<Item = String>) -> std::collections::BTreeSet<u64> {
    texts.into_iter().filter_map(|t| t.parse().ok()).collect()
}
