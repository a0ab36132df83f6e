//! `promtool query instant|range|series|labels` (Debian's Prometheus 2.42 client) against
//! the querier's HTTP API. Fails when /usr/bin/promtool is missing (CI installs it).

use crate::common;

use std::process::Command;

use common::{FakeStore, TestQuerier, samples};
use thanos_model::Labels;
use thanos_query::QuerierOptions;

const PROMTOOL: &str = "/usr/bin/promtool";
const T0: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

async fn promtool(args: Vec<String>) -> (bool, String, String) {
    assert!(
        std::path::Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing (install Debian's prometheus package)"
    );
    let out = tokio::task::spawn_blocking(move || Command::new(PROMTOOL).args(&args).output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn promtool_queries_the_querier() {
    let up = Labels::from_pairs([("__name__", "up"), ("job", "api")]);
    let value = |t: i64| ((t - T0) / 15_000) as f64;
    let a = FakeStore::new(Labels::from_pairs([("replica", "a")]))
        .with_series(up.clone(), samples(T0, T0 + 60_000, 15_000, value))
        .serve()
        .await;
    let b = FakeStore::new(Labels::from_pairs([("replica", "b")]))
        .with_series(up, samples(T0, T0 + 60_000, 15_000, value))
        .serve()
        .await;
    let q = TestQuerier::start(QuerierOptions {
        endpoints: vec![a.0.to_string(), b.0.to_string()],
        replica_labels: vec!["replica".into()],
        ..QuerierOptions::default()
    })
    .await;
    let server = format!("http://{}", q.http);

    let (ok, out, err) = promtool(args(&[
        "query",
        "instant",
        "--time=2023-11-14T22:14:20Z",
        &server,
        "up * 2",
    ]))
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "{job=\"api\"} => 8 @[1700000060]");

    let (ok, out, err) = promtool(args(&[
        "query",
        "range",
        "--start=2023-11-14T22:13:50Z",
        "--end=2023-11-14T22:14:20Z",
        "--step=15s",
        &server,
        "up",
    ]))
    .await;
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "up{job=\"api\"} =>\n2 @[1700000030]\n3 @[1700000045]\n4 @[1700000060]"
    );

    let (ok, out, err) = promtool(args(&[
        "query",
        "series",
        "--match=up",
        "--start=1699999000",
        "--end=1700001000",
        &server,
    ]))
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "{__name__=\"up\", job=\"api\"}");

    let (ok, out, err) = promtool(args(&[
        "query",
        "labels",
        "--start=1699999000",
        "--end=1700001000",
        "--match=up",
        &server,
        "job",
    ]))
    .await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "api");

    // A bad query surfaces Prometheus's error text through the real client.
    let (ok, _, err) = promtool(args(&["query", "instant", &server, "sum("])).await;
    assert!(!ok);
    assert!(
        err.contains("bad_data") || err.contains("parse error"),
        "{err}"
    );
}
