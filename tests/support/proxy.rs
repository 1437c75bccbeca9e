//! A loopback TCP proxy that can turn every current connection into a black hole: bytes
//! stop flowing both ways, but neither socket is closed (a half-open peer).
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    /// Connections accepted before this generation are black-holed.
    generation: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let generation = Arc::new(AtomicU64::new(0));
        let g = generation.clone();
        let task = tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let mine = g.load(Ordering::SeqCst);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tasks.spawn(pump(cr, sw, g.clone(), mine));
                tasks.spawn(pump(sr, cw, g.clone(), mine));
            }
        });
        Proxy {
            addr,
            generation,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Every connection open now stops forwarding, without closing.
    pub fn blackhole_current(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    generation: Arc<AtomicU64>,
    mine: u64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if generation.load(Ordering::SeqCst) != mine {
            continue; // black hole: read and discard, keep both sockets open
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // Keep the write half open while black-holed so the peer sees no FIN.
    if generation.load(Ordering::SeqCst) != mine {
        std::future::pending::<()>().await;
    }
}
