//! The real `thanos receive` binary cuts its head into blocks and ships them: samples
//! remote-written over several (1 minute) block ranges are cut by the periodic compaction
//! and uploaded to an S3 bucket while the receiver runs; SIGTERM flushes the rest of the
//! head into blocks, uploads them and exits 0. The bucket then holds blocks labelled with
//! the `--label`s and the tenant, `source: receive`, whose samples are exactly the
//! acknowledged ones, each once.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Receive;
use prometheus::Registry;
use thanos_objstore::{Bucket, BucketConfig, Path as ObjectPath};
use thanos_proto::prometheus as pb;
use thanos_test_support::process::free_port;
use thanos_test_support::{S3TestServer, now_ms, remote_write};
use thanos_tsdb::block::Block;
use thanos_tsdb::meta::BlockMeta;

const MINUTE: i64 = 60_000;

type Samples = BTreeMap<String, Vec<(i64, f64)>>;

struct Receiver {
    receive: Receive,
    remote_write: String,
    client: reqwest::Client,
}

async fn start(tsdb: &Path, log: &Path, objstore_yaml: &str) -> Receiver {
    let objstore = format!("--objstore.config={objstore_yaml}");
    let receive = Receive::start(
        tsdb,
        log,
        &[
            "--label=replica=\"r0\"",
            "--tsdb.min-block-duration=1m",
            "--tsdb.max-block-duration=1m",
            &objstore,
        ],
    )
    .await;
    Receiver {
        remote_write: receive.remote_write_url(),
        receive,
        client: reqwest::Client::new(),
    }
}

impl Receiver {
    /// Sends one remote-write request with a sample at `t` for each of `series` series;
    /// records the samples when acknowledged (200).
    async fn write(&self, t: i64, series: usize, acked: &mut Samples) {
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
            .collect::<Vec<_>>();
        let resp = remote_write::request(&self.client, &self.remote_write, timeseries)
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

    /// Writes `series` samples at each of `from`, `from + step`, … up to `to` (inclusive).
    async fn write_every(
        &self,
        (from, to, step): (i64, i64, i64),
        series: usize,
        acked: &mut Samples,
    ) {
        let mut t = from;
        while t <= to {
            self.write(t, series, acked).await;
            t += step;
        }
    }

    /// SIGTERM, then waits (at most 60 s) for a successful exit.
    fn terminate(&mut self) {
        let status = self.receive.process.terminate(Duration::from_secs(60));
        assert!(
            status.success(),
            "exit {status}: {}",
            self.receive.process.log()
        );
    }
}

/// A fresh directory for the test and the receiver's `--tsdb.path` inside it.
fn work_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let tsdb = dir.path().join("tsdb");
    (dir, tsdb)
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

/// Every block has the receive meta, and the blocks hold exactly the acknowledged samples.
fn check_blocks(blocks: &[(BlockMeta, Block)], acked: &Samples) {
    for (meta, _) in blocks {
        check_meta(meta);
    }
    assert_eq!(&block_samples(blocks), acked);
}

/// The complete (meta.json holding) block directories of the default tenant under `tsdb`.
fn local_blocks(tsdb: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tsdb.join("default-tenant"))
        .expect("tenant dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("meta.json").is_file())
        .collect()
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
            r.receive.process.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_are_cut_shipped_and_flushed_on_sigterm() {
    let (_server, yaml, bucket) = s3().await;
    let (dir, tsdb) = work_dir();
    let mut r = start(&tsdb, &dir.path().join("receive.log"), &yaml).await;
    let mut acked = Samples::new();
    // Oldest first, every 5 s over the last 6 minutes: the head spans 6 block ranges, so
    // the compaction (every 6 s) cuts blocks while the receiver runs.
    let now = now_ms();
    r.write_every((now - 6 * MINUTE, now, 5_000), 10, &mut acked)
        .await;
    wait_for_blocks(&bucket, 4, &r).await;
    let local_blocks = local_blocks(&tsdb).len();
    assert!(local_blocks >= 4, "{local_blocks} local blocks");

    // More writes after the cuts, then SIGTERM: the rest of the head is flushed and shipped.
    let end = now_ms();
    r.write_every((now + 5_000, end + 2_000, 1_000), 10, &mut acked)
        .await;
    r.terminate();
    let progress = std::fs::read_to_string(tsdb.join("default-tenant/thanos.shipper.json"))
        .expect("shipper progress file");
    let download = tempfile::tempdir().expect("tempdir");
    let blocks = download_blocks(&bucket, download.path()).await;
    assert!(blocks.len() >= 5, "{} blocks", blocks.len());
    for (meta, _) in &blocks {
        assert!(progress.contains(&meta.ulid.to_string()), "{progress}");
    }
    check_blocks(&blocks, &acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_a_young_head_into_an_uploaded_block() {
    let (_server, yaml, bucket) = s3().await;
    let (dir, tsdb) = work_dir();
    let mut r = start(&tsdb, &dir.path().join("receive.log"), &yaml).await;
    let mut acked = Samples::new();
    let now = now_ms();
    r.write_every((now, now + 4_000, 1_000), 3, &mut acked)
        .await;
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
    check_blocks(&blocks, &acked);
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
    let (dir, tsdb) = work_dir();
    let mut r = start(&tsdb, &dir.path().join("receive.log"), &dead).await;
    let mut acked = Samples::new();
    let now = now_ms();
    r.write_every((now - 3 * MINUTE, now, 10_000), 4, &mut acked)
        .await;
    let stopping = Instant::now();
    r.terminate();
    let stop_time = stopping.elapsed();
    let local = local_blocks(&tsdb);
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
    check_blocks(&uploaded, &acked);
}
