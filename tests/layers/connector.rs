//! The default connector on its own and in the documented composition: it connects and
//! carries messages, and an invalid URL fails without any connection.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::timeout;
use tower::{Service, ServiceBuilder, ServiceExt};
use ws_reconnect::{
    BackoffRetryLayer, Error, ExponentialBackoff, Message, ReconnectLimitLayer, Target,
    TungsteniteConnector,
};

use crate::support::{echo, serve, Reply, BOUND};
use crate::{dial, retrying};

#[tokio::test]
async fn the_documented_composition_connects_and_carries_messages() {
    let server = serve(|_| Reply::Upgrade, echo).await;
    let mut make = ServiceBuilder::new()
        .layer(ReconnectLimitLayer::new(10, Duration::from_secs(3600)))
        .layer(BackoffRetryLayer::new(ExponentialBackoff::default()))
        .timeout(Duration::from_secs(10))
        .service(TungsteniteConnector::default());
    let target = Target::new(server.url()).unwrap();
    let mut ws = timeout(BOUND, make.ready().await.unwrap().call(target))
        .await
        .unwrap()
        .unwrap();
    ws.send(Message::text("ping?")).await.unwrap();
    let back = timeout(BOUND, ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(back, Message::text("ping?"));
    assert_eq!(server.upgrades(), 1);
}

#[tokio::test]
async fn invalid_urls_fail_without_any_connection() {
    let server = serve(|_| Reply::Upgrade, echo).await;
    for bad in ["foo", "https://127.0.0.2:1234/x", "ws://", ""] {
        assert!(
            matches!(Target::new(bad), Err(Error::InvalidUrl { .. })),
            "{bad:?} accepted"
        );
    }
    // A closure that produces a non-ws URL at dial time is refused before any I/O, and
    // not retried.
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let addr = server.addr;
    let target = Target::from_fn(move || {
        c.fetch_add(1, Ordering::SeqCst);
        Ok(http::Request::builder()
            .uri(format!("http://{addr}/"))
            .body(())?)
    });
    let mut make = retrying(None);
    let err = dial(&mut make, target).await.unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(server.attempts(), 0);
}
