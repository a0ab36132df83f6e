//! Byte compatibility with a real Prometheus (Debian's 2.42 package), both ways:
//! we replay the WAL of a Prometheus killed with SIGKILL (cross-checked against the counters
//! it exposed and against the independent Python reader), and Prometheus replays a WAL we
//! wrote (a checkpoint plus a later segment) and serves its samples.

use crate::common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use thanos_model::Labels;
use thanos_wal::checkpoint::{KeepFn, checkpoint};
use thanos_wal::record::{self, Record, RefSample, RefSeries};
use thanos_wal::wlog::{Compression, Wal, WalOptions};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// Kills the child on drop so a failing test leaves no server behind.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200").then(|| body.to_string())
}

/// `sum(prometheus_tsdb_head_samples_appended_total)`, if Prometheus answers.
fn head_samples_appended(port: u16) -> Option<f64> {
    let body = http_get(
        port,
        "/api/v1/query?query=sum(prometheus_tsdb_head_samples_appended_total)",
    )?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// Starts Prometheus on a free loopback port with the given scrape config body.
fn start_prometheus(root: &Path, data: &Path, scrape_self: bool) -> (Server, u16) {
    assert!(
        Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: install Debian's prometheus package"
    );
    let port = free_port();
    let config = root.join("prometheus.yml");
    let mut yaml = String::from("global:\n  scrape_interval: 1s\n");
    if scrape_self {
        yaml.push_str(&format!(
            "scrape_configs:\n  - job_name: self\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ));
    }
    std::fs::write(&config, yaml).unwrap();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    (Server(child), port)
}

/// Runs an instant query and returns `(labels JSON, value)` pairs.
fn query(port: u16, q: &str, time_ms: i64) -> Option<Vec<(serde_json::Value, f64)>> {
    let path = format!(
        "/api/v1/query?query={}&time={}.{:03}",
        q,
        time_ms / 1000,
        time_ms % 1000
    );
    let v: serde_json::Value = serde_json::from_str(&http_get(port, &path)?).ok()?;
    v["data"]["result"]
        .as_array()?
        .iter()
        .map(|r| Some((r["metric"].clone(), r["value"][1].as_str()?.parse().ok()?)))
        .collect()
}

#[test]
fn replays_wal_of_killed_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (mut server, port) = start_prometheus(tmp.path(), &data, true);

    // Wait for at least three scrapes: the appended-samples counter must have grown twice.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::<f64>::new();
    let appended = loop {
        assert!(
            Instant::now() < deadline,
            "prometheus made no progress: {seen:?}"
        );
        if let Some(v) = head_samples_appended(port)
            && seen.last() != Some(&v)
        {
            seen.push(v);
        }
        if seen.iter().filter(|v| **v > 0.0).count() >= 3 {
            break *seen.last().unwrap_or(&0.0);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // SIGKILL: the WAL stays exactly as a crash leaves it.
    server.0.kill().unwrap();
    server.0.wait().unwrap();

    let wal = data.join("wal");
    let replay = common::replay(&wal);
    let mut series = HashSet::new();
    let mut samples = 0u64;
    for rec in &replay.records {
        match rec {
            Record::Series(s) => {
                for s in s {
                    assert!(!s.labels.is_empty());
                    assert!(series.insert(s.series_ref), "series {} twice", s.series_ref);
                }
            }
            Record::Samples(s) => {
                for s in s {
                    assert!(
                        series.contains(&s.series_ref),
                        "sample for series {} before its series record",
                        s.series_ref
                    );
                    samples += 1;
                }
            }
            Record::Metadata(_) | Record::Exemplars(_) | Record::Tombstones(_) => {}
            other => panic!("unexpected record in a float-only WAL: {other:?}"),
        }
    }
    assert!(series.len() > 50, "only {} series", series.len());
    assert!(
        samples as f64 >= appended,
        "replayed {samples} samples, Prometheus had appended {appended}"
    );

    // The independent reader agrees exactly.
    let py = common::wal_inspect(&wal);
    assert_eq!(py.get("series").copied(), Some(series.len() as u64));
    assert_eq!(py.get("samples").copied(), Some(samples));
    assert_eq!(py, replay.counts());
}

#[test]
fn prometheus_replays_our_wal() {
    const SERIES: u64 = 200;
    const SAMPLES: i64 = 6;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t0 = now_ms - 120_000;
    let mut wal = Wal::open(
        data.join("wal"),
        WalOptions {
            compression: Compression::Snappy,
            ..WalOptions::default()
        },
    )
    .unwrap();
    // Long, incompressible label values make the series record span several pages even
    // after Snappy compression.
    let series: Vec<RefSeries> = (1..=SERIES)
        .map(|id| RefSeries {
            series_ref: id,
            labels: Labels::from_pairs([
                ("__name__", "thanos_wal_test".to_string()),
                ("id", id.to_string()),
                ("pad", pad(id)),
            ]),
        })
        .collect();
    let mut buf = Vec::new();
    record::encode_series(&series, &mut buf);
    wal.log(&[&buf]).unwrap();
    let wal_dir = data.join("wal");
    for k in 0..SAMPLES {
        if k == SAMPLES / 2 {
            // Checkpoint the first half, dropping the oldest round of samples: Prometheus
            // must replay checkpoint.00000000 and then segment 1.
            let covered = wal.segment();
            wal.cut().unwrap();
            let mut filter = KeepFn {
                keep: |_| true,
                mint: t0 + 1,
            };
            checkpoint(&wal_dir, 0, covered, &mut filter, Compression::Snappy).unwrap();
        }
        let samples: Vec<RefSample> = (1..=SERIES)
            .map(|id| RefSample {
                series_ref: id,
                t: t0 + k * 10_000,
                v: (id * 10) as f64 + k as f64,
            })
            .collect();
        buf.clear();
        record::encode_samples(&samples, &mut buf);
        wal.log(&[&buf]).unwrap();
    }
    wal.sync().unwrap();
    drop(wal); // as after a crash: the segment ends mid-page
    let cp_segment = wal_dir.join("checkpoint.00000000/00000000");
    assert!(std::fs::metadata(&cp_segment).unwrap().len() > 32 * 1024);
    assert!(wal_dir.join("checkpoint.00000000").is_dir());
    assert!(!wal_dir.join("00000000").exists());

    let (_server, port) = start_prometheus(tmp.path(), &data, false);
    let t_last = t0 + (SAMPLES - 1) * 10_000;
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = loop {
        assert!(Instant::now() < deadline, "prometheus did not answer");
        if let Some(r) = query(port, "count_over_time(thanos_wal_test[5m])", t_last)
            && !r.is_empty()
        {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(count.len(), SERIES as usize);
    // The first round was dropped by the checkpoint.
    assert!(
        count.iter().all(|(_, v)| *v == (SAMPLES - 1) as f64),
        "{count:?}"
    );
    let last = query(port, "thanos_wal_test", t_last).unwrap();
    assert_eq!(last.len(), SERIES as usize);
    for (metric, v) in last {
        let id: u64 = metric["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(v, (id * 10) as f64 + (SAMPLES - 1) as f64);
        assert_eq!(metric["pad"].as_str().unwrap(), pad(id));
    }
}

/// A pseudo-random 300-character alphanumeric label value for series `id`.
fn pad(id: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..300)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}
