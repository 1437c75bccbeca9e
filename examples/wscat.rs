//! `cargo run --example wscat -- ws://host:port/path [-H 'name: value']...`
//!
//! A small reconnecting wscat: stdin lines go to the server, server messages go to
//! stdout, connection events go to stderr. It keeps going across disconnects; end of
//! input closes the connection (after the server's last replies have been printed).
#![allow(dead_code)] // `run` is also used by the wscat test

use clap::Parser;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use ws_reconnect::{Error, Message, ReconnectingSink};

#[derive(Parser, Debug)]
#[command(about = "A reconnecting WebSocket cat: stdin to the server, the server to stdout")]
struct Args {
    /// The ws:// or wss:// URL.
    url: String,
    /// A request header, "name: value"; repeatable.
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
}

/// Copies `input` lines to the server at `url` and server messages to `output` until
/// `input` ends, then closes and prints what is still arriving.
pub async fn run<I, O>(
    url: &str,
    headers: &[String],
    input: I,
    mut output: O,
) -> Result<(), Box<dyn std::error::Error>>
where
    I: AsyncBufRead + Unpin,
    O: AsyncWrite + Unpin,
{
    let mut builder = ReconnectingSink::builder();
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| format!("header {header:?} is not 'name: value'"))?;
        builder = builder.header(name.trim(), value.trim());
    }
    let mut ws = builder.connect(url).await?;
    let mut lines = input.lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line? {
                Some(line) => ws.send(Message::text(line)).await?,
                None => break,
            },
            item = ws.next() => match item {
                Some(Ok(message)) => print(&mut output, message).await?,
                Some(Err(e)) => eprintln!("wscat: {e}"),
                None => return Ok(()),
            },
        }
    }
    ws.close().await?;
    // What arrived while closing is still delivered.
    while let Some(item) = ws.next().await {
        print(&mut output, item?).await?;
    }
    Ok(())
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
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "ws_reconnect=info".into()),
        )
        .init();
    let stdin = tokio::io::BufReader::new(tokio::io::stdin());
    if let Err(e) = run(&args.url, &args.headers, stdin, tokio::io::stdout()).await {
        eprintln!("wscat: {e}");
        let code = match e.downcast_ref::<Error>() {
            Some(Error::InvalidUrl { .. }) => 2,
            _ => 1,
        };
        std::process::exit(code);
    }
}
