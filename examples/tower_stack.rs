//! `cargo run --example tower_stack`: composing the connection stack from tower layers.
//!
//! Our limiter and backoff stack with tower's own rate limit and timeout and with a small
//! custom layer that logs every attempt. Runs against an embedded echo server; `--help`
//! describes the stack instead of running it.

use std::task::{Context, Poll};
use std::time::Duration;

use clap::Parser;
use futures::{SinkExt, StreamExt};
use tower::{Service, ServiceBuilder};
use ws_reconnect::{
    BackoffRetryLayer, ExponentialBackoff, Message, ReconnectBudget, ReconnectLimitLayer,
    ReconnectingSink, Target, TungsteniteConnector,
};

const LONG_ABOUT: &str = "\
Builds a ReconnectingSink over a connection stack composed from tower layers, dials an
echo server it starts on 127.0.0.1, sends one message, prints the echo and closes.

The stack, outermost first:
  ReconnectLimitLayer  ws-reconnect's sliding window: 10 reconnections an hour, a budget
                       shared with the sink (with_budget) so can_connect() reports it
  rate_limit           tower's: at most 5 reconnection runs a second
  BackoffRetryLayer         ws-reconnect's exponential backoff: retries inside a run
  LogAttempts          a custom layer written in the example: prints every attempt
  timeout              tower's: bounds each attempt to 10 s
  TungsteniteConnector opens one WebSocket connection

It needs no network beyond loopback and takes no arguments.";

#[derive(Parser, Debug)]
#[command(
    about = "Composes ws-reconnect's connection stack from tower layers and runs it once",
    long_about = LONG_ABOUT
)]
struct Args {}

/// Logs each connection attempt before passing it on.
#[derive(Clone)]
struct LogAttempts<S>(S);

impl<S: Service<Target>> Service<Target> for LogAttempts<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, target: Target) -> S::Future {
        println!(
            "attempt {} ({:?}) to {target:?}",
            target.attempt(),
            target.kind()
        );
        self.0.call(target)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    Args::parse();
    let url = echo_server().await?;
    let limiter = ReconnectBudget::new(10, Duration::from_secs(3600)); // shareable budget
    let stack = ServiceBuilder::new()
        .layer(ReconnectLimitLayer::with_budget(limiter.clone())) // 10 reconnections an hour
        .rate_limit(5, Duration::from_secs(1)) // at most 5 reconnection runs a second
        .layer(BackoffRetryLayer::new(ExponentialBackoff::default())) // retries inside a run
        .layer_fn(LogAttempts) // sees every attempt
        .timeout(Duration::from_secs(10)) // bounds each attempt
        .service(TungsteniteConnector::default());
    let mut ws = ReconnectingSink::new(stack, Target::new(&url)?).with_budget(limiter);
    ws.dial().await?;
    ws.send(Message::text("through the stack")).await?;
    println!("echo: {}", ws.next().await.ok_or("stream ended")??);
    ws.close().await?;
    Ok(())
}

async fn echo_server() -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() && ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(url)
}
