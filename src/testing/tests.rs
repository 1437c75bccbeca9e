//! The proxy end to end, over loopback sockets: faults, paths, and faults on paths.
//!
//! Every await that could hang is bounded by [`BOUND`]. Timing checks are lower bounds
//! only (a loaded machine makes things later, never earlier); that a path is a delay line
//! and not a throttle, and that it pushes back, is read from the line's gauges.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

use super::*;

const BOUND: Duration = Duration::from_secs(20);
const MS: Duration = Duration::from_millis(1);

/// An upstream that echoes bytes on every connection.
async fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// An upstream that echoes bytes on every connection and, once the connection ends,
/// reports every byte it got.
async fn recording_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = tcp.read(&mut buf).await {
                    got.extend_from_slice(&buf[..n]);
                    let _ = tcp.write_all(&buf[..n]).await;
                }
                let _ = tx.send(got);
            });
        }
    });
    (addr, rx)
}

async fn round_trip(client: &mut TcpStream, bytes: &[u8]) {
    client.write_all(bytes).await.unwrap();
    let mut back = vec![0; bytes.len()];
    timeout(BOUND, client.read_exact(&mut back))
        .await
        .expect("the echo came back")
        .unwrap();
    assert_eq!(back, bytes);
}

/// Record `i`: `len` bytes that say which record they are and where in it.
fn record(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j) as u8).collect()
}

/// Asserts that `client` gets nothing for a while: no bytes, no end.
async fn assert_silent(client: &mut TcpStream, wait: Duration) {
    let mut buf = [0u8; 16];
    let read = timeout(wait, client.read(&mut buf)).await;
    assert!(read.is_err(), "a frozen connection delivered {read:?}");
}

/// Asserts that writes into `client` block once the kernel buffers on the way are full:
/// nobody reads them (a black hole would take them forever).
async fn assert_writes_block(client: &mut TcpStream) {
    let chunk = vec![0u8; 64 * 1024];
    for _ in 0..4096 {
        match timeout(Duration::from_millis(500), client.write_all(&chunk)).await {
            Err(_) => return,
            Ok(write) => write.unwrap(),
        }
    }
    panic!("256 MiB written into a frozen connection");
}

/// Reads `client` until it ends (EOF or reset); returns what came before the end.
async fn read_to_end(client: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = timeout(BOUND, async {
        loop {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(end.is_ok(), "{what}: the connection stayed open");
    got
}

#[tokio::test]
async fn a_frozen_connection_blocks_the_writer_and_stays_open_while_new_ones_flow() {
    let proxy = FaultProxy::start(echo_upstream().await).await.unwrap();
    let mut frozen = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut frozen, b"before").await;

    proxy.inject(Fault::Freeze);
    assert_eq!(proxy.stats().freezes, 1);

    // Nothing comes back, and the socket is not closed either (no EOF, no reset).
    frozen.write_all(b"after").await.unwrap();
    assert_silent(&mut frozen, 300 * MS).await;
    assert_writes_block(&mut frozen).await;

    // A connection made after the freeze is forwarded normally.
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut fresh, b"fresh").await;
    assert_eq!(proxy.stats().connections, 2);

    // A reset still ends a frozen connection.
    proxy.inject(Fault::Reset);
    read_to_end(&mut frozen, "a reset frozen connection").await;
}

#[tokio::test]
async fn a_path_delivers_every_chunk_no_earlier_than_its_latency_in_order_and_intact() {
    const LATENCY: Duration = Duration::from_millis(30);
    const RECORDS: usize = 40;
    const LEN: usize = 64;
    let link = Link::new().latency(LATENCY).jitter(20 * MS);
    let proxy = FaultProxy::start_with(echo_upstream().await, link)
        .await
        .unwrap();
    let client = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut reader, mut writer) = client.into_split();

    let sending = tokio::spawn(async move {
        let mut sent = Vec::new();
        for i in 0..RECORDS {
            sent.push(Instant::now());
            writer.write_all(&record(i, LEN)).await.unwrap();
            tokio::time::sleep(2 * MS).await;
        }
        (sent, writer)
    });
    let mut back = Vec::new();
    for i in 0..RECORDS {
        let mut buf = [0u8; LEN];
        timeout(BOUND, reader.read_exact(&mut buf))
            .await
            .expect("every record comes back")
            .unwrap();
        back.push(Instant::now());
        // In order and intact: record i, byte for byte.
        assert_eq!(buf[..], record(i, LEN), "record {i}");
    }
    let (sent, _writer) = timeout(BOUND, sending).await.unwrap().unwrap();
    for (i, (sent, back)) in sent.iter().zip(&back).enumerate() {
        // Through the link both ways.
        assert!(
            *back - *sent >= 2 * LATENCY,
            "record {i} came back after {:?}",
            *back - *sent
        );
    }
}

