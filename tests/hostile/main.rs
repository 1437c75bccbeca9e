//! Hostile input: every server that misbehaves, at the handshake or in the frames, ends
//! in a typed error within a bounded time, never a panic, a hang or a spin.
//!
//! | file | what it holds |
//! |---|---|
//! | `main.rs` | hostile servers, table-driven: handshake-level and frame-level hostility, an invalid close code, servers that reset every connection or every handshake |
//! | `protocol.rs` | a protocol violation met while writing, a message over the size limit: one error item, then a reconnection |

#[path = "../support/mod.rs"]
mod support;

mod protocol;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use ws_reconnect::tungstenite::error::ProtocolError;
use ws_reconnect::tungstenite::Error as WsError;
use ws_reconnect::{Error, Message, ReconnectingSink};

use support::{connect, quick, raw_server, read_request, reply_and_hold, RawServer, BOUND};

/// A raw server's script (see [`support::raw_server`]), boxed so that a table can hold
/// different ones.
type Script =
    Arc<dyn Fn(usize, TcpStream) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

async fn start(script: Script) -> RawServer {
    raw_server("127.0.0.1:0", move |n, tcp| script(n, tcp))
        .await
        .unwrap()
}

/// Reads the HTTP request head, then writes `reply` and holds the connection.
fn answer(reply: &'static [u8]) -> Script {
    Arc::new(move |_, mut tcp| {
        Box::pin(async move {
            read_request(&mut tcp).await;
            reply_and_hold(&mut tcp, reply).await;
        })
    })
}

/// [`quick`] reconnections that give up within about a second: every case here must end
/// in an error, not retry forever.
fn gives_up_quickly() -> ws_reconnect::Builder {
    quick()
        .max_elapsed_time(Some(Duration::from_millis(800)))
        .connect_timeout(Duration::from_millis(300))
}

