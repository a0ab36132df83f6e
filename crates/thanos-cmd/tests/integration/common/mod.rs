//! Helpers shared by the process tests of the `thanos` binary.

// Each test binary uses a different subset.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use thanos_test_support::process::{Process, free_port};

/// The `thanos` binary built for these tests.
pub const THANOS: &str = env!("CARGO_BIN_EXE_thanos");

/// A running `thanos receive` on free loopback ports, ready.
pub struct Receive {
    /// The process (killed with SIGKILL when dropped).
    pub process: Process,
    /// `--http-address` port.
    pub http: u16,
    /// `--remote-write.address` port.
    pub remote_write: u16,
    /// `--grpc-address` port.
    pub grpc: u16,
}

impl Receive {
    /// Starts `thanos receive --tsdb.path=<tsdb> <extra>…` on free ports, logging to `log`,
    /// and waits (at most 30 s) until `/-/ready` answers 200.
    pub async fn start(tsdb: &Path, log: &Path, extra: &[&str]) -> Self {
        let (http, remote_write, grpc) = (free_port(), free_port(), free_port());
        let mut args = vec![
            "receive".to_owned(),
            format!("--tsdb.path={}", tsdb.display()),
            format!("--http-address=127.0.0.1:{http}"),
            format!("--remote-write.address=127.0.0.1:{remote_write}"),
            format!("--grpc-address=127.0.0.1:{grpc}"),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let mut process = Process::spawn("receive", THANOS, &args, log);
        process
            .wait_ready(
                &format!("http://127.0.0.1:{http}/-/ready"),
                Duration::from_secs(30),
            )
            .await;
        Self {
            process,
            http,
            remote_write,
            grpc,
        }
    }

    /// The remote-write URL, `http://127.0.0.1:PORT/api/v1/receive`.
    pub fn remote_write_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/receive", self.remote_write)
    }
}
