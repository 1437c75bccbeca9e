//! Echo round trip of a 64-byte message: raw tokio-tungstenite and ReconnectingSink.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use ws_reconnect::ReconnectingSink;

async fn round_trips<S, E>(mut ws: S, n: u64) -> Duration
where
    S: Sink<Message> + Stream<Item = Result<Message, E>> + Unpin,
    <S as Sink<Message>>::Error: std::fmt::Debug,
{
    let payload = Bytes::from(vec![1u8; 64]);
    let start = Instant::now();
    for _ in 0..n {
        ws.send(Message::Binary(payload.clone())).await.unwrap();
        let _ = ws.next().await;
    }
    start.elapsed()
}

fn echo(c: &mut Criterion) {
    let addr = common::server();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("ws://{addr}/echo");
    let mut group = c.benchmark_group("echo_64B");
    group.sample_size(20);
    group.bench_function("raw", |b| {
        b.to_async(&rt).iter_custom(|n| {
            let url = url.clone();
            async move {
                let (ws, _) =
                    tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
                        .await
                        .unwrap();
                round_trips(ws, n).await
            }
        })
    });
    group.bench_function("reconnecting", |b| {
        b.to_async(&rt).iter_custom(|n| {
            let url = url.clone();
            async move { round_trips(ReconnectingSink::connect(&url).await.unwrap(), n).await }
        })
    });
    group.finish();
}

criterion_group!(benches, echo);
criterion_main!(benches);