#[tokio::test]
async fn handshake_level_hostility_is_a_typed_error_in_bounded_time() {
    type Check = fn(&Error) -> bool;
    let cases: Vec<(&str, Script, Check, Option<usize>)> = vec![
        (
            "HTTP 200 without upgrade",
            answer(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi"),
            |e| matches!(e, Error::Rejected { status, retryable: false, .. } if status.as_u16() == 200),
            Some(1),
        ),
        (
            "101 with a wrong Sec-WebSocket-Accept",
            answer(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"),
            |e| matches!(e, Error::Transport(WsError::Protocol(ProtocolError::SecWebSocketAcceptKeyMismatch))),
            Some(1),
        ),
        (
            "garbage instead of HTTP",
            answer(b"\x00\x01\x02 this is not HTTP at all \xff\xfe\r\n\r\n"),
            |e| !e.is_retryable(),
            Some(1),
        ),
        (
            "a redirect",
            answer(b"HTTP/1.1 302 Found\r\nlocation: ws://elsewhere.invalid/\r\ncontent-length: 0\r\n\r\n"),
            |e| matches!(e, Error::Rejected { status, .. } if status.as_u16() == 302) && e.to_string().contains("302"),
            Some(1),
        ),
        (
            "a handshake dribbled one byte per second",
            Arc::new(|_, mut tcp: TcpStream| {
                Box::pin(async move {
                    read_request(&mut tcp).await;
                    for b in b"HTTP/1.1 101 Switching Protocols\r\n".iter() {
                        if tcp.write_all(&[*b]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                })
            }),
            |e| matches!(e, Error::GaveUp { source, .. } if matches!(**source, Error::Timeout)),
            None,
        ),
        (
            "a connection closed in the middle of the handshake",
            Arc::new(|_, mut tcp: TcpStream| {
                Box::pin(async move {
                    read_request(&mut tcp).await;
                    let _ = tcp.write_all(b"HTTP/1.1 101 Switching").await;
                })
            }),
            |e| matches!(e, Error::GaveUp { source, .. } if source.is_retryable()),
            None,
        ),
        (
            "accept and reset at once, forever",
            Arc::new(|_, tcp: TcpStream| {
                Box::pin(async move {
                    let _ = tcp.set_zero_linger();
                    drop(tcp);
                })
            }),
            |e| matches!(e, Error::GaveUp { source, .. } if source.is_retryable()),
            None,
        ),
    ];
    for (name, script, check, attempts) in cases {
        let server = start(script).await;
        let started = Instant::now();
        let cpu_before = process_cpu();
        let err = timeout(BOUND, gives_up_quickly().connect(server.url()))
            .await
            .unwrap_or_else(|_| panic!("{name}: hung"))
            .expect_err(name);
        let took = started.elapsed();
        assert!(check(&err), "{name}: unexpected {err:?}");
        assert!(took < Duration::from_secs(3), "{name}: took {took:?}");
        let n = server.attempts();
        match attempts {
            Some(expected) => assert_eq!(n, expected, "{name}: attempts"),
            // Retried with backoff (20, 30, 45... ms within 800 ms): a handful, not a spin.
            None => assert!((2..=20).contains(&n), "{name}: {n} attempts"),
        }
        let cpu = process_cpu() - cpu_before;
        assert!(
            cpu < Duration::from_millis(500),
            "{name}: {cpu:?} of CPU: spinning?"
        );
    }
}

/// CPU time of this test's thread (the current-thread runtime runs on it), from /proc
/// (clock ticks of 10 ms). Other tests run in other threads of the same process.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Completes a real handshake, writes raw bytes as the first frame, then on the next
/// connection sends a good message.
fn after_handshake(raw: &'static [u8]) -> Script {
    Arc::new(move |n, tcp| {
        Box::pin(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            if n == 0 {
                let _ = ws.get_mut().write_all(raw).await;
            } else {
                let _ = futures::SinkExt::send(&mut ws, Message::text("ok")).await;
            }
            while let Some(Ok(_)) = ws.next().await {}
        })
    })
}

#[tokio::test]
async fn frame_level_hostility_is_an_error_item_then_a_reconnection() {
    type Check = fn(&Error) -> bool;
    let cases: Vec<(&str, &'static [u8], Check)> = vec![
        ("invalid UTF-8 in a text frame", b"\x81\x02\xff\xfe", |e| {
            matches!(e, Error::Transport(WsError::Utf8(_)))
        }),
        (
            "a masked frame from the server",
            b"\x81\x82\x01\x02\x03\x04\x69\x6b",
            |e| {
                matches!(
                    e,
                    Error::Transport(WsError::Protocol(ProtocolError::MaskedFrameFromServer))
                )
            },
        ),
        (
            "a frame over the size limit",
            b"\x82\x7f\x00\x00\x00\x00\x10\x00\x00\x00",
            |e| matches!(e, Error::Transport(WsError::Capacity(_))),
        ),
    ];
    for (name, raw, check) in cases {
        let server = start(after_handshake(raw)).await;
        let mut ws = connect(gives_up_quickly(), server.url()).await;
        let first = timeout(BOUND, ws.next())
            .await
            .unwrap_or_else(|_| panic!("{name}: hung"));
        match first {
            Some(Err(e)) => assert!(check(&e), "{name}: unexpected {e:?}"),
            other => panic!("{name}: expected an error item, got {other:?}"),
        }
        let second = timeout(BOUND, ws.next())
            .await
            .unwrap_or_else(|_| panic!("{name}: hung"));
        assert!(
            matches!(second, Some(Ok(ref m)) if *m == Message::text("ok")),
            "{name}: {second:?}"
        );
        assert_eq!(server.attempts(), 2, "{name}");
    }
}

#[tokio::test]
async fn a_close_frame_with_an_invalid_code_ends_the_stream_as_a_protocol_error() {
    // tungstenite answers an invalid code (999) as a protocol violation, 1002, which the
    // default close policy does not reconnect on.
    let server = start(after_handshake(b"\x88\x02\x03\xe7")).await;
    let mut ws = connect(gives_up_quickly(), server.url()).await;
    let first = timeout(BOUND, ws.next()).await.expect("hung");
    assert!(
        matches!(first, Some(Err(Error::ClosedByServer { code: 1002, .. }))),
        "{first:?}"
    );
    assert!(timeout(BOUND, ws.next()).await.expect("hung").is_none());
    assert_eq!(server.attempts(), 1);
}

#[tokio::test]
async fn a_server_that_accepts_and_resets_every_connection_is_stopped_by_the_limiter() {
    // Every connection is upgraded, then reset at once: each reconnection succeeds and
    // dies, so it is the limiter (3 per minute) that stops the loop, and the backoff
    // (connections that never prove healthy) that spaces it.
    let server = start(Arc::new(|_, tcp: TcpStream| {
        Box::pin(async move {
            if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                let _ = ws.get_ref().set_zero_linger();
            }
        })
    }))
    .await;
    let mut ws = connect(
        ReconnectingSink::builder()
            .initial_interval(Duration::ZERO)
            .max_reconnections_total(3)
            .max_reconnections_time(Duration::from_secs(60)),
        server.url(),
    )
    .await;
    let cpu_before = process_cpu();
    let refused = timeout(BOUND, async {
        loop {
            match ws.next().await {
                Some(Err(e @ Error::TooManyReconnects { .. })) => break e,
                Some(_) => {}
                None => panic!("the stream ended before the limiter refused"),
            }
        }
    })
    .await
    .expect("the limiter never refused");
    assert!(matches!(
        refused,
        Error::TooManyReconnects { max_total: 3, .. }
    ));
    assert_eq!(server.attempts(), 4, "first dial + 3 reconnections");
    // Afterwards the reader waits for the window (a minute): no attempt, no CPU.
    let _ = timeout(Duration::from_millis(300), ws.next()).await;
    assert_eq!(server.attempts(), 4);
    let cpu = process_cpu() - cpu_before;
    assert!(cpu < Duration::from_millis(500), "{cpu:?} of CPU");
}

#[tokio::test]
async fn a_server_that_resets_every_handshake_gets_growing_delays_not_a_spin() {
    // Zero initial interval: the first retry is immediate, then 1, 2, 4... ms.
    let server = start(Arc::new(|n, tcp: TcpStream| {
        Box::pin(async move {
            if n == 0 {
                if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                    let _ = ws.get_ref().set_zero_linger();
                }
            } else {
                let _ = tcp.set_zero_linger();
            }
        })
    }))
    .await;
    let mut ws = connect(
        ReconnectingSink::builder()
            .initial_interval(Duration::ZERO)
            .max_elapsed_time(Some(Duration::from_millis(1000))),
        server.url(),
    )
    .await;
    let cpu_before = process_cpu();
    let item = timeout(BOUND, ws.next()).await.expect("hung");
    assert!(matches!(item, Some(Err(Error::GaveUp { .. }))), "{item:?}");
    let attempts = server.attempts();
    // 1 + 2 + 4 + ... ms within a second: about 11 attempts (randomized), not thousands.
    assert!((3..=40).contains(&attempts), "{attempts} attempts");
    let cpu = process_cpu() - cpu_before;
    assert!(cpu < Duration::from_millis(500), "{cpu:?} of CPU");
}
