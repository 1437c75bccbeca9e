//! The reconnect-limit layer: a sliding window of reconnections (first dials are not
//! counted), its budget shared across services, a limit of 0, one count per
//! reconnection however many attempts its backoff makes, and `can_connect` without side
//! effects.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tower::{Service, ServiceBuilder};
use ws_reconnect::{
    BackoffRetryLayer, DialKind, Error, ReconnectBudget, ReconnectLimitLayer, Target,
};

use crate::{fast_backoff, refused, scripted, LimitOn};

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
