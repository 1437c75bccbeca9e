//! Messages the client let go of without an acknowledgement (given up by a `close()` that
//! timed out, taken back), and a `close()` abandoned halfway: the session carries on
//! within the server's window (or a new server's, after a restart), and the server's
//! application is told of what will never come, through a path 20 ms each way.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::time::timeout;
use ws_reconnect::server::{Server, ServerConfig, Session, SessionError, Sessions};
use ws_reconnect::testing::{Fault, FaultProxy, Link, Path};
use ws_reconnect::{Error, GapReason, Message, ResumeConfig, ResumingSink};

use crate::harness::quick;
use crate::support::BOUND;

/// Each way.
const LATENCY: Duration = Duration::from_millis(20);

/// A server with `config` behind a proxy 20 ms each way, and a client of it whose
/// `close()` gives up after 300 ms.
async fn through_delay(config: ServerConfig) -> (FaultProxy, ResumingSink, Session, Sessions) {
    through_delay_with(config, ResumeConfig::default(), |b| b).await
}

/// [`through_delay`], with the client's `resume` settings and builder `tweak`ed.
async fn through_delay_with(
    config: ServerConfig,
    resume: ResumeConfig,
    tweak: impl FnOnce(ws_reconnect::Builder) -> ws_reconnect::Builder,
) -> (FaultProxy, ResumingSink, Session, Sessions) {
    through(Link::new().latency(LATENCY), config, resume, tweak).await
}

/// A server with `config` behind a proxy with `link` both ways, and a client of it with
/// `resume`, whose `close()` gives up after 300 ms, its builder `tweak`ed.
async fn through(
    link: Link,
    config: ServerConfig,
    resume: ResumeConfig,
    tweak: impl FnOnce(ws_reconnect::Builder) -> ws_reconnect::Builder,
) -> (FaultProxy, ResumingSink, Session, Sessions) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let (server, mut sessions) = Server::new(config);
    tokio::spawn(server.serve(listener));
    let proxy = FaultProxy::start_with(addr, link).await.expect("proxy");
    let ws = timeout(
        BOUND,
        tweak(quick().close_timeout(Duration::from_millis(300)))
            .resume(resume)
            .connect(format!("ws://{}/", proxy.addr())),
    )
    .await
    .expect("connect hung")
    .expect("connect");
    let session = timeout(BOUND, sessions.next())
        .await
        .expect("no session")
        .expect("sessions ended");
    (proxy, ws, session, sessions)
}

/// Everything `session`'s application gets, as text (a gap as `gap FROM..TO REASON`),
/// read by a task of its own until the stream ends (`END`).
fn log_items(mut session: Session) -> Arc<Mutex<Vec<String>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let items = Arc::clone(&log);
    tokio::spawn(async move {
        while let Some(item) = session.next().await {
            let item = match item {
                Ok(Message::Text(text)) => text.to_string(),
                Ok(other) => format!("{other:?}"),
                Err(SessionError::Gap(gap)) => {
                    format!("gap {}..{:?} {:?}", gap.from, gap.to, gap.reason)
                }
                Err(e) => format!("error {e}"),
            };
            items.lock().unwrap().push(item);
        }
        items.lock().unwrap().push("END".to_owned());
    });
    log
}

/// The next `n` items of `session`, as text, bounded; an error item is a failure.
async fn read_texts(session: &mut Session, n: usize) -> Vec<String> {
    let mut texts = Vec::with_capacity(n);
    while texts.len() < n {
        match timeout(BOUND, session.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => texts.push(text.to_string()),
            other => panic!("after {} messages: {other:?}", texts.len()),
        }
    }
    texts
}

