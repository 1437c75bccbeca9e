//! The proxy end to end, over loopback sockets: faults and paths.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const BOUND: Duration = Duration::from_secs(20);

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

async fn round_trip(client: &mut TcpStream, bytes: &[u8]) {
    client.write_all(bytes).await.unwrap();
    let mut back = vec![0; bytes.len()];
    tokio::time::timeout(BOUND, client.read_exact(&mut back))
        .await
        .expect("the echo came back")
        .unwrap();
    assert_eq!(back, bytes);
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
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_millis(300), frozen.read(&mut buf)).await;
    assert!(read.is_err(), "a frozen connection delivered {read:?}");

    // Nobody reads the client's bytes any more: its writes block once the kernel
    // buffers on the way are full (a black hole would take them forever).
    let chunk = vec![0u8; 64 * 1024];
    let mut blocked = false;
    for _ in 0..4096 {
        let write =
            tokio::time::timeout(Duration::from_millis(500), frozen.write_all(&chunk)).await;
        if write.is_err() {
            blocked = true;
            break;
        }
        write.unwrap().unwrap();
    }
    assert!(blocked, "256 MiB written into a frozen connection");

    // A connection made after the freeze is forwarded normally.
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    round_trip(&mut fresh, b"fresh").await;
    assert_eq!(proxy.stats().connections, 2);

    // A reset still ends a frozen connection.
    proxy.inject(Fault::Reset);
    let end = tokio::time::timeout(BOUND, async {
        loop {
            match frozen.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "a reset frozen connection stayed open");
}
