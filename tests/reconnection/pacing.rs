//! No path dials without its backoff, and a failure for good is terminal: a property test over random sequences of events (refusals for good, retryable
//! refusals, 401 with a refresh, resets, Close frames, writes and reads from both halves,
//! `dial()`, and the handle's sends and close), on paused time against a scripted
//! connection factory behind the real backoff and limit layers. Whatever the sequence:
//! two attempts are never closer than the backoff's first delay unless the user asked
//! for a dial in between; no attempt follows a failure for good until `dial()`; every
//! outcome resolves by the end.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use proptest::prelude::*;
use tokio::time::{timeout, Instant};
use ws_reconnect::{
    BackoffRetry, BackoffRetryLayer, ConnectionState, Delivery, Error, ExponentialBackoff, Message,
    ReconnectLimit, ReconnectLimitLayer, ReconnectingSink, Target,
};

/// The backoff's first delay: no two attempts closer than this without a `dial()`.
const FIRST_DELAY: Duration = Duration::from_millis(100);

/// How the scripted server answers the attempts from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Upgrade,
    /// HTTP 400: for good.
    BadRequest,
    /// HTTP 503: retryable.
    Unavailable,
    /// HTTP 401: for good, but retried once on a reconnection (refresh).
    Unauthorized,
    /// The port is closed: retryable.
    Unreachable,
}

#[derive(Default)]
struct Server {
    answer: Mutex<Option<Answer>>,
    /// When each attempt came.
    attempts: Mutex<Vec<Instant>>,
    /// When the user called `dial()`.
    dials: Mutex<Vec<Instant>>,
    /// The live connection's inbound side: a frame, an error, or (dropped) EOF.
    peer: Mutex<Option<mpsc::UnboundedSender<Result<Message, io::Error>>>>,
}

impl Server {
    fn answer(&self) -> Answer {
        self.answer.lock().unwrap().unwrap_or(Answer::Upgrade)
    }

    fn attempts(&self) -> usize {
        self.attempts.lock().unwrap().len()
    }

    /// Ends the live connection: a reset, a Close frame with `code`, or EOF.
    fn end(&self, how: Ending) {
        let Some(peer) = self.peer.lock().unwrap().take() else {
            return;
        };
        let item = match how {
            Ending::Reset => Err(io::Error::from(io::ErrorKind::ConnectionReset)),
            Ending::Close(code) => Ok(Message::Close(Some(
                ws_reconnect::tungstenite::protocol::CloseFrame {
                    code: code.into(),
                    reason: "".into(),
                },
            ))),
            Ending::Eof => return,
        };
        let _ = peer.unbounded_send(item);
    }

