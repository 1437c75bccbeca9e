//! What the benches, the comparison harness and the storm test share: the loopback server
//! (`server.rs`), the stream-reconnect adapter, and the fd-limit and RSS helpers.
#![allow(dead_code)]

pub mod server;

pub use server::{server_thread, DropLedger};

use std::net::SocketAddr;

/// A server with a ledger of its own (see [`server_thread`]), for the benches.
pub fn server() -> SocketAddr {
    server_thread(std::sync::Arc::new(DropLedger::default()))
}

/// Raises this process's open-file limit to its hard limit (many connections at once).
#[allow(unsafe_code)]
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to rlimit structs.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// CPU time of `clock` (`libc::CLOCK_THREAD_CPUTIME_ID`, `CLOCK_PROCESS_CPUTIME_ID`).
#[allow(unsafe_code)]
fn cpu_time(clock: libc::clockid_t) -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes through a valid, exclusive pointer to a timespec.
    unsafe {
        libc::clock_gettime(clock, &mut ts);
    }
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// This thread's CPU time.
pub fn thread_cpu() -> std::time::Duration {
    cpu_time(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// This thread's CPU time in user space only: the code's own work, without the
/// kernel's socket work, which on loopback also carries the receiver's side of TCP
/// whenever the scheduler runs it on the sender's CPU.
#[allow(unsafe_code)]
pub fn thread_user_cpu() -> std::time::Duration {
    // SAFETY: an all-zero rusage is a valid value; getrusage only writes through the
    // valid, exclusive pointer it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe {
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
    }
    std::time::Duration::new(
        usage.ru_utime.tv_sec as u64,
        usage.ru_utime.tv_usec as u32 * 1_000,
    )
}

/// The value after `flag` on the command line (`--rounds 5`), if it is there and parses.
pub fn flag_value<T: std::str::FromStr>(args: &[String], flag: &str) -> Option<T> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1)?.parse().ok()
}

/// This process's CPU time (all threads).
pub fn process_cpu() -> std::time::Duration {
    cpu_time(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// Starts this bench binary again as a server of its own (`arg` selects which) and
/// returns the process and the first line it prints: its address.
pub fn spawn_server(arg: &str) -> (std::process::Child, String) {
    let me = std::env::current_exe().unwrap();
    let mut server = std::process::Command::new(me)
        .arg(arg)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    (server, line.trim().to_string())
}

/// This process's resident set size, in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// stream-reconnect over tokio-tungstenite, set up as its README shows.
pub mod peer {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::{Sink, Stream};
    use stream_reconnect::{ReconnectStream, UnderlyingStream};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::{Error as WsError, Message};
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

    pub struct Ws(WebSocketStream<MaybeTlsStream<TcpStream>>);

    impl Stream for Ws {
        type Item = Result<Message, WsError>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Pin::new(&mut self.0).poll_next(cx)
        }
    }

    impl Sink<Message> for Ws {
        type Error = WsError;
        fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            Pin::new(&mut self.0).poll_ready(cx)
        }
        fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
            Pin::new(&mut self.0).start_send(item)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }
        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
            Pin::new(&mut self.0).poll_close(cx)
        }
    }

    impl UnderlyingStream<String, Result<Message, WsError>, WsError> for Ws {
        fn establish(url: String) -> Pin<Box<dyn Future<Output = Result<Self, WsError>> + Send>> {
            Box::pin(async move {
                let (ws, _) =
                    tokio_tungstenite::connect_async_with_config(url.as_str(), None, true).await?;
                Ok(Ws(ws))
            })
        }
        fn is_write_disconnect_error(&self, err: &WsError) -> bool {
            matches!(
                err,
                WsError::ConnectionClosed
                    | WsError::AlreadyClosed
                    | WsError::Io(_)
                    | WsError::Tls(_)
                    | WsError::Protocol(_)
            )
        }
        fn is_read_disconnect_error(&self, item: &Result<Message, WsError>) -> bool {
            item.as_ref()
                .err()
                .is_some_and(|e| self.is_write_disconnect_error(e))
        }
        fn exhaust_err() -> WsError {
            WsError::ConnectionClosed
        }
    }

    pub type StreamReconnect = ReconnectStream<Ws, String, Result<Message, WsError>, WsError>;

    pub async fn connect(url: &str) -> StreamReconnect {
        StreamReconnect::connect(url.to_string())
            .await
            .expect("stream-reconnect connect")
    }
}

/// Reads `ws` until the server's "done" text, which it sends once it has counted every
/// message of a run.
pub async fn wait_done<S>(ws: &mut S)
where
    S: futures::Stream<Item = Result<ws_reconnect::Message, ws_reconnect::Error>> + Unpin,
{
    use futures::StreamExt;
    while let Some(Ok(m)) = ws.next().await {
        if m.to_text().is_ok_and(|t| t == "done") {
            return;
        }
    }
    panic!("the server's \"done\" never came");
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}
