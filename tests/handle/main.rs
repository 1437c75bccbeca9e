//! The handle and the outcomes: `ReconnectingSink::spawn`'s cloneable [`Handle`] and
//! the task behind it, and the [`Delivery`] of each message, on the sink and through the
//! handle. Every outcome resolves exactly once, in the order the messages were accepted,
//! `Ok` only for a message that was delivered; a message that is not delivered is handed
//! back, never dropped silently; the task ends in every way it can without hanging,
//! leaking the connection or losing what it owed.
//!
//! | file | what it holds |
//! |---|---|
//! | `senders.rs` | many senders in order, backpressure, the `Incoming` stream, a send cancelled while it waits |
//! | `closing.rs` | `Handle::close()`: once, from several handles, racing sends, on a frozen path, while refused, against a dead port; what it delivers and hands back |
//! | `endings.rs` | the other ends of the task: a failure for good, every handle dropped, the runtime shut down |
//! | `panics.rs` | a panic in user code (a hook, `Acknowledge`, the close policy) ends the task and hands back what was owed |
//! | `outcomes.rs` | outcomes on the sink and through the handle: once, in order, `Ok` only once delivered (acknowledged), failed with the message handed back |
//! | `volatile.rs` | volatile messages and `retain_on_reconnect`: what is not resent after a connection ends |
//!
//! Every await that could hang is bounded by [`BOUND`](support::BOUND); no test asserts
//! how long something took.

#[path = "../support/mod.rs"]
mod support;

mod closing;
mod endings;
mod outcomes;
mod panics;
mod senders;
mod volatile;

use std::time::Duration;

use futures::{FutureExt, SinkExt};
use support::*;
use tokio::time::timeout;
use ws_reconnect::{Delivery, Handle, ReconnectingSink, Shutdown, Undelivered};

/// A WebSocket server that echoes every message.
fn echo_handler() -> impl Fn(usize, Ws) -> BoxHandler + Send + Sync {
    |conn, ws| Box::pin(echo(conn, ws))
}

/// A short `close_timeout`, for closes that cannot complete.
const CLOSE: Duration = Duration::from_millis(200);

/// The outcome of `delivery`, which must resolve within [`BOUND`].
async fn outcome(delivery: Delivery) -> Result<(), Undelivered> {
    timeout(BOUND, delivery)
        .await
        .expect("the outcome never resolved")
}

/// `handle.close()`, which must return within [`BOUND`].
async fn close(handle: &Handle) -> Shutdown {
    timeout(BOUND, handle.close()).await.expect("close hung")
}

/// Waits until `cond` holds, at most `limit`; returns whether it did.
async fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// Whether the outcome has resolved (polled once).
fn is_resolved(d: &mut Delivery) -> bool {
    d.now_or_never().is_some()
}

/// Upgrades, then never reads: the client's socket fills.
fn never_reads() -> impl Fn(usize, Ws) -> BoxHandler + Send + Sync {
    |_, ws| {
        Box::pin(async move {
            let _held = ws;
            std::future::pending::<()>().await;
        })
    }
}

/// The text of the message a failed outcome handed back.
fn text_of(e: &Undelivered) -> String {
    e.message()
        .expect("the message is handed back")
        .to_text()
        .unwrap()
        .to_owned()
}

/// Flushes what was fed to the socket; in acknowledged mode `flush()` then waits for
/// acknowledgements that may never come, so it is cut short.
async fn push_out(ws: &mut ReconnectingSink) {
    let _ = timeout(Duration::from_millis(100), ws.flush()).await;
}

/// A server that records and never acknowledges: acknowledged-mode messages stay owed.
async fn silent_ack_server() -> (Server, Log) {
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, recording(log.clone())).await;
    (server, log)
}
