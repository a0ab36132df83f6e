//! The IN-MEMORY index cache in a running store: warm Series calls fetch no index data
//! when postings and series are cached, `enabled_items` limits what is cached, and the
//! cache never grows past `max_size`.

use crate::common;

use common::*;
use prometheus::Registry;
use thanos_proto::thanos::label_matcher::Type;
use thanos_store::{BucketStore, BucketStoreOptions, IndexCacheConfig, ItemType};

fn fetched(registry: &Registry, data_type: &str) -> f64 {
    counter_sum(
        registry,
        "thanos_bucket_store_series_data_fetched_bytes_total",
        &[("data_type", data_type)],
    )
}

fn metric(registry: &Registry, name: &str, item_type: &str) -> f64 {
    counter_sum(registry, name, &[("item_type", item_type)])
}

async fn store_with(
    ds: &Dataset,
    root: &std::path::Path,
    cache: IndexCacheConfig,
) -> (BucketStore, Registry) {
    let registry = Registry::new();
    let bucket = fs_bucket(&root.join("bucket"), &registry);
    for b in &ds.blocks {
        upload_block(&bucket, b, &ext_labels(), None).await;
    }
    let store = BucketStore::new(
        bucket,
        BucketStoreOptions {
            data_dir: root.join("data"),
            index_cache: cache,
            // The cache serves blocks read through the bucket (object storage); blocks
            // memory-mapped from a local bucket bypass it for series entries.
            direct_filesystem_reads: false,
            ..BucketStoreOptions::default()
        },
        &registry,
    )
    .unwrap();
    store.sync().await.unwrap();
    (store, registry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_calls_hit_the_cache_and_max_size_is_honoured() {
    let ds = dataset(4, 20);
    let req = series_request(
        vec![
            m(Type::Eq, "__name__", "metric_1"),
            m(Type::Eq, "job", "node"),
        ],
        0,
        i64::MAX,
    );

    // Everything enabled: the second call reads only chunks.
    let root = tempfile::tempdir().unwrap();
    let (store, reg) = store_with(&ds, root.path(), IndexCacheConfig::with_size(64 << 20)).await;
    let cold = store.series(&req).await.unwrap();
    let (p0, s0, c0) = (
        fetched(&reg, "postings"),
        fetched(&reg, "series"),
        fetched(&reg, "chunks"),
    );
    assert!(p0 > 0.0 && s0 > 0.0 && c0 > 0.0, "{p0} {s0} {c0}");
    let warm = store.series(&req).await.unwrap();
    assert_eq!(cold, warm);
    assert_eq!(fetched(&reg, "postings"), p0);
    assert_eq!(fetched(&reg, "series"), s0);
    // Chunks are not cached (reads are sized from observed chunk sizes, so not equal).
    assert!(fetched(&reg, "chunks") > c0);
    assert!(metric(&reg, "thanos_store_index_cache_hits_total", "Series") >= 10.0);
    assert!(metric(&reg, "thanos_store_index_cache_hits_total", "Postings") >= 2.0);
    assert!(metric(&reg, "thanos_store_index_cache_items", "Series") >= 10.0);

    // Only postings cached: series entries are fetched again.
    let root = tempfile::tempdir().unwrap();
    let cfg = IndexCacheConfig {
        enabled_items: vec![ItemType::Postings],
        ..IndexCacheConfig::with_size(64 << 20)
    };
    let (store, reg) = store_with(&ds, root.path(), cfg).await;
    store.series(&req).await.unwrap();
    let (p0, s0) = (fetched(&reg, "postings"), fetched(&reg, "series"));
    store.series(&req).await.unwrap();
    assert_eq!(fetched(&reg, "postings"), p0);
    assert!(fetched(&reg, "series") > s0);
    assert_eq!(
        metric(&reg, "thanos_store_index_cache_items", "Series"),
        0.0
    );

    // A tiny cache stays within max_size, evicting as it goes.
    let root = tempfile::tempdir().unwrap();
    let max = 2048;
    let cfg = IndexCacheConfig::from_yaml(&format!(
        "type: IN-MEMORY\nconfig:\n  max_size: {max}B\n  max_item_size: 1KiB"
    ))
    .unwrap();
    let (store, reg) = store_with(&ds, root.path(), cfg).await;
    let all = series_request(vec![m(Type::Re, "__name__", "metric_.*")], 0, i64::MAX);
    let got = store.series(&all).await.unwrap();
    assert_eq!(got.len(), 4 * 20);
    let total: f64 = ["Postings", "Series"]
        .iter()
        .map(|t| metric(&reg, "thanos_store_index_cache_total_size_bytes", t))
        .sum();
    assert!(total > 0.0 && total <= max as f64, "{total}");
    assert!(
        metric(
            &reg,
            "thanos_store_index_cache_items_evicted_total",
            "Series"
        ) > 0.0
    );
    assert_eq!(store.series(&all).await.unwrap(), got);
}