#[tokio::test]
async fn a_delay_is_latency_not_a_throttle_many_chunks_travel_at_once() {
    const LATENCY: Duration = Duration::from_millis(200);
    const CHUNKS: usize = 50;
    const LEN: usize = 100;
    let proxy = FaultProxy::start(echo_upstream().await).await.unwrap();
    let client = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut reader, mut writer) = client.into_split();
    // The connection is open (the proxy has it) once a round trip is done.
    writer.write_all(b"open").await.unwrap();
    timeout(BOUND, reader.read_exact(&mut [0u8; 4]))
        .await
        .unwrap()
        .unwrap();

    proxy.inject(Fault::Delay(LATENCY));
    assert_eq!(proxy.stats().delays, 1);
    let sending = tokio::spawn(async move {
        let mut sent = Vec::new();
        for i in 0..CHUNKS {
            sent.push(Instant::now());
            writer.write_all(&record(i, LEN)).await.unwrap();
            tokio::time::sleep(MS).await;
        }
        (sent, writer)
    });
    let mut back = Vec::new();
    for i in 0..CHUNKS {
        let mut buf = [0u8; LEN];
        timeout(BOUND, reader.read_exact(&mut buf))
            .await
            .expect("every chunk comes back")
            .unwrap();
        back.push(Instant::now());
        assert_eq!(buf[..], record(i, LEN), "chunk {i}");
    }
    let (sent, _writer) = timeout(BOUND, sending).await.unwrap().unwrap();
    for (i, (sent, back)) in sent.iter().zip(&back).enumerate() {
        assert!(*back - *sent >= 2 * LATENCY, "chunk {i} came back early");
    }
    // A throttle holds one chunk at a time. The line held at least ten of them at once
    // (all fifty, unless the machine stalled the writer for most of the latency).
    let peaks = proxy.shared.gauges.upstream.peaks();
    assert!(
        peaks.bytes >= 10 * LEN,
        "at most {} bytes were on their way at once ({} pieces)",
        peaks.bytes,
        peaks.pieces
    );
}

#[tokio::test]
async fn a_capped_link_takes_n_over_b_and_pushes_back_once_its_buffer_is_full() {
    const RATE: u64 = 200_000;
    const N: usize = 100_000;
    let link = Link::new().bandwidth(RATE);
    // What the link carries in 100 ms.
    let buffer = link.buffer_len();
    assert_eq!(buffer, 20_000);
    let path = Path {
        upstream: link,
        downstream: Link::new(),
    };
    let proxy = FaultProxy::start_with(echo_upstream().await, path)
        .await
        .unwrap();
    let client = TcpStream::connect(proxy.addr()).await.unwrap();
    let (mut reader, mut writer) = client.into_split();

    let payload = record(7, N);
    let started = Instant::now();
    let sending = tokio::spawn({
        let payload = payload.clone();
        async move {
            writer.write_all(&payload).await.unwrap();
            writer
        }
    });
    let mut back = vec![0u8; N];
    timeout(BOUND, reader.read_exact(&mut back))
        .await
        .expect("every byte comes back")
        .unwrap();
    let took = started.elapsed();
    assert!(back == payload, "the bytes changed on the way");
    let _writer = timeout(BOUND, sending).await.unwrap().unwrap();

    let least = Duration::from_secs_f64(N as f64 / RATE as f64);
    assert!(took >= least, "{N} bytes at {RATE} B/s took {took:?}");
    // The line never held more than its buffer, and it filled: the proxy stopped
    // reading, and the rest waited in the sender's socket buffers.
    let peaks = proxy.shared.gauges.upstream.peaks();
    assert!(peaks.bytes <= buffer, "the line held {} bytes", peaks.bytes);
    assert!(peaks.full > 0, "the line never filled ({peaks:?})");
}

#[tokio::test]
async fn set_path_slows_open_and_new_connections() {
    const LATENCY: Duration = Duration::from_millis(50);
    let proxy = FaultProxy::start(echo_upstream().await).await.unwrap();
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut open, b"fast").await;

    proxy.set_path(Link::new().latency(LATENCY));
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    for client in [&mut open, &mut fresh] {
        let sent = Instant::now();
        round_trip(client, b"slow").await;
        assert!(sent.elapsed() >= 2 * LATENCY);
    }
}

#[tokio::test]
async fn a_reset_on_a_delayed_connection_resets_now_and_drops_what_is_on_its_way() {
    // Nothing could come back before 4 s.
    let link = Link::new().latency(Duration::from_secs(2));
    let proxy = FaultProxy::start_with(echo_upstream().await, link)
        .await
        .unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    client.write_all(b"on its way").await.unwrap();
    // The proxy counts a connection once faults reach it.
    timeout(BOUND, async {
        while proxy.stats().connections == 0 {
            tokio::time::sleep(MS).await;
        }
    })
    .await
    .unwrap();

    proxy.inject(Fault::Reset);
    let got = read_to_end(&mut client, "a reset delayed connection").await;
    assert!(
        got.is_empty(),
        "the echo of a reset connection came back: {got:?}"
    );
    assert_eq!(proxy.stats().resets, 1);
}

#[tokio::test]
async fn a_freeze_on_a_delayed_path_stops_both_directions() {
    let link = Link::new().latency(20 * MS);
    let proxy = FaultProxy::start_with(echo_upstream().await, link)
        .await
        .unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut client, b"before").await;

    // Bytes on their way when the path freezes never arrive, and nothing is read any
    // more: the client's writes block.
    client.write_all(b"on its way").await.unwrap();
    proxy.inject(Fault::Freeze);
    assert_silent(&mut client, 500 * MS).await;
    assert_writes_block(&mut client).await;

    proxy.inject(Fault::Reset);
    read_to_end(&mut client, "a reset frozen connection").await;
}

#[tokio::test]
async fn a_cut_on_a_delayed_path_delivers_the_bytes_before_it_then_closes() {
    let (upstream, mut received) = recording_upstream().await;
    let link = Link::new().latency(30 * MS);
    let proxy = FaultProxy::start_with(upstream, link).await.unwrap();
    let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut client, b"0123").await;

    // Six more client-to-server bytes, counted as they reach the proxy.
    proxy.inject(Fault::CutAfter(6));
    client.write_all(b"456789abcdef").await.unwrap();
    read_to_end(&mut client, "a cut connection").await;
    let got = timeout(BOUND, received.recv()).await.unwrap().unwrap();
    assert_eq!(got, b"0123456789");
}
