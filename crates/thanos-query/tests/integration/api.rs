//! End-to-end tests: fake StoreAPI servers over real gRPC, the querier's HTTP API over
//! real HTTP.

use crate::common;

use std::time::{Duration, Instant};

use common::{FakeStore, TestQuerier, samples};
use serde_json::{Value, json};
use thanos_model::Labels;
use thanos_query::QuerierOptions;

const T0: i64 = 1_700_000_000_000;
const STEP: i64 = 15_000;

fn up() -> Labels {
    Labels::from_pairs([("__name__", "up"), ("job", "api"), ("instance", "x")])
}

fn value(t: i64) -> f64 {
    ((t - T0) / STEP) as f64
}

/// Replica "a" misses T0+75s..=T0+165s; replica "b" is complete.
async fn replicas() -> Vec<(std::net::SocketAddr, tokio_util::sync::CancellationToken)> {
    let full = samples(T0, T0 + 300_000, STEP, value);
    let gappy: Vec<_> = full
        .iter()
        .copied()
        .filter(|s| !(T0 + 75_000..=T0 + 165_000).contains(&s.t))
        .collect();
    let a = FakeStore::new(Labels::from_pairs([("region", "eu"), ("replica", "a")]))
        .with_series(up(), gappy);
    let mut b = FakeStore::new(Labels::from_pairs([("region", "eu"), ("replica", "b")]))
        .with_series(up(), full);
    // One store strips replica labels itself, the other relies on the proxy.
    b.strips_replica_labels = false;
    vec![a.serve().await, b.serve().await]
}

fn options(addrs: &[std::net::SocketAddr]) -> QuerierOptions {
    QuerierOptions {
        endpoints: addrs.iter().map(ToString::to_string).collect(),
        replica_labels: vec!["replica".into()],
        ..QuerierOptions::default()
    }
}

fn range_path(extra: &str) -> String {
    format!(
        "/api/v1/query_range?query=up&start={}&end={}&step=15&lookback_delta=45s{extra}",
        T0 / 1000,
        (T0 + 300_000) / 1000
    )
}

#[tokio::test]
async fn dedup_merges_replicas_into_one_series_without_gap() {
    let stores = replicas().await;
    let addrs: Vec<_> = stores.iter().map(|s| s.0).collect();
    let q = TestQuerier::start(options(&addrs)).await;

    let (status, body) = q.get(&range_path("")).await;
    assert_eq!(status, 200, "{body}");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{body}");
    assert_eq!(
        result[0]["metric"],
        json!({"__name__": "up", "instance": "x", "job": "api", "region": "eu"})
    );
    let values = result[0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 21, "one point per step, no gap: {body}");
    assert!(body.get("warnings").is_none());

    // Without dedup both replicas come back; replica "a" has a hole longer than lookback.
    let (status, body) = q.get(&range_path("&dedup=false")).await;
    assert_eq!(status, 200);
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2, "{body}");
    assert_eq!(result[0]["metric"]["replica"], "a");
    assert_eq!(result[1]["metric"]["replica"], "b");
    let a_points = result[0]["values"].as_array().unwrap().len();
    assert!(a_points < 21, "replica a has a gap: {a_points}");
    assert_eq!(result[1]["values"].as_array().unwrap().len(), 21);

    // The raw samples of the deduplicated series: every timestamp of b around a's gap
    // except the ones inside the penalty window after the switch.
    let (_, body) = q
        .get(&format!(
            "/api/v1/query?query=up[5m]&time={}",
            (T0 + 300_000) / 1000
        ))
        .await;
    let series = body["data"]["result"].as_array().unwrap();
    assert_eq!(series.len(), 1);
    let ts: Vec<f64> = series[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_f64().unwrap())
        .collect();
    assert!(
        ts.contains(&((T0 + 105_000) as f64 / 1000.0)),
        "switched to b in a's gap: {ts:?}"
    );
    let max_gap = ts.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(max_gap <= 45.0, "largest gap {max_gap}s");

    // replicaLabels[] overriding the flag with a label that is not a replica: no dedup.
    let (_, body) = q.get(&range_path("&replicaLabels[]=instance")).await;
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2, "{body}");
    assert!(result[0]["metric"].get("instance").is_none());
}

