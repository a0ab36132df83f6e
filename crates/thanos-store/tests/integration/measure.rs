//! Measurement (printed, run with `--nocapture` to see it): bytes fetched from the bucket
//! (`thanos_objstore_bucket_operation_fetched_bytes_total`) and latency per Series call for
//! typical selectors, plus index-header size and sync time per block.

use crate::common;

use std::time::Instant;

use common::*;
use prometheus::Registry;
use thanos_proto::thanos::label_matcher::Type;
use thanos_store::{BucketStore, BucketStoreOptions};

fn fetched(registry: &Registry) -> f64 {
    counter_sum(
        registry,
        "thanos_objstore_bucket_operation_fetched_bytes_total",
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_fetched_per_series_call() {
    // 20 metrics × 50 series × 5 h at 15 s: 1000 series, 1.2 M samples, 3 blocks.
    let ds = dataset(20, 50);
    let root = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let bucket = fs_bucket(&root.path().join("bucket"), &registry);
    let mut index_bytes = 0u64;
    let mut chunk_bytes = 0u64;
    for b in &ds.blocks {
        index_bytes += std::fs::metadata(b.join("index")).unwrap().len();
        for e in std::fs::read_dir(b.join("chunks")).unwrap() {
            chunk_bytes += e.unwrap().metadata().unwrap().len();
        }
        upload_block(&bucket, b, &ext_labels(), None).await;
    }
    let data_dir = root.path().join("data");
    let store = BucketStore::new(
        bucket,
        BucketStoreOptions {
            data_dir: data_dir.clone(),
            // Measures the range requests object storage would see.
            direct_filesystem_reads: false,
            ..BucketStoreOptions::default()
        },
        &registry,
    )
    .unwrap();
    let before = fetched(&registry);
    let t = Instant::now();
    store.sync().await.unwrap();
    let sync_ms = t.elapsed().as_secs_f64() * 1e3;
    let sync_bytes = fetched(&registry) - before;
    let mut header_bytes = 0u64;
    for b in store.blocks() {
        header_bytes += std::fs::metadata(data_dir.join(b.id.to_string()).join("index-header"))
            .unwrap()
            .len();
    }
    println!(
        "blocks={} index_bytes={index_bytes} chunk_bytes={chunk_bytes} sync_fetched_bytes={sync_bytes} \
         sync_ms={sync_ms:.1} index_header_bytes_total={header_bytes}",
        ds.blocks.len()
    );
    assert!(
        sync_bytes < index_bytes as f64,
        "sync must not download whole indexes"
    );

    let cases = vec![
        (
            "one series",
            vec![
                m(Type::Eq, "__name__", "metric_3"),
                m(Type::Eq, "instance", "host-7:9100"),
            ],
            false,
        ),
        (
            "one metric (50 series)",
            vec![m(Type::Eq, "__name__", "metric_3")],
            false,
        ),
        (
            "metric + job (25 series)",
            vec![
                m(Type::Eq, "__name__", "metric_3"),
                m(Type::Eq, "job", "node"),
            ],
            false,
        ),
        (
            "regex 2 metrics (100 series)",
            vec![m(Type::Re, "__name__", "metric_1[01]")],
            false,
        ),
        (
            "one metric, skip_chunks",
            vec![m(Type::Eq, "__name__", "metric_3")],
            true,
        ),
    ];
    for (name, matchers, skip) in cases {
        for round in ["cold", "warm"] {
            let mut req = series_request(matchers.clone(), i64::MIN, i64::MAX);
            req.skip_chunks = skip;
            let before = fetched(&registry);
            let t = Instant::now();
            let series = store.series(&req).await.unwrap();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let bytes = fetched(&registry) - before;
            let returned: usize = series
                .iter()
                .flat_map(|s| &s.chunks)
                .filter_map(|c| c.raw.as_ref())
                .map(|c| c.data.len())
                .sum();
            println!(
                "series call [{name}] {round}: series={} fetched_bytes={bytes} returned_chunk_bytes={returned} latency_ms={ms:.2}",
                series.len()
            );
            assert!(!series.is_empty());
            if !skip {
                assert!(bytes >= returned as f64, "cannot return more than fetched");
            }
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_and_query_over_many_blocks() {
    // 200 copies (distinct ULIDs, shifted labels) of small promtool blocks.
    let ds = dataset(4, 10);
    let root = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let bucket = fs_bucket(&root.path().join("bucket"), &registry);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let n = 200usize;
    for i in 0..n {
        let id = ulid::Ulid::from_parts(base - 1000 + i as u64, i as u128 + 1);
        let replica = format!("r{}", i % 10);
        upload_block(
            &bucket,
            &ds.blocks[i % ds.blocks.len()],
            &[("region", "eu-west"), ("replica", replica.as_str())],
            Some(id),
        )
        .await;
    }
    let data_dir = root.path().join("data");
    let rss_before = rss_kib();
    let store = BucketStore::new(
        bucket.clone(),
        BucketStoreOptions {
            data_dir: data_dir.clone(),
            ..BucketStoreOptions::default()
        },
        &registry,
    )
    .unwrap();
    let before = fetched(&registry);
    let t = Instant::now();
    let s = store.sync().await.unwrap();
    let cold_ms = t.elapsed().as_secs_f64() * 1e3;
    let cold_bytes = fetched(&registry) - before;
    assert_eq!(s.loaded, n);
    let rss_after = rss_kib();
    // Restart over the same data dir: index-headers and metas are reused.
    let registry2 = Registry::new();
    let store2 = BucketStore::new(
        fs_bucket(&root.path().join("bucket"), &registry2),
        BucketStoreOptions {
            data_dir: data_dir.clone(),
            ..BucketStoreOptions::default()
        },
        &registry2,
    )
    .unwrap();
    let t = Instant::now();
    assert_eq!(store2.sync().await.unwrap().loaded, n);
    let warm_ms = t.elapsed().as_secs_f64() * 1e3;
    let warm_bytes = fetched(&registry2);
    println!(
        "startup blocks={n}: cold_sync_ms={cold_ms:.0} cold_fetched_bytes={cold_bytes} \
         restart_sync_ms={warm_ms:.0} restart_fetched_bytes={warm_bytes} rss_growth_kib={}",
        rss_after.saturating_sub(rss_before)
    );
    assert!(warm_bytes < cold_bytes);

    for (name, matchers) in [
        (
            "one series",
            vec![
                m(Type::Eq, "__name__", "metric_1"),
                m(Type::Eq, "instance", "host-3:9100"),
            ],
        ),
        ("one metric", vec![m(Type::Eq, "__name__", "metric_1")]),
    ] {
        let mut req = series_request(matchers, i64::MIN, i64::MAX);
        req.without_replica_labels = vec!["replica".into()];
        let before = fetched(&registry);
        let t = Instant::now();
        let series = store.series(&req).await.unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "series call over {n} blocks [{name}]: series={} chunks={} fetched_bytes={} latency_ms={ms:.1}",
            series.len(),
            series.iter().map(|s| s.chunks.len()).sum::<usize>(),
            fetched(&registry) - before
        );
        assert!(!series.is_empty());
        // Replica labels stripped: copies of one series are merged into one.
        assert!(
            series
                .iter()
                .all(|s| s.labels.iter().all(|l| l.name != "replica"))
        );
    }
}
