//! wscat pipes lines to a server and the server's messages back out, and tells on stderr
//! what the connection is doing.

#[path = "../support/mod.rs"]
mod support;
#[path = "../../examples/wscat.rs"]
mod wscat;

use std::ffi::OsString;
use std::future::Future;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::watch;
use tokio::time::timeout;

use support::{dead_port, echo, serve, serve_on, Reply, BOUND};
use wscat::Console;

/// What a pipe has carried so far, collected by a task as it arrives.
struct Captured(watch::Receiver<String>);

impl Captured {
    fn new(pipe: impl AsyncRead + Unpin + Send + 'static) -> Self {
        let (tx, rx) = watch::channel(String::new());
        tokio::spawn(async move {
            let mut pipe = pipe;
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                let chunk = String::from_utf8_lossy(&buf[..n]).into_owned();
                tx.send_modify(|text| text.push_str(&chunk));
            }
        });
        Captured(rx)
    }

    /// Waits (bounded) until the text contains `needle` `times` times.
    async fn wait_for_n(&mut self, needle: &str, times: usize) {
        let found = timeout(
            BOUND,
            self.0
                .wait_for(|text| text.matches(needle).count() >= times),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        assert!(
            found,
            "timed out waiting for {needle:?} ({times}x) in:\n{}",
            self.text()
        );
    }

    async fn wait_for(&mut self, needle: &str) {
        self.wait_for_n(needle, 1).await;
    }

    fn text(&self) -> String {
        self.0.borrow().clone()
    }
}

/// wscat on in-memory pipes: what the test types, what it prints, what it says.
struct Session {
    stdin: DuplexStream,
    stdout: Captured,
    stderr: Captured,
}

/// Starts `wscat::run(url)` on pipes. Returns the session and the run to drive
/// alongside the script (it ends after the script closes stdin).
fn session(
    url: String,
) -> (
    Session,
    impl Future<Output = Result<(), Box<dyn std::error::Error>>>,
) {
    session_with(url, false)
}

/// As [`session`], with stderr coloured or not.
fn session_with(
    url: String,
    colour: bool,
) -> (
    Session,
    impl Future<Output = Result<(), Box<dyn std::error::Error>>>,
) {
    let (stdin, stdin_r) = tokio::io::duplex(64 * 1024);
    let (stdout_w, stdout_r) = tokio::io::duplex(64 * 1024);
    let (stderr_w, stderr_r) = tokio::io::duplex(64 * 1024);
    let run = async move {
        let console = Console::new(stderr_w, colour);
        wscat::run(&url, &[], BufReader::new(stdin_r), stdout_w, console).await
    };
    let session = Session {
        stdin,
        stdout: Captured::new(stdout_r),
        stderr: Captured::new(stderr_r),
    };
    (session, run)
}

/// Runs wscat and `script` together, bounded; returns wscat's result as text.
async fn drive(
    run: impl Future<Output = Result<(), Box<dyn std::error::Error>>>,
    script: impl Future<Output = ()>,
) -> Result<(), String> {
    let both = async {
        let (result, ()) = tokio::join!(async { run.await.map_err(|e| e.to_string()) }, script);
        result
    };
    timeout(BOUND * 2, both).await.expect("wscat hung")
}

#[tokio::test]
async fn two_lines_through_an_echo_server() {
    let server = serve(|_| Reply::Upgrade, echo).await;
    let (mut s, run) = session(server.url());
    let result = drive(run, async {
        s.stdin
            .write_all(b"first line\nsecond line\n")
            .await
            .unwrap();
        s.stdout.wait_for("second line\n").await;
        s.stdin.shutdown().await.unwrap();
    })
    .await;
    result.expect("wscat failed");
    assert_eq!(s.stdout.text(), "first line\nsecond line\n");
    let said = s.stderr.text();
    assert!(
        said.contains(&format!("wscat: connecting to {}\n", server.url())),
        "{said}"
    );
    assert!(said.contains("wscat: connected\n"), "{said}");
}

