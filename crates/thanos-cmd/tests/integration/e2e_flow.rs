//! The whole flow of issue 10 on one machine, with real parts: Debian's Prometheus 2.42
//! scrapes itself and a generated target and remote-writes through an authenticating hop
//! (a bearer-token proxy standing in for OpenShift's oauth-proxy) into `thanos receive`,
//! which uploads its blocks to the real S3-compatible test server; `thanos store` serves the
//! bucket and `thanos query` fans out over receive and the store gateway. For a fixed set of
//! queries over the uploaded (block) range and the recent (head) range, the querier's answers
//! equal Prometheus's own answers over its own TSDB. Receive is restarted in the middle
//! (SIGTERM: flush, upload, exit 0).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use thanos_test_support::process::{Process, free_port};
use thanos_test_support::prometheus::Prometheus;
use thanos_test_support::{S3TestServer, now_ms};

const THANOS: &str = env!("CARGO_BIN_EXE_thanos");
const TOKEN: &str = "e2e-secret-token";
/// Labels our stack adds to every series that Prometheus's own TSDB does not have.
const ADDED_LABELS: [&str; 2] = ["tenant_id", "receive"];

/// Starts a `thanos` subcommand logging to `<dir>/<name>.log` (appended on restart).
fn thanos(name: &str, args: &[String], dir: &Path) -> Process {
    Process::spawn(name, THANOS, args, &dir.join(format!("{name}.log")))
}

/// The authenticating hop: requires `Authorization: Bearer <TOKEN>`, forwards the body and
/// the remote-write headers to receive, and passes receive's answer back.
#[derive(Clone)]
struct Proxy {
    upstream: String,
    client: reqwest::Client,
    refused: Arc<AtomicU64>,
}

async fn proxy_write(State(p): State<Proxy>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {TOKEN}"));
    if !authorized {
        p.refused.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::UNAUTHORIZED, "bad bearer token".to_owned());
    }
    let mut req = p.client.post(&p.upstream).body(body);
    for name in [
        "content-type",
        "content-encoding",
        "x-prometheus-remote-write-version",
        "user-agent",
    ] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.clone());
        }
    }
    match req.send().await {
        Ok(resp) => {
            let status = StatusCode::from_u16(resp.status().as_u16())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, resp.text().await.unwrap_or_default())
        }
        // Receive is down (restart): a retryable answer, as the oauth-proxy gives.
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// A scrape target whose values depend only on how often it was scraped. Counters start far
/// from zero: Prometheus 2.42 (the reference here) and 3.x (whose semantics we implement)
/// extrapolate `rate` differently when a window reaches back to a counter's zero point.
async fn generated_metrics(State(scrapes): State<Arc<AtomicU64>>) -> String {
    let n = scrapes.fetch_add(1, Ordering::Relaxed) + 1;
    let mut out = String::new();
    out.push_str("# TYPE e2e_requests_total counter\n");
    for (path, step) in [("/a", 1), ("/b", 3), ("/c", 7)] {
        out.push_str(&format!(
            "e2e_requests_total{{path=\"{path}\"}} {}\n",
            100_000 + n * step
        ));
    }
    out.push_str("# TYPE e2e_temperature gauge\n");
    for room in 0..4u64 {
        out.push_str(&format!(
            "e2e_temperature{{room=\"r{room}\"}} {}\n",
            ((n + room) % 11) as f64 * 0.5 + 18.0
        ));
    }
    out.push_str("# TYPE e2e_latency_seconds histogram\n");
    let mut cumulative = 0;
    for (i, le) in ["0.1", "0.5", "1", "+Inf"].iter().enumerate() {
        cumulative += 100_000 + n * (4 - i as u64);
        out.push_str(&format!(
            "e2e_latency_seconds_bucket{{le=\"{le}\"}} {cumulative}\n"
        ));
    }
    out.push_str(&format!("e2e_latency_seconds_sum {}\n", n as f64 * 1.25));
    out.push_str(&format!("e2e_latency_seconds_count {cumulative}\n"));
    out
}

async fn serve(router: axum::Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    port
}

/// A query result normalised for comparison: series labels (minus the labels our stack adds)
/// → points `(t, value)`.
type Normalised = BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>>;

