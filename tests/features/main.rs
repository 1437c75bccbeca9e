//! Beyond reconnecting: keepalive, connect timeout, visible state, close codes, jitter,
//! redaction, input limits, cancellation.

#[path = "../support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use ws_reconnect::testing::Fault;
use ws_reconnect::{CloseAction, ConnectionState};
use ws_reconnect::{DialKind, Error, Message, ReconnectingSink};

use support::{
    connect, connect_err, echo, eventually, mock, quick, read_until, serve, sharing,
    silent_listener, through_proxy, Reply, Ws, BOUND,
};

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
