//! `rw-load`: a Prometheus remote-write load generator for ingest benchmarks.
//!
//! It mirrors no upstream package. It generates `--series` synthetic series with realistic
//! label sets (about 100 metric names, `job`, `instance`, `pod` and a few Kubernetes-style
//! labels), pre-encodes one snappy-compressed remote-write body per batch and round before any
//! request is sent (so the generator does no encoding while it is being measured, and two
//! receivers can be fed byte-identical payloads), and then sends them like Prometheus's queue
//! manager does: series are split over `--concurrency` shards, each shard sends its batches
//! sequentially, so the samples of every series arrive in timestamp order and never twice.
//!
//! Every round carries one sample for every series at `t0 + round × interval`. The first
//! `--warmup-rounds` rounds create the series and are reported separately; the following
//! `--rounds` rounds are the measured phase (optionally cut short by `--duration`). The result
//! is one JSON object on stdout.
//!
//! With `--sink ADDR` the binary instead serves a receiver that drains each request body and
//! answers `--sink-status` (204 by default) without decoding anything, to measure the
//! generator's own ceiling.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use thanos_proto::io::prometheus::write::v2 as rw2;
use thanos_proto::prometheus as rw1;
use thanos_proto::remote_write;
use tokio::net::TcpListener;

/// Number of distinct metric names (`__name__` values); series `i` uses name `i % METRICS`.
const METRICS: usize = 100;
const METRIC_PREFIXES: [&str; 10] = [
    "http_server",
    "grpc_server",
    "process",
    "go_gc",
    "node_disk",
    "node_network",
    "container_cpu",
    "container_memory",
    "kube_pod",
    "apiserver_request",
];
const METRIC_SUFFIXES: [&str; 10] = [
    "requests_total",
    "errors_total",
    "duration_seconds_sum",
    "duration_seconds_count",
    "bytes_total",
    "inflight",
    "queue_length",
    "last_seen_timestamp_seconds",
    "retries_total",
    "open_connections",
];
/// Labels every series has.
const CORE_LABELS: usize = 4;
/// Optional labels, added in this order when `--labels-per-series` exceeds [`CORE_LABELS`].
const EXTRA_LABELS: [&str; 5] = ["namespace", "container", "service", "node", "endpoint"];

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    name = "rw-load",
    about = "Prometheus remote-write load generator (pre-encoded, in-order, shard-like senders)"
)]
struct Args {
    /// Remote-write endpoint, e.g. http://127.0.0.1:19291/api/v1/receive.
    #[arg(long, required_unless_present = "sink")]
    url: Option<String>,
    /// Serve a sink that drains bodies and answers `--sink-status` instead of generating load.
    #[arg(long, conflicts_with = "url")]
    sink: Option<SocketAddr>,
    /// Status code the sink answers with.
    #[arg(long, default_value_t = 204)]
    sink_status: u16,
    /// Number of active series.
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    /// Labels per series including `__name__` (4..=9).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u8).range(4..=9))]
    labels_per_series: u8,
    /// Samples (= series) per request; Prometheus's default `max_samples_per_send` is 2000.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Number of shards sending concurrently, each with its own connection.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Rounds sent before the measured phase (one sample per series each); they create the series.
    #[arg(long, default_value_t = 1)]
    warmup_rounds: u32,
    /// Rounds in the measured phase.
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// Stop the measured phase after this long even if rounds remain (e.g. `60s`, `2m`).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Milliseconds between consecutive rounds' timestamps.
    #[arg(long, default_value_t = 15_000)]
    interval_ms: i64,
    /// Timestamp (ms) of round 0; by default chosen so that the last round is "now".
    #[arg(long)]
    start_ms: Option<i64>,
    /// Extra request header `Name: value` (repeatable), e.g. a tenant header.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Remote-write protocol version: 1 (prometheus.WriteRequest) or 2 (io.prometheus.write.v2).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    protocol: u8,
    /// Tokio worker threads used for sending (encoding uses all cores before sending starts).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

/// Errors of the load generator.
#[derive(Debug, thiserror::Error)]
enum Error {
    /// A `--header` value is not `Name: value`.
    #[error("invalid --header {0:?}: expected \"Name: value\"")]
    Header(String),
    /// A numeric flag is out of range.
    #[error("invalid flags: {0}")]
    Flags(&'static str),
    /// Encoding a body failed.
    #[error("encode batch {batch} round {round}: {source}")]
    Encode {
        /// Batch index.
        batch: usize,
        /// Round index.
        round: u32,
        /// Underlying encoder error.
        source: remote_write::Error,
    },
    /// The HTTP client could not be built.
    #[error("build http client: {0}")]
    Client(reqwest::Error),
    /// Socket or runtime error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// Parses `60s`, `2m`, `1500ms` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("invalid duration {text:?}"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

/// Parses `Name: value` into a header pair.
fn parse_header(
    text: &str,
) -> Result<(reqwest::header::HeaderName, reqwest::header::HeaderValue), Error> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| Error::Header(text.to_owned()))?;
    let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| Error::Header(text.to_owned()))?;
    let value = reqwest::header::HeaderValue::from_str(value.trim())
        .map_err(|_| Error::Header(text.to_owned()))?;
    Ok((name, value))
}