#[tokio::test]
async fn a_server_that_comes_up_late_gets_the_queued_line() {
    let addr = dead_port().await;
    // User-info and query are secrets: they must not be printed.
    let url = format!("ws://user:secret@{addr}/chat?token=secret");
    let (mut s, run) = session(url);
    let mut server = None;
    let result = drive(run, async {
        s.stdin.write_all(b"typed while down\n").await.unwrap();
        s.stderr
            .wait_for("wscat: waiting for the connection; 1 line(s) queued\n")
            .await;
        // A second attempt means the first failed and was reported.
        s.stderr
            .wait_for(&format!(
                "wscat: connecting to ws://{addr}/chat (attempt 2, last error: "
            ))
            .await;
        server = Some(serve_on(addr, |_| Reply::Upgrade, echo).await);
        s.stdout.wait_for("typed while down\n").await;
        s.stderr.wait_for("wscat: connected\n").await;
        s.stdin.shutdown().await.unwrap();
    })
    .await;
    result.expect("wscat failed");
    let said = s.stderr.text();
    assert!(
        said.starts_with(&format!("wscat: connecting to ws://{addr}/chat\n")),
        "{said}"
    );
    assert!(!said.contains("secret"), "{said}");
    assert!(!said.contains('\x1b'), "colour codes on a pipe: {said:?}");
}

#[tokio::test]
async fn a_dropped_connection_is_told_and_replaced() {
    // The first connection echoes one message, then goes away without a Close frame.
    let server = serve(
        |_| Reply::Upgrade,
        |conn, mut ws: support::Ws| async move {
            if conn == 0 {
                if let Some(Ok(m)) = ws.next().await {
                    let _ = futures::SinkExt::send(&mut ws, m).await;
                }
                return;
            }
            echo(conn, ws).await;
        },
    )
    .await;
    let (mut s, run) = session(server.url());
    let result = drive(run, async {
        s.stdin.write_all(b"one\n").await.unwrap();
        s.stdout.wait_for("one\n").await;
        s.stderr.wait_for("wscat: disconnected (").await;
        s.stderr.wait_for("); reconnecting\n").await;
        s.stderr.wait_for_n("wscat: connected\n", 2).await;
        s.stdin.write_all(b"two\n").await.unwrap();
        s.stdout.wait_for("two\n").await;
        s.stdin.shutdown().await.unwrap();
    })
    .await;
    result.expect("wscat failed");
    // "one" may be echoed twice: the server went away right after echoing it, before
    // the Ping that would have confirmed it, so it was sent again (never lost).
    let out = s.stdout.text();
    assert!(out == "one\ntwo\n" || out == "one\none\ntwo\n", "{out:?}");
}

#[tokio::test]
async fn a_close_that_forbids_reconnecting_is_printed_and_ends_wscat() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let server = serve(
        |_| Reply::Upgrade,
        |_, mut ws: support::Ws| async move {
            let frame = CloseFrame {
                code: CloseCode::Policy,
                reason: "go away".into(),
            };
            let _ = ws.close(Some(frame)).await;
        },
    )
    .await;
    let (mut s, run) = session(server.url());
    let result = drive(run, async {
        s.stderr.wait_for("code 1008").await;
    })
    .await;
    let err = result.expect_err("wscat carried on after a 1008");
    assert!(err.contains("ended for good"), "{err}");
    let said = s.stderr.text();
    assert!(
        said.contains("wscat: the server closed the connection with code 1008 (\"go away\")"),
        "{said}"
    );
}

#[tokio::test]
async fn a_bad_header_is_reported() {
    let input: &[u8] = b"";
    let console = Console::new(Vec::new(), false);
    let err = wscat::run(
        "ws://127.0.0.1:1/",
        &["no colon".into()],
        input,
        Vec::new(),
        console,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("name: value"), "{err}");
}

#[test]
fn urls_are_shown_without_user_info_or_query() {
    assert_eq!(
        wscat::redact("wss://user:pass@example.com:8443/feed?token=abc#top"),
        "wss://example.com:8443/feed"
    );
    assert_eq!(wscat::redact("ws://127.0.0.1:9/?k=v"), "ws://127.0.0.1:9/");
    assert_eq!(wscat::redact("ws://a@b"), "ws://b");
    assert_eq!(wscat::redact("ws://host/p@th"), "ws://host/p@th");
}

#[test]
fn colour_only_on_a_terminal_without_no_color() {
    assert!(wscat::use_colour(true, None));
    assert!(!wscat::use_colour(false, None));
    assert!(!wscat::use_colour(true, Some(OsString::from("1"))));
    assert!(!wscat::use_colour(true, Some(OsString::new())));
}

#[tokio::test]
async fn colour_codes_when_asked() {
    let addr = dead_port().await;
    let (mut s, run) = session_with(format!("ws://{addr}/"), true);
    let coloured = format!("\x1b[2;33mwscat: connecting to ws://{addr}/\x1b[0m\n");
    tokio::select! {
        result = run => panic!("wscat ended: {:?}", result.err()),
        () = s.stderr.wait_for(&coloured) => {}
    }
}
