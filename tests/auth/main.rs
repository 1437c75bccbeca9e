//! Authentication that refreshes: an async request hook awaited for every attempt, told
//! the attempt and the failure before it, and the retry of a 401/403 on a reconnection.
//! Scripted services in paused time where no socket is involved; loopback servers that
//! check an `Authorization` header otherwise.

#[path = "../support/mod.rs"]
mod support;

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tower::{Layer, Service, ServiceExt};
use ws_reconnect::tungstenite::client::IntoClientRequest;
use ws_reconnect::{
    Attempt, BoxError, Builder, ClientRequest, DialKind, Error, HeadersLayer, Message,
    ReconnectingSink, StatusPolicy, Target,
};
use ws_reconnect::{BackoffRetry, BackoffRetryLayer, IterBackoff};

use support::{eventually, Log, BOUND};

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

// ---------------------------------------------------------------------------------------
// Loopback: a server that checks the token, an identity provider that issues them.

/// A WebSocket server that upgrades a handshake only when its `Authorization` is
/// `Bearer <the current token>`, and answers 401 otherwise (the first `unavailable`
/// handshakes get a 503 whatever they carry). Each upgraded connection sends
/// `welcome <n>` (n counts upgrades from 0), then records the text it receives.
/// [`rotate`](Self::rotate) changes the token and drops every open connection without a
/// Close frame, as a server that revoked its sessions does.
struct AuthServer {
    addr: SocketAddr,
    token: Arc<Mutex<String>>,
    /// The `Authorization` of every handshake, in order (`-` when there was none).
    presented: Arc<Mutex<Vec<String>>>,
    log: Log,
    kick: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AuthServer {
    async fn start(token: &str, unavailable: usize) -> AuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = Arc::new(Mutex::new(token.to_owned()));
        let presented = Arc::new(Mutex::new(Vec::new()));
        let log = Log::default();
        let (kick, kicked) = watch::channel(0);
        let (t, p, l) = (token.clone(), presented.clone(), log.clone());
        let task =
            tokio::spawn(async move {
                let mut tasks = tokio::task::JoinSet::new();
                let upgrades = Arc::new(AtomicUsize::new(0));
                while let Ok((tcp, _)) = listener.accept().await {
                    let (token, presented, log) = (t.clone(), p.clone(), l.clone());
                    let (mut kicked, upgrades) = (kicked.clone(), upgrades.clone());
                    tasks.spawn(async move {
                    // tungstenite's callback signature fixes the error type.
                    #[allow(clippy::result_large_err)]
                    let check = move |request: &Request, response: Response| {
                        let shown = request
                            .headers()
                            .get("authorization")
                            .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned());
                        let mut presented = presented.lock().unwrap();
                        presented.push(shown.clone());
                        let status = if presented.len() <= unavailable {
                            503
                        } else if shown == format!("Bearer {}", token.lock().unwrap()) {
                            return Ok(response);
                        } else {
                            401
                        };
                        let mut refusal = ErrorResponse::new(Some("refused".into()));
                        *refusal.status_mut() = http::StatusCode::from_u16(status).unwrap();
                        Err(refusal)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, check).await else {
                        return;
                    };
                    let conn = upgrades.fetch_add(1, Ordering::SeqCst);
                    kicked.borrow_and_update();
                    if ws.send(Message::text(format!("welcome {conn}"))).await.is_err() {
                        return;
                    }
                    loop {
                        tokio::select! {
                            _ = kicked.changed() => return, // dropped: no Close frame
                            message = ws.next() => match message {
                                Some(Ok(Message::Text(text))) => log.push(conn, text.to_string()),
                                Some(Ok(_)) => {}
                                _ => return,
                            },
                        }
                    }
                });
                }
            });
        AuthServer {
            addr,
            token,
            presented,
            log,
            kick,
            task,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/feed", self.addr)
    }

    /// Accepts only `token` from now on and drops every open connection.
    fn rotate(&self, token: &str) {
        *self.token.lock().unwrap() = token.to_owned();
        self.kick.send_modify(|generation| *generation += 1);
    }

    fn presented(&self) -> Vec<String> {
        self.presented.lock().unwrap().clone()
    }
}

/// An identity provider: every fetch issues the next token, `t1`, `t2`, …
#[derive(Clone, Default)]
struct Idp {
    issued: Arc<AtomicUsize>,
}

impl Idp {
    async fn fetch(&self) -> String {
        tokio::task::yield_now().await; // stands in for an HTTP call
        format!("t{}", self.issued.fetch_add(1, Ordering::SeqCst) + 1)
    }

