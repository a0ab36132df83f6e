//! `thanos store`: flag validation and (later) wiring of the store gateway.

use anyhow::{anyhow, bail};

use crate::flags::objstore::read_pair;
use crate::flags::store::StoreFlags;

/// Validates every flag of `thanos store`, then reports that the component is not
/// implemented yet.
pub fn run(flags: &StoreFlags) -> anyhow::Result<()> {
    let _http = flags.http.options("http")?;
    let _grpc = flags.grpc.options()?;
    let bucket = flags.objstore.bucket_config()?.ok_or_else(|| {
        anyhow!(
            "no object storage configured: --objstore.config-file or --objstore.config is required"
        )
    })?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    if flags.min_time.resolve(now_ms) > flags.max_time.resolve(now_ms) {
        bail!("invalid argument: --min-time can't be greater than --max-time");
    }
    read_pair(
        "objstore-parquet",
        flags.objstore_parquet_config_file.as_deref(),
        flags.objstore_parquet_config.as_deref(),
    )?;
    read_pair(
        "index-cache",
        flags.index_cache_config_file.as_deref(),
        flags.index_cache_config.as_deref(),
    )?;
    read_pair(
        "selector.relabel",
        flags.selector_relabel_config_file.as_deref(),
        flags.selector_relabel_config.as_deref(),
    )?;
    read_pair(
        "store.caching-bucket",
        flags.store_caching_bucket_config_file.as_deref(),
        flags.store_caching_bucket_config.as_deref(),
    )?;
    read_pair(
        "request.logging",
        flags.request_logging_config_file.as_deref(),
        flags.request_logging_config.as_deref(),
    )?;
    tracing::info!(bucket = %bucket.bucket_name(), "store flags validated");
    Err(crate::not_implemented())
}
