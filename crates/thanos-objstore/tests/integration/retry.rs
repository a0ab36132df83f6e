//! Retry behaviour: transient failures are retried with backoff, definite answers are not, and
//! an unreachable S3 endpoint fails quickly with a clear error.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::Registry;
use thanos_objstore::{Bucket, BucketConfig, BucketMetrics, Path, RetryPolicy, UploadOptions};
use thanos_test_support::process::free_port;
use thanos_test_support::store::FaultyStore;

use common::{failures, ops};

fn fast_retries(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(10),
    }
}

/// A bucket holding `obj` whose next `failures_left` reads fail with a transient error.
async fn flaky_bucket(
    failures_left: u32,
    max_retries: u32,
) -> (Bucket, Arc<FaultyStore>, Registry) {
    let store = Arc::new(FaultyStore::new());
    let reg = Registry::new();
    let metrics = BucketMetrics::new(&reg).unwrap();
    let bucket = Bucket::new(
        "flaky",
        store.clone(),
        fast_retries(max_retries),
        UploadOptions::default(),
        &metrics,
    );
    bucket
        .upload(&Path::from("obj"), Bytes::from_static(b"data"))
        .await
        .unwrap();
    store.fail_next_gets(failures_left);
    (bucket, store, reg)
}

#[tokio::test]
async fn transient_errors_are_retried_until_success() {
    let (bucket, store, reg) = flaky_bucket(3, 3).await;
    assert_eq!(
        bucket.get(&Path::from("obj")).await.unwrap(),
        Bytes::from_static(b"data")
    );
    assert_eq!(store.get_calls(), 4);
    // One logical operation, not a failure.
    assert_eq!(ops(&reg, "flaky", "get"), 1.0);
    assert_eq!(failures(&reg, "flaky", "get"), 0.0);
}

#[tokio::test]
async fn retries_are_bounded() {
    let (bucket, store, reg) = flaky_bucket(10, 2).await;
    let err = bucket.get(&Path::from("obj")).await.unwrap_err();
    assert!(
        err.to_string().contains("injected transient failure"),
        "{err}"
    );
    assert!(err.to_string().contains("get obj in bucket flaky"), "{err}");
    assert_eq!(store.get_calls(), 3);
    assert_eq!(ops(&reg, "flaky", "get"), 1.0);
    assert_eq!(failures(&reg, "flaky", "get"), 1.0);
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let (bucket, store, reg) = flaky_bucket(0, 5).await;
    let err = bucket.get(&Path::from("missing")).await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(store.get_calls(), 1);
    assert_eq!(failures(&reg, "flaky", "get"), 0.0);
}

#[test]
fn backoff_grows_and_is_capped() {
    let p = RetryPolicy {
        max_retries: 10,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
    };
    for (retry, full) in [
        (0, 100),
        (1, 200),
        (2, 400),
        (3, 800),
        (4, 1000),
        (30, 1000),
    ] {
        let b = p.backoff(retry);
        let full = Duration::from_millis(full);
        assert!(
            b >= full / 2 && b <= full,
            "retry {retry}: {b:?} not in [{:?}, {full:?}]",
            full / 2
        );
    }
}

#[tokio::test]
async fn unreachable_s3_endpoint_fails_after_retries() {
    // A port that was just free: nothing listens on it.
    let port = free_port();
    let yaml =
        thanos_test_support::objstore_yaml(&format!("127.0.0.1:{port}"), "thanos", "ak", "sk");
    let cfg = BucketConfig::parse(&yaml)
        .unwrap()
        .with_retry_policy(fast_retries(2));
    let reg = Registry::new();
    let bucket = cfg.build("test", &reg).unwrap();
    let start = Instant::now();
    let err = tokio::time::timeout(
        Duration::from_secs(30),
        bucket.get(&Path::from("01X/meta.json")),
    )
    .await
    .expect("get against a closed port must not hang")
    .unwrap_err();
    let elapsed = start.elapsed();
    let msg = err.to_string();
    assert!(msg.to_lowercase().contains("connect"), "{msg}");
    assert!(!err.is_not_found(), "{msg}");
    assert!(msg.contains("get 01X/meta.json in bucket thanos"), "{msg}");
    assert_eq!(failures(&reg, "thanos", "get"), 1.0);
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}
