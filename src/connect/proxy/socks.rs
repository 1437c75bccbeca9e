//! A SOCKS5 tunnel (RFC 1928, with RFC 1929's username/password), through tokio-socks.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_socks::tcp::Socks5Stream;
use tokio_socks::{Error as SocksError, TargetAddr};

use super::url::Credentials;
use crate::error::{ProxyFailure, SocksReply};

/// Where the proxy should connect: a host name for the proxy to resolve (`socks5h://`) or
/// an address resolved here (`socks5://`, and any IP literal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Destination<'a> {
    Name(&'a str, u16),
    Addr(SocketAddr),
}

impl<'a> Destination<'a> {
    /// The destination for `host:port`: an IP literal is always sent as an address.
    pub(super) fn of(host: &'a str, port: u16) -> Self {
        match host.parse::<IpAddr>() {
            Ok(ip) => Destination::Addr(SocketAddr::new(ip, port)),
            Err(_) => Destination::Name(host, port),
        }
    }

    fn target(&self) -> TargetAddr<'a> {
        match *self {
            Destination::Name(host, port) => TargetAddr::Domain(Cow::Borrowed(host), port),
            Destination::Addr(addr) => TargetAddr::Ip(addr),
        }
    }
}

/// Negotiates a tunnel to `destination` over `stream`, a connection to the proxy, and
/// returns the stream, which is the tunnel from then on.
pub(super) async fn connect<S>(
    stream: S,
    credentials: Option<&Credentials>,
    destination: &Destination<'_>,
) -> Result<S, ProxyFailure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let target = destination.target();
    let tunnel = match credentials {
        Some(c) => {
            Socks5Stream::connect_with_password_and_socket(stream, target, &c.user, &c.password)
                .await
        }
        None => Socks5Stream::connect_with_socket(stream, target).await,
    };
    tunnel.map(Socks5Stream::into_inner).map_err(failure)
}

fn failure(e: SocksError) -> ProxyFailure {
    use SocksError::*;
    let reply = match e {
        Io(e) => return ProxyFailure::Io(e),
        GeneralSocksServerFailure => SocksReply::GeneralFailure,
        ConnectionNotAllowedByRuleset => SocksReply::NotAllowed,
        NetworkUnreachable => SocksReply::NetworkUnreachable,
        HostUnreachable => SocksReply::HostUnreachable,
        ConnectionRefused => SocksReply::ConnectionRefused,
        TtlExpired => SocksReply::TtlExpired,
        CommandNotSupported => SocksReply::CommandNotSupported,
        AddressTypeNotSupported => SocksReply::AddressTypeNotSupported,
        // Asked for none and told to log in, or offered none the proxy takes.
        NoAcceptableAuthMethods | AuthorizationRequired => return ProxyFailure::AuthRequired,
        PasswordAuthFailure(_) => return ProxyFailure::AuthRejected,
        InvalidTargetAddress(_) => {
            return ProxyFailure::Protocol("the host name is too long for SOCKS5 (255 bytes)")
        }
        // Bad versions, reserved bytes, unknown methods, reply codes or address types:
        // whatever answered is not a SOCKS5 proxy (tokio-socks reports an unknown reply
        // code as an unknown auth method).
        _ => return ProxyFailure::Protocol("the proxy's answer breaks the SOCKS5 protocol"),
    };
    ProxyFailure::Socks(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// A scripted SOCKS5 proxy: answers the greeting with `method`, a login with
    /// `login_ok`, and the connect request with `reply`; returns the request it got.
    async fn proxy(mut s: DuplexStream, method: u8, login_ok: bool, reply: u8) -> Vec<u8> {
        let mut greeting = [0u8; 2];
        s.read_exact(&mut greeting).await.unwrap();
        let mut methods = vec![0u8; greeting[1].into()];
        s.read_exact(&mut methods).await.unwrap();
        s.write_all(&[5, method]).await.unwrap();
        if method == 0xff {
            return Vec::new();
        }
        if method == 2 {
            let mut head = [0u8; 2];
            s.read_exact(&mut head).await.unwrap();
            let mut user = vec![0u8; head[1].into()];
            s.read_exact(&mut user).await.unwrap();
            let len = s.read_u8().await.unwrap();
            let mut password = vec![0u8; len.into()];
            s.read_exact(&mut password).await.unwrap();
            assert_eq!((&user[..], &password[..]), (&b"u"[..], &b"p"[..]));
            s.write_all(&[1, if login_ok { 0 } else { 1 }])
                .await
                .unwrap();
            if !login_ok {
                return Vec::new();
            }
        }
        let mut request = vec![0u8; 512];
        let n = s.read(&mut request).await.unwrap();
        request.truncate(n);
        s.write_all(&[5, reply, 0, 1, 0, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        request
    }

    async fn run(
        destination: Destination<'static>,
        credentials: Option<Credentials>,
        method: u8,
        login_ok: bool,
        reply: u8,
    ) -> (Result<(), ProxyFailure>, Vec<u8>) {
        let (client, server) = tokio::io::duplex(4096);
        let task = tokio::spawn(proxy(server, method, login_ok, reply));
        let result = connect(client, credentials.as_ref(), &destination).await;
        (result.map(drop), task.await.unwrap())
    }

    #[tokio::test]
    async fn a_host_name_is_sent_to_the_proxy_and_an_address_as_an_address() {
        let (result, request) = run(Destination::of("example.com", 443), None, 0, true, 0).await;
        result.unwrap();
        assert_eq!(&request[..5], &[5, 1, 0, 3, 11]);
        assert_eq!(&request[5..16], b"example.com");
        assert_eq!(&request[16..], &443u16.to_be_bytes());

        let (result, request) = run(Destination::of("127.0.0.1", 80), None, 0, true, 0).await;
        result.unwrap();
        assert_eq!(request, [5, 1, 0, 1, 127, 0, 0, 1, 0, 80]);
    }

    #[tokio::test]
    async fn credentials_are_offered_and_checked() {
        let creds = || {
            Some(Credentials {
                user: "u".into(),
                password: "p".into(),
            })
        };
        let (result, _) = run(Destination::of("h", 1), creds(), 2, true, 0).await;
        result.unwrap();
        let (result, _) = run(Destination::of("h", 1), creds(), 2, false, 0).await;
        assert!(
            matches!(result, Err(ProxyFailure::AuthRejected)),
            "{result:?}"
        );
        let (result, _) = run(Destination::of("h", 1), None, 0xff, true, 0).await;
        assert!(
            matches!(result, Err(ProxyFailure::AuthRequired)),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn failure_replies_are_typed() {
        for (code, reply) in [
            (1, SocksReply::GeneralFailure),
            (2, SocksReply::NotAllowed),
            (4, SocksReply::HostUnreachable),
            (5, SocksReply::ConnectionRefused),
            (8, SocksReply::AddressTypeNotSupported),
        ] {
            let (result, _) = run(Destination::of("h", 1), None, 0, true, code).await;
            match result {
                Err(ProxyFailure::Socks(got)) => {
                    assert_eq!(got, reply);
                    assert_eq!(got.code(), code);
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        let (result, _) = run(Destination::of("h", 1), None, 0, true, 0x42).await;
        assert!(
            matches!(result, Err(ProxyFailure::Protocol(_))),
            "{result:?}"
        );
    }
}
