//! A server process that crashes: SIGKILL, down for a moment, then a new process on the
//! same port (Python, `server.py`). No Close frame, no FIN before the kernel's; the
//! client meets a refused port until the restart, then carries on: a reader sees no
//! error item, acknowledged writes lose nothing, split halves both resume.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use ws_reconnect::{Builder, Error, Message, ReconnectingSink};

use crate::support::python::{self, PythonServer};
use crate::support::{connect, eventually, join, numbers, Numbered, BOUND};

const SCRIPT: &str = "tests/reconnection/server.py";

/// How long a killed server stays down.
const DOWN: Duration = Duration::from_millis(300);

/// The README's builder (without its header and `on_connect` message).
fn readme() -> Builder {
    ReconnectingSink::builder()
        .initial_interval(Duration::from_millis(100))
        .max_elapsed_time(Some(Duration::from_secs(60)))
        .max_reconnections_total(10)
}

/// Starts `server.py` on `port` (0: any) with `tag` and an optional log file. Runs on a
/// blocking thread so that the sink keeps running while Python starts.
async fn start(python: &str, port: u16, tag: u32, log: Option<&Path>) -> PythonServer {
    let mut args = vec![
        "--port".to_string(),
        port.to_string(),
        "--tag".to_string(),
        tag.to_string(),
    ];
    if let Some(log) = log {
        args.extend(["--log".to_string(), log.display().to_string()]);
    }
    let python = python.to_owned();
    tokio::task::spawn_blocking(move || PythonServer::start(&python, SCRIPT, &args))
        .await
        .unwrap()
}

/// Kills the server (SIGKILL), waits [`DOWN`], and starts a new process on the same port.
async fn crash(server: PythonServer, python: &str, tag: u32, log: Option<&Path>) -> PythonServer {
    let port = server.port;
    server.kill();
    tokio::time::sleep(DOWN).await;
    start(python, port, tag, log).await
}

/// Crashes the server twice, once the writer has sent a third and then two thirds of
/// `messages` (or not, if `stopped()` says a task ended first); returns the server that
/// runs now.
async fn crash_twice_while_writing(
    mut server: PythonServer,
    python: &str,
    log: Option<&Path>,
    messages: usize,
    sent: &AtomicUsize,
    stopped: impl Fn() -> bool,
) -> PythonServer {
    for (tag, at) in [(1, messages / 3), (2, 2 * messages / 3)] {
        eventually("the writer's progress", || {
            sent.load(Ordering::SeqCst) >= at || stopped()
        })
        .await;
        if stopped() {
            break;
        }
        server = crash(server, python, tag, log).await;
    }
    server
}