#[tokio::test]
async fn chain_dedup_unions_samples() {
    let stores = replicas().await;
    let addrs: Vec<_> = stores.iter().map(|s| s.0).collect();
    let mut opts = options(&addrs);
    opts.dedup_func = thanos_query::DedupFunc::Chain;
    let q = TestQuerier::start(opts).await;
    let (_, body) = q
        .get(&format!(
            "/api/v1/query?query=count_over_time(up[5m])&time={}",
            (T0 + 300_000) / 1000
        ))
        .await;
    // (T0, T0+300s] holds 20 distinct timestamps.
    assert_eq!(body["data"]["result"][0]["value"][1], "20", "{body}");
}

#[tokio::test]
async fn hanging_store_gives_partial_response_warning_or_error() {
    let good = FakeStore::new(Labels::from_pairs([("replica", "a")]))
        .with_series(up(), samples(T0, T0 + 60_000, STEP, value))
        .serve()
        .await;
    let mut hanging = FakeStore::new(Labels::from_pairs([("replica", "b")]))
        .with_series(up(), samples(T0, T0 + 60_000, STEP, value));
    hanging.delay = Some(Duration::from_secs(60));
    let hanging = hanging.serve().await;
    let mut opts = options(&[good.0, hanging.0]);
    opts.response_timeout = Some(Duration::from_millis(300));
    let q = TestQuerier::start(opts).await;
    let path = format!("/api/v1/query?query=up&time={}", (T0 + 60_000) / 1000);

    let started = Instant::now();
    let (status, body) = q.get(&path).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 1);
    let warnings = body["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{body}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.contains("failed to receive any data") && w.contains(&hanging.0.to_string()),
        "{w}"
    );

    let (status, body) = q.get(&format!("{path}&partial_response=false")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "timeout");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("failed to receive any data")
    );

    // Metadata calls follow the same rules.
    let (status, body) = q.get("/api/v1/labels").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!(["__name__", "instance", "job"]));
    assert_eq!(body["warnings"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn json_documents_match_prometheus_exactly() {
    let stores = replicas().await;
    let addrs: Vec<_> = stores.iter().map(|s| s.0).collect();
    let q = TestQuerier::start(options(&addrs)).await;

    let (status, text) = q
        .get_text(&format!(
            "/api/v1/query?query=up&time={}",
            (T0 + 300_000) / 1000
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        text,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"x","job":"api","region":"eu"},"value":[1700000300,"20"]}]}}"#
    );

    let (_, text) = q
        .get_text(&format!(
            "/api/v1/query_range?query=up/3&start={}&end={}&step=7.5",
            (T0 + 285_000) / 1000,
            (T0 + 300_000) / 1000
        ))
        .await;
    assert_eq!(
        text,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"instance":"x","job":"api","region":"eu"},"values":[[1700000285,"6.333333333333333"],[1700000292.500,"6.333333333333333"],[1700000300,"6.666666666666667"]]}]}}"#
    );

    let (_, text) = q
        .get_text("/api/v1/query?query=1.5&time=1700000000.123")
        .await;
    assert_eq!(
        text,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.123,"1.5"]}}"#
    );

    let (_, text) = q
        .get_text("/api/v1/series?match[]=up&match[]=%7Bjob%3D%22api%22%7D")
        .await;
    assert_eq!(
        text,
        r#"{"status":"success","data":[{"__name__":"up","instance":"x","job":"api","region":"eu"}]}"#
    );
    let (_, text) = q.get_text("/api/v1/series?match[]=up&dedup=false").await;
    assert_eq!(
        text,
        r#"{"status":"success","data":[{"__name__":"up","instance":"x","job":"api","region":"eu","replica":"a"},{"__name__":"up","instance":"x","job":"api","region":"eu","replica":"b"}]}"#
    );
    let (_, text) = q.get_text("/api/v1/series?match[]=nothing").await;
    assert_eq!(text, r#"{"status":"success","data":[]}"#);

    let (_, text) = q.get_text("/api/v1/labels").await;
    assert_eq!(
        text,
        r#"{"status":"success","data":["__name__","instance","job","region"]}"#
    );
    let (_, text) = q.get_text("/api/v1/labels?dedup=false").await;
    assert_eq!(
        text,
        r#"{"status":"success","data":["__name__","instance","job","region","replica"]}"#
    );
    let (_, text) = q.get_text("/api/v1/label/job/values").await;
    assert_eq!(text, r#"{"status":"success","data":["api"]}"#);
    let (_, text) = q.get_text("/api/v1/label/replica/values?dedup=false").await;
    assert_eq!(text, r#"{"status":"success","data":["a","b"]}"#);
    let (_, text) = q.get_text("/api/v1/label/nope/values").await;
    assert_eq!(text, r#"{"status":"success","data":[]}"#);
    let (_, text) = q.get_text("/api/v1/labels?limit=2").await;
    assert_eq!(
        text,
        r#"{"status":"success","data":["__name__","instance"],"warnings":["results truncated due to limit"]}"#
    );

    let (_, body) = q.get("/api/v1/status/buildinfo").await;
    assert_eq!(body["data"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["data"].as_object().unwrap().len(), 6);
}

#[tokio::test]
async fn post_form_and_errors() {
    let stores = replicas().await;
    let addrs: Vec<_> = stores.iter().map(|s| s.0).collect();
    let q = TestQuerier::start(options(&addrs)).await;
    let client = reqwest::Client::new();
    let resp = client
        .post(q.url("/api/v1/query"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("query=sum(up)&time={}", (T0 + 300_000) / 1000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000300,"20"]}]}}"#
    );

    let cases: [(&str, u16, &str, &str); 7] = [
        (
            "/api/v1/query?query=sum(",
            400,
            "bad_data",
            "invalid parameter \"query\": ",
        ),
        (
            "/api/v1/query?query=up&time=yesterday",
            400,
            "bad_data",
            "invalid parameter \"time\": cannot parse \"yesterday\" to a valid timestamp",
        ),
        (
            "/api/v1/query_range?query=up&start=10&end=20&step=0",
            400,
            "bad_data",
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ),
        (
            "/api/v1/query_range?query=up&start=20&end=10&step=1",
            400,
            "bad_data",
            "invalid parameter \"end\": end timestamp must not be before start time",
        ),
        (
            "/api/v1/query_range?query=up&start=0&end=11001&step=1",
            400,
            "bad_data",
            "exceeded maximum resolution of 11,000 points per timeseries",
        ),
        (
            "/api/v1/series",
            400,
            "bad_data",
            "no match[] parameter provided",
        ),
        (
            "/api/v1/series?match[]=%7Bjob%3D~%22.*%22%7D",
            400,
            "bad_data",
            "invalid parameter \"match[]\": ",
        ),
    ];
    for (path, status, kind, msg) in cases {
        let (got, body) = q.get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["errorType"], kind, "{path}");
        assert!(
            body["error"].as_str().unwrap().starts_with(msg),
            "{path}: {body}"
        );
        assert!(body.get("data").is_none());
    }
    // 11 001 points are still accepted.
    let (got, _) = q
        .get("/api/v1/query_range?query=1&start=0&end=11000&step=1")
        .await;
    assert_eq!(got, 200);
    // Execution errors are 422: dropping the replica label leaves two identical series.
    let (got, body) = q
        .get("/api/v1/query?query=label_replace(up,%22replica%22,%22%22,%22%22,%22%22)&time=1700000300&dedup=false")
        .await;
    assert_eq!(got, 422, "{body}");
    assert_eq!(body["errorType"], "execution");
    assert!(
        body["error"].as_str().unwrap().contains("same labelset"),
        "{body}"
    );
}

