//! `cargo run --example wscat -- ws://host:port/path [-H 'name: value']...`
//!
//! A small reconnecting wscat: stdin lines go to the server, server messages go to
//! stdout, connection events go to stderr. It keeps going across disconnects; end of
//! input closes the connection (after the server's last replies have been printed).
//!
//! # What it says, and where it comes from
//! The sink's [`state()`](ReconnectingSink::state) watch channel gives the connection
//! events: connecting, connected, disconnected (with the cause) and reconnecting. It has
//! no attempt count while the first dial retries, because the retries happen inside the
//! connection stack, in the backoff layer. So wscat builds that stack itself (the same
//! backoff, connect timeout and connector as the default one) with a small tower layer
//! under the backoff, [`ReportAttempts`], that sees every single attempt and its error.
//!
//! # Lines typed while the connection is down
//! Stdin keeps being read into a bounded queue ([`MAX_QUEUED`] lines) while the sink
//! reconnects; the queued lines are sent in order once it is connected, and none is
//! dropped. When the queue is full, stdin is left unread until lines have been sent.
//! The sink retries retryable failures without end by default, and so does wscat: end
//! of input waits for the queued lines to be sent; Ctrl-C quits without sending them.
#![allow(dead_code)] // `run` is also used by the wscat test

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::future::poll_fn;
use std::io::IsTerminal;
use std::task::{Context, Poll};
use std::time::Duration;

use clap::Parser;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder};
use ws_reconnect::ConnectionState;
use ws_reconnect::{
    BackoffRetryLayer, BoxError, DialKind, Error, ExponentialBackoff, Message, ReconnectingSink,
    Target, TungsteniteConnector,
};

/// Lines read from stdin and not yet accepted by the sink, at most.
pub const MAX_QUEUED: usize = 1024;

/// Bound on one connection attempt (TCP and handshake), as in the default stack.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const AFTER_HELP: &str = "\
Each stdin line is sent as a text message; the server's messages are printed on stdout
(binary ones as <N bytes>). Connection events go to stderr:

  wscat: connecting to URL                             the first dial has started
  wscat: connecting to URL (attempt N, last error: E)  the server cannot be reached yet;
                                                       retrying with exponential backoff
  wscat: connected
  wscat: disconnected (WHY); reconnecting
  wscat: reconnecting to URL (attempt N, last error: E)
  wscat: waiting for the connection; N line(s) queued

Errors the stream reports are printed as `wscat: ERROR`: the server broke the protocol
(the connection is replaced), a reconnection was refused (lines wait until it is allowed
again) or failed for good (wscat stops and says how many lines were not sent).

Lines typed while the connection is down are queued (up to 1024; beyond that stdin is
not read until some are sent) and sent in order once it is back: none is dropped.
Retryable failures are retried without end; Ctrl-C quits, leaving queued lines unsent.
End of input waits for the queued lines to be sent, then closes: what the server still
sends is printed, and messages that could not be delivered within 5 s are reported.

URLs are shown without user-info and query string. Stderr is coloured only when it is
a terminal and NO_COLOR is not set. RUST_LOG (e.g. RUST_LOG=ws_reconnect=debug) adds
the library's own logs.

Exit status: 0 after end of input, 2 for a bad URL (the server's or a proxy's), header or
argument, 1 otherwise.";

#[derive(Parser, Debug)]
#[command(
    about = "A reconnecting WebSocket cat: stdin to the server, the server to stdout",
    after_help = AFTER_HELP
)]
struct Args {
    /// The ws:// or wss:// URL.
    url: String,
    /// A request header, "name: value"; repeatable.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
}

