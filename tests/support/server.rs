//! Loopback servers: a raw TCP server whose script speaks any bytes, and a WebSocket
//! server on top of it with scripted handshakes and per-connection handlers. Both bind
//! port 0 unless told otherwise, count attempts, and stop with every connection task when
//! dropped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::WebSocketStream;

/// The server side of an upgraded connection.
pub type Ws = WebSocketStream<TcpStream>;

/// A TCP server that speaks no protocol of its own: its script runs for every
/// connection, e.g. to send a handshake response no WebSocket server would.
pub struct RawServer {
    pub addr: SocketAddr,
    attempts: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl RawServer {
    /// `ws://<addr>/`.
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    /// Stops listening and waits until the listener is closed, so that its port can be
    /// bound again at once (a server restart).
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves on `bind` (`"127.0.0.1:0"`, `"[::1]:0"`, or an address to listen on again):
/// `script(attempt, socket)` runs for every connection, `attempt` counting from 0.
///
/// # Errors
/// Binding failed (e.g. no IPv6 loopback).
pub async fn raw_server<S, F>(
    bind: impl tokio::net::ToSocketAddrs,
    script: S,
) -> std::io::Result<RawServer>
where
    S: Fn(usize, TcpStream) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let attempts = Arc::new(AtomicUsize::new(0));
    let count = attempts.clone();
    let task = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            let attempt = count.fetch_add(1, Ordering::SeqCst);
            tasks.spawn(script(attempt, tcp));
        }
    });
    Ok(RawServer {
        addr,
        attempts,
        task,
    })
}

/// Reads a request head (up to the empty line, or until the client stops) as text.
pub async fn read_request(tcp: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Writes `bytes`, then holds the connection open until the client goes away.
pub async fn reply_and_hold(tcp: &mut TcpStream, bytes: &[u8]) {
    let _ = tcp.write_all(bytes).await;
    let mut sink = [0u8; 1024];
    while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
}

/// A listener that accepts TCP connections and never answers.
pub async fn silent_listener() -> RawServer {
    raw_server("127.0.0.1:0", |_, tcp| async move {
        let _held = tcp;
        std::future::pending::<()>().await;
    })
    .await
    .unwrap()
}

/// A port nothing listens on.
pub async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// A server that upgrades the first handshake and answers every later one with
/// `status`, 100 ms after the request (so that a message sent meanwhile waits for the
/// reconnection); the upgraded connection ends as soon as its first message arrives.
pub async fn refusing_reconnections(status: u16) -> RawServer {
    raw_server("127.0.0.1:0", move |attempt, mut tcp| async move {
        if attempt == 0 {
            if let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await {
                let _ = futures::StreamExt::next(&mut ws).await;
            }
            return;
        }
        read_request(&mut tcp).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let reply = format!("HTTP/1.1 {status} Refused\r\ncontent-length: 0\r\n\r\n");
        let _ = tokio::io::AsyncWriteExt::write_all(&mut tcp, reply.as_bytes()).await;
    })
    .await
    .unwrap()
}

/// No attempt comes in the 300 ms after the end: whatever the task or the sink does, a
/// failure for good dials nothing more. `seen`: the attempts made until the end.
pub async fn no_more_attempts(server: &RawServer, seen: usize) {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        server.attempts(),
        seen,
        "attempts after the failure for good"
    );
}

/// How the server answers one handshake attempt.
#[derive(Clone, Debug)]
pub enum Reply {
    Upgrade,
    Status(u16, Vec<(&'static str, String)>),
}

/// A handshake script: the first `n` attempts are refused with `status` and `headers`,
/// the later ones upgraded.
pub fn refuse_first(
    n: usize,
    status: u16,
    headers: Vec<(&'static str, String)>,
) -> impl Fn(usize) -> Reply + Send + Sync + 'static {
    move |attempt| {
        if attempt < n {
            Reply::Status(status, headers.clone())
        } else {
            Reply::Upgrade
        }
    }
}

/// A WebSocket server: a [`RawServer`] that answers handshakes and counts upgrades.
pub struct Server {
    pub addr: SocketAddr,
    upgrades: Arc<AtomicUsize>,
    raw: RawServer,
}

impl Server {
    /// `ws://<addr>/`.
    pub fn url(&self) -> String {
        self.raw.url()
    }

    /// TCP connections accepted (handshake attempts).
    pub fn attempts(&self) -> usize {
        self.raw.attempts()
    }

    /// Successful upgrades so far.
    pub fn upgrades(&self) -> usize {
        self.upgrades.load(Ordering::SeqCst)
    }

    /// See [`RawServer::stop`].
    pub async fn stop(self) {
        self.raw.stop().await;
    }
}

/// Serves on 127.0.0.1:0. `reply(attempt)` scripts each handshake; `handler(conn, ws)`
/// runs each upgraded connection (`conn` counts upgrades from 0).
pub async fn serve<R, H, F>(reply: R, handler: H) -> Server
where
    R: Fn(usize) -> Reply + Send + Sync + 'static,
    H: Fn(usize, Ws) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    serve_on("127.0.0.1:0".parse().unwrap(), reply, handler).await
}

/// [`serve`] on `addr`: the address of a server stopped a moment ago, to restart it.
pub async fn serve_on<R, H, F>(addr: SocketAddr, reply: R, handler: H) -> Server
where
    R: Fn(usize) -> Reply + Send + Sync + 'static,
    H: Fn(usize, Ws) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let upgrades = Arc::new(AtomicUsize::new(0));
    let u = upgrades.clone();
    let reply = Arc::new(reply);
    let handler = Arc::new(handler);
    let raw = raw_server(addr, move |attempt, tcp| {
        let (reply, handler, u) = (reply.clone(), handler.clone(), u.clone());
        async move {
            match reply(attempt) {
                Reply::Upgrade => {
                    if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                        let conn = u.fetch_add(1, Ordering::SeqCst);
                        handler(conn, ws).await;
                    }
                }
                Reply::Status(code, headers) => {
                    // tungstenite's callback signature fixes the error type.
                    #[allow(clippy::result_large_err)]
                    let cb = move |_: &Request, _: Response| -> Result<Response, ErrorResponse> {
                        let mut resp = ErrorResponse::new(Some("refused".into()));
                        *resp.status_mut() = http::StatusCode::from_u16(code).unwrap();
                        for (n, v) in &headers {
                            resp.headers_mut().insert(*n, v.parse().unwrap());
                        }
                        Err(resp)
                    };
                    let _ = tokio_tungstenite::accept_hdr_async(tcp, cb).await;
                }
            }
        }
    })
    .await
    .unwrap();
    Server {
        addr: raw.addr,
        upgrades,
        raw,
    }
}
