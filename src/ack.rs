//! Acknowledged delivery: which outbound messages the peer acknowledges, and how.

use crate::Message;

/// Tells the sink which outbound messages are tracked and which inbound messages
/// acknowledge them.
///
/// Called from the sink's poll functions: keep both methods cheap and non-blocking.
///
/// Without acknowledgements, a message flushed into a connection that then dies can be
/// lost: the socket took it, the peer never read it. With an [`Acknowledge`]
/// implementation, the sink keeps every *tracked* message until the peer acknowledges
/// it, and resends all unacknowledged ones, in order, after every reconnection. Delivery
/// becomes at-least-once: the peer deduplicates by id.
///
/// Acknowledgements are cumulative (an ack of `n` covers every tracked id `<= n`), are
/// applied the moment they are read — by whichever half reads, and while closing — and
/// are consumed: they are not yielded by the stream.
///
/// ```
/// use ws_reconnect::{Acknowledge, Message};
///
/// /// Outbound messages are "<id>:<payload>"; the server answers "ack:<id>".
/// struct Numbered;
///
/// impl Acknowledge for Numbered {
///     fn id(&mut self, outbound: &Message) -> Option<u64> {
///         outbound.to_text().ok()?.split_once(':')?.0.parse().ok()
///     }
///     fn acked(&mut self, inbound: &Message) -> Option<u64> {
///         inbound.to_text().ok()?.strip_prefix("ack:")?.parse().ok()
///     }
/// }
///
/// let mut acks = Numbered;
/// assert_eq!(acks.id(&Message::text("7:hello")), Some(7));
/// assert_eq!(acks.acked(&Message::text("ack:7")), Some(7));
/// assert_eq!(acks.acked(&Message::text("7:hello")), None);
/// ```
///
/// On the server, deduplicate by id: remember the highest id applied per client and
/// skip anything at or below it (ids are sent in order on each connection, and a
/// reconnection resends from the oldest unacknowledged one).
///
/// ```
/// # use std::collections::HashMap;
/// fn apply(highest: &mut HashMap<String, u64>, client: &str, id: u64) -> bool {
///     let seen = highest.entry(client.to_owned()).or_insert(0);
///     if id <= *seen && *seen != 0 {
///         return false; // a resent duplicate
///     }
///     *seen = id;
///     true
/// }
/// let mut highest = HashMap::new();
/// assert!(apply(&mut highest, "a", 1));
/// assert!(apply(&mut highest, "a", 2));
/// assert!(!apply(&mut highest, "a", 2));
/// ```
pub trait Acknowledge: Send + 'static {
    /// The id an outbound message will be acknowledged by; `None`: not tracked.
    fn id(&mut self, outbound: &Message) -> Option<u64>;

    /// The highest id an inbound message acknowledges (cumulative: it acknowledges every
    /// tracked message with an id `<=` this one); `None`: not an acknowledgement.
    fn acked(&mut self, inbound: &Message) -> Option<u64>;

    /// An acknowledgement carried by the data message [`acked`](Self::acked) was last
    /// called with and returned `None` for: the sink applies it, and the message still
    /// goes to the reader. `None` (the default): data carries no acknowledgement.
    #[doc(hidden)]
    fn carried(&mut self) -> Option<u64> {
        None
    }
}
