//! wss:// end to end against a local TLS server with a certificate made by the test.
#![cfg(feature = "rustls")]

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use tokio_rustls::rustls;
use ws_reconnect::{Error, Message, ReconnectingSink};

use support::{raw_server, RawServer, BOUND};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

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
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], private)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
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
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server.cert.clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut ws = ReconnectingSink::builder()
        .initial_interval(Duration::from_millis(10))
        .rustls_config(Arc::new(client))
        .connect(server.url())
        .await
        .unwrap();
    ws.send(Message::text("one")).await.unwrap();
    assert_eq!(
        timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap(),
        Message::text("one")
    );
    // The server closes the first connection after echoing; reading notices and
    // reconnects over TLS.
    let deadline = Instant::now() + BOUND;
    while server.upgrades.load(Ordering::SeqCst) < 2 || !ws.is_connected() {
        assert!(Instant::now() < deadline, "no second TLS connection");
        let _ = timeout(Duration::from_millis(20), ws.next()).await;
    }
    ws.send(Message::text("two")).await.unwrap();
    let echoed = timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echoed, Message::text("two"));
    assert_eq!(server.upgrades.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_clear_error_and_is_not_retried() {
    let server = tls_server().await;
    let started = Instant::now();
    let err = timeout(
        BOUND,
        ReconnectingSink::builder()
            .initial_interval(Duration::from_millis(10))
            .connect(server.url()),
    )
    .await
    .expect("an untrusted certificate must not be retried forever")
    .unwrap_err();
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
