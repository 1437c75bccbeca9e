//! Authentication that refreshes: an async request hook awaited for every attempt, told
//! the attempt and the failure before it, and the retry of a 401/403 on a reconnection.
//! Scripted services in paused time where no socket is involved; loopback servers that
//! check an `Authorization` header otherwise.

#[path = "../support/mod.rs"]
mod support;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderMap;
use tokio::time::timeout;
use tower::{Layer, Service, ServiceExt};
use ws_reconnect::retry::{BackoffRetry, BackoffRetryLayer, IterBackoff};
use ws_reconnect::tungstenite::client::IntoClientRequest;
use ws_reconnect::{Attempt, BoxError, ClientRequest, DialKind, Error, HeadersLayer, Target};

use support::BOUND;

fn rejected(status: u16, retryable: bool) -> Error {
    Error::Rejected {
        status: http::StatusCode::from_u16(status).unwrap(),
        retry_after: None,
        retryable,
    }
}

/// A short name for a failure, for comparing what hooks saw.
fn describe(failure: &Error) -> String {
    match failure {
        Error::Rejected { status, .. } => status.as_u16().to_string(),
        other => format!("{other:?}"),
    }
}

/// What a hook saw of one attempt: number, kind, previous failure.
type Seen = (u32, DialKind, Option<String>);

/// Records every attempt a hook is told about.
#[derive(Clone, Default)]
struct HookLog {
    log: Arc<Mutex<Vec<Seen>>>,
}

impl HookLog {
    fn record(&self, attempt: &Attempt) {
        self.log.lock().unwrap().push((
            attempt.number(),
            attempt.kind(),
            attempt.previous_failure().map(describe),
        ));
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// A connection factory without sockets: it resolves the target's request (awaiting its
/// hook, as the connector does), then answers with the next scripted result; once the
/// script is empty it connects. The "connection" is the request it resolved.
#[derive(Clone, Default)]
struct Scripted {
    script: Arc<Mutex<VecDeque<Error>>>,
}

impl Scripted {
    fn failing_with(failures: impl IntoIterator<Item = Error>) -> Self {
        let scripted = Scripted::default();
        scripted.script.lock().unwrap().extend(failures);
        scripted
    }
}

impl Service<Target> for Scripted {
    type Response = ClientRequest;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<ClientRequest, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, target: Target) -> Self::Future {
        let script = Arc::clone(&self.script);
        Box::pin(async move {
            let request = target.resolve().await?;
            match script.lock().unwrap().pop_front() {
                Some(failure) => Err(failure),
                None => Ok(request),
            }
        })
    }
}

/// A hook that records what it is told and builds a request carrying the attempt number.
fn recording_hook(seen: HookLog) -> Target {
    Target::from_async_fn(move |attempt: Attempt| {
        let seen = seen.clone();
        async move {
            // Awaited for real: the record is made after a suspension point.
            tokio::task::yield_now().await;
            seen.record(&attempt);
            let mut request = "ws://auth.test/".into_client_request()?;
            let value = format!("Bearer token-{}", attempt.number());
            request
                .headers_mut()
                .insert("authorization", value.parse()?);
            Ok::<_, BoxError>(request)
        }
    })
}

/// Retries at once, forever.
fn immediate() -> IterBackoff<fn() -> std::iter::Repeat<Duration>, std::iter::Repeat<Duration>> {
    IterBackoff::new(|| std::iter::repeat(Duration::ZERO))
}

#[tokio::test(start_paused = true)]
async fn the_hook_is_awaited_for_each_attempt_and_sees_the_failure_before_it() {
    let seen = HookLog::default();
    let target = recording_hook(seen.clone());
    let scripted = Scripted::failing_with([rejected(503, true), Error::Timeout]);
    let mut service = BackoffRetry::new(scripted.clone(), immediate());

    let request = timeout(BOUND, service.ready().await.unwrap().call(target.clone()))
        .await
        .unwrap()
        .unwrap();
    // The request that connected is the one the last attempt's hook built.
    assert_eq!(request.headers()["authorization"], "Bearer token-2");
    assert_eq!(
        seen.take(),
        [
            (0, DialKind::First, None),
            (1, DialKind::First, Some("503".into())),
            (2, DialKind::First, Some("Timeout".into())),
        ]
    );

    // A new run starts with no previous failure, and says it is a reconnection.
    scripted.script.lock().unwrap().push_back(Error::Timeout);
    let reconnect = target.with_kind(DialKind::Reconnect);
    timeout(BOUND, service.ready().await.unwrap().call(reconnect))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        seen.take(),
        [
            (0, DialKind::Reconnect, None),
            (1, DialKind::Reconnect, Some("Timeout".into())),
        ]
    );
}

