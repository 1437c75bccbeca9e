//! How a protocol layered on acknowledged mode puts the messages it tracks on the wire.
//!
//! The outbox keeps a tracked message as the application sent it; a [`Framing`] turns
//! it into the message that is written, each time it is written (resume mode's DATA
//! frames: the sequence number, the acknowledgement owed at that moment, the payload).
//! The written message usually lives only as long as the write: tungstenite copies it
//! into its write buffer, so the framing can build every one in the same few kilobytes
//! of memory, which stay in the cache, rather than keep a framed copy of everything in
//! flight. (A connection that keeps the messages it is given, an in-memory one, keeps
//! that memory alive with them: correct, only less economical.)

use crate::Message;

/// Turns a tracked message into what is written for it. Installed with
/// [`Builder::framed`](crate::Builder::framed); untracked messages (Pings, Pongs, the
/// protocol's own control messages) are written as they are.
pub(crate) trait Framing: Send {
    /// What to write for `message`, tracked under `id`. `prompt`: the message was
    /// accepted asking the peer to acknowledge it at once. Called only when the
    /// connection has room for the result: framing may have an effect (resume mode
    /// counts the acknowledgement the frame carries as sent).
    fn frame(&mut self, message: &Message, id: u64, prompt: bool) -> Message;
}
