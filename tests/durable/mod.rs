//! Durability test harness: the real `warren` binary, started on a storage directory that
//! outlives it, stopped with SIGTERM or SIGKILL and started again on the same directory.
//!
//! Each test makes a [`TempDir`] (removed when dropped) and runs [`Broker`]s on it one after
//! the other. The broker's stderr is appended to `<dir>.log`, printed when a test panics
//! while a broker is running.
#![allow(dead_code)]

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// How long a broker may take to accept AMQP connections after it is spawned (recovery of a
/// large store included).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a broker may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh directory under the system temp dir, removed (with its `.log` sibling) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("warren-durable-{tag}-{}", unique()));
        std::fs::create_dir_all(&path).expect("create the storage dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_file(log_path(&self.path));
    }
}

fn log_path(dir: &Path) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(".log");
    PathBuf::from(name)
}

/// A name no other test uses.
pub fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}-{}-{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A free TCP port on 127.0.0.1 (bound, then released for the broker to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How a broker is stopped before it is started again on the same directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: a graceful shutdown.
    Term,
    /// SIGKILL: a crash.
    Kill,
}

/// A running `warren` process.
pub struct Broker {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    dir: PathBuf,
    env: Vec<(String, String)>,
}

/// Starts the broker on `dir` with the default settings (log level warn).
pub async fn start(dir: &Path) -> Broker {
    start_with(dir, &[]).await
}

/// Starts the broker on `dir` with extra `WARREN_*` variables, and waits until it accepts
/// AMQP connections.
pub async fn start_with(dir: &Path, env: &[(&str, &str)]) -> Broker {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    spawn(dir.to_path_buf(), env).await
}

async fn spawn(dir: PathBuf, env: Vec<(String, String)>) -> Broker {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(&dir))
        .expect("open the broker log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warren"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("WARREN_")
        {
            cmd.env_remove(&k);
        }
    }
    cmd.env_remove("RUST_LOG")
        .env("WARREN_AMQP__LISTEN", addr.to_string())
        .env("WARREN_MGMT__LISTEN", "127.0.0.1:0")
        .env("WARREN_PROMETHEUS__LISTEN", "127.0.0.1:0")
        .env("WARREN_STORAGE__DIR", &dir)
        .env("WARREN_LOG__LEVEL", "warn");
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the warren binary");
    let pid = child.id().expect("a pid");
    let mut broker = Broker {
        child,
        pid,
        addr,
        dir,
        env,
    };
    broker.wait_ready().await;
    broker
}

impl Broker {
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the broker exited during start-up ({status}); its log:\n{}",
                    self.log_tail()
                );
            }
            // Ready means a full AMQP handshake succeeds, not merely an open port.
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                let probe = tokio::time::timeout(
                    Duration::from_secs(5),
                    Connection::connect(&self.url(), ConnectionProperties::default()),
                )
                .await;
                if let Ok(Ok(conn)) = probe {
                    let _ = conn.close(200, "OK".into()).await;
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "the broker does not accept AMQP connections after {START_TIMEOUT:?}; its log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub async fn connect(&self) -> Connection {
        match tokio::time::timeout(
            Duration::from_secs(10),
            Connection::connect(&self.url(), ConnectionProperties::default()),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => panic!("cannot connect to the broker: {e}"),
            Err(_) => panic!("connecting to the broker timed out"),
        }
    }

    /// The broker's resident memory, from /proc/PID/status (VmRSS), in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_of(self.pid)
    }

    /// The last 8 KiB of the broker log (all runs on this directory).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(log_path(&self.dir)).unwrap_or_default();
        let start = text.len().saturating_sub(8192);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }

    /// SIGKILL, then waits for the process to be gone.
    pub async fn kill9(mut self) {
        self.child.start_kill().expect("send SIGKILL");
        let status = self.child.wait().await.expect("wait for the broker");
        assert!(
            !status.success(),
            "the broker exited cleanly ({status}) before it could be killed; its log:\n{}",
            self.log_tail()
        );
    }

    /// SIGTERM, then waits for the process to exit (it must exit 0 within [`STOP_TIMEOUT`]).
    pub async fn terminate(mut self) {
        let status = self.signal_and_wait("-TERM").await;
        assert_eq!(
            status.code(),
            Some(0),
            "the broker did not exit 0 after SIGTERM ({status}); its log:\n{}",
            self.log_tail()
        );
    }

    async fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let sent = Command::new("kill")
            .arg(signal)
            .arg(self.pid.to_string())
            .status()
            .await
            .expect("run kill");
        assert!(sent.success(), "kill {signal} {} failed", self.pid);
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => status.expect("wait for the broker"),
            Err(_) => panic!(
                "the broker did not exit within {STOP_TIMEOUT:?} of {signal}; its log:\n{}",
                self.log_tail()
            ),
        }
    }

    /// Stops the broker as `how` says.
    pub async fn stop(self, how: Stop) {
        match how {
            Stop::Term => self.terminate().await,
            Stop::Kill => self.kill9().await,
        }
    }

    /// Stops the broker as `how` says and starts it again on the same directory and settings.
    pub async fn restart(self, how: Stop) -> Broker {
        let dir = self.dir.clone();
        let env = self.env.clone();
        self.stop(how).await;
        spawn(dir, env).await
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- warren log ({}) ---\n{}",
                log_path(&self.dir).display(),
                self.log_tail()
            );
        }
        // kill_on_drop SIGKILLs a broker still running.
    }
}

/// VmRSS of process `pid`, in bytes.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Total size in bytes of the regular files under `dir`, recursively.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += dir_size(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}

/// Options for a durable queue.declare.
pub fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// Ready messages in `queue` (passive declare on a channel of its own, so a 404 does not
/// close `conn`'s other channels).
pub async fn message_count(conn: &Connection, queue: &str) -> u32 {
    let ch = conn.create_channel().await.unwrap();
    let q = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("passive declare of {queue}: {e}"));
    let _ = ch.close(200, "OK".into()).await;
    q.message_count()
}

/// A channel in publisher-confirm mode.
pub async fn confirming_channel(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch
}

/// A small deterministic PRNG (xorshift64*), so that failures can be replayed from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Seeded from `var` if set, else from the clock; the seed is printed.
    pub fn from_env(var: &str) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    ^ u64::from(std::process::id())
            });
        eprintln!("random seed: {var}={seed}");
        Rng::new(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// FNV-1a, 64 bits: the body checksum.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A size from the environment in MiB, or `default` MiB.
pub fn env_mib(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
        << 20
}

/// Calls `sample` every `every` on a thread of its own until dropped (also when a test
/// panics, so that nothing outlives the test).
pub struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    pub fn start(every: Duration, mut sample: impl FnMut() + Send + 'static) -> Sampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                sample();
                std::thread::sleep(every);
            }
        });
        Sampler {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Awaits a publisher confirm, failing the test if none comes within 30 s (a broker that
/// lost a message must not hang the test).
pub async fn confirmation(confirm: lapin::PublisherConfirm) -> lapin::Confirmation {
    match tokio::time::timeout(Duration::from_secs(30), confirm).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!("publisher confirm failed: {e}"),
        Err(_) => panic!("no publisher confirm within 30 s"),
    }
}

/// Runs a whole test body, failing it if it takes longer than `limit` (so that a broker
/// that stops answering fails the test instead of hanging it).
pub async fn bounded<F: std::future::Future>(limit: Duration, test: F) -> F::Output {
    match tokio::time::timeout(limit, test).await {
        Ok(out) => out,
        Err(_) => panic!("the test did not finish within {limit:?}"),
    }
}
