//! Write limits and gates of the receiver (`--receive.limits-config[-file]`, mirrors
//! Thanos `pkg/receive/limits.go`, `limiter.go`, `request_limiter.go` and
//! `head_series_limiter.go`; components.md §3.8).
//!
//! ```yaml
//! write:
//!   global:
//!     max_concurrency: 30                 # write gate; 0 = unlimited
//!     meta_monitoring_url: http://prometheus:9090
//!     meta_monitoring_limit_query: sum(prometheus_tsdb_head_series) by (tenant)
//!     meta_monitoring_http_client: { basic_auth: { username: u, password: p } }
//!   default:
//!     request: { size_bytes_limit: 0, series_limit: 0, samples_limit: 0 }
//!     head_series_limit: 0
//!   tenants:
//!     acme: { request: { series_limit: 100 }, head_series_limit: 1000 }
//! ```
//!
//! Parsing is strict: an unknown key is an error naming it. 0 (or absent in `default`)
//! means unlimited; a field absent in a tenant inherits the `default` one.
//!
//! * [`LimitsConfig`] is the parsed file; [`LimitsConfig::request_limits`] resolves one
//!   tenant's request limits, which tighten the handler's size guard
//!   ([`RequestLimits::apply`]: `size_bytes_limit` caps both the compressed body and the
//!   decompressed size, 413 "write request too large") and the series / samples counts
//!   (413 "too many timeseries" / "too many samples").
//! * [`Limiter`] holds the configuration in use (swapped by [`LimitsReloader`], driven by
//!   [`run_reload_loop`](crate::reload::run_reload_loop) every
//!   `--receive.limits-config-reload-timer`; invalid content keeps the old limits) and the
//!   latest active-series counts per tenant. [`Limiter::check_head_series`] rejects a
//!   request of a tenant at or above its `head_series_limit` (429 "tenant is above active
//!   series limit").
//! * [`MetaMonitoring`] (router modes only) queries `meta_monitoring_url` every
//!   [`META_MONITORING_INTERVAL`] with `meta_monitoring_limit_query` and feeds the counts
//!   (label `tenant`) to the limiter. When the query fails the counts are forgotten: no
//!   limiting until meta-monitoring answers again (best effort, like Thanos).
//!
//! `max_concurrency` and the meta-monitoring HTTP client are read once at start-up (as in
//! Thanos); request limits, head-series limits, the URL and the query follow reloads.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::Deserialize;

use crate::error::WriteError;
use crate::reload::{Reload, ReloadOutcome, file_stamp};
use crate::write::WriteLimits;

/// Default `meta_monitoring_limit_query`.
pub const DEFAULT_META_MONITORING_QUERY: &str = "sum(prometheus_tsdb_head_series) by (tenant)";
/// How often the meta-monitoring Prometheus is queried.
pub const META_MONITORING_INTERVAL: Duration = Duration::from_secs(15);
/// Label of the meta-monitoring result carrying the tenant.
pub const META_MONITORING_TENANT_LABEL: &str = "tenant";

/// An invalid limits configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// The document is not valid YAML or does not match the schema (unknown or mistyped
    /// field).
    #[error("parse limits config: {reason}")]
    Yaml {
        /// The parser's message (names the field and its position).
        reason: String,
    },
    /// `meta_monitoring_url` is not an absolute http(s) URL.
    #[error("invalid write.global.meta_monitoring_url {url:?}: {reason}")]
    Url {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A head-series limit is configured without a meta-monitoring URL to enforce it.
    #[error(
        "head_series_limit is set ({scope}) but write.global.meta_monitoring_url is empty: \
         active series cannot be counted"
    )]
    NoMetaMonitoring {
        /// `default` or `tenant "<name>"`.
        scope: String,
    },
    /// The limits file could not be read.
    #[error("read limits config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP client for meta-monitoring could not be built.
    #[error("build meta-monitoring http client: {reason}")]
    Client {
        /// The client builder's message.
        reason: String,
    },
}

