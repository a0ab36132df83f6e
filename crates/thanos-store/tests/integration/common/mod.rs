//! Helpers for the store gateway integration tests: promtool blocks, uploads, a gRPC
//! server over the store, and promtool-dump comparisons.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use prometheus::Registry;
use thanos_model::chunkenc::float_iterator;
use thanos_objstore::{Bucket, BucketConfig, RetryPolicy};
use thanos_proto::thanos::info::info_server::InfoServer;
use thanos_proto::thanos::store_client::StoreClient;
use thanos_proto::thanos::store_server::StoreServer;
use thanos_proto::thanos::{LabelMatcher, Series, SeriesRequest, label_matcher};
use thanos_store::BucketStore;
use thanos_tsdb::BlockMeta;
use thanos_tsdb::meta::ThanosMeta;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use ulid::Ulid;

/// First sample timestamp of the generated data (ms).
pub const START: i64 = 1_700_000_000_000;
/// Hours of generated data (promtool cuts 2h blocks: 3 blocks).
pub const HOURS: i64 = 5;

pub fn promtool() -> PathBuf {
    let p = PathBuf::from("/usr/bin/promtool");
    assert!(
        p.exists(),
        "promtool not found at /usr/bin/promtool; install Debian's prometheus package"
    );
    p
}

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

/// Writes OpenMetrics test data: `families` metrics × `per_family` series, one sample
/// every 15 s (with a deterministic wobble) over `HOURS`.
pub fn write_openmetrics(path: &Path, families: usize, per_family: usize) {
    let mut text = String::new();
    for f in 0..families {
        writeln!(text, "# TYPE metric_{f} gauge").unwrap();
        for s in 0..per_family {
            let job = if s % 2 == 0 { "node" } else { "app" };
            let mut t = START + (s as i64 * 977) % 15_000;
            let mut v = (f * 1000 + s) as f64;
            let mut i = 0u64;
            while t < START + HOURS * 3_600_000 {
                writeln!(
                    text,
                    "metric_{f}{{instance=\"host-{s}:9100\",job=\"{job}\"}} {v} {}.{:03}",
                    t / 1000,
                    t % 1000
                )
                .unwrap();
                i += 1;
                v += (i % 7) as f64 * 0.5;
                t += 15_000 + (i % 3) as i64;
            }
        }
    }
    text.push_str("# EOF\n");
    fs::write(path, text).unwrap();
}

/// Runs `promtool tsdb create-blocks-from openmetrics` and returns the block dirs.
pub fn promtool_blocks(input: &Path, out: &Path) -> Vec<PathBuf> {
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

/// A test data set: promtool blocks generated once into a temp dir.
pub struct Dataset {
    pub dir: tempfile::TempDir,
    pub blocks: Vec<PathBuf>,
}

pub fn dataset(families: usize, per_family: usize) -> Dataset {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.om");
    write_openmetrics(&input, families, per_family);
    let blocks = promtool_blocks(&input, &dir.path().join("blocks"));
    assert!(blocks.len() >= 2, "expected several blocks, got {blocks:?}");
    Dataset { dir, blocks }
}

/// External labels attached to uploaded blocks.
pub fn ext_labels() -> Vec<(&'static str, &'static str)> {
    vec![("region", "eu-west"), ("replica", "a")]
}

/// Uploads a local block like Thanos does (chunks, index, then meta.json with a Thanos
/// section carrying `labels`), optionally under a new ULID. Returns the block id.
pub async fn upload_block(
    bucket: &Bucket,
    dir: &Path,
    labels: &[(&str, &str)],
    new_id: Option<Ulid>,
) -> Ulid {
    let data = fs::read(dir.join("meta.json")).unwrap();
    let mut meta = BlockMeta::from_json(&data, "meta.json").unwrap();
    if let Some(id) = new_id {
        // A distinct block: its own single source (else the dedup filter hides it).
        meta.ulid = id;
        meta.compaction.sources = vec![id];
    }
    meta.thanos = Some(ThanosMeta {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        source: "test".into(),
        ..ThanosMeta::default()
    });
    let id = meta.ulid;
    let mut chunks: Vec<PathBuf> = fs::read_dir(dir.join("chunks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    chunks.sort();
    for c in chunks {
        let name = c.file_name().unwrap().to_str().unwrap().to_string();
        put(
            bucket,
            &format!("{id}/chunks/{name}"),
            fs::read(&c).unwrap(),
        )
        .await;
    }
    put(
        bucket,
        &format!("{id}/index"),
        fs::read(dir.join("index")).unwrap(),
    )
    .await;
    put(bucket, &format!("{id}/meta.json"), meta.to_json()).await;
    id
}

pub async fn put(bucket: &Bucket, path: &str, data: Vec<u8>) {
    bucket
        .upload(&thanos_objstore::Path::from(path), Bytes::from(data))
        .await
        .unwrap();
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 1,
        initial_backoff: std::time::Duration::from_millis(10),
        max_backoff: std::time::Duration::from_millis(20),
    }
}

/// A FILESYSTEM bucket over `dir`.
pub fn fs_bucket(dir: &Path, registry: &Registry) -> Bucket {
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.display()
    );
    BucketConfig::parse(&yaml)
        .unwrap()
        .with_retry_policy(fast_retry())
        .build("store", registry)
        .unwrap()
}

/// A bucket from objstore YAML (the S3 test server's).
pub fn yaml_bucket(yaml: &str, registry: &Registry) -> Bucket {
    BucketConfig::parse(yaml)
        .unwrap()
        .with_retry_policy(fast_retry())
        .build("store", registry)
        .unwrap()
}

/// Serves `store` over real gRPC on 127.0.0.1:0.
pub async fn serve(store: BucketStore) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(StoreServer::new(store.clone()))
            .add_service(InfoServer::new(store))
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    (addr, task)
}

