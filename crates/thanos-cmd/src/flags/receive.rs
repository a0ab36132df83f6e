//! `thanos receive` flags (components.md §3.2).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};
use thanos_server::TlsVersion;

use super::client_tls::RemoteWriteClientFlags;
use super::grpc::GrpcServerFlags;
use super::http::HttpFlags;
use super::limits::StoreLimitsFlags;
use super::objstore::ObjstoreFlags;
use super::values;

/// Every flag of `thanos receive`.
#[derive(Debug, Clone, Args)]
pub struct ReceiveFlags {
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
    #[command(flatten)]
    #[allow(missing_docs)]
    pub client: RemoteWriteClientFlags,

    /// Address to listen on for remote write requests.
    #[arg(
        id = "remote-write.address",
        long = "remote-write.address",
        default_value = "0.0.0.0:19291"
    )]
    pub remote_write_address: String,

    /// TLS Certificate for HTTP server, leave blank to disable TLS.
    #[arg(
        id = "remote-write.server-tls-cert",
        long = "remote-write.server-tls-cert"
    )]
    pub remote_write_server_tls_cert: Option<PathBuf>,

    /// TLS Key for the HTTP server, leave blank to disable TLS.
    #[arg(
        id = "remote-write.server-tls-key",
        long = "remote-write.server-tls-key"
    )]
    pub remote_write_server_tls_key: Option<PathBuf>,

    /// TLS CA to verify clients against (mTLS).
    #[arg(
        id = "remote-write.server-tls-client-ca",
        long = "remote-write.server-tls-client-ca"
    )]
    pub remote_write_server_tls_client_ca: Option<PathBuf>,

    /// TLS version for the remote-write server (1.2 and 1.3 are supported).
    #[arg(id = "remote-write.server-tls-min-version", long = "remote-write.server-tls-min-version", default_value = "1.3", value_parser = values::tls_version)]
    pub remote_write_server_tls_min_version: TlsVersion,

    /// TLS cipher suites for the remote-write server (accepted; rustls chooses its own).
    #[arg(id = "remote-write.server-tls-ciphers", long = "remote-write.server-tls-ciphers", action = ArgAction::Append)]
    pub remote_write_server_tls_ciphers: Vec<String>,

    /// TLS curves for the remote-write server (accepted; rustls chooses its own).
    #[arg(id = "remote-write.server-tls-curves", long = "remote-write.server-tls-curves", action = ArgAction::Append)]
    pub remote_write_server_tls_curves: Vec<String>,

    /// Data directory of TSDB (one sub-directory per tenant).
    #[arg(id = "tsdb.path", long = "tsdb.path", default_value = "./data")]
    pub tsdb_path: PathBuf,

    /// External labels to announce, `name="value"` (repeatable; at least one is required).
    #[arg(id = "label", long = "label", value_name = "key=\"value\"", action = ArgAction::Append)]
    pub labels: Vec<String>,

    /// How long to retain raw samples on local storage; 0d means infinite.
    #[arg(id = "tsdb.retention", long = "tsdb.retention", default_value = "15d", value_parser = values::duration)]
    pub tsdb_retention: Duration,

    /// Path to file that contains the hashring configuration.
    #[arg(
        id = "receive.hashrings-file",
        long = "receive.hashrings-file",
        value_name = "FILE",
        conflicts_with = "receive.hashrings"
    )]
    pub receive_hashrings_file: Option<PathBuf>,

    /// Alternative to --receive.hashrings-file: the hashring JSON itself.
    #[arg(id = "receive.hashrings", long = "receive.hashrings")]
    pub receive_hashrings: Option<String>,

    /// The algorithm used when distributing series in the hashrings.
    #[arg(id = "receive.hashrings-algorithm", long = "receive.hashrings-algorithm", default_value = "hashmod", value_parser = ["hashmod", "ketama"])]
    pub receive_hashrings_algorithm: String,

    /// Refresh interval to re-read the hashring configuration file.
    #[arg(id = "receive.hashrings-file-refresh-interval", long = "receive.hashrings-file-refresh-interval", default_value = "5m", value_parser = values::duration)]
    pub receive_hashrings_file_refresh_interval: Duration,

    /// Endpoint of local receive node, as written in the hashring configuration.
    #[arg(id = "receive.local-endpoint", long = "receive.local-endpoint")]
    pub receive_local_endpoint: Option<String>,

    /// HTTP header to determine tenant for write requests.
    #[arg(
        id = "receive.tenant-header",
        long = "receive.tenant-header",
        default_value = "THANOS-TENANT"
    )]
    pub receive_tenant_header: String,

    /// Use TLS client's certificate field to determine tenant for write requests.
    #[arg(id = "receive.tenant-certificate-field", long = "receive.tenant-certificate-field", default_value = "", value_parser = ["", "organization", "organizationalUnit", "commonName"])]
    pub receive_tenant_certificate_field: String,

    /// Default tenant ID to use when none is provided via a header.
    #[arg(
        id = "receive.default-tenant-id",
        long = "receive.default-tenant-id",
        default_value = "default-tenant"
    )]
    pub receive_default_tenant_id: String,

    /// Label name through which the request will be split into multiple tenants.
    #[arg(
        id = "receive.split-tenant-label-name",
        long = "receive.split-tenant-label-name",
        default_value = ""
    )]
    pub receive_split_tenant_label_name: String,

    /// Label name through which the tenant will be announced.
    #[arg(
        id = "receive.tenant-label-name",
        long = "receive.tenant-label-name",
        default_value = "tenant_id"
    )]
    pub receive_tenant_label_name: String,

    /// HTTP header specifying the replica number of a write request.
    #[arg(
        id = "receive.replica-header",
        long = "receive.replica-header",
        default_value = "THANOS-REPLICA"
    )]
    pub receive_replica_header: String,

    /// Number of concurrent workers processing forwarding of remote-write requests.
    #[arg(
        id = "receive.forward.async-workers",
        long = "receive.forward.async-workers",
        default_value = "5"
    )]
    pub receive_forward_async_workers: u32,

    /// Compression algorithm to use for gRPC requests to other receivers.
    #[arg(id = "receive.grpc-compression", long = "receive.grpc-compression", default_value = "snappy", value_parser = ["snappy", "none"])]
    pub receive_grpc_compression: String,

    /// How many times to replicate incoming write requests.
    #[arg(
        id = "receive.replication-factor",
        long = "receive.replication-factor",
        default_value = "1"
    )]
    pub receive_replication_factor: u64,

    /// The protocol to use for replicating remote-write requests.
    #[arg(id = "receive.replication-protocol", long = "receive.replication-protocol", default_value = "protobuf", value_parser = ["protobuf", "capnproto"])]
    pub receive_replication_protocol: String,

    /// Address for the Cap'n Proto server.
    #[arg(
        id = "receive.capnproto-address",
        long = "receive.capnproto-address",
        default_value = "0.0.0.0:19391"
    )]
    pub receive_capnproto_address: String,

    /// gRPC service configuration (JSON) for peer clients.
    #[arg(
        id = "receive.grpc-service-config",
        long = "receive.grpc-service-config",
        default_value = ""
    )]
    pub receive_grpc_service_config: String,

    /// Path to a YAML file with relabeling configuration applied to incoming series.
    #[arg(
        id = "receive.relabel-config-file",
        long = "receive.relabel-config-file",
        value_name = "FILE",
        conflicts_with = "receive.relabel-config"
    )]
    pub receive_relabel_config_file: Option<PathBuf>,

    /// Alternative to --receive.relabel-config-file: the relabel YAML itself.
    #[arg(id = "receive.relabel-config", long = "receive.relabel-config")]
    pub receive_relabel_config: Option<String>,

    /// Reject samples further in the future than now + this window (0s disables the check).
    #[arg(id = "tsdb.too-far-in-future.time-window", long = "tsdb.too-far-in-future.time-window", default_value = "0s", value_parser = values::duration)]
    pub tsdb_too_far_in_future_time_window: Duration,

    /// Accept out-of-order samples within this window (experimental).
    #[arg(id = "tsdb.out-of-order.time-window", long = "tsdb.out-of-order.time-window", default_value = "0s", value_parser = values::duration)]
    pub tsdb_out_of_order_time_window: Duration,

    /// Maximum number of out-of-order samples per chunk (0 means the TSDB default, 32).
    #[arg(
        id = "tsdb.out-of-order.cap-max",
        long = "tsdb.out-of-order.cap-max",
        default_value = "0"
    )]
    pub tsdb_out_of_order_cap_max: i64,

    /// Allow overlapping blocks (no-op; always allowed).
    #[arg(id = "tsdb.allow-overlapping-blocks", long = "tsdb.allow-overlapping-blocks", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub tsdb_allow_overlapping_blocks: bool,

    /// Maximum number of bytes that can be stored for blocks (0 = no size limit).
    #[arg(id = "tsdb.max-retention-bytes", long = "tsdb.max-retention-bytes", default_value = "0", value_parser = values::bytes)]
    pub tsdb_max_retention_bytes: u64,

    /// Compress the TSDB write-ahead log with snappy (use --no-tsdb.wal-compression to disable).
    #[arg(id = "tsdb.wal-compression", long = "tsdb.wal-compression", default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub tsdb_wal_compression: bool,

    /// Do not create a lockfile in the TSDB data directory.
    #[arg(id = "tsdb.no-lockfile", long = "tsdb.no-lockfile", default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub tsdb_no_lockfile: bool,

    /// Size of the head expanded-postings cache (experimental, 0 disables).
    #[arg(
        id = "tsdb.head.expanded-postings-cache-size",
        long = "tsdb.head.expanded-postings-cache-size",
        default_value = "0"
    )]
    pub tsdb_head_expanded_postings_cache_size: u64,

    /// Size of the block expanded-postings cache (experimental, 0 disables).
    #[arg(
        id = "tsdb.block.expanded-postings-cache-size",
        long = "tsdb.block.expanded-postings-cache-size",
        default_value = "0"
    )]
    pub tsdb_block_expanded_postings_cache_size: u64,

    /// Maximum number of exemplars stored per tenant (0 drops exemplars).
    #[arg(
        id = "tsdb.max-exemplars",
        long = "tsdb.max-exemplars",
        default_value = "0"
    )]
    pub tsdb_max_exemplars: i64,

    /// Deprecated no-op: native histograms are always enabled.
    #[arg(id = "tsdb.enable-native-histograms", long = "tsdb.enable-native-histograms", default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub tsdb_enable_native_histograms: bool,

    /// Hash function for the files of uploaded blocks ("" or SHA256).
    #[arg(id = "hash-func", long = "hash-func", default_value = "", value_parser = ["", "SHA256"])]
    pub hash_func: String,

    /// Number of goroutines to use when uploading block files (0 = sequential).
    #[arg(
        id = "shipper.upload-concurrency",
        long = "shipper.upload-concurrency",
        default_value = "0"
    )]
    pub shipper_upload_concurrency: u32,

    /// Maximum number of cached matchers (0 disables the cache).
    #[arg(
        id = "matcher-cache-size",
        long = "matcher-cache-size",
        default_value = "0"
    )]
    pub matcher_cache_size: u32,

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

    /// Translate OTLP resource attributes into a target_info metric.
    #[arg(id = "receive.otlp-enable-target-info", long = "receive.otlp-enable-target-info", default_value = "true", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub receive_otlp_enable_target_info: bool,

    /// OTLP resource attributes promoted to labels (repeatable).
    #[arg(id = "receive.otlp-promote-resource-attributes", long = "receive.otlp-promote-resource-attributes", action = ArgAction::Append)]
    pub receive_otlp_promote_resource_attributes: Vec<String>,

    /// Experimental features to enable (metric-names-filter).
    #[arg(id = "enable-feature", long = "enable-feature", action = ArgAction::Append)]
    pub enable_feature: Vec<String>,

    /// Maximum buffered responses per store in lazy retrieval.
    #[arg(
        id = "receive.lazy-retrieval-max-buffered-responses",
        long = "receive.lazy-retrieval-max-buffered-responses",
        default_value = "20"
    )]
    pub receive_lazy_retrieval_max_buffered_responses: u32,

    /// Path to the limits/gates YAML (hidden in Thanos).
    #[arg(
        id = "receive.limits-config-file",
        long = "receive.limits-config-file",
        hide = true,
        value_name = "FILE",
        conflicts_with = "receive.limits-config"
    )]
    pub receive_limits_config_file: Option<PathBuf>,

    /// Alternative to --receive.limits-config-file: the YAML itself.
    #[arg(
        id = "receive.limits-config",
        long = "receive.limits-config",
        hide = true
    )]
    pub receive_limits_config: Option<String>,

    /// How often to re-read the limits configuration.
    #[arg(id = "receive.limits-config-reload-timer", long = "receive.limits-config-reload-timer", hide = true, default_value = "1s", value_parser = values::duration)]
    pub receive_limits_config_reload_timer: Duration,

    /// Minimum duration of the head block before it is cut.
    #[arg(id = "tsdb.min-block-duration", long = "tsdb.min-block-duration", hide = true, default_value = "2h", value_parser = values::duration)]
    pub tsdb_min_block_duration: Duration,

    /// Maximum duration of blocks.
    #[arg(id = "tsdb.max-block-duration", long = "tsdb.max-block-duration", hide = true, default_value = "2h", value_parser = values::duration)]
    pub tsdb_max_block_duration: Duration,

    /// Deadline of the whole fan-out of a forwarded write request.
    #[arg(id = "receive-forward-timeout", long = "receive-forward-timeout", hide = true, default_value = "5s", value_parser = values::duration)]
    pub receive_forward_timeout: Duration,

    /// Maximum backoff for a peer that answered Unavailable.
    #[arg(id = "receive-forward-max-backoff", long = "receive-forward-max-backoff", hide = true, default_value = "5s", value_parser = values::duration)]
    pub receive_forward_max_backoff: Duration,

    /// Artificial delay added to every write (testing only).
    #[arg(id = "receive.artificial-max-delay", long = "receive.artificial-max-delay", hide = true, default_value = "0s", value_parser = values::duration)]
    pub receive_artificial_max_delay: Duration,

    /// Size of the TSDB write queue (0 disables it).
    #[arg(
        id = "tsdb.write-queue-size",
        long = "tsdb.write-queue-size",
        hide = true,
        default_value = "0"
    )]
    pub tsdb_write_queue_size: i64,

    /// Snapshot the head in memory on shutdown.
    #[arg(id = "tsdb.memory-snapshot-on-shutdown", long = "tsdb.memory-snapshot-on-shutdown", hide = true, default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub tsdb_memory_snapshot_on_shutdown: bool,

    /// Allow the shipper to upload blocks out of order.
    #[arg(id = "shipper.allow-out-of-order-uploads", long = "shipper.allow-out-of-order-uploads", hide = true, default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub shipper_allow_out_of_order_uploads: bool,

    /// Skip corrupted blocks instead of failing the upload.
    #[arg(id = "shipper.skip-corrupted-blocks", long = "shipper.skip-corrupted-blocks", hide = true, default_value = "false", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub shipper_skip_corrupted_blocks: bool,
}
