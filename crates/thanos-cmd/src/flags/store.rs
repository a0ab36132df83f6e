//! `thanos store` flags (components.md §4.1).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};

use super::grpc::GrpcServerFlags;
use super::http::HttpFlags;
use super::limits::StoreLimitsFlags;
use super::objstore::ObjstoreFlags;
use super::values::{self, TimeOrDuration};

/// Every flag of `thanos store`.
#[derive(Debug, Clone, Args)]
pub struct StoreFlags {
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
    pub objstore: ObjstoreFlags,

    /// Local data directory for index-headers and the meta.json cache; safe to delete.
    #[arg(id = "data-dir", long = "data-dir", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Cache index-headers on disk (use --no-cache-index-header to keep them in memory only).
    #[arg(id = "cache-index-header", long = "cache-index-header", default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub cache_index_header: bool,

    /// Maximum size of the in-memory index cache used when no index cache config is given.
    #[arg(id = "index-cache-size", long = "index-cache-size", default_value = "250MB", value_parser = values::bytes)]
    pub index_cache_size: u64,

    /// Path to a YAML file with the index cache configuration.
    #[arg(
        id = "index-cache.config-file",
        long = "index-cache.config-file",
        value_name = "FILE",
        conflicts_with = "index-cache.config"
    )]
    pub index_cache_config_file: Option<PathBuf>,

    /// Alternative to --index-cache.config-file: the YAML itself.
    #[arg(id = "index-cache.config", long = "index-cache.config")]
    pub index_cache_config: Option<String>,

    /// Maximum size of the reusable chunk byte pool.
    #[arg(id = "chunk-pool-size", long = "chunk-pool-size", default_value = "2GB", value_parser = values::bytes)]
    pub chunk_pool_size: u64,

    /// Deprecated alias of --store.limits.request-series.
    #[arg(
        id = "store.grpc.touched-series-limit",
        long = "store.grpc.touched-series-limit",
        default_value = "0"
    )]
    pub store_grpc_touched_series_limit: u64,

    /// Deprecated alias of --store.limits.request-samples.
    #[arg(
        id = "store.grpc.series-sample-limit",
        long = "store.grpc.series-sample-limit",
        default_value = "0"
    )]
    pub store_grpc_series_sample_limit: u64,

    /// Maximum bytes fetched and touched per Series/LabelNames/LabelValues call (0 = unlimited).
    #[arg(id = "store.grpc.downloaded-bytes-limit", long = "store.grpc.downloaded-bytes-limit", default_value = "0", value_parser = values::bytes)]
    pub store_grpc_downloaded_bytes_limit: u64,

    /// Maximum concurrent Series calls; others wait.
    #[arg(
        id = "store.grpc.series-max-concurrency",
        long = "store.grpc.series-max-concurrency",
        default_value = "20"
    )]
    pub store_grpc_series_max_concurrency: u32,

    /// Path to the YAML of a bucket of parquet-converted blocks to skip.
    #[arg(
        id = "objstore-parquet.config-file",
        long = "objstore-parquet.config-file",
        value_name = "FILE",
        conflicts_with = "objstore-parquet.config"
    )]
    pub objstore_parquet_config_file: Option<PathBuf>,

    /// Alternative to --objstore-parquet.config-file: the YAML itself.
    #[arg(id = "objstore-parquet.config", long = "objstore-parquet.config")]
    pub objstore_parquet_config: Option<String>,

    /// Repeat interval for syncing the blocks between local and remote view.
    #[arg(id = "sync-block-duration", long = "sync-block-duration", default_value = "15m", value_parser = values::duration)]
    pub sync_block_duration: Duration,

    /// How blocks are discovered in the bucket.
    #[arg(id = "block-discovery-strategy", long = "block-discovery-strategy", default_value = "concurrent", value_parser = ["concurrent", "recursive"])]
    pub block_discovery_strategy: String,

    /// Number of goroutines to use when constructing index-cache.json blocks from object storage (at least 1).
    #[arg(id = "block-sync-concurrency", long = "block-sync-concurrency", default_value = "20", value_parser = clap::value_parser!(u32).range(1..))]
    pub block_sync_concurrency: u32,

    /// Number of concurrent meta.json fetches.
    #[arg(
        id = "block-meta-fetch-concurrency",
        long = "block-meta-fetch-concurrency",
        default_value = "32"
    )]
    pub block_meta_fetch_concurrency: u32,

    /// Start of the time range served: RFC3339 or a relative duration (-6w, 2h45m).
    #[arg(id = "min-time", long = "min-time", default_value = "0000-01-01T00:00:00Z", value_parser = values::time_or_duration)]
    pub min_time: TimeOrDuration,

    /// End of the time range served: RFC3339 or a relative duration.
    #[arg(id = "max-time", long = "max-time", default_value = "9999-12-31T23:59:59Z", value_parser = values::time_or_duration)]
    pub max_time: TimeOrDuration,

    /// Path to a YAML file with relabeling configuration selecting blocks.
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

    /// Minimum age of blocks before they are loaded.
    #[arg(id = "consistency-delay", long = "consistency-delay", default_value = "0s", value_parser = values::duration)]
    pub consistency_delay: Duration,

    /// Duration after which blocks marked for deletion are hidden.
    #[arg(id = "ignore-deletion-marks-delay", long = "ignore-deletion-marks-delay", default_value = "24h", value_parser = values::duration)]
    pub ignore_deletion_marks_delay: Duration,

    /// Map index-headers lazily on first use and unload them when idle.
    #[arg(id = "store.enable-index-header-lazy-reader", long = "store.enable-index-header-lazy-reader", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub store_enable_index_header_lazy_reader: bool,

    /// Idle time after which a lazily loaded index-header is unloaded.
    #[arg(id = "store.index-header-lazy-reader-idle-timeout", long = "store.index-header-lazy-reader-idle-timeout", hide = true, default_value = "5m", value_parser = values::duration)]
    pub store_index_header_lazy_reader_idle_timeout: Duration,

    /// When index-headers are built.
    #[arg(id = "store.index-header-lazy-download-strategy", long = "store.index-header-lazy-download-strategy", default_value = "eager", value_parser = ["eager", "lazy"])]
    pub store_index_header_lazy_download_strategy: String,

    /// Fetch expanded postings lazily.
    #[arg(id = "store.enable-lazy-expanded-postings", long = "store.enable-lazy-expanded-postings", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub store_enable_lazy_expanded_postings: bool,

    /// Lazy-postings heuristic: max ratio of key series to fetched series.
    #[arg(
        id = "store.posting-group-max-key-series-ratio",
        long = "store.posting-group-max-key-series-ratio",
        default_value = "100"
    )]
    pub store_posting_group_max_key_series_ratio: f64,

    /// Disable the bucket web UI.
    #[arg(id = "web.disable", long = "web.disable", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub web_disable: bool,

    /// Static prefix for all HTML links and redirect URLs in the bucket UI.
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

    /// External block label used to group blocks in the bucket UI.
    #[arg(id = "bucket-web-label", long = "bucket-web-label")]
    pub bucket_web_label: Option<String>,

    /// Maximum number of cached matchers (0 disables the cache).
    #[arg(
        id = "matcher-cache-size",
        long = "matcher-cache-size",
        default_value = "0"
    )]
    pub matcher_cache_size: u32,

    /// Disable POST /api/v1/blocks/mark.
    #[arg(id = "disable-admin-operations", long = "disable-admin-operations", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub disable_admin_operations: bool,

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

    /// Path to the caching bucket YAML (hidden in Thanos).
    #[arg(
        id = "store.caching-bucket.config-file",
        long = "store.caching-bucket.config-file",
        hide = true,
        value_name = "FILE",
        conflicts_with = "store.caching-bucket.config"
    )]
    pub store_caching_bucket_config_file: Option<PathBuf>,

    /// Alternative to --store.caching-bucket.config-file: the YAML itself.
    #[arg(
        id = "store.caching-bucket.config",
        long = "store.caching-bucket.config",
        hide = true
    )]
    pub store_caching_bucket_config: Option<String>,

    /// Postings per series-fetch batch.
    #[arg(
        id = "debug.series-batch-size",
        long = "debug.series-batch-size",
        hide = true,
        default_value = "10000"
    )]
    pub debug_series_batch_size: u64,

    /// Estimated maximum series size in bytes.
    #[arg(
        id = "debug.estimated-max-series-size",
        long = "debug.estimated-max-series-size",
        hide = true,
        default_value = "65536"
    )]
    pub debug_estimated_max_series_size: u64,

    /// Estimated maximum chunk size in bytes.
    #[arg(
        id = "debug.estimated-max-chunk-size",
        long = "debug.estimated-max-chunk-size",
        hide = true,
        default_value = "16000"
    )]
    pub debug_estimated_max_chunk_size: u64,

    /// Sampling of posting offsets kept in memory per index-header.
    #[arg(
        id = "store.index-header-posting-offsets-in-mem-sampling",
        long = "store.index-header-posting-offsets-in-mem-sampling",
        hide = true,
        default_value = "32"
    )]
    pub store_index_header_posting_offsets_in_mem_sampling: u32,
}
