//! A server process killed (SIGKILL) and started again on the same port: its sessions are
//! gone, and a new epoch says so. The client gets one gap, of unknown length, then the
//! new process's messages; what it sends is acknowledged by the new process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::SinkExt;
use tokio::time::timeout;
use ws_reconnect::server::ServerConfig;
use ws_reconnect::testing::FaultProxy;
use ws_reconnect::{Error, GapReason, Message, ResumeConfig};

use crate::harness::{client, next_item, number, App, Harness, Ledger};
use crate::support::BOUND;

/// Set in the environment of the server process: the port to listen on (0: any).
const CHILD: &str = "WS_RECONNECT_RESUME_SERVER_PORT";

/// Not a test of its own: the body of the server process that the restart test starts
/// (this test binary, run again with [`CHILD`] set). Without it, it does nothing.
#[test]
fn server_process() {
    let Ok(port) = std::env::var(CHILD) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let app = App::Numbered {
            send: u64::MAX,
            pace: Some(Duration::from_millis(5)),
        };
        let harness =
            Harness::start_on(&format!("127.0.0.1:{port}"), ServerConfig::default(), app).await;
        println!("listening {}", harness.addr.port());
        std::future::pending::<()>().await;
    });
}

/// A server process, killed when dropped.
struct ServerProcess {
    child: Child,
    port: u16,
}

impl ServerProcess {
    /// Starts one on `port` (0: any) and waits until it listens.
    async fn start(port: u16) -> ServerProcess {
        tokio::task::spawn_blocking(move || {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "restart::server_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD, port.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the server process");
            let stdout = child.stdout.take().unwrap();
            // The test harness prints the test's name first, on the same line.
            let port = BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|line| line.rsplit_once("listening ")?.1.trim().parse().ok())
                .expect("the server process says where it listens");
            ServerProcess { child, port }
        })
        .await
        .unwrap()
    }

    /// SIGKILL: no Close frame, no goodbye.
    fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_server_restart_is_one_gap_then_carries_on() {
    let first = timeout(BOUND, ServerProcess::start(0)).await.unwrap();
    let proxy = FaultProxy::start(([127, 0, 0, 1], first.port).into())
        .await
        .unwrap();
    let mut ws = client(&format!("ws://{}/", proxy.addr()), ResumeConfig::default()).await;
    let mut before = Ledger::new();
    while before.next <= 50 {
        let message = next_item(&mut ws).await.unwrap().unwrap();
        before.record(number(&message, "s"));
    }
    for i in 1..=20 {
        ws.feed(Message::text(format!("c{i}"))).await.unwrap();
    }
    timeout(BOUND, ws.flush()).await.unwrap().unwrap();

    let port = first.kill();
    let _second = timeout(BOUND, ServerProcess::start(port)).await.unwrap();

    let gap = loop {
        match next_item(&mut ws).await {
            Some(Ok(message)) => before.record(number(&message, "s")),
            Some(Err(Error::Gap(gap))) => break gap,
            other => panic!("expected a message or a gap, got {other:?}"),
        }
    };
    assert!(
        before.missing.is_empty() && before.duplicates == 0,
        "{before:?}"
    );
    assert_eq!(gap.reason, GapReason::EpochChanged);
    assert_eq!(
        gap.from, before.next,
        "the gap starts where the messages stopped"
    );
    assert_eq!(
        gap.len(),
        None,
        "a restarted server does not know what it had sent"
    );
    // The new process's session: its messages from the first on, and it takes ours.
    let mut after = Ledger::new();
    while after.next <= 20 {
        let message = next_item(&mut ws).await.unwrap().unwrap();
        after.record(number(&message, "s"));
    }
    assert!(
        after.missing.is_empty() && after.duplicates == 0,
        "{after:?}"
    );
    ws.feed(Message::text("c21")).await.unwrap();
    timeout(BOUND, ws.flush()).await.unwrap().unwrap();
    let stats = ws.resume_stats();
    assert_eq!((stats.sessions, stats.gaps), (2, 1), "{stats:?}");
}
