//! A resume server running an application of the tests' choosing, the numbered traffic
//! both sides exchange, and the ledgers that check it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use ws_reconnect::server::{Server, ServerConfig, Session, SessionError};
use ws_reconnect::{Error, Gap, Message, ReconnectingSink, ResumeConfig, ResumingSink, PROTOCOL};

use crate::support::BOUND;

/// What a receiver of numbered messages saw.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The next number expected.
    pub next: u64,
    /// Messages taken, duplicates included.
    pub count: u64,
    /// Numbers that came again (or went backwards).
    pub duplicates: u64,
    /// Ranges skipped without a gap item: `[expected, got)`.
    pub missing: Vec<(u64, u64)>,
    /// Gap items, in order.
    pub gaps: Vec<Gap>,
}

impl Ledger {
    pub fn new() -> Self {
        Ledger {
            next: 1,
            ..Ledger::default()
        }
    }

    /// A numbered message, `<prefix><n>`.
    pub fn record(&mut self, n: u64) {
        self.count += 1;
        if n < self.next {
            self.duplicates += 1;
            return;
        }
        if n > self.next {
            self.missing.push((self.next, n));
        }
        self.next = n + 1;
    }

    /// A gap item: its range is accounted for (an unknown end says nothing of numbers).
    pub fn gap(&mut self, gap: Gap) {
        self.gaps.push(gap);
        if let Some(to) = gap.to {
            self.next = self.next.max(to);
        }
    }

    /// Messages with numbers up to `n` all arrived once, in order, without gaps.
    pub fn assert_complete(&self, n: u64, what: &str) {
        assert!(self.missing.is_empty(), "{what}: lost {:?}", self.missing);
        assert_eq!(self.duplicates, 0, "{what}: delivered twice");
        assert!(self.gaps.is_empty(), "{what}: gaps {:?}", self.gaps);
        assert_eq!(self.next, n + 1, "{what}: not everything arrived");
    }
}

/// The number of `<prefix><n>`.
pub fn number(message: &Message, prefix: &str) -> u64 {
    message
        .to_text()
        .ok()
        .and_then(|t| t.strip_prefix(prefix))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a numbered message: {message:?}"))
}

/// What the server's application does with each session.
#[derive(Debug, Clone, Copy)]
pub enum App {
    /// Sends every message back.
    Echo,
    /// Sends `s1..=s<send>` (`pace` between batches of 50, if any) while recording the
    /// client's `c<n>` messages.
    Numbered { send: u64, pace: Option<Duration> },
}

/// What the server's application saw, over all sessions.
#[derive(Debug, Default)]
pub struct Seen {
    /// The client's numbered messages, per session in the order sessions started.
    pub ledgers: Mutex<Vec<Arc<Mutex<Ledger>>>>,
    /// Items other than messages: gaps, expiries.
    pub errors: Mutex<Vec<SessionError>>,
    /// Sessions whose stream ended.
    pub ended: AtomicUsize,
    /// Messages the application has sent, over all sessions.
    pub sent: AtomicU64,
}

impl Seen {
    /// The ledger of the `i`-th session.
    pub fn ledger(&self, i: usize) -> Arc<Mutex<Ledger>> {
        Arc::clone(&self.ledgers.lock().unwrap()[i])
    }

    pub fn sessions(&self) -> usize {
        self.ledgers.lock().unwrap().len()
    }
}

/// A resume server on a loopback port, running `app` for every session.
pub struct Harness {
    pub server: Server,
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Harness {
    pub async fn start(config: ServerConfig, app: App) -> Harness {
        Harness::start_on("127.0.0.1:0", config, app).await
    }

    /// On `bind` (an address to listen on again, for a restart).
    pub async fn start_on(bind: &str, config: ServerConfig, app: App) -> Harness {
        let listener = TcpListener::bind(bind).await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (server, mut sessions) = Server::new(config);
        let seen = Arc::new(Seen::default());
        let serve = tokio::spawn({
            let server = server.clone();
            async move {
                let _ = server.serve(listener).await;
            }
        });
        let apps = tokio::spawn({
            let seen = Arc::clone(&seen);
            async move {
                while let Some(session) = sessions.next().await {
                    let ledger = Arc::new(Mutex::new(Ledger::new()));
                    seen.ledgers.lock().unwrap().push(Arc::clone(&ledger));
                    tokio::spawn(run_app(app, session, ledger, Arc::clone(&seen)));
                }
            }
        });
        Harness {
            server,
            addr,
            seen,
            tasks: vec![serve, apps],
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }
}

async fn run_app(app: App, session: Session, ledger: Arc<Mutex<Ledger>>, seen: Arc<Seen>) {
    let (mut tx, mut rx) = session.split();
    match app {
        App::Echo => {
            while let Some(item) = rx.next().await {
                match item {
                    Ok(message) => {
                        if tx.send(message).await.is_err() {
                            break;
                        }
                        seen.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => seen.errors.lock().unwrap().push(e),
                }
            }
        }
        App::Numbered { send, pace } => {
            let writer = {
                let seen = Arc::clone(&seen);
                async move {
                    for n in 1..=send {
                        // `send`: a flush hands the message to the session (the split
                        // sink keeps one back otherwise), so that `sent` is exact.
                        if tx.send(Message::text(format!("s{n}"))).await.is_err() {
                            return;
                        }
                        seen.sent.fetch_add(1, Ordering::Relaxed);
                        if let (Some(pace), 0) = (pace, n % 50) {
                            tokio::time::sleep(pace).await;
                        }
                    }
                    // Keep the session open: the test closes it from the client side.
                    std::future::pending::<()>().await;
                }
            };
            let reader = async {
                while let Some(item) = rx.next().await {
                    match item {
                        Ok(message) => ledger.lock().unwrap().record(number(&message, "c")),
                        Err(SessionError::Gap(gap)) => ledger.lock().unwrap().gap(gap),
                        Err(e) => seen.errors.lock().unwrap().push(e),
                    }
                }
            };
            let mut reader = std::pin::pin!(reader);
            tokio::select! {
                // The writer stops when the session ends (a send fails): the reader still
                // hears why (the expiry), then its stream ends.
                () = writer => reader.await,
                () = &mut reader => {}
            }
        }
    }
    seen.ended.fetch_add(1, Ordering::SeqCst);
}

/// Quick reconnections for loopback tests.
pub fn quick() -> ws_reconnect::Builder {
    ReconnectingSink::builder()
        .initial_interval(Duration::from_millis(10))
        .randomization_factor(0.0)
        .max_interval(Duration::from_millis(100))
        .healthy_after(Duration::ZERO)
}

/// A resuming client of `url`, dialed (bounded).
pub async fn client(url: &str, config: ResumeConfig) -> ResumingSink {
    timeout(BOUND, quick().resume(config).connect(url))
        .await
        .expect("connect hung")
        .expect("connect")
}

/// A WebSocket connection of the test's own, speaking frames by hand.
pub type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw connection to `addr` that offers the resume subprotocol, bounded.
pub async fn raw(addr: SocketAddr) -> RawWs {
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{addr}/"
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", PROTOCOL.parse().unwrap());
    let (ws, _) = timeout(BOUND, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect hung")
        .unwrap();
    ws
}

/// The next item of `ws`, bounded.
pub async fn next_item(ws: &mut ResumingSink) -> Option<Result<Message, Error>> {
    timeout(BOUND, ws.next()).await.expect("next() hung")
}