    fn fetches(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}

/// The client's hook: reuses its cached token, and fetches one when it has none or the
/// server refused the last one. Records what it is told.
fn token_hook(
    idp: Idp,
    seen: HookLog,
) -> impl Fn(Attempt) -> HeadersHookFuture + Send + Sync + 'static {
    let cached = Arc::new(Mutex::new(None::<String>));
    move |attempt: Attempt| {
        let (idp, seen, cached) = (idp.clone(), seen.clone(), cached.clone());
        Box::pin(async move {
            seen.record(&attempt);
            let reuse = cached.lock().unwrap().clone();
            let token = match reuse {
                Some(token) if !attempt.after_unauthorized() => token,
                _ => {
                    let token = idp.fetch().await;
                    *cached.lock().unwrap() = Some(token.clone());
                    token
                }
            };
            let mut headers = HeaderMap::new();
            headers.insert("authorization", format!("Bearer {token}").parse()?);
            Ok::<_, BoxError>(headers)
        }) as HeadersHookFuture
    }
}

fn quick() -> Builder {
    ReconnectingSink::builder()
        .initial_interval(Duration::from_millis(10))
        .randomization_factor(0.0)
        .max_interval(Duration::from_millis(100))
        .healthy_after(Duration::ZERO)
        .no_proxy()
}

/// The next item of the stream, bounded.
async fn next(ws: &mut ReconnectingSink) -> Option<Result<Message, Error>> {
    timeout(BOUND, ws.next()).await.expect("the stream hangs")
}

fn bearer(tokens: &[&str]) -> Vec<String> {
    tokens.iter().map(|t| format!("Bearer {t}")).collect()
}

fn is_401(item: &Option<Result<Message, Error>>) -> bool {
    matches!(item, Some(Err(Error::Rejected { status, retryable: false, .. })) if *status == 401)
}

#[tokio::test]
async fn the_hooks_request_reaches_the_server_on_every_attempt() {
    let server = AuthServer::start("t1", 2).await;
    let seen = HookLog::default();
    let idp = Idp::default();
    // The whole request from the hook, through build_with.
    let hook = token_hook(idp.clone(), seen.clone());
    let url = server.url();
    let target = Target::from_async_fn(move |attempt: Attempt| {
        let headers = hook(attempt);
        let url = url.clone();
        async move {
            let mut request = url.into_client_request()?;
            request.headers_mut().extend(headers.await?);
            Ok::<_, BoxError>(request)
        }
    });
    let mut ws = timeout(BOUND, quick().connect_with(target))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        next(&mut ws).await.unwrap().unwrap(),
        Message::text("welcome 0")
    );
    // Two 503s, then the token is accepted; the hook ran once per attempt.
    assert_eq!(server.presented(), bearer(&["t1", "t1", "t1"]));
    assert_eq!(
        seen.take(),
        [
            (0, DialKind::First, None),
            (1, DialKind::First, Some("503".into())),
            (2, DialKind::First, Some("503".into())),
        ]
    );
    assert_eq!(idp.fetches(), 1, "a 503 is no reason to refresh");
}

