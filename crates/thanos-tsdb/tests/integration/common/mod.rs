//! Helpers shared by the integration tests: driving Debian's `promtool` and generating
//! OpenMetrics input.

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use thanos_model::{Labels, Sample};

/// Path of promtool; the tests fail (not skip) when it is missing: CI installs it.
pub fn promtool() -> PathBuf {
    let p = PathBuf::from("/usr/bin/promtool");
    assert!(
        p.exists(),
        "promtool not found at /usr/bin/promtool; install Debian's prometheus package"
    );
    p
}

/// Runs promtool with `args`, asserting success; returns stdout.
pub fn run_promtool(args: &[&str]) -> String {
    let out = Command::new(promtool())
        .args(args)
        .output()
        .expect("running promtool");
    assert!(
        out.status.success(),
        "promtool {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A deterministic pseudo-random generator (64-bit LCG), to keep test data reproducible.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(
            seed.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        )
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 17
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Test series: labels and samples in time order.
pub type SeriesData = Vec<(Labels, Vec<Sample>)>;

/// Generates series covering several hours with irregular timestamps (exercising every
/// delta-of-delta bucket) and special float values.
pub fn generate_series(seed: u64, families: usize, per_family: usize, hours: i64) -> SeriesData {
    let mut rng = Lcg::new(seed);
    let start: i64 = 1_700_000_000_000;
    let specials = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        5e-324,
        1e300,
    ];
    let mut out = Vec::new();
    for f in 0..families {
        for s in 0..per_family {
            let labels = Labels::from_pairs([
                ("__name__", format!("metric_{f}")),
                ("instance", format!("host-{s}:9100")),
                ("job", if s % 2 == 0 { "node" } else { "app" }.to_string()),
            ]);
            let mut t = start + rng.below(60_000) as i64;
            let end = start + hours * 3_600_000;
            let mut v = rng.below(1000) as f64;
            let mut samples = Vec::new();
            while t < end {
                let value = match rng.below(40) {
                    0 => specials[rng.below(specials.len() as u64) as usize],
                    1..=10 => v,
                    11..=20 => (rng.below(1_000_000) as f64) / 1000.0,
                    _ => {
                        v += rng.below(100) as f64;
                        v
                    }
                };
                samples.push(Sample::new(t, value));
                // Mostly regular 15s steps, sometimes jitter in every dod bucket.
                let step = match rng.below(20) {
                    0 => 1 + rng.below(5_000) as i64,
                    1 => 30_000 + rng.below(60_000) as i64,
                    2 => 200_000 + rng.below(400_000) as i64,
                    3 => 1_000_000 + rng.below(3_000_000) as i64,
                    _ => 15_000,
                };
                t += step;
            }
            out.push((labels, samples));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn om_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:e}")
    }
}

/// Writes `series` as an OpenMetrics file (timestamps in seconds with ms precision).
pub fn write_openmetrics(path: &Path, series: &SeriesData) {
    let mut text = String::new();
    let mut last_family = String::new();
    // Families must be contiguous: sort by metric name (already sorted by labels).
    for (labels, samples) in series {
        let name = labels.metric_name().unwrap_or_default().to_string();
        if name != last_family {
            text.push_str(&format!("# TYPE {name} gauge\n"));
            last_family = name.clone();
        }
        let inner: Vec<String> = labels
            .iter()
            .filter(|l| l.name != "__name__")
            .map(|l| format!("{}=\"{}\"", l.name, l.value))
            .collect();
        for s in samples {
            text.push_str(&format!(
                "{name}{{{}}} {} {}.{:03}\n",
                inner.join(","),
                om_value(s.v),
                s.t.div_euclid(1000),
                s.t.rem_euclid(1000)
            ));
        }
    }
    text.push_str("# EOF\n");
    fs::write(path, text).unwrap();
}

/// Runs `promtool tsdb create-blocks-from openmetrics` and returns the block directories.
pub fn promtool_create_blocks(input: &Path, out: &Path) -> Vec<PathBuf> {
    run_promtool(&[
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    let mut blocks: Vec<PathBuf> = fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").exists())
        .collect();
    blocks.sort();
    blocks
}

/// One dumped sample line: labels text, value, timestamp.
#[derive(Debug, Clone)]
pub struct DumpLine {
    pub labels: String,
    pub v: f64,
    pub t: i64,
}

impl PartialEq for DumpLine {
    fn eq(&self, o: &Self) -> bool {
        self.labels == o.labels
            && self.t == o.t
            && ((self.v.is_nan() && o.v.is_nan()) || self.v.to_bits() == o.v.to_bits())
    }
}

/// Runs `promtool tsdb dump` on a data dir holding `blocks` (copied into a fresh dir with
/// an empty `wal`, which promtool 2.42 requires) and parses its output.
pub fn promtool_dump(blocks: &[&Path]) -> Vec<DumpLine> {
    let db = tempfile::tempdir().unwrap();
    for b in blocks {
        copy_dir(b, &db.path().join(b.file_name().unwrap()));
    }
    fs::create_dir_all(db.path().join("wal")).unwrap();
    let out = run_promtool(&["tsdb", "dump", db.path().to_str().unwrap()]);
    out.lines().map(parse_dump_line).collect()
}

fn parse_dump_line(line: &str) -> DumpLine {
    let close = line.rfind("} ").expect("labels in dump line");
    let labels = line[..=close].to_string();
    let mut rest = line[close + 2..].split(' ');
    let v = rest.next().unwrap();
    let t = rest.next().unwrap().parse().unwrap();
    let v = match v {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().unwrap(),
    };
    DumpLine { labels, v, t }
}

/// Dump lines for `series`, in promtool's order (series by labels, samples by time).
pub fn expected_dump(series: &SeriesData) -> Vec<DumpLine> {
    let mut out = Vec::new();
    for (l, samples) in series {
        for s in samples {
            out.push(DumpLine {
                labels: l.to_string(),
                v: s.v,
                t: s.t,
            });
        }
    }
    out
}

pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Kills and reaps the child process when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Minimal HTTP/1.0 GET against 127.0.0.1; returns status and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split(' ').nth(1)?.parse().ok()?;
    let body = resp.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// Percent-encodes a query parameter.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A free loopback port (bound to 127.0.0.1:0 and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts Debian's Prometheus on `127.0.0.1:port` with `config` and `data_dir` (retention
/// 100y) plus `extra` flags, and waits until it is ready. Fails when it is not installed.
pub fn start_prometheus(config: &Path, data_dir: &Path, port: u16, extra: &[&str]) -> KillOnDrop {
    let prometheus = Path::new("/usr/bin/prometheus");
    assert!(
        prometheus.exists(),
        "prometheus not found at /usr/bin/prometheus; install Debian's prometheus package"
    );
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data_dir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=100y")
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting prometheus");
    let guard = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, _)) = http_get(port, "/-/ready") {
            break;
        }
        assert!(Instant::now() < deadline, "prometheus did not become ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    guard
}
