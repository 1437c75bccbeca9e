//! Both halves follow one reconnection: a writer parked in `poll_ready` and a reader
//! parked in `poll_next` are woken when it completes, whichever half drove it, and split
//! halves share each new connection.

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::Message;

use crate::support::*;

#[tokio::test]
async fn a_parked_poll_ready_is_woken_when_the_reconnection_completes() {
    let (gate, script, mut ws) = mock::gated_and_dialed().await;
    script.hang_up(0);

    let mut task = tokio_test::task::spawn(());
    // poll_ready notices the EOF, starts reconnecting and parks on the gate.
    assert!(task.enter(|cx, _| ws.poll_ready(cx)).is_pending());
    assert!(!task.is_woken());
    gate.notify_one();
    tokio::task::yield_now().await;
    assert!(task.is_woken(), "not woken by the reconnection");
    assert!(matches!(
        task.enter(|cx, _| ws.poll_ready(cx)),
        std::task::Poll::Ready(Ok(()))
    ));
    assert_eq!(script.connects(), 2);
}

#[tokio::test]
async fn a_parked_reader_is_woken_by_a_reconnection_the_writer_drives() {
    let (gate, script, mut ws) = mock::gated_and_dialed().await;

    let mut reader = tokio_test::task::spawn(());
    let mut writer = tokio_test::task::spawn(());
    assert!(reader.enter(|cx, _| ws.poll_next(cx)).is_pending());
    script.hang_up(0);
    // The reader is woken by the EOF...
    assert!(reader.is_woken());
    // ...but the writer gets there first and parks on the reconnection.
    assert!(writer.enter(|cx, _| ws.poll_ready(cx)).is_pending());
    assert!(reader.enter(|cx, _| ws.poll_next(cx)).is_pending());
    gate.notify_one();
    tokio::task::yield_now().await;
    assert!(writer.is_woken() && reader.is_woken(), "both halves woken");
    assert!(writer.enter(|cx, _| ws.poll_ready(cx)).is_ready());
    script.push(1, Message::text("after"));
    match reader.enter(|cx, _| ws.poll_next(cx)) {
        std::task::Poll::Ready(Some(Ok(m))) => assert_eq!(m, Message::text("after")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn split_halves_share_one_connection_across_reconnects() {
    let log = Log::default();
    // Echo with the connection number; close the first connection after 2.
    let echo_numbered = responding(log.clone(), |conn, seen, t| {
        let reply = format!("{conn}:{t}");
        if conn == 0 && seen == 2 {
            Respond::SendAndClose(reply)
        } else {
            Respond::Send(reply)
        }
    });
    let server = serve(|_| Reply::Upgrade, echo_numbered).await;
    let ws = connect(quick_healthy(), server.url()).await;
    let (mut tx, mut rx) = ws.split();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.last().map(String::as_str) != Some("1:m3") {
            match timeout(BOUND, rx.next()).await {
                Ok(Some(Ok(m))) => got.push(m.into_text().unwrap().to_string()),
                other => panic!("reader: {other:?}"),
            }
        }
        got
    });
    for i in 0..4 {
        timeout(BOUND, tx.send(Message::text(format!("m{i}"))))
            .await
            .unwrap()
            .unwrap();
        eventually("server got it", || log.texts().contains(&format!("m{i}"))).await;
        if i == 1 {
            // The server closed connection 0; the reader notices and reconnects, and the
            // writer's next message uses the connection the reader opened.
            eventually("reader reconnected", || server.upgrades() == 2).await;
        }
    }
    let mut got = join(reader, "the reader").await;
    // m1 may come again on connection 1: the server closed right after answering it,
    // before the Ping that would have confirmed it (a duplicate, never a loss).
    got.retain(|reply| reply != "1:m1");
    assert_eq!(got, ["0:m0", "0:m1", "1:m2", "1:m3"]);
    assert_eq!(server.upgrades(), 2);
}
