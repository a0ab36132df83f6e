//! The real `thanos receive` binary cuts its head into blocks and ships them: samples
//! remote-written over several (1 minute) block ranges are cut by the periodic compaction
//! and uploaded to an S3 bucket while the receiver runs; SIGTERM flushes the rest of the
//! head into blocks, uploads them and exits 0. The bucket then holds blocks labelled with
//! the `--label`s and the tenant, `source: receive`, whose samples are exactly the
//! acknowledged ones, each once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prometheus::Registry;
use thanos_objstore::{Bucket, BucketConfig, Path as ObjectPath};
use thanos_proto::prometheus as pb;
use thanos_test_support::S3TestServer;
use thanos_tsdb::block::Block;
use thanos_tsdb::meta::BlockMeta;

const THANOS: &str = env!("CARGO_BIN_EXE_thanos");
const MINUTE: i64 = 60_000;

type Samples = BTreeMap<String, Vec<(i64, f64)>>;

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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

struct Receiver {
    child: KillOnDrop,
    remote_write: u16,
    log: PathBuf,
}

async fn start(tsdb: &Path, log: &Path, objstore_yaml: &str) -> Receiver {
    let (http, remote_write, grpc) = (free_port(), free_port(), free_port());
    let log_file = std::fs::File::create(log).expect("log");
    let child = Command::new(THANOS)
        .args([
            "receive",
            "--label=replica=\"r0\"",
            "--tsdb.min-block-duration=1m",
            "--tsdb.max-block-duration=1m",
            &format!("--objstore.config={objstore_yaml}"),
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
        remote_write,
        log: log.to_path_buf(),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = r.child.0.try_wait().expect("poll") {
            panic!("receive exited with {status}: {}", r.log_text());
        }
        let ready = client
            .get(format!("http://127.0.0.1:{http}/-/ready"))
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

impl Receiver {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends one remote-write request with a sample at `t` for each of `series` series;
    /// records the samples when acknowledged (200).
    async fn write(&self, client: &reqwest::Client, t: i64, series: usize, acked: &mut Samples) {
        let timeseries = (0..series)
            .map(|i| pb::TimeSeries {
                labels: vec![
                    pb::Label {
                        name: "__name__".into(),
                        value: "m".into(),
                    },
                    pb::Label {
                        name: "i".into(),
                        value: i.to_string(),
                    },
                ],
                samples: vec![pb::Sample {
                    value: (t / 1000) as f64 + i as f64,
                    timestamp: t,
                }],
                ..Default::default()
            })
            .collect();
        let body = thanos_proto::remote_write::encode(&pb::WriteRequest {
            timeseries,
            metadata: vec![],
        })
        .expect("encode");
        let resp = client
            .post(format!(
                "http://127.0.0.1:{}/api/v1/receive",
                self.remote_write
            ))
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.to_vec())
            .send()
            .await
            .expect("send");
        assert_eq!(
            resp.status(),
            200,
            "t={t}: {}",
            resp.text().await.unwrap_or_default()
        );
        for i in 0..series {
            acked
                .entry(format!("{{__name__=\"m\", i=\"{i}\"}}"))
                .or_default()
                .push((t, (t / 1000) as f64 + i as f64));
        }
    }

    /// SIGTERM, then waits (at most 60 s) for a successful exit.
    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.0.try_wait().expect("poll") {
                assert!(status.success(), "exit {status}: {}", self.log_text());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn s3() -> (S3TestServer, String, Bucket) {
    let server = S3TestServer::start().await;
    server.create_bucket("thanos");
    let yaml = server.objstore_yaml("thanos");
    let bucket = BucketConfig::parse(&yaml)
        .expect("config")
        .build("test", &Registry::new())
        .expect("bucket");
    (server, yaml, bucket)
}

/// The complete blocks in the bucket (those with a meta.json), downloaded into `into`.
async fn download_blocks(bucket: &Bucket, into: &Path) -> Vec<(BlockMeta, Block)> {
    let objects = bucket.list(None).await.expect("list");
    let mut by_block: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for o in &objects {
        let path = o.location.to_string();
        if let Some((block, rest)) = path.split_once('/') {
            by_block
                .entry(block.to_owned())
                .or_default()
                .push(rest.to_owned());
        }
    }
    let mut out = Vec::new();
    for (block, files) in by_block {
        if !files.iter().any(|f| f == "meta.json") {
            continue;
        }
        let dir = into.join(&block);
        for f in &files {
            let data = bucket
                .get(&ObjectPath::from(format!("{block}/{f}")))
                .await
                .expect("download");
            let local = dir.join(f);
            std::fs::create_dir_all(local.parent().expect("parent")).expect("mkdir");
            std::fs::write(&local, &data).expect("write");
        }
        let opened = Block::open(&dir).expect("open downloaded block");
        out.push((opened.meta().clone(), opened));
    }
    out
}

/// Every sample of the blocks, checking that no sample is in two blocks.
fn block_samples(blocks: &[(BlockMeta, Block)]) -> Samples {
    let mut out = Samples::new();
    for (meta, block) in blocks {
        for r in block.index().all_postings().expect("postings") {
            let (labels, samples) = block.series_samples(r).expect("series");
            for s in &samples {
                assert!(
                    s.t >= meta.min_time && s.t < meta.max_time,
                    "sample {} outside block {} [{}, {})",
                    s.t,
                    meta.ulid,
                    meta.min_time,
                    meta.max_time
                );
            }
            out.entry(labels.to_string())
                .or_default()
                .extend(samples.iter().map(|s| (s.t, s.v)));
        }
    }
    for samples in out.values_mut() {
        samples.sort_by_key(|s| s.0);
        let n = samples.len();
        samples.dedup_by_key(|s| s.0);
        assert_eq!(samples.len(), n, "a sample is in two blocks");
    }
    out
}

fn check_meta(meta: &BlockMeta) {
    assert_eq!(meta.compaction.level, 1);
    let thanos = meta.thanos.as_ref().expect("thanos section");
    assert_eq!(thanos.source, "receive");
    let labels: BTreeSet<(&str, &str)> = thanos
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        BTreeSet::from([("replica", "r0"), ("tenant_id", "default-tenant")])
    );
}

async fn wait_for_blocks(bucket: &Bucket, at_least: usize, r: &Receiver) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let metas = bucket
            .list(None)
            .await
            .expect("list")
            .iter()
            .filter(|o| o.location.as_ref().ends_with("/meta.json"))
            .count();
        if metas >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {metas} blocks uploaded after 40s: {}",
            r.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_are_cut_shipped_and_flushed_on_sigterm() {
    let (_server, yaml, bucket) = s3().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tsdb = dir.path().join("tsdb");
    let mut r = start(&tsdb, &dir.path().join("receive.log"), &yaml).await;
    let client = reqwest::Client::new();
    let mut acked = Samples::new();
    // Oldest first, every 5 s over the last 6 minutes: the head spans 6 block ranges, so
    // the compaction (every 6 s) cuts blocks while the receiver runs.
    let now = now_ms();
    let start_t = now - 6 * MINUTE;
    let mut t = start_t;
    while t <= now {
        r.write(&client, t, 10, &mut acked).await;
        t += 5_000;
    }
    wait_for_blocks(&bucket, 4, &r).await;
    let local_blocks = std::fs::read_dir(tsdb.join("default-tenant"))
        .expect("tenant dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().join("meta.json").is_file())
        })
        .count();
    assert!(local_blocks >= 4, "{local_blocks} local blocks");

    // More writes after the cuts, then SIGTERM: the rest of the head is flushed and shipped.
    let mut t = now + 5_000;
    let end = now_ms();
    while t <= end + 2_000 {
        r.write(&client, t, 10, &mut acked).await;
        t += 1_000;
    }
    r.terminate();
    let progress = std::fs::read_to_string(tsdb.join("default-tenant/thanos.shipper.json"))
        .expect("shipper progress file");
    let download = tempfile::tempdir().expect("tempdir");
    let blocks = download_blocks(&bucket, download.path()).await;
    assert!(blocks.len() >= 5, "{} blocks", blocks.len());
    for (meta, _) in &blocks {
        assert!(progress.contains(&meta.ulid.to_string()), "{progress}");
    }
    for (meta, _) in &blocks {
        check_meta(meta);
    }
    assert_eq!(block_samples(&blocks), acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_a_young_head_into_an_uploaded_block() {
    let (_server, yaml, bucket) = s3().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tsdb = dir.path().join("tsdb");
    let mut r = start(&tsdb, &dir.path().join("receive.log"), &yaml).await;
    let client = reqwest::Client::new();
    let mut acked = Samples::new();
    let now = now_ms();
    for k in 0..5 {
        r.write(&client, now + k * 1_000, 3, &mut acked).await;
    }
    // Nothing is old enough to be cut by the compaction.
    assert!(
        bucket.list(None).await.expect("list").is_empty(),
        "uploaded before shutdown"
    );
    r.terminate();
    let download = tempfile::tempdir().expect("tempdir");
    let blocks = download_blocks(&bucket, download.path()).await;
    assert!(
        (1..=2).contains(&blocks.len()),
        "{} blocks (the head spans at most one block boundary)",
        blocks.len()
    );
    for (meta, _) in &blocks {
        check_meta(meta);
    }
    assert_eq!(block_samples(&blocks), acked);
    // The local copy stays, and a restart finds an empty head over the flushed blocks.
    let mut r = start(&tsdb, &dir.path().join("receive2.log"), &yaml).await;
    r.terminate();
    let again = tempfile::tempdir().expect("tempdir");
    assert_eq!(
        download_blocks(&bucket, again.path()).await.len(),
        blocks.len(),
        "nothing new to flush or upload after a restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_bucket_keeps_blocks_until_a_later_upload() {
    // A bucket on a port nobody listens on: uploads fail, blocks stay local.
    let dead = thanos_test_support::objstore_yaml(
        &format!("127.0.0.1:{}", free_port()),
        "thanos",
        "key",
        "secret",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let tsdb = dir.path().join("tsdb");
    let mut r = start(&tsdb, &dir.path().join("receive.log"), &dead).await;
    let client = reqwest::Client::new();
    let mut acked = Samples::new();
    let now = now_ms();
    let mut t = now - 3 * MINUTE;
    while t <= now {
        r.write(&client, t, 4, &mut acked).await;
        t += 10_000;
    }
    let stopping = Instant::now();
    r.terminate();
    let stop_time = stopping.elapsed();
    let local: Vec<PathBuf> = std::fs::read_dir(tsdb.join("default-tenant"))
        .expect("tenant dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    assert!(!local.is_empty(), "flushed blocks are kept locally");
    let blocks: Vec<(BlockMeta, Block)> = local
        .iter()
        .map(|p| {
            let b = Block::open(p).expect("open local block");
            (b.meta().clone(), b)
        })
        .collect();
    assert_eq!(block_samples(&blocks), acked, "stopped in {stop_time:?}");

    // With a reachable bucket, the next start uploads them.
    let (_server, yaml, bucket) = s3().await;
    let r = start(&tsdb, &dir.path().join("receive2.log"), &yaml).await;
    wait_for_blocks(&bucket, local.len(), &r).await;
    let download = tempfile::tempdir().expect("tempdir");
    let uploaded = download_blocks(&bucket, download.path()).await;
    assert_eq!(uploaded.len(), local.len());
    for (meta, _) in &uploaded {
        check_meta(meta);
    }
    assert_eq!(block_samples(&uploaded), acked);
}
