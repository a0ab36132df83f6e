//! Receive hashrings with real `thanos receive` processes on loopback: replication with
//! quorum across three RouterIngestors (surviving a `kill -9` and taking writes again
//! after a restart), a RouterOnly receiver splitting writes between two ingestors by the
//! ring, hot reload of the hashrings file without restart or unreadiness, and the
//! snappy-framed gRPC `thanos.WriteableStore/RemoteWrite` Thanos peers send.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use prost::Message as _;
use thanos_model::XorIterator;
use thanos_proto::prometheus as pb;
use thanos_proto::prometheus_copy as pc;
use thanos_proto::thanos::store_client::StoreClient;
use thanos_proto::thanos::{
    Label, LabelMatcher, SeriesRequest, TimeSeriesTenantTuple, WriteRequest, series_response,
};
use thanos_test_support::process::{Process, free_port, http_ok};
use thanos_test_support::{now_ms, remote_write};
use tower::ServiceExt as _;

const THANOS: &str = env!("CARGO_BIN_EXE_thanos");

/// One `thanos receive` process (restartable with the same ports and data).
struct Node {
    name: String,
    args: Vec<String>,
    process: Option<Process>,
    http: u16,
    remote_write: u16,
    grpc: u16,
    log: PathBuf,
    starts: usize,
}

impl Node {
    fn new(dir: &Path, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            args: Vec::new(),
            process: None,
            http: free_port(),
            remote_write: free_port(),
            grpc: free_port(),
            log: dir.join(format!("{name}.log")),
            starts: 0,
        }
    }

    fn grpc_address(&self) -> String {
        format!("127.0.0.1:{}", self.grpc)
    }

    fn configure(&mut self, dir: &Path, extra: &[String]) {
        let mut args = vec![
            "receive".to_owned(),
            format!("--label=replica=\"{}\"", self.name),
            format!("--tsdb.path={}", dir.join(&self.name).display()),
            format!("--http-address=127.0.0.1:{}", self.http),
            format!("--remote-write.address=127.0.0.1:{}", self.remote_write),
            format!("--grpc-address=127.0.0.1:{}", self.grpc),
            // Never collide on the default Cap'n Proto port.
            format!("--receive.capnproto-address=127.0.0.1:{}", free_port()),
        ];
        args.extend_from_slice(extra);
        self.args = args;
    }

    async fn start(&mut self) {
        self.starts += 1;
        let mut process = Process::spawn(&self.name, THANOS, &self.args, &self.log);
        process
            .wait_ready(
                &format!("http://127.0.0.1:{}/-/ready", self.http),
                Duration::from_secs(30),
            )
            .await;
        self.process = Some(process);
    }

    async fn is_ready(&self, client: &reqwest::Client) -> bool {
        http_ok(client, &format!("http://127.0.0.1:{}/-/ready", self.http)).await
    }

    /// `kill -9` (dropping the process sends SIGKILL).
    fn kill(&mut self) {
        self.process = None;
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn metrics(&self, client: &reqwest::Client) -> String {
        client
            .get(format!("http://127.0.0.1:{}/metrics", self.http))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// Remote-writes `series` (RW 1.0); returns the status and body.
    async fn write(&self, client: &reqwest::Client, series: Vec<pb::TimeSeries>) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}/api/v1/receive", self.remote_write);
        let resp = remote_write::request(client, &url, series)
            .send()
            .await
            .expect("remote write");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Every sample of metric `m` in this node's Store API: series id → (t, value bits).
    async fn read(&self) -> BTreeMap<String, BTreeSet<(i64, u64)>> {
        let mut client = StoreClient::connect(format!("http://{}", self.grpc_address()))
            .await
            .expect("connect store");
        let request = SeriesRequest {
            min_time: 0,
            max_time: i64::MAX,
            matchers: vec![LabelMatcher {
                r#type: 0,
                name: "__name__".into(),
                value: "m".into(),
            }],
            ..Default::default()
        };
        let mut stream = client.series(request).await.expect("series").into_inner();
        let mut out: BTreeMap<String, BTreeSet<(i64, u64)>> = BTreeMap::new();
        while let Some(frame) = stream.message().await.expect("series frame") {
            let series = match frame.result {
                Some(series_response::Result::Series(s)) => vec![s],
                Some(series_response::Result::Batch(b)) => b.series,
                _ => continue,
            };
            for s in series {
                let id = s
                    .labels
                    .iter()
                    .find(|l| l.name == "s")
                    .map(|l| l.value.to_string())
                    .expect("series label s");
                let samples = out.entry(id).or_default();
                for chunk in s.chunks {
                    let raw = chunk.raw.expect("raw chunk");
                    samples.extend(XorIterator::new(&raw.data).map(|x| (x.t, x.v.to_bits())));
                }
            }
        }
        out
    }
}

