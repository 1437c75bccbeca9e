//! A byte-counting socket: what moves on a connection below its frames, so that a slow
//! link is told from a dead one.
//!
//! The keepalive counts whole frames, and a large message on a slow link holds its Ping
//! (and the peer's Pong) behind it for as long as it takes. The connector wraps each TCP
//! socket in a [`MeteredStream`] that counts the bytes read (a partial frame is life
//! too) and, on Linux, reads the kernel's count of bytes written but not yet
//! acknowledged by the peer (`SIOCOUTQ`): a send queue that drains is life. Elsewhere
//! only the bytes read are counted.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::progress::{Progress, BACKLOG};

/// A TCP socket that counts what moves through it (bytes read, and on Linux the kernel's
/// unacknowledged send queue, for the keepalive): the transport of
/// [`TungsteniteConnection`](crate::TungsteniteConnection).
///
/// It reads and writes as the socket does; [`get_ref`](Self::get_ref) reaches the socket.
///
/// ```
/// use ws_reconnect::TungsteniteConnection;
/// use tokio_tungstenite::MaybeTlsStream;
///
/// /// The peer of a plain (`ws://`) connection.
/// fn peer(ws: &TungsteniteConnection) -> Option<std::net::SocketAddr> {
///     match ws.get_ref() {
///         MaybeTlsStream::Plain(metered) => metered.get_ref().peer_addr().ok(),
///         _ => None,
///     }
/// }
/// # let _ = peer;
/// ```
#[derive(Debug)]
pub struct MeteredStream<S = TcpStream> {
    inner: S,
    progress: Arc<Progress>,
    /// `progress.written` when the send queue was last read.
    sampled: u64,
}

impl<S> MeteredStream<S> {
    pub(crate) fn new(inner: S, progress: Arc<Progress>) -> Self {
        MeteredStream {
            inner,
            progress,
            sampled: 0,
        }
    }

    /// The socket.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The socket, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl MeteredStream<TcpStream> {
    /// Reads the kernel's send queue when the keepalive asks (it is deciding), at a flush
    /// (`flushing`) that follows writes, and when bytes arrive (`arrived`) while a backlog
    /// may be queued: the keepalive takes its baseline when a frame arrives, and a stale
    /// one would count what drained before it as life after it. Not after every write,
    /// which costs a system call each.
    fn sample_queue(&mut self, flushing: bool, arrived: bool) {
        let written = self.progress.written.load(Relaxed);
        let fresh = self.progress.fresh.load(Relaxed);
        let after_writes = flushing && written != self.sampled;
        let backlog = self.progress.queued.load(Relaxed) >= BACKLOG
            || written.saturating_sub(self.sampled) >= BACKLOG;
        if !(fresh || after_writes || arrived && backlog) {
            return;
        }
        if fresh {
            self.progress.fresh.store(false, Relaxed);
        }
        self.sampled = written;
        if let Some(queued) = unacknowledged(&self.inner) {
            self.progress.queued.store(queued, Relaxed);
            self.progress
                .acknowledged
                .store(written.saturating_sub(queued), Relaxed);
        }
    }
}

impl AsyncRead for MeteredStream<TcpStream> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.progress.read.fetch_add(read as u64, Relaxed);
            self.sample_queue(false, true);
        }
        polled
    }
}

impl AsyncWrite for MeteredStream<TcpStream> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = polled {
            self.progress.written.fetch_add(written as u64, Relaxed);
        }
        self.sample_queue(false, false);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(written)) = polled {
            self.progress.written.fetch_add(written as u64, Relaxed);
        }
        self.sample_queue(false, false);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.sample_queue(true, false);
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Bytes written to `tcp` and not yet acknowledged by the peer (`SIOCOUTQ`).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn unacknowledged(tcp: &TcpStream) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut queued: libc::c_int = 0;
    // SAFETY: the descriptor belongs to `tcp`, which is borrowed for the call and so
    // stays open; SIOCOUTQ (TIOCOUTQ) writes one `c_int` through the pointer, which
    // points at `queued`.
    let result = unsafe { libc::ioctl(tcp.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    (result == 0).then(|| u64::try_from(queued).unwrap_or(0))
}

/// Where the system does not tell (see the [module docs](self)).
#[cfg(not(target_os = "linux"))]
fn unacknowledged(_: &TcpStream) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_socket_counts_what_it_reads_and_what_the_peer_acknowledged() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, server) = tokio::join!(client, listener.accept());
        let (mut server, _) = server.unwrap();
        let progress = Arc::new(Progress::default());
        let mut metered = MeteredStream::new(client.unwrap(), progress.clone());
        metered.write_all(b"hello").await.unwrap();
        metered.flush().await.unwrap();
        let mut buf = [0u8; 5];
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(b"back").await.unwrap();
        let mut back = [0u8; 4];
        metered.read_exact(&mut back).await.unwrap();
        let moved = progress.now();
        assert_eq!(moved.read, 4);
        if cfg!(target_os = "linux") {
            assert!(moved.acknowledged.is_some(), "the kernel tells on Linux");
        }
    }
}
