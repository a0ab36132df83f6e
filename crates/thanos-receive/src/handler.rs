//! The remote-write HTTP endpoint `POST /api/v1/receive` (mirrors Thanos
//! `pkg/receive/handler.go`).
//!
//! Request handling order (components.md §3.4): readiness (503 until the prober is
//! ready), tenant (`--receive.tenant-header`, then `THANOS-TENANT`, then
//! `--receive.default-tenant-id`; 400 unless a single path element), concurrency gate
//! ([`HandlerOptions::max_concurrency`]; requests wait), active-series limit (429 "tenant
//! is above active series limit", [`Limiter::check_head_series`]), media type (415),
//! replica number (`--receive.replica-header`, 400 unless an integer), size
//! (`Content-Length`, bytes read, declared snappy length, each against the tenant's
//! `size_bytes_limit` too: 413 "write request too large"), decoding (400), request
//! limits (413 "too many timeseries" / "too many samples", per tenant from the
//! [`Limiter`]), relabelling ([`HandlerOptions::relabel`]; dropped series are ignored,
//! 200 if nothing remains), then the [`Distributor`]: local write in IngestorOnly mode, replication and forwarding by the
//! hashring in router modes. Success is 200 with an empty body; failures carry the
//! aggregated error text and the status of the error's
//! [`ErrorKind`](thanos_server::ErrorKind) (409 for conflicts, 503 when replication
//! failed for retryable reasons). Remote write 2.0 responses carry the
//! `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written` headers.
//!
//! Decoding and local appends run on the blocking pool, never on the async workers. A
//! write runs to completion in its own task even if the client goes away.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use thanos_model::relabel::RelabelConfig;
use thanos_proto::remote_write::VERSION_HEADER;
use thanos_server::Prober;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::WriteError;
use crate::forward::Distributor;
use crate::limits::Limiter;
use crate::multitsdb::{MultiTsdb, validate_tenant};
use crate::write::{Protocol, WriteLimits, decode_request, negotiate};
use crate::writer::{LocalWriter, Written};

/// Path of the remote-write endpoint.
pub const RECEIVE_PATH: &str = "/api/v1/receive";
/// Default of `--receive.tenant-header`.
pub const DEFAULT_TENANT_HEADER: &str = "THANOS-TENANT";
/// Default of `--receive.default-tenant-id`.
pub const DEFAULT_TENANT_ID: &str = "default-tenant";
/// Default of `--receive.replica-header`.
pub const DEFAULT_REPLICA_HEADER: &str = "THANOS-REPLICA";

const SAMPLES_WRITTEN: &str = "X-Prometheus-Remote-Write-Samples-Written";
const HISTOGRAMS_WRITTEN: &str = "X-Prometheus-Remote-Write-Histograms-Written";
const EXEMPLARS_WRITTEN: &str = "X-Prometheus-Remote-Write-Exemplars-Written";

/// Settings of the receive handler.
#[derive(Debug, Clone)]
pub struct HandlerOptions {
    /// `--receive.tenant-header`.
    pub tenant_header: String,
    /// `--receive.default-tenant-id`.
    pub default_tenant: String,
    /// `--receive.replica-header`: the 1-based replica number of an already-replicated
    /// request (legacy HTTP forwarding).
    pub replica_header: String,
    /// Request size and count limits (the built-in size guard; a [`Limiter`] narrows
    /// them per tenant).
    pub limits: WriteLimits,
    /// Most write requests decoded and appended at once (`write.global.max_concurrency`);
    /// further requests wait. 0 = unlimited. Bounds the memory held by request bodies.
    pub max_concurrency: usize,
    /// Per-tenant request and active-series limits (`--receive.limits-config`); `None`:
    /// only [`HandlerOptions::limits`] apply.
    pub limiter: Option<Arc<Limiter>>,
    /// `--receive.relabel-config` rules applied to every series before distribution.
    pub relabel: Arc<Vec<RelabelConfig>>,
}

impl Default for HandlerOptions {
    fn default() -> Self {
        Self {
            tenant_header: DEFAULT_TENANT_HEADER.to_owned(),
            default_tenant: DEFAULT_TENANT_ID.to_owned(),
            replica_header: DEFAULT_REPLICA_HEADER.to_owned(),
            limits: WriteLimits::default(),
            max_concurrency: 0,
            limiter: None,
            relabel: Arc::default(),
        }
    }
}

