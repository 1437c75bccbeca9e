//! How the outbox keeps a message it owes: small payloads as a copy in one buffer, the
//! rest as the message itself.
//!
//! Keeping the message itself costs a reference-count increment when it is accepted and
//! a decrement when it is dropped (and, for a payload built from a `Vec`, an allocation
//! on the first clone). For a small payload a copy into a buffer the outbox owns is
//! cheaper, and the buffer is reset whenever no copy in it is still owed, which in the
//! steady state is at every flush. A copy becomes a message again only to be resent or
//! handed back.

use crate::{Bytes, Message};

/// Payloads up to this size are copied.
const COPY_MAX: usize = 256;

/// A message the outbox owes.
#[derive(Debug)]
pub(super) enum Kept {
    Whole(Message),
    Copied(Copied),
}

/// Where a copied payload sits in the [`Arena`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Copied {
    text: bool,
    start: usize,
    len: usize,
}

/// The buffer of copied payloads.
#[derive(Debug, Default)]
pub(super) struct Arena {
    buf: Vec<u8>,
    /// Copies in `buf` still owed.
    live: usize,
}

impl Kept {
    /// The payload's length.
    #[inline]
    pub(super) fn len(&self) -> usize {
        match self {
            Kept::Whole(m) => m.len(),
            Kept::Copied(c) => c.len,
        }
    }
}

impl Arena {
    /// Keeps what `message` says: a copy of a small Text or Binary payload, or a clone of
    /// the message. `bound`: the arena stops copying past this many bytes (it is reset
    /// only when nothing in it is owed).
    #[inline]
    pub(super) fn keep(&mut self, message: &Message, bound: usize) -> Kept {
        let (text, payload): (bool, &[u8]) = match message {
            Message::Text(t) => (true, t.as_bytes()),
            Message::Binary(b) => (false, b),
            other => return Kept::Whole(other.clone()),
        };
        if payload.len() > COPY_MAX || self.buf.len() + payload.len() > bound {
            return Kept::Whole(message.clone());
        }
        let start = self.buf.len();
        self.buf.extend_from_slice(payload);
        self.live += 1;
        Kept::Copied(Copied {
            text,
            start,
            len: payload.len(),
        })
    }

    /// The message `kept` stands for.
    pub(super) fn message(&self, kept: &Kept) -> Message {
        match kept {
            Kept::Whole(m) => m.clone(),
            Kept::Copied(c) => {
                let payload = &self.buf[c.start..c.start + c.len];
                // A copy of a Text message is valid UTF-8.
                match std::str::from_utf8(payload) {
                    Ok(text) if c.text => Message::text(text),
                    _ => Message::Binary(Bytes::copy_from_slice(payload)),
                }
            }
        }
    }

    /// `kept` is no longer owed; the buffer is reset once no copy is.
    #[inline]
    pub(super) fn release(&mut self, kept: &Kept) {
        if let Kept::Copied(_) = kept {
            self.live -= 1;
            if self.live == 0 {
                self.buf.clear();
            }
        }
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.live == 0
    }

    /// Whether `kept` is a copy in this arena.
    #[cfg(test)]
    pub(super) fn is_copy(kept: &Kept) -> bool {
        matches!(kept, Kept::Copied(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_payloads_are_copied_and_come_back_as_they_were() {
        let mut arena = Arena::default();
        let text = arena.keep(&Message::text("héllo"), 1 << 20);
        let binary = arena.keep(&Message::binary(vec![1, 2, 3]), 1 << 20);
        let large = arena.keep(&Message::binary(vec![0; COPY_MAX + 1]), 1 << 20);
        let ping = arena.keep(&Message::Ping(Bytes::from_static(b"p")), 1 << 20);
        assert!(Arena::is_copy(&text) && Arena::is_copy(&binary));
        assert!(!Arena::is_copy(&large) && !Arena::is_copy(&ping));
        assert_eq!(arena.message(&text), Message::text("héllo"));
        assert_eq!(arena.message(&binary), Message::binary(vec![1, 2, 3]));
        assert_eq!(text.len(), "héllo".len());
        for kept in [&text, &binary, &large, &ping] {
            arena.release(kept);
        }
        assert!(arena.buf.is_empty(), "reset once nothing in it is owed");
    }

    #[test]
    fn the_bound_stops_copying() {
        let mut arena = Arena::default();
        let first = arena.keep(&Message::binary(vec![0; 100]), 150);
        let second = arena.keep(&Message::binary(vec![0; 100]), 150);
        assert!(Arena::is_copy(&first));
        assert!(!Arena::is_copy(&second));
    }
}
