//! `kill -9` durability of the real `thanos receive` binary: every write it acknowledged
//! (HTTP 200) before being killed is in its WAL, replays after a restart, and the restarted
//! process accepts more writes that survive a second kill.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Receive;
use thanos_proto::prometheus as pb;
use thanos_receive::{HeadOptions, MultiTsdb, Storage};
use thanos_test_support::now_ms;
use thanos_test_support::remote_write;
use thanos_wal::wlog::WalOptions;

async fn start(tsdb: &Path, log: &Path) -> Receive {
    Receive::start(tsdb, log, &["--label=replica=\"r0\""]).await
}

type Acked = Arc<Mutex<BTreeMap<String, Vec<(i64, f64)>>>>;

/// Writer `w` sends requests until the server goes away; each request has one sample
/// for `m{w}` and a new series `s{w,t}` (unique across rounds: `t` grows with `start_t`).
/// Acknowledged samples are recorded.
async fn writer(port: u16, w: usize, start_t: i64, acked: Acked) {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/receive");
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
        let resp = remote_write::request(
            &client,
            &url,
            vec![series("m", None), series("s", Some(t.to_string()))],
        )
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
async fn write_then_kill(r: &mut Receive, start_t: i64, for_ms: u64, acked: &Acked) {
    let writers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(writer(r.remote_write, w, start_t, Arc::clone(acked))))
        .collect();
    tokio::time::sleep(Duration::from_millis(for_ms)).await;
    r.process.kill();
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
    let t0 = now_ms();
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
