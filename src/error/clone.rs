//! Copies of errors: every variant, including the transport errors that are not `Clone`.

use std::sync::Arc;

use tokio_tungstenite::tungstenite;

use super::{BoxError, Error};

/// A copy of the error. The sources of [`Error::Tls`], [`Error::Request`] and
/// [`Error::Connection`] are shared; a [`tungstenite::Error`] (not `Clone` itself) is
/// copied variant by variant, an I/O error by its kind and message, and the rare
/// variants that carry an HTTP response or a TLS error become [`Error::Connection`] with
/// the same message.
impl Clone for Error {
    fn clone(&self) -> Self {
        match self {
            Error::NotDialed => Error::NotDialed,
            Error::TooManyReconnects {
                max_total,
                window,
                retry_at,
            } => Error::TooManyReconnects {
                max_total: *max_total,
                window: *window,
                retry_at: *retry_at,
            },
            Error::InvalidUrl { url, reason } => Error::InvalidUrl {
                url: url.clone(),
                reason,
            },
            Error::InvalidProxyUrl { url, reason } => Error::InvalidProxyUrl {
                url: url.clone(),
                reason,
            },
            Error::Rejected {
                status,
                retry_after,
                retryable,
            } => Error::Rejected {
                status: *status,
                retry_after: *retry_after,
                retryable: *retryable,
            },
            Error::Proxy {
                proxy,
                failure,
                retryable,
            } => Error::Proxy {
                proxy: proxy.clone(),
                failure: failure.clone(),
                retryable: *retryable,
            },
            Error::Transport(e) => clone_transport(e),
            Error::Tls(e) => Error::Tls(Arc::clone(e)),
            Error::Timeout => Error::Timeout,
            Error::GaveUp {
                attempts,
                elapsed,
                source,
            } => Error::GaveUp {
                attempts: *attempts,
                elapsed: *elapsed,
                source: source.clone(),
            },
            Error::ClosedByServer { code, reason } => Error::ClosedByServer {
                code: *code,
                reason: reason.clone(),
            },
            Error::ConnectionLost => Error::ConnectionLost,
            Error::NotReady => Error::NotReady,
            Error::UnsupportedMessage => Error::UnsupportedMessage,
            Error::InboundDropped { count } => Error::InboundDropped { count: *count },
            Error::CloseIncomplete {
                undelivered,
                source,
            } => Error::CloseIncomplete {
                undelivered: *undelivered,
                source: source.clone(),
            },
            Error::TaskEnded => Error::TaskEnded,
            Error::TaskPanicked { message } => Error::TaskPanicked {
                message: message.clone(),
            },
            Error::InvalidBackoff(e) => Error::InvalidBackoff(*e),
            Error::Request(e) => Error::Request(Arc::clone(e)),
            Error::Connection(e) => Error::Connection(Arc::clone(e)),
            Error::Gap(gap) => Error::Gap(*gap),
            Error::ResumeUnsupported => Error::ResumeUnsupported,
            Error::ResumeViolation(v) => Error::ResumeViolation(v.clone()),
            Error::SessionEnded => Error::SessionEnded,
        }
    }
}

/// A copy of a transport error: variant by variant, an I/O error by its kind and
/// message; one that carries an HTTP response or a TLS error becomes
/// [`Error::Connection`] with the same message.
fn clone_transport(e: &tungstenite::Error) -> Error {
    use tungstenite::Error as Ws;
    Error::Transport(match e {
        Ws::ConnectionClosed => Ws::ConnectionClosed,
        Ws::AlreadyClosed => Ws::AlreadyClosed,
        Ws::Io(io) => Ws::Io(std::io::Error::new(io.kind(), io.to_string())),
        Ws::Capacity(c) => Ws::Capacity(*c),
        Ws::Protocol(p) => Ws::Protocol(p.clone()),
        Ws::Utf8(s) => Ws::Utf8(s.clone()),
        Ws::AttackAttempt => Ws::AttackAttempt,
        other => {
            let message: BoxError = other.to_string().into();
            return Error::Connection(Arc::from(message));
        }
    })
}
