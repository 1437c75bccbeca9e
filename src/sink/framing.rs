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

    /// How many tracked messages the sink gathers into one written message before it
    /// writes them ([`frame_batch`](Self::frame_batch)); 0 or 1: none, each one is
    /// written as it is accepted. The gathered messages go at the latest with the next
    /// flush or the next untracked message (see `outbox/deferred.rs`).
    fn batch_limit(&self) -> usize;

    /// What to write for `entries` (each a message, its id and its `prompt`), in order:
    /// one message for all of them. `count` and `bytes`: their number and payload
    /// bytes. Called only when [`batch_limit`](Self::batch_limit) is more than 1, with
    /// at least two entries, and with room in the connection, as [`frame`](Self::frame).
    fn frame_batch(
        &mut self,
        entries: &mut dyn Iterator<Item = Tracked<'_>>,
        count: usize,
        bytes: usize,
    ) -> Message;
}

/// A tracked message as the outbox hands it to [`Framing::frame_batch`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tracked<'a> {
    pub(crate) message: &'a Message,
    pub(crate) id: u64,
    pub(crate) prompt: bool,
}