struct HandlerMetrics {
    pending: IntGauge,
    requests: IntCounterVec,
    duration: HistogramVec,
    write_series: HistogramVec,
    write_samples: HistogramVec,
}

impl HandlerMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "Tracks the number of HTTP requests."),
            &["code", "handler", "method", "tenant"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Tracks the latencies for HTTP requests.",
            ),
            &["code", "handler", "method", "tenant"],
        )?;
        let buckets = vec![10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0];
        let write_series = HistogramVec::new(
            HistogramOpts::new(
                "thanos_receive_write_timeseries",
                "The number of timeseries received in the incoming write requests.",
            )
            .buckets(buckets.clone()),
            &["code", "tenant"],
        )?;
        let write_samples = HistogramVec::new(
            HistogramOpts::new(
                "thanos_receive_write_samples",
                "The number of sampled received in the incoming write requests.",
            )
            .buckets(buckets),
            &["code", "tenant"],
        )?;
        let pending = IntGauge::new(
            "thanos_receive_pending_write_requests",
            "The number of pending write requests.",
        )?;
        registry.register(Box::new(pending.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(write_series.clone()))?;
        registry.register(Box::new(write_samples.clone()))?;
        Ok(Self {
            pending,
            requests,
            duration,
            write_series,
            write_samples,
        })
    }
}

struct Inner {
    options: HandlerOptions,
    gate: Option<Arc<Semaphore>>,
    distributor: Arc<Distributor>,
    prober: Prober,
    metrics: HandlerMetrics,
}

/// The remote-write handler; cheap to clone.
#[derive(Clone)]
pub struct Handler {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

/// Outcome of one write, before it is turned into a response.
struct Outcome {
    protocol: Option<Protocol>,
    series: usize,
    samples: usize,
    written: Written,
    result: Result<(), WriteError>,
}

impl Handler {
    /// An IngestorOnly handler writing everything into `tsdb` (see
    /// [`Handler::with_distributor`]; also registers the [`Distributor::ingestor`]
    /// metrics).
    pub fn new(
        options: HandlerOptions,
        tsdb: Arc<MultiTsdb>,
        prober: Prober,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let distributor = Distributor::ingestor(LocalWriter::new(tsdb), registry)?;
        Self::with_distributor(options, Arc::new(distributor), prober, registry)
    }

    /// A handler writing through `distributor`, gated by `prober`'s readiness; registers
    /// `http_requests_total`, `http_request_duration_seconds` (label
    /// `handler="receive"`), `thanos_receive_write_timeseries`,
    /// `thanos_receive_write_samples` and `thanos_receive_pending_write_requests` on
    /// `registry`.
    pub fn with_distributor(
        options: HandlerOptions,
        distributor: Arc<Distributor>,
        prober: Prober,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        Ok(Self {
            inner: Arc::new(Inner {
                gate: (options.max_concurrency > 0)
                    .then(|| Arc::new(Semaphore::new(options.max_concurrency))),
                options,
                distributor,
                prober,
                metrics: HandlerMetrics::new(registry)?,
            }),
        })
    }

    /// The router serving `POST /api/v1/receive` (other methods: 405).
    pub fn router(&self) -> Router {
        Router::new()
            .route(RECEIVE_PATH, post(receive))
            .with_state(self.clone())
    }

    /// The tenant of a request: the configured tenant header, else `THANOS-TENANT`, else
    /// the default tenant.
    fn tenant(&self, headers: &HeaderMap) -> String {
        let value = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        value(&self.inner.options.tenant_header)
            .or_else(|| value(DEFAULT_TENANT_HEADER))
            .unwrap_or_else(|| self.inner.options.default_tenant.clone())
    }

