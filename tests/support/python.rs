//! Python `websockets` servers run as separate processes, for the tests that need a peer
//! that is not tungstenite or a server that can crash for real (SIGKILL).
//!
//! `.ci/run` installs `websockets` into `.venv-peer` and sets `WS_RECONNECT_PYTHON`; then
//! a test that needs Python must run, and a broken interpreter fails it. Without the
//! variable, `python3` is tried, and when it lacks `websockets` the test skips through
//! [`skip`](super::skip): `SKIPPED: <test>: <why>` on stderr and in the skipped log that
//! `.ci/run` reports.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The Python interpreter to run servers with, or `None` when there is none and none was
/// required: then the calling test is recorded as skipped ([`skip`](super::skip)) and
/// should return. Call it from the test body.
///
/// # Panics
/// `WS_RECONNECT_PYTHON` is set but cannot import `websockets`.
pub fn interpreter() -> Option<String> {
    let (python, required) = match std::env::var("WS_RECONNECT_PYTHON") {
        Ok(p) => (p, true),
        Err(_) => ("python3".to_string(), false),
    };
    let usable = Command::new(&python)
        .args(["-c", "import websockets.asyncio.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        assert!(
            !required,
            "WS_RECONNECT_PYTHON={python} cannot import websockets"
        );
        super::skip(format!(
            "no Python with the `websockets` package ({python}); .ci/run installs one: \
             python3 -m venv .venv-peer && .venv-peer/bin/pip install websockets"
        ));
        return None;
    }
    Some(python)
}

/// A running Python server process; killed (SIGKILL) and reaped when dropped.
pub struct PythonServer {
    child: Child,
    pub port: u16,
}

impl PythonServer {
    /// Runs `script` (a path under the crate root) with `args`, and waits for the port it
    /// prints as the first line of its stdout (`python_server.run` does that; it is on the
    /// script's `PYTHONPATH`). Blocks the thread while Python starts:
    /// call it through `spawn_blocking` when a sink must keep running meanwhile.
    ///
    /// # Panics
    /// The process cannot start or exits before printing a port (a port in use, a
    /// syntax error: its stderr is the test's).
    pub fn start(python: &str, script: &str, args: &[String]) -> PythonServer {
        let path = format!("{}/{script}", env!("CARGO_MANIFEST_DIR"));
        // python_server.py, the shared start-up, lives next to this file.
        let support = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support");
        let pythonpath = match std::env::var_os("PYTHONPATH") {
            Some(p) if !p.is_empty() => {
                let mut all = std::ffi::OsString::from(support);
                all.push(":");
                all.push(p);
                all
            }
            _ => support.into(),
        };
        let mut child = Command::new(python)
            .arg(&path)
            .args(args)
            .env("PYTHONPATH", pythonpath)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {python} {path}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            let status = child.wait();
            panic!("the Python server {path} {args:?} printed no port ({line:?}); it ended with {status:?}");
        };
        PythonServer { child, port }
    }

    /// `ws://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    /// Kills the process with SIGKILL, as a crash would: no Close frame, no goodbye; the
    /// kernel closes its sockets. Waits until it is gone.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        self.stop();
    }
}
