//! `thanos store`: the store gateway process (components.md §4).
//!
//! Builds the bucket from the objstore flags, a [`BucketStore`] from the remaining flags,
//! syncs once before going ready, re-syncs every `--sync-block-duration`, serves Store,
//! Info and health over gRPC and `/metrics`, `/-/healthy`, `/-/ready` over HTTP, and shuts
//! down in order on SIGTERM/SIGINT.

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use prometheus::Registry;
use thanos_proto::thanos::info::info_server::InfoServer;
use thanos_proto::thanos::store_server::StoreServer;
use thanos_server::{GrpcServer, HttpServer, Prober, RunGroup, shutdown_signal};
use thanos_store::{BucketStore, BucketStoreOptions, FilterOptions, IndexCacheConfig, Limits};
use tokio_util::sync::CancellationToken;

use crate::flags::objstore::read_pair;
use crate::flags::store::StoreFlags;

/// Runs `thanos store` until SIGTERM/SIGINT (or a fatal error).
pub fn run(flags: &StoreFlags) -> anyhow::Result<()> {
    let http = flags.http.options("http")?;
    let grpc = flags.grpc.options()?;
    let bucket_config = flags.objstore.bucket_config()?.ok_or_else(|| {
        anyhow!(
            "no object storage configured: --objstore.config-file or --objstore.config is required"
        )
    })?;
    let options = bucket_store_options(flags, now_ms())?;
    check_unimplemented(flags)?;
    let runtime = crate::runtime::half_core_runtime()?;
    runtime.block_on(serve(flags, bucket_config, options, http, grpc))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The selector relabel rules of `--selector.relabel-config(-file)` (empty when unset).
fn selector_relabel(
    flags: &StoreFlags,
) -> anyhow::Result<Vec<thanos_store::relabel::RelabelConfig>> {
    let Some(text) = read_pair(
        "selector.relabel-config",
        flags.selector_relabel_config_file.as_deref(),
        flags.selector_relabel_config.as_deref(),
    )?
    else {
        return Ok(Vec::new());
    };
    thanos_store::relabel::parse_yaml(&text)
        .context("invalid --selector.relabel-config-file / --selector.relabel-config")
}

/// The index cache of `--index-cache.config(-file)`, else an IN-MEMORY cache of
/// `--index-cache-size` bytes.
fn index_cache(flags: &StoreFlags) -> anyhow::Result<IndexCacheConfig> {
    match read_pair(
        "index-cache.config",
        flags.index_cache_config_file.as_deref(),
        flags.index_cache_config.as_deref(),
    )? {
        Some(text) => IndexCacheConfig::from_yaml(&text)
            .context("invalid --index-cache.config-file / --index-cache.config"),
        None => Ok(IndexCacheConfig::with_size(flags.index_cache_size)),
    }
}

/// Maps the flags onto [`BucketStoreOptions`]. Relative `--min-time`/`--max-time` are
/// resolved against `now_ms` once; the relabel and index cache configs are read and
/// validated.
pub fn bucket_store_options(flags: &StoreFlags, now_ms: i64) -> anyhow::Result<BucketStoreOptions> {
    let min_time = flags.min_time.resolve(now_ms);
    let max_time = flags.max_time.resolve(now_ms);
    if min_time > max_time {
        bail!("invalid argument: --min-time can't be greater than --max-time");
    }
    let relabel = selector_relabel(flags)?;
    let index_cache = index_cache(flags)?;
    // The deprecated --store.grpc.* limits apply when the newer --store.limits.* are unset.
    let series = if flags.limits.request_series > 0 {
        flags.limits.request_series
    } else {
        flags.store_grpc_touched_series_limit
    };
    let samples = if flags.limits.request_samples > 0 {
        flags.limits.request_samples
    } else {
        flags.store_grpc_series_sample_limit
    };
    let defaults = BucketStoreOptions::default();
    Ok(BucketStoreOptions {
        data_dir: flags.data_dir.clone(),
        filters: FilterOptions {
            min_time,
            max_time,
            consistency_delay: flags.consistency_delay,
            ignore_deletion_marks_delay: flags.ignore_deletion_marks_delay,
            meta_fetch_concurrency: usize_of(flags.block_meta_fetch_concurrency).max(1),
            relabel,
        },
        block_sync_concurrency: usize_of(flags.block_sync_concurrency).max(1),
        index_cache,
        limits: Limits {
            series,
            samples,
            bytes: flags.store_grpc_downloaded_bytes_limit,
        },
        series_max_concurrency: usize_of(flags.store_grpc_series_max_concurrency).max(1),
        postings_offsets_in_mem_sampling: usize_of(
            flags.store_index_header_posting_offsets_in_mem_sampling,
        )
        .max(1),
        estimated_max_series_size: flags.debug_estimated_max_series_size,
        estimated_max_chunk_size: flags.debug_estimated_max_chunk_size,
        series_batch_size: usize::try_from(flags.debug_series_batch_size)
            .unwrap_or(usize::MAX)
            .max(1),
        ..defaults
    })
}

fn usize_of(value: u32) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// Warns about the flags that are accepted but not implemented (ignoring them only costs
/// performance or UI; none changes which data is served).
fn check_unimplemented(flags: &StoreFlags) -> anyhow::Result<()> {
    let parquet = read_pair(
        "objstore-parquet.config",
        flags.objstore_parquet_config_file.as_deref(),
        flags.objstore_parquet_config.as_deref(),
    )?;
    if parquet.is_some() {
        tracing::warn!(
            flag = "--objstore-parquet.config",
            "accepted but not implemented: parquet-converted blocks are not skipped"
        );
    }
    for (name, file, inline) in [
        (
            "store.caching-bucket.config",
            flags.store_caching_bucket_config_file.as_deref(),
            flags.store_caching_bucket_config.as_deref(),
        ),
        (
            "request.logging-config",
            flags.request_logging_config_file.as_deref(),
            flags.request_logging_config.as_deref(),
        ),
    ] {
        if read_pair(name, file, inline)?.is_some() {
            tracing::warn!(
                flag = %format!("--{name}"),
                "accepted but not implemented; ignored"
            );
        }
    }
    let ignored_bools = [
        ("--cache-index-header", !flags.cache_index_header),
        (
            "--store.enable-index-header-lazy-reader",
            flags.store_enable_index_header_lazy_reader,
        ),
        (
            "--store.enable-lazy-expanded-postings",
            flags.store_enable_lazy_expanded_postings,
        ),
        ("--web.disable-cors", flags.web_disable_cors),
        ("--disable-admin-operations", flags.disable_admin_operations),
    ];
    for (flag, set) in ignored_bools {
        if set {
            tracing::warn!(flag, "accepted but not implemented; ignored");
        }
    }
    let ignored_values = [
        ("--chunk-pool-size", flags.chunk_pool_size != 2 << 30),
        (
            "--block-discovery-strategy",
            flags.block_discovery_strategy != "concurrent",
        ),
        (
            "--store.index-header-lazy-download-strategy",
            flags.store_index_header_lazy_download_strategy != "eager",
        ),
        (
            "--store.index-header-lazy-reader-idle-timeout",
            flags.store_index_header_lazy_reader_idle_timeout != Duration::from_secs(300),
        ),
        (
            "--store.posting-group-max-key-series-ratio",
            (flags.store_posting_group_max_key_series_ratio - 100.0).abs() > f64::EPSILON,
        ),
        ("--matcher-cache-size", flags.matcher_cache_size != 0),
        (
            "--web.external-prefix",
            !flags.web_external_prefix.is_empty(),
        ),
        ("--web.prefix-header", !flags.web_prefix_header.is_empty()),
        ("--bucket-web-label", flags.bucket_web_label.is_some()),
    ];
    for (flag, set) in ignored_values {
        if set {
            tracing::warn!(flag, "accepted but not implemented; ignored");
        }
    }
    Ok(())
}

async fn serve(
    flags: &StoreFlags,
    bucket_config: thanos_objstore::BucketConfig,
    options: BucketStoreOptions,
    http: thanos_server::HttpServerOptions,
    grpc: thanos_server::GrpcServerOptions,
) -> anyhow::Result<()> {
    let registry = Registry::new();
    let prober = Prober::new("store", &registry).context("register probe metrics")?;
    let bucket = bucket_config
        .build("store", &registry)
        .context("build the object storage bucket")?;
    tracing::info!(
        bucket = %bucket_config.bucket_name(),
        data_dir = %options.data_dir.display(),
        "starting store gateway"
    );
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("create --data-dir {}", options.data_dir.display()))?;
    let store = BucketStore::new(bucket, options, &registry).context("create the bucket store")?;

    let http_server = HttpServer::bind(http, prober.clone(), registry.clone(), axum::Router::new())
        .await
        .context("start the HTTP server")?;
    let grpc_server = GrpcServer::bind(grpc, prober.clone())
        .await
        .context("start the gRPC server")?
        .add_service(StoreServer::new(store.clone()))
        .add_service(InfoServer::new(store.clone()));
    prober.healthy();

    let mut group = RunGroup::new(prober.clone());
    let token = group.token();
    group.spawn("http", http_server.run(token.clone()));
    group.spawn("grpc", grpc_server.run(token.clone()));
    group.spawn(
        "bucket-sync",
        sync_loop(store, prober, flags.sync_block_duration, token),
    );
    group
        .run(async {
            if let Err(err) = shutdown_signal().await {
                tracing::error!(err = %err, "cannot listen for signals");
            }
        })
        .await
        .context("store gateway")
}

