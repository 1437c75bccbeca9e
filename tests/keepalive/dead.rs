//! A dead path is replaced within `interval + timeout`. A frozen path (`Fault::Freeze`):
//! nothing is read or written any more, nothing is closed, and the client's writes block
//! once the kernel buffers fill; only the keepalive can tell, and it must, whether the
//! sink is writing, reading or waiting for acknowledgements. A half-open connection
//! (`Fault::HalfOpen`): the same for a reader waiting in `next()`.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use ws_reconnect::testing::Fault;
use ws_reconnect::{ConnectionState, Message};

use crate::support::*;

/// Keepalive interval and timeout: a frozen connection is replaced within about 400 ms.
const KEEPALIVE: Duration = Duration::from_millis(200);

#[tokio::test]
async fn a_send_blocked_by_a_frozen_path_completes_on_a_new_connection() {
    let server = serve(|_| Reply::Upgrade, drain).await;
    let (proxy, mut ws) = through_proxy(&server, quick().keepalive(KEEPALIVE, KEEPALIVE)).await;
    let stats = ws.stats_handle();
    let message = Message::binary(vec![0x5a; 64 * 1024]);
    timeout(BOUND, ws.send(message.clone()))
        .await
        .expect("a send before the freeze hung")
        .expect("send");

    proxy.inject(Fault::Freeze);
    let before = stats.get().reconnects;
    let deadline = Instant::now() + BOUND;
    let mut sent = 0;
    // Nobody reads the stream. Send until one send blocks (the buffers are full), then
    // that send must complete: the sink replaced the connection. A sink that notices the
    // freeze before any send blocks (between sends) passes too.
    loop {
        assert!(
            Instant::now() < deadline,
            "{sent} messages of 64 KiB sent after the freeze, none blocked, no reconnection"
        );
        let send = ws.send(message.clone());
        tokio::pin!(send);
        match timeout(Duration::from_secs(1), &mut send).await {
            Ok(r) => {
                r.expect("send after the freeze");
                sent += 1;
                if stats.get().reconnects > before {
                    eprintln!("replaced after {sent} messages, no send blocked for 1 s");
                    break;
                }
            }
            Err(_) => {
                eprintln!("send blocked after {sent} messages of 64 KiB");
                timeout(BOUND, send)
                    .await
                    .unwrap_or_else(|_| {
                        panic!(
                            "the send() blocked by the frozen path (after {sent} messages) \
                             did not complete before BOUND; reconnects: {}",
                            stats.get().reconnects
                        )
                    })
                    .expect("the blocked send");
                break;
            }
        }
    }
    assert!(
        stats.get().reconnects > before,
        "the send completed without a new connection: {:?}",
        stats.get()
    );
}

/// The control: a reader parked in `next()` meets the keepalive's timer.
#[tokio::test]
async fn a_parked_reader_replaces_a_frozen_connection() {
    let server = serve(|_| Reply::Upgrade, drain).await;
    let (proxy, mut ws) = through_proxy(&server, quick().keepalive(KEEPALIVE, KEEPALIVE)).await;
    let stats = ws.stats_handle();
    let read = ws.next();
    tokio::pin!(read);
    let early = timeout(Duration::from_millis(100), &mut read).await;
    assert!(early.is_err(), "the server sent nothing, yet: {early:?}");

    proxy.inject(Fault::Freeze);
    let reconnected = async {
        while stats.get().reconnects == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let outcome = timeout(BOUND, async {
        tokio::select! {
            item = &mut read => Some(item),
            () = reconnected => None,
        }
    })
    .await
    .expect("no reconnection before BOUND after the freeze, with a reader parked in next()");
    assert!(
        outcome.is_none(),
        "the reader got {outcome:?} from a server that sent nothing"
    );
}

#[tokio::test]
async fn acknowledged_sends_waiting_for_acks_replace_a_frozen_connection() {
    let log = Log::default();
    let server = serve(|_| Reply::Upgrade, acknowledging(log.clone())).await;
    // The ack timeout is out of reach: only the keepalive can act within BOUND.
    let (proxy, mut ws) = through_proxy(
        &server,
        quick()
            .keepalive(KEEPALIVE, KEEPALIVE)
            .acknowledged(Numbered, 8)
            .ack_timeout(Duration::from_secs(60)),
    )
    .await;

    const MESSAGES: u64 = 40;
    for n in 1..=MESSAGES {
        if n == 11 {
            proxy.inject(Fault::Freeze);
        }
        timeout(BOUND, ws.send(Message::text(n.to_string())))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "send({n}) did not complete before BOUND (frozen at 11, window 8); \
                     {} unacknowledged, reconnects: {}",
                    ws.unacknowledged_count(),
                    ws.stats().reconnects
                )
            })
            .unwrap_or_else(|e| panic!("send({n}): {e:?}"));
    }
    timeout(BOUND, ws.flush())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "flush() did not complete before BOUND; {} unacknowledged, reconnects: {}",
                ws.unacknowledged_count(),
                ws.stats().reconnects
            )
        })
        .expect("flush");
    assert_eq!(ws.unacknowledged_count(), 0);
    assert!(ws.stats().reconnects >= 1, "{:?}", ws.stats());
    let got = numbers(log.texts());
    let missing: Vec<u64> = (1..=MESSAGES).filter(|n| !got.contains(n)).collect();
    assert!(missing.is_empty(), "never reached the server: {missing:?}");
}