/// Calls `service` once with `target`, bounded.
async fn call<S>(service: &mut S, target: Target) -> Result<ClientRequest, Error>
where
    S: Service<Target, Response = ClientRequest, Error = Error>,
{
    timeout(BOUND, service.ready().await?.call(target))
        .await
        .expect("the call hangs")
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_on_a_reconnection_is_retried_with_a_refreshed_request() {
    let seen = HookLog::default();
    let target = recording_hook(seen.clone()).with_kind(DialKind::Reconnect);
    let scripted = Scripted::failing_with([rejected(401, false), rejected(403, false)]);
    let mut service = BackoffRetry::new(scripted, immediate()).refresh_on_unauthorized(2);

    let request = call(&mut service, target).await.unwrap();
    assert_eq!(request.headers()["authorization"], "Bearer token-2");
    assert_eq!(
        seen.take(),
        [
            (0, DialKind::Reconnect, None),
            (1, DialKind::Reconnect, Some("401".into())),
            (2, DialKind::Reconnect, Some("403".into())),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn past_max_tries_the_last_refusal_comes_back_as_it_is() {
    let seen = HookLog::default();
    let target = recording_hook(seen.clone()).with_kind(DialKind::Reconnect);
    let scripted = Scripted::failing_with((0..10).map(|_| rejected(401, false)));
    let mut service = BackoffRetry::new(scripted.clone(), immediate()).refresh_on_unauthorized(2);

    let err = call(&mut service, target.clone()).await.unwrap_err();
    assert!(
        matches!(err, Error::Rejected { status, retryable: false, .. } if status == 401),
        "{err:?}"
    );
    assert_eq!(seen.take().len(), 3, "one attempt and two retries");

    // The count is per reconnection run: the next run gets its retries again.
    call(&mut service, target).await.unwrap_err();
    assert_eq!(seen.take().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_ends_a_first_dial_and_ends_a_reconnection_without_the_setting() {
    let seen = HookLog::default();
    let first = recording_hook(seen.clone());
    let scripted = Scripted::failing_with((0..10).map(|_| rejected(401, false)));

    // A first dial: not retried, even with the setting.
    let mut refreshing =
        BackoffRetry::new(scripted.clone(), immediate()).refresh_on_unauthorized(3);
    let err = call(&mut refreshing, first.clone()).await.unwrap_err();
    assert!(
        matches!(err, Error::Rejected { status, .. } if status == 401),
        "{err:?}"
    );
    assert_eq!(seen.take().len(), 1);

    // A reconnection without the setting: not retried either.
    let mut plain = BackoffRetry::new(scripted, immediate());
    let err = call(&mut plain, first.with_kind(DialKind::Reconnect))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Rejected { status, .. } if status == 401),
        "{err:?}"
    );
    assert_eq!(seen.take().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_retried_waits_the_backoff_and_the_policy_can_run_out_first() {
    let seen = HookLog::default();
    let target = recording_hook(seen.clone()).with_kind(DialKind::Reconnect);
    let scripted = Scripted::failing_with((0..10).map(|_| rejected(403, false)));
    let one_retry = IterBackoff::new(|| std::iter::once(Duration::from_secs(1)));
    let mut service = BackoffRetry::new(scripted, one_retry).refresh_on_unauthorized(5);

    let started = tokio::time::Instant::now();
    let err = call(&mut service, target).await.unwrap_err();
    match err {
        Error::GaveUp {
            attempts, source, ..
        } => {
            assert_eq!(attempts, 2);
            assert!(matches!(*source, Error::Rejected { status, .. } if status == 403));
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    // Paused time: exactly the policy's one delay passed.
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(seen.take().len(), 2);
}

/// The future of a boxed headers hook.
type HeadersHookFuture = Pin<Box<dyn Future<Output = Result<HeaderMap, BoxError>> + Send>>;

/// A headers hook that records what it is told and answers with a token per attempt.
fn recording_headers(seen: HookLog) -> HeadersLayer<impl Fn(Attempt) -> HeadersHookFuture> {
    HeadersLayer::new(move |attempt: Attempt| {
        let seen = seen.clone();
        Box::pin(async move {
            tokio::task::yield_now().await;
            seen.record(&attempt);
            let mut headers = HeaderMap::new();
            let value = format!("Bearer layer-{}", attempt.number());
            headers.insert("authorization", value.parse()?);
            Ok::<_, BoxError>(headers)
        }) as HeadersHookFuture
    })
}

#[tokio::test(start_paused = true)]
async fn the_headers_layer_adds_its_hooks_headers_to_each_retry_below_the_backoff() {
    let seen = HookLog::default();
    let scripted = Scripted::failing_with([rejected(401, false)]);
    let mut service = tower::ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(immediate()).refresh_on_unauthorized(1))
        .layer(recording_headers(seen.clone()))
        .service(scripted.clone());
    // The hook's header replaces the target's own header of that name; others stay.
    let target = Target::new("ws://auth.test/feed")
        .unwrap()
        .header("authorization", "Bearer from-target")
        .unwrap()
        .header("x-client", "test")
        .unwrap()
        .with_kind(DialKind::Reconnect);

    let request = call(&mut service, target).await.unwrap();
    let auth: Vec<_> = request.headers().get_all("authorization").iter().collect();
    assert_eq!(auth, ["Bearer layer-1"]);
    assert_eq!(request.headers()["x-client"], "test");
    assert_eq!(request.uri().path(), "/feed");
    assert_eq!(
        seen.take(),
        [
            (0, DialKind::Reconnect, None),
            (1, DialKind::Reconnect, Some("401".into())),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_headers_layer_resolves_an_async_target_before_its_own_hook() {
    let target_seen = HookLog::default();
    let layer_seen = HookLog::default();
    let mut service = recording_headers(layer_seen.clone()).layer(Scripted::default());
    let target = recording_hook(target_seen.clone()).with_attempt(4);

    let request = call(&mut service, target).await.unwrap();
    assert_eq!(request.headers()["authorization"], "Bearer layer-4");
    assert_eq!(target_seen.take(), [(4, DialKind::First, None)]);
    assert_eq!(layer_seen.take(), [(4, DialKind::First, None)]);
}

#[tokio::test(start_paused = true)]
async fn a_headers_hooks_error_is_a_request_error_and_the_inner_service_is_not_called() {
    let inner_calls = Arc::new(Mutex::new(0));
    let counted = inner_calls.clone();
    let inner = tower::service_fn(move |_: Target| {
        *counted.lock().unwrap() += 1;
        async { Ok::<_, Error>(ClientRequest::new(())) }
    });
    let mut service = tower::ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(immediate()))
        .layer(HeadersLayer::new(|_: Attempt| async {
            Err::<HeaderMap, _>(BoxError::from("identity provider down"))
        }))
        .service(inner);

    let err = call(&mut service, Target::new("ws://auth.test/").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Request(_)), "{err:?}");
    assert!(err.to_string().contains("identity provider down"), "{err}");
    assert_eq!(
        *inner_calls.lock().unwrap(),
        0,
        "not retried, nothing dialed"
    );
}