fn series(id: &str, t: i64, v: f64) -> pb::TimeSeries {
    pb::TimeSeries {
        labels: vec![
            pb::Label {
                name: "__name__".into(),
                value: "m".into(),
            },
            pb::Label {
                name: "s".into(),
                value: id.into(),
            },
        ],
        samples: vec![pb::Sample {
            value: v,
            timestamp: t,
        }],
        ..Default::default()
    }
}

/// A round of writes: `n` series with one sample each at `t`.
fn round(prefix: &str, n: usize, t: i64) -> (Vec<pb::TimeSeries>, Vec<(String, i64, u64)>) {
    let mut series_out = Vec::new();
    let mut expected = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}{i}");
        let v = (t % 100_000) as f64 + i as f64;
        series_out.push(series(&id, t, v));
        expected.push((id, t, v.to_bits()));
    }
    (series_out, expected)
}

fn missing(
    have: &BTreeMap<String, BTreeSet<(i64, u64)>>,
    expected: &[(String, i64, u64)],
) -> usize {
    expected
        .iter()
        .filter(|(id, t, v)| !have.get(id).is_some_and(|s| s.contains(&(*t, *v))))
        .count()
}

/// Waits until `node` holds every sample of `expected` (replicas beyond quorum may land
/// after the write was acknowledged).
async fn eventually_holds(node: &Node, expected: &[(String, i64, u64)]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lost = missing(&node.read().await, expected);
        if lost == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} misses {lost} of {} samples: {}",
            node.name,
            expected.len(),
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn write_hashring(path: &Path, endpoints: &[String]) {
    let json = serde_json::json!([{ "hashring": "default", "endpoints": endpoints }]).to_string();
    // Replace atomically so the reloader never reads a half-written file.
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).expect("hashring tmp");
    f.write_all(json.as_bytes()).expect("write hashring");
    f.sync_all().expect("sync hashring");
    std::fs::rename(&tmp, path).expect("rename hashring");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_router_ingestors_replicate_survive_a_kill_and_rejoin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<Node> = (0..3)
        .map(|i| Node::new(dir.path(), &format!("r{i}")))
        .collect();
    let hashring = dir.path().join("hashrings.json");
    let endpoints: Vec<String> = nodes.iter().map(Node::grpc_address).collect();
    write_hashring(&hashring, &endpoints);
    for node in &mut nodes {
        let extra = vec![
            format!("--receive.hashrings-file={}", hashring.display()),
            format!("--receive.local-endpoint={}", node.grpc_address()),
            "--receive.replication-factor=3".to_owned(),
            "--receive-forward-max-backoff=1s".to_owned(),
        ];
        node.configure(dir.path(), &extra);
    }
    for node in &mut nodes {
        node.start().await;
    }
    let client = reqwest::Client::new();

    // Every sample written to r0 reaches all three replicas. The write is acknowledged at
    // quorum (2 of 3) while the third copy is still on its way, so each round waits for
    // all three before the next: a next round of the same series overtaking that copy
    // would make it out of order on the slow replica (as in Thanos), which is not what
    // this checks.
    let mut acked = Vec::new();
    let t0 = now_ms();
    for k in 0..3 {
        let (batch, expected) = round("a", 20, t0 + k);
        let (status, body) = nodes[0].write(&client, batch).await;
        assert_eq!(status, 200, "{body}");
        acked.extend(expected);
        for node in &nodes {
            eventually_holds(node, &acked).await;
        }
    }
    let metrics = nodes[0].metrics(&client).await;
    assert!(
        metrics.contains("thanos_receive_replication_factor 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("thanos_receive_hashring_nodes{name=\"default\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("thanos_receive_forward_requests_total{result=\"success\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("thanos_receive_replications_total{result=\"success\"} 3"),
        "{metrics}"
    );

    // kill -9 one replica: quorum (2 of 3) still acknowledges every write.
    nodes[2].kill();
    let mut after_kill = Vec::new();
    for k in 0..5 {
        let (batch, expected) = round("b", 20, t0 + 100 + k);
        let (status, body) = nodes[0].write(&client, batch).await;
        assert!(
            (200..300).contains(&status),
            "write after kill: {status} {body}"
        );
        after_kill.extend(expected);
    }
    // Writes entering through the other survivor work too.
    let (batch, expected) = round("c", 10, t0 + 200);
    let (status, body) = nodes[1].write(&client, batch).await;
    assert_eq!(status, 200, "{body}");
    after_kill.extend(expected);
    acked.extend(after_kill.iter().cloned());
    for node in &nodes[..2] {
        eventually_holds(node, &acked).await;
    }

    // The killed node comes back with its WAL and receives new writes again.
    nodes[2].start().await;
    let before_kill: Vec<_> = acked
        .iter()
        .filter(|(id, _, _)| id.starts_with('a'))
        .cloned()
        .collect();
    eventually_holds(&nodes[2], &before_kill).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut k = 0;
    loop {
        let (batch, expected) = round("d", 10, t0 + 300 + k);
        k += 1;
        let (status, body) = nodes[0].write(&client, batch).await;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        if missing(&nodes[2].read().await, &expected) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted node never received new writes: {}",
            nodes[2].logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_only_splits_by_the_ring_and_reloads_it_without_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut a = Node::new(dir.path(), "ingestor-a");
    let mut b = Node::new(dir.path(), "ingestor-b");
    a.configure(dir.path(), &[]);
    b.configure(dir.path(), &[]);
    a.start().await;
    b.start().await;
    let hashring = dir.path().join("hashrings.json");
    write_hashring(&hashring, &[a.grpc_address(), b.grpc_address()]);
    let mut router = Node::new(dir.path(), "router");
    router.configure(
        dir.path(),
        &[
            format!("--receive.hashrings-file={}", hashring.display()),
            "--receive.hashrings-file-refresh-interval=200ms".to_owned(),
            "--receive.grpc-compression=none".to_owned(),
        ],
    );
    router.start().await;
    let client = reqwest::Client::new();

    // RF=1: every series on exactly one ingestor, both get a share.
    let t0 = now_ms();
    let (batch, expected) = round("x", 40, t0);
    let (status, body) = router.write(&client, batch).await;
    assert_eq!(status, 200, "{body}");
    let (on_a, on_b) = (a.read().await, b.read().await);
    assert!(
        !on_a.is_empty() && !on_b.is_empty(),
        "a={on_a:?} b={on_b:?}"
    );
    assert!(
        on_a.keys().all(|k| !on_b.contains_key(k)),
        "a series stored twice"
    );
    let mut all = on_a.clone();
    all.extend(on_b.clone());
    assert_eq!(missing(&all, &expected), 0);
    assert_eq!(all.len(), 40);
    // The router stores nothing itself, and has no data directory.
    assert!(router.read().await.is_empty());
    assert!(!dir.path().join("router").exists(), "router created a TSDB");

    // Point the ring at b only: picked up without restart, never unready.
    write_hashring(&hashring, &[b.grpc_address()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut k = 0;
    loop {
        assert!(
            router.is_ready(&client).await,
            "router unready during reload"
        );
        let (batch, expected) = round(&format!("y{k}-"), 10, t0 + 10 + k);
        k += 1;
        let (status, body) = router.write(&client, batch).await;
        assert_eq!(status, 200, "{body}");
        if missing(&b.read().await, &expected) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reload not picked up: {}",
            router.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = router.metrics(&client).await;
    assert!(
        metrics.contains("thanos_receive_hashring_nodes{name=\"default\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("thanos_receive_config_last_reload_successful 1"),
        "{metrics}"
    );

    // Invalid content keeps the current ring and is reported.
    std::fs::write(&hashring, "[{ not json").expect("write");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !router
        .metrics(&client)
        .await
        .contains("thanos_receive_config_last_reload_successful 0")
    {
        assert!(Instant::now() < deadline, "bad reload not reported");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(router.is_ready(&client).await);
    let (batch, expected) = round("z", 10, t0 + 100);
    let (status, body) = router.write(&client, batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(missing(&b.read().await, &expected), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_with_fewer_endpoints_than_replication_factor_fails_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new(THANOS)
        .args([
            "receive",
            "--label=replica=\"x\"",
            &format!("--tsdb.path={}", dir.path().join("data").display()),
            "--receive.hashrings=[{\"endpoints\": [\"127.0.0.1:1\", \"127.0.0.1:2\"]}]",
            "--receive.replication-factor=3",
            "--receive.local-endpoint=127.0.0.1:1",
            &format!("--http-address=127.0.0.1:{}", free_port()),
            &format!("--grpc-address=127.0.0.1:{}", free_port()),
            &format!("--remote-write.address=127.0.0.1:{}", free_port()),
        ])
        .output()
        .expect("run thanos receive");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("replication factor must not exceed the number of endpoints"),
        "{stderr}"
    );
}

/// Sends one unary gRPC request with a hand-built body; returns (grpc-status, message).
async fn raw_grpc(
    address: &str,
    path: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (String, String) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{address}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(encoding) = encoding {
        request = request.header("grpc-encoding", encoding);
    }
    let request = request
        .body(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::from(body),
        )))
        .expect("request");
    let response = channel.oneshot(request).await.expect("send");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let get = |name: &str| {
        trailers
            .get(name)
            .or_else(|| headers.get(name))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    (get("grpc-status"), percent_decode(&get("grpc-message")))
}

/// Decodes the percent-encoding of `grpc-message`.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn grpc_frame(compressed: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::from(compressed)];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn snappy_framed(data: &[u8]) -> Vec<u8> {
    let mut encoder = snap::write::FrameEncoder::new(Vec::new());
    encoder.write_all(data).expect("compress");
    encoder.into_inner().expect("flush")
}

fn write_request(id: &str, t: i64, v: f64) -> WriteRequest {
    WriteRequest {
        timeseries: vec![],
        tenant: String::new(),
        replica: 0,
        timeseries_tenant_data: vec![TimeSeriesTenantTuple {
            tenant: "default-tenant".into(),
            timeseries: vec![pc::TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: "m".into(),
                    },
                    Label {
                        name: "s".into(),
                        value: id.into(),
                    },
                ],
                samples: vec![pc::Sample {
                    value: v,
                    timestamp: t,
                }],
                ..Default::default()
            }],
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snappy_framed_grpc_remote_write_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = Node::new(dir.path(), "ingestor");
    node.configure(dir.path(), &[]);
    node.start().await;
    let path = "/thanos.WriteableStore/RemoteWrite";
    let t = now_ms();

    let message = write_request("snappy", t, 1.5).encode_to_vec();
    let body = grpc_frame(true, &snappy_framed(&message));
    let (status, msg) = raw_grpc(&node.grpc_address(), path, Some("snappy"), body).await;
    assert_eq!(status, "0", "{msg}");

    // Uncompressed works too.
    let message = write_request("plain", t, 2.5).encode_to_vec();
    let (status, msg) = raw_grpc(
        &node.grpc_address(),
        path,
        None,
        grpc_frame(false, &message),
    )
    .await;
    assert_eq!(status, "0", "{msg}");

    let stored = node.read().await;
    assert_eq!(stored["snappy"], BTreeSet::from([(t, 1.5f64.to_bits())]));
    assert_eq!(stored["plain"], BTreeSet::from([(t, 2.5f64.to_bits())]));

    // A conflicting sample is AlreadyExists (6), like Thanos.
    let message = write_request("snappy", t - 1000, 9.0).encode_to_vec();
    let body = grpc_frame(true, &snappy_framed(&message));
    let (status, msg) = raw_grpc(&node.grpc_address(), path, Some("snappy"), body).await;
    assert_eq!(status, "6", "{msg}");
    assert!(msg.contains("out of order"), "{msg}");

    // Raw block snappy is not Thanos's format: refused, nothing stored.
    let message = write_request("block", t, 3.0).encode_to_vec();
    let block = snap::raw::Encoder::new()
        .compress_vec(&message)
        .expect("block");
    let (status, _) = raw_grpc(
        &node.grpc_address(),
        path,
        Some("snappy"),
        grpc_frame(true, &block),
    )
    .await;
    assert_ne!(status, "0");
    assert!(!node.read().await.contains_key("block"));
}
