//! Metrics of the store gateway, named as Thanos names them (`thanos_blocks_meta_*`,
//! `thanos_bucket_store_*`).

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Sync states exported by `thanos_blocks_meta_synced{state}`.
pub const SYNC_STATES: &[&str] = &[
    "loaded",
    "failed",
    "no-meta-json",
    "corrupted-meta-json",
    "label-excluded",
    "time-excluded",
    "too-fresh",
    "duplicate",
    "marked-for-deletion",
    "marked-for-no-compact",
    "marked-for-no-downsample",
    "parquet-migrated",
    "replica-label-removed",
];

/// Registered metric handles.
#[derive(Debug, Clone)]
pub(crate) struct StoreMetrics {
    pub(crate) meta_synced: IntGaugeVec,
    pub(crate) meta_syncs: IntCounter,
    pub(crate) meta_sync_failures: IntCounter,
    pub(crate) blocks_loaded: IntGauge,
    pub(crate) block_loads: IntCounter,
    pub(crate) block_load_failures: IntCounter,
    pub(crate) block_drops: IntCounter,
    pub(crate) queries_dropped: IntCounterVec,
    pub(crate) series_blocks_queried: Histogram,
    pub(crate) series_get_all_duration: Histogram,
    pub(crate) series_data_fetched: IntCounterVec,
}

impl StoreMetrics {
    pub(crate) fn new(registry: &Registry) -> prometheus::Result<Self> {
        let meta_synced = IntGaugeVec::new(
            Opts::new(
                "thanos_blocks_meta_synced",
                "Number of block metadata synced",
            ),
            &["state"],
        )?;
        for s in SYNC_STATES {
            meta_synced.with_label_values(&[s]).set(0);
        }
        let meta_syncs = IntCounter::new(
            "thanos_blocks_meta_syncs_total",
            "Total blocks metadata synchronization attempts",
        )?;
        let meta_sync_failures = IntCounter::new(
            "thanos_blocks_meta_sync_failures_total",
            "Total blocks metadata synchronization failures",
        )?;
        let blocks_loaded = IntGauge::new(
            "thanos_bucket_store_blocks_loaded",
            "Number of currently loaded blocks.",
        )?;
        let block_loads = IntCounter::new(
            "thanos_bucket_store_block_loads_total",
            "Total number of remote block loading attempts.",
        )?;
        let block_load_failures = IntCounter::new(
            "thanos_bucket_store_block_load_failures_total",
            "Total number of failed remote block loading attempts.",
        )?;
        let block_drops = IntCounter::new(
            "thanos_bucket_store_block_drops_total",
            "Total number of local blocks that were dropped.",
        )?;
        let queries_dropped = IntCounterVec::new(
            Opts::new(
                "thanos_bucket_store_queries_dropped_total",
                "Number of queries that were dropped due to the limit.",
            ),
            &["reason"],
        )?;
        let series_blocks_queried = Histogram::with_opts(
            HistogramOpts::new(
                "thanos_bucket_store_series_blocks_queried",
                "Number of blocks in a bucket store that were touched to satisfy a query.",
            )
            .buckets(prometheus::exponential_buckets(1.0, 2.0, 10)?),
        )?;
        let series_get_all_duration = Histogram::with_opts(HistogramOpts::new(
            "thanos_bucket_store_series_get_all_duration_seconds",
            "Time it takes until all per-block prepares and loads for a query are finished.",
        ))?;
        let series_data_fetched = IntCounterVec::new(
            Opts::new(
                "thanos_bucket_store_series_data_fetched_bytes_total",
                "Bytes of data fetched from the bucket to answer queries, per data type.",
            ),
            &["data_type"],
        )?;
        registry.register(Box::new(meta_synced.clone()))?;
        registry.register(Box::new(meta_syncs.clone()))?;
        registry.register(Box::new(meta_sync_failures.clone()))?;
        registry.register(Box::new(blocks_loaded.clone()))?;
        registry.register(Box::new(block_loads.clone()))?;
        registry.register(Box::new(block_load_failures.clone()))?;
        registry.register(Box::new(block_drops.clone()))?;
        registry.register(Box::new(queries_dropped.clone()))?;
        registry.register(Box::new(series_blocks_queried.clone()))?;
        registry.register(Box::new(series_get_all_duration.clone()))?;
        registry.register(Box::new(series_data_fetched.clone()))?;
        Ok(Self {
            meta_synced,
            meta_syncs,
            meta_sync_failures,
            blocks_loaded,
            block_loads,
            block_load_failures,
            block_drops,
            queries_dropped,
            series_blocks_queried,
            series_get_all_duration,
            series_data_fetched,
        })
    }
}
