//! What the integration tests share. Every test binary includes this one module:
//!
//! ```ignore
//! #[path = "../support/mod.rs"]
//! mod support;
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`server`] | loopback servers: raw TCP scripts, WebSocket servers with scripted handshakes |
//! | [`handlers`] | what a server does with each connection: record, echo, close, reset, acknowledge |
//! | [`client`] | quick builders, bounded connects and reads, the acknowledgement scheme |
//! | [`mock`] | a scripted connection factory without sockets |
//! | [`python`] | Python `websockets` servers as separate processes |
//!
//! Faults on the path between client and server come from the crate's own
//! [`ws_reconnect::testing::FaultProxy`], as a user would inject them.
#![allow(dead_code, unreachable_pub)]

pub mod client;
pub mod handlers;
pub mod mock;
pub mod python;
pub mod server;

use std::time::Duration;

// Each binary uses some of these.
#[allow(unused_imports)]
pub use {client::*, handlers::*, server::*};

/// Every await in the tests that could hang is bounded by this.
pub const BOUND: Duration = Duration::from_secs(20);

/// Waits (bounded) until `cond` holds, polling every few milliseconds. For observing a
/// server's side effects, not for ordering the client.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (bounded) for a spawned task and returns its output; `what` names it if it hangs
/// or panics.
pub async fn join<T>(task: tokio::task::JoinHandle<T>, what: &str) -> T {
    match tokio::time::timeout(BOUND, task).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("{what} panicked: {e}"),
        Err(_) => panic!("{what} did not finish before BOUND"),
    }
}

/// The number in the environment variable `name`, or `default` when it is unset or not a
/// number: how a run asks for more messages, more clients or another seed.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Installs a test subscriber once (`RUST_LOG` controls it), for debugging a test.
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