#[tokio::test]
async fn endpoints_health_drop_and_recover() {
    // Reserve a port, start nothing on it yet.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut opts = options(&[addr]);
    opts.info_interval = Duration::from_millis(500);
    opts.partial_response = false;
    let q = TestQuerier::start(opts).await;
    let st = q.querier.endpoints().statuses();
    assert_eq!(st.len(), 1);
    assert!(!st[0].healthy);
    assert!(st[0].last_error.is_some());
    let (_, body) = q.get("/api/v1/stores").await;
    assert_eq!(body["data"]["unknown"][0]["name"], addr.to_string());
    assert!(body["data"]["unknown"][0]["lastError"].is_string());

    // Unhealthy endpoints are not queried: an empty result, not an error.
    let (status, body) = q.get("/api/v1/query?query=up&time=1700000060").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"], json!([]));

    let stop = tokio_util::sync::CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    FakeStore::new(Labels::from_pairs([("replica", "a")]))
        .with_series(up(), samples(T0, T0 + 60_000, STEP, value))
        .serve_on(listener, stop.clone())
        .await;
    q.querier.endpoints().update().await;
    let st = q.querier.endpoints().statuses();
    assert!(st[0].healthy, "{st:?}");
    assert_eq!((st[0].min_time, st[0].max_time), (T0, T0 + 60_000));
    let (_, body) = q.get("/api/v1/stores").await;
    let store = &body["data"]["store"][0];
    assert_eq!(store["labelSets"], json!([{"replica": "a"}]));
    assert_eq!(store["lastError"], Value::Null);
    assert_eq!(store["minTime"], T0);
    assert!(store["lastCheck"].as_str().unwrap().ends_with('Z'));
    let (_, body) = q.get("/api/v1/query?query=up&time=1700000060").await;
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 1);

    // Time-range filtering: a query long after the store's data does not reach it.
    let (_, body) = q.get("/api/v1/query?query=up&time=1800000000").await;
    assert_eq!(body["data"]["result"], json!([]));

    stop.cancel();
    // Give the server a moment to close its listener and connections.
    tokio::time::sleep(Duration::from_millis(200)).await;
    q.querier.endpoints().update().await;
    assert!(!q.querier.endpoints().statuses()[0].healthy);

    // The background poller brings it back once it answers again.
    let shutdown = tokio_util::sync::CancellationToken::new();
    let qq = q.querier.clone();
    let s2 = shutdown.clone();
    tokio::spawn(async move { qq.run_discovery(s2).await });
    let stop2 = tokio_util::sync::CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    FakeStore::new(Labels::from_pairs([("replica", "a")]))
        .with_series(up(), samples(T0, T0 + 60_000, STEP, value))
        .serve_on(listener, stop2.clone())
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !q.querier.endpoints().statuses()[0].healthy {
        assert!(Instant::now() < deadline, "endpoint never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    stop2.cancel();
}

#[tokio::test]
async fn no_stores_is_empty_or_error_by_strategy() {
    let q = TestQuerier::start(QuerierOptions::default()).await;
    let (status, body) = q.get("/api/v1/query?query=up&time=100").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["result"], json!([]));
    let (status, body) = q
        .get("/api/v1/query?query=up&time=100&partial_response=false")
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("No StoreAPIs available")
    );
}

