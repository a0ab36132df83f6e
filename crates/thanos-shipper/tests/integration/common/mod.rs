//! Shared helpers: real blocks written with `thanos_tsdb::BlockWriter`, buckets, and a bucket
//! over the test-support object store that records (and can fail) writes.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use thanos_model::{Labels, XorChunk};
use thanos_objstore::{Bucket, BucketConfig, BucketMetrics, RetryPolicy, UploadOptions};
use thanos_shipper::{Shipper, ShipperMetrics, ShipperOptions};
use thanos_test_support::store::FaultyStore;
use thanos_tsdb::meta::{BlockMeta, BlockMetaCompaction};
use thanos_tsdb::{BlockWriterOptions, ChunkData, write_block};
use ulid::Ulid;

/// Two hours in ms.
pub const BLOCK_MS: i64 = 2 * 3600 * 1000;

/// External labels used by the tests.
pub fn ext_labels() -> Labels {
    Labels::from_pairs([("receive_replica", "0"), ("tenant_id", "team-a")])
}

/// Writes a level-1 block under `dir` with `series` series of 240 samples (15 s apart)
/// starting at `min_t`; small segments so that several chunk files exist.
pub fn make_block(dir: &Path, min_t: i64, series: usize) -> BlockMeta {
    make_block_with(dir, min_t, series, None)
}

/// Like [`make_block`] with an explicit compaction section.
pub fn make_block_with(
    dir: &Path,
    min_t: i64,
    series: usize,
    compaction: Option<BlockMetaCompaction>,
) -> BlockMeta {
    let mut data = Vec::new();
    for s in 0..series {
        let labels = Labels::from_pairs([
            ("__name__", "up".to_owned()),
            ("instance", format!("host-{s:03}")),
        ]);
        let mut chunks = Vec::new();
        for part in 0..2 {
            let mut c = XorChunk::new();
            for i in 0..120i64 {
                let t = min_t + (part * 120 + i) * 15_000;
                c.append(t, (s as f64) * 1000.0 + (t as f64).sin());
            }
            chunks.push(ChunkData::from_xor(&c).expect("chunk has samples"));
        }
        data.push((labels, chunks));
    }
    let opts = BlockWriterOptions {
        max_segment_size: 2048,
        compaction,
        ..BlockWriterOptions::default()
    };
    write_block(dir, &data, opts)
        .expect("write block")
        .expect("block has samples")
}

/// Every file of a directory tree with its content, keyed by relative path.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A FILESYSTEM bucket over `dir`, built from objstore YAML.
pub fn fs_bucket(dir: &Path, reg: &Registry) -> Bucket {
    let yaml = format!(
        "type: FILESYSTEM\nconfig:\n  directory: {}\n",
        dir.display()
    );
    BucketConfig::parse(&yaml)
        .unwrap()
        .build("test", reg)
        .unwrap()
}

/// Retries with tiny backoffs.
pub fn fast_retries(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(10),
    }
}

/// A shipper with the test labels.
pub fn shipper(dir: &Path, bucket: Bucket, options: ShipperOptions) -> Shipper {
    Shipper::new(
        dir.to_path_buf(),
        bucket,
        ext_labels,
        options,
        ShipperMetrics::unregistered(),
    )
}

/// A bucket over a fresh [`FaultyStore`] (recording every write in order) with one quick
/// retry.
pub fn recording_bucket() -> (Bucket, Arc<FaultyStore>) {
    let store = Arc::new(FaultyStore::new());
    let metrics = BucketMetrics::new(&Registry::new()).unwrap();
    let bucket = Bucket::new(
        "recording",
        store.clone(),
        fast_retries(1),
        UploadOptions::default(),
        &metrics,
    );
    (bucket, store)
}

/// Makes writes of block `id` (paths under `<id>/`) fail.
pub fn fail_block(store: &FaultyStore, id: Ulid) {
    store.fail_writes_under(format!("{id}/"));
}

/// Path of a block directory.
pub fn block_dir(dir: &Path, id: Ulid) -> PathBuf {
    dir.join(id.to_string())
}
