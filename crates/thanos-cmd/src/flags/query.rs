//! `thanos query` flags (components.md §5.1).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};

use super::client_tls::GrpcClientFlags;
use super::grpc::GrpcServerFlags;
use super::http::HttpFlags;
use super::limits::StoreLimitsFlags;
use super::values;

/// Every flag of `thanos query`.
#[derive(Debug, Clone, Args)]
pub struct QueryFlags {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub http: HttpFlags,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub grpc: GrpcServerFlags,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub limits: StoreLimitsFlags,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: GrpcClientFlags,

    /// Addresses of statically configured StoreAPI endpoints (repeatable; dns+, dnssrv+ and
    /// dnssrvnoa+ prefixes resolve DNS). `--store` is accepted as an alias (removed in Thanos v0.38).
    #[arg(id = "endpoint", long = "endpoint", alias = "store", action = ArgAction::Append)]
    pub endpoint: Vec<String>,

    /// Deprecated: round-robin endpoint groups.
    #[arg(id = "endpoint-group", long = "endpoint-group", action = ArgAction::Append)]
    pub endpoint_group: Vec<String>,

    /// Deprecated: endpoints that are always used, even if their health check fails.
    #[arg(id = "endpoint-strict", long = "endpoint-strict", action = ArgAction::Append)]
    pub endpoint_strict: Vec<String>,

    /// Deprecated: endpoint groups that are always used.
    #[arg(id = "endpoint-group-strict", long = "endpoint-group-strict", action = ArgAction::Append)]
    pub endpoint_group_strict: Vec<String>,