/// Feeds `texts`, each within BOUND (`hung` says what a feed that hangs means), then
/// flushes within BOUND.
async fn send_all(ws: &mut ResumingSink, texts: Vec<String>, hung: &str) {
    for text in texts {
        timeout(BOUND, ws.feed(Message::text(text)))
            .await
            .expect(hung)
            .unwrap();
    }
    timeout(BOUND, ws.flush())
        .await
        .expect("flush() hung")
        .unwrap();
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test]
async fn messages_given_up_that_the_server_holds_still_count_against_its_window() {
    // 256 frames: the smallest window a server holds a client to.
    let config = ServerConfig::default().recv_window_frames(256);
    let (_proxy, mut ws, session, _sessions) = through_delay(config).await;
    // The server's application does not read yet: nothing is acknowledged, and the
    // close times out with all of them given up.
    let mut outcomes = Vec::new();
    for text in numbered("m", 256) {
        outcomes.push(ws.feed_outgoing(Message::text(text)).await.unwrap());
    }
    let closed = timeout(BOUND, ws.close()).await.expect("close() hung");
    assert!(
        matches!(closed, Err(Error::CloseIncomplete { .. })),
        "{closed:?}"
    );
    for outcome in outcomes {
        assert!(outcome.await.is_err(), "a given-up message resolved Ok");
    }
    timeout(BOUND, ws.dial())
        .await
        .expect("dial() hung")
        .unwrap();
    the_window_holds_until_the_server_acknowledges(ws, session).await;
}

#[tokio::test]
async fn messages_taken_back_that_the_server_holds_still_count_against_its_window() {
    let config = ServerConfig::default().recv_window_frames(256);
    let (_proxy, mut ws, session, _sessions) = through_delay(config).await;
    for text in numbered("m", 256) {
        ws.feed(Message::text(text)).await.unwrap();
    }
    // Written, never acknowledged: the server's application does not read yet.
    assert!(timeout(Duration::from_millis(300), ws.flush())
        .await
        .is_err());
    assert_eq!(ws.take_undelivered().len(), 256);
    the_window_holds_until_the_server_acknowledges(ws, session).await;
}

/// The server received m0..m255 and holds them for its application, which has not read
/// yet; the client let go of them. The window is full until the server acknowledges
/// them, whatever the client let go of: n0 waits. Then the application reads, and gets
/// m0..m255, n0..n255, with no gap and no violation.
async fn the_window_holds_until_the_server_acknowledges(
    mut ws: ResumingSink,
    mut session: Session,
) {
    assert!(
        timeout(Duration::from_millis(300), ws.feed(Message::text("n0")))
            .await
            .is_err(),
        "the client sent past the server's window"
    );
    let reader = tokio::spawn(async move { read_texts(&mut session, 512).await });
    send_all(&mut ws, numbered("n", 256), "feed() hung").await;
    let got = crate::support::join(reader, "the server's reader").await;
    let mut expected = numbered("m", 256);
    expected.extend(numbered("n", 256));
    assert_eq!(got, expected);
}

#[tokio::test]
async fn given_up_messages_the_server_never_had_are_a_gap_as_soon_as_the_client_is_back() {
    let (proxy, mut ws, mut session, _sessions) = through_delay(ServerConfig::default()).await;
    let (sent, got) = tokio::join!(
        timeout(BOUND, ws.send(Message::text("c0"))),
        read_texts(&mut session, 1)
    );
    sent.expect("send() hung").unwrap();
    assert_eq!(got, ["c0"]);
    // c1..c3 go into a black hole; the close gives them up.
    proxy.inject(Fault::HalfOpen);
    let mut outcomes = Vec::new();
    for i in 1..=3 {
        let text = format!("c{i}");
        outcomes.push(ws.feed_outgoing(Message::text(text)).await.unwrap());
    }
    let closed = timeout(BOUND, ws.close()).await.expect("close() hung");
    assert!(
        matches!(closed, Err(Error::CloseIncomplete { .. })),
        "{closed:?}"
    );
    for outcome in outcomes {
        assert!(outcome.await.is_err(), "a given-up message resolved Ok");
    }
    assert_eq!(ws.unacknowledged_count(), 0, "the sink holds none of them");
    proxy.inject(Fault::Reset);
    timeout(BOUND, ws.dial())
        .await
        .expect("dial() hung")
        .unwrap();
    // The server's application is told at once, with nothing sent after them.
    match timeout(BOUND, session.next()).await {
        Ok(Some(Err(SessionError::Gap(gap)))) => {
            assert_eq!((gap.from, gap.to), (2, Some(5)), "{gap}");
            assert_eq!(gap.reason, GapReason::Abandoned);
        }
        other => panic!("the server's application was not told of c1..c3: {other:?}"),
    }
    let (sent, got) = tokio::join!(
        timeout(BOUND, ws.send(Message::text("c4"))),
        read_texts(&mut session, 1)
    );
    sent.expect("send() hung").unwrap();
    assert_eq!(got, ["c4"]);
}

