//! Backoff policies of one's own through `BackoffRetry`: the example's constant delay and
//! decorrelated jitter, and `IterBackoff`, in paused time over scripted services, and a
//! sink that reconnects on their delays.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::SinkExt;
use tokio::time::{timeout, Instant};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use ws_reconnect::{BackoffPolicy, BackoffRetry, BackoffRetryLayer, IterBackoff};
use ws_reconnect::{DialKind, Error, Message, ReconnectingSink, Target};

use crate::custom_backoff::{Constant, DecorrelatedJitter};
use crate::refused;
use crate::support::{mock, BOUND};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A connection factory whose first `fail_first` attempts fail with what `error` gives
/// (then it answers with the attempt number); it records when each attempt was made.
#[derive(Clone)]
struct Flaky {
    fail_first: usize,
    error: fn() -> Error,
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl Flaky {
    fn new(fail_first: usize, error: fn() -> Error) -> Self {
        Flaky {
            fail_first,
            error,
            calls: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// The waits between consecutive attempts.
    fn gaps(&self) -> Vec<Duration> {
        let calls = self.calls.lock().unwrap();
        calls.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

impl Service<Target> for Flaky {
    type Response = u32;
    type Error = Error;
    type Future = std::future::Ready<Result<u32, Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, target: Target) -> Self::Future {
        let mut calls = self.calls.lock().unwrap();
        calls.push(Instant::now());
        std::future::ready(if calls.len() <= self.fail_first {
            Err((self.error)())
        } else {
            Ok(target.attempt())
        })
    }
}

fn unavailable_retry_after_an_hour() -> Error {
    Error::Rejected {
        status: http::StatusCode::SERVICE_UNAVAILABLE,
        retry_after: Some(Duration::from_secs(3600)),
        retryable: true,
    }
}

fn first_dial() -> Target {
    Target::new("ws://x/").unwrap()
}

/// A reconnection after a connection that proved healthy: the backoff starts over.
fn after_healthy() -> Target {
    first_dial().with_kind(DialKind::Reconnect)
}

/// A reconnection after a connection that dropped before it proved healthy.
fn after_unhealthy() -> Target {
    after_healthy().with_reset_backoff(false)
}

async fn call<P: BackoffPolicy>(
    service: &mut BackoffRetry<Flaky, P>,
    target: Target,
) -> Result<u32, Error> {
    service.ready().await?.call(target).await
}

#[tokio::test(start_paused = true)]
async fn a_constant_policy_waits_its_delay_between_attempts() {
    let flaky = Flaky::new(3, refused);
    let mut service = BackoffRetryLayer::new(Constant::new(ms(250))).layer(flaky.clone());
    let started = Instant::now();
    assert_eq!(call(&mut service, first_dial()).await.unwrap(), 3);
    assert_eq!(flaky.gaps(), [ms(250); 3]);
    assert_eq!(started.elapsed(), ms(750));
}

#[tokio::test(start_paused = true)]
async fn decorrelated_jitter_delays_are_the_ones_the_policy_draws() {
    let policy = DecorrelatedJitter::seeded(ms(100), ms(5_000), 7);
    // A clone draws the same delays: what the service must wait.
    let mut twin = policy.clone();
    let expected: Vec<Duration> = (0..8).map(|_| twin.next_delay().unwrap()).collect();
    for (i, d) in expected.iter().enumerate() {
        assert!(*d >= ms(100) && *d <= ms(5_000), "delay {i}: {d:?}");
    }
    assert!(
        expected.windows(2).any(|w| w[0] != w[1]),
        "no jitter: {expected:?}"
    );

    let flaky = Flaky::new(8, refused);
    let mut service = BackoffRetry::new(flaky.clone(), policy);
    assert_eq!(call(&mut service, first_dial()).await.unwrap(), 8);
    assert_eq!(flaky.gaps(), expected);
}

#[tokio::test(start_paused = true)]
async fn a_policy_that_stops_ends_the_call_with_gave_up() {
    let flaky = Flaky::new(usize::MAX, refused);
    let mut service = BackoffRetry::new(flaky.clone(), Constant::new(ms(100)).max_retries(2));
    let err = call(&mut service, first_dial()).await.unwrap_err();
    match err {
        Error::GaveUp {
            attempts,
            elapsed,
            source,
        } => {
            assert_eq!(attempts, 3, "the first attempt and two retries");
            assert_eq!(elapsed, ms(200));
            assert!(matches!(*source, Error::Transport(_)), "{source:?}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert_eq!(flaky.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_healthy_reconnection_resets_the_policy_and_an_unhealthy_one_does_not() {
    let flaky = Flaky::new(0, refused);
    let mut service = BackoffRetry::new(flaky.clone(), Constant::new(ms(100)).max_retries(1));

    // An unhealthy predecessor: the one retry the policy allows is spent waiting.
    let started = Instant::now();
    call(&mut service, after_unhealthy()).await.unwrap();
    assert_eq!(started.elapsed(), ms(100));
    // Another unhealthy one: the policy has run out, no attempt is made.
    let err = call(&mut service, after_unhealthy()).await.unwrap_err();
    assert!(matches!(err, Error::GaveUp { attempts: 0, .. }), "{err:?}");
    assert_eq!(flaky.calls(), 1);

    // A healthy predecessor resets the policy: immediate, and the retry is back.
    let started = Instant::now();
    call(&mut service, after_healthy()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    let started = Instant::now();
    call(&mut service, after_unhealthy()).await.unwrap();
    assert_eq!(started.elapsed(), ms(100));
    assert_eq!(flaky.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_up_to_the_policys_cap() {
    // The trait's default cap, 5 minutes: an hour's Retry-After waits 5 minutes.
    let flaky = Flaky::new(1, unavailable_retry_after_an_hour);
    let mut service = BackoffRetry::new(flaky.clone(), Constant::new(ms(100)));
    call(&mut service, first_dial()).await.unwrap();
    assert_eq!(flaky.gaps(), [Duration::from_secs(300)]);

    // Decorrelated jitter caps it at its own cap.
    let flaky = Flaky::new(1, unavailable_retry_after_an_hour);
    let policy = DecorrelatedJitter::seeded(ms(10), ms(2_000), 1);
    let mut service = BackoffRetry::new(flaky.clone(), policy);
    call(&mut service, first_dial()).await.unwrap();
    assert_eq!(flaky.gaps(), [ms(2_000)]);
}

#[tokio::test(start_paused = true)]
async fn an_iterator_policy_waits_its_schedule_then_gives_up() {
    let flaky = Flaky::new(usize::MAX, refused);
    let schedule = IterBackoff::new(|| [ms(10), ms(20), ms(40)].into_iter());
    let mut service = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(schedule))
        .service(flaky.clone());
    let err = call(&mut service, first_dial()).await.unwrap_err();
    assert!(matches!(err, Error::GaveUp { attempts: 4, .. }), "{err:?}");
    assert_eq!(flaky.gaps(), [ms(10), ms(20), ms(40)]);
    // A first dial starts the schedule over.
    let err = call(&mut service, first_dial()).await.unwrap_err();
    assert!(matches!(err, Error::GaveUp { attempts: 4, .. }), "{err:?}");
    assert_eq!(flaky.calls(), 8);
}

#[tokio::test(start_paused = true)]
async fn a_clone_of_the_service_starts_with_a_fresh_policy() {
    let flaky = Flaky::new(0, refused);
    let mut service = BackoffRetry::new(flaky.clone(), Constant::new(ms(100)).max_retries(1));
    call(&mut service, after_unhealthy()).await.unwrap();
    assert!(call(&mut service, after_unhealthy()).await.is_err());
    let mut fresh = service.clone();
    let started = Instant::now();
    call(&mut fresh, after_unhealthy()).await.unwrap();
    assert_eq!(started.elapsed(), ms(100));
}

/// A sink over `policy` and the mock connection factory, whose reconnection attempts
/// fail (retryably) `failures` times before the mock takes them.
/// It is dialed: connection 0 is up.
async fn sink_over<P>(
    policy: P,
    failures: usize,
) -> (
    impl futures::Sink<Message, Error = Error> + Unpin,
    Arc<mock::Script>,
)
where
    P: BackoffPolicy + 'static,
{
    let script = mock::Script::new();
    let inner = mock::make(script.clone());
    let failed = Arc::new(AtomicUsize::new(0));
    let flaky = tower::service_fn(move |target: Target| {
        let inner = inner.clone();
        let refuse = target.kind() == DialKind::Reconnect
            && failed.fetch_add(1, Ordering::SeqCst) < failures;
        async move {
            if refuse {
                Err(refused())
            } else {
                inner.oneshot(target).await
            }
        }
    });
    let make = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(policy))
        .service(flaky);
    let mut ws = ReconnectingSink::builder()
        .no_keepalive()
        .build_over(make, Target::new("ws://mock/").unwrap());
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    (ws, script)
}

#[tokio::test(start_paused = true)]
async fn a_sink_reconnects_on_the_custom_policys_delays() {
    let (mut ws, script) = sink_over(Constant::new(ms(50)).max_retries(3), 2).await;
    ws.send(Message::text("one")).await.unwrap();
    // The connection dies at the next flush, before it proved healthy: the policy's
    // delay before the first attempt, then two failed attempts, then the third connects.
    script.fail_flush(script.flushes.load(Ordering::SeqCst));
    let started = Instant::now();
    timeout(BOUND, ws.send(Message::text("two")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started.elapsed(), ms(150));
    assert_eq!(script.connects(), 2);
    assert_eq!(script.delivered_texts(), ["one", "two"]);
}

#[tokio::test(start_paused = true)]
async fn a_sink_gives_up_when_the_custom_policy_stops() {
    let (mut ws, script) = sink_over(Constant::new(ms(50)).max_retries(2), usize::MAX).await;
    ws.send(Message::text("one")).await.unwrap();
    script.fail_flush(script.flushes.load(Ordering::SeqCst));
    let err = timeout(BOUND, ws.send(Message::text("two")))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::GaveUp { attempts: 2, .. }), "{err:?}");
    assert_eq!(script.connects(), 1);
}