#[tokio::test]
async fn queriers_stack_over_the_store_api() {
    let stores = replicas().await;
    let addrs: Vec<_> = stores.iter().map(|s| s.0).collect();
    let lower = TestQuerier::start(options(&addrs)).await;
    let upper = TestQuerier::start(options(&[lower.grpc])).await;
    let st = upper.querier.endpoints().statuses();
    assert!(st[0].healthy, "{st:?}");
    assert_eq!(st[0].component_type, "query");
    assert_eq!(st[0].label_sets.len(), 2);
    assert_eq!((st[0].min_time, st[0].max_time), (T0, T0 + 300_000));

    let (_, body) = upper.get(&range_path("")).await;
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{body}");
    assert_eq!(result[0]["values"].as_array().unwrap().len(), 21);
    let (_, body) = upper.get(&range_path("&dedup=false")).await;
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn dns_endpoints_are_resolved() {
    let store = FakeStore::new(Labels::from_pairs([("replica", "a")]))
        .with_series(up(), samples(T0, T0 + 60_000, STEP, value))
        .serve()
        .await;
    let spec = format!("dns+localhost:{}", store.0.port());
    let q = TestQuerier::start(QuerierOptions {
        endpoints: vec![spec, store.0.to_string()],
        ..QuerierOptions::default()
    })
    .await;
    let st = q.querier.endpoints().statuses();
    // localhost resolves to 127.0.0.1 (the same address as the static spec, listed once)
    // and possibly ::1, where nothing listens.
    let v4: Vec<_> = st
        .iter()
        .filter(|s| s.address == store.0.to_string())
        .collect();
    assert_eq!(v4.len(), 1, "{st:?}");
    assert!(v4[0].healthy);
    let (_, body) = q.get("/api/v1/query?query=up&time=1700000060").await;
    assert_eq!(
        body["data"]["result"].as_array().unwrap().len(),
        1,
        "{body}"
    );
}

#[tokio::test]
async fn hanging_store_without_response_timeout_returns_before_query_timeout() {
    let good = FakeStore::new(Labels::from_pairs([("replica", "a")]))
        .with_series(up(), samples(T0, T0 + 60_000, STEP, value))
        .serve()
        .await;
    let mut hanging = FakeStore::new(Labels::from_pairs([("replica", "b")]))
        .with_series(up(), samples(T0, T0 + 60_000, STEP, value));
    hanging.delay = Some(Duration::from_secs(60));
    let hanging = hanging.serve().await;
    let q = TestQuerier::start(options(&[good.0, hanging.0])).await;
    let path = format!(
        "/api/v1/query?query=up&time={}&timeout=1s",
        (T0 + 60_000) / 1000
    );
    let started = Instant::now();
    let (status, body) = q.get(&path).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        took >= Duration::from_millis(850) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    assert_eq!(body["data"]["result"].as_array().unwrap().len(), 1);
    assert_eq!(body["warnings"].as_array().map(Vec::len), Some(1), "{body}");

    // Partial response disabled: the per-request timeout is honoured with a timeout error.
    let started = Instant::now();
    let (status, body) = q.get(&format!("{path}&partial_response=false")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["errorType"], "timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn per_query_limits_fail_the_query() {
    let stores = replicas().await;
    let addrs: Vec<_> = stores.iter().map(|s| s.0).collect();
    let mut opts = options(&addrs);
    opts.limits.max_series = 1;
    let q = TestQuerier::start(opts).await;
    let at = (T0 + 300_000) / 1000;
    let (status, _) = q.get(&format!("/api/v1/query?query=up&time={at}")).await;
    assert_eq!(status, 200, "deduplicated: one series");
    let (status, body) = q
        .get(&format!("/api/v1/query?query=up&time={at}&dedup=false"))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errorType"], "execution");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("exceeded series limit"),
        "{body}"
    );
}

#[tokio::test]
async fn overlapping_stores_return_the_union_without_duplicates() {
    // Like a store gateway (blocks uploaded by a receiver) and the receiver itself (recent
    // data) with the same external labels: the overlapping chunks are byte-identical, the
    // proxy drops the duplicates, the result is one series with every sample once.
    let ext = Labels::from_pairs([("tenant_id", "default")]);
    let old = FakeStore::new(ext.clone())
        .with_series(up(), samples(T0, T0 + 225_000, STEP, value))
        .serve()
        .await;
    let recent = FakeStore::new(ext)
        .with_series(up(), samples(T0 + 120_000, T0 + 300_000, STEP, value))
        .serve()
        .await;
    let q = TestQuerier::start(options(&[old.0, recent.0])).await;
    let (_, body) = q
        .get(&format!(
            "/api/v1/query?query=up[10m]&time={}",
            (T0 + 300_000) / 1000
        ))
        .await;
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{body}");
    let values = result[0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 21, "{body}");
    let (_, body) = q
        .get(&format!(
            "/api/v1/query?query=count_over_time(up[10m])&time={}&dedup=false",
            (T0 + 300_000) / 1000
        ))
        .await;
    assert_eq!(body["data"]["result"][0]["value"][1], "21", "{body}");
}

#[tokio::test]
async fn store_match_restricts_the_queried_stores() {
    let stores = replicas().await;
    let addrs: Vec<_> = stores.iter().map(|s| s.0).collect();
    let q = TestQuerier::start(options(&addrs)).await;
    let only_b = format!("%7B__address__%3D%22{}%22%7D", addrs[1]);
    let at = (T0 + 300_000) / 1000;
    let (_, body) = q
        .get(&format!(
            "/api/v1/query?query=up&time={at}&dedup=false&storeMatch[]={only_b}"
        ))
        .await;
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{body}");
    assert_eq!(result[0]["metric"]["replica"], "b");
    let (_, text) = q
        .get_text(&format!(
            "/api/v1/label/replica/values?dedup=false&storeMatch[]={only_b}"
        ))
        .await;
    assert_eq!(text, r#"{"status":"success","data":["b"]}"#);
    let (_, text) = q
        .get_text("/api/v1/label/replica/values?dedup=false&storeMatch[]=%7B__address__%3D%22nowhere%3A1%22%7D")
        .await;
    assert_eq!(text, r#"{"status":"success","data":[]}"#);
    let (status, _) = q.get("/api/v1/labels?storeMatch[]=sum(").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn metadata_is_merged_from_endpoints() {
    let meta = |t: &str, h: &str| thanos_proto::thanos::Meta {
        r#type: t.into(),
        help: h.into(),
        unit: String::new(),
    };
    let mut a = FakeStore::new(Labels::from_pairs([("replica", "a")]));
    a.metadata = vec![
        ("up".into(), meta("gauge", "Target is up.")),
        ("http_requests_total".into(), meta("counter", "Requests.")),
    ];
    let mut b = FakeStore::new(Labels::from_pairs([("replica", "b")]));
    b.metadata = vec![
        ("up".into(), meta("gauge", "Target is up.")),
        ("up".into(), meta("gauge", "Other help.")),
    ];
    let (a, b) = (a.serve().await, b.serve().await);
    let q = TestQuerier::start(options(&[a.0, b.0])).await;
    let (_, text) = q.get_text("/api/v1/metadata").await;
    assert_eq!(
        text,
        r#"{"status":"success","data":{"http_requests_total":[{"type":"counter","help":"Requests.","unit":""}],"up":[{"type":"gauge","help":"Target is up.","unit":""},{"type":"gauge","help":"Other help.","unit":""}]}}"#
    );
    let (_, body) = q.get("/api/v1/metadata?metric=up&limit_per_metric=1").await;
    assert_eq!(
        body["data"],
        json!({"up": [{"type": "gauge", "help": "Target is up.", "unit": ""}]})
    );
    let (_, body) = q.get("/api/v1/metadata?limit=1").await;
    assert_eq!(body["data"].as_object().unwrap().len(), 1);
    let (_, text) = q.get_text("/api/v1/metadata?metric=nothing").await;
    assert_eq!(text, r#"{"status":"success","data":{}}"#);
}

#[tokio::test]
async fn a_single_store_with_many_series_returns_all_of_them() {
    // More series than the proxy receives inside the query's own task before handing the
    // store stream to a task of its own.
    const N: i64 = 1300;
    let mut store = FakeStore::new(Labels::from_pairs([("region", "eu")]));
    for i in 0..N {
        let labels = Labels::from_pairs([("__name__", "many"), ("i", &format!("{i:04}"))]);
        store = store.with_series(
            labels,
            samples(T0, T0 + 60_000, STEP, move |t| value(t) + i as f64),
        );
    }
    let (addr, _stop) = store.serve().await;
    let q = TestQuerier::start(options(&[addr])).await;
    let at = (T0 + 60_000) / 1000;
    let (status, body) = q
        .get(&format!("/api/v1/query?query=count(many)&time={at}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"][0]["value"][1], "1300");
    // Every series is at 4 + i at T0+60s.
    let (_, body) = q
        .get(&format!("/api/v1/query?query=sum(many)&time={at}"))
        .await;
    let want = 4 * N + N * (N - 1) / 2;
    assert_eq!(
        body["data"]["result"][0]["value"][1],
        want.to_string(),
        "{body}"
    );
    let (_, body) = q
        .get(&format!(
            "/api/v1/query_range?query=many{{i=\"1299\"}}&start={}&end={at}&step=15",
            T0 / 1000
        ))
        .await;
    let values = body["data"]["result"][0]["values"].as_array().unwrap();
    let got: Vec<&str> = values.iter().map(|v| v[1].as_str().unwrap()).collect();
    assert_eq!(got, vec!["1299", "1300", "1301", "1302", "1303"], "{body}");
}
