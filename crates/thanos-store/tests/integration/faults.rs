//! Sync lifecycle, filters, corrupt and partial blocks, limits and bucket outages.

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use prometheus::Registry;
use thanos_proto::thanos::label_matcher::Type;
use thanos_store::{BucketStore, BucketStoreOptions, FilterOptions, Limits};
use thanos_test_support::{S3TestServer, S3TestServerOptions};
use ulid::Ulid;

fn opts(data_dir: &std::path::Path) -> BucketStoreOptions {
    BucketStoreOptions {
        data_dir: data_dir.to_path_buf(),
        ..BucketStoreOptions::default()
    }
}

fn fresh_ulid() -> Ulid {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    Ulid::from_parts(
        ms,
        u128::from(N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
    )
}

fn metric0() -> Vec<thanos_proto::thanos::LabelMatcher> {
    vec![m(Type::Eq, "__name__", "metric_0")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_appear_disappear_and_bad_blocks_are_skipped() {
    let ds = dataset(2, 4);
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let registry = Registry::new();
    let bucket = fs_bucket(&root.path().join("bucket"), &registry);
    let first = upload_block(&bucket, &ds.blocks[0], &ext_labels(), None).await;

    // A partial upload (no meta.json) and a block with a garbage index.
    let partial = fresh_ulid();
    put(&bucket, &format!("{partial}/index"), vec![1, 2, 3]).await;
    let corrupt = upload_block(&bucket, &ds.blocks[1], &ext_labels(), Some(fresh_ulid())).await;
    put(&bucket, &format!("{corrupt}/index"), vec![0xAB; 4096]).await;
    // Junk at the root and a stale local directory are ignored / cleaned up.
    put(&bucket, "debug/metas/x.json", b"{}".to_vec()).await;
    let stale = fresh_ulid();
    std::fs::create_dir_all(data_dir.join(stale.to_string())).unwrap();

    let store = BucketStore::new(bucket.clone(), opts(&data_dir), &registry).unwrap();
    assert!(!store.is_ready());
    assert_eq!(
        store
            .series(&series_request(metric0(), i64::MIN, i64::MAX))
            .await
            .unwrap_err()
            .to_status()
            .code(),
        tonic::Code::Unavailable
    );
    let s = store.sync().await.unwrap();
    assert!(store.is_ready());
    assert_eq!(s.added, vec![first]);
    assert_eq!(s.failed, vec![corrupt]);
    assert_eq!(
        counter_sum(
            &registry,
            "thanos_blocks_meta_synced",
            &[("state", "no-meta-json")]
        ),
        1.0
    );
    assert_eq!(
        counter_sum(
            &registry,
            "thanos_blocks_meta_synced",
            &[("state", "loaded")]
        ),
        1.0
    );
    assert_eq!(
        counter_sum(
            &registry,
            "thanos_bucket_store_block_load_failures_total",
            &[]
        ),
        1.0
    );
    assert_eq!(
        counter_sum(&registry, "thanos_bucket_store_blocks_loaded", &[]),
        1.0
    );
    assert!(
        data_dir
            .join(first.to_string())
            .join("index-header")
            .exists()
    );
    assert!(
        !data_dir.join(stale.to_string()).exists(),
        "stale local dir removed"
    );

    // The healthy block serves.
    let (addr, _srv) = serve(store.clone()).await;
    let mut c = client(addr).await;
    let got = call_series(&mut c, series_request(metric0(), i64::MIN, i64::MAX))
        .await
        .unwrap();
    assert_eq!(got.len(), 4);

    // A new block appears on re-sync.
    let second = upload_block(&bucket, &ds.blocks[1], &ext_labels(), None).await;
    let s = store.sync().await.unwrap();
    assert_eq!(s.added, vec![second]);
    assert_eq!(store.blocks().len(), 2);
    let both = call_series(&mut c, series_request(metric0(), i64::MIN, i64::MAX))
        .await
        .unwrap();
    let chunks_both: usize = both.iter().map(|s| s.chunks.len()).sum();
    let chunks_one: usize = got.iter().map(|s| s.chunks.len()).sum();
    assert!(chunks_both > chunks_one);

    // Restart: a new store over the same data dir reuses the index-headers (no index
    // range reads at all) and meta.json from the disk cache.
    let registry2 = Registry::new();
    let bucket2 = fs_bucket(&root.path().join("bucket"), &registry2);
    let restarted = BucketStore::new(bucket2, opts(&data_dir), &registry2).unwrap();
    let s = restarted.sync().await.unwrap();
    assert_eq!(s.loaded, 2);
    assert_eq!(
        s.failed,
        vec![corrupt],
        "the corrupt block is retried and fails again"
    );
    // The only index read is the corrupt block's 5-byte magic+version check.
    assert_eq!(
        counter_sum(
            &registry2,
            "thanos_objstore_bucket_operation_fetched_bytes_total",
            &[("operation", "get_range")]
        ),
        5.0,
        "index-headers must be reused, not rebuilt"
    );
    assert_eq!(
        counter_sum(
            &registry2,
            "thanos_objstore_bucket_operation_fetched_bytes_total",
            &[("operation", "get")]
        ),
        0.0,
        "meta.json must come from the local cache"
    );

    // The block disappears from the bucket: dropped, local files removed.
    for o in bucket
        .list(Some(&thanos_objstore::Path::from(first.to_string())))
        .await
        .unwrap()
    {
        bucket.delete(&o.location).await.unwrap();
    }
    let s = store.sync().await.unwrap();
    assert_eq!(s.removed, vec![first]);
    assert_eq!(store.blocks().len(), 1);
    assert!(!data_dir.join(first.to_string()).exists());
    assert_eq!(
        counter_sum(&registry, "thanos_bucket_store_block_drops_total", &[]),
        1.0
    );

    // A deletion mark older than the delay hides the block.
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mark = format!(
        r#"{{"id":"{second}","version":1,"details":"","deletion_time":{}}}"#,
        secs - 2 * 86_400
    );
    put(
        &bucket,
        &format!("{second}/deletion-mark.json"),
        mark.into_bytes(),
    )
    .await;
    let s = store.sync().await.unwrap();
    assert_eq!(s.removed, vec![second]);
    assert_eq!(
        counter_sum(
            &registry,
            "thanos_blocks_meta_synced",
            &[("state", "marked-for-deletion")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_delay_and_time_filters() {
    let ds = dataset(1, 2);
    let root = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let bucket = fs_bucket(&root.path().join("bucket"), &registry);
    for b in &ds.blocks {
        upload_block(&bucket, b, &ext_labels(), None).await;
    }
    // promtool's ULIDs are fresh: a 1h consistency delay hides every (non-compactor) block.
    let mut o = opts(&root.path().join("data"));
    o.filters = FilterOptions {
        consistency_delay: Duration::from_secs(3600),
        ..FilterOptions::default()
    };
    let store = BucketStore::new(bucket.clone(), o, &registry).unwrap();
    let s = store.sync().await.unwrap();
    assert_eq!(s.loaded, 0);
    assert_eq!(
        counter_sum(
            &registry,
            "thanos_blocks_meta_synced",
            &[("state", "too-fresh")]
        ),
        ds.blocks.len() as f64
    );
    // --min-time/--max-time keep only the blocks overlapping the window, and clamp queries.
    let registry = Registry::new();
    let mut o = opts(&root.path().join("data2"));
    o.filters = FilterOptions {
        min_time: START + 2 * 3_600_000 + 1,
        max_time: START + 3 * 3_600_000,
        ..FilterOptions::default()
    };
    let store = BucketStore::new(bucket, o, &registry).unwrap();
    let s = store.sync().await.unwrap();
    assert!(s.loaded >= 1 && s.loaded < ds.blocks.len(), "{s:?}");
    let series = store
        .series(&series_request(metric0(), i64::MIN, i64::MAX))
        .await
        .unwrap();
    let lines = series_lines(&series, i64::MIN, i64::MAX, &[]);
    assert!(!lines.is_empty());
    // Chunks overlap the clamped window (they may extend past it).
    assert!(
        series
            .iter()
            .flat_map(|s| &s.chunks)
            .all(|c| c.max_time > START + 2 * 3_600_000 && c.min_time <= START + 3 * 3_600_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_give_resource_exhausted() {
    let ds = dataset(2, 4);
    let root = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let bucket = fs_bucket(&root.path().join("bucket"), &registry);
    for b in &ds.blocks {
        upload_block(&bucket, b, &ext_labels(), None).await;
    }
    for (i, (limits, reason)) in [
        (
            Limits {
                series: 3,
                ..Limits::default()
            },
            "exceeded series limit",
        ),
        (
            Limits {
                samples: 240,
                ..Limits::default()
            },
            "exceeded chunks limit",
        ),
        (
            Limits {
                bytes: 2_000,
                ..Limits::default()
            },
            "exceeded bytes limit",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let registry = Registry::new();
        let mut o = opts(&root.path().join(format!("data{i}")));
        o.limits = limits;
        let store = BucketStore::new(bucket.clone(), o, &registry).unwrap();
        store.sync().await.unwrap();
        let (addr, _srv) = serve(store).await;
        let mut c = client(addr).await;
        let err = call_series(&mut c, series_request(metric0(), i64::MIN, i64::MAX))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
        assert!(err.message().contains(reason), "{}", err.message());
        assert_eq!(
            counter_sum(&registry, "thanos_bucket_store_queries_dropped_total", &[]),
            1.0
        );
        // A small query still passes the series limit; label calls honour it too.
        if limits.series > 0 {
            let ok = call_series(
                &mut c,
                series_request(
                    vec![
                        m(Type::Eq, "__name__", "metric_0"),
                        m(Type::Eq, "instance", "host-0:9100"),
                    ],
                    i64::MIN,
                    i64::MAX,
                ),
            )
            .await
            .unwrap();
            assert_eq!(ok.len(), 1);
            let err = c
                .label_names(thanos_proto::thanos::LabelNamesRequest {
                    start: i64::MIN,
                    end: i64::MAX,
                    matchers: metric0(),
                    ..Default::default()
                })
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_outage_fails_queries_clearly_and_recovers() {
    let ds = dataset(1, 3);
    let s3_dir = tempfile::tempdir().unwrap();
    let s3 = S3TestServer::start_with(S3TestServerOptions {
        data_dir: Some(s3_dir.path().to_path_buf()),
        ..S3TestServerOptions::default()
    })
    .await
    .unwrap();
    s3.create_bucket("blocks");
    let addr = s3.endpoint();
    let root = tempfile::tempdir().unwrap();
    let registry = Registry::new();
    let bucket = yaml_bucket(&s3.objstore_yaml("blocks"), &registry);
    for b in &ds.blocks {
        upload_block(&bucket, b, &ext_labels(), None).await;
    }
    let store = BucketStore::new(bucket, opts(&root.path().join("data")), &registry).unwrap();
    store.sync().await.unwrap();
    let (grpc, _srv) = serve(store.clone()).await;
    let mut c = client(grpc).await;
    let before = call_series(&mut c, series_request(metric0(), i64::MIN, i64::MAX))
        .await
        .unwrap();
    assert_eq!(before.len(), 3);

    drop(s3);
    let err = call_series(&mut c, series_request(metric0(), i64::MIN, i64::MAX))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    assert!(err.message().contains("fetch"), "{}", err.message());
    // A failed sync keeps the loaded blocks.
    assert!(store.sync().await.is_err());
    assert_eq!(store.blocks().len(), ds.blocks.len());

    // Same address and data: the gateway recovers by itself.
    let _s3 = S3TestServer::start_with(S3TestServerOptions {
        listen: addr,
        data_dir: Some(s3_dir.path().to_path_buf()),
        ..S3TestServerOptions::default()
    })
    .await
    .unwrap();
    let after = call_series(&mut c, series_request(metric0(), i64::MIN, i64::MAX))
        .await
        .unwrap();
    assert_eq!(after, before);
    store.sync().await.unwrap();
}