/// The whole limits file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Limits of the write path.
    #[serde(default)]
    pub write: WriteLimitsConfig,
}

/// `write:`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteLimitsConfig {
    /// `write.global`.
    #[serde(default)]
    pub global: GlobalLimits,
    /// `write.default`: limits of every tenant not overriding them.
    #[serde(default)]
    pub default: DefaultLimits,
    /// `write.tenants`: per-tenant overrides.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantLimits>,
}

/// `write.global`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalLimits {
    /// Most write requests handled at once; further requests wait. 0 = unlimited.
    #[serde(default)]
    pub max_concurrency: u64,
    /// Base URL of the Prometheus that scrapes the receivers (head-series limits).
    #[serde(default)]
    pub meta_monitoring_url: Option<String>,
    /// PromQL returning the active series per tenant (label `tenant`); default
    /// [`DEFAULT_META_MONITORING_QUERY`].
    #[serde(default)]
    pub meta_monitoring_limit_query: Option<String>,
    /// Authentication towards the meta-monitoring Prometheus.
    #[serde(default)]
    pub meta_monitoring_http_client: Option<MetaMonitoringHttpClient>,
}

/// `write.global.meta_monitoring_http_client` (the supported subset of Prometheus's HTTP
/// client config; any other key is rejected rather than ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaMonitoringHttpClient {
    /// HTTP basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token: Option<String>,
}

/// `basic_auth: { username, password }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
}

/// `request:` limits as written (absent = inherit / unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestLimitsConfig {
    /// Maximum request size in bytes, compressed and decompressed.
    #[serde(default)]
    pub size_bytes_limit: Option<u64>,
    /// Maximum series per request.
    #[serde(default)]
    pub series_limit: Option<u64>,
    /// Maximum samples per request.
    #[serde(default)]
    pub samples_limit: Option<u64>,
}

/// `write.default`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultLimits {
    /// Request limits.
    #[serde(default)]
    pub request: RequestLimitsConfig,
    /// Maximum active (head) series per tenant.
    #[serde(default)]
    pub head_series_limit: Option<u64>,
}

/// `write.tenants.<tenant>`: every absent field inherits `write.default`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    /// Request limits.
    #[serde(default)]
    pub request: Option<RequestLimitsConfig>,
    /// Maximum active (head) series of this tenant.
    #[serde(default)]
    pub head_series_limit: Option<u64>,
}

/// The request limits in force for one tenant (0 = unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestLimits {
    /// Maximum compressed and decompressed request size in bytes.
    pub size_bytes: u64,
    /// Maximum series per request.
    pub series: u64,
    /// Maximum samples per request.
    pub samples: u64,
}

/// The smaller of two limits where 0 means unlimited.
fn tighten(base: usize, limit: u64) -> usize {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match (base, limit) {
        (b, 0) => b,
        (0, l) => l,
        (b, l) => b.min(l),
    }
}

impl RequestLimits {
    /// Narrows the handler's `base` limits by these: the size limit caps both the body
    /// and the decompressed size (both answer 413 "write request too large").
    pub fn apply(&self, base: WriteLimits) -> WriteLimits {
        WriteLimits {
            max_body_bytes: tighten(base.max_body_bytes, self.size_bytes),
            max_decompressed_bytes: tighten(base.max_decompressed_bytes, self.size_bytes),
            max_series: tighten(base.max_series, self.series),
            max_samples: tighten(base.max_samples, self.samples),
        }
    }
}

