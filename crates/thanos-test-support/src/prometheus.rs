//! Debian's Prometheus server (`/usr/bin/prometheus`, from the `prometheus` package our CI
//! installs) as a child process on loopback, for tests that compare with or ingest from the
//! real thing.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::Process;

/// Where Debian's `prometheus` package installs the server.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A running Prometheus server; derefs to its [`Process`] (killed with SIGKILL when dropped).
#[derive(Debug)]
pub struct Prometheus {
    process: Process,
    port: u16,
    data_dir: PathBuf,
}

impl Prometheus {
    /// Writes `config` to `dir/prometheus.yml` and starts [`PROMETHEUS`] with it, listening on
    /// `127.0.0.1:port`, storing its TSDB in `dir/prometheus-data` and logging to
    /// `dir/prometheus.log`. `port` is taken as a parameter because a configuration that
    /// scrapes Prometheus itself has to name it.
    ///
    /// # Panics
    /// Panics if the binary is missing, or the configuration cannot be written, or the process
    /// cannot be started.
    pub fn start(dir: &Path, port: u16, config: &str) -> Self {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: install Debian's prometheus package"
        );
        let config_path = dir.join("prometheus.yml");
        if let Err(err) = std::fs::write(&config_path, config) {
            panic!("write {}: {err}", config_path.display());
        }
        let data_dir = dir.join("prometheus-data");
        let process = Process::spawn(
            "prometheus",
            PROMETHEUS,
            [
                format!("--config.file={}", config_path.display()),
                format!("--storage.tsdb.path={}", data_dir.display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
            ],
            &dir.join("prometheus.log"),
        );
        Self {
            process,
            port,
            data_dir,
        }
    }

    /// The listen port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The TSDB directory (`--storage.tsdb.path`); its WAL is in `wal/`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Waits until `/-/ready` answers 200.
    ///
    /// # Panics
    /// Panics, with the log tail, if Prometheus exits or is not ready `within`.
    pub async fn wait_ready(&mut self, within: Duration) {
        let url = format!("{}/-/ready", self.url());
        self.process.wait_ready(&url, within).await;
    }
}

impl Deref for Prometheus {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.process
    }
}

impl DerefMut for Prometheus {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::free_port;

    #[tokio::test]
    async fn starts_answers_and_stops_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut prom = Prometheus::start(
            dir.path(),
            port,
            &format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: me\n    \
                 static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            ),
        );
        prom.wait_ready(Duration::from_secs(30)).await;
        assert_eq!(prom.url(), format!("http://127.0.0.1:{port}"));
        let build = reqwest::get(format!("{}/api/v1/status/buildinfo", prom.url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(build.contains("\"version\""), "{build}");
        let status = prom.terminate(Duration::from_secs(30));
        assert!(status.success(), "{status}: {}", prom.log_tail());
        assert!(prom.data_dir().join("wal").is_dir());
    }
}