#[tokio::test]
async fn a_close_dropped_after_its_bye_then_a_dial_keeps_the_session() {
    let (proxy, mut ws, mut session, _sessions) = through_delay(ServerConfig::default()).await;
    let (sent, got) = tokio::join!(
        timeout(BOUND, ws.send(Message::text("c1"))),
        read_texts(&mut session, 1)
    );
    sent.expect("send() hung").unwrap();
    assert_eq!(got, ["c1"]);
    let id = ws.session();
    // Everything is acknowledged: the close queues BYE at once, which sticks in the
    // frozen path. The application gives up on the close.
    proxy.inject(Fault::Freeze);
    assert!(
        timeout(Duration::from_millis(200), ws.close())
            .await
            .is_err(),
        "close() completed on a frozen path"
    );
    proxy.inject(Fault::Reset);
    timeout(BOUND, ws.dial())
        .await
        .expect("dial() hung")
        .unwrap();
    let (sent, got) = tokio::join!(
        timeout(BOUND, ws.send(Message::text("c2"))),
        read_texts(&mut session, 1)
    );
    sent.expect("send() hung").unwrap();
    assert_eq!(got, ["c2"]);
    assert_eq!(ws.session(), id, "the same session");
    // It goes on: the server's application can still send in it.
    let (sent, read) = tokio::join!(
        timeout(BOUND, session.send(Message::text("s1"))),
        timeout(BOUND, ws.next())
    );
    sent.expect("the server's send() hung")
        .expect("the session ended on the server");
    let read = read.expect("next() hung").expect("the stream ended");
    assert_eq!(read.unwrap(), Message::text("s1"));
}

#[tokio::test]
async fn messages_given_up_before_a_server_restart_count_against_no_window_of_the_new_session() {
    let config = || ServerConfig::default().recv_window_frames(256);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let (server, mut sessions) = Server::new(config());
    let serving = tokio::spawn(server.serve(listener));
    let proxy = FaultProxy::start_with(addr, Link::new().latency(LATENCY))
        .await
        .expect("proxy");
    let mut ws = timeout(
        BOUND,
        quick()
            .close_timeout(Duration::from_millis(300))
            .resume(ResumeConfig::default())
            .connect(format!("ws://{}/", proxy.addr())),
    )
    .await
    .expect("connect hung")
    .expect("connect");
    let _old = timeout(BOUND, sessions.next()).await.expect("no session");
    // The old server holds a full window for its application, which never reads; the
    // close gives them up.
    let mut outcomes = Vec::new();
    for text in numbered("m", 256) {
        outcomes.push(ws.feed_outgoing(Message::text(text)).await.unwrap());
    }
    let closed = timeout(BOUND, ws.close()).await.expect("close() hung");
    assert!(
        matches!(closed, Err(Error::CloseIncomplete { .. })),
        "{closed:?}"
    );
    for outcome in outcomes {
        assert!(outcome.await.is_err(), "a given-up message resolved Ok");
    }
    // A new server on the same address: the session is lost with the old one.
    serving.abort();
    let _ = serving.await;
    let listener = TcpListener::bind(addr).await.expect("bind again");
    let (server, mut sessions) = Server::new(config());
    tokio::spawn(server.serve(listener));
    timeout(BOUND, ws.dial())
        .await
        .expect("dial() hung")
        .unwrap();
    let mut session = timeout(BOUND, sessions.next())
        .await
        .expect("no new session")
        .expect("sessions ended");
    // The new session has none of m0..m255: its window is the client's to fill.
    let reader = tokio::spawn(async move { read_texts(&mut session, 10).await });
    let taken = "feed() hung: the window of the new session is taken";
    send_all(&mut ws, numbered("n", 10), taken).await;
    let got = crate::support::join(reader, "the new session's reader").await;
    assert_eq!(got, numbered("n", 10));
}

