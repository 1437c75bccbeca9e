//! A peer that reads in order, for the outcome, volatile, acknowledged and close-crossing
//! models: what the client flushes goes on a wire, and the peer reads it only when the
//! test says so. Reading a Ping queues its Pong, reading a numbered message records it
//! (and, in acknowledged mode, lets the peer acknowledge it); a Close from the server
//! discards whatever the peer had not read yet. Each connection keeps a log of what was
//! written to it, what the peer read, and what the client read back.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures::{Sink, Stream};
use ws_reconnect::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
use ws_reconnect::{Error, Message, Target};

/// How a connection ended, as the peer ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ending {
    /// Still up, or dropped by the client.
    #[default]
    Open,
    /// A flush failed: the connection was reset, the unread wire lost.
    Reset,
    /// The peer went away without a Close frame (EOF).
    HungUp,
    /// The peer sent a Close frame with this code.
    Closed(u16),
}

#[derive(Debug, Default)]
pub struct Conn {
    /// Every frame the client wrote, in order.
    pub written: Vec<Message>,
    unflushed: Vec<Message>,
    wire: VecDeque<Message>,
    /// The data messages the peer read, in order.
    pub read: Vec<String>,
    /// Data texts the client flushed, but for the flush of its Close frame (a peer that
    /// is gone discards them).
    pub flushed: Vec<String>,
    /// Data texts flushed while the peer was there to read them.
    pub wired: Vec<String>,
    to_client: VecDeque<Message>,
    fail_flush: bool,
    dead: bool,
    /// The peer stopped reading: it closed or hung up; what comes later is discarded.
    gone: bool,
    pub ending: Ending,
    /// How many data messages (in `read` order) the Pongs the client took cover.
    pub ponged: usize,
    /// Pongs queued, each with how many data messages the peer had read before the Ping.
    pong_covers: VecDeque<usize>,
    /// The highest acknowledgement the client read on this connection.
    pub acked_on: u64,
}

#[derive(Debug, Default)]
pub struct World {
    pub conns: Vec<Conn>,
    pub refuse: bool,
    /// The highest acknowledgement the client read.
    pub acked: u64,
    /// Written numbered messages that were already acknowledged when written (text).
    pub resent_after_ack: Vec<String>,
}

/// The number of a model message "m<n>".
pub fn number(text: &str) -> Option<u64> {
    text.strip_prefix('m')?.parse().ok()
}

fn text_of(m: &Message) -> Option<String> {
    match m {
        Message::Text(t) => Some(t.to_string()),
        _ => None,
    }
}

impl Conn {
    /// Flushes what was written: onto the wire, unless the peer is gone. `closing`: the
    /// flush of a Close frame, which the sink does not count as a flush of its messages.
    fn flush(&mut self, closing: bool) -> io::Result<()> {
        if self.dead {
            return Err(broken());
        }
        if self.fail_flush {
            // A reset: what was written and what the peer had not read are lost.
            self.dead = true;
            if self.ending == Ending::Open {
                self.ending = Ending::Reset;
            }
            self.unflushed.clear();
            self.wire.clear();
            return Err(broken());
        }
        for m in std::mem::take(&mut self.unflushed) {
            if let Some(t) = text_of(&m) {
                if !self.gone {
                    self.wired.push(t.clone());
                }
                if !closing {
                    self.flushed.push(t);
                }
            }
            if !self.gone {
                self.wire.push_back(m);
            }
        }
        Ok(())
    }

    /// The client closed it (`close()`): its Close frame was not an answer to the
    /// server's.
    pub fn closed_by_client(&self) -> bool {
        let sent = self.written.iter().any(|m| matches!(m, Message::Close(_)));
        sent && !matches!(self.ending, Ending::Closed(_))
    }
}

impl World {
    pub fn live(&mut self) -> Option<&mut Conn> {
        self.conns
            .last_mut()
            .filter(|c| !c.dead && !c.gone && c.ending == Ending::Open)
    }

    /// The highest acknowledgement the client read on connections up to `k`.
    pub fn acked_by(&self, k: usize) -> u64 {
        self.conns[..=k]
            .iter()
            .map(|c| c.acked_on)
            .max()
            .unwrap_or(0)
    }

    /// The peer of the live connection reads up to `n` frames; in acknowledged mode
    /// (`ack`) it then acknowledges everything it read.
    pub fn peer_reads(&mut self, n: usize, ack: bool) {
        let Some(conn) = self.live() else { return };
        let mut top = None;
        for _ in 0..n {
            let Some(frame) = conn.wire.pop_front() else {
                break;
            };
            match frame {
                Message::Ping(p) => {
                    conn.to_client.push_back(Message::Pong(p));
                    conn.pong_covers.push_back(conn.read.len());
                }
                Message::Close(_) => {
                    // The client's close: the peer answers and ends the connection.
                    conn.to_client.push_back(Message::Close(None));
                    conn.gone = true;
                    conn.wire.clear();
                    break;
                }
                m => {
                    if let Some(t) = text_of(&m) {
                        top = number(&t).or(top);
                        conn.read.push(t);
                    }
                }
            }
        }
        if ack {
            let read_top = conn.read.iter().filter_map(|t| number(t)).max();
            if let Some(n) = read_top.or(top) {
                self.ack(n);
            }
        }
    }

