use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::error::{BoxError, Error};

pin_project! {
    /// The future of a [`ReconnectLimit`](super::ReconnectLimit) call: refused at once, or
    /// the inner connection attempt.
    #[derive(Debug)]
    pub struct ReconnectLimitFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum State<F> {
        Refused { error: Option<Error> },
        Called { #[pin] future: F },
    }
}

impl<F> ReconnectLimitFuture<F> {
    pub(super) fn refused(error: Error) -> Self {
        ReconnectLimitFuture {
            state: State::Refused { error: Some(error) },
        }
    }

    pub(super) fn called(future: F) -> Self {
        ReconnectLimitFuture {
            state: State::Called { future },
        }
    }
}

impl<F, T, E> Future for ReconnectLimitFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Refused { error } => Poll::Ready(Err(error
                .take()
                .expect("ReconnectLimitFuture polled after completion"))),
            StateProj::Called { future } => {
                future.poll(cx).map_err(|e| Error::from_boxed(e.into()))
            }
        }
    }
}