impl LimitsConfig {
    /// Parses and validates a limits YAML document; an empty document means no limits.
    pub fn parse(yaml: &str) -> Result<Self, LimitsError> {
        if yaml.trim().is_empty() {
            return Ok(Self::default());
        }
        let config: Option<Self> =
            serde_saphyr::from_str(yaml).map_err(|err| LimitsError::Yaml {
                reason: err.to_string(),
            })?;
        let config = config.unwrap_or_default();
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), LimitsError> {
        let global = &self.write.global;
        match global
            .meta_monitoring_url
            .as_deref()
            .filter(|u| !u.is_empty())
        {
            Some(url) => {
                meta_monitoring_endpoint(url)?;
            }
            None => {
                if self.write.default.head_series_limit.unwrap_or(0) > 0 {
                    return Err(LimitsError::NoMetaMonitoring {
                        scope: "default".to_owned(),
                    });
                }
                if let Some((tenant, _)) = self
                    .write
                    .tenants
                    .iter()
                    .find(|(_, t)| t.head_series_limit.unwrap_or(0) > 0)
                {
                    return Err(LimitsError::NoMetaMonitoring {
                        scope: format!("tenant {tenant:?}"),
                    });
                }
            }
        }
        Ok(())
    }

    /// The request limits of `tenant`: its overrides, field by field, else the default.
    pub fn request_limits(&self, tenant: &str) -> RequestLimits {
        let default = &self.write.default.request;
        let own = self.write.tenants.get(tenant).and_then(|t| t.request);
        let pick = |f: fn(&RequestLimitsConfig) -> Option<u64>| {
            own.as_ref().and_then(f).or_else(|| f(default)).unwrap_or(0)
        };
        RequestLimits {
            size_bytes: pick(|r| r.size_bytes_limit),
            series: pick(|r| r.series_limit),
            samples: pick(|r| r.samples_limit),
        }
    }

    /// The head-series limit of `tenant` (0 = unlimited).
    pub fn head_series_limit(&self, tenant: &str) -> u64 {
        self.write
            .tenants
            .get(tenant)
            .and_then(|t| t.head_series_limit)
            .or(self.write.default.head_series_limit)
            .unwrap_or(0)
    }

    /// True when any tenant (or the default) has a head-series limit.
    pub fn head_series_limits_enabled(&self) -> bool {
        self.write.default.head_series_limit.unwrap_or(0) > 0
            || self
                .write
                .tenants
                .values()
                .any(|t| t.head_series_limit.unwrap_or(0) > 0)
    }

    /// The meta-monitoring query in use.
    pub fn meta_monitoring_query(&self) -> &str {
        self.write
            .global
            .meta_monitoring_limit_query
            .as_deref()
            .filter(|q| !q.is_empty())
            .unwrap_or(DEFAULT_META_MONITORING_QUERY)
    }
}

/// `<url>/api/v1/query`, validating `url`.
fn meta_monitoring_endpoint(url: &str) -> Result<reqwest::Url, LimitsError> {
    let invalid = |reason: String| LimitsError::Url {
        url: url.to_owned(),
        reason,
    };
    let mut parsed = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("scheme must be http or https".to_owned()));
    }
    let path = format!("{}/api/v1/query", parsed.path().trim_end_matches('/'));
    parsed.set_path(&path);
    Ok(parsed)
}

/// Limiter metrics (Thanos's names).
#[derive(Debug, Clone)]
struct LimitsMetrics {
    limited: IntCounterVec,
    configured: IntGaugeVec,
    meta_monitoring_failed: IntCounter,
    reloads: IntCounter,
    reload_errors: IntCounter,
}

