//! A session whose WELCOME never reached the client: the client's next connection finds
//! the same session (nothing the server sent into it is lost, no second session starts),
//! a session the server no longer knows is told as a gap, never passed over, and a first
//! connection the server reads only after the second is refused.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use ws_reconnect::server::{Server, ServerConfig};
use ws_reconnect::{Message, ResumeConfig};

use crate::harness::{client, next_item, raw, RawWs};
use crate::support::{eventually, BOUND};

/// A server whose application, on each new session `k` (counted from 1), sends `s{k}-1`,
/// `s{k}-2` and `s{k}-3`, then reads until the session ends.
async fn announcing_server() -> (Server, SocketAddr) {
    announcing_server_with(ServerConfig::default()).await
}

/// [`announcing_server`] with `config`.
async fn announcing_server_with(config: ServerConfig) -> (Server, SocketAddr) {
    let (server, mut sessions) = Server::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.clone().serve(listener));
    tokio::spawn(async move {
        let count = Arc::new(AtomicU64::new(0));
        while let Some(mut session) = sessions.next().await {
            let k = count.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(async move {
                for i in 1..=3 {
                    if session
                        .send(Message::text(format!("s{k}-{i}")))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                while let Some(Ok(_)) = session.next().await {}
            });
        }
    });
    (server, addr)
}

/// A proxy to `upstream` whose first connection loses the server's resume frames: it
/// carries everything the client sends, but of what the server sends only the HTTP
/// upgrade answer. Once the server has written `marker` (the payload of one of its DATA
/// frames, which a server sends unmasked), both sides are dropped. Later connections
/// pass everything through.
async fn losing_the_first_welcome(upstream: SocketAddr, marker: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut inbound, _)) = listener.accept().await {
            let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                return;
            };
            if !std::mem::take(&mut first) {
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                continue;
            }
            tokio::spawn(async move {
                let (mut from_client, mut to_client) = inbound.into_split();
                let (mut from_server, mut to_server) = outbound.into_split();
                let upward = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
                    to_server
                });
                let mut seen = Vec::new();
                let mut answered = false;
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = from_server.read(&mut buf).await {
                    seen.extend_from_slice(&buf[..n]);
                    if !answered {
                        if let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            // The upgrade answer goes through; nothing after it.
                            let _ = to_client.write_all(&seen[..end + 4]).await;
                            answered = true;
                        }
                    }
                    if answered && seen.windows(marker.len()).any(|w| w == marker) {
                        break;
                    }
                }
                upward.abort();
                drop((from_server, to_client));
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_first_connection_lost_before_welcome_resumes_the_same_session() {
    let (server, addr) = announcing_server().await;
    let proxy = losing_the_first_welcome(addr, b"s1-3").await;
    let mut ws = client(&format!("ws://{proxy}/"), ResumeConfig::default()).await;
    let mut got = Vec::new();
    while got.len() < 3 {
        match next_item(&mut ws).await {
            Some(Ok(message)) => got.push(message.into_text().unwrap().to_string()),
            other => panic!("expected the first session's messages, got {other:?}"),
        }
    }
    assert_eq!(
        got,
        ["s1-1", "s1-2", "s1-3"],
        "what the server sent into the session the client never heard of arrives, once"
    );
    let stats = server.stats();
    assert_eq!(stats.sessions, 1, "no second session: {stats:?}");
    assert_eq!(
        stats.resumed, 1,
        "the second connection resumed it: {stats:?}"
    );
    assert_eq!(ws.resume_stats().sessions, 1);

    // And it goes on being that session.
    ws.send(Message::text("c1")).await.unwrap();
    assert_eq!(ws.unacknowledged_count(), 0);
}

/// The first HELLO of a client that names its session `id`: OPEN, `recv_next` 1,
/// `send_first` 1, a window of 1024 frames and 4 MiB.
fn open(id: [u8; 16]) -> Vec<u8> {
    let mut hello = vec![0x23, 1];
    hello.extend_from_slice(&id);
    hello.extend_from_slice(&[1, 1, 0x80, 0x08, 0x80, 0x80, 0x80, 0x02]);
    hello
}

/// The HELLO of a client that asked for a session under `id` and never saw it welcomed,
/// as this crate's client sends it on its second connection: SESSION with epoch 0,
/// `recv_next` 1, `send_first` 1, a window of 1024 frames and 4 MiB.
fn hello_again(id: [u8; 16]) -> Vec<u8> {
    let mut hello = vec![0x13, 1];
    hello.extend_from_slice(&id);
    hello.extend_from_slice(&0u64.to_be_bytes());
    hello.extend_from_slice(&[1, 1, 0x80, 0x08, 0x80, 0x80, 0x80, 0x02]);
    hello
}