pub async fn client(addr: SocketAddr) -> StoreClient<Channel> {
    StoreClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
}

pub fn m(t: label_matcher::Type, name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: t as i32,
        name: name.into(),
        value: value.into(),
    }
}

pub fn series_request(matchers: Vec<LabelMatcher>, mint: i64, maxt: i64) -> SeriesRequest {
    SeriesRequest {
        min_time: mint,
        max_time: maxt,
        matchers,
        ..SeriesRequest::default()
    }
}

/// Runs a Series call and collects the series (or the status).
pub async fn call_series(
    c: &mut StoreClient<Channel>,
    req: SeriesRequest,
) -> Result<Vec<Series>, tonic::Status> {
    let mut stream = c.series(req).await?.into_inner();
    let mut out = Vec::new();
    while let Some(frame) = stream.message().await? {
        if let Some(thanos_proto::thanos::series_response::Result::Series(s)) = frame.result {
            out.push(s);
        }
    }
    Ok(out)
}

/// A sample line comparable with `promtool tsdb dump` output.
#[derive(Debug, Clone)]
pub struct Line {
    pub labels: String,
    pub t: i64,
    pub v: f64,
}

impl PartialEq for Line {
    fn eq(&self, o: &Self) -> bool {
        self.labels == o.labels && self.t == o.t && self.v.to_bits() == o.v.to_bits()
    }
}

/// Formats labels like Prometheus (`{a="b", c="d"}`).
pub fn format_labels(labels: &[(String, String)]) -> String {
    let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Decodes returned series into sample lines within `[mint, maxt]`, dropping the labels
/// named in `strip` (the external ones) from the label string.
pub fn series_lines(series: &[Series], mint: i64, maxt: i64, strip: &[&str]) -> Vec<Line> {
    let mut out = Vec::new();
    for s in series {
        let labels: Vec<(String, String)> = s
            .labels
            .iter()
            .filter(|l| !strip.contains(&l.name.as_str()))
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        let ls = format_labels(&labels);
        for c in &s.chunks {
            let raw = c.raw.as_ref().expect("raw chunk");
            assert_eq!(
                raw.hash,
                xxhash_rust::xxh64::xxh64(&raw.data, 0),
                "chunk hash"
            );
            let it = float_iterator((raw.r#type + 1) as u8, &raw.data).expect("xor chunk");
            for smp in it {
                if smp.t >= mint && smp.t <= maxt {
                    out.push(Line {
                        labels: ls.clone(),
                        t: smp.t,
                        v: smp.v,
                    });
                }
            }
        }
    }
    out
}

/// `promtool tsdb dump --match selector --min-time --max-time` over `blocks`.
pub fn promtool_dump(blocks: &[PathBuf], selector: &str, mint: i64, maxt: i64) -> Vec<Line> {
    let db = tempfile::tempdir().unwrap();
    for b in blocks {
        copy_dir(b, &db.path().join(b.file_name().unwrap()));
    }
    fs::create_dir_all(db.path().join("wal")).unwrap();
    let out = run_promtool(&[
        "tsdb",
        "dump",
        &format!("--match={selector}"),
        &format!("--min-time={mint}"),
        &format!("--max-time={maxt}"),
        db.path().to_str().unwrap(),
    ]);
    out.lines()
        .map(|line| {
            let close = line.rfind("} ").expect("labels in dump line");
            let mut rest = line[close + 2..].split(' ');
            let v = match rest.next().unwrap() {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other.parse().unwrap(),
            };
            Line {
                labels: line[..=close].to_string(),
                v,
                t: rest.next().unwrap().parse().unwrap(),
            }
        })
        .collect()
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

/// Sum of a counter or gauge family over the series matching `filter`.
pub fn counter_sum(registry: &Registry, name: &str, filter: &[(&str, &str)]) -> f64 {
    use prometheus::proto::MetricType;
    let mut sum = 0.0;
    for family in registry.gather() {
        if family.name() != name {
            continue;
        }
        for m in family.get_metric() {
            let matches = filter.iter().all(|(k, v)| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == *k && l.value() == *v)
            });
            if !matches {
                continue;
            }
            sum += match family.get_field_type() {
                MetricType::COUNTER => m.get_counter().get_value(),
                MetricType::GAUGE => m.get_gauge().get_value(),
                _ => 0.0,
            };
        }
    }
    sum
}
