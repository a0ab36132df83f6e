//! `kill -9` durability of the real `thanos receive` binary: every write it acknowledged
//! (HTTP 200) before being killed is in its WAL, replays after a restart, and the restarted
//! process accepts more writes that survive a second kill.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use thanos_proto::prometheus as pb;
use thanos_receive::{HeadOptions, MultiTsdb, Storage};
use thanos_wal::wlog::WalOptions;

const THANOS: &str = env!("CARGO_BIN_EXE_thanos");

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Receiver {
    child: KillOnDrop,
    http: u16,
    remote_write: u16,
}

async fn start(tsdb: &Path, log: &Path) -> Receiver {
    let (http, remote_write, grpc) = (free_port(), free_port(), free_port());
    let log_file = std::fs::File::create(log).expect("log");
    let child = Command::new(THANOS)
        .args([
            "receive",
            "--label=replica=\"r0\"",
            &format!("--tsdb.path={}", tsdb.display()),
            &format!("--http-address=127.0.0.1:{http}"),
            &format!("--remote-write.address=127.0.0.1:{remote_write}"),
            &format!("--grpc-address=127.0.0.1:{grpc}"),
        ])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("start thanos receive");
    let mut r = Receiver {
        child: KillOnDrop(child),
        http,
        remote_write,
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = r.child.0.try_wait().expect("poll") {
            panic!(
                "receive exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        let ready = client
            .get(format!("http://127.0.0.1:{}/-/ready", r.http))
            .send()
            .await
            .is_ok_and(|resp| resp.status() == 200);
        if ready {
            return r;
        }
        assert!(Instant::now() < deadline, "receive not ready after 30s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Acked = Arc<Mutex<BTreeMap<String, Vec<(i64, f64)>>>>;

/// Writer `w` sends requests until the server goes away; each request has one sample
/// for `m{w}` and a new series `s{w,t}` (unique across rounds: `t` grows with `start_t`).
/// Acknowledged samples are recorded.
async fn writer(port: u16, w: usize, start_t: i64, acked: Acked) {
    let client = reqwest::Client::new();
    for k in 0..100_000i64 {
        let t = start_t + k;
        let series = |name: &str, extra: Option<String>| {
            let mut labels = vec![pb::Label {
                name: "__name__".into(),
                value: name.into(),
            }];
            if let Some(k) = extra {
                labels.push(pb::Label {
                    name: "k".into(),
                    value: k,
                });
            }
            labels.push(pb::Label {
                name: "w".into(),
                value: w.to_string(),
            });
            pb::TimeSeries {
                labels,
                samples: vec![pb::Sample {
                    value: t as f64,
                    timestamp: t,
                }],
                ..Default::default()
            }
        };
        let body = thanos_proto::remote_write::encode(&pb::WriteRequest {
            timeseries: vec![series("m", None), series("s", Some(t.to_string()))],
            metadata: vec![],
        })
        .expect("encode");
        let resp = client
            .post(format!("http://127.0.0.1:{port}/api/v1/receive"))
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.to_vec())
            .send()
            .await;
        match resp {
            Ok(resp) if resp.status() == 200 => {
                let mut acked = acked.lock().expect("lock");
                acked
                    .entry(format!("m/{w}"))
                    .or_default()
                    .push((t, t as f64));
                acked.insert(format!("s/{w}/{t}"), vec![(t, t as f64)]);
            }
            Ok(resp) => panic!("unexpected status {}", resp.status()),
            Err(_) => return,
        }
    }
}

/// Replays the tenant WAL left on disk and returns its samples in the same shape.
fn on_disk(tsdb: &Path) -> BTreeMap<String, Vec<(i64, f64)>> {
    let copy = tempfile::tempdir().expect("tempdir");
    let dst = copy.path().join("default-tenant").join("wal");
    std::fs::create_dir_all(&dst).expect("mkdir");
    for entry in std::fs::read_dir(tsdb.join("default-tenant").join("wal")).expect("wal dir") {
        let entry = entry.expect("entry");
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), dst.join(entry.file_name())).expect("copy");
        }
    }
    let storage = Storage {
        dir: copy.path().to_path_buf(),
        wal: WalOptions::default(),
    };
    let (tsdb, _) = MultiTsdb::open(
        HeadOptions::default(),
        storage,
        &prometheus::Registry::new(),
    )
    .expect("replay");
    let head = tsdb.get("default-tenant").expect("tenant");
    head.select(&[], i64::MIN, i64::MAX)
        .into_iter()
        .map(|s| {
            let key = match s.labels.get("k") {
                Some(k) => format!("s/{}/{k}", s.labels.get("w").unwrap_or_default()),
                None => format!("m/{}", s.labels.get("w").unwrap_or_default()),
            };
            (key, s.samples().map(|x| (x.t, x.v)).collect())
        })
        .collect()
}

/// Runs writers against `r` for `for_ms`, then SIGKILLs it while requests are in flight.
async fn write_then_kill(r: &mut Receiver, start_t: i64, for_ms: u64, acked: &Acked) {
    let writers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(writer(r.remote_write, w, start_t, Arc::clone(acked))))
        .collect();
    tokio::time::sleep(Duration::from_millis(for_ms)).await;
    r.child.0.kill().expect("SIGKILL");
    r.child.0.wait().expect("wait");
    for w in writers {
        w.await.expect("writer");
    }
}

fn check(tsdb: &Path, acked: &Acked, min_writes: usize) {
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= min_writes,
        "only {} writes acknowledged",
        acked.len()
    );
    let got = on_disk(tsdb);
    for (key, samples) in &acked {
        let have = got.get(key).map(Vec::as_slice).unwrap_or_default();
        for s in samples {
            assert!(have.contains(s), "acknowledged sample {key} {s:?} lost");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tsdb = dir.path().join("tsdb");
    let log = dir.path().join("receive.log");
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let acked: Acked = Arc::default();

    let mut r = start(&tsdb, &log).await;
    write_then_kill(&mut r, t0, 1500, &acked).await;
    check(&tsdb, &acked, 50);

    // Restart on the same directory: replay (and repair of a torn tail), then more writes
    // (later timestamps, same series) and a second kill.
    let mut r = start(&tsdb, &dir.path().join("receive2.log")).await;
    let before = acked.lock().expect("lock").len();
    write_then_kill(&mut r, t0 + 200_000, 1500, &acked).await;
    check(&tsdb, &acked, before + 50);
}