#[tokio::test]
async fn a_session_asked_for_again_that_the_server_does_not_know_is_a_gap() {
    // The case of a server that restarted between the client's two connections: it has
    // no trace of the session, so whatever the old process sent into it is gone.
    let (_server, addr) = announcing_server().await;
    let mut ws = raw(addr).await;
    ws.send(Message::binary(hello_again([9; 16])))
        .await
        .unwrap();
    let mut frames = Vec::new();
    while frames.len() < 2 {
        match timeout(BOUND, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(bytes))) => frames.push(bytes),
            Some(Ok(_)) => {}
            other => panic!("expected WELCOME and GAP, got {other:?}"),
        }
    }
    assert_eq!(frames[0][0], 0x04, "WELCOME, not resumed: {:x?}", frames[0]);
    assert_eq!(
        &frames[0][2..18],
        &[9; 16],
        "the new session keeps the id the client asked for"
    );
    // GAP without END: from 1, reason 4 (SessionUnknown).
    assert_eq!(frames[1].as_ref(), &[0x05, 1, 4], "{:x?}", frames[1]);
}

#[tokio::test]
async fn a_first_connection_read_after_the_second_is_refused() {
    // The client's second connection asked for the session first (the server had not
    // read the first yet); the first, read late, must not start a session of its own
    // that would take in the client's messages a second time.
    let (server, addr) = announcing_server().await;
    let mut second = raw(addr).await;
    second
        .send(Message::binary(hello_again([5; 16])))
        .await
        .unwrap();
    let welcome = timeout(BOUND, second.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(welcome.into_data()[0], 0x04, "WELCOME");
    let mut first = raw(addr).await;
    first.send(Message::binary(open([5; 16]))).await.unwrap();
    let close = timeout(BOUND, async {
        loop {
            match first.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("expected a Close, got {other:?}"),
            }
        }
    })
    .await
    .expect("the late OPEN was not refused");
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1002));
    assert_eq!(server.stats().sessions, 1, "no second session");
}

/// The next binary message on `ws`, bounded.
async fn next_frame(ws: &mut RawWs) -> Vec<u8> {
    loop {
        match timeout(BOUND, ws.next()).await.expect("nothing came") {
            Some(Ok(Message::Binary(bytes))) => return bytes.to_vec(),
            Some(Ok(_)) => {}
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_session_that_replaced_an_ended_one_is_given_again_until_its_welcome_arrives() {
    let ttl = Duration::from_millis(300);
    let (server, addr) = announcing_server_with(ServerConfig::default().session_ttl(ttl)).await;
    // Connection 1 opens the session; its application sends s1-1 to s1-3. The client
    // goes away for longer than the session lives.
    let mut first = raw(addr).await;
    first.send(Message::binary(open([4; 16]))).await.unwrap();
    assert_eq!(next_frame(&mut first).await[0], 0x04, "WELCOME");
    drop(first);
    eventually("the session expires", || server.stats().expired == 1).await;
    // Connection 2 asks for it again: a new session, whose application sends s2-1 to
    // s2-3; its WELCOME never reaches the client.
    let mut second = raw(addr).await;
    second
        .send(Message::binary(hello_again([4; 16])))
        .await
        .unwrap();
    eventually("a new session starts", || server.stats().sessions == 2).await;
    drop(second);
    // Connection 3 asks for the ended session once more: the new one again, told as new,
    // with the same gap, then everything its application sent.
    let mut third = raw(addr).await;
    third
        .send(Message::binary(hello_again([4; 16])))
        .await
        .unwrap();
    let welcome = next_frame(&mut third).await;
    assert_eq!(welcome[0], 0x04, "WELCOME, RESUMED clear: {welcome:x?}");
    assert_ne!(
        &welcome[2..18],
        &[4; 16],
        "the new session, not the ended one"
    );
    // GAP with END: from 1 to 4, reason 2 (Expired): s1-1 to s1-3.
    assert_eq!(next_frame(&mut third).await, [0x15, 1, 4, 2]);
    let mut texts = Vec::new();
    while texts.len() < 3 {
        let frame = next_frame(&mut third).await;
        if frame[0] & 0x0f == 0x01 {
            // DATA: seq (one byte here), then the payload.
            texts.push(String::from_utf8(frame[2..].to_vec()).unwrap());
        }
    }
    assert_eq!(texts, ["s2-1", "s2-2", "s2-3"], "nothing of it passed over");
    assert_eq!(server.stats().sessions, 2, "no third session");
}
