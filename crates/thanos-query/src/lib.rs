//! Thanos querier: discovers StoreAPI endpoints, fans queries out to them, deduplicates
//! replicas and serves the Prometheus HTTP API.
//!
//! Mirrors Thanos `pkg/query` (endpoint set, querier), `pkg/store/proxy` (fan-out and
//! merge), `pkg/dedup` (penalty and chain deduplication) and `pkg/api/query` (HTTP API
//! with Thanos's extra parameters). The PromQL engine is `thanos-promql`.
//!
//! * [`endpoints`] — endpoints polled with Info: health, label sets, time ranges;
//! * [`dns`] — endpoint specs (`host:port`, `dns+`, `dnssrv+`, `dnssrvnoa+`) and their
//!   resolution;
//! * [`sd`] — the endpoint SD config (`--endpoint.sd-config(-file)`, file re-read on every
//!   refresh);
//! * [`proxy`] — StoreAPI fan-out with per-store deadlines, k-way merge, partial response;
//! * [`dedup`] — replica merging (penalty with counter adjustment, chain);
//! * [`storage`] — the engine's `Storage` over proxy + dedup;
//! * [`grpc`] — `thanos.Store` and `thanos.info.Info` served by the querier (stacking);
//! * [`metadata`] — metric metadata fan-out (`/api/v1/metadata`);
//! * [`api`] — `/api/v1/*` handlers, JSON exactly as Prometheus writes it ([`json`]);
//! * [`ui`] — the web UI (`/graph`, `/stores`), embedded in the binary, working offline.
//!
//! ```no_run
//! # async fn run() -> Result<(), thanos_query::QueryError> {
//! use std::sync::Arc;
//! use thanos_query::{Querier, QuerierOptions};
//!
//! let registry = prometheus::Registry::new();
//! let options = QuerierOptions {
//!     endpoints: vec!["127.0.0.1:10901".into()],
//!     replica_labels: vec!["replica".into()],
//!     ..QuerierOptions::default()
//! };
//! let querier = Arc::new(Querier::new(options, &registry)?);
//! querier.endpoints().update().await; // first discovery round
//! let app = querier.router(); // serve with axum; also querier.store_service()
//! # drop(app); Ok(()) }
//! ```
//!
//! DNS specs are re-resolved on every Info poll. Not implemented: `--store.unhealthy-timeout`
//! pruning (static endpoints stay listed), endpoint groups and per-endpoint TLS, and
//! downsampled data: `max_source_resolution` is validated but every query reads raw
//! chunks (aggregate-only chunks are skipped). No store serves exemplars, so
//! `/api/v1/query_exemplars` validates its parameters and answers an empty list.

pub mod api;
pub mod dedup;
pub mod dns;
pub mod endpoints;
pub mod error;
pub mod gate;
pub mod grpc;
pub mod json;
pub mod metadata;
pub mod params;
pub mod proxy;
pub mod sd;
pub mod storage;
pub mod ui;

use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use thanos_promql::{Engine, EngineOptions};
use thanos_server::GrpcClientOptions;
use tokio_util::sync::CancellationToken;

pub use dedup::DedupFunc;
pub use endpoints::{EndpointSet, EndpointSetOptions, EndpointStatus};
pub use error::QueryError;
pub use grpc::{ProxyService, QueryInfoService};
pub use proxy::{ProxyOptions, ProxyStore};
pub use storage::{QueryLimits, QueryStorage, SelectOptions};

/// What `/api/v1/status/buildinfo` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// Version (Grafana reads it to pick features).
    pub version: String,
    /// Source revision.
    pub revision: String,
    /// Source branch.
    pub branch: String,
    /// Who built the binary.
    pub build_user: String,
    /// When the binary was built.
    pub build_date: String,
    /// Toolchain version (the field keeps Prometheus's name `goVersion`).
    pub go_version: String,
}

impl Default for BuildInfo {
    fn default() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            revision: String::new(),
            branch: String::new(),
            build_user: String::new(),
            build_date: String::new(),
            go_version: String::new(),
        }
    }
}

