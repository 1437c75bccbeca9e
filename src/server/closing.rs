//! Closing a connection on purpose: a protocol violation (1002), a refusal (1013); and
//! answering the client's Close.

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use futures_sink::Sink;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::error::AttachError;
use super::store::Shared;
use crate::resume::frame::ResumeViolation;
use crate::Message;

/// Closes with 1002 and reports the violation.
pub(super) async fn violation<T>(
    shared: &Shared,
    mut transport: T,
    v: ResumeViolation,
) -> Result<(), AttachError>
where
    T: Sink<Message> + Unpin,
{
    shared
        .counters
        .violations
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(violation = %v, "a client broke the resume protocol; closing with 1002");
    close(
        &mut transport,
        CloseCode::Protocol,
        "resume protocol violation",
    )
    .await;
    Err(AttachError::Violation(v))
}

/// Sends the answer to the client's Close (queued by tungstenite when it read it) and
/// what was queued before it, such as the Pong to a Ping that came first, bounded: the
/// client learns that everything before its Close was read. Dropping the connection
/// instead would leave the client unsure of its last frames.
pub(super) async fn answer_close<T>(transport: &mut T)
where
    T: Sink<Message> + Unpin,
{
    let answer = poll_fn(|cx| Pin::new(&mut *transport).poll_close(cx));
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

/// Sends a Close frame and flushes, bounded: a connection that takes nothing is dropped.
pub(super) async fn close<T>(transport: &mut T, code: CloseCode, reason: &'static str)
where
    T: Sink<Message> + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let send = async {
        poll_fn(|cx| Pin::new(&mut *transport).poll_ready(cx))
            .await
            .ok()?;
        Pin::new(&mut *transport)
            .start_send(Message::Close(Some(frame)))
            .ok()?;
        poll_fn(|cx| Pin::new(&mut *transport).poll_flush(cx))
            .await
            .ok()
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), send).await;
}
