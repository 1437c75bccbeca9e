//! `cargo run --example wscat -- ws://host:port/path [-H 'name: value']...`
//!
//! A small reconnecting wscat: stdin lines go to the server, server messages go to
//! stdout, connection events go to stderr. It keeps going across disconnects; end of
//! input closes the connection (after the server's last replies have been printed).
//!
//! It is built on [`ReconnectingSink::spawn`]: a [`Handle`](ws_reconnect::Handle) takes
//! the lines, the [`Incoming`](ws_reconnect::Incoming) stream gives the server's messages,
//! and the sink's [`state()`](ReconnectingSink::state) gives the connection events,
//! attempt numbers and errors included.
//!
//! # Lines typed while the connection is down
//! The handle queues them ([`Handle::QUEUE`](ws_reconnect::Handle::QUEUE), then stdin is
//! left unread) and the task sends them in order once it is connected; none is dropped.
//! The sink retries retryable failures without end by default, and so does wscat: end of
//! input waits for the queued lines to be sent; Ctrl-C quits without sending them.
#![allow(dead_code)] // `run` is also used by the wscat test

use std::ffi::OsString;
use std::fmt;
use std::io::IsTerminal;

use clap::Parser;
use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use ws_reconnect::{ConnectionState, Error, Handle, Message, ReconnectingSink, Undelivered};

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

Lines typed while the connection is down are queued (up to 256; beyond that stdin is
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
    let mut builder = ReconnectingSink::builder();
    for header in headers {
        let Some((name, value)) = header.split_once(':') else {
            let message: ws_reconnect::BoxError =
                format!("header {header:?} is not 'name: value'").into();
            return Err(Error::Request(message.into()).into());
        };
        builder = builder.header(name.trim(), value.trim());
    }
    let ws = builder.build(url)?;
    let mut state = ws.state();
    let (handle, mut incoming) = ws.spawn();
    let mut said = Said::new(redact(url));
    let mut lines = input.lines();
    // A line on its way into the handle's queue (it waits while the queue is full).
    let mut sending: Option<BoxFuture<'static, Result<(), Undelivered>>> = None;
    let mut waiting = 0usize;
    let mut ended = false;
    while !(ended && sending.is_none()) {
        tokio::select! {
            biased;
            Ok(()) = state.changed() => {
                let now = state.borrow_and_update().clone();
                if now == ConnectionState::Connected {
                    waiting = 0;
                }
                said.state(&now, &mut console).await?;
            }
            item = incoming.next() => match item {
                Some(Ok(message)) => print(&mut output, message).await?,
                Some(Err(e)) => console.error(&e).await?,
                // The task ended after reporting why: the connection failed for good.
                None => {
                    let mut stopped = stopped(&handle, waiting).await;
                    stopped.cause = None;
                    return Err(stopped.into());
                }
            },
            sent = async { sending.as_mut().expect("a send").await }, if sending.is_some() => {
                sending = None;
                if sent.is_err() {
                    return Err(stopped(&handle, waiting).await.into());
                }
            }
            line = lines.next_line(), if sending.is_none() && !ended => match line? {
                Some(line) => {
                    if *state.borrow() != ConnectionState::Connected {
                        waiting += 1;
                        if waiting <= 10 || waiting % 100 == 0 {
                            console
                                .event(format_args!("waiting for the connection; {waiting} line(s) queued"))
                                .await?;
                        }
                    }
                    let handle = handle.clone();
                    sending = Some(Box::pin(async move { handle.send(Message::text(line)).await }));
                }
                None => ended = true,
            },
        }
    }

    // End of input, every line queued: close() delivers what is still owed (within its
    // close_timeout) and ends the connection.
    let shutdown = {
        let close = handle.close();
        tokio::pin!(close);
        loop {
            tokio::select! {
                biased;
                Ok(()) = state.changed() => {
                    let now = state.borrow_and_update().clone();
                    said.state(&now, &mut console).await?;
                }
                Some(item) = incoming.next() => match item {
                    Ok(message) => print(&mut output, message).await?,
                    Err(e) => console.error(&e).await?,
                },
                shutdown = &mut close => break shutdown,
            }
        }
    };
    // What arrived while closing is still delivered.
    while let Some(item) = incoming.next().await {
        match item {
            Ok(message) => print(&mut output, message).await?,
            Err(e) => console.error(&e).await?,
        }
    }
    // Error::CloseIncomplete says how many messages could not be delivered.
    shutdown.result.map_err(Into::into)
}

/// The task ended before the end of input: how, and how many lines it did not send.
async fn stopped(handle: &Handle, waiting: usize) -> Stopped {
    let shutdown = handle.close().await;
    Stopped {
        cause: shutdown.result.err(),
        unsent: shutdown.undelivered.len().max(waiting),
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

/// Turns connection states into the lines wscat prints.
struct Said {
    /// The URL as shown: no user-info, no query.
    url: String,
}

impl Said {
    fn new(url: String) -> Self {
        Said { url }
    }

    async fn state<E: AsyncWrite + Unpin>(
        &mut self,
        state: &ConnectionState,
        console: &mut Console<E>,
    ) -> std::io::Result<()> {
        let url = &self.url;
        match state {
            ConnectionState::Connecting { attempt: 1, .. } => {
                console.event(format_args!("connecting to {url}")).await
            }
            ConnectionState::Connecting {
                attempt,
                last_error,
            } => {
                let error = last_error.as_deref().unwrap_or("none");
                console
                    .event(format_args!(
                        "connecting to {url} (attempt {attempt}, last error: {error})"
                    ))
                    .await
            }
            ConnectionState::Connected => console.event("connected").await,
            ConnectionState::Reconnecting {
                attempt: 1,
                last_error,
            } => {
                let why = last_error.as_deref().unwrap_or("connection lost");
                console
                    .event(format_args!("disconnected ({why}); reconnecting"))
                    .await
            }
            ConnectionState::Reconnecting {
                attempt,
                last_error,
            } => {
                let error = last_error.as_deref().unwrap_or("none");
                console
                    .event(format_args!(
                        "reconnecting to {url} (attempt {attempt}, last error: {error})"
                    ))
                    .await
            }
            // A refusal or a failure for good reaches the reader as an error item, which
            // is printed; closing is what end of input asked for.
            _ => Ok(()),
        }
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
