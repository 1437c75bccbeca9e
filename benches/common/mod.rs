//! A loopback server on its own thread for the benches: `/count/N` reads N binary
//! messages then answers "done"; `/echo` echoes.
#![allow(dead_code)]

use std::net::SocketAddr;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

pub fn server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                tcp.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let mut path = String::new();
                    #[allow(clippy::result_large_err)] // tungstenite's callback type
                    let cb = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                              resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                        path = req.uri().path().to_string();
                        Ok(resp)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await else {
                        return;
                    };
                    if let Some(n) = path.strip_prefix("/count/") {
                        let n: u64 = n.parse().unwrap();
                        let mut seen = 0;
                        while let Some(Ok(m)) = ws.next().await {
                            if m.is_binary() {
                                seen += 1;
                                if seen == n {
                                    let _ = ws.send(Message::text("done")).await;
                                }
                            }
                        }
                    } else {
                        while let Some(Ok(m)) = ws.next().await {
                            if m.is_binary() && ws.send(m).await.is_err() {
                                break;
                            }
                        }
                    }
                });
            }
        });
    });
    rx.recv().unwrap()
}
