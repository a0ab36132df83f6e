//! `--receive.limits-config` and `--receive.relabel-config` end to end: real HTTP over
//! loopback against an in-process receive endpoint (and a fake meta-monitoring
//! Prometheus), reading the stored series back from the tenant heads.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestServer, now_ms, ts, v1_body};
use prometheus::Registry;
use thanos_receive::limits::LimitsReloader;
use thanos_receive::reload::run_reload_loop;
use thanos_receive::{HandlerOptions, HeadOptions, Limiter, LimitsConfig, MetaMonitoring};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn limiter(yaml: &str) -> Arc<Limiter> {
    let config = LimitsConfig::parse(yaml).expect("valid limits");
    Arc::new(Limiter::new(config, &Registry::new()).expect("metrics"))
}

async fn start(limiter: Option<Arc<Limiter>>, relabel: &str) -> TestServer {
    let relabel = thanos_model::relabel::parse_yaml(relabel).expect("valid relabel");
    TestServer::start(
        HandlerOptions {
            limiter,
            relabel: Arc::new(relabel),
            ..HandlerOptions::default()
        },
        HeadOptions::default(),
        true,
    )
    .await
}

/// POSTs `body` as `tenant`; returns (status, body text).
async fn post(server: &TestServer, tenant: &str, body: Vec<u8>) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(server.url())
        .header("Content-Encoding", "snappy")
        .header("THANOS-TENANT", tenant)
        .body(body)
        .send()
        .await
        .expect("send");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// `n` series with `samples` samples each.
