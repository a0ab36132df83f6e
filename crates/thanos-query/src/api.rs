//! The Prometheus-compatible HTTP API (Thanos `pkg/api/query`, Prometheus `web/api/v1`).
//!
//! Routes (relative to the router root, nest under `--web.route-prefix` as needed):
//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/series`, `/api/v1/labels` (GET and
//! POST form), `/api/v1/label/{name}/values`, `/api/v1/metadata`, `/api/v1/status/buildinfo`,
//! `/api/v1/stores` (GET), `/api/v1/query_exemplars` (GET and POST form). Thanos's extra
//! parameters `dedup`, `partial_response`, `replicaLabels[]` and `storeMatch[]` are
//! honoured on every query and metadata endpoint.
//!
//! `max_source_resolution` (`auto`, or a duration such as `0s`, `5m`, `1h`, `300`) is
//! validated on `query` and `query_range` as Thanos does (400 `bad_data` when invalid or
//! negative) but does not change results: the querier reads raw chunks only (no
//! downsampled data). No store serves exemplars, so `query_exemplars` validates
//! `query`, `start`, `end` and `partial_response` and answers `[]`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};
use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use thanos_model::{MatchType, Matcher};
use thanos_promql::{Error as EngineError, QueryParams, Value};
use thanos_proto::thanos::{LabelNamesRequest, LabelValuesRequest};
use thanos_server::ErrorKind;
use tokio::time::Instant;

use crate::Querier;
use crate::error::QueryError;
use crate::json;
use crate::params::{
    MAX_TIME_MS, MIN_TIME_MS, Params, format_rfc3339, now_ms, parse_bool, parse_duration_ms,
    parse_time,
};
use crate::proxy::matchers_to_proto;
use crate::storage::{QueryStorage, SelectOptions};

/// Largest accepted number of points per series of a range query, minus one.
const MAX_POINTS: i64 = 11_000;

/// Share of the query timeout given to store streams when partial responses are allowed.
const STORE_DEADLINE_SHARE: f64 = 0.9;

/// Request bodies above this size are rejected.
const MAX_BODY: usize = 16 << 20;

/// An API error: its kind and Prometheus-worded message.
#[derive(Debug)]
struct ApiError {
    kind: ErrorKind,
    message: String,
}

impl ApiError {
    fn bad_param(name: &str, msg: impl std::fmt::Display) -> Self {
        Self {
            kind: ErrorKind::BadRequest,
            message: format!("invalid parameter {name:?}: {msg}"),
        }
    }