fn normalise(data: &Value) -> Normalised {
    let mut out = Normalised::new();
    let result = data["result"].as_array().cloned().unwrap_or_default();
    for series in result {
        let labels: BTreeMap<String, String> = series["metric"]
            .as_object()
            .expect("metric")
            .iter()
            .filter(|(k, _)| !ADDED_LABELS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.as_str().expect("label value").to_owned()))
            .collect();
        let points: Vec<Value> = match (series.get("values"), series.get("value")) {
            (Some(v), _) => v.as_array().cloned().unwrap_or_default(),
            (None, Some(v)) => vec![v.clone()],
            (None, None) => Vec::new(),
        };
        let points = points
            .iter()
            .map(|p| {
                let t = p[0].as_f64().expect("timestamp");
                let v: f64 = p[1].as_str().expect("value").parse().expect("float");
                (t, v)
            })
            .collect();
        assert!(
            out.insert(labels.clone(), points).is_none(),
            "two series with labels {labels:?} after removing {ADDED_LABELS:?}"
        );
    }
    out
}

fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn equal(ours: &Normalised, theirs: &Normalised) -> Result<(), String> {
    if ours.len() != theirs.len() || ours.keys().ne(theirs.keys()) {
        return Err(format!(
            "series differ: ours {:?} vs Prometheus {:?}",
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>()
        ));
    }
    for (labels, a) in ours {
        let b = &theirs[labels];
        let same = a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && same_value(x.1, y.1));
        if !same {
            return Err(format!("{labels:?}: ours {a:?} vs Prometheus {b:?}"));
        }
    }
    Ok(())
}

async fn api(client: &reqwest::Client, base: &str, path: &str, params: &[(&str, String)]) -> Value {
    let resp = client
        .get(format!("{base}{path}"))
        .query(params)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {base}{path}: {e}"));
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert!(
        status.is_success(),
        "GET {base}{path} {params:?}: {status} {body}"
    );
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["status"], "success", "{body}");
    v["data"].clone()
}

/// One comparison: an instant query at `t` or a range query over `[start, end]`.
#[derive(Debug, Clone)]
enum Check {
    Instant {
        query: &'static str,
        t: f64,
    },
    Range {
        query: &'static str,
        start: f64,
        end: f64,
        step: f64,
    },
}

impl Check {
    fn params(&self) -> (&'static str, Vec<(&'static str, String)>) {
        match self {
            Check::Instant { query, t } => (
                "/api/v1/query",
                vec![("query", (*query).to_owned()), ("time", format!("{t:.3}"))],
            ),
            Check::Range {
                query,
                start,
                end,
                step,
            } => (
                "/api/v1/query_range",
                vec![
                    ("query", (*query).to_owned()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{end:.3}")),
                    ("step", format!("{step}")),
                ],
            ),
        }
    }
}

const QUERIES: [&str; 10] = [
    "up",
    "e2e_requests_total",
    "rate(e2e_requests_total[5s])",
    "sum by (path) (increase(e2e_requests_total[10s]))",
    "e2e_temperature",
    "max_over_time(e2e_temperature[6s])",
    "avg(e2e_temperature)",
    "histogram_quantile(0.9, rate(e2e_latency_seconds_bucket[5s]))",
    "e2e_latency_seconds_sum / e2e_latency_seconds_count",
    "count by (job) (up)",
];

