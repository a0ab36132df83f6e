//! Black-box tests of the `rw-load` binary against its own draining sink.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

/// A sink process killed on drop.
struct Sink {
    child: Child,
    addr: String,
}

impl Sink {
    fn start(status: u16) -> Sink {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rw-load"))
            .args(["--sink", "127.0.0.1:0", "--sink-status"])
            .arg(status.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().to_owned();
        assert!(addr.starts_with("127.0.0.1:"), "first line: {addr:?}");
        Sink { child, addr }
    }

    fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn load(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rw-load"))
        .args(args)
        .output()
        .unwrap()
}

fn report(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "rw-load failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn counts_acknowledged_samples_per_phase() {
    let sink = Sink::start(204);
    let url = sink.url();
    for protocol in ["1", "2"] {
        let out = load(&[
            "--url",
            &url,
            "--series",
            "5000",
            "--batch",
            "1000",
            "--concurrency",
            "3",
            "--warmup-rounds",
            "2",
            "--rounds",
            "4",
            "--protocol",
            protocol,
            "--header",
            "THANOS-TENANT: bench",
        ]);
        let json = report(&out);
        let warmup = &json["warmup"];
        let measured = &json["measured"];
        assert_eq!(warmup["requests"], 10, "{json}");
        assert_eq!(warmup["samples_acked"], 10_000, "{json}");
        assert_eq!(measured["requests"], 20, "{json}");
        assert_eq!(measured["requests_ok"], 20, "{json}");
        assert_eq!(measured["samples_acked"], 20_000, "{json}");
        assert_eq!(measured["transport_errors"], 0, "{json}");
        assert!(
            measured["non_2xx"].as_object().unwrap().is_empty(),
            "{json}"
        );
        assert!(measured["samples_per_s"].as_f64().unwrap() > 0.0, "{json}");
        assert!(
            measured["latency_ms"]["p99"].as_f64().unwrap()
                >= measured["latency_ms"]["p50"].as_f64().unwrap()
        );
        assert!(measured["bytes_sent"].as_u64().unwrap() > 0);
        let label_bytes = json["label_bytes_per_series"].as_f64().unwrap();
        assert!((100.0..=150.0).contains(&label_bytes), "{json}");
    }
}

#[test]
fn counts_rejections_by_status() {
    let sink = Sink::start(409);
    let out = load(&[
        "--url",
        &sink.url(),
        "--series",
        "300",
        "--batch",
        "100",
        "--warmup-rounds",
        "0",
        "--rounds",
        "2",
    ]);
    let json = report(&out);
    let measured = &json["measured"];
    assert_eq!(measured["requests"], 6, "{json}");
    assert_eq!(measured["requests_ok"], 0, "{json}");
    assert_eq!(measured["samples_acked"], 0, "{json}");
    assert_eq!(measured["non_2xx"]["409"], 6, "{json}");
    assert!(
        measured["first_error"].as_str().unwrap().starts_with("409"),
        "{json}"
    );
}

#[test]
fn zero_duration_sends_nothing_after_the_warmup() {
    let sink = Sink::start(204);
    let out = load(&[
        "--url",
        &sink.url(),
        "--series",
        "200",
        "--batch",
        "100",
        "--warmup-rounds",
        "1",
        "--rounds",
        "50",
        "--duration",
        "0s",
    ]);
    let json = report(&out);
    assert_eq!(json["warmup"]["requests_ok"], 2, "{json}");
    assert_eq!(json["measured"]["requests"], 0, "{json}");
    assert_eq!(json["measured"]["samples_acked"], 0, "{json}");
}

#[test]
fn rejects_bad_flags() {
    let out = load(&["--url", "http://127.0.0.1:9/", "--header", "no-colon"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid --header"));
    let out = load(&["--url", "http://127.0.0.1:9/", "--labels-per-series", "3"]);
    assert!(!out.status.success());
}
