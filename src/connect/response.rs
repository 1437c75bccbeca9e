//! Reading an HTTP response head from a stream: the upgrade's answer, and a proxy's
//! answer to `CONNECT`. Bounded in size; the bytes after the head are handed back.

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::headers::MAX_HEADERS;
use tokio_tungstenite::tungstenite::Error as WsError;

/// The largest response head (status line and headers) read before the handshake fails
/// with a capacity error: 64 KiB.
pub(crate) const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// A parsed response head.
#[derive(Debug)]
pub(super) struct ResponseHead {
    /// `HTTP/1.<minor>`.
    pub(super) minor_version: u8,
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
}

/// Reads the response head, at most [`MAX_RESPONSE_HEAD`] bytes of it, and returns it with
/// the bytes that came after it (the server may send frames right after a `101`).
pub(super) async fn read_head<S>(stream: &mut S) -> Result<(ResponseHead, Vec<u8>), WsError>
where
    S: AsyncRead + Unpin,
{
    let mut buf = Vec::with_capacity(4096);
    loop {
        // Never more than the bound in memory: the bytes after a head that fits are
        // read by tungstenite later.
        let room = MAX_RESPONSE_HEAD - buf.len();
        if room == 0 {
            return Err(too_long(buf.len()));
        }
        let scanned = buf.len();
        buf.resize(scanned + room.min(4096), 0);
        let n = stream.read(&mut buf[scanned..]).await?;
        buf.truncate(scanned + n);
        if n == 0 {
            return Err(WsError::Protocol(ProtocolError::HandshakeIncomplete));
        }
        // Parse only once an empty line has arrived: one parse per head, however the
        // server splits it into reads.
        if ends_head(&buf, scanned) {
            if let Some((len, head)) = parse_head(&buf)? {
                let leftover = buf.split_off(len);
                return Ok((head, leftover));
            }
        }
    }
}

fn too_long(size: usize) -> WsError {
    WsError::Capacity(CapacityError::MessageTooLong {
        size,
        max_size: MAX_RESPONSE_HEAD,
    })
}

/// Whether the bytes from `from` on complete an empty line (`\n\n` or `\n\r\n`): the end
/// of an HTTP head, if the head has started.
pub(super) fn ends_head(buf: &[u8], from: usize) -> bool {
    let tail = buf.get(from.saturating_sub(2)..).unwrap_or_default();
    tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
}

/// Parses a response head at the start of `buf`: its length and value, or `None` when it
/// is not complete yet.
pub(super) fn parse_head(buf: &[u8]) -> Result<Option<(usize, ResponseHead)>, WsError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let len = match response.parse(buf)? {
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(len) => len,
    };
    // A complete parse always has a version and a code; a missing one is a bad status
    // line all the same.
    let bad_status = || WsError::Protocol(ProtocolError::HttparseError(httparse::Error::Status));
    let minor_version = response.version.ok_or_else(bad_status)?;
    let status = StatusCode::from_u16(response.code.ok_or_else(bad_status)?)?;
    let mut headers = HeaderMap::with_capacity(response.headers.len());
    for h in response.headers.iter() {
        headers.append(
            HeaderName::from_bytes(h.name.as_bytes())?,
            HeaderValue::from_bytes(h.value)?,
        );
    }
    Ok(Some((
        len,
        ResponseHead {
            minor_version,
            status,
            headers,
        },
    )))
}