impl LimitsMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let limited = IntCounterVec::new(
            Opts::new(
                "thanos_receive_head_series_limited_requests_total",
                "The total number of remote write requests that have been dropped due to active series limiting.",
            ),
            &["tenant"],
        )?;
        let configured = IntGaugeVec::new(
            Opts::new(
                "thanos_receive_head_series_limit",
                "The configured limit for active (head) series of tenants.",
            ),
            &["tenant"],
        )?;
        let meta_monitoring_failed = IntCounter::new(
            "thanos_receive_metamonitoring_failed_queries_total",
            "The total number of meta-monitoring queries that failed while limiting.",
        )?;
        let reloads = IntCounter::new(
            "thanos_receive_limits_config_reload_total",
            "How many times the limit configuration was reloaded.",
        )?;
        let reload_errors = IntCounter::new(
            "thanos_receive_limits_config_reload_err_total",
            "How many times the limit configuration failed to reload.",
        )?;
        registry.register(Box::new(limited.clone()))?;
        registry.register(Box::new(configured.clone()))?;
        registry.register(Box::new(meta_monitoring_failed.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(reload_errors.clone()))?;
        Ok(Self {
            limited,
            configured,
            meta_monitoring_failed,
            reloads,
            reload_errors,
        })
    }

    fn configured(&self, config: &LimitsConfig) {
        self.configured.reset();
        if let Some(limit) = config.write.default.head_series_limit.filter(|&l| l > 0) {
            self.configured
                .with_label_values(&["default"])
                .set(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        for (tenant, t) in &config.write.tenants {
            if let Some(limit) = t.head_series_limit {
                self.configured
                    .with_label_values(&[tenant.as_str()])
                    .set(i64::try_from(limit).unwrap_or(i64::MAX));
            }
        }
    }
}

/// The limits in use and the latest active-series counts; shared by the handler, the
/// reloader and the meta-monitoring poller.
#[derive(Debug)]
pub struct Limiter {
    config: RwLock<Arc<LimitsConfig>>,
    /// Active series per tenant from the last successful meta-monitoring query; `None`
    /// when there is no fresh answer (nothing is limited).
    head_series: RwLock<Option<HashMap<String, f64>>>,
    metrics: LimitsMetrics,
}

impl Limiter {
    /// A limiter starting with `config`; registers
    /// `thanos_receive_head_series_limited_requests_total{tenant}`,
    /// `thanos_receive_head_series_limit{tenant}`,
    /// `thanos_receive_metamonitoring_failed_queries_total`,
    /// `thanos_receive_limits_config_reload_total` and
    /// `thanos_receive_limits_config_reload_err_total` on `registry`.
    pub fn new(config: LimitsConfig, registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = LimitsMetrics::new(registry)?;
        metrics.configured(&config);
        Ok(Self {
            config: RwLock::new(Arc::new(config)),
            head_series: RwLock::new(None),
            metrics,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> Arc<LimitsConfig> {
        Arc::clone(&self.config.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the configuration (requests already past their checks are unaffected).
    pub fn replace(&self, config: LimitsConfig) {
        self.metrics.configured(&config);
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
    }

    /// The handler's `base` limits narrowed by `tenant`'s request limits.
    pub fn write_limits(&self, tenant: &str, base: WriteLimits) -> WriteLimits {
        self.config().request_limits(tenant).apply(base)
    }

    /// Rejects (429) a request of `tenant` when its active series, as last reported by
    /// meta-monitoring, are at or above its `head_series_limit`.
    pub fn check_head_series(&self, tenant: &str) -> Result<(), WriteError> {
        let limit = self.config().head_series_limit(tenant);
        if limit == 0 {
            return Ok(());
        }
        let current = self
            .head_series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(|m| m.get(tenant).copied());
        match current {
            Some(current) if current >= limit as f64 => {
                self.metrics.limited.with_label_values(&[tenant]).inc();
                Err(WriteError::HeadSeriesLimit {
                    tenant: tenant.to_owned(),
                    current: current as u64,
                    limit,
                })
            }
            _ => Ok(()),
        }
    }

    /// Records the active series per tenant (`None`: unknown, nothing is limited).
    pub fn set_head_series(&self, counts: Option<HashMap<String, f64>>) {
        *self
            .head_series
            .write()
            .unwrap_or_else(PoisonError::into_inner) = counts;
    }
}

/// Re-reads `--receive.limits-config-file` (see [`crate::reload::run_reload_loop`]) and
/// swaps the [`Limiter`]'s configuration when the content changed and is valid.
#[derive(Debug)]
pub struct LimitsReloader {
    path: PathBuf,
    limiter: Arc<Limiter>,
    content: String,
    stamp: Option<(u64, Option<SystemTime>)>,
}

impl LimitsReloader {
    /// A reloader of `path`; `initial` is the content the limiter was built from.
    pub fn new(path: &Path, limiter: Arc<Limiter>, initial: String) -> Self {
        Self {
            stamp: file_stamp(path),
            path: path.to_owned(),
            limiter,
            content: initial,
        }
    }

    fn read(&self) -> Result<String, LimitsError> {
        std::fs::read_to_string(&self.path).map_err(|source| LimitsError::Read {
            path: self.path.clone(),
            source,
        })
    }
}

impl Reload for LimitsReloader {
    fn changed(&self) -> bool {
        file_stamp(&self.path) != self.stamp
    }

    fn reload(&mut self) -> ReloadOutcome {
        self.stamp = file_stamp(&self.path);
        let parsed = self.read().and_then(|content| {
            if content == self.content {
                return Ok(None);
            }
            let config = LimitsConfig::parse(&content);
            // Remember bad content too, so it is reported once, not on every tick.
            self.content = content;
            config.map(Some)
        });
        match parsed {
            Ok(None) => ReloadOutcome::Unchanged,
            Ok(Some(config)) => {
                self.limiter.replace(config);
                self.limiter.metrics.reloads.inc();
                tracing::info!(path = %self.path.display(), "limits configuration reloaded");
                ReloadOutcome::Applied
            }
            Err(err) => {
                self.limiter.metrics.reload_errors.inc();
                tracing::error!(path = %self.path.display(), err = %err, "invalid limits configuration; keeping the current limits");
                ReloadOutcome::Rejected
            }
        }
    }

    fn name(&self) -> &'static str {
        "limits"
    }
}

/// A failed meta-monitoring query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaMonitoringError {
    /// The HTTP request failed or answered a non-2xx status.
    #[error("query meta-monitoring {url}: {reason}")]
    Http {
        /// The query URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The answer is not a Prometheus instant-vector result.
    #[error("decode meta-monitoring answer from {url}: {reason}")]
    Decode {
        /// The query URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Deserialize)]
struct QueryResponse {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<QueryData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    result_type: String,
    result: Vec<VectorSample>,
}

#[derive(Deserialize)]
struct VectorSample {
    metric: HashMap<String, String>,
    value: (f64, String),
}

/// Queries the meta-monitoring Prometheus for active series per tenant and feeds the
/// [`Limiter`].
#[derive(Debug, Clone)]
pub struct MetaMonitoring {
    client: reqwest::Client,
    auth: Option<MetaMonitoringHttpClient>,
    limiter: Arc<Limiter>,
}

impl MetaMonitoring {
    /// A poller for `limiter`, authenticating as configured at start-up; each query times
    /// out after `timeout`.
    pub fn new(limiter: Arc<Limiter>, timeout: Duration) -> Result<Self, LimitsError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| LimitsError::Client {
                reason: e.to_string(),
            })?;
        let auth = limiter
            .config()
            .write
            .global
            .meta_monitoring_http_client
            .clone();
        Ok(Self {
            client,
            auth,
            limiter,
        })
    }

    /// Queries once. On success the counts replace the previous ones (returns how many
    /// tenants were reported); on failure they are cleared, so nothing is limited until
    /// meta-monitoring answers again. Without head-series limits nothing is queried.
    pub async fn poll(&self) -> Result<usize, MetaMonitoringError> {
        let config = self.limiter.config();
        let url = config
            .write
            .global
            .meta_monitoring_url
            .as_deref()
            .filter(|u| !u.is_empty());
        let (true, Some(url)) = (config.head_series_limits_enabled(), url) else {
            self.limiter.set_head_series(None);
            return Ok(0);
        };
        match self.query(url, config.meta_monitoring_query()).await {
            Ok(counts) => {
                let n = counts.len();
                self.limiter.set_head_series(Some(counts));
                Ok(n)
            }
            Err(err) => {
                self.limiter.set_head_series(None);
                self.limiter.metrics.meta_monitoring_failed.inc();
                Err(err)
            }
        }
    }

    async fn query(
        &self,
        base: &str,
        query: &str,
    ) -> Result<HashMap<String, f64>, MetaMonitoringError> {
        let endpoint = meta_monitoring_endpoint(base).map_err(|e| MetaMonitoringError::Http {
            url: base.to_owned(),
            reason: e.to_string(),
        })?;
        let url = endpoint.to_string();
        let http = |reason: String| MetaMonitoringError::Http {
            url: url.clone(),
            reason,
        };
        let mut request = self.client.get(endpoint.clone()).query(&[("query", query)]);
        if let Some(auth) = &self.auth {
            if let Some(basic) = &auth.basic_auth {
                request = request.basic_auth(&basic.username, Some(&basic.password));
            }
            if let Some(token) = auth.bearer_token.as_deref().filter(|t| !t.is_empty()) {
                request = request.bearer_auth(token);
            }
        }
        let response = request.send().await.map_err(|e| http(e.to_string()))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| http(e.to_string()))?;
        let decode = |reason: String| MetaMonitoringError::Decode {
            url: url.clone(),
            reason,
        };
        let parsed: QueryResponse = serde_json::from_slice(&body).map_err(|e| {
            if status.is_success() {
                decode(e.to_string())
            } else {
                http(format!("status {status}"))
            }
        })?;
        if !status.is_success() || parsed.status != "success" {
            let detail = parsed.error.unwrap_or_default();
            return Err(http(format!("status {status}: {detail}")));
        }
        let data = parsed.data.ok_or_else(|| decode("no data".to_owned()))?;
        if data.result_type != "vector" {
            return Err(decode(format!(
                "result type {:?}, want vector",
                data.result_type
            )));
        }
        let mut counts = HashMap::new();
        for sample in data.result {
            let Some(tenant) = sample.metric.get(META_MONITORING_TENANT_LABEL) else {
                continue;
            };
            let value: f64 = sample
                .value
                .1
                .parse()
                .map_err(|_| decode(format!("sample value {:?}", sample.value.1)))?;
            counts.insert(tenant.clone(), value);
        }
        Ok(counts)
    }

    /// Polls every `interval` (first poll immediately) until `shutdown` resolves; failures
    /// are logged as warnings.
    pub async fn run(
        self,
        interval: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), std::convert::Infallible> {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                _ = ticker.tick() => {}
            }
            match self.poll().await {
                Ok(tenants) => tracing::debug!(tenants, "meta-monitoring queried"),
                Err(err) => {
                    tracing::warn!(err = %err, "meta-monitoring query failed; active series are not limited until it answers")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
write:
  global:
    max_concurrency: 3
    meta_monitoring_url: "http://localhost:9090/prom/"
    meta_monitoring_http_client:
      basic_auth: { username: u, password: p }
  default:
    request:
      size_bytes_limit: 1000
      series_limit: 10
    head_series_limit: 50
  tenants:
    acme:
      request:
        series_limit: 0
        samples_limit: 5
      head_series_limit: 7
    plain: {}
"#;

    #[test]
    fn parses_and_resolves_tenant_overrides() {
        let c = LimitsConfig::parse(FULL).expect("valid");
        assert_eq!(c.write.global.max_concurrency, 3);
        assert_eq!(c.meta_monitoring_query(), DEFAULT_META_MONITORING_QUERY);
        let other = c.request_limits("other");
        assert_eq!(
            other,
            RequestLimits {
                size_bytes: 1000,
                series: 10,
                samples: 0
            }
        );
        // acme overrides series (0 = unlimited) and samples, inherits the size.
        assert_eq!(
            c.request_limits("acme"),
            RequestLimits {
                size_bytes: 1000,
                series: 0,
                samples: 5
            }
        );
        assert_eq!(c.request_limits("plain"), other);
        assert_eq!(c.head_series_limit("acme"), 7);
        assert_eq!(c.head_series_limit("plain"), 50);
        assert!(c.head_series_limits_enabled());
        assert_eq!(
            meta_monitoring_endpoint("http://localhost:9090/prom/")
                .expect("url")
                .as_str(),
            "http://localhost:9090/prom/api/v1/query"
        );
        let empty = LimitsConfig::parse("").expect("empty");
        assert_eq!(empty, LimitsConfig::default());
        assert_eq!(empty.request_limits("x"), RequestLimits::default());
        assert!(!empty.head_series_limits_enabled());
    }

    #[test]
    fn limits_narrow_the_size_guard() {
        let base = WriteLimits::default();
        let lim = RequestLimits {
            size_bytes: 100,
            series: 2,
            samples: 0,
        }
        .apply(base);
        assert_eq!(lim.max_body_bytes, 100);
        assert_eq!(lim.max_decompressed_bytes, 100);
        assert_eq!(lim.max_series, 2);
        assert_eq!(lim.max_samples, 0);
        assert_eq!(RequestLimits::default().apply(base), base);
        let huge = RequestLimits {
            size_bytes: u64::MAX,
            ..RequestLimits::default()
        };
        assert_eq!(huge.apply(base).max_body_bytes, base.max_body_bytes);
    }

    #[test]
    fn strict_parsing_names_the_bad_field() {
        let err = LimitsConfig::parse("write:\n  default:\n    requests: {}\n")
            .expect_err("unknown field");
        assert!(err.to_string().contains("requests"), "{err}");
        let err = LimitsConfig::parse("write:\n  default:\n    request: {series_limt: 1}\n")
            .expect_err("typo");
        assert!(err.to_string().contains("series_limt"), "{err}");
        let err = LimitsConfig::parse("write:\n  global:\n    max_concurrency: -1\n")
            .expect_err("negative");
        assert!(matches!(err, LimitsError::Yaml { .. }), "{err}");
        let err = LimitsConfig::parse("write:\n  tenants:\n    a: {head_series_limit: 5}\n")
            .expect_err("no url");
        assert!(err.to_string().contains("tenant \"a\""), "{err}");
        let err = LimitsConfig::parse("write:\n  global:\n    meta_monitoring_url: ftp://x\n")
            .expect_err("scheme");
        assert!(matches!(err, LimitsError::Url { .. }), "{err}");
    }

    #[test]
    fn head_series_check_uses_latest_counts() {
        let registry = Registry::new();
        let limiter =
            Limiter::new(LimitsConfig::parse(FULL).expect("valid"), &registry).expect("metrics");
        // No meta-monitoring data yet: nothing limited.
        limiter.check_head_series("acme").expect("unknown counts");
        limiter.set_head_series(Some(HashMap::from([
            ("acme".to_owned(), 7.0),
            ("plain".to_owned(), 49.0),
        ])));
        let err = limiter.check_head_series("acme").expect_err("at limit");
        assert_eq!(err.http_status().as_u16(), 429);
        assert!(
            err.to_string()
                .starts_with("tenant is above active series limit"),
            "{err}"
        );
        limiter.check_head_series("plain").expect("under limit");
        limiter.check_head_series("absent").expect("no count");
        limiter.set_head_series(None);
        limiter
            .check_head_series("acme")
            .expect("meta-monitoring down");
        let families = registry.gather();
        let limited = families
            .iter()
            .find(|f| f.name() == "thanos_receive_head_series_limited_requests_total")
            .expect("metric");
        assert_eq!(limited.get_metric()[0].get_counter().get_value(), 1.0);
    }
}