/// Settings of a [`Querier`], mirroring `thanos query` flags.
#[derive(Debug, Clone)]
pub struct QuerierOptions {
    /// `--endpoint` specs (`host:port`, `dns+host:port`, `dnssrv+name`, `dnssrvnoa+name`).
    pub endpoints: Vec<String>,
    /// `--endpoint.sd-config(-file)`.
    pub endpoint_sd: Option<sd::SdSource>,
    /// `--query.replica-label`.
    pub replica_labels: Vec<String>,
    /// `--deduplication.func`.
    pub dedup_func: DedupFunc,
    /// `--query.partial-response` (default of the `partial_response` parameter).
    pub partial_response: bool,
    /// `--query.timeout`: caps the per-query `timeout`. Store streams get the query's
    /// timeout, or 90% of it when partial responses are allowed (so a hanging store ends
    /// in a warning before the query times out).
    pub query_timeout: Duration,
    /// `--store.response-timeout` (`None` = 0 = off).
    pub response_timeout: Option<Duration>,
    /// `--query.max-concurrent`.
    pub max_concurrent: usize,
    /// Info poll period and timeout (hidden `--endpoint.info-timeout`).
    pub info_interval: Duration,
    /// PromQL engine options (`--query.lookback-delta` is `lookback_delta_ms`).
    pub engine: EngineOptions,
    /// gRPC client settings for endpoints.
    pub client: GrpcClientOptions,
    /// Build information served by `/api/v1/status/buildinfo`.
    pub build_info: BuildInfo,
    /// Per-query limits on fetched series and chunk bytes.
    pub limits: QueryLimits,
}

impl Default for QuerierOptions {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            endpoint_sd: None,
            replica_labels: Vec::new(),
            dedup_func: DedupFunc::Penalty,
            partial_response: true,
            query_timeout: Duration::from_secs(120),
            response_timeout: None,
            max_concurrent: 20,
            info_interval: endpoints::DEFAULT_INFO_INTERVAL,
            engine: EngineOptions::default(),
            client: GrpcClientOptions { tls: None },
            build_info: BuildInfo::default(),
            limits: QueryLimits::default(),
        }
    }
}

/// A querier: endpoint set, proxy, engine and API.
#[derive(Debug)]
pub struct Querier {
    options: QuerierOptions,
    endpoints: Arc<EndpointSet>,
    proxy: Arc<ProxyStore>,
    engine: Engine,
    gate: gate::Gate,
}

impl Querier {
    /// Builds the querier and registers its metrics in `registry`. Endpoints are not polled
    /// yet: call [`EndpointSet::update`] once and spawn [`Querier::run_discovery`].
    pub fn new(options: QuerierOptions, registry: &Registry) -> Result<Self, QueryError> {
        let client = options
            .client
            .build()
            .map_err(|source| QueryError::Endpoint {
                address: "client TLS".to_owned(),
                source,
            })?;
        let endpoints = Arc::new(EndpointSet::new(
            EndpointSetOptions {
                addresses: options.endpoints.clone(),
                sd: options.endpoint_sd.clone(),
                info_interval: options.info_interval,
                info_timeout: options.info_interval,
            },
            &client,
            registry,
        )?);
        let proxy = Arc::new(ProxyStore::new(
            endpoints.clone(),
            ProxyOptions {
                response_timeout: options.response_timeout,
            },
        ));
        Ok(Self {
            engine: Engine::new(options.engine.clone()),
            gate: gate::Gate::new(options.max_concurrent, registry)?,
            options,
            endpoints,
            proxy,
        })
    }

    /// The endpoint set.
    pub fn endpoints(&self) -> &Arc<EndpointSet> {
        &self.endpoints
    }

    /// The proxy store.
    pub fn proxy(&self) -> &Arc<ProxyStore> {
        &self.proxy
    }

    /// Polls the endpoints until `shutdown` is cancelled.
    pub async fn run_discovery(&self, shutdown: CancellationToken) {
        self.endpoints.clone().run(shutdown).await;
    }

    /// The HTTP API router (`/api/v1/...`).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        api::router(self.clone())
    }

    /// The API and the web UI; `link_prefix` is the path the browser reaches the router
    /// under (see [`ui::router`]).
    pub fn router_with_ui(self: &Arc<Self>, link_prefix: &str) -> axum::Router {
        api::router(self.clone()).merge(ui::router(link_prefix))
    }

    /// `thanos.Store` over the proxy, for stacking queriers.
    pub fn store_service(&self) -> thanos_proto::thanos::store_server::StoreServer<ProxyService> {
        ProxyService::new(self.proxy.clone(), self.options.query_timeout).into_server()
    }

    /// `thanos.info.Info` with component type `query`.
    pub fn info_service(
        &self,
    ) -> thanos_proto::thanos::info::info_server::InfoServer<QueryInfoService> {
        QueryInfoService::new(self.proxy.clone()).into_server()
    }
}
