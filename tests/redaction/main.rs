//! Secrets stay out of every log line, Debug output and error message.

#[path = "../support/mod.rs"]
mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use ws_reconnect::ReconnectingSink;

use support::{serve, Reply, Ws, BOUND};

fn quick() -> ws_reconnect::Builder {
    ReconnectingSink::builder()
        .initial_interval(Duration::from_millis(10))
        .randomization_factor(0.0)
        .max_interval(Duration::from_millis(100))
}

/// A `MakeWriter` that collects every log line.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[tokio::test]
async fn secrets_stay_out_of_logs_debug_output_and_errors() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    // Global, in a test binary of its own: tracing's callsite cache is process-wide.
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let server = serve(
        |n| {
            if n == 0 {
                Reply::Status(503, vec![])
            } else {
                Reply::Upgrade
            }
        },
        |conn, mut ws: Ws| async move {
            if conn == 0 {
                let _ = ws.close(None).await;
            }
            while let Some(Ok(_)) = ws.next().await {}
        },
    )
    .await;
    let url = format!("ws://{}/feed?token=SECRET-QUERY", server.addr);
    let mut ws = quick()
        .header("Authorization", "Bearer SECRET-HEADER")
        .header("Cookie", "session=SECRET-COOKIE")
        .connect(&url)
        .await
        .unwrap();
    // The server closes the first connection: reconnect.
    let deadline = Instant::now() + BOUND;
    while server.upgrades() < 2 {
        assert!(Instant::now() < deadline);
        let _ = timeout(Duration::from_millis(20), ws.next()).await;
    }
    let debug = format!("{ws:?} {:?}", ws.target());
    let bad = ReconnectingSink::builder()
        .build("https://user:SECRET-PW@host/?token=SECRET-Q2")
        .unwrap_err();
    let errors = format!("{bad} {bad:?}");
    ws.close().await.unwrap();
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("connected"), "nothing was logged: {logs}");
    assert!(
        logs.contains("<redacted>"),
        "URLs are not redacted in the logs"
    );
    for text in [&logs, &debug, &errors] {
        assert!(!text.contains("SECRET"), "a secret leaked:\n{text}");
    }
}
