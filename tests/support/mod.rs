//! Loopback WebSocket servers for the integration tests: port 0, scripted handshakes,
//! per-connection handlers, attempt counters. Dropping a server stops it and every
//! connection task.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Every await in the tests that could hang is bounded by this.
pub const BOUND: Duration = Duration::from_secs(20);

pub type Ws = WebSocketStream<TcpStream>;

/// How the server answers one handshake attempt.
#[derive(Clone, Debug)]
pub enum Reply {
    Upgrade,
    Status(u16, Vec<(&'static str, String)>),
}

pub struct Server {
    pub addr: SocketAddr,
    /// TCP connections accepted (handshake attempts).
    pub attempts: Arc<AtomicUsize>,
    /// Successful upgrades.
    pub upgrades: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Server {
    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    pub fn upgrades(&self) -> usize {
        self.upgrades.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
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
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let upgrades = Arc::new(AtomicUsize::new(0));
    let (a, u) = (attempts.clone(), upgrades.clone());
    let reply = Arc::new(reply);
    let handler = Arc::new(handler);
    let task = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                break;
            };
            let attempt = a.fetch_add(1, Ordering::SeqCst);
            let (reply, handler, u) = (reply.clone(), handler.clone(), u.clone());
            tasks.spawn(async move {
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
                        let cb =
                            move |_: &Request, _: Response| -> Result<Response, ErrorResponse> {
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
            });
        }
    });
    Server {
        addr,
        attempts,
        upgrades,
        task,
    }
}

/// A TCP server on `bind` (port 0) that speaks no protocol of its own: `script(socket)`
/// runs for every connection, e.g. to send a handshake response no WebSocket server would.
/// Dropping it stops it and every connection task.
pub struct RawServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn raw_server<S, F>(bind: &str, script: S) -> std::io::Result<RawServer>
where
    S: Fn(TcpStream) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        while let Ok((tcp, _)) = listener.accept().await {
            tasks.spawn(script(tcp));
        }
    });
    Ok(RawServer { addr, task })
}

/// Messages received by a server, tagged with the connection they came on.
#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<(usize, String)>>>);

impl Log {
    pub fn push(&self, conn: usize, text: String) {
        self.0.lock().unwrap().push((conn, text));
    }
    pub fn texts(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, t)| t.clone())
            .collect()
    }
    pub fn entries(&self) -> Vec<(usize, String)> {
        self.0.lock().unwrap().clone()
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A handler that records every text message until the peer goes away.
pub fn recording(
    log: Log,
) -> impl Fn(usize, Ws) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static
{
    move |conn, mut ws| {
        let log = log.clone();
        Box::pin(async move {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Text(t) = m {
                    log.push(conn, t.to_string());
                }
            }
        })
    }
}

/// A server that upgrades every attempt and records what it receives.
pub async fn recording_server() -> (Server, Log) {
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, recording(log.clone())).await;
    (server, log)
}

/// An echo handler.
pub async fn echo(_conn: usize, mut ws: Ws) {
    while let Some(Ok(m)) = ws.next().await {
        if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
            break;
        }
    }
}

/// Waits (bounded) until `cond` holds, polling every few milliseconds. For observing a
/// server's side effects, not for ordering the client.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A port nothing listens on.
pub async fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

/// A listener that accepts TCP connections and never answers; counts them.
pub async fn silent_listener() -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (addr, count, task)
}

/// Installs a test subscriber once (RUST_LOG controls it).
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
