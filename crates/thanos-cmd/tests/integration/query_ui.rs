//! `thanos query` as a process: the web UI under `--web.route-prefix` with links using
//! `--web.external-prefix`, and an endpoint added through `--endpoint.sd-config-file`
//! while the querier runs (a second querier serves as the StoreAPI endpoint).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use thanos_test_support::process::{Process, free_port, http_get, wait_for};

const THANOS: &str = env!("CARGO_BIN_EXE_thanos");
/// How long each wait may take.
const WAIT: Duration = Duration::from_secs(30);

fn spawn(args: &[String], log: &Path) -> Process {
    Process::spawn("thanos", THANOS, args, log)
}

fn stores(port: u16) -> Value {
    http_get(port, "/q/api/v1/stores")
        .and_then(|r| serde_json::from_str(&r.body).ok())
        .unwrap_or(Value::Null)
}

#[test]
fn ui_under_prefixes_and_endpoints_from_the_sd_file() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("endpoints.yaml");
    std::fs::write(&sd, "endpoints: []\n").unwrap();

    // The endpoint: another querier (it serves the StoreAPI and Info over gRPC).
    let (inner_http, inner_grpc) = (free_port(), free_port());
    let _inner = spawn(
        &[
            "query".into(),
            format!("--http-address=127.0.0.1:{inner_http}"),
            format!("--grpc-address=127.0.0.1:{inner_grpc}"),
        ],
        &dir.path().join("inner.log"),
    );
    let (http, grpc) = (free_port(), free_port());
    let log = dir.path().join("outer.log");
    let _outer = spawn(
        &[
            "query".into(),
            format!("--http-address=127.0.0.1:{http}"),
            format!("--grpc-address=127.0.0.1:{grpc}"),
            "--web.route-prefix=/q".into(),
            "--web.external-prefix=/ext".into(),
            format!("--endpoint.sd-config-file={}", sd.display()),
            "--endpoint.info-timeout=500ms".into(),
        ],
        &log,
    );
    wait_for("the querier's HTTP server", WAIT, || {
        http_get(http, "/-/ready").is_some_and(|r| r.status == 200)
    });

    // UI: served under the route prefix, links and redirects use the external prefix.
    for path in ["/", "/q", "/q/"] {
        let r = http_get(http, path).unwrap();
        assert_eq!(r.status, 302, "{path}");
        assert!(
            r.head.contains("\r\nlocation: /ext/graph"),
            "{path}: {}",
            r.head
        );
    }
    for page in ["/q/graph", "/q/stores"] {
        let r = http_get(http, page).unwrap();
        let body = r.body;
        assert_eq!(r.status, 200, "{page}");
        assert!(body.contains("data-prefix=\"/ext\""), "{body}");
        assert!(body.contains("src=\"/ext/static/app.js\""), "{body}");
    }
    let js = http_get(http, "/q/static/app.js").unwrap();
    assert_eq!(js.status, 200);
    assert!(
        js.head.contains("content-type: text/javascript"),
        "{}",
        js.head
    );
    assert!(js.body.contains("/api/v1/query_range"));
    let exemplars = http_get(http, "/q/api/v1/query_exemplars?query=up").unwrap();
    assert_eq!(exemplars.status, 200);
    assert_eq!(exemplars.body, r#"{"status":"success","data":[]}"#);

    // The SD file gains the endpoint: it is discovered without a restart.
    assert_eq!(stores(http)["data"], serde_json::json!({}));
    std::fs::write(
        &sd,
        format!("endpoints:\n  - address: 127.0.0.1:{inner_grpc}\n"),
    )
    .unwrap();
    wait_for("the endpoint from the SD file to be healthy", WAIT, || {
        let s = stores(http);
        s["data"]["query"][0]["name"] == format!("127.0.0.1:{inner_grpc}")
            && s["data"]["query"][0]["lastError"].is_null()
    });
    // And removed again.
    std::fs::write(&sd, "endpoints: []\n").unwrap();
    wait_for("the endpoint to be removed", WAIT, || {
        stores(http)["data"] == serde_json::json!({})
    });
}