#[tokio::test]
async fn a_close_dropped_before_its_bye_leaves_no_old_deadline_to_the_next_one() {
    let (_proxy, mut ws, mut session, _sessions) = through_delay(ServerConfig::default()).await;
    // c1 is not taken yet: the close waits for its acknowledgement, and is dropped.
    ws.feed(Message::text("c1")).await.unwrap();
    assert!(timeout(Duration::from_millis(100), ws.close())
        .await
        .is_err());
    // Well past that close's bound (300 ms), the application goes on.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (sent, got) = tokio::join!(
        timeout(BOUND, ws.send(Message::text("c2"))),
        read_texts(&mut session, 2)
    );
    sent.expect("send() hung").unwrap();
    assert_eq!(got, ["c1", "c2"]);
    // A close of its own: everything is acknowledged, so BYE goes and the session ends.
    timeout(BOUND, ws.close())
        .await
        .expect("close() hung")
        .unwrap();
    match timeout(BOUND, session.next()).await {
        Ok(None) => {}
        other => panic!("the session did not end with the client's BYE: {other:?}"),
    }
}

#[tokio::test]
async fn a_message_given_up_after_the_last_one_held_is_a_gap_and_leaves_the_byte_window() {
    // c2 alone is twice the byte window.
    let resume = ResumeConfig::default().max_unacked_bytes(1000);
    let (proxy, mut ws, session, _sessions) =
        through_delay_with(ServerConfig::default(), resume, |b| b).await;
    let log = log_items(session);
    proxy.inject(Fault::HalfOpen);
    // c1 has no outcome and is kept; c2 has one and is given up by the close.
    ws.feed(Message::text("c1")).await.unwrap();
    let c2 = format!("c2{}", "x".repeat(2000));
    let outcome = ws.feed_outgoing(Message::text(c2)).await.unwrap();
    let closed = timeout(BOUND, ws.close()).await.expect("close() hung");
    assert!(
        matches!(closed, Err(Error::CloseIncomplete { .. })),
        "{closed:?}"
    );
    assert!(outcome.await.is_err(), "c2 was given up");
    assert_eq!(ws.unacknowledged_count(), 1, "c1 is kept");
    proxy.inject(Fault::Reset);
    timeout(BOUND, ws.dial())
        .await
        .expect("dial() hung")
        .unwrap();
    // HELLO's send_first is c1's: c2's place is told after c1, and its bytes leave
    // the window once the server acknowledges past it.
    timeout(BOUND, ws.send(Message::text("c3")))
        .await
        .expect("send(c3) hung: c2 still fills the window")
        .unwrap();
    crate::support::eventually("c3 read", || log.lock().unwrap().len() >= 3).await;
    assert_eq!(
        *log.lock().unwrap(),
        ["c1", "gap 2..Some(3) Abandoned", "c3"]
    );
}

#[tokio::test]
async fn a_dead_connection_is_replaced_while_only_messages_taken_back_fill_the_window() {
    let config = ServerConfig::default().recv_window_frames(256);
    let resume = ResumeConfig::default().ack_timeout(Duration::from_secs(1));
    let (proxy, mut ws, session, _sessions) =
        through_delay_with(config, resume, |b| b.no_keepalive()).await;
    for text in numbered("m", 256) {
        ws.feed(Message::text(text)).await.unwrap();
    }
    // Written, never acknowledged: the server's application does not read yet (and the
    // connection lives on, within the acknowledgement timeout).
    assert!(timeout(Duration::from_millis(300), ws.flush())
        .await
        .is_err());
    assert_eq!(ws.get_ref().stats().connects, 1);
    assert_eq!(ws.take_undelivered().len(), 256);
    // The path dies; the server's application reads, and its acknowledgement is lost.
    proxy.inject(Fault::HalfOpen);
    let log = log_items(session);
    // With no keepalive, only the acknowledgement timeout can tell the connection is
    // dead: it runs for the messages let go of as for the ones held.
    timeout(BOUND, ws.send(Message::text("n0")))
        .await
        .expect("send(n0) hung on a dead connection")
        .unwrap();
    crate::support::eventually("n0 read", || log.lock().unwrap().len() >= 257).await;
    assert_eq!(log.lock().unwrap()[256], "n0");
    assert!(
        ws.get_ref().stats().connects >= 2,
        "the connection was replaced"
    );
}

