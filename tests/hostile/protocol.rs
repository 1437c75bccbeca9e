//! A peer that breaks the protocol or the limits after the handshake: the reader is told
//! once (an error item), the connection is replaced, and what the writer was sending is
//! not lost on the way, even when the writer comes across the violation first.

use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use ws_reconnect::tungstenite::error::ProtocolError;
use ws_reconnect::{tungstenite, Error, Message};

use crate::support::*;

/// The first connection: "hello", then a text frame with RSV1 set (no extension was
/// negotiated, so the bit is a violation), written as raw bytes after tungstenite's
/// server handshake. Later connections push "second". Every connection records what it
/// receives.
fn violating(log: Log) -> impl Fn(usize, Ws) -> BoxHandler + Send + Sync + 'static {
    move |conn, mut ws: Ws| {
        let log = log.clone();
        Box::pin(async move {
            if conn == 0 {
                let raw = [0x81, 0x05, b'h', b'e', b'l', b'l', b'o', 0xC1, 0x00];
                if ws.get_mut().write_all(&raw).await.is_err() {
                    return;
                }
            } else if ws.send(Message::text("second")).await.is_err() {
                return;
            }
            recording(log)(conn, ws).await;
        })
    }
}

#[tokio::test]
async fn a_protocol_violation_met_while_writing_is_reported_once_and_the_stream_goes_on() {
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, violating(log.clone())).await;
    let mut ws = connect(quick(), server.url()).await;

    let first = timeout(BOUND, ws.next()).await.expect("next() hung");
    assert!(
        matches!(&first, Some(Ok(m)) if *m == Message::text("hello")),
        "{first:?}"
    );

    // The violation sits unread behind "hello"; the writer gets there first.
    timeout(BOUND, ws.send(Message::text("echo")))
        .await
        .expect("send(echo) hung")
        .expect("send(echo)");
    eventually("\"echo\" reaches the server", || {
        log.texts().iter().any(|t| t == "echo")
    })
    .await;
    let on = log
        .entries()
        .into_iter()
        .find(|(_, t)| t == "echo")
        .map(|(c, _)| c);
    assert_eq!(
        on,
        Some(0),
        "\"echo\" arrived on connection {on:?}, not on the first one it was sent on"
    );

    // The reader is told, once, at the place of the violation.
    let item = timeout(BOUND, ws.next())
        .await
        .expect("next() after the violation hung");
    assert!(
        matches!(
            item,
            Some(Err(Error::Transport(tungstenite::Error::Protocol(
                ProtocolError::NonZeroReservedBits
            ))))
        ),
        "the reader got {item:?} instead of the protocol violation"
    );

    // Then the stream goes on, on a new connection.
    let next = timeout(BOUND, ws.next())
        .await
        .expect("next() after the error item hung");
    assert!(
        matches!(&next, Some(Ok(m)) if *m == Message::text("second")),
        "{next:?}"
    );
}

#[tokio::test]
async fn an_oversized_message_is_an_error_item_then_a_reconnection() {
    let server = serve(
        |_| Reply::Upgrade,
        |conn, mut ws: Ws| async move {
            let text = if conn == 0 {
                "x".repeat(4096)
            } else {
                "small".to_string()
            };
            let _ = ws.send(Message::text(text)).await;
            while let Some(Ok(_)) = ws.next().await {}
        },
    )
    .await;
    let config = WebSocketConfig::default()
        .max_message_size(Some(1024))
        .max_frame_size(Some(1024));
    let mut ws = connect(quick().websocket_config(config), server.url()).await;
    let first = timeout(BOUND, ws.next()).await.unwrap().unwrap();
    assert!(
        matches!(
            first,
            Err(Error::Transport(
                ws_reconnect::tungstenite::Error::Capacity(_)
            ))
        ),
        "{first:?}"
    );
    let second = timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(second, Message::text("small"));
    assert_eq!(server.upgrades(), 2);
}
