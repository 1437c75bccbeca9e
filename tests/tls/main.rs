//! wss:// end to end against a local TLS server with a certificate made by the test.
#![cfg(feature = "rustls")]

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_rustls::rustls;
use ws_reconnect::{Error, Message};

use support::{connect, connect_err, next_message, quick, raw_server, read_until, RawServer};

struct TlsServer {
    raw: RawServer,
    upgrades: Arc<AtomicUsize>,
    cert: rustls::pki_types::CertificateDer<'static>,
}

impl TlsServer {
    fn url(&self) -> String {
        format!("wss://localhost:{}/", self.raw.addr.port())
    }
}

/// A wss echo server for "localhost" on 127.0.0.1:0; it closes its first connection
/// after one message.
async fn tls_server() -> TlsServer {
    let (acceptor, cert) = support::tls::self_signed_localhost();
    let upgrades = Arc::new(AtomicUsize::new(0));
    let u = upgrades.clone();
    let raw = raw_server("127.0.0.1:0", move |_, tcp| {
        let (acceptor, u) = (acceptor.clone(), u.clone());
        async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                return;
            };
            let conn = u.fetch_add(1, Ordering::SeqCst);
            while let Some(Ok(m)) = ws.next().await {
                if m.is_text() {
                    let _ = ws.send(m).await;
                    if conn == 0 {
                        let _ = ws.close(None).await;
                    }
                }
            }
        }
    })
    .await
    .unwrap();
    TlsServer {
        raw,
        upgrades,
        cert,
    }
}

#[tokio::test]
async fn wss_with_a_trusted_self_signed_certificate_reconnects() {
    let server = tls_server().await;
    let client = support::tls::trusting(server.cert.clone());
    let mut ws = connect(quick().rustls_config(client), server.url()).await;
    ws.send(Message::text("one")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("one"));
    // The server closes the first connection after echoing; reading notices and
    // reconnects over TLS.
    read_until(&mut ws, "a second TLS connection", |ws| {
        server.upgrades.load(Ordering::SeqCst) >= 2 && ws.is_connected()
    })
    .await;
    ws.send(Message::text("two")).await.unwrap();
    assert_eq!(next_message(&mut ws).await, Message::text("two"));
    assert_eq!(server.upgrades.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_clear_error_and_is_not_retried() {
    let server = tls_server().await;
    let started = Instant::now();
    // Bounded: an untrusted certificate must not be retried forever.
    let err = connect_err(quick(), server.url()).await;
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains("certificate") || text.contains("Certificate"),
        "{text}"
    );
    assert_eq!(server.raw.attempts(), 1, "retried");
    assert!(started.elapsed() < Duration::from_secs(2));
}