/// A writer that never reads, its inbox full, behind a path that freezes: the inbox
/// holds the keepalive clock (silence proves nothing while the socket is left unread),
/// but a write blocked on the full socket means nothing moves either way, and the
/// keepalive must still end the connection.
#[tokio::test]
async fn a_send_blocked_by_a_frozen_path_completes_even_with_a_full_inbox() {
    let server = serve(
        |_| Reply::Upgrade,
        |_, mut ws: crate::support::Ws| async move {
            for i in 0..4 {
                if ws.send(Message::text(format!("in{i}"))).await.is_err() {
                    return;
                }
            }
            while let Some(Ok(_)) = ws.next().await {}
        },
    )
    .await;
    let (proxy, mut ws) = through_proxy(
        &server,
        quick()
            .keepalive(KEEPALIVE, KEEPALIVE)
            .max_queued_inbound(2),
    )
    .await;
    for i in 0..3 {
        timeout(BOUND, ws.send(Message::text(format!("s{i}"))))
            .await
            .expect("a send before the freeze hung")
            .expect("send");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.inject(Fault::Freeze);
    let big = Message::binary(vec![0u8; 256 * 1024]);
    timeout(BOUND, async {
        for _ in 0..200 {
            ws.send(big.clone()).await.expect("send");
        }
    })
    .await
    .expect("50 MiB of sends over a frozen path never completed");
    assert!(ws.stats().reconnects >= 1, "{:?}", ws.stats());
}

#[tokio::test]
async fn a_half_open_connection_is_replaced_within_interval_plus_timeout() {
    let server = serve(|_| Reply::Upgrade, echo).await;
    let (interval, keep_timeout) = (Duration::from_millis(300), Duration::from_millis(300));
    let (proxy, mut ws) = through_proxy(&server, quick().keepalive(interval, keep_timeout)).await;
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(
        timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap(),
        Message::text("before")
    );
    // "before" is confirmed (its Pong came back) before the path goes half-open, so that
    // the new connection carries no copy of it.
    read_until(&mut ws, "before confirmed", |ws| {
        ws.undelivered_count() == 0
    })
    .await;
    let state = ws.state();
    proxy.inject(Fault::HalfOpen);
    assert_eq!(
        proxy.stats().half_opens,
        1,
        "one open connection black-holed"
    );
    let cut = Instant::now();
    // A reader waiting in next() is enough to run the keepalive.
    let reader = async {
        loop {
            let _ = ws.next().await;
        }
    };
    let reconnected = async {
        eventually("reconnected", || server.upgrades() == 2).await;
    };
    tokio::select! {
        _ = reader => unreachable!(),
        _ = timeout(BOUND, reconnected) => {}
    }
    let took = cut.elapsed();
    assert_eq!(server.upgrades(), 2, "not replaced");
    assert!(took >= interval, "replaced before any silence: {took:?}");
    assert!(
        took < interval + keep_timeout + Duration::from_millis(700),
        "took {took:?}"
    );
    assert!(matches!(
        *state.borrow(),
        ConnectionState::Connected | ConnectionState::Reconnecting { .. }
    ));
    ws.send(Message::text("after")).await.unwrap();
    assert_eq!(
        timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap(),
        Message::text("after")
    );
}

/// A server that sends "tick" every 20 ms and reads everything.
async fn ticking_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut tx, mut rx) = ws.split();
                let ticks = async {
                    loop {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        if tx.send(Message::text("tick")).await.is_err() {
                            return;
                        }
                    }
                };
                let drain = async { while let Some(Ok(_)) = rx.next().await {} };
                tokio::select! { () = ticks => {}, () = drain => {} }
            });
        }
    });
    addr
}

/// A large upload on a slow link (200 kB/s) while the server's frames keep arriving,
/// then the path freezes: replaced within `interval + timeout` of the last frame. The
/// keepalive's baseline is taken when a frame arrives; one taken from before the upload
/// counted the send queue draining during it as life after the last frame, and the
/// connection lived one interval longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_path_under_an_upload_is_replaced_within_interval_plus_timeout() {
    let server = ticking_server().await;
    let proxy = ws_reconnect::testing::FaultProxy::start_with(
        server,
        ws_reconnect::testing::Link::new().bandwidth(200_000),
    )
    .await
    .unwrap();
    let keepalive = Duration::from_secs(1);
    let ws = timeout(
        BOUND,
        quick()
            .keepalive(keepalive, keepalive)
            .connect(format!("ws://{}/", proxy.addr())),
    )
    .await
    .expect("connect hung")
    .expect("connect");
    let stats = ws.stats_handle();
    let (mut tx, mut rx) = ws.split();
    let last_tick = std::sync::Arc::new(std::sync::Mutex::new(Instant::now()));
    let reader = tokio::spawn({
        let last_tick = last_tick.clone();
        async move {
            while let Some(item) = rx.next().await {
                if let Ok(Message::Text(_)) = item {
                    *last_tick.lock().unwrap() = Instant::now();
                }
            }
        }
    });
    // 16 MiB: 80 s at 200 kB/s, still on its way when the path freezes.
    let writer = tokio::spawn(async move {
        let _ = tx.send(Message::binary(vec![0x5a; 16 << 20])).await;
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stats.get().reconnects,
        0,
        "a slow link was taken for a dead one"
    );
    proxy.inject(Fault::Freeze);
    let frozen = Instant::now();
    while stats.get().reconnects == 0 {
        assert!(
            frozen.elapsed() < BOUND,
            "the frozen path was never replaced"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let since_tick = last_tick.lock().unwrap().elapsed();
    reader.abort();
    writer.abort();
    assert!(
        since_tick < 2 * keepalive + Duration::from_millis(700),
        "replaced {since_tick:?} after the last frame: interval + timeout is {:?}",
        2 * keepalive
    );
}
