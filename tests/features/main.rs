//! Beyond reconnecting: keepalive, connect timeout, visible state, close codes, jitter,
//! redaction, input limits, cancellation.

#[path = "../support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use ws_reconnect::testing::Fault;
use ws_reconnect::{CloseAction, ConnectionState};
use ws_reconnect::{DialKind, Error, Message, ReconnectingSink};

use support::{
    connect, connect_err, echo, eventually, mock, quick, read_until, serve, sharing,
    silent_listener, through_proxy, Reply, Ws, BOUND,
};
