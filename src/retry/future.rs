use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::Service;

use super::policy::RefreshOnUnauthorized;
use super::{BackoffPolicy, Run};
use crate::backoff::ExponentialBackoff;
use crate::error::{BoxError, Error};
use crate::request::{AttemptReport, Target};

pin_project! {
    /// The future of a [`BackoffRetry`](super::BackoffRetry) call: attempts, and the sleeps between
    /// them. Each retry's target carries the failure of the attempt before it
    /// ([`Target::previous_failure`]), for request hooks to see.
    ///
    /// ```text
    /// Waiting  --sleep done-->  Readying --inner ready--> Calling --Ok--> done
    ///                              ^                         |
    ///                              +---- retryable Err, -----+   (Waiting when delay > 0)
    ///                                    policy gives a delay
    /// permanent Err or policy ended: done with that error / GaveUp
    /// ```
    ///
    /// A 401 or 403 of a reconnection counts as retryable while
    /// [`refresh_on_unauthorized`](super::BackoffRetry::refresh_on_unauthorized) allows.
    pub struct BackoffRetryFuture<S: Service<Target>, P = ExponentialBackoff> {
        service: S,
        run: Arc<Mutex<Run<P>>>,
        target: Target,
        attempts: u32,
        refresh: RefreshOnUnauthorized,
        // Refusals of the credentials retried in this run.
        refreshes: u32,
        #[pin]
        state: State<S::Future>,
    }
}

/// How a call's first attempt starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Start {
    /// At once: a first dial, or after a connection that proved healthy.
    Now,
    /// After the policy's next delay: the previous connection did not prove healthy.
    After(Duration),
    /// Never: the previous connection did not prove healthy and the policy has run out.
    Exhausted,
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // Calling the service the BackoffRetry was ready with (the first attempt).
        First,
        Waiting { #[pin] sleep: Sleep },
        Readying,
        Calling { #[pin] future: F },
        // Gave up before any attempt: the previous connection was unhealthy and the
        // policy has run out.
        Exhausted,
    }
}

impl<S: Service<Target>, P> std::fmt::Debug for BackoffRetryFuture<S, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackoffRetryFuture")
            .field("target", &self.target)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl<S, P> BackoffRetryFuture<S, P>
where
    S: Service<Target>,
{
    pub(super) fn new(
        service: S,
        run: Arc<Mutex<Run<P>>>,
        target: Target,
        start: Start,
        refresh: RefreshOnUnauthorized,
    ) -> Self {
        let state = match start {
            Start::Now => State::First,
            // A zero delay goes straight to the attempt: a zero-length tokio sleep
            // still waits for the next timer tick (about a millisecond).
            Start::After(delay) if delay.is_zero() => State::First,
            Start::After(delay) => {
                tracing::debug!(
                    ?delay,
                    "previous connection was unhealthy; waiting before reconnecting"
                );
                State::Waiting {
                    sleep: tokio::time::sleep(delay),
                }
            }
            Start::Exhausted => State::Exhausted,
        };
        BackoffRetryFuture {
            service,
            run,
            target,
            attempts: 0,
            refresh,
            refreshes: 0,
            state,
        }
    }
}

impl<S, P> Future for BackoffRetryFuture<S, P>
where
    S: Service<Target>,
    S::Error: Into<BoxError>,
    P: BackoffPolicy,
{
    type Output = Result<S::Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let failure = match this.state.as_mut().project() {
                StateProj::Exhausted => {
                    let elapsed = this.run.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
                    return Poll::Ready(Err(Error::GaveUp {
                        attempts: 0,
                        elapsed,
                        source: Box::new(Error::ConnectionLost),
                    }));
                }
                StateProj::First => {
                    // BackoffRetry::call only builds this state after poll_ready succeeded.
                    let target = this.target.clone().with_attempt(*this.attempts);
                    *this.attempts += 1;
                    let future = this.service.call(target);
                    this.state.set(State::Calling { future });
                    continue;
                }
                StateProj::Waiting { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Readying);
                    continue;
                }
                StateProj::Readying => match ready!(this.service.poll_ready(cx)) {
                    Ok(()) => {
                        this.state.set(State::First);
                        continue;
                    }
                    Err(e) => Error::from_boxed(e.into()),
                },
                StateProj::Calling { future } => match ready!(future.poll(cx)) {
                    Ok(connection) => return Poll::Ready(Ok(connection)),
                    Err(e) => Error::from_boxed(e.into()),
                },
            };

            let (delay, failure) = match retry_delay(
                failure,
                this.run,
                this.refresh,
                this.target.kind(),
                this.refreshes,
                *this.attempts,
            ) {
                Ok(next) => next,
                Err(end) => return Poll::Ready(Err(end)),
            };
            tracing::info!(
                attempt = *this.attempts + 1,
                ?delay,
                error = %failure,
                "connection attempt failed; retrying"
            );
            this.target.report(AttemptReport::Retrying(&failure));
            // The next attempt's request hook is told how this one failed.
            *this.target = this
                .target
                .clone()
                .with_previous_failure(Some(Arc::new(failure)));
            if delay.is_zero() {
                this.state.set(State::Readying);
            } else {
                this.state.set(State::Waiting {
                    sleep: tokio::time::sleep(delay),
                });
            }
        }
    }
}

/// What a failed attempt means: how long to wait before the next one (with the failure,
/// handed back), or (`Err`) the error the call ends with (a failure that is not retried,
/// or the policy ran out).
fn retry_delay<P: BackoffPolicy>(
    failure: Error,
    run: &Mutex<Run<P>>,
    refresh: &RefreshOnUnauthorized,
    kind: crate::request::DialKind,
    refreshes: &mut u32,
    attempts: u32,
) -> Result<(Duration, Error), Error> {
    if !failure.is_retryable() {
        if !refresh.retries(&failure, kind, *refreshes) {
            tracing::debug!(error = %failure, attempts, "connection attempt failed; not retryable");
            return Err(failure);
        }
        *refreshes += 1;
        tracing::info!(error = %failure, refreshes = *refreshes, "the server refused the credentials of a reconnection; retrying with a fresh request");
    }
    let (next, max_retry_after, elapsed) = {
        let mut run = run.lock().unwrap_or_else(|p| p.into_inner());
        (run.next_delay(), run.max_retry_after(), run.elapsed())
    };
    let Some(mut delay) = next else {
        tracing::warn!(error = %failure, attempts, ?elapsed, "giving up: the backoff policy has run out");
        return Err(Error::GaveUp {
            attempts,
            elapsed,
            source: Box::new(failure),
        });
    };
    if let Some(after) = failure.retry_after() {
        delay = delay.max(after.min(max_retry_after));
    }
    Ok((delay, failure))
}
