//! Soak with accounting: numbered messages through a fault-injecting proxy that cuts,
//! resets, half-opens, slows and refuses connections at random. Acknowledged mode must
//! lose nothing. 10,000 messages by default; `WS_RECONNECT_SOAK_MESSAGES` for more.

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use ws_reconnect::testing::{FaultProxy, RandomFaults};
use ws_reconnect::{Message, ReconnectingSink};

use support::{
    connect, env_or, proxy_url, serve, serve_ledger, sharing, LedgerPlan, Numbered, Reply, Server,
    Ws,
};

/// `upstream` behind a proxy whose every new connection draws a fault after 16 KiB on
/// average (cut, reset, half-open and delay `weights`), and refuses one in ten.
async fn random_faults(upstream: &Server, seed: u64, weights: [u32; 4]) -> FaultProxy {
    let proxy = FaultProxy::start(upstream.addr).await.unwrap();
    proxy.random(RandomFaults {
        seed,
        mean_bytes: 16 * 1024,
        weights,
        refuse_probability: 0.1,
    });
    proxy
}

#[tokio::test]
async fn acknowledged_soak_through_random_faults_loses_nothing() {
    let n: u64 = env_or("WS_RECONNECT_SOAK_MESSAGES", 10_000);
    // The server acknowledges after every message and every 5 ms.
    let (upstream, ledger) = serve_ledger(LedgerPlan {
        ack_every: 1,
        resets: None,
    })
    .await;
    let proxy = random_faults(&upstream, 11, [1, 1, 1, 1]).await;
    let ws = connect(
        ReconnectingSink::builder()
            .initial_interval(Duration::from_millis(5))
            .max_interval(Duration::from_millis(100))
            .max_reconnections_total(1_000_000)
            .keepalive(Duration::from_millis(200), Duration::from_millis(200))
            .ack_timeout(Duration::from_millis(500))
            .acknowledged(Numbered, 512),
        proxy_url(&proxy),
    )
    .await;
    let stats = ws.stats_handle();
    let source = futures::stream::iter((1..=n).map(|i| Ok(Message::text(i.to_string()))));
    let mut ws = ws;
    timeout(
        Duration::from_secs(240),
        ws.send_all(&mut source.map(|m: Result<Message, ws_reconnect::Error>| m)),
    )
    .await
    .expect("soak hung")
    .expect("soak failed");
    timeout(Duration::from_secs(60), ws.close())
        .await
        .expect("close hung")
        .expect("close failed");
    let faults = proxy.stats();
    let s = stats.get();
    eprintln!(
        "soak: {n} messages, {} connections through the proxy; faults: {} cuts, {} resets, {} half-open, {} delays, {} refused; \
         {} duplicates, {} resent, {} reconnects, lost 0",
        faults.connections,
        faults.cuts,
        faults.resets,
        faults.half_opens,
        faults.delays,
        faults.refused,
        ledger.duplicates.load(SeqCst),
        s.messages_resent,
        s.reconnects,
    );
    assert!(
        ledger.gaps.lock().unwrap().is_empty(),
        "gaps: {:?}",
        ledger.gaps.lock().unwrap()
    );
    assert_eq!(ledger.highest.load(SeqCst), n, "lost messages");
    assert!(
        faults.cuts + faults.resets + faults.half_opens >= 3,
        "too few faults to prove anything: {faults:?}"
    );
}

// ---- plain mode: losses only among messages already flushed ---------------------------

mod recording {
    //! A connection wrapper (as a tower service around the connector) that records, per
    //! connection, the range of ids a successful flush covered.

    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use futures::{Sink, Stream};
    use ws_reconnect::{BoxError, Message, Target};

    /// Per connection: (lowest id written, highest id covered by a successful flush).
    pub type Flushed = Arc<Mutex<Vec<(u64, u64)>>>;

    #[derive(Clone)]
    pub struct Record<S> {
        pub inner: S,
        pub flushed: Flushed,
    }

    impl<S, C> tower::Service<Target> for Record<S>
    where
        S: tower::Service<Target, Response = C>,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        C: Send + 'static,
    {
        type Response = Recorded<C>;
        type Error = BoxError;
        type Future = futures::future::BoxFuture<'static, Result<Recorded<C>, BoxError>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            self.inner.poll_ready(cx).map_err(Into::into)
        }