/// The initial sync (retried until it succeeds; the store turns ready then) followed by
/// a re-sync every `interval`. Failed re-syncs keep the loaded blocks and are retried.
async fn sync_loop(
    store: BucketStore,
    prober: Prober,
    interval: Duration,
    token: CancellationToken,
) -> anyhow::Result<()> {
    let retry = Duration::from_secs(5).min(interval.max(Duration::from_millis(100)));
    loop {
        let started = std::time::Instant::now();
        match store.sync().await {
            Ok(summary) => {
                tracing::info!(
                    loaded = summary.loaded,
                    added = summary.added.len(),
                    removed = summary.removed.len(),
                    failed = summary.failed.len(),
                    elapsed = ?started.elapsed(),
                    "initial bucket sync done"
                );
                break;
            }
            Err(err) => tracing::error!(err = %err, "initial bucket sync failed, retrying"),
        }
        tokio::select! {
            () = token.cancelled() => return Ok(()),
            () = tokio::time::sleep(retry) => {}
        }
    }
    prober.ready();
    if interval.is_zero() {
        token.cancelled().await;
        return Ok(());
    }
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = token.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        match store.sync().await {
            Ok(summary) => tracing::debug!(
                loaded = summary.loaded,
                added = summary.added.len(),
                removed = summary.removed.len(),
                failed = summary.failed.len(),
                "bucket sync done"
            ),
            Err(err) => tracing::warn!(err = %err, "bucket sync failed, keeping loaded blocks"),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::{Cli, Command};

    fn flags(args: &[&str]) -> StoreFlags {
        let mut all = vec!["thanos", "store"];
        all.extend(args);
        match Cli::try_parse_from(all).unwrap().command {
            Command::Store(flags) => *flags,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_map_onto_options() {
        let options = bucket_store_options(
            &flags(&[
                "--data-dir=/tmp/s",
                "--min-time=2020-01-01T00:00:00Z",
                "--max-time=-1h",
                "--consistency-delay=30m",
                "--ignore-deletion-marks-delay=2h",
                "--block-sync-concurrency=3",
                "--block-meta-fetch-concurrency=5",
                "--index-cache-size=1MB",
                "--store.grpc.touched-series-limit=10",
                "--store.grpc.series-sample-limit=1200",
                "--store.grpc.downloaded-bytes-limit=1KB",
                "--store.grpc.series-max-concurrency=7",
            ]),
            1_609_459_200_000,
        )
        .unwrap();
        assert_eq!(options.data_dir, std::path::PathBuf::from("/tmp/s"));
        assert_eq!(options.filters.min_time, 1_577_836_800_000);
        assert_eq!(options.filters.max_time, 1_609_459_200_000 - 3_600_000);
        assert_eq!(options.filters.consistency_delay, Duration::from_secs(1800));
        assert_eq!(
            options.filters.ignore_deletion_marks_delay,
            Duration::from_secs(7200)
        );
        assert_eq!(options.filters.meta_fetch_concurrency, 5);
        assert_eq!(options.block_sync_concurrency, 3);
        assert_eq!(options.index_cache, IndexCacheConfig::with_size(1 << 20));
        assert!(options.filters.relabel.is_empty());
        assert_eq!(
            options.limits,
            Limits {
                series: 10,
                samples: 1200,
                bytes: 1024
            }
        );
        assert_eq!(options.series_max_concurrency, 7);
    }

    #[test]
    fn new_limits_flags_win_over_deprecated_ones() {
        let options = bucket_store_options(
            &flags(&[
                "--store.grpc.touched-series-limit=10",
                "--store.limits.request-series=20",
                "--store.limits.request-samples=240",
            ]),
            0,
        )
        .unwrap();
        assert_eq!(options.limits.series, 20);
        assert_eq!(options.limits.samples, 240);
    }

    #[test]
    fn inverted_time_range_is_rejected() {
        let err = bucket_store_options(
            &flags(&[
                "--min-time=2021-01-01T00:00:00Z",
                "--max-time=2020-01-01T00:00:00Z",
            ]),
            0,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--min-time"), "{err}");
    }

    #[test]
    fn selector_relabel_config_is_parsed() {
        let options = bucket_store_options(
            &flags(&[
                "--selector.relabel-config=- action: hashmod\n  source_labels: [__block_id]\n  target_label: shard\n  modulus: 2\n- action: keep\n  source_labels: [shard]\n  regex: 1",
            ]),
            0,
        )
        .unwrap();
        assert_eq!(options.filters.relabel.len(), 2);
        assert_eq!(options.filters.relabel[0].modulus, 2);
        let err = bucket_store_options(
            &flags(&["--selector.relabel-config=- action: hashmod\n  target_label: x"]),
            0,
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("--selector.relabel-config"), "{msg}");
        assert!(msg.contains("modulus"), "{msg}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relabel.yaml");
        std::fs::write(
            &file,
            "- action: keep\n  source_labels: [region]\n  regex: eu\n",
        )
        .unwrap();
        let arg = format!("--selector.relabel-config-file={}", file.display());
        let options = bucket_store_options(&flags(&[&arg]), 0).unwrap();
        assert_eq!(options.filters.relabel.len(), 1);
        let missing = format!(
            "--selector.relabel-config-file={}",
            dir.path().join("nope").display()
        );
        let err = bucket_store_options(&flags(&[&missing]), 0).unwrap_err();
        assert!(
            format!("{err:#}").contains("--selector.relabel-config-file"),
            "{err:#}"
        );
    }

    #[test]
    fn index_cache_config_is_parsed() {
        let options = bucket_store_options(
            &flags(&[
                "--index-cache-size=1MB",
                "--index-cache.config=type: IN-MEMORY\nconfig:\n  max_size: 64MB\n  max_item_size: 1MB\n  enabled_items: [Postings]",
            ]),
            0,
        )
        .unwrap();
        assert_eq!(options.index_cache.max_size, 64 << 20);
        assert_eq!(options.index_cache.max_item_size, 1 << 20);
        assert_eq!(
            options.index_cache.enabled_items,
            vec![thanos_store::ItemType::Postings]
        );
        for (yaml, needle) in [
            (
                "type: MEMCACHED\nconfig:\n  addresses: [localhost:11211]",
                "MEMCACHED is not supported",
            ),
            (
                "type: REDIS\nconfig:\n  addr: localhost:6379",
                "REDIS is not supported",
            ),
            ("type: IN-MEMORY\nconfig:\n  max_size: lots", "max_size"),
        ] {
            let arg = format!("--index-cache.config={yaml}");
            let err = bucket_store_options(&flags(&[&arg]), 0).unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains(needle), "{msg}");
            assert!(msg.contains("--index-cache.config"), "{msg}");
        }
        check_unimplemented(&flags(&["--index-cache.config=type: IN-MEMORY"])).unwrap();
    }
}