/// Waits (up to `within`) until every check gives the same answer from the querier and from
/// Prometheus; panics with the last difference otherwise.
async fn assert_equal_answers(
    client: &reqwest::Client,
    ours: &str,
    theirs: &str,
    checks: &[Check],
    procs: &mut [&mut Process],
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        for p in procs.iter_mut() {
            p.assert_running();
        }
        let mut failure = None;
        for check in checks {
            let (path, params) = check.params();
            let mut ours_params = params.clone();
            ours_params.push(("dedup", "true".to_owned()));
            let a = normalise(&api(client, ours, path, &ours_params).await);
            let b = normalise(&api(client, theirs, path, &params).await);
            if b.is_empty() {
                failure = Some(format!("{check:?}: Prometheus returned nothing"));
                break;
            }
            if let Err(e) = equal(&a, &b) {
                failure = Some(format!("{check:?}: {e}"));
                break;
            }
        }
        match failure {
            None => return,
            Some(f) if Instant::now() >= deadline => panic!("answers differ: {f}"),
            Some(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

fn checks_between(start_ms: i64, end_ms: i64) -> Vec<Check> {
    let (start, end) = (start_ms as f64 / 1000.0, end_ms as f64 / 1000.0);
    let mid = (start + end) / 2.0;
    let mut checks = Vec::new();
    for query in QUERIES {
        checks.push(Check::Instant { query, t: mid });
        checks.push(Check::Instant { query, t: end });
        checks.push(Check::Range {
            query,
            start,
            end,
            step: 1.0,
        });
    }
    checks
}

/// Lists the uploaded blocks' meta.json files in the bucket directory of the S3 server.
fn uploaded_metas(bucket_dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(bucket_dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let meta = entry.path().join("meta.json");
        if let Ok(text) = std::fs::read_to_string(&meta) {
            out.push(serde_json::from_str(&text).expect("meta.json parses"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_to_receive_to_s3_to_store_and_query_equals_prometheus() {
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let client = reqwest::Client::new();

    // Object storage: the real S3-compatible test server.
    let s3 = S3TestServer::start().await;
    s3.create_bucket("thanos");
    let objstore = dir.join("objstore.yml");
    std::fs::write(&objstore, s3.objstore_yaml("thanos")).expect("objstore config");
    let bucket_dir = s3.data_dir().join("thanos");

    // Receive, with the authenticating hop in front of its remote-write endpoint.
    let (recv_http, recv_rw, recv_grpc) = (free_port(), free_port(), free_port());
    let receive_args = vec![
        "receive".to_owned(),
        "--label=receive=\"e2e\"".to_owned(),
        format!("--tsdb.path={}", dir.join("receive").display()),
        format!("--objstore.config-file={}", objstore.display()),
        format!("--http-address=127.0.0.1:{recv_http}"),
        format!("--remote-write.address=127.0.0.1:{recv_rw}"),
        format!("--grpc-address=127.0.0.1:{recv_grpc}"),
        "--tsdb.too-far-in-future.time-window=5m".to_owned(),
    ];
    let mut receive = thanos("receive", &receive_args, dir);
    let recv_ready = format!("http://127.0.0.1:{recv_http}/-/ready");
    receive
        .wait_ready(&recv_ready, Duration::from_secs(30))
        .await;

    let proxy = Proxy {
        upstream: format!("http://127.0.0.1:{recv_rw}/api/v1/receive"),
        client: reqwest::Client::new(),
        refused: Arc::new(AtomicU64::new(0)),
    };
    let refused = Arc::clone(&proxy.refused);
    let proxy_port = serve(
        axum::Router::new()
            .route("/api/v1/receive", post(proxy_write))
            .with_state(proxy),
    )
    .await;
    // A wrong token is refused by the hop and never reaches receive.
    let wrong = client
        .post(format!("http://127.0.0.1:{proxy_port}/api/v1/receive"))
        .header("Authorization", "Bearer wrong")
        .body(vec![0u8; 4])
        .send()
        .await
        .expect("proxy");
    assert_eq!(wrong.status(), 401);
    assert_eq!(refused.load(Ordering::Relaxed), 1);

    let target_port = serve(
        axum::Router::new()
            .route("/metrics", get(generated_metrics))
            .with_state(Arc::new(AtomicU64::new(0))),
    )
    .await;

    // Prometheus scrapes itself and the generated target every second and remote-writes.
    let prom_port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: myself\n    static_configs:\n      - targets: ['127.0.0.1:{prom_port}']\n\
         \x20 - job_name: generated\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n\
         remote_write:\n  - url: http://127.0.0.1:{proxy_port}/api/v1/receive\n\
         \x20   authorization:\n      credentials: {TOKEN}\n\
         \x20   remote_timeout: 5s\n    queue_config:\n      batch_send_deadline: 500ms\n      min_backoff: 50ms\n      max_backoff: 500ms\n"
    );
    let mut prometheus = Prometheus::start(dir, prom_port, &config);
    let prom = prometheus.url();
    prometheus.wait_ready(Duration::from_secs(30)).await;
    let first_ms = now_ms();

    // Store gateway over the bucket and a querier over receive and the store gateway.
    let (store_http, store_grpc) = (free_port(), free_port());
    let mut store = thanos(
        "store",
        &[
            "store".to_owned(),
            format!("--data-dir={}", dir.join("store").display()),
            format!("--objstore.config-file={}", objstore.display()),
            format!("--http-address=127.0.0.1:{store_http}"),
            format!("--grpc-address=127.0.0.1:{store_grpc}"),
            "--sync-block-duration=1s".to_owned(),
            "--consistency-delay=0s".to_owned(),
        ],
        dir,
    );
    let (query_http, query_grpc) = (free_port(), free_port());
    let mut query = thanos(
        "query",
        &[
            "query".to_owned(),
            format!("--endpoint=127.0.0.1:{recv_grpc}"),
            format!("--endpoint=127.0.0.1:{store_grpc}"),
            format!("--http-address=127.0.0.1:{query_http}"),
            format!("--grpc-address=127.0.0.1:{query_grpc}"),
        ],
        dir,
    );
    let ours = format!("http://127.0.0.1:{query_http}");
    store
        .wait_ready(
            &format!("http://127.0.0.1:{store_http}/-/ready"),
            Duration::from_secs(30),
        )
        .await;
    query
        .wait_ready(&format!("{ours}/-/ready"), Duration::from_secs(30))
        .await;

    // Phase 1: data flows into receive's head.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let stop_ms = now_ms();

    // Restart receive: SIGTERM flushes the head into a block and uploads it.
    assert_eq!(
        receive.terminate(Duration::from_secs(60)).code(),
        Some(0),
        "receive exit code:\n{}",
        receive.log_tail()
    );
    let metas = uploaded_metas(&bucket_dir);
    assert!(
        !metas.is_empty(),
        "no block uploaded on shutdown:\n{}",
        receive.log_tail()
    );
    for meta in &metas {
        assert_eq!(meta["thanos"]["source"], "receive", "{meta}");
        assert_eq!(
            meta["thanos"]["labels"]["tenant_id"], "default-tenant",
            "{meta}"
        );
        assert_eq!(meta["thanos"]["labels"]["receive"], "e2e", "{meta}");
    }
    receive = thanos("receive", &receive_args, dir);
    receive
        .wait_ready(&recv_ready, Duration::from_secs(60))
        .await;
    let restart_ms = now_ms();

    // Phase 2: data flows into the new head.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let last_ms = now_ms();
    // Only compare time ranges Prometheus had certainly delivered: a few seconds after start,
    // before the shutdown minus the send deadline, after the restart plus the backlog, and a
    // few seconds before now.
    let block_range = checks_between(first_ms + 8_000, stop_ms - 3_000);
    let head_range = checks_between(restart_ms + 5_000, last_ms - 4_000);
    let mut procs = [&mut *prometheus, &mut receive, &mut store, &mut query];
    assert_equal_answers(
        &client,
        &ours,
        &prom,
        &block_range,
        &mut procs,
        Duration::from_secs(60),
    )
    .await;
    assert_equal_answers(
        &client,
        &ours,
        &prom,
        &head_range,
        &mut procs,
        Duration::from_secs(30),
    )
    .await;

    // The block range is also answered from the bucket alone: a second querier over the
    // store gateway only (receive keeps a local copy of its blocks, so the first querier
    // could be answering from receive).
    let (bucket_query_http, bucket_query_grpc) = (free_port(), free_port());
    let mut bucket_query = thanos(
        "query-bucket",
        &[
            "query".to_owned(),
            format!("--endpoint=127.0.0.1:{store_grpc}"),
            format!("--http-address=127.0.0.1:{bucket_query_http}"),
            format!("--grpc-address=127.0.0.1:{bucket_query_grpc}"),
        ],
        dir,
    );
    let bucket_ours = format!("http://127.0.0.1:{bucket_query_http}");
    bucket_query
        .wait_ready(&format!("{bucket_ours}/-/ready"), Duration::from_secs(30))
        .await;
    let mut procs = [&mut *prometheus, &mut store, &mut bucket_query];
    assert_equal_answers(
        &client,
        &bucket_ours,
        &prom,
        &block_range,
        &mut procs,
        Duration::from_secs(30),
    )
    .await;

    for p in [&mut bucket_query, &mut query, &mut store, &mut receive] {
        assert_eq!(
            p.terminate(Duration::from_secs(60)).code(),
            Some(0),
            "{}",
            p.log_tail()
        );
    }
    assert_eq!(
        refused.load(Ordering::Relaxed),
        1,
        "Prometheus's token was refused"
    );
}
