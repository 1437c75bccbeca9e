//! The backoff-retry layer: it retries what is retryable with the policy's delays (exact,
//! in paused time), honours `Retry-After` up to `max_interval`, stops at once on a
//! permanent error, gives up after `max_elapsed_time`, starts over after a healthy
//! connection and keeps growing after an unhealthy one; with tower's timeout below it, a
//! silent listener is retried, then given up.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};
use ws_reconnect::{
    BackoffRetry, BackoffRetryLayer, DialKind, Error, ExponentialBackoff, Target,
    TungsteniteConnector,
};

use crate::support::{dead_port, echo, refuse_first, serve, silent_listener, Reply, Server};
use crate::{dial, fast_backoff, refused, retrying, scripted, target, LayerOn};

/// An echo server that refuses the first handshake with `status` and a `Retry-After` of
/// `seconds`.
async fn retry_after_once(status: u16, seconds: &str) -> Server {
    let headers = vec![("retry-after", seconds.to_string())];
    serve(refuse_first(1, status, headers), echo).await
}

/// Dials `url` through `make`, which must connect; returns how long that took.
async fn connects_after(make: &mut BackoffRetry<TungsteniteConnector>, url: &str) -> Duration {
    let started = Instant::now();
    dial(make, target(url)).await.unwrap();
    started.elapsed()
}

#[tokio::test]
async fn a_400_is_rejected_after_exactly_one_attempt() {
    let server = serve(|_| Reply::Status(400, vec![]), echo).await;
    let mut make = retrying(None);
    let err = dial(&mut make, target(&server.url())).await.unwrap_err();
    match err {
        Error::Rejected {
            status, retryable, ..
        } => {
            assert_eq!(status.as_u16(), 400);
            assert!(!retryable);
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert_eq!(server.attempts(), 1);
}

#[tokio::test]
async fn a_503_twice_then_upgrade_connects_on_the_third_attempt() {
    let server = serve(refuse_first(2, 503, vec![]), echo).await;
    let took = connects_after(&mut retrying(None), &server.url()).await;
    assert_eq!(server.attempts(), 3);
    assert_eq!(server.upgrades(), 1);
    // Two delays without jitter: 20 ms + 30 ms.
    assert!(took >= Duration::from_millis(50));
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let server = retry_after_once(429, "1").await;
    let waited = connects_after(&mut retrying(None), &server.url()).await;
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert_eq!(server.attempts(), 2);
}

#[tokio::test]
async fn retry_after_is_capped_by_max_interval() {
    let server = retry_after_once(503, "3600").await;
    let policy = ExponentialBackoff::builder()
        .initial_interval(Duration::from_millis(10))
        .randomization_factor(0.0)
        .max_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut make = BackoffRetryLayer::new(policy).layer_on(TungsteniteConnector::default());
    let waited = connects_after(&mut make, &server.url()).await;
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_dead_port_gives_up_after_max_elapsed_time() {
    let addr = dead_port().await;
    let mut make = retrying(Some(Duration::from_secs(1)));
    let started = Instant::now();
    let err = dial(&mut make, target(&format!("ws://{addr}/")))
        .await
        .unwrap_err();
    let took = started.elapsed();
    match &err {
        Error::GaveUp {
            attempts, source, ..
        } => {
            assert!(*attempts >= 3, "{attempts} attempts");
            assert!(matches!(**source, Error::Transport(_)), "{source:?}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert!(
        took >= Duration::from_millis(500) && took <= Duration::from_millis(2500),
        "{took:?}"
    );
    assert!(std::error::Error::source(&err).is_some());
}

#[tokio::test]
async fn towers_timeout_around_a_silent_listener_is_retried_then_gives_up() {
    let server = silent_listener().await;
    let mut make = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(fast_backoff(Some(
            Duration::from_millis(800),
        ))))
        .timeout(Duration::from_millis(150))
        .service(TungsteniteConnector::default());
    let err = dial(&mut make, target(&server.url())).await.unwrap_err();
    match err {
        Error::GaveUp {
            source, attempts, ..
        } => {
            assert!(matches!(*source, Error::Timeout), "{source:?}");
            assert!(attempts >= 2);
        }
        other => panic!("expected GaveUp(Timeout), got {other:?}"),
    }
    assert!(server.attempts() >= 2);
}

#[tokio::test(start_paused = true)]
async fn backoff_waits_exactly_the_policy_delays() {
    let (svc, calls) = scripted(3, refused);
    let mut make = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(fast_backoff(None)))
        .service(svc);
    let started = Instant::now();
    let attempt = make
        .ready()
        .await
        .unwrap()
        .call(Target::new("ws://x/").unwrap())
        .await
        .unwrap();
    assert_eq!(attempt, 3, "the target carries the attempt number");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    // 20 + 30 + 45 ms, exactly, in paused time.
    assert_eq!(started.elapsed(), Duration::from_millis(95));
}

#[tokio::test(start_paused = true)]
async fn backoff_stops_at_once_on_a_permanent_error() {
    let (svc, calls) = scripted(100, || Error::NotDialed);
    let mut make = BackoffRetryLayer::new(fast_backoff(None)).layer_on(svc);
    let err = make
        .call(Target::new("ws://x/").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotDialed));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_reconnection_waits_and_the_backoff_keeps_growing() {
    let (svc, _calls) = scripted(0, refused);
    let mut make = BackoffRetryLayer::new(fast_backoff(None)).layer_on(svc);
    let t = Target::new("ws://x/")
        .unwrap()
        .with_kind(DialKind::Reconnect);
    // A healthy predecessor: immediate.
    let started = Instant::now();
    make.call(t.clone()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    // Unhealthy predecessors: 20 ms, then 30 ms (growing, not reset).
    let unhealthy = t.with_reset_backoff(false);
    let started = Instant::now();
    make.call(unhealthy.clone()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(20));
    let started = Instant::now();
    make.call(unhealthy).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(30));
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_streak_past_max_elapsed_time_gives_up() {
    let (svc, calls) = scripted(0, refused);
    let mut make =
        BackoffRetryLayer::new(fast_backoff(Some(Duration::from_millis(100)))).layer_on(svc);
    let unhealthy = Target::new("ws://x/").unwrap().with_reset_backoff(false);
    let mut gave_up = false;
    for _ in 0..10 {
        match make.call(unhealthy.clone()).await {
            Ok(_) => {}
            Err(Error::GaveUp { source, .. }) => {
                assert!(matches!(*source, Error::ConnectionLost));
                gave_up = true;
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(gave_up);
    assert!(calls.load(Ordering::SeqCst) < 10);
}