    /// Checks the attempts against the backoff: two consecutive attempts at least
    /// [`FIRST_DELAY`] apart unless a `dial()` came between them.
    fn check_spacing(&self) -> Result<(), TestCaseError> {
        let attempts = self.attempts.lock().unwrap();
        let dials = self.dials.lock().unwrap();
        for pair in attempts.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let dialed_between = dials.iter().any(|&d| d >= a && d <= b);
            prop_assert!(
                b - a >= FIRST_DELAY || dialed_between,
                "two attempts {:?} apart with no dial() between them (attempts at {:?})",
                b - a,
                attempts
                    .iter()
                    .map(|t| t.duration_since(attempts[0]))
                    .collect::<Vec<_>>()
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Ending {
    Reset,
    Close(u16),
    Eof,
}

/// A connection that takes every write and yields what the test's [`Server`] sends.
struct Conn {
    rx: mpsc::UnboundedReceiver<Result<Message, io::Error>>,
}

impl Sink<Message> for Conn {
    type Error = io::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, _: Message) -> io::Result<()> {
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Stream for Conn {
    type Item = Result<Message, io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_next_unpin(cx)
    }
}

#[derive(Clone)]
struct Make(Arc<Server>);

impl tower::Service<Target> for Make {
    type Response = Conn;
    type Error = Error;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Conn, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Target) -> Self::Future {
        let server = self.0.clone();
        server.attempts.lock().unwrap().push(Instant::now());
        let rejected = |status: u16, retryable| Error::Rejected {
            status: http::StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            retryable,
        };
        let answer = match server.answer() {
            Answer::Upgrade => {
                let (tx, rx) = mpsc::unbounded();
                *server.peer.lock().unwrap() = Some(tx);
                Ok(Conn { rx })
            }
            Answer::BadRequest => Err(rejected(400, false)),
            Answer::Unavailable => Err(rejected(503, true)),
            Answer::Unauthorized => Err(rejected(401, false)),
            Answer::Unreachable => Err(Error::Transport(ws_reconnect::tungstenite::Error::Io(
                io::ErrorKind::ConnectionRefused.into(),
            ))),
        };
        Box::pin(async move { answer })
    }
}

/// The sink over the scripted server, behind the real layers: a limit of `max_total`
/// reconnections per 10 s, an exponential backoff from [`FIRST_DELAY`] (no randomness,
/// giving up after 3 s of failures), one refreshed retry of a 401.
fn sink(
    server: &Arc<Server>,
    max_total: usize,
) -> ReconnectingSink<ReconnectLimit<BackoffRetry<Make>>> {
    let backoff = ExponentialBackoff::builder()
        .initial_interval(FIRST_DELAY)
        .randomization_factor(0.0)
        .multiplier(2.0)
        .max_interval(Duration::from_secs(1))
        .max_elapsed_time(Some(Duration::from_secs(3)))
        .build()
        .unwrap();
    let stack = tower::ServiceBuilder::new()
        .layer(ReconnectLimitLayer::new(max_total, Duration::from_secs(10)))
        .layer(BackoffRetryLayer::new(backoff).refresh_on_unauthorized(1))
        .service(Make(server.clone()));
    ReconnectingSink::new(stack, Target::new("ws://scripted/").unwrap())
}

#[derive(Debug, Clone)]
enum Event {
    Answer(Answer),
    End(Ending),
    /// The writer sends (through the sink, or a handle's `deliver`).
    Write,
    /// The reader takes what is there.
    Read,
    /// The user dials (sink only: a handle cannot).
    Dial,
    /// Time passes, in milliseconds.
    Wait(u16),
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        3 => Just(Answer::Upgrade),
        1 => Just(Answer::BadRequest),
        1 => Just(Answer::Unavailable),
        1 => Just(Answer::Unauthorized),
        1 => Just(Answer::Unreachable),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        2 => answer().prop_map(Event::Answer),
        1 => Just(Event::End(Ending::Reset)),
        1 => Just(Event::End(Ending::Eof)),
        1 => prop_oneof![Just(1000u16), Just(1001), Just(1008), Just(1012)]
            .prop_map(|c| Event::End(Ending::Close(c))),
        3 => Just(Event::Write),
        2 => Just(Event::Read),
        1 => Just(Event::Dial),
        3 => (0u16..400).prop_map(Event::Wait),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// A step of user work, bounded: whatever it waits for, it stops after `STEP` of
/// (paused) time.
const STEP: Duration = Duration::from_millis(30);

/// After a failure for good, nothing dials until the next `dial()`.
fn failed_for_good(ws_state: &ConnectionState) -> bool {
    matches!(ws_state, ConnectionState::GaveUp { .. })
}

fn run_sink(events: Vec<Event>, max_total: usize) -> Result<(), TestCaseError> {
    runtime().block_on(async move {
        let server = Arc::new(Server::default());
        let mut ws = sink(&server, max_total);
        let state = ws.state();
        server.dials.lock().unwrap().push(Instant::now());
        let _ = timeout(STEP, ws.dial()).await;
        let mut sent = 0u32;
        for event in events {
            let gave_up_at = failed_for_good(&state.borrow()).then(|| server.attempts());
            let mut dialed = false;
            match event {
                Event::Answer(a) => *server.answer.lock().unwrap() = Some(a),
                Event::End(how) => server.end(how),
                Event::Write => {
                    sent += 1;
                    let _ = timeout(STEP, ws.send(Message::text(sent.to_string()))).await;
                }
                Event::Read => {
                    let _ = timeout(STEP, ws.next()).await;
                }
                Event::Dial => {
                    dialed = true;
                    server.dials.lock().unwrap().push(Instant::now());
                    let _ = timeout(STEP, ws.dial()).await;
                }
                Event::Wait(ms) => {
                    // Time passes while both halves are polled now and then, as an
                    // application that reads and writes would.
                    let end = Instant::now() + Duration::from_millis(ms.into());
                    while Instant::now() < end {
                        let step = Instant::now() + STEP;
                        let _ = tokio::time::timeout_at(step, ws.next()).await;
                        let _ = ws.flush().now_or_never();
                        tokio::time::sleep_until(step).await;
                    }
                }
            }
            if let (Some(seen), false) = (gave_up_at, dialed) {
                prop_assert_eq!(
                    server.attempts(),
                    seen,
                    "an attempt after a failure for good without dial()"
                );
            }
            server.check_spacing()?;
        }
        let _ = timeout(Duration::from_secs(10), ws.close()).await;
        Ok(())
    })
}

fn run_handle(events: Vec<Event>, max_total: usize) -> Result<(), TestCaseError> {
    runtime().block_on(async move {
        let server = Arc::new(Server::default());
        let ws = sink(&server, max_total);
        let state = ws.state();
        server.dials.lock().unwrap().push(Instant::now());
        let (handle, mut incoming) = ws.spawn();
        let reader = tokio::spawn(async move { while incoming.next().await.is_some() {} });
        let mut outcomes: VecDeque<Delivery> = VecDeque::new();
        let mut sent = 0u32;
        for event in events {
            let gave_up_at = failed_for_good(&state.borrow()).then(|| server.attempts());
            match event {
                Event::Answer(a) => *server.answer.lock().unwrap() = Some(a),
                Event::End(how) => server.end(how),
                Event::Write => {
                    sent += 1;
                    if let Ok(Ok(delivery)) =
                        timeout(STEP, handle.deliver(Message::text(sent.to_string()))).await
                    {
                        outcomes.push_back(delivery);
                    }
                }
                // The task reads on its own; a dial is not the handle's to ask for.
                Event::Read | Event::Dial => tokio::time::sleep(STEP).await,
                Event::Wait(ms) => tokio::time::sleep(Duration::from_millis(ms.into())).await,
            }
            if let Some(seen) = gave_up_at {
                prop_assert_eq!(
                    server.attempts(),
                    seen,
                    "an attempt after a failure for good"
                );
            }
            server.check_spacing()?;
        }
        let shutdown = timeout(Duration::from_secs(30), handle.close()).await;
        prop_assert!(shutdown.is_ok(), "close() did not end");
        for delivery in outcomes {
            let outcome = timeout(Duration::from_secs(1), delivery).await;
            prop_assert!(outcome.is_ok(), "an outcome never resolved");
        }
        let ended = timeout(Duration::from_secs(1), reader).await;
        prop_assert!(ended.is_ok(), "the incoming stream did not end");
        server.check_spacing()?;
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: crate::support::env_or("WS_RECONNECT_PROPTEST_CASES", 128),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_sink_never_dials_faster_than_its_backoff(
        events in prop::collection::vec(event(), 1..60),
        max_total in prop_oneof![Just(0usize), Just(2), Just(1000)],
    ) {
        run_sink(events, max_total)?;
    }

    #[test]
    fn the_handle_never_dials_faster_than_its_backoff(
        events in prop::collection::vec(event(), 1..60),
        max_total in prop_oneof![Just(0usize), Just(2), Just(1000)],
    ) {
        run_handle(events, max_total)?;
    }
}

/// The handle's hot redial loop as a user met it, on paused time: a message waits in
/// the task while the server refuses the reconnection for good.
#[test]
fn a_message_waiting_in_the_task_does_not_redial_a_refusing_server() {
    runtime().block_on(async {
        let server = Arc::new(Server::default());
        let (handle, mut incoming) = sink(&server, 1000).spawn();
        tokio::time::sleep(STEP).await;
        assert_eq!(server.attempts(), 1);
        *server.answer.lock().unwrap() = Some(Answer::BadRequest);
        server.end(Ending::Reset);
        let delivery = handle.deliver(Message::text("waiting")).await.unwrap();
        let mut errors = 0;
        while let Ok(Some(item)) = timeout(Duration::from_secs(5), incoming.next()).await {
            errors += usize::from(item.is_err());
        }
        assert_eq!(errors, 1, "the refusal, once");
        assert!(delivery.await.is_err());
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            server.attempts(),
            2,
            "the first dial and one refused reconnection"
        );
    });
}