    fn bad(msg: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::BadRequest,
            message: msg.into(),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        Self {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// Start of every successful answer; the `data` JSON follows directly.
const SUCCESS_PREFIX: &str = "{\"status\":\"success\",\"data\":";

/// Query results with more points than this are encoded on a blocking thread.
const BLOCKING_ENCODE_POINTS: usize = 20_000;

/// A successful answer: the body so far (`SUCCESS_PREFIX` and the raw JSON of `data`),
/// plus annotations.
struct ApiData {
    body: String,
    warnings: Vec<String>,
    infos: Vec<String>,
}

impl ApiData {
    fn new(data: String, warnings: Vec<String>) -> Self {
        let mut body = String::with_capacity(SUCCESS_PREFIX.len() + data.len() + 1);
        body.push_str(SUCCESS_PREFIX);
        body.push_str(&data);
        Self {
            body,
            warnings,
            infos: Vec::new(),
        }
    }

    /// The answer of a query: `value` encoded straight into the body, on a blocking
    /// thread when it is large.
    async fn query_result(
        value: Value,
        warnings: Vec<String>,
        infos: Vec<String>,
    ) -> Result<Self, ApiError> {
        let large = result_points(&value) > BLOCKING_ENCODE_POINTS;
        let encode = move || {
            let mut body =
                String::with_capacity(SUCCESS_PREFIX.len() + json::estimated_size(&value) + 1);
            body.push_str(SUCCESS_PREFIX);
            json::write_query_data(&mut body, &value);
            body
        };
        let body = if large {
            tokio::task::spawn_blocking(encode)
                .await
                .map_err(|e| ApiError::from(QueryError::Task(e.to_string())))?
        } else {
            encode()
        };
        Ok(Self {
            body,
            warnings,
            infos,
        })
    }
}

/// Number of points (samples, or series for vectors) in a query result.
fn result_points(value: &Value) -> usize {
    match value {
        Value::Vector(v) => v.len(),
        Value::Matrix(m) => m.iter().map(|s| s.samples.len() + s.histograms.len()).sum(),
        Value::Scalar { .. } | Value::String { .. } => 1,
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, Body::from(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn respond(result: Result<ApiData, ApiError>) -> Response {
    match result {
        Ok(d) => {
            let mut body = d.body;
            let warnings = json::limit_annotations(d.warnings, "warning");
            if !warnings.is_empty() {
                body.push_str(",\"warnings\":");
                json::write_string_array(&mut body, warnings.iter().map(String::as_str));
            }
            let infos = json::limit_annotations(d.infos, "info");
            if !infos.is_empty() {
                body.push_str(",\"infos\":");
                json::write_string_array(&mut body, infos.iter().map(String::as_str));
            }
            body.push('}');
            json_response(StatusCode::OK, body)
        }
        Err(e) => {
            let mut body = String::from("{\"status\":\"error\",\"errorType\":");
            json::write_string(&mut body, e.kind.prometheus_error_type());
            body.push_str(",\"error\":");
            json::write_string(&mut body, &e.message);
            body.push('}');
            json_response(e.kind.http_status(), body)
        }
    }
}

/// Builds the API router.
pub fn router(querier: Arc<Querier>) -> Router {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/stores", get(stores))
        .route(
            "/api/v1/query_exemplars",
            get(query_exemplars).post(query_exemplars),
        )
        .with_state(querier)
}

/// URL query parameters merged with a form-encoded body.
async fn read_params(req: Request) -> Result<Params, ApiError> {
    let mut params = Params::from_form(req.uri().query().unwrap_or(""));
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|e| ApiError::bad(format!("error parsing form: {e}")))?;
        params.extend_from_form(&String::from_utf8_lossy(&body));
    }
    Ok(params)
}

impl Querier {
    fn select_options(&self, p: &Params, timeout: Duration) -> Result<SelectOptions, ApiError> {
        let bool_param = |name: &str, default: bool| -> Result<bool, ApiError> {
            match p.get(name) {
                None | Some("") => Ok(default),
                Some(v) => parse_bool(v).ok_or_else(|| {
                    ApiError::bad_param(name, format!("cannot parse {v:?} to a boolean"))
                }),
            }
        };
        let mut replica_labels: Vec<String> = p
            .get_all("replicaLabels[]")
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if replica_labels.is_empty() {
            replica_labels = self.options.replica_labels.clone();
        }
        let partial_response = bool_param("partial_response", self.options.partial_response)?;
        Ok(SelectOptions {
            dedup: bool_param("dedup", true)?,
            replica_labels,
            dedup_func: self.options.dedup_func,
            partial_response,
            // With partial responses allowed, stores get 90% of the query time so that a
            // hanging store yields a warning and a result instead of a query timeout.
            deadline: Some(
                Instant::now()
                    + if partial_response {
                        timeout.mul_f64(STORE_DEADLINE_SHARE)
                    } else {
                        timeout
                    },
            ),
            limits: self.options.limits,
            store_matchers: selector_params(&self.engine, p, "storeMatch[]")?,
        })
    }

    fn timeout(&self, p: &Params) -> Result<Duration, ApiError> {
        let max = self.options.query_timeout;
        match p.get("timeout") {
            None | Some("") => Ok(max),
            Some(v) => {
                let ms = parse_duration_ms(v).map_err(|e| ApiError::bad_param("timeout", e))?;
                let d = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
                Ok(d.min(max))
            }
        }
    }

    async fn run_query(&self, p: &Params, params: QueryParams) -> Result<ApiData, ApiError> {
        let timeout = self.timeout(p)?;
        let mut params = params;
        if let Some(v) = p.get("lookback_delta").filter(|v| !v.is_empty()) {
            let ms = parse_duration_ms(v).map_err(|e| ApiError::bad_param("lookback_delta", e))?;
            params = params.with_lookback_delta(ms);
        }
        let query = p.get("query").unwrap_or("");
        let expr = self
            .engine
            .parse_for(query, &params)
            .map_err(|e| ApiError::bad_param("query", e))?;
        let _permit = self.gate.start().await;
        let storage = QueryStorage::new(self.proxy.clone(), self.select_options(p, timeout)?);
        let result = tokio::time::timeout(timeout, self.engine.exec(&storage, expr, params))
            .await
            .map_err(|_| ApiError {
                kind: ErrorKind::DeadlineExceeded,
                message: "query timed out in expression evaluation".to_owned(),
            })?
            .map_err(engine_error)?;
        let mut warnings = storage.take_warnings();
        warnings.extend(result.warnings);
        ApiData::query_result(result.value, warnings, result.infos).await
    }
}

fn engine_error(e: EngineError) -> ApiError {
    let kind = match &e {
        EngineError::Parse(_) | EngineError::Invalid(_) => ErrorKind::BadRequest,
        EngineError::Execution(_) | EngineError::TooManySamples { .. } => ErrorKind::Unprocessable,
        EngineError::Storage { source, .. } => source
            .downcast_ref::<QueryError>()
            .map_or(ErrorKind::Unprocessable, QueryError::kind),
        EngineError::Task(_) => ErrorKind::Internal,
    };
    ApiError {
        kind,
        message: e.to_string(),
    }
}

async fn query(State(q): State<Arc<Querier>>, req: Request) -> Response {
    respond(query_inner(&q, req).await)
}

async fn query_inner(q: &Querier, req: Request) -> Result<ApiData, ApiError> {
    let p = read_params(req).await?;
    let t = match p.get("time") {
        None | Some("") => now_ms(),
        Some(v) => parse_time(v).map_err(|e| ApiError::bad_param("time", e))?,
    };
    max_source_resolution(&p, 0)?;
    q.run_query(&p, QueryParams::instant(t)).await
}

async fn query_range(State(q): State<Arc<Querier>>, req: Request) -> Response {
    respond(query_range_inner(&q, req).await)
}

async fn query_range_inner(q: &Querier, req: Request) -> Result<ApiData, ApiError> {
    let p = read_params(req).await?;
    let time_param = |name: &str| {
        parse_time(p.get(name).unwrap_or("")).map_err(|e| ApiError::bad_param(name, e))
    };
    let start = time_param("start")?;
    let end = time_param("end")?;
    if end < start {
        return Err(ApiError::bad_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step = parse_duration_ms(p.get("step").unwrap_or(""))
        .map_err(|e| ApiError::bad_param("step", e))?;
    if step <= 0 {
        return Err(ApiError::bad_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(ApiError::bad(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    max_source_resolution(&p, step / 5)?;
    q.run_query(&p, QueryParams::range(start, end, step)).await
}

/// Name of Thanos's downsampling parameter.
const MAX_SOURCE_RESOLUTION: &str = "max_source_resolution";

/// Validates `max_source_resolution` as Thanos parses it: empty = 0, `auto` = `auto_ms`
/// (0 for instant queries, step/5 for range queries), else a duration that must not be
/// negative. Only raw data exists, so the value is logged and otherwise unused.
fn max_source_resolution(p: &Params, auto_ms: i64) -> Result<i64, ApiError> {
    let ms = match p.get(MAX_SOURCE_RESOLUTION) {
        None | Some("") => 0,
        Some("auto") => auto_ms,
        Some(v) => parse_duration_ms(v)
            .map_err(|e| ApiError::bad(format!("parse {MAX_SOURCE_RESOLUTION}: {e}")))?,
    };
    if ms < 0 {
        return Err(ApiError::bad(format!(
            "negative '{MAX_SOURCE_RESOLUTION}' is not accepted. Try a positive integer"
        )));
    }
    if ms > 0 {
        tracing::debug!(
            max_source_resolution_ms = ms,
            "only raw data is served; max_source_resolution does not change the result"
        );
    }
    Ok(ms)
}

async fn query_exemplars(State(q): State<Arc<Querier>>, req: Request) -> Response {
    respond(query_exemplars_inner(&q, req).await)
}

/// A time parameter of `query_exemplars`, worded as Prometheus's `parseTimeParam`.
fn exemplar_time(p: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match p.get(name) {
        None | Some("") => Ok(default),
        Some(v) => parse_time(v).map_err(|e| {
            ApiError::bad_param(name, format!("Invalid time value for '{name}': {e}"))
        }),
    }
}

async fn query_exemplars_inner(q: &Querier, req: Request) -> Result<ApiData, ApiError> {
    let p = read_params(req).await?;
    let start = exemplar_time(&p, "start", MIN_TIME_MS)?;
    let end = exemplar_time(&p, "end", MAX_TIME_MS)?;
    if end < start {
        return Err(ApiError::bad(
            "end timestamp must not be before start timestamp",
        ));
    }
    q.engine
        .parse(p.get("query").unwrap_or(""))
        .map_err(|e| ApiError::bad(e.to_string()))?;
    if let Some(v) = p.get("partial_response").filter(|v| !v.is_empty())
        && parse_bool(v).is_none()
    {
        return Err(ApiError::bad_param(
            "partial_response",
            format!("cannot parse {v:?} to a boolean"),
        ));
    }
    // No endpoint serves the Exemplars API: the answer is always empty.
    Ok(ApiData::new("[]".to_owned(), Vec::new()))
}

/// `start`/`end` of a metadata call, defaulting to the unbounded range.
fn metadata_range(p: &Params) -> Result<(i64, i64), ApiError> {
    let get = |name: &str, default: i64| match p.get(name) {
        None | Some("") => Ok(default),
        Some(v) => parse_time(v).map_err(|e| ApiError::bad_param(name, e)),
    };
    let start = get("start", MIN_TIME_MS)?;
    let end = get("end", MAX_TIME_MS)?;
    if end < start {
        return Err(ApiError::bad_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    Ok((start, end))
}

/// Parses every `match[]` into matchers; each must be a plain selector with at least one
/// matcher not matching the empty string.
fn match_params(q: &Querier, p: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let sets = selector_params(&q.engine, p, "match[]")?;
    if sets.iter().any(|ms| ms.iter().all(Matcher::matches_empty)) {
        return Err(ApiError::bad_param(
            "match[]",
            "match[] must contain at least one non-empty matcher",
        ));
    }
    Ok(sets)
}

/// Parses every value of the selector parameter `name` (`match[]`, `storeMatch[]`).
fn selector_params(
    engine: &thanos_promql::Engine,
    p: &Params,
    name: &str,
) -> Result<Vec<Vec<Matcher>>, ApiError> {
    p.get_all(name)
        .into_iter()
        .map(|s| {
            let expr = engine.parse(s).map_err(|e| ApiError::bad_param(name, e))?;
            let Expr::VectorSelector(vs) = expr else {
                return Err(ApiError::bad_param(
                    name,
                    format!("parse error: expected vector selector, got {s:?}"),
                ));
            };
            let mut ms = Vec::new();
            if let Some(metric) = &vs.name {
                ms.push(Matcher::equal("__name__", metric.clone()));
            }
            for m in &vs.matchers.matchers {
                let t = match m.op {
                    MatchOp::Equal => MatchType::Equal,
                    MatchOp::NotEqual => MatchType::NotEqual,
                    MatchOp::Re(_) => MatchType::RegexMatch,
                    MatchOp::NotRe(_) => MatchType::RegexNoMatch,
                };
                ms.push(
                    Matcher::new(t, m.name.clone(), m.value.clone())
                        .map_err(|e| ApiError::bad_param(name, e))?,
                );
            }
            Ok(ms)
        })
        .collect()
}

/// The `limit` parameter (0 = unlimited).
fn limit_param(p: &Params) -> Result<usize, ApiError> {
    match p.get("limit") {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::bad_param("limit", "limit must be a non-negative integer")),
    }
}

/// Truncates `items` to `limit`, adding Prometheus's warning when it did.
fn apply_limit<T>(items: &mut Vec<T>, limit: usize, warnings: &mut Vec<String>) {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        warnings.push("results truncated due to limit".to_owned());
    }
}

async fn series(State(q): State<Arc<Querier>>, req: Request) -> Response {
    respond(series_inner(&q, req).await)
}

async fn series_inner(q: &Querier, req: Request) -> Result<ApiData, ApiError> {
    let p = read_params(req).await?;
    if p.get_all("match[]").is_empty() {
        return Err(ApiError::bad("no match[] parameter provided"));
    }
    let (start, end) = metadata_range(&p)?;
    let limit = limit_param(&p)?;
    let sets = match_params(q, &p)?;
    let timeout = q.timeout(&p)?;
    let opts = q.select_options(&p, timeout)?;
    let storage = QueryStorage::new(q.proxy.clone(), opts.clone());
    let mut all = BTreeSet::new();
    for ms in sets {
        let request = opts.series_request(&ms, start, end, true);
        for s in storage.fetch(request, &ms).await? {
            all.insert(s.labels);
        }
    }
    let mut warnings = storage.take_warnings();
    let mut items: Vec<_> = all.into_iter().collect();
    apply_limit(&mut items, limit, &mut warnings);
    let mut data = String::from("[");
    for (i, labels) in items.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        json::write_labels(&mut data, labels);
    }
    data.push(']');
    Ok(ApiData::new(data, warnings))
}

async fn labels(State(q): State<Arc<Querier>>, req: Request) -> Response {
    respond(labels_inner(&q, req).await)
}

async fn labels_inner(q: &Querier, req: Request) -> Result<ApiData, ApiError> {
    let p = read_params(req).await?;
    let (start, end) = metadata_range(&p)?;
    let limit = limit_param(&p)?;
    let mut sets = match_params(q, &p)?;
    if sets.is_empty() {
        sets.push(Vec::new());
    }
    let timeout = q.timeout(&p)?;
    let opts = q.select_options(&p, timeout)?;
    let template = opts.series_request(&[], start, end, true);
    let mut names = BTreeSet::new();
    let mut warnings = Vec::new();
    for ms in sets {
        let request = LabelNamesRequest {
            partial_response_strategy: template.partial_response_strategy,
            start,
            end,
            matchers: matchers_to_proto(&ms),
            without_replica_labels: template.without_replica_labels.clone(),
            ..LabelNamesRequest::default()
        };
        let resp = q
            .proxy
            .label_names(request, opts.deadline, &opts.store_matchers)
            .await?;
        names.extend(resp.names);
        warnings.extend(resp.warnings);
    }
    let mut items: Vec<String> = names.into_iter().collect();
    apply_limit(&mut items, limit, &mut warnings);
    Ok(ApiData::new(
        json::string_array(items.iter().map(String::as_str)),
        warnings,
    ))
}

fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

async fn label_values(
    State(q): State<Arc<Querier>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    respond(label_values_inner(&q, name, req).await)
}

async fn label_values_inner(q: &Querier, name: String, req: Request) -> Result<ApiData, ApiError> {
    if !is_valid_label_name(&name) {
        return Err(ApiError::bad(format!("invalid label name: {name:?}")));
    }
    let p = read_params(req).await?;
    let (start, end) = metadata_range(&p)?;
    let limit = limit_param(&p)?;
    let mut sets = match_params(q, &p)?;
    if sets.is_empty() {
        sets.push(Vec::new());
    }
    let timeout = q.timeout(&p)?;
    let opts = q.select_options(&p, timeout)?;
    let template = opts.series_request(&[], start, end, true);
    let mut values = BTreeSet::new();
    let mut warnings = Vec::new();
    for ms in sets {
        let request = LabelValuesRequest {
            label: name.clone(),
            partial_response_strategy: template.partial_response_strategy,
            start,
            end,
            matchers: matchers_to_proto(&ms),
            without_replica_labels: template.without_replica_labels.clone(),
            ..LabelValuesRequest::default()
        };
        let resp = q
            .proxy
            .label_values(request, opts.deadline, &opts.store_matchers)
            .await?;
        values.extend(resp.values);
        warnings.extend(resp.warnings);
    }
    let mut items: Vec<String> = values.into_iter().collect();
    apply_limit(&mut items, limit, &mut warnings);
    Ok(ApiData::new(
        json::string_array(items.iter().map(String::as_str)),
        warnings,
    ))
}

async fn metadata(State(q): State<Arc<Querier>>, req: Request) -> Response {
    respond(metadata_inner(&q, req).await)
}

async fn metadata_inner(q: &Querier, req: Request) -> Result<ApiData, ApiError> {
    let p = read_params(req).await?;
    let int_param = |name: &str| -> Result<i32, ApiError> {
        match p.get(name) {
            None | Some("") => Ok(-1),
            Some(v) => v
                .parse::<i32>()
                .map_err(|_| ApiError::bad_param(name, "limit must be a number")),
        }
    };
    let limit = int_param("limit")?;
    let limit_per_metric = int_param("limit_per_metric")?;
    let timeout = q.timeout(&p)?;
    let opts = q.select_options(&p, timeout)?;
    let (map, warnings) = crate::metadata::fetch(
        &q.endpoints,
        p.get("metric").unwrap_or(""),
        limit,
        limit_per_metric,
        !opts.partial_response,
        Instant::now() + timeout,
    )
    .await?;
    let parts: Vec<String> = map
        .iter()
        .map(|(name, metas)| {
            let entries: Vec<String> = metas
                .iter()
                .map(|m| {
                    format!(
                        "{{\"type\":{},\"help\":{},\"unit\":{}}}",
                        json::string(&m.r#type),
                        json::string(&m.help),
                        json::string(&m.unit)
                    )
                })
                .collect();
            format!("{}:[{}]", json::string(name), entries.join(","))
        })
        .collect();
    Ok(ApiData::new(format!("{{{}}}", parts.join(",")), warnings))
}

async fn buildinfo(State(q): State<Arc<Querier>>) -> Response {
    let b = &q.options.build_info;
    let fields = [
        ("version", &b.version),
        ("revision", &b.revision),
        ("branch", &b.branch),
        ("buildUser", &b.build_user),
        ("buildDate", &b.build_date),
        ("goVersion", &b.go_version),
    ];
    let parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{}", json::string(k), json::string(v)))
        .collect();
    respond(Ok(ApiData::new(
        format!("{{{}}}", parts.join(",")),
        Vec::new(),
    )))
}

async fn stores(State(q): State<Arc<Querier>>) -> Response {
    let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in q.endpoints.statuses() {
        let kind = if s.component_type.is_empty() {
            "unknown".to_owned()
        } else {
            s.component_type.clone()
        };
        let sets: Vec<String> = s.label_sets.iter().map(json::labels).collect();
        let entry = format!(
            "{{\"name\":{},\"lastCheck\":{},\"lastError\":{},\"labelSets\":[{}],\"minTime\":{},\"maxTime\":{}}}",
            json::string(&s.address),
            s.last_check
                .map_or_else(|| "null".to_owned(), |t| json::string(&format_rfc3339(t))),
            s.last_error
                .as_deref()
                .map_or_else(|| "null".to_owned(), json::string),
            sets.join(","),
            s.min_time,
            s.max_time,
        );
        by_type.entry(kind).or_default().push(entry);
    }
    let parts: Vec<String> = by_type
        .iter()
        .map(|(k, v)| format!("{}:[{}]", json::string(k), v.join(",")))
        .collect();
    respond(Ok(ApiData::new(
        format!("{{{}}}", parts.join(",")),
        Vec::new(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_name_validation() {
        assert!(is_valid_label_name("job"));
        assert!(is_valid_label_name("__name__"));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a.b"));
        assert!(!is_valid_label_name(""));
    }

    #[test]
    fn limit_truncates_with_warning() {
        let mut items = vec![1, 2, 3];
        let mut w = Vec::new();
        apply_limit(&mut items, 0, &mut w);
        assert_eq!(items.len(), 3);
        apply_limit(&mut items, 2, &mut w);
        assert_eq!(items, vec![1, 2]);
        assert_eq!(w, vec!["results truncated due to limit"]);
    }

    #[test]
    fn max_source_resolution_is_validated() {
        let p = |s: &str| Params::from_form(s);
        assert_eq!(max_source_resolution(&p(""), 7).unwrap(), 0);
        assert_eq!(
            max_source_resolution(&p("max_source_resolution=auto"), 7).unwrap(),
            7
        );
        for (v, ms) in [
            ("0s", 0),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("300", 300_000),
        ] {
            let got = max_source_resolution(&p(&format!("max_source_resolution={v}")), 0);
            assert_eq!(got.unwrap(), ms, "{v}");
        }
        let err = max_source_resolution(&p("max_source_resolution=5x"), 0).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert!(
            err.message.starts_with("parse max_source_resolution: "),
            "{}",
            err.message
        );
        let err = max_source_resolution(&p("max_source_resolution=-5"), 0).unwrap_err();
        assert_eq!(
            err.message,
            "negative 'max_source_resolution' is not accepted. Try a positive integer"
        );
    }

    #[test]
    fn error_envelope() {
        let resp = respond(Err(ApiError::bad_param("query", "parse error: x")));
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let timeout = respond(Err(ApiError {
            kind: ErrorKind::DeadlineExceeded,
            message: "t".into(),
        }));
        assert_eq!(timeout.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