/// The sorted label set of series `index`, with `labels` labels (including `__name__`).
fn series_labels(index: usize, labels: usize) -> Vec<(&'static str, String)> {
    let metric = index % METRICS;
    let target = index / METRICS;
    let app = target % 200;
    let mut out: Vec<(&'static str, String)> = Vec::with_capacity(labels);
    out.push((
        "__name__",
        format!(
            "{}_{}",
            METRIC_PREFIXES[metric / METRIC_SUFFIXES.len()],
            METRIC_SUFFIXES[metric % METRIC_SUFFIXES.len()]
        ),
    ));
    out.push((
        "instance",
        format!(
            "10.{}.{}.{}:8080",
            (target >> 16) & 0xff,
            (target >> 8) & 0xff,
            target & 0xff
        ),
    ));
    out.push(("job", format!("kubernetes-pods-{}", target % 20)));
    out.push(("pod", format!("app-{app}-5d8f7c{target:06x}")));
    for name in EXTRA_LABELS.iter().take(labels.saturating_sub(CORE_LABELS)) {
        let value = match *name {
            "namespace" => format!("team-{}", target % 30),
            "container" => format!("app-{app}"),
            "service" => format!("app-{app}-svc"),
            "node" => format!("worker-{:03}", target % 64),
            _ => "http-metrics".to_owned(),
        };
        out.push((name, value));
    }
    out.sort_by(|a, b| a.0.cmp(b.0));
    out
}

/// Sample value of series `index` at `round`: a counter growing at a per-series rate.
fn sample_value(index: usize, round: u32) -> f64 {
    f64::from(round) * ((index % 13) as f64 + 1.0)
}

/// Pre-encoded request bodies: `bodies[batch][round]`.
struct Workload {
    bodies: Vec<Vec<Bytes>>,
    /// Samples in each batch.
    batch_sizes: Vec<usize>,
    /// Mean bytes of label names and values per series.
    label_bytes_per_series: f64,
}

/// Encodes every round of batch `batch` (series `first..first+len`).
fn encode_batch(
    protocol: u8,
    batch: usize,
    first: usize,
    len: usize,
    labels: usize,
    timestamps: &[i64],
) -> Result<(Vec<Bytes>, usize), Error> {
    let mut label_bytes = 0;
    let mut bodies = Vec::with_capacity(timestamps.len());
    if protocol == 1 {
        let mut request = rw1::WriteRequest {
            timeseries: (first..first + len)
                .map(|index| rw1::TimeSeries {
                    labels: series_labels(index, labels)
                        .into_iter()
                        .map(|(name, value)| {
                            label_bytes += name.len() + value.len();
                            rw1::Label {
                                name: name.to_owned(),
                                value,
                            }
                        })
                        .collect(),
                    samples: vec![rw1::Sample::default()],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        for (round, &ts) in (0u32..).zip(timestamps) {
            for (offset, series) in request.timeseries.iter_mut().enumerate() {
                series.samples[0] = rw1::Sample {
                    value: sample_value(first + offset, round),
                    timestamp: ts,
                };
            }
            let body = remote_write::encode(&request).map_err(|source| Error::Encode {
                batch,
                round,
                source,
            })?;
            bodies.push(body);
        }
    } else {
        let mut symbols = vec![String::new()];
        let mut refs: HashMap<String, u32> = HashMap::new();
        let mut intern = |text: String, symbols: &mut Vec<String>| -> u32 {
            if let Some(&r) = refs.get(&text) {
                return r;
            }
            let r = u32::try_from(symbols.len()).unwrap_or(u32::MAX);
            symbols.push(text.clone());
            refs.insert(text, r);
            r
        };
        let mut timeseries = Vec::with_capacity(len);
        for index in first..first + len {
            let mut labels_refs = Vec::with_capacity(labels * 2);
            for (name, value) in series_labels(index, labels) {
                label_bytes += name.len() + value.len();
                labels_refs.push(intern(name.to_owned(), &mut symbols));
                labels_refs.push(intern(value, &mut symbols));
            }
            timeseries.push(rw2::TimeSeries {
                labels_refs,
                samples: vec![rw2::Sample::default()],
                ..Default::default()
            });
        }
        let mut request = rw2::Request {
            symbols,
            timeseries,
        };
        for (round, &ts) in (0u32..).zip(timestamps) {
            for (offset, series) in request.timeseries.iter_mut().enumerate() {
                series.samples[0] = rw2::Sample {
                    value: sample_value(first + offset, round),
                    timestamp: ts,
                    start_timestamp: 0,
                };
            }
            let body = remote_write::encode(&request).map_err(|source| Error::Encode {
                batch,
                round,
                source,
            })?;
            bodies.push(body);
        }
    }
    Ok((bodies, label_bytes))
}

/// One encoded batch: its index, its bodies (one per round) and its total label bytes.
type EncodedBatch = (usize, Vec<Bytes>, usize);

/// Encodes all batches for all `timestamps` on every core.
fn build_workload(
    protocol: u8,
    series: usize,
    batch: usize,
    labels: usize,
    timestamps: &[i64],
) -> Result<Workload, Error> {
    let batches = series.div_ceil(batch);
    let batch_sizes: Vec<usize> = (0..batches)
        .map(|b| batch.min(series - b * batch))
        .collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let results: Vec<Result<Vec<EncodedBatch>, Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let b = next.fetch_add(1, Ordering::Relaxed);
                        if b >= batches || failed.load(Ordering::Relaxed) {
                            return Ok(done);
                        }
                        match encode_batch(
                            protocol,
                            b,
                            b * batch,
                            batch_sizes[b],
                            labels,
                            timestamps,
                        ) {
                            Ok((bodies, label_bytes)) => done.push((b, bodies, label_bytes)),
                            Err(err) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(err);
                            }
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let mut bodies = vec![Vec::new(); batches];
    let mut label_bytes = 0usize;
    for result in results {
        for (b, encoded, bytes) in result? {
            bodies[b] = encoded;
            label_bytes += bytes;
        }
    }
    Ok(Workload {
        bodies,
        batch_sizes,
        label_bytes_per_series: if series == 0 {
            0.0
        } else {
            label_bytes as f64 / series as f64
        },
    })
}

/// What one shard observed during a phase.
#[derive(Debug, Default)]
struct ShardStats {
    requests: u64,
    requests_ok: u64,
    samples_acked: u64,
    bytes_sent: u64,
    transport_errors: u64,
    statuses: BTreeMap<u16, u64>,
    latencies_us: Vec<u64>,
    first_error: Option<String>,
}

impl ShardStats {
    fn merge(&mut self, other: ShardStats) {
        self.requests += other.requests;
        self.requests_ok += other.requests_ok;
        self.samples_acked += other.samples_acked;
        self.bytes_sent += other.bytes_sent;
        self.transport_errors += other.transport_errors;
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.latencies_us.extend(other.latencies_us);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Value at quantile `q` (nearest rank) of sorted `values`, in milliseconds.
fn quantile_ms(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_us.len() as f64 * q).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

/// Everything a sending phase needs.
struct Sender {
    client: reqwest::Client,
    url: String,
    headers: reqwest::header::HeaderMap,
    workload: Workload,
    concurrency: usize,
}

impl Sender {
    /// Sends rounds `rounds` with one task per shard; stops issuing requests at `deadline`.
    async fn run_phase(
        self: &Arc<Self>,
        rounds: std::ops::Range<u32>,
        deadline: Option<Instant>,
    ) -> (ShardStats, Duration) {
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(self.concurrency);
        for shard in 0..self.concurrency {
            let sender = Arc::clone(self);
            let rounds = rounds.clone();
            tasks.push(tokio::spawn(async move {
                sender.run_shard(shard, rounds, deadline).await
            }));
        }
        let mut total = ShardStats::default();
        for task in tasks {
            match task.await {
                Ok(stats) => total.merge(stats),
                Err(err) => std::panic::resume_unwind(err.into_panic()),
            }
        }
        (total, start.elapsed())
    }

    async fn run_shard(
        &self,
        shard: usize,
        rounds: std::ops::Range<u32>,
        deadline: Option<Instant>,
    ) -> ShardStats {
        let mut stats = ShardStats::default();
        let batches = self.workload.bodies.len();
        for round in rounds {
            for b in (shard..batches).step_by(self.concurrency) {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return stats;
                }
                let Some(body) = self.workload.bodies[b].get(round as usize) else {
                    continue;
                };
                stats.requests += 1;
                stats.bytes_sent += body.len() as u64;
                let started = Instant::now();
                let result = self
                    .client
                    .post(&self.url)
                    .headers(self.headers.clone())
                    .body(body.clone())
                    .send()
                    .await;
                match result {
                    Ok(response) => {
                        let status = response.status();
                        let text = response.bytes().await.unwrap_or_default();
                        stats
                            .latencies_us
                            .push(started.elapsed().as_micros() as u64);
                        if status.is_success() {
                            stats.requests_ok += 1;
                            stats.samples_acked += self.workload.batch_sizes[b] as u64;
                        } else {
                            *stats.statuses.entry(status.as_u16()).or_default() += 1;
                            if stats.first_error.is_none() {
                                let text = String::from_utf8_lossy(&text);
                                let text: String = text.chars().take(300).collect();
                                stats.first_error = Some(format!("{status}: {text}"));
                            }
                        }
                    }
                    Err(err) => {
                        stats.transport_errors += 1;
                        if stats.first_error.is_none() {
                            stats.first_error = Some(format!("transport: {err}"));
                        }
                    }
                }
            }
        }
        stats
    }
}

/// JSON summary of a phase.
fn phase_json(mut stats: ShardStats, elapsed: Duration) -> Value {
    stats.latencies_us.sort_unstable();
    let secs = elapsed.as_secs_f64().max(1e-9);
    let non_2xx: BTreeMap<String, u64> = stats
        .statuses
        .iter()
        .map(|(status, count)| (status.to_string(), *count))
        .collect();
    json!({
        "elapsed_s": secs,
        "requests": stats.requests,
        "requests_ok": stats.requests_ok,
        "samples_acked": stats.samples_acked,
        "samples_per_s": stats.samples_acked as f64 / secs,
        "requests_per_s": stats.requests as f64 / secs,
        "bytes_sent": stats.bytes_sent,
        "non_2xx": non_2xx,
        "transport_errors": stats.transport_errors,
        "first_error": stats.first_error,
        "latency_ms": {
            "p50": quantile_ms(&stats.latencies_us, 0.50),
            "p99": quantile_ms(&stats.latencies_us, 0.99),
            "max": quantile_ms(&stats.latencies_us, 1.0),
        },
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "start tokio runtime".to_owned(),
            source,
        })
}

/// Generates the workload, sends it and prints the JSON report.
fn run_load(args: &Args, url: &str) -> Result<Value, Error> {
    if args.batch == 0 || args.concurrency == 0 || args.series == 0 {
        return Err(Error::Flags(
            "--series, --batch and --concurrency must be positive",
        ));
    }
    let mut headers = reqwest::header::HeaderMap::new();
    let (content_type, version) = if args.protocol == 1 {
        (remote_write::CONTENT_TYPE_V1, remote_write::VERSION_V1)
    } else {
        (remote_write::CONTENT_TYPE_V2, remote_write::VERSION_V2)
    };
    headers.insert(
        reqwest::header::CONTENT_ENCODING,
        reqwest::header::HeaderValue::from_static(remote_write::CONTENT_ENCODING_SNAPPY),
    );
    headers.insert(
        reqwest::header::CONTENT_TYPE,
        reqwest::header::HeaderValue::from_static(content_type),
    );
    headers.insert(
        remote_write::VERSION_HEADER,
        reqwest::header::HeaderValue::from_static(version),
    );
    headers.insert(
        reqwest::header::USER_AGENT,
        reqwest::header::HeaderValue::from_static("rw-load/0.1"),
    );
    for header in &args.headers {
        let (name, value) = parse_header(header)?;
        headers.insert(name, value);
    }

    let total_rounds = args.warmup_rounds + args.rounds;
    let start_ms = args
        .start_ms
        .unwrap_or_else(|| now_ms() - i64::from(total_rounds.saturating_sub(1)) * args.interval_ms);
    let timestamps: Vec<i64> = (0..total_rounds)
        .map(|r| start_ms + i64::from(r) * args.interval_ms)
        .collect();
    let encode_start = Instant::now();
    let workload = build_workload(
        args.protocol,
        args.series,
        args.batch,
        usize::from(args.labels_per_series),
        &timestamps,
    )?;
    let encode_s = encode_start.elapsed().as_secs_f64();
    let body_bytes: usize = workload.bodies.iter().flatten().map(Bytes::len).sum();
    let label_bytes_per_series = workload.label_bytes_per_series;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(args.timeout_secs))
        .build()
        .map_err(Error::Client)?;
    let sender = Arc::new(Sender {
        client,
        url: url.to_owned(),
        headers,
        workload,
        concurrency: args.concurrency,
    });
    let rt = runtime(args.threads)?;
    let (warmup, measured) = rt.block_on(async {
        let (warm_stats, warm_elapsed) = sender.run_phase(0..args.warmup_rounds, None).await;
        let deadline = args.duration.map(|d| Instant::now() + d);
        let (stats, elapsed) = sender
            .run_phase(args.warmup_rounds..total_rounds, deadline)
            .await;
        (
            phase_json(warm_stats, warm_elapsed),
            phase_json(stats, elapsed),
        )
    });
    Ok(json!({
        "url": url,
        "protocol": args.protocol,
        "series": args.series,
        "labels_per_series": args.labels_per_series,
        "label_bytes_per_series": label_bytes_per_series,
        "batch": args.batch,
        "concurrency": args.concurrency,
        "threads": args.threads,
        "warmup_rounds": args.warmup_rounds,
        "rounds": args.rounds,
        "start_ms": start_ms,
        "interval_ms": args.interval_ms,
        "encode_s": encode_s,
        "encoded_bytes": body_bytes,
        "samples_per_s": measured["samples_per_s"].clone(),
        "warmup": warmup,
        "measured": measured,
    }))
}

/// Serves the draining sink until the process is killed.
fn run_sink(addr: SocketAddr, status: u16, threads: usize) -> Result<(), Error> {
    let status = StatusCode::from_u16(status).map_err(|_| Error::Flags("--sink-status"))?;
    let rt = runtime(threads)?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await.map_err(|source| Error::Io {
            context: format!("bind {addr}"),
            source,
        })?;
        let local = listener.local_addr().map_err(|source| Error::Io {
            context: "read local address".to_owned(),
            source,
        })?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{local}")
            .and_then(|()| stdout.flush())
            .map_err(|source| Error::Io {
                context: "write stdout".to_owned(),
                source,
            })?;
        loop {
            let (stream, _) = listener.accept().await.map_err(|source| Error::Io {
                context: format!("accept on {local}"),
                source,
            })?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| async move {
                    let mut body = request.into_body();
                    while let Some(frame) = body.frame().await {
                        if frame.is_err() {
                            break;
                        }
                    }
                    let mut response = Response::new(Empty::<Bytes>::new());
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match (&args.sink, &args.url) {
        (Some(addr), _) => run_sink(*addr, args.sink_status, args.threads).map(|()| None),
        (None, Some(url)) => run_load(&args, url).map(Some),
        (None, None) => Err(Error::Flags("one of --url or --sink is required")),
    };
    match result {
        Ok(Some(report)) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "rw-load: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const MAX: usize = 64 << 20;

    #[test]
    fn labels_are_sorted_unique_and_realistic() {
        let mut seen = HashSet::new();
        let mut names = HashSet::new();
        let mut bytes = 0;
        for index in 0..20_000 {
            let labels = series_labels(index, 7);
            assert_eq!(labels.len(), 7);
            assert_eq!(labels[0].0, "__name__");
            assert!(labels.windows(2).all(|w| w[0].0 < w[1].0), "{labels:?}");
            assert!(labels.iter().all(|(_, v)| !v.is_empty()));
            bytes += labels.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>();
            names.insert(labels[0].1.clone());
            assert!(seen.insert(labels), "series {index} repeats a label set");
        }
        assert_eq!(names.len(), METRICS);
        let mean = bytes as f64 / 20_000.0;
        assert!((100.0..=150.0).contains(&mean), "mean label bytes {mean}");
        assert_eq!(series_labels(3, 4).len(), 4);
        assert_eq!(series_labels(3, 9).len(), 9);
    }

    #[test]
    fn v1_workload_has_every_series_once_per_round_in_order() {
        let timestamps = [1_000, 16_000, 31_000];
        let work = build_workload(1, 2_500, 1_000, 7, &timestamps).unwrap();
        assert_eq!(work.batch_sizes, vec![1_000, 1_000, 500]);
        let mut seen: HashMap<Vec<(String, String)>, Vec<i64>> = HashMap::new();
        for (batch, rounds) in work.bodies.iter().enumerate() {
            assert_eq!(rounds.len(), timestamps.len());
            for (round, body) in rounds.iter().enumerate() {
                let request: rw1::WriteRequest = remote_write::decode(body, MAX).unwrap();
                assert_eq!(request.timeseries.len(), work.batch_sizes[batch]);
                for series in request.timeseries {
                    assert_eq!(series.samples.len(), 1);
                    assert_eq!(series.samples[0].timestamp, timestamps[round]);
                    let key = series
                        .labels
                        .into_iter()
                        .map(|l| (l.name, l.value))
                        .collect();
                    seen.entry(key)
                        .or_default()
                        .push(series.samples[0].timestamp);
                }
            }
        }
        assert_eq!(seen.len(), 2_500);
        assert!(seen.values().all(|ts| ts == &timestamps));
    }

    #[test]
    fn v2_workload_resolves_symbols_to_the_same_series() {
        let timestamps = [5_000, 20_000];
        let work = build_workload(2, 300, 128, 6, &timestamps).unwrap();
        assert_eq!(work.bodies.len(), 3);
        let mut index = 0;
        for rounds in &work.bodies {
            let request: rw2::Request = remote_write::decode(&rounds[1], MAX).unwrap();
            assert_eq!(request.symbols[0], "");
            for series in &request.timeseries {
                let labels: Vec<(&str, &str)> = series
                    .labels_refs
                    .chunks(2)
                    .map(|p| {
                        (
                            request.symbols[p[0] as usize].as_str(),
                            request.symbols[p[1] as usize].as_str(),
                        )
                    })
                    .collect();
                let want = series_labels(index, 6);
                let want: Vec<(&str, &str)> = want.iter().map(|(n, v)| (*n, v.as_str())).collect();
                assert_eq!(labels, want);
                assert_eq!(series.samples[0].timestamp, 20_000);
                assert_eq!(series.samples[0].value, sample_value(index, 1));
                index += 1;
            }
        }
        assert_eq!(index, 300);
    }

    #[test]
    fn parses_durations_headers_and_quantiles() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        let (name, value) = parse_header("THANOS-TENANT: team-a").unwrap();
        assert_eq!(name.as_str(), "thanos-tenant");
        assert_eq!(value, "team-a");
        assert!(parse_header("no colon").is_err());
        let values: Vec<u64> = (1..=100).map(|v| v * 1000).collect();
        assert_eq!(quantile_ms(&values, 0.5), 50.0);
        assert_eq!(quantile_ms(&values, 0.99), 99.0);
        assert_eq!(quantile_ms(&values, 1.0), 100.0);
        assert_eq!(quantile_ms(&[], 0.5), 0.0);
    }
}
