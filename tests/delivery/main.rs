//! Delivery: what the sink promises about the messages it accepted, on real paths.
//!
//! A server that closes (gracefully, or by dropping the connection) while a message is on
//! its way must not make the sink lose it: the request/response loop, the streaming
//! writer across rolling-deploy closes, and closes at moments of the server's own.

#[path = "../support/mod.rs"]
mod support;

mod crossing;
mod latency;
