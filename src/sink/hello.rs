//! The messages sent first on every connection: fixed ones, and ones computed for each
//! connection from what the sink knows and what the application captured.

use std::fmt;
use std::time::Duration;

use crate::Message;

/// What the sink knows when a connection comes up, for the hook given to
/// [`Builder::on_connect_with`](super::Builder::on_connect_with).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectInfo {
    /// Connections established before this one: 0 on the first dial.
    pub connection: u64,
    /// Whether this connection replaces one that was lost (not a first dial).
    pub reconnect: bool,
    /// How long the sink was without a connection before this one came up; `None` on a
    /// first dial.
    pub outage: Option<Duration>,
    /// Messages the sink will resend on this connection, after the hello.
    pub resending: usize,
    /// The lowest acknowledgement id among them, if any is tracked: where a protocol
    /// that numbers its messages says its resending starts (resume mode's HELLO).
    pub(crate) oldest_tracked: Option<u64>,
}

/// A hook that computes the hello of each connection.
pub(super) type HelloFn = Box<dyn FnMut(&ConnectInfo) -> Vec<Message> + Send>;

/// The fixed `on_connect` messages and the optional per-connection hook.
pub(super) struct Hello {
    fixed: Vec<Message>,
    hook: Option<HelloFn>,
}

impl Hello {
    pub(super) fn new(fixed: Vec<Message>, hook: Option<HelloFn>) -> Self {
        Hello { fixed, hook }
    }

    /// The messages for one connection: the fixed ones, then the hook's. Close and raw
    /// Frame messages from the hook are not sent (logged at `warn`): closing is the
    /// sink's job.
    pub(super) fn for_connection(&mut self, info: &ConnectInfo) -> Vec<Message> {
        let mut messages = self.fixed.clone();
        if let Some(hook) = &mut self.hook {
            for message in hook(info) {
                if matches!(message, Message::Close(_) | Message::Frame(_)) {
                    tracing::warn!("on_connect_with returned a Close or Frame message; not sent");
                    continue;
                }
                messages.push(message);
            }
        }
        messages
    }
}

impl fmt::Debug for Hello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hello")
            .field("fixed", &self.fixed.len())
            .field("hook", &self.hook.is_some())
            .finish()
    }
}
