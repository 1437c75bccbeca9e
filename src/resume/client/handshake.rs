//! Each connection's start: the subprotocol offer, HELLO, and a server that does not
//! choose the subprotocol.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use http::HeaderMap;
use tokio_tungstenite::tungstenite::error::{ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::{self};

use crate::error::{BoxError, Error};
use crate::request::headers_hook;
use crate::resume::frame::{Frame, Hello, Window, PROTOCOL};
use crate::sink::ConnectInfo;
use crate::Message;

use super::*;

/// The hello of each connection: HELLO with where this client stands, and the
/// acknowledgement of everything the application took. That goes again on every
/// connection, owed or not: one carried by a DATA frame lost with the last connection
/// is not carried by the frame's resend, which carries what is owed when it is written.
pub(super) fn hello_hook(
    cell: Cell,
    plain: Arc<AtomicBool>,
    window: Window,
) -> impl FnMut(&ConnectInfo) -> Vec<Message> + Send + 'static {
    move |info: &ConnectInfo| {
        if plain.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let mut shared = lock(&cell);
        // HELLO asks for everything from `recv_next`: a pending replay is covered.
        shared.replay_from = None;
        let hello = Hello {
            claim: shared.session.claim(),
            recv_next: shared.inbound.received(),
            send_first: cell.send_first(info.oldest_tracked),
            window,
        };
        let mut messages = vec![Frame::Hello(hello).to_message()];
        let ack = shared.inbound.delivered() - 1;
        if ack > 0 {
            shared.ack_sent(ack, &cell);
            messages.push(Frame::Ack(ack).to_message());
        }
        messages
    }
}

/// The `Sec-WebSocket-Protocol` offer, on every attempt until plain mode is chosen.
pub(super) fn offer_hook(plain: Arc<AtomicBool>) -> Arc<crate::request::HeadersFn> {
    headers_hook(move |_attempt| {
        let plain = plain.load(Ordering::Relaxed);
        async move {
            let mut headers = HeaderMap::new();
            if !plain {
                headers.insert(
                    http::header::SEC_WEBSOCKET_PROTOCOL,
                    http::HeaderValue::from_static(PROTOCOL),
                );
            }
            Ok::<_, BoxError>(headers)
        }
    })
}

/// Whether `error` says the server did not choose the offered subprotocol.
pub(super) fn is_unsupported(error: &Error) -> bool {
    match error {
        Error::Transport(tungstenite::Error::Protocol(
            ProtocolError::SecWebSocketSubProtocolError(
                SubProtocolError::NoSubProtocol | SubProtocolError::InvalidSubProtocol,
            ),
        )) => true,
        Error::GaveUp { source, .. } => is_unsupported(source),
        _ => false,
    }
}

/// A refusal of the subprotocol on a reconnection reads as resume being unsupported.
pub(super) fn map_unsupported(error: Error) -> Error {
    if is_unsupported(&error) {
        Error::ResumeUnsupported
    } else {
        error
    }
}

pub(super) trait MapErrItem {
    fn map_err_item(self) -> Self;
}

impl MapErrItem for Poll<Option<Result<Message, Error>>> {
    fn map_err_item(self) -> Self {
        self.map(|item| item.map(|r| r.map_err(map_unsupported)))
    }
}
