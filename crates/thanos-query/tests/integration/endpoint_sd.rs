//! Endpoint discovery over real gRPC: the endpoint SD file is followed without a
//! restart, and `dns+` specs resolve through the system resolver.

use crate::common;

use common::{FakeStore, TestQuerier, samples};
use thanos_model::Labels;
use thanos_query::QuerierOptions;
use thanos_query::sd::SdSource;

const T0: i64 = 1_700_000_000_000;

fn store(metric: &str, replica: &str) -> FakeStore {
    FakeStore::new(Labels::from_pairs([("replica", replica)])).with_series(
        Labels::from_pairs([("__name__", metric)]),
        samples(T0, T0 + 60_000, 15_000, |_| 1.0),
    )
}

/// Number of series `metric` returns at T0+30s.
async fn count(q: &TestQuerier, metric: &str) -> usize {
    let (status, body) = q
        .get(&format!(
            "/api/v1/query?query={metric}&time={}",
            T0 / 1000 + 30
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"]["result"].as_array().unwrap().len()
}

async fn store_names(q: &TestQuerier) -> Vec<String> {
    let (_, body) = q.get("/api/v1/stores").await;
    let mut names: Vec<String> = body["data"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|v| v.as_array().unwrap().iter())
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn sd_file_changes_add_and_remove_endpoints() {
    let (a, _stop_a) = store("metric_a", "a").serve().await;
    let (b, _stop_b) = store("metric_b", "b").serve().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("endpoints.yaml");
    std::fs::write(&path, format!("endpoints:\n  - address: {a}\n")).unwrap();
    let q = TestQuerier::start(QuerierOptions {
        endpoint_sd: Some(SdSource::File(path.clone())),
        ..QuerierOptions::default()
    })
    .await;
    assert_eq!(store_names(&q).await, [a.to_string()]);
    assert_eq!(count(&q, "metric_a").await, 1);
    assert_eq!(count(&q, "metric_b").await, 0);

    // Swap the endpoint in the file: the next refresh follows it.
    std::fs::write(
        &path,
        format!("endpoints:\n  - address: {b}\n    strict: false\n"),
    )
    .unwrap();
    q.querier.endpoints().update().await;
    assert_eq!(store_names(&q).await, [b.to_string()]);
    assert_eq!(count(&q, "metric_a").await, 0);
    assert_eq!(count(&q, "metric_b").await, 1);

    // Both, then a broken file: the last good list stays.
    std::fs::write(
        &path,
        format!("endpoints:\n  - address: {a}\n  - address: {b}\n"),
    )
    .unwrap();
    q.querier.endpoints().update().await;
    std::fs::write(&path, "endpoints: {").unwrap();
    q.querier.endpoints().update().await;
    assert_eq!(count(&q, "metric_a").await, 1);
    assert_eq!(count(&q, "metric_b").await, 1);
}

#[tokio::test]
async fn dns_spec_resolves_localhost() {
    let (a, _stop) = store("metric_a", "a").serve().await;
    let q = TestQuerier::start(QuerierOptions {
        endpoints: vec![format!("dns+localhost:{}", a.port())],
        ..QuerierOptions::default()
    })
    .await;
    let names = store_names(&q).await;
    assert!(names.contains(&a.to_string()), "{names:?}");
    assert_eq!(count(&q, "metric_a").await, 1);
}
