//! Thanos object storage client: the objstore YAML configuration (`--objstore.config-file` /
//! `--objstore.config`) mapped onto [`object_store`] clients, wrapped with retries and
//! Thanos-compatible metrics.
//!
//! Mirrors the Go module `github.com/thanos-io/objstore`: its client factory (`client.NewBucket`,
//! the per-provider `Config` structs of `providers/{s3,gcs,azure,filesystem}`) and its bucket
//! wrappers (`objstore.WrapWithMetrics`, prefixed bucket).
//!
//! * [`BucketConfig::parse`] / [`BucketConfig::from_flags`] read the YAML (`type`, `config`,
//!   `prefix`, `hedging_config`) with strict key checking and `$(VAR)` environment substitution.
//!   Types `S3`, `GCS`, `AZURE` and `FILESYSTEM` are supported (case-insensitively); the other
//!   Thanos types are rejected with a pointer to their S3-compatible endpoints.
//! * [`BucketConfig::build`] builds a [`Bucket`]: every call is retried on transient errors
//!   ([`RetryPolicy`]) and counted in the `thanos_objstore_bucket_*` metrics
//!   ([`BucketMetrics`]), with the `operation` label values `get`, `get_range`, `exists`,
//!   `upload`, `delete`, `iter` and `attributes`.
//!
//! ```no_run
//! # async fn demo() -> thanos_objstore::Result<()> {
//! use thanos_objstore::{BucketConfig, Path};
//! let cfg = BucketConfig::parse("type: FILESYSTEM\nconfig:\n  directory: /tmp/thanos\n")?;
//! let bucket = cfg.build("store", &prometheus::Registry::new())?;
//! bucket.upload(&Path::from("01ABC/meta.json"), "{}".into()).await?;
//! assert!(bucket.exists(&Path::from("01ABC/meta.json")).await?);
//! # Ok(())
//! # }
//! ```

mod bucket;
mod build;
mod config;
mod error;
mod metrics;

pub use bucket::{Bucket, Operation, RetryPolicy, UploadOptions};
pub use config::{BucketConfig, HedgingConfig, ProviderKind};
pub use error::{Error, Result};
pub use metrics::BucketMetrics;
pub use object_store;
pub use object_store::path::Path;