fn series_body(n: usize, samples: usize) -> Vec<u8> {
    let now = now_ms();
    let points: Vec<(i64, f64)> = (0..samples).map(|i| (now + i as i64, 1.0)).collect();
    let idx: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    v1_body(
        idx.iter()
            .map(|i| ts(&[("__name__", "up"), ("i", i)], &points))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_answer_413_with_thanos_messages() {
    let l = limiter(
        "write:\n  default:\n    request:\n      size_bytes_limit: 2000\n      \
         series_limit: 2\n      samples_limit: 4\n",
    );
    let server = start(Some(l), "").await;
    let t = "team";

    let (status, _) = post(&server, t, series_body(2, 2)).await;
    assert_eq!(status, 200, "at the limits");

    let (status, msg) = post(&server, t, series_body(3, 1)).await;
    assert_eq!(status, 413);
    assert!(msg.starts_with("too many timeseries"), "{msg}");

    let (status, msg) = post(&server, t, series_body(1, 5)).await;
    assert_eq!(status, 413);
    assert!(msg.starts_with("too many samples"), "{msg}");

    // Compressed body above the limit: rejected on Content-Length.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: String = (0..3000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    let big = v1_body(vec![ts(&[("__name__", "up"), ("n", &noise)], &[(1, 1.0)])]);
    assert!(big.len() > 2000);
    let (status, msg) = post(&server, t, big).await;
    assert_eq!(status, 413);
    assert!(msg.starts_with("write request too large"), "{msg}");

    // Small compressed, large decompressed: rejected on the decompressed length.
    let repetitive = "a".repeat(5000);
    let bomb = v1_body(vec![ts(
        &[("__name__", "up"), ("n", &repetitive)],
        &[(1, 1.0)],
    )]);
    assert!(bomb.len() < 2000, "{}", bomb.len());
    let (status, msg) = post(&server, t, bomb).await;
    assert_eq!(status, 413);
    assert!(msg.starts_with("write request too large"), "{msg}");

    // Only the first request was stored.
    assert_eq!(server.dump(t).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_overrides_win_over_default() {
    let l = limiter(
        "write:\n  default:\n    request: {series_limit: 1}\n  tenants:\n    \
         big: {request: {series_limit: 0}}\n    small: {request: {samples_limit: 1}}\n",
    );
    let server = start(Some(l), "").await;
    let (status, msg) = post(&server, "other", series_body(2, 1)).await;
    assert_eq!(
        (status, msg.starts_with("too many timeseries")),
        (413, true),
        "{msg}"
    );
    let (status, msg) = post(&server, "big", series_body(5, 1)).await;
    assert_eq!(status, 200, "0 = unlimited overrides the default: {msg}");
    // `small` inherits series_limit 1 and adds samples_limit 1.
    let (status, msg) = post(&server, "small", series_body(2, 1)).await;
    assert_eq!(
        (status, msg.starts_with("too many timeseries")),
        (413, true),
        "{msg}"
    );
    let (status, msg) = post(&server, "small", series_body(1, 2)).await;
    assert_eq!(
        (status, msg.starts_with("too many samples")),
        (413, true),
        "{msg}"
    );
    assert_eq!(server.dump("big").len(), 5);
    assert!(server.dump("small").is_empty());
}

/// Sends a request whose body is held back after its first bytes until `release` fires;
/// returns the response status line.
async fn slow_request(
    addr: std::net::SocketAddr,
    body: Vec<u8>,
    release: tokio::sync::oneshot::Receiver<()>,
) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/receive HTTP/1.1\r\nHost: test\r\nContent-Encoding: snappy\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("head");
    conn.write_all(&body[..1]).await.expect("first byte");
    let _ = release.await;
    conn.write_all(&body[1..]).await.expect("rest");
    let mut resp = Vec::new();
    conn.read_to_end(&mut resp).await.expect("response");
    String::from_utf8_lossy(&resp)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_gate_makes_the_extra_request_wait() {
    let server = TestServer::start(
        HandlerOptions {
            max_concurrency: 1,
            ..HandlerOptions::default()
        },
        HeadOptions::default(),
        true,
    )
    .await;
    let (release, released) = tokio::sync::oneshot::channel();
    let slow = tokio::spawn(slow_request(server.addr, series_body(1, 1), released));
    // Wait until the slow request holds the only permit.
    let pending = || {
        server
            .registry
            .gather()
            .iter()
            .find(|f| f.name() == "thanos_receive_pending_write_requests")
            .map_or(0.0, |f| f.get_metric()[0].get_gauge().get_value())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pending() < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "slow request not seen"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let url = server.url();
    let fast = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("Content-Encoding", "snappy")
            .header("THANOS-TENANT", "fast")
            .body(series_body(2, 1))
            .send()
            .await
            .expect("send")
            .status()
            .as_u16()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !fast.is_finished(),
        "the second request must wait at the gate"
    );
    assert_eq!(pending(), 2.0);
    assert!(server.dump("fast").is_empty());
    release.send(()).expect("release");
    assert!(slow.await.expect("slow").contains("200"));
    assert_eq!(fast.await.expect("fast"), 200, "waited, not rejected");
    assert_eq!(server.dump("fast").len(), 2);
}

/// A fake meta-monitoring Prometheus answering `/api/v1/query` with a vector of
/// `{tenant=...}` samples; records the queries it got.
struct FakePrometheus {
    addr: std::net::SocketAddr,
    counts: Arc<Mutex<Vec<(String, f64)>>>,
    queries: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakePrometheus {
    async fn start() -> Self {
        let counts: Arc<Mutex<Vec<(String, f64)>>> = Arc::default();
        let queries: Arc<Mutex<Vec<String>>> = Arc::default();
        let (c, q) = (Arc::clone(&counts), Arc::clone(&queries));
        let app = axum::Router::new().route(
            "/api/v1/query",
            axum::routing::get(
                move |axum::extract::Query(params): axum::extract::Query<
                    HashMap<String, String>,
                >| {
                    let (c, q) = (Arc::clone(&c), Arc::clone(&q));
                    async move {
                        q.lock()
                            .unwrap()
                            .push(params.get("query").cloned().unwrap_or_default());
                        let result: Vec<serde_json::Value> = c
                            .lock()
                            .unwrap()
                            .iter()
                            .map(|(tenant, v)| {
                                serde_json::json!({
                                    "metric": {"tenant": tenant},
                                    "value": [1700000000.0, v.to_string()],
                                })
                            })
                            .collect();
                        axum::Json(serde_json::json!({
                            "status": "success",
                            "data": {"resultType": "vector", "result": result},
                        }))
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self {
            addr,
            counts,
            queries,
            task,
        }
    }
}

impl Drop for FakePrometheus {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_series_limit_answers_429_from_meta_monitoring() {
    let prom = FakePrometheus::start().await;
    let l = limiter(&format!(
        "write:\n  global:\n    meta_monitoring_url: http://{}\n  default:\n    \
         head_series_limit: 10\n  tenants:\n    vip: {{head_series_limit: 0}}\n",
        prom.addr
    ));
    let server = start(Some(Arc::clone(&l)), "").await;
    let poller = MetaMonitoring::new(Arc::clone(&l), Duration::from_secs(5)).expect("client");

    *prom.counts.lock().unwrap() = vec![
        ("over".into(), 10.0),
        ("under".into(), 9.0),
        ("vip".into(), 1e6),
    ];
    assert_eq!(poller.poll().await.expect("query"), 3);
    assert_eq!(
        prom.queries.lock().unwrap().as_slice(),
        ["sum(prometheus_tsdb_head_series) by (tenant)"]
    );
    let (status, msg) = post(&server, "over", series_body(1, 1)).await;
    assert_eq!(status, 429);
    assert!(
        msg.starts_with("tenant is above active series limit"),
        "{msg}"
    );
    assert_eq!(post(&server, "under", series_body(1, 1)).await.0, 200);
    assert_eq!(
        post(&server, "vip", series_body(1, 1)).await.0,
        200,
        "0 = unlimited"
    );
    assert_eq!(post(&server, "unknown", series_body(1, 1)).await.0, 200);
    assert!(server.dump("over").is_empty());

    // The tenant drops under its limit: accepted again after the next poll.
    *prom.counts.lock().unwrap() = vec![("over".into(), 3.0)];
    poller.poll().await.expect("query");
    assert_eq!(post(&server, "over", series_body(1, 1)).await.0, 200);

    // Meta-monitoring down: no limiting at all.
    *prom.counts.lock().unwrap() = vec![("over".into(), 100.0)];
    poller.poll().await.expect("query");
    assert_eq!(post(&server, "over", series_body(1, 1)).await.0, 429);
    drop(prom);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = poller.poll().await.expect_err("server gone");
    assert!(err.to_string().contains("/api/v1/query"), "{err}");
    assert_eq!(post(&server, "over", series_body(1, 1)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_meta_monitoring_limits_nothing() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let l = limiter(&format!(
        "write:\n  global:\n    meta_monitoring_url: http://{closed}\n  default:\n    \
         head_series_limit: 1\n"
    ));
    let server = start(Some(Arc::clone(&l)), "").await;
    let poller = MetaMonitoring::new(Arc::clone(&l), Duration::from_secs(2)).expect("client");
    assert!(poller.poll().await.is_err());
    for _ in 0..3 {
        assert_eq!(post(&server, "t", series_body(2, 1)).await.0, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_changes_and_keeps_old_limits_on_invalid_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("limits.yaml");
    let v1 = "write:\n  default:\n    request: {series_limit: 3}\n";
    std::fs::write(&path, v1).expect("write");
    let registry = Registry::new();
    let l = Arc::new(
        Limiter::new(LimitsConfig::parse(v1).expect("valid"), &registry).expect("metrics"),
    );
    let server = start(Some(Arc::clone(&l)), "").await;
    let reloader = LimitsReloader::new(&path, Arc::clone(&l), v1.to_owned());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let every = Duration::from_millis(50);
    let task = tokio::spawn(run_reload_loop(reloader, every, every, async move {
        let _ = stopped.await;
    }));
    assert_eq!(post(&server, "t", series_body(2, 1)).await.0, 200);

    std::fs::write(
        &path,
        "write:\n  default:\n    request: {series_limit: 1}\n",
    )
    .expect("write");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while l.config().request_limits("t").series != 1 {
        assert!(std::time::Instant::now() < deadline, "reload not picked up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, msg) = post(&server, "t", series_body(2, 1)).await;
    assert_eq!(
        (status, msg.starts_with("too many timeseries")),
        (413, true),
        "{msg}"
    );

    // Invalid content (unknown field): the previous limits stay in force.
    std::fs::write(
        &path,
        "write:\n  default:\n    request: {series_limt: 100}\n",
    )
    .expect("write");
    let reload_errors = || {
        registry
            .gather()
            .iter()
            .find(|f| f.name() == "thanos_receive_limits_config_reload_err_total")
            .map_or(0.0, |f| f.get_metric()[0].get_counter().get_value())
    };
    while reload_errors() < 1.0 {
        assert!(std::time::Instant::now() < deadline, "bad file not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(l.config().request_limits("t").series, 1);
    assert_eq!(post(&server, "t", series_body(2, 1)).await.0, 413);
    assert_eq!(post(&server, "t", series_body(1, 1)).await.0, 200);
    stop.send(()).expect("stop");
    task.await.expect("join").expect("run");
}

const RELABEL: &str = r#"
- source_labels: [__name__]
  regex: dropped_.*
  action: drop
- source_labels: [env]
  regex: prod
  action: keep
- source_labels: [instance]
  regex: "(.*):\\d+"
  target_label: host
  replacement: "$1"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relabel_drops_keeps_and_replaces_before_storing() {
    let server = start(None, RELABEL).await;
    let now = now_ms();
    let body = v1_body(vec![
        ts(&[("__name__", "dropped_a"), ("env", "prod")], &[(now, 1.0)]),
        ts(&[("__name__", "up"), ("env", "dev")], &[(now, 2.0)]),
        ts(
            &[("__name__", "up"), ("env", "prod"), ("instance", "h1:9100")],
            &[(now, 3.0)],
        ),
    ]);
    assert_eq!(post(&server, "t", body).await.0, 200);
    let stored = server.dump("t");
    assert_eq!(
        stored,
        vec![(
            r#"{__name__="up", env="prod", host="h1", instance="h1:9100"}"#.to_owned(),
            now,
            3.0f64.to_bits()
        )]
    );

    // Everything dropped: 200 and nothing stored.
    let body = v1_body(vec![
        ts(&[("__name__", "dropped_b"), ("env", "prod")], &[(now, 1.0)]),
        ts(&[("__name__", "up")], &[(now, 1.0)]),
    ]);
    assert_eq!(post(&server, "only-dropped", body).await.0, 200);
    assert!(server.dump("only-dropped").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relabel_leaving_no_labels_is_400_for_that_series() {
    let server = start(
        None,
        "- source_labels: [strip]\n  regex: 'yes'\n  action: replace\n  target_label: __name__\n  \
         replacement: ''\n- regex: strip\n  action: labeldrop\n",
    )
    .await;
    let now = now_ms();
    let body = v1_body(vec![
        ts(&[("__name__", "gone"), ("strip", "yes")], &[(now, 1.0)]),
        ts(&[("__name__", "ok"), ("strip", "no")], &[(now, 2.0)]),
    ]);
    let (status, msg) = post(&server, "t", body).await;
    assert_eq!(status, 400);
    assert!(msg.contains("empty label set"), "{msg}");
    let stored = server.dump("t");
    assert_eq!(stored.len(), 1, "the valid series is still written");
    assert_eq!(stored[0].0, r#"{__name__="ok"}"#);
}
