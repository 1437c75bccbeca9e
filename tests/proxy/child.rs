//! Dials from a child process of this test binary with an environment of its own (set on
//! the child's command, so no test changes the environment the others read), and reads
//! the outcome and the warnings it logged. The child process itself comes from
//! [`support::child`](crate::support::child).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::Message;

use crate::support::child::{is_child, run_child};
use crate::support::BOUND;

/// The child's test, and the variables that tell it what to do.
const DIAL_TEST: &str = "child_dial_with_this_environment";
const CHILD_URL: &str = "WS_RECONNECT_PROXY_CHILD_URL";
const CHILD_SETUP: &str = "WS_RECONNECT_PROXY_CHILD_SETUP";
/// Marks the dial's outcome in the child's output.
pub const OUTCOME: &str = "OUTCOME: ";

/// Dials `url` in a child process whose environment has `env`, with the builder set up by
/// `setup` (`default`, `no_proxy` or `proxy=<url>`), and returns the outcome:
/// `connected` (a message made the round trip) or the error's `Display`, then its `Debug`.
pub async fn dial(url: &str, setup: &str, env: &[(&str, &str)]) -> String {
    dial_logged(url, setup, env).await.0
}

/// [`dial`], and the `warn` and `error` events the child logged.
pub async fn dial_logged(url: &str, setup: &str, env: &[(&str, &str)]) -> (String, String) {
    let mut env = env.to_vec();
    env.extend([(CHILD_URL, url), (CHILD_SETUP, setup)]);
    let out = run_child(DIAL_TEST, &env).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let start = stdout
        .find(OUTCOME)
        .unwrap_or_else(|| panic!("no outcome in the child's output:\n{stdout}"))
        + OUTCOME.len();
    let outcome = stdout[start..].lines().next().unwrap_or_default();
    let logs = String::from_utf8_lossy(&out.stderr).into_owned();
    (outcome.to_owned(), logs)
}

/// In the child started by [`dial`]: dials as told and returns the outcome. `None` in any
/// other process.
pub async fn dial_as_child() -> Option<String> {
    if !is_child(DIAL_TEST) {
        return None;
    }
    let url = std::env::var(CHILD_URL).unwrap();
    let setup = std::env::var(CHILD_SETUP).unwrap();
    // This process is the child's alone: its warnings go to its stderr for the parent.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    // A proxy that is used but dead makes the backoff give up soon.
    let builder = crate::quick().max_elapsed_time(Some(Duration::from_secs(1)));
    let builder = match setup.as_str() {
        "default" => builder,
        "no_proxy" => builder.no_proxy(),
        other => builder.proxy(other.strip_prefix("proxy=").expect("a known setup")),
    };
    let outcome = match timeout(BOUND, builder.connect(&url)).await {
        Err(_) => "the dial hung".to_owned(),
        Ok(Err(e)) => format!("{e} {e:?}"),
        Ok(Ok(mut ws)) => {
            ws.send(Message::text("hello")).await.unwrap();
            let echoed = timeout(BOUND, ws.next()).await.expect("no echo");
            assert_eq!(echoed.unwrap().unwrap(), Message::text("hello"));
            "connected".to_owned()
        }
    };
    Some(outcome)
}

pub use crate::support::capture::Capture;
pub use crate::support::child::in_child_process;
