//! One test alone in a child process of its own test binary: for a test that installs a
//! global tracing subscriber (tracing's callsite cache is process-wide) or needs an
//! environment of its own (set on the child's command, so that no test changes the
//! environment the others read).

use std::process::Output;

use tokio::time::timeout;

use super::BOUND;

/// Set in a child process that runs one named test alone: its name.
pub const CHILD_TEST: &str = "WS_RECONNECT_CHILD_TEST";

/// Every variable the proxy rules read: removed from each child's environment first, then
/// set as the test says.
const PROXY_VARIABLES: [&str; 9] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
    "REQUEST_METHOD",
];

/// Whether this process is the child started to run `test`.
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD_TEST).as_deref() == Ok(test)
}

/// Runs `test` alone in a child process of this binary with `env` added (and no proxy
/// variables but those), and returns its output once it passed.
pub async fn run_child(test: &str, env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().unwrap();
    let mut command = tokio::process::Command::new(exe);
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_TEST, test)
        .kill_on_drop(true);
    for name in PROXY_VARIABLES {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    let out = timeout(BOUND, command.output())
        .await
        .expect("the child test process hung")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{test} failed in its child process:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The child ran exactly this test; a filter that matched nothing would pass silently.
    assert!(stdout.contains("1 passed"), "the child did not run {test}");
    out
}

/// Runs the test `name` alone in a child process of this test binary, with `env` added.
/// Returns `true` in the parent, which has nothing more to do (the child passed), and
/// `false` in the child, which runs the test body.
pub async fn in_child_process(name: &str, env: &[(&str, &str)]) -> bool {
    if is_child(name) {
        return false;
    }
    run_child(name, env).await;
    true
}
