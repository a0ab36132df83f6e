//! Child processes for system tests: a binary started with its stderr captured in a log file,
//! killed (SIGKILL) when dropped so that a failed assertion never leaks it, stopped explicitly
//! with SIGTERM when a test checks a clean shutdown, and polled until an HTTP endpoint answers.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use thanos_test_support::process::{Process, free_port};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let http = free_port();
//! let mut query = Process::spawn(
//!     "query",
//!     "thanos",
//!     ["query".to_owned(), format!("--http-address=127.0.0.1:{http}")],
//!     &dir.path().join("query.log"),
//! );
//! query
//!     .wait_ready(&format!("http://127.0.0.1:{http}/-/ready"), Duration::from_secs(30))
//!     .await;
//! let status = query.terminate(Duration::from_secs(10));
//! assert!(status.success());
//! # }
//! ```

use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How many log lines [`Process::log_tail`] shows.
pub const LOG_TAIL_LINES: usize = 40;

/// How often readiness and exit are polled.
const POLL: Duration = Duration::from_millis(50);

/// A running child process with its stderr appended to a log file; killed with SIGKILL (and
/// reaped) when dropped.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `program` with `args`; stdout is discarded and stderr is appended to `log`
    /// (created if missing, so a restarted process keeps the earlier output). `name` labels
    /// the process in panic messages.
    ///
    /// # Panics
    /// Panics if the log file cannot be opened or the program cannot be started.
    pub fn spawn<I, S>(name: &str, program: impl AsRef<OsStr>, args: I, log: &Path) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|err| panic!("open log file {}: {err}", log.display()));
        let program = program.as_ref();
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|err| panic!("start {name} ({}): {err}", Path::new(program).display()));
        Self {
            name: name.to_owned(),
            child,
            log: log.to_path_buf(),
        }
    }

    /// The name given to [`Process::spawn`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Operating-system process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Path of the log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far (empty if it cannot be read).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last [`LOG_TAIL_LINES`] lines of the log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, LOG_TAIL_LINES)
    }

    /// The exit status if the process has exited, `None` while it runs.
    ///
    /// # Panics
    /// Panics if the process cannot be polled.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|err| panic!("poll {}: {err}", self.name))
    }

    /// Panics with the exit status and the log tail if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.try_wait() {
            panic!("{} exited with {status}:\n{}", self.name, self.log_tail());
        }
    }

    /// Sends SIGKILL and reaps the process (`kill -9`: no clean shutdown).
    ///
    /// # Panics
    /// Panics if the signal cannot be sent or the process cannot be reaped.
    pub fn kill(&mut self) -> ExitStatus {
        if let Err(err) = self.child.kill() {
            panic!("SIGKILL {}: {err}", self.name);
        }
        self.child
            .wait()
            .unwrap_or_else(|err| panic!("wait for {}: {err}", self.name))
    }

    /// Sends SIGTERM and waits for the process to exit, returning its exit status.
    ///
    /// # Panics
    /// Panics, with the log tail, if the process has not exited `within` the signal.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|err| panic!("run kill -TERM for {}: {err}", self.name));
        assert!(sent.success(), "kill -TERM {}", self.name);
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "{} did not exit within {within:?} of SIGTERM:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Polls `url` until it answers 200, checking between polls that the process still runs.
    ///
    /// # Panics
    /// Panics, with the log tail, if the process exits or `url` does not answer 200 `within`.
    pub async fn wait_ready(&mut self, url: &str, within: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        loop {
            self.assert_running();
            if http_ok(&client, url).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready at {url} after {within:?}:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // Nothing to report from a destructor: the process is gone either way.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether a GET of `url` answers 200.
pub async fn http_ok(client: &reqwest::Client, url: &str) -> bool {
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|resp| resp.status() == 200)
}

/// A loopback port that was free when asked (bound to `127.0.0.1:0`, then released).
///
/// # Panics
/// Panics if no port can be bound.
pub fn free_port() -> u16 {
    let listener =
        TcpListener::bind("127.0.0.1:0").unwrap_or_else(|err| panic!("bind 127.0.0.1:0: {err}"));
    listener
        .local_addr()
        .unwrap_or_else(|err| panic!("local address of 127.0.0.1:0: {err}"))
        .port()
}

/// The last `lines` lines of the file at `path` (empty if it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Calls `check` every 50 ms until it returns true, and returns how long that took.
///
/// # Panics
/// Panics with `what` if `check` is still false after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
    started.elapsed()
}

