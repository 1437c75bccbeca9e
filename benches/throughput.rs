//! One-way throughput: raw tokio-tungstenite, stream-reconnect and ReconnectingSink,
//! same connector settings.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use ws_reconnect::ReconnectingSink;

async fn send_n<S, E>(mut ws: S, payload: &Bytes, n: u64) -> Duration
where
    S: Sink<Message> + Stream<Item = Result<Message, E>> + Unpin,
    <S as Sink<Message>>::Error: std::fmt::Debug,
{
    let start = Instant::now();
    for _ in 0..n {
        ws.feed(Message::Binary(payload.clone())).await.unwrap();
    }
    ws.flush().await.unwrap();
    while let Some(Ok(m)) = ws.next().await {
        if m.is_text() {
            break;
        }
    }
    start.elapsed()
}

fn throughput(c: &mut Criterion) {
    let addr = common::server();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("throughput");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for size in [64usize, 1024, 65536] {
        let payload = Bytes::from(vec![7u8; size]);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("raw", size), &size, |b, _| {
            b.to_async(&rt).iter_custom(|n| {
                let payload = payload.clone();
                async move {
                    let url = format!("ws://{addr}/count/{n}");
                    let (ws, _) =
                        tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
                            .await
                            .unwrap();
                    send_n(ws, &payload, n).await
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("stream-reconnect", size), &size, |b, _| {
            b.to_async(&rt).iter_custom(|n| {
                let payload = payload.clone();
                async move {
                    let url = format!("ws://{addr}/count/{n}");
                    send_n(common::peer::connect(&url).await, &payload, n).await
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("reconnecting", size), &size, |b, _| {
            b.to_async(&rt).iter_custom(|n| {
                let payload = payload.clone();
                async move {
                    let url = format!("ws://{addr}/count/{n}");
                    let ws = ReconnectingSink::connect(&url).await.unwrap();
                    send_n(ws, &payload, n).await
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
