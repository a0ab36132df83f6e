//! System test: `thanos receive` and `thanos query --endpoint=<receive gRPC>` as real
//! processes; samples remote-written to the receiver come back through the querier's
//! `/api/v1/query` with the tenant's external labels.

use crate::common;

use std::time::{Duration, Instant};

use common::{Receive, THANOS};
use serde_json::Value;
use thanos_proto::prometheus as pb;
use thanos_test_support::process::{Process, free_port};
use thanos_test_support::{now_ms, remote_write};

fn series(name: &str, job: &str, samples: &[(i64, f64)]) -> pb::TimeSeries {
    pb::TimeSeries {
        labels: vec![
            pb::Label {
                name: "__name__".into(),
                value: name.into(),
            },
            pb::Label {
                name: "job".into(),
                value: job.into(),
            },
        ],
        samples: samples
            .iter()
            .map(|&(timestamp, value)| pb::Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_samples_are_queryable_through_query() {
    let work = tempfile::tempdir().expect("tempdir");
    let (query_http, query_grpc) = (free_port(), free_port());
    let mut receive = Receive::start(
        &work.path().join("tsdb"),
        &work.path().join("receive.log"),
        &["--label=replica=\"r0\"", "--label=site=\"eu\""],
    )
    .await;

    let client = reqwest::Client::new();
    let t0 = now_ms() - 60_000;
    let resp = remote_write::request(
        &client,
        &receive.remote_write_url(),
        vec![
            series("rw_metric", "api", &[(t0, 1.0), (t0 + 15_000, 2.0)]),
            series("rw_metric", "db", &[(t0, 10.0), (t0 + 15_000, 20.0)]),
        ],
    )
    .header("THANOS-TENANT", "team-a")
    .send()
    .await
    .expect("remote write");
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);

    let mut query = Process::spawn(
        "query",
        THANOS,
        [
            "query".to_owned(),
            format!("--endpoint=127.0.0.1:{}", receive.grpc),
            "--query.replica-label=replica".to_owned(),
            format!("--http-address=127.0.0.1:{query_http}"),
            format!("--grpc-address=127.0.0.1:{query_grpc}"),
        ],
        &work.path().join("query.log"),
    );
    let eval = (t0 + 15_000) as f64 / 1000.0;
    let url = format!(
        "http://127.0.0.1:{query_http}/api/v1/query?query=rw_metric%7Btenant_id%3D%22team-a%22%7D&time={eval}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = loop {
        query.assert_running();
        receive.process.assert_running();
        if let Ok(r) = client.get(&url).send().await
            && r.status() == 200
        {
            let v: Value = serde_json::from_str(&r.text().await.expect("body")).expect("json");
            let result = v["data"]["result"].clone();
            if result.as_array().is_some_and(|a| !a.is_empty()) {
                break result;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no result from query after 30s; query log: {}",
            query.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut got: Vec<(String, String, String, Option<String>, String)> = result
        .as_array()
        .expect("vector")
        .iter()
        .map(|s| {
            let m = &s["metric"];
            let text = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            (
                text("job"),
                text("site"),
                text("tenant_id"),
                m["replica"].as_str().map(str::to_owned),
                s["value"][1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("api".into(), "eu".into(), "team-a".into(), None, "2".into()),
            ("db".into(), "eu".into(), "team-a".into(), None, "20".into()),
        ],
        "{result}"
    );

    // Another tenant selects nothing.
    let other = format!(
        "http://127.0.0.1:{query_http}/api/v1/query?query=rw_metric%7Btenant_id%3D%22team-b%22%7D&time={eval}"
    );
    let body = client
        .get(&other)
        .send()
        .await
        .expect("query")
        .text()
        .await
        .expect("body");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["data"]["result"], serde_json::json!([]), "{v}");
}