    /// The peer acknowledges `n` (it read it).
    pub fn ack(&mut self, n: u64) {
        if let Some(conn) = self.live() {
            conn.to_client.push_back(Message::text(format!("ack {n}")));
        }
    }

    /// The highest numbered message the live connection's peer read.
    pub fn read_top(&mut self) -> Option<u64> {
        let conn = self.live()?;
        conn.read.iter().filter_map(|t| number(t)).max()
    }

    /// The server closes the live connection with `code` after reading `n` frames: what
    /// is left on the wire is discarded.
    pub fn server_close(&mut self, code: u16, n: usize, ack: bool) {
        self.peer_reads(n, ack);
        let Some(conn) = self.live() else { return };
        conn.wire.clear();
        conn.gone = true;
        conn.ending = Ending::Closed(code);
        conn.to_client.push_back(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        })));
    }

    /// The peer of the live connection goes away without reading what is on the wire.
    pub fn hang_up(&mut self) {
        let Some(conn) = self.live() else { return };
        conn.wire.clear();
        conn.gone = true;
        conn.ending = Ending::HungUp;
    }

    /// Whether the client's Close frame was written to the live connection.
    pub fn close_written(&mut self) -> bool {
        self.live()
            .is_some_and(|c| c.written.iter().any(|m| matches!(m, Message::Close(_))))
    }

    /// The live connection's next flush fails.
    pub fn fail_next_flush(&mut self) {
        if let Some(conn) = self.live() {
            conn.fail_flush = true;
        }
    }
}

#[derive(Clone, Default)]
pub struct Make(pub Arc<Mutex<World>>);

impl Make {
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap()
    }
}

pub struct WireConn {
    id: usize,
    world: Arc<Mutex<World>>,
}

fn broken() -> io::Error {
    io::Error::from(io::ErrorKind::BrokenPipe)
}

impl WireConn {
    fn with<T>(&self, f: impl FnOnce(&mut World, usize) -> T) -> T {
        f(&mut self.world.lock().unwrap(), self.id)
    }
}

impl Sink<Message> for WireConn {
    type Error = io::Error;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.with(|w, id| match w.conns[id].dead {
            true => Err(broken()),
            false => Ok(()),
        }))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> io::Result<()> {
        self.with(|w, id| {
            if w.conns[id].dead {
                return Err(broken());
            }
            if let Some(n) = text_of(&item).as_deref().and_then(number) {
                if n <= w.acked {
                    w.resent_after_ack.push(format!("m{n}"));
                }
            }
            let conn = &mut w.conns[id];
            conn.written.push(item.clone());
            conn.unflushed.push(item);
            Ok(())
        })
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.with(|w, id| w.conns[id].flush(false)))
    }

    /// The client's Close frame goes on the wire after what was written, once.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.with(|w, id| {
            let conn = &mut w.conns[id];
            let sent = conn.written.iter().any(|m| matches!(m, Message::Close(_)));
            if !conn.dead && !sent {
                conn.written.push(Message::Close(None));
                conn.unflushed.push(Message::Close(None));
            }
        });
        let _ = cx;
        Poll::Ready(self.with(|w, id| w.conns[id].flush(true)))
    }
}

impl Stream for WireConn {
    type Item = Result<Message, io::Error>;

    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.with(|w, id| {
            let conn = &mut w.conns[id];
            if conn.dead {
                return Poll::Ready(None);
            }
            let Some(m) = conn.to_client.pop_front() else {
                // The test polls again itself after each move of the peer.
                return match conn.gone {
                    true => Poll::Ready(None),
                    false => Poll::Pending,
                };
            };
            match &m {
                Message::Pong(_) => conn.ponged = conn.pong_covers.pop_front().unwrap_or(0),
                Message::Text(t) => {
                    if let Some(n) = t.strip_prefix("ack ").and_then(|n| n.parse().ok()) {
                        conn.acked_on = conn.acked_on.max(n);
                        w.acked = w.acked.max(n);
                    }
                }
                _ => {}
            }
            Poll::Ready(Some(Ok(m)))
        })
    }
}

impl tower::Service<Target> for Make {
    type Response = WireConn;
    type Error = Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<WireConn, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Target) -> Self::Future {
        let world = self.0.clone();
        Box::pin(async move {
            let mut w = world.lock().unwrap();
            if w.refuse {
                return Err(Error::Rejected {
                    status: http::StatusCode::FORBIDDEN,
                    retry_after: None,
                    retryable: false,
                });
            }
            w.conns.push(Conn::default());
            let id = w.conns.len() - 1;
            drop(w);
            Ok(WireConn { id, world })
        })
    }
}
