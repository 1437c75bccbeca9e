//! Reaching the server through an HTTP `CONNECT` or a SOCKS5 proxy.

mod error;

pub use self::error::{ProxyFailure, SocksReply};
