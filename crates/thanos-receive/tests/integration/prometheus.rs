//! End-to-end ingest from a real Prometheus: Debian's `/usr/bin/prometheus` (2.42) scrapes
//! itself every second and remote-writes into our handler; the test then reads the head.

use crate::common;

use std::time::{Duration, Instant};

use common::TestServer;
use thanos_model::Matcher;
use thanos_receive::{HandlerOptions, HeadOptions};
use thanos_test_support::process::free_port;
use thanos_test_support::prometheus::Prometheus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_writes_into_the_head() {
    let server = TestServer::start(HandlerOptions::default(), HeadOptions::default(), true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n\
         remote_write:\n  - url: {url}\n    remote_timeout: 5s\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 10ms\n      max_backoff: 200ms\n    metadata_config:\n      send_interval: 1s\n",
        url = server.url()
    );
    let mut prometheus = Prometheus::start(dir.path(), port, &config);

    let deadline = Instant::now() + Duration::from_secs(40);
    let up = Matcher::equal("__name__", "up");
    let build_info = Matcher::equal("__name__", "prometheus_build_info");
    let head = loop {
        prometheus.assert_running();
        if let Some(head) = server.tsdb.get("default-tenant") {
            let has = |m: &Matcher| {
                !head
                    .select(std::slice::from_ref(m), i64::MIN, i64::MAX)
                    .is_empty()
            };
            if has(&up) && has(&build_info) {
                break head;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no up/prometheus_build_info samples after 40s:\n{}",
            prometheus.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    drop(prometheus);

    let up_series = head.select(&[up], i64::MIN, i64::MAX);
    assert_eq!(up_series.len(), 1, "{up_series:?}");
    assert_eq!(
        up_series[0].labels.get("job"),
        Some("prometheus"),
        "{}",
        up_series[0].labels
    );
    let values: Vec<f64> = up_series[0].samples().map(|s| s.v).collect();
    assert!(!values.is_empty());
    assert!(values.iter().all(|&v| v == 1.0), "up values {values:?}");

    let info = head.select(&[build_info], i64::MIN, i64::MAX);
    assert_eq!(info.len(), 1);
    assert!(
        info[0]
            .labels
            .get("version")
            .is_some_and(|v| v.starts_with("2.")),
        "{}",
        info[0].labels
    );

    // A self-scrape exposes a few hundred series; all come from the one target.
    let all = head.select(&[], i64::MIN, i64::MAX);
    assert!(
        (100..20_000).contains(&all.len()),
        "{} series is implausible",
        all.len()
    );
    assert!(
        all.iter()
            .all(|s| s.labels.get("instance") == Some(&*format!("127.0.0.1:{port}")))
    );
    assert_eq!(head.num_series(), all.len() as u64);

    // Every request Prometheus sent was accepted: nothing was rejected or dropped.
    let families = server.registry.gather();
    let requests = families
        .iter()
        .find(|f| f.name() == "http_requests_total")
        .expect("http_requests_total");
    for m in requests.get_metric() {
        let code = m
            .get_label()
            .iter()
            .find(|l| l.name() == "code")
            .map(|l| l.value().to_owned());
        assert_eq!(code.as_deref(), Some("200"), "{m:?}");
    }
}

/// Asks Prometheus's query API for a single number (`data.result[0].value[1]`).
async fn instant_query(port: u16, query: &str) -> Option<f64> {
    let url = format!("http://127.0.0.1:{port}/api/v1/query");
    let resp = reqwest::Client::new()
        .get(url)
        .query(&[("query", query)])
        .send()
        .await
        .ok()?;
    let body: serde_json::Value = serde_json::from_str(&resp.text().await.ok()?).ok()?;
    body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// A WAL directory written by a real Prometheus, left by `kill -9`, replays into our head:
/// every series and `up` sample Prometheus reported through its own query API is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_a_wal_written_by_prometheus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n\
         scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    );
    let mut prometheus = Prometheus::start(dir.path(), port, &config);

    // Wait for a few scrapes, then remember what Prometheus itself says it holds.
    let deadline = Instant::now() + Duration::from_secs(40);
    let (series, up_samples) = loop {
        prometheus.assert_running();
        let ups = instant_query(port, "count_over_time(up[1h])").await;
        if let Some(ups) = ups.filter(|n| *n >= 4.0) {
            let series = instant_query(port, "count({__name__=~\".+\"})")
                .await
                .expect("series count");
            break (series, ups);
        }
        assert!(
            Instant::now() < deadline,
            "prometheus scraped nothing after 40s:\n{}",
            prometheus.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Kill -9: no clean shutdown, no head compaction.
    prometheus.kill();

    // Lay the WAL out as a tenant directory and open it like a receiver restart.
    let tsdb_dir = dir.path().join("receive");
    std::fs::create_dir_all(tsdb_dir.join("prom")).expect("tenant dir");
    std::fs::rename(
        prometheus.data_dir().join("wal"),
        tsdb_dir.join("prom").join("wal"),
    )
    .expect("move wal");
    let storage = thanos_receive::Storage {
        dir: tsdb_dir,
        wal: thanos_wal::wlog::WalOptions::default(),
    };
    let registry = prometheus::Registry::new();
    let (tsdb, stats) = tokio::task::spawn_blocking(move || {
        thanos_receive::MultiTsdb::open(HeadOptions::default(), storage, &registry)
    })
    .await
    .expect("join")
    .expect("replay prometheus wal");
    assert_eq!(stats.len(), 1);
    let stats = &stats[0].1;
    assert_eq!(stats.unknown_refs, 0, "{stats:?}");
    assert_eq!(stats.samples_rejected, 0, "{stats:?}");
    let head = tsdb.get("prom").expect("tenant");
    assert!(
        head.num_series() as f64 >= series,
        "replayed {} series, prometheus reported {series}",
        head.num_series()
    );
    let up = head.select(&[Matcher::equal("__name__", "up")], i64::MIN, i64::MAX);
    assert_eq!(up.len(), 1, "{up:?}");
    assert_eq!(up[0].labels.get("job"), Some("prometheus"));
    let values: Vec<f64> = up[0].samples().map(|s| s.v).collect();
    assert!(
        values.len() as f64 >= up_samples,
        "replayed {} up samples, prometheus reported {up_samples}",
        values.len()
    );
    assert!(values.iter().all(|&v| v == 1.0), "{values:?}");
    let info = head.select(
        &[Matcher::equal("__name__", "prometheus_build_info")],
        i64::MIN,
        i64::MAX,
    );
    assert_eq!(info.len(), 1);
}