/// A client of `server` whose headers come from a fresh provider through `token_hook`,
/// with `refresh` as its `refresh_on_unauthorized` (none when `None`), connected and past
/// the server's welcome.
async fn token_client(
    server: &AuthServer,
    refresh: Option<u32>,
) -> (HookLog, Idp, ReconnectingSink) {
    let seen = HookLog::default();
    let idp = Idp::default();
    let builder = quick().headers_with(token_hook(idp.clone(), seen.clone()));
    let builder = match refresh {
        Some(tries) => builder.refresh_on_unauthorized(tries),
        None => builder,
    };
    let mut ws = timeout(BOUND, builder.connect(server.url()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        next(&mut ws).await.unwrap().unwrap(),
        Message::text("welcome 0")
    );
    (seen, idp, ws)
}

#[tokio::test]
async fn a_token_refreshed_after_a_401_on_a_reconnection_lets_the_sink_carry_on() {
    let server = AuthServer::start("t1", 0).await;
    let (seen, idp, mut ws) = token_client(&server, Some(2)).await;
    timeout(BOUND, ws.send(Message::text("before")))
        .await
        .unwrap()
        .unwrap();
    eventually("the server got 'before'", || server.log.len() == 1).await;

    // The server revokes the session and now wants the token the provider issues next.
    server.rotate("t2");
    // Reading lets the sink notice the drop and reconnect: 401 with the cached token,
    // then the refreshed one is accepted.
    assert_eq!(
        next(&mut ws).await.unwrap().unwrap(),
        Message::text("welcome 1")
    );
    timeout(BOUND, ws.send(Message::text("after")))
        .await
        .unwrap()
        .unwrap();
    eventually("the server got 'after'", || server.log.len() == 2).await;

    assert_eq!(
        server.log.entries(),
        [(0, "before".to_owned()), (1, "after".to_owned())]
    );
    assert_eq!(server.presented(), bearer(&["t1", "t1", "t2"]));
    assert_eq!(
        seen.take(),
        [
            (0, DialKind::First, None),
            (0, DialKind::Reconnect, None),
            (1, DialKind::Reconnect, Some("401".into())),
        ]
    );
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn without_the_setting_a_401_on_a_reconnection_ends_the_stream() {
    let server = AuthServer::start("t1", 0).await;
    let (seen, _idp, mut ws) = token_client(&server, None).await;

    server.rotate("t2");
    let item = next(&mut ws).await;
    assert!(is_401(&item), "{item:?}");
    assert!(next(&mut ws).await.is_none(), "the stream ends");
    assert_eq!(server.presented(), bearer(&["t1", "t1"]));
    assert_eq!(seen.take().len(), 2);
}

#[tokio::test]
async fn past_max_tries_a_401_on_a_reconnection_ends_the_stream_the_same_way() {
    let server = AuthServer::start("t1", 0).await;
    let (seen, idp, mut ws) = token_client(&server, Some(2)).await;

    // A token the provider never issues: every refresh is refused too.
    server.rotate("revoked-for-good");
    let item = next(&mut ws).await;
    assert!(is_401(&item), "{item:?}");
    assert!(next(&mut ws).await.is_none(), "the stream ends");
    // The reconnection: one attempt and two refreshed retries.
    assert_eq!(server.presented(), bearer(&["t1", "t1", "t2", "t3"]));
    let reconnection: Vec<Seen> = seen.take().into_iter().skip(1).collect();
    assert_eq!(
        reconnection,
        [
            (0, DialKind::Reconnect, None),
            (1, DialKind::Reconnect, Some("401".into())),
            (2, DialKind::Reconnect, Some("401".into())),
        ]
    );
    assert_eq!(idp.fetches(), 3);
}

#[tokio::test]
async fn a_first_dial_refused_with_401_is_not_retried_unless_the_status_policy_says_so() {
    // The server wants the second token the provider issues; the first dial brings the
    // first one.
    let server = AuthServer::start("t2", 0).await;
    let idp = Idp::default();
    let err = timeout(
        BOUND,
        quick()
            .headers_with(token_hook(idp.clone(), HookLog::default()))
            .refresh_on_unauthorized(3) // reconnections only
            .connect(server.url()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(is_401(&Some(Err(err))));
    assert_eq!(server.presented(), bearer(&["t1"]));

    // A status policy that calls 401 retryable: the first dial is retried, and the hook,
    // told of the refusal, refreshes the token.
    let server = AuthServer::start("t2", 0).await;
    let retry_401 = StatusPolicy::from_fn(|status| {
        status == http::StatusCode::UNAUTHORIZED || StatusPolicy::default().is_retryable(status)
    });
    let mut ws = timeout(
        BOUND,
        quick()
            .headers_with(token_hook(Idp::default(), HookLog::default()))
            .status_policy(retry_401)
            .connect(server.url()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        next(&mut ws).await.unwrap().unwrap(),
        Message::text("welcome 0")
    );
    assert_eq!(server.presented(), bearer(&["t1", "t2"]));
}

#[tokio::test]
async fn the_hooks_own_error_is_a_request_error_and_nothing_is_dialed() {
    let server = AuthServer::start("t1", 0).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let err = timeout(
        BOUND,
        quick()
            .headers_with(move |_: Attempt| {
                counted.fetch_add(1, Ordering::SeqCst);
                async { Err::<HeaderMap, _>(BoxError::from("identity provider down")) }
            })
            .connect(server.url()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(&err, Error::Request(_)), "{err:?}");
    assert!(err.to_string().contains("identity provider down"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "not retried");
    assert!(server.presented().is_empty(), "nothing dialed");
}

/// Counts the hook futures started and those dropped before they finished.
#[derive(Clone, Default)]
struct Lifecycle {
    started: Arc<AtomicUsize>,
    cancelled: Arc<AtomicUsize>,
}

struct CancelGuard(Arc<AtomicUsize>);

impl Drop for CancelGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_hook_is_bounded_by_the_connect_timeout_and_retried() {
    // The hook never finishes, so the host is never looked up nor dialed: no socket is
    // involved and paused time is exact.
    let lifecycle = Lifecycle::default();
    let hook_lifecycle = lifecycle.clone();
    let mut ws = ReconnectingSink::builder()
        .connect_timeout(Duration::from_secs(1))
        .initial_interval(Duration::from_millis(100))
        .randomization_factor(0.0)
        .max_elapsed_time(Some(Duration::from_millis(2500)))
        .headers_with(move |_: Attempt| {
            let lifecycle = hook_lifecycle.clone();
            async move {
                lifecycle.started.fetch_add(1, Ordering::SeqCst);
                let _guard = CancelGuard(lifecycle.cancelled.clone());
                std::future::pending::<()>().await;
                Ok::<_, BoxError>(HeaderMap::new())
            }
        })
        .build("ws://never-dialed.invalid/")
        .unwrap();

    let err = timeout(BOUND, ws.dial()).await.unwrap().unwrap_err();
    match err {
        Error::GaveUp {
            attempts, source, ..
        } => {
            assert!(matches!(*source, Error::Timeout), "{source:?}");
            assert!(attempts >= 2, "a timed-out hook is retried: {attempts}");
            assert_eq!(lifecycle.started.load(Ordering::SeqCst), attempts as usize);
        }
        other => panic!("expected GaveUp after timeouts, got {other:?}"),
    }
    assert_eq!(
        lifecycle.cancelled.load(Ordering::SeqCst),
        lifecycle.started.load(Ordering::SeqCst),
        "every slow hook was dropped by the timeout"
    );
}