    /// Path to the endpoint SD YAML (`endpoints: [{address: ...}]`); re-read on every
    /// endpoint refresh, so endpoints can be added and removed without a restart.
    #[arg(
        id = "endpoint.sd-config-file",
        long = "endpoint.sd-config-file",
        value_name = "FILE",
        conflicts_with = "endpoint.sd-config"
    )]
    pub endpoint_sd_config_file: Option<PathBuf>,

    /// Alternative to --endpoint.sd-config-file: the YAML itself.
    #[arg(id = "endpoint.sd-config", long = "endpoint.sd-config")]
    pub endpoint_sd_config: Option<String>,

    /// How often the endpoint SD config is re-read (this implementation re-reads it on
    /// every endpoint refresh, which is more often).
    #[arg(id = "endpoint.sd-config-reload-interval", long = "endpoint.sd-config-reload-interval", default_value = "5m", value_parser = values::duration)]
    pub endpoint_sd_config_reload_interval: Duration,

    /// Deprecated: Prometheus file_sd files (JSON/YAML, globs) with store addresses.
    #[arg(id = "store.sd-files", long = "store.sd-files", action = ArgAction::Append)]
    pub store_sd_files: Vec<String>,

    /// Deprecated: refresh interval for the file SD files.
    #[arg(id = "store.sd-interval", long = "store.sd-interval", default_value = "5m", value_parser = values::duration)]
    pub store_sd_interval: Duration,

    /// Interval between DNS resolutions.
    #[arg(id = "store.sd-dns-interval", long = "store.sd-dns-interval", default_value = "30s", value_parser = values::duration)]
    pub store_sd_dns_interval: Duration,

    /// DNS resolver implementation.
    #[arg(id = "store.sd-dns-resolver", long = "store.sd-dns-resolver", hide = true, default_value = "miekgdns", value_parser = ["miekgdns", "golang"])]
    pub store_sd_dns_resolver: String,

    /// Drop endpoints that fail their Info call for this long.
    #[arg(id = "store.unhealthy-timeout", long = "store.unhealthy-timeout", default_value = "5m", value_parser = values::duration)]
    pub store_unhealthy_timeout: Duration,

    /// Timeout of the Info call and its poll period.
    #[arg(id = "endpoint.info-timeout", long = "endpoint.info-timeout", hide = true, default_value = "5s", value_parser = values::duration)]
    pub endpoint_info_timeout: Duration,

    /// Per-frame timeout on store streams (0 disables it).
    #[arg(id = "store.response-timeout", long = "store.response-timeout", default_value = "0ms", value_parser = values::duration)]
    pub store_response_timeout: Duration,

    /// Maximum time to process a query.
    #[arg(id = "query.timeout", long = "query.timeout", default_value = "2m", value_parser = values::duration)]
    pub query_timeout: Duration,

    /// Maximum number of queries processed concurrently.
    #[arg(
        id = "query.max-concurrent",
        long = "query.max-concurrent",
        default_value = "20"
    )]
    pub query_max_concurrent: u32,

    /// Maximum number of concurrent Selects per query.
    #[arg(
        id = "query.max-concurrent-select",
        long = "query.max-concurrent-select",
        default_value = "4"
    )]
    pub query_max_concurrent_select: u32,

    /// Lookback delta for PromQL (default: the PromQL default, 5m).
    #[arg(id = "query.lookback-delta", long = "query.lookback-delta", value_parser = values::duration)]
    pub query_lookback_delta: Option<Duration>,

    /// Grow the lookback delta to the downsample resolution used.
    #[arg(id = "query.dynamic-lookback-delta", long = "query.dynamic-lookback-delta", hide = true, default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub query_dynamic_lookback_delta: bool,

    /// PromQL engine to use.
    #[arg(id = "query.promql-engine", long = "query.promql-engine", default_value = "prometheus", value_parser = ["prometheus", "thanos"])]
    pub query_promql_engine: String,

    /// Do not fall back to the Prometheus engine for unsupported queries.
    #[arg(id = "query.disable-fallback", long = "query.disable-fallback", hide = true, default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub query_disable_fallback: bool,

    /// Enable xrate/xincrease/xdelta (thanos engine).
    #[arg(id = "query.enable-x-functions", long = "query.enable-x-functions", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub query_enable_x_functions: bool,

    /// Query execution mode.
    #[arg(id = "query.mode", long = "query.mode", default_value = "local", value_parser = ["local", "distributed"])]
    pub query_mode: String,

    /// Labels treated as replica indicators for deduplication (repeatable or comma separated).
    #[arg(id = "query.replica-label", long = "query.replica-label", action = ArgAction::Append, value_delimiter = ',')]
    pub query_replica_label: Vec<String>,

    /// Labels that partition the data in distributed mode.
    #[arg(id = "query.partition-label", long = "query.partition-label", action = ArgAction::Append)]
    pub query_partition_label: Vec<String>,

    /// Deduplication algorithm.
    #[arg(id = "deduplication.func", long = "deduplication.func", default_value = "penalty", value_parser = ["penalty", "chain"])]
    pub deduplication_func: String,

    /// Labels of the thanos_store_nodes_grpc_connections metric.
    #[arg(id = "query.conn-metric.label", long = "query.conn-metric.label", action = ArgAction::Append, default_values = ["external_labels", "store_type"], value_parser = ["external_labels", "store_type"])]
    pub query_conn_metric_label: Vec<String>,

    /// Default range of series/labels API calls without a time range (0s = everything).
    #[arg(id = "query.metadata.default-time-range", long = "query.metadata.default-time-range", default_value = "0s", value_parser = values::duration)]
    pub query_metadata_default_time_range: Duration,

    /// Query selector labels advertised via Info, `name="value"` (repeatable).
    #[arg(id = "selector-label", long = "selector-label", action = ArgAction::Append)]
    pub selector_label: Vec<String>,

    /// Use step/5 as max_source_resolution when the request does not give one.
    #[arg(id = "query.auto-downsampling", long = "query.auto-downsampling", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub query_auto_downsampling: bool,

    /// Default of the partial_response parameter (use --no-query.partial-response to disable).
    #[arg(id = "query.partial-response", long = "query.partial-response", default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub query_partial_response: bool,

    /// Partial response default for the rules API.
    #[arg(id = "rule.partial-response", long = "rule.partial-response", hide = true, default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub rule_partial_response: bool,

    /// Partial response default for the targets API.
    #[arg(id = "target.partial-response", long = "target.partial-response", hide = true, default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub target_partial_response: bool,

    /// Partial response default for the metadata API.
    #[arg(id = "metric-metadata.partial-response", long = "metric-metadata.partial-response", hide = true, default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub metric_metadata_partial_response: bool,

    /// Partial response default for the exemplars API.
    #[arg(id = "exemplar.partial-response", long = "exemplar.partial-response", hide = true, default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub exemplar_partial_response: bool,

    /// Partial response default for the status API.
    #[arg(id = "status.partial-response", long = "status.partial-response", hide = true, default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub status_partial_response: bool,

    /// Default max_source_resolution of instant queries.
    #[arg(id = "query.instant.default.max_source_resolution", long = "query.instant.default.max_source_resolution", hide = true, default_value = "0s", value_parser = values::duration)]
    pub query_instant_default_max_source_resolution: Duration,

    /// Directory where currently active queries are tracked.
    #[arg(
        id = "query.active-query-path",
        long = "query.active-query-path",
        default_value = ""
    )]
    pub query_active_query_path: String,

    /// Experimental features to enable (promql-experimental-functions).
    #[arg(id = "enable-feature", long = "enable-feature", action = ArgAction::Append)]
    pub enable_feature: Vec<String>,

    /// Default evaluation interval for subqueries.
    #[arg(id = "query.default-evaluation-interval", long = "query.default-evaluation-interval", default_value = "1m", value_parser = values::duration)]
    pub query_default_evaluation_interval: Duration,

    /// Default range query step used by the UI.
    #[arg(id = "query.default-step", long = "query.default-step", default_value = "1s", value_parser = values::duration)]
    pub query_default_step: Duration,

    /// Path to a YAML file with relabeling configuration selecting TSDBs to query.
    #[arg(
        id = "selector.relabel-config-file",
        long = "selector.relabel-config-file",
        value_name = "FILE",
        conflicts_with = "selector.relabel-config"
    )]
    pub selector_relabel_config_file: Option<PathBuf>,

    /// Alternative to --selector.relabel-config-file: the YAML itself.
    #[arg(id = "selector.relabel-config", long = "selector.relabel-config")]
    pub selector_relabel_config: Option<String>,

    /// URL of the query UI used in alert links (default: derived from --http-address).
    #[arg(id = "alert.query-url", long = "alert.query-url")]
    pub alert_query_url: Option<String>,

    /// Quantiles of the request duration histogram, in seconds.
    #[arg(id = "query.telemetry.request-duration-seconds-quantiles", long = "query.telemetry.request-duration-seconds-quantiles", action = ArgAction::Append, default_values = ["0.1", "0.25", "0.75", "1.25", "1.75", "2.5", "3", "5", "10"])]
    pub query_telemetry_request_duration_seconds_quantiles: Vec<f64>,

    /// Quantiles of the samples-touched histogram.
    #[arg(id = "query.telemetry.request-samples-quantiles", long = "query.telemetry.request-samples-quantiles", action = ArgAction::Append, default_values = ["100", "1000", "10000", "100000", "1000000"])]
    pub query_telemetry_request_samples_quantiles: Vec<f64>,

    /// Quantiles of the series-touched histogram.
    #[arg(id = "query.telemetry.request-series-seconds-quantiles", long = "query.telemetry.request-series-seconds-quantiles", action = ArgAction::Append, default_values = ["10", "100", "1000", "10000", "100000"])]
    pub query_telemetry_request_series_seconds_quantiles: Vec<f64>,

    /// HTTP header to determine the tenant of a query.
    #[arg(
        id = "query.tenant-header",
        long = "query.tenant-header",
        default_value = "THANOS-TENANT"
    )]
    pub query_tenant_header: String,

    /// Default tenant ID when none is provided via a header.
    #[arg(
        id = "query.default-tenant-id",
        long = "query.default-tenant-id",
        default_value = "default-tenant"
    )]
    pub query_default_tenant_id: String,

    /// Use the TLS client certificate's field to determine the tenant.
    #[arg(id = "query.tenant-certificate-field", long = "query.tenant-certificate-field", default_value = "", value_parser = ["", "organization", "organizationalUnit", "commonName"])]
    pub query_tenant_certificate_field: String,

    /// Inject the tenant label matcher into every selector.
    #[arg(id = "query.enforce-tenancy", long = "query.enforce-tenancy", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub query_enforce_tenancy: bool,

    /// Label name carrying the tenant.
    #[arg(
        id = "query.tenant-label-name",
        long = "query.tenant-label-name",
        default_value = "tenant_id"
    )]
    pub query_tenant_label_name: String,

    /// Prefix for API and UI endpoints.
    #[arg(id = "web.route-prefix", long = "web.route-prefix", default_value = "")]
    pub web_route_prefix: String,

    /// Static prefix for all HTML links and redirect URLs in the UI.
    #[arg(
        id = "web.external-prefix",
        long = "web.external-prefix",
        default_value = ""
    )]
    pub web_external_prefix: String,

    /// HTTP header holding the external prefix for the UI.
    #[arg(
        id = "web.prefix-header",
        long = "web.prefix-header",
        default_value = ""
    )]
    pub web_prefix_header: String,

    /// Disable CORS headers.
    #[arg(id = "web.disable-cors", long = "web.disable-cors", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub web_disable_cors: bool,

    /// Proxy strategy towards stores.
    #[arg(id = "grpc.proxy-strategy", long = "grpc.proxy-strategy", hide = true, default_value = "eager", value_parser = ["eager", "lazy"])]
    pub grpc_proxy_strategy: String,

    /// Maximum buffered responses per store in lazy retrieval.
    #[arg(
        id = "query.lazy-retrieval-max-buffered-responses",
        long = "query.lazy-retrieval-max-buffered-responses",
        hide = true,
        default_value = "20"
    )]
    pub query_lazy_retrieval_max_buffered_responses: u32,

    /// Path to a YAML file with the request logging configuration.
    #[arg(
        id = "request.logging-config-file",
        long = "request.logging-config-file",
        value_name = "FILE",
        conflicts_with = "request.logging-config"
    )]
    pub request_logging_config_file: Option<PathBuf>,

    /// Alternative to --request.logging-config-file: the YAML itself.
    #[arg(id = "request.logging-config", long = "request.logging-config")]
    pub request_logging_config: Option<String>,
}