/// Sends `"1"` to `"<messages>"`, one every 10 ms, each bounded by [`BOUND`], and
/// publishes in `progress` how many were sent; says which send failed or hung.
async fn send_numbers<S>(
    sink: &mut S,
    messages: usize,
    progress: &AtomicUsize,
) -> Result<(), String>
where
    S: Sink<Message, Error = Error> + Unpin,
{
    for n in 1..=messages {
        match timeout(BOUND, sink.send(Message::text(n.to_string()))).await {
            Err(_) => return Err(format!("send({n}) did not complete before BOUND")),
            Ok(Err(e)) => return Err(format!("send({n}) failed: {e:?}")),
            Ok(Ok(())) => {}
        }
        progress.store(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// A log file for the acknowledging servers, fresh for this test.
fn log_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "ws-reconnect-crash-{}-{name}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// The README's usage loop, as written: every item through `?`. Reads pushed messages
/// `"<tag>:<n>"`, publishes the tag of each, and returns `Ok(true)` at the first message
/// from the server tagged `last` (`Ok(false)` if the stream ends first).
async fn follow(
    mut ws: impl Stream<Item = Result<Message, Error>> + Unpin,
    last: u32,
    seen: watch::Sender<Option<u32>>,
) -> Result<bool, Error> {
    while let Some(item) = ws.next().await {
        let m = item?;
        let (tag, _) = m.to_text()?.split_once(':').expect("a pushed message");
        let tag: u32 = tag.parse().expect("a server tag");
        seen.send_replace(Some(tag));
        if tag == last {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Waits until the reader has seen a message from server `tag`; if it stopped instead,
/// panics with what it returned.
async fn wait_for_tag(
    seen: &mut watch::Receiver<Option<u32>>,
    tag: u32,
    reader: &mut JoinHandle<Result<bool, Error>>,
) {
    if let Ok(Ok(_)) = timeout(BOUND, seen.wait_for(|t| *t == Some(tag))).await {
        return;
    }
    let outcome = timeout(Duration::from_secs(1), reader).await;
    panic!(
        "the reader saw no message from server {tag} (after {tag} crashes); \
         the README loop returned {outcome:?} (Err(Elapsed): still waiting)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_sees_no_error_item_across_three_server_crashes() {
    let Some(python) = python::interpreter() else {
        return; // recorded as skipped
    };
    let mut server = start(&python, 0, 0, None).await;
    let ws = connect(readme(), server.url("/push")).await;
    let (tx, mut seen) = watch::channel(None);
    let mut reader = tokio::spawn(follow(ws, 3, tx));

    wait_for_tag(&mut seen, 0, &mut reader).await;
    for tag in 1..=3 {
        server = crash(server, &python, tag, None).await;
        wait_for_tag(&mut seen, tag, &mut reader).await;
    }
    let outcome = join(reader, "the reader").await;
    assert!(
        matches!(outcome, Ok(true)),
        "the README loop across 3 crashes returned {outcome:?}"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_two_server_crashes() {
    let Some(python) = python::interpreter() else {
        return; // recorded as skipped
    };
    const MESSAGES: usize = 300;
    let log = log_file("ack");
    let server = start(&python, 0, 0, Some(&log)).await;
    let mut ws = connect(readme().acknowledged(Numbered, 32), server.url("/ack")).await;

    let sent = Arc::new(AtomicUsize::new(0));
    let progress = sent.clone();
    let writer = tokio::spawn(async move {
        send_numbers(&mut ws, MESSAGES, &progress).await?;
        match timeout(BOUND, ws.flush()).await {
            Err(_) => Err(format!(
                "flush() at the end did not complete before BOUND; {} unacknowledged",
                ws.unacknowledged_count()
            )),
            Ok(Err(e)) => Err(format!("flush() at the end failed: {e:?}")),
            Ok(Ok(())) => Ok(ws),
        }
    });

    let server = crash_twice_while_writing(server, &python, Some(&log), MESSAGES, &sent, || {
        writer.is_finished()
    })
    .await;
    let ws = join(writer, "the writer")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ws.unacknowledged_count(), 0);
    assert!(ws.stats().reconnects >= 2, "{:?}", ws.stats());

    let processed = numbers(
        std::fs::read_to_string(&log)
            .expect("the servers' log")
            .lines()
            .map(str::to_owned),
    );
    let missing: Vec<usize> = (1..=MESSAGES)
        .filter(|n| !processed.contains(&(*n as u64)))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged messages never processed by any server: {missing:?}"
    );
    drop(server);
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_reader_and_writer_carry_on_across_server_crashes() {
    let Some(python) = python::interpreter() else {
        return; // recorded as skipped
    };
    const MESSAGES: usize = 200;
    let server = start(&python, 0, 0, None).await;
    let ws = connect(readme(), server.url("/echo")).await;
    let (mut sink, stream) = ws.split();

    // The README loop again, on the stream half: it ends at the echo of "last".
    let reader = tokio::spawn(async move {
        let mut stream = stream;
        while let Some(item) = stream.next().await {
            if item?.to_text()? == "last" {
                return Ok::<bool, Error>(true);
            }
        }
        Ok(false)
    });
    let sent = Arc::new(AtomicUsize::new(0));
    let progress = sent.clone();
    let writer = tokio::spawn(async move {
        send_numbers(&mut sink, MESSAGES, &progress).await?;
        match timeout(BOUND, sink.send(Message::text("last"))).await {
            Err(_) => Err("send(last) did not complete before BOUND".to_string()),
            Ok(Err(e)) => Err(format!("send(last) failed: {e:?}")),
            Ok(Ok(())) => Ok(sink),
        }
    });

    let server = crash_twice_while_writing(server, &python, None, MESSAGES, &sent, || {
        writer.is_finished() || reader.is_finished()
    })
    .await;
    let sink = join(writer, "the writer")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let outcome = join(
        reader,
        "the reader, waiting for the echo of the last message",
    )
    .await;
    assert!(
        matches!(outcome, Ok(true)),
        "the reader's README loop returned {outcome:?}"
    );
    drop((sink, server));
}