    async fn handle(&self, tenant: &str, headers: &HeaderMap, body: Body) -> Outcome {
        let mut outcome = Outcome {
            protocol: None,
            series: 0,
            samples: 0,
            written: Written::default(),
            result: Ok(()),
        };
        let (_pending, permit, limits) = match self.admit(tenant).await {
            Ok(admitted) => admitted,
            Err(err) => {
                outcome.result = Err(err);
                drain(body).await;
                return outcome;
            }
        };
        match self.prepare(headers, body, &limits, &mut outcome).await {
            Ok((protocol, replica, body)) => {
                let this = self.clone();
                let tenant_owned = tenant.to_owned();
                let joined = tokio::spawn(async move {
                    let _permit = permit;
                    this.write(tenant_owned, protocol, replica, body, limits)
                        .await
                })
                .await;
                match joined {
                    Ok((series, samples, written, result)) => {
                        outcome.series = series;
                        outcome.samples = samples;
                        outcome.written = written;
                        outcome.result = result;
                    }
                    Err(err) => {
                        outcome.result = Err(WriteError::Task {
                            tenant: tenant.to_owned(),
                            reason: err.to_string(),
                        })
                    }
                }
            }
            Err(err) => outcome.result = Err(err),
        }
        outcome
    }

    /// The checks of a request before its headers: readiness, tenant name, the write
    /// concurrency gate and the tenant's head series limit. Returns the request's pending
    /// count, its gate permit and the tenant's write limits.
    async fn admit(
        &self,
        tenant: &str,
    ) -> Result<(Pending, Option<OwnedSemaphorePermit>, WriteLimits), WriteError> {
        if !self.inner.prober.is_ready() {
            return Err(WriteError::NotReady);
        }
        validate_tenant(tenant)?;
        let pending = Pending::start(&self.inner.metrics.pending);
        // Moved into the blocking write, so it is held until the write really finished,
        // even if the client goes away meanwhile.
        let permit = match &self.inner.gate {
            Some(gate) => Some(
                Arc::clone(gate)
                    .acquire_owned()
                    .await
                    .map_err(|_| WriteError::NotReady)?,
            ),
            None => None,
        };
        let mut limits = self.inner.options.limits;
        if let Some(limiter) = &self.inner.options.limiter {
            limiter.check_head_series(tenant)?;
            limits = limiter.write_limits(tenant, limits);
        }
        Ok((pending, permit, limits))
    }

    /// Every check that needs no decoding, then reading the body within the size limit.
    /// A body rejected unread is drained (see [`drain`]).
    async fn prepare(
        &self,
        headers: &HeaderMap,
        body: Body,
        limits: &WriteLimits,
        outcome: &mut Outcome,
    ) -> Result<(Protocol, i64, Bytes), WriteError> {
        let (protocol, replica, declared) = match self.check_headers(headers, limits, outcome) {
            Ok(checked) => checked,
            Err(err) => {
                drain(body).await;
                return Err(err);
            }
        };
        let max = limits.max_body_bytes;
        let mut body = body;
        // A declared length is within the limit (checked above).
        let capacity = declared.and_then(|len| usize::try_from(len).ok());
        let mut read = bytes::BytesMut::with_capacity(capacity.unwrap_or(0));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| WriteError::ReadBody {
                reason: err.to_string(),
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if read.len() + data.len() > max {
                drain(body).await;
                return Err(WriteError::BodyTooLarge {
                    len: max as u64 + 1,
                    max,
                });
            }
            read.extend_from_slice(&data);
        }
        Ok((protocol, replica, read.freeze()))
    }

    /// The protocol, replica number and declared body length of a request, the length
    /// checked against the limit.
    fn check_headers(
        &self,
        headers: &HeaderMap,
        limits: &WriteLimits,
        outcome: &mut Outcome,
    ) -> Result<(Protocol, i64, Option<u64>), WriteError> {
        let header = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let protocol = negotiate(
            header(header::CONTENT_TYPE.as_str()),
            header(header::CONTENT_ENCODING.as_str()),
            header(VERSION_HEADER),
        )?;
        outcome.protocol = Some(protocol);
        let replica_header = self.inner.options.replica_header.as_str();
        let replica = match header(replica_header)
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            None => 0,
            Some(value) => value
                .parse::<u64>()
                .ok()
                .and_then(|r| i64::try_from(r).ok())
                .ok_or_else(|| WriteError::InvalidHeader {
                    header: replica_header.to_owned(),
                    value: value.to_owned(),
                    reason: "not a replica number".to_owned(),
                })?,
        };
        let max = limits.max_body_bytes;
        let declared = header(header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = declared
            && len > max as u64
        {
            return Err(WriteError::BodyTooLarge { len, max });
        }
        Ok((protocol, replica, declared))
    }

