//! `/api/v1/query_exemplars` parameter validation and the `max_source_resolution`
//! parameter of the query endpoints, over real HTTP.

use crate::common;

use common::{FakeStore, TestQuerier, samples};
use serde_json::json;
use thanos_model::Labels;
use thanos_query::QuerierOptions;

const T0: i64 = 1_700_000_000_000;

async fn querier() -> (TestQuerier, tokio_util::sync::CancellationToken) {
    let (addr, stop) = FakeStore::new(Labels::from_pairs([("replica", "a")]))
        .with_series(
            Labels::from_pairs([("__name__", "up"), ("job", "api")]),
            samples(T0, T0 + 600_000, 15_000, |_| 1.0),
        )
        .serve()
        .await;
    let q = TestQuerier::start(QuerierOptions {
        endpoints: vec![addr.to_string()],
        replica_labels: vec!["replica".into()],
        ..QuerierOptions::default()
    })
    .await;
    (q, stop)
}

#[tokio::test]
async fn exemplars_are_empty_after_validation() {
    let (q, _stop) = querier().await;
    for path in [
        "/api/v1/query_exemplars?query=up&start=1700000000&end=1700000600",
        "/api/v1/query_exemplars?query=rate(up%5B5m%5D)",
        "/api/v1/query_exemplars?query=up&start=2023-11-14T22:13:20Z&partial_response=false",
    ] {
        let (status, body) = q.get_text(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body, r#"{"status":"success","data":[]}"#, "{path}");
    }
    let resp = reqwest::Client::new()
        .post(q.url("/api/v1/query_exemplars"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("query=up&start=1700000000&end=1700000600")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"status":"success","data":[]}"#
    );
}

#[tokio::test]
async fn invalid_exemplar_requests_are_bad_data() {
    let (q, _stop) = querier().await;
    for (path, message) in [
        (
            "/api/v1/query_exemplars?query=up&start=yesterday",
            r#"invalid parameter "start": Invalid time value for 'start': cannot parse "yesterday" to a valid timestamp"#,
        ),
        (
            "/api/v1/query_exemplars?query=up&end=x",
            r#"invalid parameter "end": Invalid time value for 'end': cannot parse "x" to a valid timestamp"#,
        ),
        (
            "/api/v1/query_exemplars?query=up&start=20&end=10",
            "end timestamp must not be before start timestamp",
        ),
        (
            "/api/v1/query_exemplars?query=up&partial_response=maybe",
            r#"invalid parameter "partial_response": cannot parse "maybe" to a boolean"#,
        ),
    ] {
        let (status, body) = q.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(
            body,
            json!({"status": "error", "errorType": "bad_data", "error": message}),
            "{path}"
        );
    }
    for path in [
        "/api/v1/query_exemplars?query=up%7B",
        "/api/v1/query_exemplars",
    ] {
        let (status, body) = q.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["errorType"], "bad_data");
        assert!(
            body["error"].as_str().unwrap().contains("parse error"),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn max_source_resolution_is_validated_and_reads_raw_data() {
    let (q, _stop) = querier().await;
    let range = |extra: &str| {
        format!(
            "/api/v1/query_range?query=up&start={}&end={}&step=60{extra}",
            T0 / 1000,
            (T0 + 600_000) / 1000
        )
    };
    let (status, raw) = q.get(&range("")).await;
    assert_eq!(status, 200, "{raw}");
    assert_eq!(
        raw["data"]["result"][0]["values"].as_array().unwrap().len(),
        11
    );
    for value in ["auto", "0s", "0", "5m", "1h", "300"] {
        let (status, body) = q
            .get(&range(&format!("&max_source_resolution={value}")))
            .await;
        assert_eq!(status, 200, "{value}: {body}");
        assert_eq!(body, raw, "{value}: only raw data exists");
        let instant = format!(
            "/api/v1/query?query=up&time={}&max_source_resolution={value}",
            T0 / 1000 + 60
        );
        let (status, body) = q.get(&instant).await;
        assert_eq!(status, 200, "{value}: {body}");
        assert_eq!(body["data"]["result"][0]["value"][1], "1");
    }
    for (value, message) in [
        (
            "5x",
            r#"parse max_source_resolution: cannot parse "5x" to a valid duration"#,
        ),
        (
            "-300",
            "negative 'max_source_resolution' is not accepted. Try a positive integer",
        ),
    ] {
        for path in [
            range(&format!("&max_source_resolution={value}")),
            format!("/api/v1/query?query=up&max_source_resolution={value}"),
        ] {
            let (status, body) = q.get(&path).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert_eq!(
                body,
                json!({"status": "error", "errorType": "bad_data", "error": message}),
                "{path}"
            );
        }
    }
}
