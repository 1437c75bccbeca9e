//! The foundation: connector, backoff and limiter layers, alone and composed.

#[path = "../support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use tower::{Service, ServiceBuilder, ServiceExt};
use ws_reconnect::{
    BackoffRetry, BackoffRetryLayer, DialKind, Error, ExponentialBackoff, Message, ReconnectBudget,
    ReconnectLimitLayer, Target, TungsteniteConnector,
};

use support::{dead_port, echo, refuse_first, serve, silent_listener, Reply, Server, BOUND};

fn fast_backoff(max_elapsed: Option<Duration>) -> ExponentialBackoff {
    ExponentialBackoff::builder()
        .initial_interval(Duration::from_millis(20))
        .randomization_factor(0.0)
        .multiplier(1.5)
        .max_interval(Duration::from_secs(5))
        .max_elapsed_time(max_elapsed)
        .build()
        .unwrap()
}

/// The target for `url`, which must be valid.
fn target(url: &str) -> Target {
    Target::new(url).unwrap()
}

/// One call of `make` for `target`, bounded by [`BOUND`].
async fn dial<S>(make: &mut S, target: Target) -> Result<S::Response, S::Error>
where
    S: Service<Target>,
{
    timeout(BOUND, make.call(target))
        .await
        .expect("the dial hung")
}

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

/// The default connector behind a backoff-retry layer with [`fast_backoff`].
fn retrying(max_elapsed: Option<Duration>) -> BackoffRetry<TungsteniteConnector> {
    BackoffRetryLayer::new(fast_backoff(max_elapsed)).layer_on(TungsteniteConnector::default())
}

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

trait LayerOn {
    fn layer_on<S>(self, s: S) -> ws_reconnect::BackoffRetry<S>;
}
impl LayerOn for BackoffRetryLayer {
    fn layer_on<S>(self, s: S) -> ws_reconnect::BackoffRetry<S> {
        tower::Layer::layer(&self, s)
    }
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

// ---- paused time, no sockets -------------------------------------------------------

/// A connection factory that fails `fail_first` times with a retryable error, then
/// succeeds with the attempt number; counts calls.
fn scripted(
    fail_first: u32,
    error: fn() -> Error,
) -> (
    impl Service<
            Target,
            Response = u32,
            Error = Error,
            Future = impl std::future::Future<Output = Result<u32, Error>> + Send,
        > + Clone,
    Arc<AtomicU32>,
) {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let svc = tower::service_fn(move |t: Target| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < fail_first {
                Err(error())
            } else {
                Ok(t.attempt())
            }
        }
    });
    (svc, calls)
}

fn refused() -> Error {
    Error::Transport(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into())
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

fn reconnect() -> Target {
    Target::new("ws://x/")
        .unwrap()
        .with_kind(DialKind::Reconnect)
}

#[tokio::test(start_paused = true)]
async fn limiter_fills_rejects_and_slides_one_slot_at_a_time() {
    let (svc, calls) = scripted(0, refused);
    let mut make = ReconnectLimitLayer::new(3, Duration::from_secs(10)).layer_on_limit(svc);
    // First dials are never counted.
    for _ in 0..5 {
        make.call(Target::new("ws://x/").unwrap()).await.unwrap();
    }
    for _ in 0..3 {
        make.call(reconnect()).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let t_full = Instant::now();
    match make.call(reconnect()).await {
        Err(Error::TooManyReconnects {
            max_total: 3,
            retry_at: Some(at),
            ..
        }) => {
            // The first reconnection was at t_full - 3 s; it leaves at +10 s.
            assert_eq!(
                at,
                t_full - Duration::from_secs(3) + Duration::from_secs(10)
            );
        }
        other => panic!("expected TooManyReconnects, got {other:?}"),
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        8,
        "a refused call never reaches the inner service"
    );
    tokio::time::advance(Duration::from_secs(7)).await;
    assert!(make.budget().can_connect());
    make.call(reconnect()).await.unwrap();
    assert!(!make.budget().can_connect(), "one slot freed, not all");
    assert!(make.call(reconnect()).await.is_err());
}

trait LimitOn {
    fn layer_on_limit<S>(self, s: S) -> ws_reconnect::ReconnectLimit<S>;
}
impl LimitOn for ReconnectLimitLayer {
    fn layer_on_limit<S>(self, s: S) -> ws_reconnect::ReconnectLimit<S> {
        tower::Layer::layer(&self, s)
    }
}

#[tokio::test(start_paused = true)]
async fn limiter_budget_is_shared_across_services() {
    let limiter = ReconnectBudget::new(2, Duration::from_secs(60));
    let layer = ReconnectLimitLayer::with_budget(limiter.clone());
    let (a, _) = scripted(0, refused);
    let (b, _) = scripted(0, refused);
    let mut a = layer.clone().layer_on_limit(a);
    let mut b = layer.layer_on_limit(b);
    a.call(reconnect()).await.unwrap();
    b.call(reconnect()).await.unwrap();
    assert!(matches!(
        a.call(reconnect()).await,
        Err(Error::TooManyReconnects { .. })
    ));
    assert!(matches!(
        b.call(reconnect()).await,
        Err(Error::TooManyReconnects { .. })
    ));
    assert_eq!(limiter.used(), 2);
    // ...while `new` gives each service its own budget.
    let per = ReconnectLimitLayer::new(1, Duration::from_secs(60));
    let (c, _) = scripted(0, refused);
    let (d, _) = scripted(0, refused);
    per.clone()
        .layer_on_limit(c)
        .call(reconnect())
        .await
        .unwrap();
    per.layer_on_limit(d).call(reconnect()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn limiter_with_zero_forbids_every_reconnection_but_not_the_first_dial() {
    let (svc, _) = scripted(0, refused);
    let mut make = ReconnectLimitLayer::new(0, Duration::from_secs(60)).layer_on_limit(svc);
    make.call(Target::new("ws://x/").unwrap()).await.unwrap();
    assert!(matches!(
        make.call(reconnect()).await,
        Err(Error::TooManyReconnects { retry_at: None, .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_reconnection_counts_once_however_many_attempts_its_backoff_makes() {
    // Limiter outside the backoff (the documented order) and inside it: both count once.
    let (svc, calls) = scripted(4, refused);
    let mut outer = ServiceBuilder::new()
        .layer(ReconnectLimitLayer::new(1, Duration::from_secs(60)))
        .layer(BackoffRetryLayer::new(fast_backoff(None)))
        .service(svc);
    outer.call(reconnect()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(outer.budget().used(), 1);

    let limiter = ReconnectBudget::new(1, Duration::from_secs(60));
    let (svc, calls) = scripted(4, refused);
    let mut inner = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(fast_backoff(None)))
        .layer(ReconnectLimitLayer::with_budget(limiter.clone()))
        .service(svc);
    inner.call(reconnect()).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(limiter.used(), 1);
}

#[tokio::test]
async fn limiter_can_connect_has_no_side_effect() {
    let limiter = ReconnectBudget::new(1, Duration::from_secs(60));
    for _ in 0..10 {
        assert!(limiter.can_connect());
    }
    assert_eq!(limiter.used(), 0);
}