        fn call(&mut self, target: Target) -> Self::Future {
            let future = self.inner.call(target);
            let flushed = self.flushed.clone();
            Box::pin(async move {
                let inner = future.await.map_err(Into::into)?;
                let index = {
                    let mut f = flushed.lock().unwrap();
                    f.push((u64::MAX, 0));
                    f.len() - 1
                };
                Ok(Recorded {
                    inner,
                    index,
                    written_max: 0,
                    flushed,
                })
            })
        }
    }

    pub struct Recorded<C> {
        inner: C,
        index: usize,
        written_max: u64,
        flushed: Flushed,
    }

    impl<C: Sink<Message> + Unpin> Sink<Message> for Recorded<C> {
        type Error = C::Error;
        fn poll_ready(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), C::Error>> {
            Pin::new(&mut self.inner).poll_ready(cx)
        }
        fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), C::Error> {
            if let Some(id) = item.to_text().ok().and_then(|t| t.parse::<u64>().ok()) {
                self.written_max = self.written_max.max(id);
                let mut f = self.flushed.lock().unwrap();
                f[self.index].0 = f[self.index].0.min(id);
            }
            Pin::new(&mut self.inner).start_send(item)
        }
        fn poll_flush(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), C::Error>> {
            let r = Pin::new(&mut self.inner).poll_flush(cx);
            if let Poll::Ready(Ok(())) = r {
                let mut f = self.flushed.lock().unwrap();
                f[self.index].1 = f[self.index].1.max(self.written_max);
            }
            r
        }
        fn poll_close(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), C::Error>> {
            Pin::new(&mut self.inner).poll_close(cx)
        }
    }

    impl<C: Stream + Unpin> Stream for Recorded<C> {
        type Item = C::Item;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<C::Item>> {
            Pin::new(&mut self.inner).poll_next(cx)
        }
    }
}

#[tokio::test]
async fn plain_soak_loses_only_messages_already_flushed_into_a_connection_that_died() {
    let n: u64 = env_or("WS_RECONNECT_SOAK_MESSAGES", 10_000);
    let received = Arc::new(Mutex::new(vec![0u32; n as usize + 1]));
    let counting = sharing(received.clone(), |received, _, mut ws: Ws| async move {
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            if let Ok(id) = t.as_str().parse::<usize>() {
                if let Some(c) = received.lock().unwrap().get_mut(id) {
                    *c += 1;
                }
            }
        }
    });
    let upstream = serve(|_| Reply::Upgrade, counting).await;
    // Cuts and resets: the proxy's half-open fault keeps reading what the client sends,
    // so the client's send queue drains and the keepalive takes the path for a live one
    // (draining counts as life, so that a slow link is not replaced); a whole run can go
    // into it. Half-open paths have their own tests (tests/keepalive).
    let proxy = random_faults(&upstream, 5, [1, 1, 0, 0]).await;
    let flushed: recording::Flushed = Arc::default();
    let stack = tower::ServiceBuilder::new()
        .layer(ws_reconnect::BackoffRetryLayer::new(
            ws_reconnect::ExponentialBackoff::builder()
                .initial_interval(Duration::from_millis(5))
                .max_interval(Duration::from_millis(100))
                .build()
                .unwrap(),
        ))
        .layer_fn(|inner| recording::Record {
            inner,
            flushed: flushed.clone(),
        })
        .timeout(Duration::from_secs(5))
        .service(ws_reconnect::TungsteniteConnector::default());
    let target = ws_reconnect::Target::new(proxy_url(&proxy)).unwrap();
    let mut ws = ReconnectingSink::builder()
        .keepalive(Duration::from_millis(200), Duration::from_millis(200))
        .build_over(stack, target);
    ws.dial().await.unwrap();
    // Paced in small batches: unpaced, all 10,000 messages fit in the kernel's buffers
    // before the proxy reads its first chunk, and the first fault takes them all.
    for batch in (1..=n).collect::<Vec<_>>().chunks(50) {
        for &i in batch {
            timeout(
                Duration::from_secs(30),
                ws.feed(Message::text(i.to_string())),
            )
            .await
            .expect("feed hung")
            .unwrap();
        }
        timeout(Duration::from_secs(30), ws.flush())
            .await
            .expect("flush hung")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // A fault during the closing handshake leaves the last flush unconfirmed: close()
    // says so (CloseIncomplete) rather than count it delivered.
    match timeout(Duration::from_secs(30), ws.close())
        .await
        .expect("close hung")
    {
        Ok(()) | Err(ws_reconnect::Error::CloseIncomplete { .. }) => {}
        Err(e) => panic!("close: {e}"),
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    let received = received.lock().unwrap().clone();
    let lost: Vec<u64> = (1..=n).filter(|&i| received[i as usize] == 0).collect();
    let flushed = flushed.lock().unwrap().clone();
    let faults = proxy.stats();
    // The bound: every lost message had been covered by a successful flush on some
    // connection (which then died); nothing still held by the sink was lost.
    let unexplained: Vec<u64> = lost
        .iter()
        .copied()
        .filter(|&id| !flushed.iter().any(|&(lo, hi)| lo <= id && id <= hi))
        .collect();
    eprintln!(
        "plain soak: {n} messages, {} connections, {} cuts, {} resets, {} half-open, {} refused; lost {} (all flushed before a cut: {})",
        flushed.len(),
        faults.cuts,
        faults.resets,
        faults.half_opens,
        faults.refused,
        lost.len(),
        unexplained.is_empty()
    );
    assert!(
        unexplained.is_empty(),
        "lost without having been flushed: {unexplained:?}"
    );
    assert!(
        faults.cuts + faults.resets + faults.half_opens >= 3,
        "too few faults: {faults:?}"
    );
}
