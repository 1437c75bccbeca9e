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
//! | [`python`] | Python `websockets` servers as separate processes (their shared start-up: `python_server.py`) |
//! | [`child`] | one test alone in a child process (a global subscriber, an environment of its own) |
//! | [`capture`] | a log writer that keeps every line, for tests that read what was logged |
//! | [`tls`] | a self-signed certificate, the server that presents it and a client that trusts it |
//!
//! Here too: [`BOUND`] on every await that could hang, [`eventually`], [`join`],
//! [`env_or`], and [`skip`] for a test that cannot run here. Faults on the path between
//! client and server come from the crate's own [`ws_reconnect::testing::FaultProxy`], as
//! a user would inject them.
#![allow(dead_code, unreachable_pub)]

pub mod capture;
pub mod child;
pub mod client;
pub mod handlers;
pub mod mock;
pub mod python;
pub mod server;
pub mod tls;

use std::io::Write;
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

/// Where [`skip`] records skipped tests: `skipped.log` in the directory cargo gives
/// integration tests (`CARGO_TARGET_TMPDIR`, `target/tmp`). `.ci/run` removes it before
/// `cargo test` and reports its lines after.
pub fn skipped_log() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped.log")
}

/// Says that the calling test skips, where a user sees it: prints
/// `SKIPPED: <test>: <reason>` on stderr (shown with `--nocapture`) and appends the same
/// line to [`skipped_log`], which `.ci/run` counts and prints. The test then returns,
/// and libtest counts it as passed.
///
/// `<test>` is the name libtest gives the test's thread: call this from the test body
/// (an `async` test body runs on that thread too), not from a spawned task.
pub fn skip(reason: impl std::fmt::Display) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed test>");
    let line = format!("SKIPPED: {test}: {reason}\n");
    eprint!("{line}");
    // One append of the whole line: lines written at the same time by other tests, in
    // this binary or another, do not interleave.
    let log = skipped_log();
    let recorded = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(e) = recorded {
        eprintln!("could not record the skip in {}: {e}", log.display());
    }
}

/// Installs a test subscriber once (`RUST_LOG` controls it), for debugging a test.
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
