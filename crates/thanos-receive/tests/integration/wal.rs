//! Durability of the write path: acknowledged writes survive a crash (simulated by
//! dropping the heads without closing and tearing the last WAL record), replay repairs the
//! torn tail, and the repaired WAL keeps accepting and replaying writes.

use std::collections::BTreeMap;
use std::fs::OpenOptions;

use prometheus::Registry;
use thanos_model::{Label, Labels, Matcher, Sample};
use thanos_receive::{Batch, HeadOptions, MultiTsdb, SeriesSamples, Storage};
use thanos_wal::wlog::{WalOptions, segment_path};

const T0: i64 = 1_700_000_000_000;

fn labels(i: usize) -> Labels {
    Labels::from_sorted_unchecked(vec![
        Label::new("__name__", "m"),
        Label::new("i", i.to_string()),
    ])
}

fn open(dir: &std::path::Path) -> (MultiTsdb, Vec<(String, thanos_receive::wal::ReplayStats)>) {
    let storage = Storage {
        dir: dir.to_path_buf(),
        wal: WalOptions {
            segment_size: 64 * 1024,
            ..WalOptions::default()
        },
    };
    MultiTsdb::open(HeadOptions::default(), storage, &Registry::new()).expect("open")
}

/// Every sample of every series of a tenant, by series index label.
fn dump(tsdb: &MultiTsdb, tenant: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
    let head = tsdb.get(tenant).expect("tenant replayed");
    head.select(&[Matcher::equal("__name__", "m")], i64::MIN, i64::MAX)
        .into_iter()
        .map(|s| {
            let key = s.labels.get("i").unwrap_or_default().to_owned();
            (key, s.samples().map(|x| (x.t, x.v)).collect())
        })
        .collect()
}

#[test]
fn acknowledged_writes_survive_a_torn_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut expected: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    let torn_from;
    let wal_dir;
    {
        let (tsdb, stats) = open(dir.path());
        assert!(stats.is_empty());
        // 200 acknowledged requests over two tenants, new series appearing over time,
        // enough data to span several 64 KiB segments.
        for req in 0..200usize {
            for tenant in ["a", "b"] {
                let head = tsdb.tenant_head(tenant).expect("head");
                let series = (0..(10 + req / 4))
                    .map(|i| SeriesSamples {
                        histograms: Vec::new(),
                        labels: labels(i),
                        samples: vec![Sample {
                            t: T0 + req as i64 * 1000,
                            v: (req * 1000 + i) as f64,
                        }],
                    })
                    .collect();
                let report = head
                    .append_batch(&Batch::from_series(series), T0)
                    .expect("acknowledged");
                assert_eq!(report.rejections.samples(), 0);
                if tenant == "a" {
                    for i in 0..(10 + req / 4) {
                        expected
                            .entry(i.to_string())
                            .or_default()
                            .push((T0 + req as i64 * 1000, (req * 1000 + i) as f64));
                    }
                }
            }
        }
        let head = tsdb.get("a").expect("a");
        let wal = head.wal().expect("wal attached");
        assert!(wal.sync_count() > 0);
        let pos = wal.position().expect("position");
        wal_dir = dir.path().join("a").join("wal");
        torn_from = (pos.segment, pos.offset);
        // One more write that reaches the file but is torn by the "crash" below.
        head.append_batch(
            &Batch::from_series(vec![SeriesSamples {
                histograms: Vec::new(),
                labels: labels(9999),
                samples: (0..500)
                    .map(|k| Sample {
                        t: T0 + k,
                        v: k as f64,
                    })
                    .collect(),
            }]),
            T0,
        )
        .expect("written");
        // Dropped without closing: no final flush or segment close.
    }
    // Tear the last record: keep only part of what the last write appended.
    let seg = segment_path(&wal_dir, torn_from.0);
    let len = std::fs::metadata(&seg).expect("segment").len();
    assert!(
        len > torn_from.1 + 100,
        "last write not in segment {torn_from:?}"
    );
    let f = OpenOptions::new().write(true).open(&seg).expect("open");
    f.set_len(torn_from.1 + 100).expect("truncate");
    drop(f);

    let (tsdb, stats) = open(dir.path());
    let names: Vec<&str> = stats.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let a = &stats[0].1;
    assert!(a.repaired_at.is_some(), "{a:?}");
    assert_eq!(a.unknown_refs, 0);
    assert_eq!(a.samples_rejected, 0);
    let got = dump(&tsdb, "a");
    assert!(!got.contains_key("9999"), "torn write replayed");
    assert_eq!(got, expected);
    assert_eq!(dump(&tsdb, "b"), expected);

    // The repaired WAL accepts writes (including to series replayed from it) and
    // replays them after the next restart.
    let head = tsdb.get("a").expect("a");
    head.append_batch(
        &Batch::from_series(vec![
            SeriesSamples {
                histograms: Vec::new(),
                labels: labels(0),
                samples: vec![Sample {
                    t: T0 + 500_000,
                    v: -1.0,
                }],
            },
            SeriesSamples {
                histograms: Vec::new(),
                labels: labels(7777),
                samples: vec![Sample {
                    t: T0 + 500_000,
                    v: -2.0,
                }],
            },
        ]),
        T0,
    )
    .expect("acknowledged");
    drop(head);
    drop(tsdb);
    expected
        .entry("0".into())
        .or_default()
        .push((T0 + 500_000, -1.0));
    expected.insert("7777".into(), vec![(T0 + 500_000, -2.0)]);
    let (tsdb, stats) = open(dir.path());
    assert_eq!(stats[0].1.repaired_at, None, "{:?}", stats[0].1);
    assert_eq!(dump(&tsdb, "a"), expected);
}