/// An answer of [`http_get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Status line and headers, lower-cased, lines separated by `\r\n`.
    pub head: String,
    /// Body as text.
    pub body: String,
}

/// A blocking HTTP/1.0 `GET path` to `127.0.0.1:port` (5 s read timeout); `None` if the
/// connection fails or the answer is not HTTP.
pub fn http_get(port: u16, path: &str) -> Option<HttpResponse> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some(HttpResponse {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, name: &str, script: &str) -> Process {
        Process::spawn(name, "sh", ["-c", script], &dir.join(format!("{name}.log")))
    }

    #[test]
    fn terminate_returns_the_exit_status_and_logs_are_captured() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sh(
            dir.path(),
            "trap",
            "trap 'echo got-term >&2; exit 3' TERM; echo started >&2; while :; do sleep 0.05; done",
        );
        wait_for("the trap to be set", Duration::from_secs(10), || {
            p.log().contains("started")
        });
        p.assert_running();
        let status = p.terminate(Duration::from_secs(10));
        assert_eq!(status.code(), Some(3));
        assert_eq!(p.log_tail(), "started\ngot-term");
    }

    #[test]
    fn a_restart_appends_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..2 {
            let mut p = sh(dir.path(), "once", &format!("echo run-{i} >&2"));
            wait_for("exit", Duration::from_secs(10), || p.try_wait().is_some());
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join("once.log")).unwrap(),
            "run-0\nrun-1\n"
        );
        assert_eq!(log_tail(&dir.path().join("once.log"), 1), "run-1");
    }

    #[test]
    fn drop_and_kill_stop_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sh(dir.path(), "sleeper", "sleep 60");
        let status = p.kill();
        assert!(!status.success());
        let p = sh(dir.path(), "sleeper2", "sleep 60");
        let pid = p.id();
        drop(p);
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!alive.success(), "process {pid} still exists after drop");
    }

    #[test]
    #[should_panic(expected = "exited with")]
    fn assert_running_panics_after_exit() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sh(dir.path(), "quits", "exit 1");
        wait_for("exit", Duration::from_secs(10), || p.try_wait().is_some());
        p.assert_running();
    }

    #[tokio::test]
    async fn wait_ready_and_http_get_see_a_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            while let Ok((mut socket, _)) = listener.accept().await {
                // Read the whole request head first: closing a socket with unread input
                // sends a reset, which can reach the client before the response does.
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = socket
                    .write_all(b"HTTP/1.0 200 OK\r\nX-Test: Yes\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                let _ = socket.shutdown().await;
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let mut p = sh(dir.path(), "idle", "sleep 60");
        p.wait_ready(
            &format!("http://127.0.0.1:{port}/-/ready"),
            Duration::from_secs(10),
        )
        .await;
        let resp = tokio::task::spawn_blocking(move || http_get(port, "/"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.status, 200);
        assert!(resp.head.contains("\r\nx-test: yes"), "{}", resp.head);
        assert_eq!(resp.body, "ok");
        assert_eq!(http_get(free_port(), "/"), None);
    }

    #[tokio::test]
    #[should_panic(expected = "not ready at")]
    async fn wait_ready_times_out_with_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = sh(dir.path(), "idle", "sleep 60");
        p.wait_ready(
            &format!("http://127.0.0.1:{}/-/ready", free_port()),
            Duration::from_millis(300),
        )
        .await;
    }
}
