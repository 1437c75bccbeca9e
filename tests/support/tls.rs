//! A self-signed certificate for "localhost", the server side that presents it and the
//! client configuration that trusts it.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS acceptor with a fresh self-signed certificate for "localhost", and that
/// certificate (for [`trusting`]).
pub fn self_signed_localhost() -> (tokio_rustls::TlsAcceptor, CertificateDer<'static>) {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = key.cert.der().clone();
    let private = PrivateKeyDer::Pkcs8(key.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], private)
        .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), cert)
}

/// A client configuration that trusts `cert` and nothing else.
pub fn trusting(cert: CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