#[test]
fn concurrent_writers_replay_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tsdb, _) = open(dir.path());
    let head = tsdb.tenant_head("t").expect("head");
    // Four threads append increasing timestamps to the same series; whatever order the
    // WAL records end up in must replay without out-of-order rejections.
    std::thread::scope(|scope| {
        for w in 0..4i64 {
            let head = &head;
            scope.spawn(move || {
                for k in 0..200i64 {
                    let t = T0 + k * 4 + w;
                    let _ = head
                        .append_batch(
                            &Batch::from_series(vec![SeriesSamples {
                                histograms: Vec::new(),
                                labels: labels(0),
                                samples: vec![Sample { t, v: t as f64 }],
                            }]),
                            T0,
                        )
                        .expect("acknowledged");
                }
            });
        }
    });
    let before = dump(&tsdb, "t");
    drop(head);
    drop(tsdb);
    let (tsdb, stats) = open(dir.path());
    assert_eq!(stats[0].1.samples_rejected, 0, "{:?}", stats[0].1);
    assert_eq!(dump(&tsdb, "t"), before);
    assert!(!before["0"].is_empty());
}

#[test]
fn replay_time_for_one_million_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (tsdb, _) = open(dir.path());
    let head = tsdb.tenant_head("t").expect("head");
    let started = std::time::Instant::now();
    for round in 0..100i64 {
        let series = (0..10_000)
            .map(|i| SeriesSamples {
                histograms: Vec::new(),
                labels: labels(i),
                samples: vec![Sample {
                    t: T0 + round * 15_000,
                    v: round as f64,
                }],
            })
            .collect();
        head.append_batch(&Batch::from_series(series), T0)
            .expect("acknowledged");
    }
    let write = started.elapsed();
    drop(head);
    drop(tsdb);
    let (tsdb, stats) = open(dir.path());
    let s = &stats[0].1;
    assert_eq!(s.samples, 1_000_000);
    assert_eq!(s.samples_appended, 1_000_000);
    assert_eq!(tsdb.get("t").expect("t").num_series(), 10_000);
    eprintln!(
        "wrote 1M samples (10k series) in {write:?}; replayed in {} ms",
        s.duration_ms
    );
}

/// The HTTP handler on a WAL-backed tsdb: concurrent remote-write clients, every 200 means
/// fsynced (group commit), and everything acknowledged replays. Prints the throughput.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ingest_with_fsynced_wal() {
    use thanos_proto::prometheus as pb;
    const CLIENTS: usize = 4;
    const ROUNDS: i64 = 25;
    const SERIES: usize = 1000;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let (tsdb, _) = tokio::task::spawn_blocking(move || open(&path))
        .await
        .expect("join");
    let tsdb = std::sync::Arc::new(tsdb);
    let registry = Registry::new();
    let prober = thanos_server::Prober::new("receive", &registry).expect("prober");
    prober.ready();
    let handler = thanos_receive::Handler::new(
        thanos_receive::HandlerOptions::default(),
        std::sync::Arc::clone(&tsdb),
        prober,
        &registry,
    )
    .expect("handler");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/api/v1/receive",
        listener.local_addr().expect("addr")
    );
    let server = tokio::spawn(async move {
        axum::serve(listener, handler.router())
            .await
            .expect("serve");
    });
    // Pre-encoded bodies: client c owns series c*SERIES.., one sample each per round.
    let bodies: Vec<Vec<bytes::Bytes>> = (0..CLIENTS)
        .map(|c| {
            (0..ROUNDS)
                .map(|round| {
                    let timeseries = (0..SERIES)
                        .map(|i| pb::TimeSeries {
                            labels: vec![
                                pb::Label {
                                    name: "__name__".into(),
                                    value: "m".into(),
                                },
                                pb::Label {
                                    name: "i".into(),
                                    value: (c * SERIES + i).to_string(),
                                },
                            ],
                            samples: vec![pb::Sample {
                                value: round as f64,
                                timestamp: T0 + round * 15_000,
                            }],
                            ..Default::default()
                        })
                        .collect();
                    thanos_proto::remote_write::encode(&pb::WriteRequest {
                        timeseries,
                        metadata: vec![],
                    })
                    .expect("encode")
                })
                .collect()
        })
        .collect();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|bodies| {
            let url = url.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                for body in bodies {
                    let resp = client
                        .post(&url)
                        .header("Content-Type", "application/x-protobuf")
                        .header("Content-Encoding", "snappy")
                        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                        .body(body)
                        .send()
                        .await
                        .expect("send");
                    assert_eq!(resp.status(), 200);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client");
    }
    let elapsed = started.elapsed();
    server.abort();
    let total = CLIENTS as u64 * ROUNDS as u64 * SERIES as u64;
    let head = tsdb.get("default-tenant").expect("tenant");
    let syncs = head.wal().expect("wal").sync_count();
    eprintln!(
        "{total} samples in {} requests over HTTP with fsynced WAL: {elapsed:?}, {:.0} samples/s, {syncs} fsyncs",
        CLIENTS as i64 * ROUNDS,
        total as f64 / elapsed.as_secs_f64()
    );
    assert!(syncs >= 1 && syncs <= CLIENTS as u64 * ROUNDS as u64);
    drop(head);
    drop(tsdb);
    let path = dir.path().to_path_buf();
    let (_, stats) = tokio::task::spawn_blocking(move || open(&path))
        .await
        .expect("join");
    assert_eq!(stats[0].1.samples_appended, total);
}