/// Copies `input` lines to the server at `url` and server messages to `output` until
/// `input` ends, then closes and prints what is still arriving. Connection events and
/// errors go to `console`.
pub async fn run<I, O, E>(
    url: &str,
    headers: &[String],
    input: I,
    mut output: O,
    mut console: Console<E>,
) -> Result<(), Box<dyn std::error::Error>>
where
    I: AsyncBufRead + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut target = Target::new(url)?;
    for header in headers {
        let (name, value) = header.split_once(':').ok_or_else(|| {
            let message: BoxError = format!("header {header:?} is not 'name: value'").into();
            Error::Request(message.into())
        })?;
        target = target.header(name.trim(), value.trim())?;
    }
    let (events, mut attempts) = mpsc::unbounded_channel();
    let stack = ServiceBuilder::new()
        .layer(BackoffRetryLayer::new(ExponentialBackoff::default()))
        .layer_fn(|inner| ReportAttempts {
            inner,
            events: events.clone(),
        })
        .timeout(CONNECT_TIMEOUT)
        .service(TungsteniteConnector::default());
    let mut ws = ReconnectingSink::builder().build_over(stack, target);
    let mut state = ws.state();
    let mut said = Said::new(redact(url));
    let mut lines = input.lines();
    let mut queue = Queue::default();

    // The first dial, telling what it does; lines typed meanwhile are queued.
    {
        let dial = ws.dial();
        tokio::pin!(dial);
        loop {
            tokio::select! {
                biased;
                Ok(()) = state.changed() => {
                    let now = state.borrow_and_update().clone();
                    said.state(&now, &mut console).await?;
                }
                Some(attempt) = attempts.recv() => said.attempt(attempt, &mut console).await?,
                line = lines.next_line(), if queue.reading() => {
                    queue.read(line?, &state, &mut console).await?;
                }
                dialed = &mut dial => {
                    dialed?;
                    break;
                }
            }
        }
    }

    let (mut tx, mut rx) = ws.split();
    // Accepted by the sink since the last successful flush: what it still owes.
    let mut unflushed = 0usize;
    // The limiter refused a reconnection: no write is tried before this.
    let mut refused_until: Option<Instant> = None;
    while !(queue.done() && unflushed == 0) {
        let writable = refused_until.is_none();
        tokio::select! {
            biased;
            Ok(()) = state.changed() => {
                let now = state.borrow_and_update().clone();
                said.state(&now, &mut console).await?;
            }
            Some(attempt) = attempts.recv() => said.attempt(attempt, &mut console).await?,
            () = sleep_until(refused_until), if !writable => refused_until = None,
            // A line waits: room for it in the sink; else what was accepted: a flush.
            wrote = poll_fn(|cx| poll_write(&mut tx, !queue.is_empty(), cx)),
                if writable && (!queue.is_empty() || unflushed > 0) => match wrote {
                Ok(Wrote::Room) => {
                    tx.start_send_unpin(Message::text(queue.pop()))?;
                    unflushed += 1;
                }
                Ok(Wrote::Flushed) => unflushed = 0,
                Err(e) => refused_until = refusal(e, queue.len() + unflushed)?,
            },
            item = rx.next() => match item {
                Some(Ok(message)) => print(&mut output, message).await?,
                Some(Err(e)) => {
                    if let Error::TooManyReconnects { retry_at: Some(at), .. } = &e {
                        refused_until = Some(*at);
                    }
                    console.error(&e).await?;
                }
                None => {
                    return Err(Stopped {
                        cause: None,
                        unsent: queue.len() + unflushed,
                    }
                    .into())
                }
            },
            line = lines.next_line(), if queue.reading() => {
                queue.read(line?, &state, &mut console).await?;
            }
        }
    }

    // End of input, everything accepted: close() delivers what is still owed (within
    // its close_timeout) and ends the connection.
    let closed = {
        let close = tx.close();
        tokio::pin!(close);
        loop {
            tokio::select! {
                biased;
                Ok(()) = state.changed() => {
                    let now = state.borrow_and_update().clone();
                    said.state(&now, &mut console).await?;
                }
                Some(attempt) = attempts.recv() => said.attempt(attempt, &mut console).await?,
                closed = &mut close => break closed,
            }
        }
    };
    // What arrived while closing is still delivered.
    while let Some(item) = rx.next().await {
        match item {
            Ok(message) => print(&mut output, message).await?,
            Err(e) => console.error(&e).await?,
        }
    }
    // Error::CloseIncomplete says how many messages could not be delivered.
    closed.map_err(Into::into)
}

/// What the write half is ready for.
enum Wrote {
    /// The sink can take a line.
    Room,
    /// Everything accepted is flushed.
    Flushed,
}

