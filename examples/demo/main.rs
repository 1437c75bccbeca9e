//! `cargo run --example demo`: ws-reconnect against a deliberately unreliable server.
//!
//! An embedded WebSocket server on 127.0.0.1 closes connections gracefully at random
//! moments, resets others abruptly, and answers 503 to some handshakes. A client built on
//! `ReconnectingSink` streams numbered messages into it with `.forward()`, in
//! acknowledged mode, and reads the server's replies. At the end the server's ledger is
//! compared with what was sent. Exits non-zero if a message the library promised to
//! deliver was lost.
//!
//! ```text
//! cargo run --example demo -- --count 50000 --rate 0 --faults 5 --seed 7
//! cargo run --example demo -- --plain     # no acknowledgements: see what a reset costs
//! cargo run --example demo -- --handle    # through a spawned Handle, awaiting each outcome
//! ```

mod faults;
mod run;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use run::{Options, Progress, Summary};

#[derive(Parser, Debug)]
#[command(about = "ws-reconnect against a deliberately unreliable server")]
struct Args {
    /// How many numbered messages to send.
    #[arg(long, default_value_t = 20_000)]
    count: u64,
    /// Messages per second (0: as fast as possible). The default run takes about 10 s.
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Faults (closes, resets, refusal spells) per 1,000 messages.
    #[arg(long, default_value_t = 2.0)]
    faults: f64,
    /// Seed of the server's fault generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Plain mode: no acknowledgements (messages flushed into a reset connection are lost).
    #[arg(long)]
    plain: bool,
    /// Send through a spawned handle and await every message's delivery outcome.
    #[arg(long)]
    handle: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let options = Options {
        count: args.count,
        rate: args.rate,
        faults_per_thousand: args.faults.max(0.0),
        seed: args.seed,
        plain: args.plain,
        handle: args.handle,
    };
    let progress = Arc::new(Progress::default());
    let bar = ProgressBar::new(options.count);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed_precise} [{bar:36}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let ticker = {
        let (bar, progress) = (bar.clone(), progress.clone());
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            loop {
                let sent = progress.sent.load(Relaxed);
                bar.set_position(sent);
                bar.set_message(format!(
                    "reconnections {}  {:.0} msg/s",
                    progress.reconnections(),
                    sent as f64 / started.elapsed().as_secs_f64().max(1e-3)
                ));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let summary = run::run(options, progress).await;
    ticker.abort();
    bar.finish_and_clear();
    print_summary(&summary);
    if summary.broke_the_promise() {
        std::process::exit(1);
    }
}

fn print_summary(s: &Summary) {
    let mode = if s.options.plain {
        "plain"
    } else {
        "acknowledged"
    };
    println!(
        "ws-reconnect demo: {mode} mode, seed {}, {} faults per 1,000 messages",
        s.options.seed, s.options.faults_per_thousand
    );
    let rows: Vec<(&str, String)> = vec![
        ("sent", s.sent.to_string()),
        ("received by the server", s.received.to_string()),
        ("resent by the client", s.resent.to_string()),
        ("duplicates at the server", s.duplicates.to_string()),
        ("lost", s.lost.to_string()),
        ("reconnections", s.reconnections.to_string()),
        (
            "  server closes / resets",
            format!("{} / {}", s.graceful_closes, s.resets),
        ),
        ("  handshakes refused (503)", s.refused.to_string()),
        ("on_connect hellos seen", s.hellos.to_string()),
        ("server replies read", s.replies.to_string()),
        (
            "outcomes Ok (--handle)",
            s.confirmed.map_or("-".into(), |c| c.to_string()),
        ),
        (
            "  Ok but never received",
            s.confirmed
                .map_or("-".into(), |_| s.confirmed_but_lost.to_string()),
        ),
        (
            "longest outage",
            format!("{:.1} ms", s.longest_outage.as_secs_f64() * 1e3),
        ),
        ("elapsed", format!("{:.2} s", s.elapsed.as_secs_f64())),
        ("messages/s", format!("{:.0}", s.rate())),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let vwidth = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let line = format!("+-{}-+-{}-+", "-".repeat(width), "-".repeat(vwidth));
    println!("{line}");
    for (k, v) in &rows {
        println!("| {k:<width$} | {v:>vwidth$} |");
    }
    println!("{line}");
    if let Some(e) = &s.error {
        println!("error: {e}");
    }
    if s.options.plain && s.lost > 0 {
        println!("{} messages were flushed into connections that were then reset; run without --plain to lose none.", s.lost);
    } else if s.lost == 0 && s.error.is_none() {
        println!("every message arrived.");
    } else {
        println!("LOST {} messages the library promised to deliver.", s.lost);
    }
}