#[tokio::test]
async fn messages_taken_back_that_a_replacing_session_received_still_count_against_its_window() {
    // A session that expires fast, acknowledgements only when a quarter of the window is
    // taken (ack_delay far away).
    let config = ServerConfig::default()
        .recv_window_frames(256)
        .ack_delay(Duration::from_secs(10))
        .session_ttl(Duration::from_millis(300));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let (server, mut sessions) = Server::new(config);
    tokio::spawn(server.clone().serve(listener));
    let proxy = FaultProxy::start_with(addr, Link::new().latency(LATENCY))
        .await
        .expect("proxy");
    let url = format!("ws://{}/", proxy.addr());
    let mut ws = crate::harness::client(&url, ResumeConfig::default()).await;
    let _first = timeout(BOUND, sessions.next()).await.expect("no session");
    // The first session expires while the client is kept away.
    proxy.inject(Fault::Refuse(Duration::from_millis(1000)));
    proxy.inject(Fault::Reset);
    crate::support::eventually("the first session expired", || server.stats().expired == 1).await;
    // Its replacement is started by a connection whose WELCOME takes 1.5 s to come back.
    proxy.set_path(Path {
        upstream: Link::new(),
        downstream: Link::new().latency(Duration::from_millis(1500)),
    });
    reconnect_until(&mut ws, |ws| ws.get_ref().stats().connects >= 2).await;
    for i in 1..=5 {
        timeout(BOUND, ws.feed(Message::text(format!("c{i}"))))
            .await
            .expect("feed() hung")
            .unwrap();
    }
    let mut replacing = timeout(BOUND, sessions.next())
        .await
        .expect("no replacing session")
        .expect("sessions ended");
    // c1..c5 are written (the flush waits for acknowledgements that cannot come yet);
    // the connection is lost before the WELCOME, and the client takes them back.
    assert!(timeout(Duration::from_millis(300), ws.flush())
        .await
        .is_err());
    assert_ne!(
        ws.session(),
        Some(replacing.id()),
        "the WELCOME came too soon"
    );
    proxy.inject(Fault::Reset);
    proxy.set_path(Link::new().latency(LATENCY));
    assert_eq!(ws.take_undelivered().len(), 5);
    reconnect_until(&mut ws, |ws| ws.session() == Some(replacing.id())).await;
    // The replacing session received c1..c5; its application takes four, and owes the
    // acknowledgement: it still counts all five against its window.
    assert_eq!(
        read_texts(&mut replacing, 4).await,
        ["c1", "c2", "c3", "c4"]
    );
    let mut accepted = 0;
    for text in numbered("n", 256) {
        match timeout(Duration::from_millis(500), ws.feed(Message::text(text))).await {
            Ok(result) => {
                result.unwrap();
                accepted += 1;
            }
            Err(_) => break,
        }
    }
    let _ = timeout(Duration::from_millis(500), ws.flush()).await;
    assert_eq!(
        server.stats().violations,
        0,
        "the client went past the window"
    );
    assert!(
        accepted <= 251,
        "{accepted} accepted with five held by the server"
    );
}

/// Polls the reader of `ws` (which drives its reconnection) until `done`, bounded.
async fn reconnect_until(ws: &mut ResumingSink, done: impl Fn(&ResumingSink) -> bool) {
    timeout(BOUND, async {
        while !done(ws) {
            let _ = timeout(Duration::from_millis(20), ws.next()).await;
        }
    })
    .await
    .expect("no reconnection");
}