/// With a line waiting, polls for room in the sink (reconnecting if needed); without,
/// flushes what it accepted.
fn poll_write<S>(tx: &mut S, line_waiting: bool, cx: &mut Context<'_>) -> Poll<Result<Wrote, Error>>
where
    S: futures::Sink<Message, Error = Error> + Unpin,
{
    if line_waiting {
        tx.poll_ready_unpin(cx).map_ok(|()| Wrote::Room)
    } else {
        tx.poll_flush_unpin(cx).map_ok(|()| Wrote::Flushed)
    }
}

/// What a write error means for the writer: a refusal by the limiter pauses writing
/// until the returned time (the reader reports it, once); any other error ends wscat.
fn refusal(error: Error, unsent: usize) -> Result<Option<Instant>, Stopped> {
    match error {
        Error::TooManyReconnects {
            retry_at: Some(at), ..
        } => Ok(Some(at)),
        cause => Err(Stopped {
            cause: Some(cause),
            unsent,
        }),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// wscat stopped before the end of input: the connection failed for good.
#[derive(Debug)]
pub struct Stopped {
    /// The error that ended it; `None` when the stream ended after reporting it.
    pub cause: Option<Error>,
    /// Lines read but not delivered.
    pub unsent: usize,
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            Some(cause) => write!(f, "{cause}")?,
            None => f.write_str("the connection ended for good")?,
        }
        if self.unsent > 0 {
            write!(f, "; {} line(s) not sent", self.unsent)?;
        }
        Ok(())
    }
}

impl std::error::Error for Stopped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_ref().map(|e| e as _)
    }
}

/// Stdin lines waiting for the sink, and whether stdin has ended.
#[derive(Default)]
struct Queue {
    lines: VecDeque<String>,
    ended: bool,
}

impl Queue {
    /// Whether to read stdin now: it has not ended and the queue has room.
    fn reading(&self) -> bool {
        !self.ended && self.lines.len() < MAX_QUEUED
    }

    /// Stdin has ended and every line was handed to the sink.
    fn done(&self) -> bool {
        self.ended && self.lines.is_empty()
    }

    fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn len(&self) -> usize {
        self.lines.len()
    }

    fn pop(&mut self) -> String {
        self.lines.pop_front().unwrap_or_default()
    }

    /// Queues a line read from stdin (`None`: end of input), and says so when it has to
    /// wait for the connection: for each of the first ten lines, then every hundredth.
    async fn read<E: AsyncWrite + Unpin>(
        &mut self,
        line: Option<String>,
        state: &watch::Receiver<ConnectionState>,
        console: &mut Console<E>,
    ) -> std::io::Result<()> {
        let Some(line) = line else {
            self.ended = true;
            return Ok(());
        };
        self.lines.push_back(line);
        let n = self.lines.len();
        let connected = *state.borrow() == ConnectionState::Connected;
        if !connected && (n <= 10 || n % 100 == 0 || n == MAX_QUEUED) {
            console
                .event(format_args!(
                    "waiting for the connection; {n} line(s) queued"
                ))
                .await?;
        }
        Ok(())
    }
}

/// Turns connection states and attempts into the lines wscat prints.
struct Said {
    /// The URL as shown: no user-info, no query.
    url: String,
    /// Why the last attempt failed.
    last_error: Option<String>,
}

impl Said {
    fn new(url: String) -> Self {
        Said {
            url,
            last_error: None,
        }
    }

    async fn state<E: AsyncWrite + Unpin>(
        &mut self,
        state: &ConnectionState,
        console: &mut Console<E>,
    ) -> std::io::Result<()> {
        match state {
            ConnectionState::Connecting => {
                console
                    .event(format_args!("connecting to {}", self.url))
                    .await
            }
            ConnectionState::Connected => {
                self.last_error = None;
                console.event("connected").await
            }
            ConnectionState::Reconnecting { last_error, .. } => {
                let why = last_error.as_deref().unwrap_or("connection lost");
                console
                    .event(format_args!("disconnected ({why}); reconnecting"))
                    .await
            }
            // A refusal or a failure for good reaches the reader as an error item, which
            // is printed; closing is what end of input asked for.
            _ => Ok(()),
        }
    }

    async fn attempt<E: AsyncWrite + Unpin>(
        &mut self,
        attempt: Attempt,
        console: &mut Console<E>,
    ) -> std::io::Result<()> {
        match attempt {
            Attempt::Failed(error) => {
                self.last_error = Some(error);
                Ok(())
            }
            // The first attempt of a dial or reconnection is told by the state.
            Attempt::Started { number: 1, .. } => Ok(()),
            Attempt::Started { kind, number } => {
                let doing = match kind {
                    DialKind::Reconnect => "reconnecting",
                    _ => "connecting",
                };
                let error = self.last_error.as_deref().unwrap_or("none");
                console
                    .event(format_args!(
                        "{doing} to {} (attempt {number}, last error: {error})",
                        self.url
                    ))
                    .await
            }
        }
    }
}