    /// Decodes and relabels (on the blocking pool) and distributes; returns (series,
    /// samples, samples written, result).
    async fn write(
        &self,
        tenant: String,
        protocol: Protocol,
        replica: i64,
        body: Bytes,
        limits: WriteLimits,
    ) -> (usize, usize, Written, Result<(), WriteError>) {
        let relabel = Arc::clone(&self.inner.options.relabel);
        let decoded = tokio::task::spawn_blocking(move || {
            let mut batch = decode_request(protocol, &body, &limits)?;
            batch.relabel(&relabel);
            Ok(batch)
        })
        .await;
        let batch = match decoded {
            Ok(Ok(batch)) => batch,
            Ok(Err(err)) => return (0, 0, Written::default(), Err(err)),
            Err(err) => {
                let err = WriteError::Task {
                    tenant,
                    reason: err.to_string(),
                };
                return (0, 0, Written::default(), Err(err));
            }
        };
        let (series, samples) = (batch.received_series(), batch.received_samples());
        if batch.series.is_empty() && batch.rejections.is_empty() {
            return (series, samples, Written::default(), Ok(()));
        }
        let (written, result) = self.inner.distributor.write(&tenant, batch, replica).await;
        (series, samples, written, result)
    }
}

/// Counts a request in `thanos_receive_pending_write_requests` until dropped.
struct Pending(IntGauge);

impl Pending {
    fn start(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Bytes of a rejected request body read and discarded before answering.
const DRAIN_LIMIT: usize = 64 << 20;
/// Time a rejected request body is read for before answering.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and discards what is left of a rejected request body (at most [`DRAIN_LIMIT`]
/// bytes for at most [`DRAIN_TIMEOUT`]). The answer is sent once the sender has written its
/// request: a connection closed with request bytes still unread is reset, and the sender
/// may see the reset instead of the 4xx (and retry a request it must not).
async fn drain(mut body: Body) {
    let mut left = DRAIN_LIMIT;
    let read = async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                let Some(rest) = left.checked_sub(data.len()) else {
                    return;
                };
                left = rest;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, read).await;
}

async fn receive(State(handler): State<Handler>, headers: HeaderMap, body: Body) -> Response {
    let start = Instant::now();
    let tenant = handler.tenant(&headers);
    let outcome = handler.handle(&tenant, &headers, body).await;
    let status = match &outcome.result {
        Ok(()) => StatusCode::OK,
        Err(err) => err.http_status(),
    };
    // Invalid tenant names are not used as label values.
    let tenant_label = if validate_tenant(&tenant).is_ok() {
        tenant.as_str()
    } else {
        ""
    };
    let code = status.as_str();
    let m = &handler.inner.metrics;
    m.requests
        .with_label_values(&[code, "receive", "post", tenant_label])
        .inc();
    m.duration
        .with_label_values(&[code, "receive", "post", tenant_label])
        .observe(start.elapsed().as_secs_f64());
    if outcome.series > 0 {
        m.write_series
            .with_label_values(&[code, tenant_label])
            .observe(outcome.series as f64);
        m.write_samples
            .with_label_values(&[code, tenant_label])
            .observe(outcome.samples as f64);
    }
    let mut response = match outcome.result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(err) => {
            let kind = err.kind();
            if kind.is_retryable() {
                tracing::warn!(tenant, err = %err, %kind, "remote write failed");
            } else {
                tracing::debug!(tenant, err = %err, %kind, "remote write rejected");
            }
            (status, err.to_string()).into_response()
        }
    };
    if outcome.protocol == Some(Protocol::V2) {
        let h = response.headers_mut();
        h.insert(SAMPLES_WRITTEN, HeaderValue::from(outcome.written.samples));
        h.insert(
            HISTOGRAMS_WRITTEN,
            HeaderValue::from(outcome.written.histograms),
        );
        h.insert(EXEMPLARS_WRITTEN, HeaderValue::from(0u64));
    }
    response
}
