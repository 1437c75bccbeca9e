//! How a protocol layered on acknowledged mode puts the messages it tracks on the wire.
//!
//! The outbox keeps a tracked message as the application sent it; a [`Framing`] turns
//! it into the message that is written, each time it is written (resume mode's DATA
//! frames: the sequence number, the acknowledgement owed at that moment, the payload).
//! The written message lives only as long as the write: the connection copies it into
//! its buffer, so the framing can build every one in the same few kilobytes of memory,
//! which stay in the cache, rather than keep a framed copy of everything in flight.

use crate::Message;

/// Turns a tracked message into what is written for it. Installed with
/// [`Builder::framed`](crate::Builder::framed); untracked messages (Pings, Pongs, the
/// protocol's own control messages) are written as they are.
pub(crate) trait Framing: Send {
    /// What to write for `message`, tracked under `id`. `prompt`: the message was
    /// accepted asking the peer to acknowledge it at once.
    fn frame(&mut self, message: &Message, id: u64, prompt: bool) -> Message;
}