/// One connection attempt, as [`ReportAttempts`] saw it.
#[derive(Debug)]
pub enum Attempt {
    /// Attempt `number` (from 1 in each dial or reconnection) has started.
    Started {
        /// A first dial or a reconnection.
        kind: DialKind,
        /// Counted from 1 within this dial or reconnection.
        number: u32,
    },
    /// The attempt failed (the error as the crate shows it: URLs redacted).
    Failed(String),
}

/// A tower layer between the backoff and the connector: reports every attempt and its
/// error on a channel, and converts errors to the crate's [`Error`] (so that tower's
/// timeout reads "the connection attempt timed out").
#[derive(Clone, Debug)]
pub struct ReportAttempts<S> {
    inner: S,
    events: mpsc::UnboundedSender<Attempt>,
}

impl<S> Service<Target> for ReportAttempts<S>
where
    S: Service<Target>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = BoxFuture<'static, Result<S::Response, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| Error::from_boxed(e.into()))
    }

    fn call(&mut self, target: Target) -> Self::Future {
        let _ = self.events.send(Attempt::Started {
            kind: target.kind(),
            number: target.attempt() + 1,
        });
        let events = self.events.clone();
        let attempt = self.inner.call(target);
        Box::pin(async move {
            attempt.await.map_err(|e| {
                let error = Error::from_boxed(e.into());
                let _ = events.send(Attempt::Failed(error.to_string()));
                error
            })
        })
    }
}

/// Where connection events and errors go (stderr): dim yellow and red when `colour`.
#[derive(Debug)]
pub struct Console<W> {
    out: W,
    colour: bool,
}

impl<W: AsyncWrite + Unpin> Console<W> {
    /// Writes to `out`, with ANSI colours when `colour` (see [`use_colour`]).
    pub fn new(out: W, colour: bool) -> Self {
        Console { out, colour }
    }

    /// A connection event.
    async fn event(&mut self, text: impl fmt::Display) -> std::io::Result<()> {
        self.say("\x1b[2;33m", text).await
    }

    /// An error item from the stream.
    async fn error(&mut self, text: impl fmt::Display) -> std::io::Result<()> {
        self.say("\x1b[31m", text).await
    }

    async fn say(&mut self, style: &str, text: impl fmt::Display) -> std::io::Result<()> {
        let line = if self.colour {
            format!("{style}wscat: {text}\x1b[0m\n")
        } else {
            format!("wscat: {text}\n")
        };
        self.out.write_all(line.as_bytes()).await?;
        self.out.flush().await
    }
}

/// Colours only on a terminal, and never when `NO_COLOR` is set (to anything).
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<OsString>) -> bool {
    stderr_is_terminal && no_color.is_none()
}

/// `url` without user-info (`user:pass@`), query string or fragment, as the crate keeps
/// them out of its own errors and logs.
pub fn redact(url: &str) -> String {
    let url = &url[..url.find(['?', '#']).unwrap_or(url.len())];
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

async fn print<O: AsyncWrite + Unpin>(
    output: &mut O,
    message: Message,
) -> Result<(), Box<dyn std::error::Error>> {
    let text = match message {
        Message::Text(t) => t.to_string(),
        Message::Binary(b) => format!("<{} bytes>", b.len()),
        _ => return Ok(()),
    };
    output.write_all(text.as_bytes()).await?;
    output.write_all(b"\n").await?;
    output.flush().await?;
    Ok(())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    // wscat tells what happens itself; the library's logs only on request.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(colour)
            .with_env_filter(filter)
            .init();
    }
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let console = Console::new(tokio::io::stderr(), colour);
    if let Err(e) = run(
        &args.url,
        &args.headers,
        stdin,
        tokio::io::stdout(),
        console,
    )
    .await
    {
        eprintln!("wscat: {e}");
        let code = match e.downcast_ref::<Error>() {
            Some(Error::InvalidUrl { .. } | Error::InvalidProxyUrl { .. } | Error::Request(_)) => 2,
            _ => 1,
        };
        std::process::exit(code);
    }
}
