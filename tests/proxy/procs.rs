//! Real proxies as child processes: Debian's `tinyproxy` (HTTP `CONNECT`) and `microsocks`
//! (SOCKS5), each on a free loopback port, with its output in a log file the tests read to
//! see what the proxy did. Dropping one kills it (SIGKILL) and removes its files.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::support::BOUND;

/// A proxy process and the files it uses.
pub struct ProxyProcess {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

/// The program's path on `PATH` (or in an `sbin` directory), or `None` after printing
/// that the test is skipped.
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!("SKIPPED: {program} not installed (.ci/run installs it)");
    }
    found
}

/// Whether both proxies are installed; prints what is missing.
pub fn installed() -> bool {
    // Both looked up, so that both missing ones are reported.
    let tinyproxy = find("tinyproxy").is_some();
    let microsocks = find("microsocks").is_some();
    tinyproxy && microsocks
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ws-reconnect-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl ProxyProcess {
    /// tinyproxy on 127.0.0.1, allowing `CONNECT` to `connect_ports` only, with Basic
    /// authentication when `auth` is given. `None` when tinyproxy is not installed.
    pub async fn tinyproxy(connect_ports: &[u16], auth: Option<(&str, &str)>) -> Option<Self> {
        let program = find("tinyproxy")?;
        let port = free_port();
        let dir = scratch_dir("tinyproxy");
        let mut config = format!(
            "Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 60\nMaxClients 50\n\
             LogLevel Connect\nDisableViaHeader Yes\n"
        );
        for p in connect_ports {
            config.push_str(&format!("ConnectPort {p}\n"));
        }
        if let Some((user, password)) = auth {
            config.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let config_path = dir.join("tinyproxy.conf");
        std::fs::write(&config_path, config).unwrap();
        // -d: stay in the foreground, logging to stderr.
        let args = vec!["-d".into(), "-c".into(), config_path.display().to_string()];
        Some(Self::start("tinyproxy", program, args, port, dir).await)
    }

    /// microsocks on 127.0.0.1, with username/password authentication when `auth` is
    /// given. `None` when microsocks is not installed.
    pub async fn microsocks(auth: Option<(&str, &str)>) -> Option<Self> {
        let program = find("microsocks")?;
        let port = free_port();
        let mut args = vec![
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ];
        if let Some((user, password)) = auth {
            args.extend(["-u".into(), user.into(), "-P".into(), password.into()]);
        }
        let dir = scratch_dir("microsocks");
        Some(Self::start("microsocks", program, args, port, dir).await)
    }

    async fn start(
        name: &'static str,
        program: PathBuf,
        args: Vec<String>,
        port: u16,
        dir: PathBuf,
    ) -> Self {
        let mut proxy = ProxyProcess {
            name,
            program,
            args,
            port,
            dir,
            child: None,
        };
        proxy.run().await;
        proxy
    }

    /// Starts the process and waits until its port accepts connections.
    ///
    /// # Panics
    /// The process exits first (its log is in the message) or the port stays closed.
    async fn run(&mut self) {
        let log = self.log_file();
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        self.child = Some(child);
        let deadline = Instant::now() + BOUND;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("{} exited with {status}:\n{}", self.name, self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {}:\n{}",
                self.name,
                self.port,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("log.txt")
    }

    fn log_file(&self) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap()
    }

    /// Everything the proxy printed, over all its runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Kills the process (SIGKILL): every tunnel through it breaks at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again, on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.run().await;
    }

    /// `scheme://[user:password@]127.0.0.1:port`.
    pub fn url(&self, scheme: &str, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((user, password)) => {
                format!("{scheme}://{user}:{password}@127.0.0.1:{}", self.port)
            }
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    /// How many tunnels tinyproxy was asked for to `target` (`host:port`).
    pub fn connects_to(&self, target: &str) -> usize {
        self.log()
            .matches(&format!("CONNECT {target} HTTP/1.1"))
            .count()
    }

    /// How many connections microsocks made to `target` (`host:port`).
    pub fn socks_connections_to(&self, target: &str) -> usize {
        self.log()
            .matches(&format!("connected to {target}\n"))
            .count()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
