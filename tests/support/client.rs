//! The client side: builders with short delays, bounded connects and reads, and the
//! acknowledgement scheme the test servers speak.

use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::time::{timeout, Instant};
use ws_reconnect::testing::FaultProxy;
use ws_reconnect::{Acknowledge, Builder, ConnectionState, Error, Message, ReconnectingSink};

use super::{drop_at_once, serve, Reply, Server, BOUND};

/// Quick, predictable reconnections for loopback tests: a 20 ms first delay, doubling,
/// no randomization, at most 200 ms.
pub fn quick() -> Builder {
    ReconnectingSink::builder()
        .initial_interval(Duration::from_millis(20))
        .randomization_factor(0.0)
        .multiplier(2.0)
        .max_interval(Duration::from_millis(200))
}

/// [`quick`], and every connection counts as healthy at once: after any close the
/// backoff starts over, so a reconnection follows without a delay.
pub fn quick_healthy() -> Builder {
    quick().healthy_after(Duration::ZERO)
}

/// The growing-delays control: a server that drops every connection as soon as it is
/// upgraded, and a connected [`quick`] client allowed 1,000 reconnections with delays
/// doubling from 20 ms up to 10 s (20, 40, 80, 160, 320, 640 ms in the first 1.3 s).
pub async fn accept_and_drop() -> (Server, ReconnectingSink) {
    let server = serve(|_| Reply::Upgrade, drop_at_once).await;
    let builder = quick()
        .max_interval(Duration::from_secs(10))
        .max_reconnections_total(1000);
    let ws = connect(builder, server.url()).await;
    (server, ws)
}

/// Dials `url` with `builder`, bounded by [`BOUND`]; panics if that fails.
pub async fn connect(builder: Builder, url: impl AsRef<str>) -> ReconnectingSink {
    timeout(BOUND, builder.connect(url))
        .await
        .expect("connect hung")
        .expect("connect")
}

/// Dials `url` with `builder`, bounded by [`BOUND`], and returns the error it must end in.
pub async fn connect_err(builder: Builder, url: impl AsRef<str>) -> Error {
    match timeout(BOUND, builder.connect(url)).await {
        Ok(Ok(ws)) => panic!("connected, expected an error: {ws:?}"),
        Ok(Err(e)) => e,
        Err(_) => panic!("connect hung, expected an error"),
    }
}

/// Reads (and so lets the sink notice closes and reconnect) until `cond(ws)` holds;
/// returns the error items seen. Bounded by [`BOUND`].
pub async fn read_until(
    ws: &mut ReconnectingSink,
    what: &str,
    mut cond: impl FnMut(&ReconnectingSink) -> bool,
) -> Vec<Error> {
    let deadline = Instant::now() + BOUND;
    let mut errors = Vec::new();
    while !cond(ws) {
        assert!(Instant::now() < deadline, "timed out reading until: {what}");
        if let Ok(Some(Err(e))) = timeout(Duration::from_millis(20), ws.next()).await {
            errors.push(e);
        }
    }
    errors
}

/// The next item of `ws`, which must be a message (not an error, not the end); bounded
/// by [`BOUND`].
pub async fn next_message<S>(ws: &mut S) -> Message
where
    S: Stream<Item = Result<Message, Error>> + Unpin,
{
    match timeout(BOUND, ws.next()).await {
        Ok(Some(Ok(m))) => m,
        Ok(other) => panic!("expected a message, got {other:?}"),
        Err(_) => panic!("next() hung"),
    }
}

/// Puts `server` behind a new [`FaultProxy`] and connects `builder` through it
/// (bounded, as [`connect`]).
pub async fn through_proxy(server: &Server, builder: Builder) -> (FaultProxy, ReconnectingSink) {
    let proxy = FaultProxy::start(server.addr).await.unwrap();
    let ws = connect(builder, proxy_url(&proxy)).await;
    (proxy, ws)
}

/// Reads the next item of `ws` (bounded by [`BOUND`]) and asserts that it is the text
/// message `text`; `what` names it in a failure.
pub async fn expect_text<S>(ws: &mut S, text: &str, what: &str)
where
    S: Stream<Item = Result<Message, Error>> + Unpin,
{
    let item = timeout(BOUND, ws.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing came before BOUND"));
    assert!(
        matches!(&item, Some(Ok(m)) if *m == Message::text(text)),
        "{what}: expected {text:?}, got {item:?}"
    );
}

/// The URL that reaches the server through `proxy`.
pub fn proxy_url(proxy: &FaultProxy) -> String {
    format!("ws://{}/", proxy.addr())
}

/// Acknowledged mode as the test servers speak it: the message `"<n>"` (or `"t<n>"`) is
/// tracked with id `n`, and `"ack:<n>"` acknowledges every id up to `n`.
pub struct Numbered;

impl Acknowledge for Numbered {
    fn id(&mut self, outbound: &Message) -> Option<u64> {
        let text = outbound.to_text().ok()?;
        text.strip_prefix('t').unwrap_or(text).parse().ok()
    }
    fn acked(&mut self, inbound: &Message) -> Option<u64> {
        inbound.to_text().ok()?.strip_prefix("ack:")?.parse().ok()
    }
}

/// Sends `text` until a send fails, each bounded by [`BOUND`] and all of them too;
/// returns that error.
pub async fn send_until_error(ws: &mut ReconnectingSink, text: &str) -> Error {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sends kept succeeding"
        );
        let sent = timeout(BOUND, futures::SinkExt::send(ws, Message::text(text)))
            .await
            .expect("send hung");
        match sent {
            Ok(()) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => return e,
        }
    }
}

/// What `ws.state()` says now.
pub fn state(ws: &ReconnectingSink) -> ConnectionState {
    ws.state().borrow().clone()
}

/// Sends the text message `text` (`SinkExt::send`: waits for room, then flushes), bounded
/// by [`BOUND`].
pub async fn send(ws: &mut ReconnectingSink, text: impl Into<String>) -> Result<(), Error> {
    timeout(
        BOUND,
        futures::SinkExt::send(ws, Message::text(text.into())),
    )
    .await
    .expect("send hung")
}
