//! Receive's block lifecycle (components.md §3.7): periodic head compaction, retention,
//! one shipper per tenant, and the shutdown flush.
//!
//! * A compaction task checks every tenant head at a fraction of the block duration
//!   (`--tsdb.min-block-duration` / 10, between 1 s and 30 s; the check is two atomic
//!   loads) and cuts aligned blocks while a head spans more than 1.5 block durations,
//!   then deletes local blocks beyond `--tsdb.retention` (relative to the newest block;
//!   with a bucket, only blocks the shipper recorded as uploaded).
//! * With `--objstore.config(-file)`, a shipper per tenant (labels: the `--label`s plus
//!   the tenant label, `source: receive`) syncs at start, every 30 s and right after a
//!   cut. An unreachable bucket only delays uploads: blocks stay local until shipped.
//! * On shutdown (after the remote-write server stopped): every head is flushed into
//!   blocks, then one final sync uploads them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use prometheus::Registry;
use thanos_model::Labels;
use thanos_objstore::Bucket;
use thanos_receive::MultiTsdb;
use thanos_server::RunGroup;
use thanos_shipper::{
    DEFAULT_SYNC_INTERVAL, SYNC_TIMEOUT, Shipper, ShipperMetrics, ShipperOptions,
};
use tokio::sync::Notify;
use ulid::Ulid;

/// Settings of the block lifecycle, from the flags.
#[derive(Debug, Clone)]
pub struct BlockLifecycle {
    /// `--label`s.
    pub external: Labels,
    /// `--receive.tenant-label-name`.
    pub tenant_label: String,
    /// `--tsdb.min-block-duration`.
    pub block_duration: Duration,
    /// `--tsdb.retention` (zero: keep blocks forever).
    pub retention: Duration,
    /// The bucket config, when uploads are enabled.
    pub bucket: Option<thanos_objstore::BucketConfig>,
}

/// One shipper per tenant, created on first use.
struct Shippers {
    bucket: Bucket,
    external: Labels,
    tenant_label: String,
    registry: Registry,
    by_tenant: Mutex<HashMap<String, Shipper>>,
}

impl Shippers {
    fn tenant_labels(&self, tenant: &str) -> Labels {
        let mut b = self.external.builder();
        b.set(self.tenant_label.clone(), tenant);
        b.build()
    }

    /// The shipper of `tenant` (directory `dir`), created on first use.
    fn get(&self, tenant: &str, dir: &std::path::Path) -> anyhow::Result<Shipper> {
        let mut map = self
            .by_tenant
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = map.get(tenant) {
            return Ok(s.clone());
        }
        let metrics = ShipperMetrics::with_const_labels(&self.registry, &[("tenant", tenant)])
            .with_context(|| format!("register shipper metrics of tenant {tenant}"))?;
        let labels = self.tenant_labels(tenant);
        let shipper = Shipper::new(
            dir.to_path_buf(),
            self.bucket.clone(),
            move || labels.clone(),
            ShipperOptions {
                source: thanos_receive::tenant::BLOCK_SOURCE.to_owned(),
                ..ShipperOptions::default()
            },
            metrics,
        );
        map.insert(tenant.to_owned(), shipper.clone());
        Ok(shipper)
    }

    /// Syncs every persisted tenant; failures are logged (blocks stay local and are
    /// retried). Returns whether every sync completed.
    async fn sync_all(&self, tsdb: &MultiTsdb) -> bool {
        let mut complete = true;
        for tenant in tsdb.all_tenants() {
            let Some(dir) = tenant.dir() else {
                continue;
            };
            let shipper = match self.get(tenant.name(), dir) {
                Ok(s) => s,
                Err(err) => {
                    tracing::error!(tenant = tenant.name(), err = %err, "create shipper");
                    complete = false;
                    continue;
                }
            };
            match tokio::time::timeout(SYNC_TIMEOUT, shipper.sync()).await {
                Ok(Ok(report)) => {
                    if !report.uploaded.is_empty() {
                        tracing::info!(tenant = tenant.name(), blocks = ?report.uploaded,
                            "uploaded blocks");
                    }
                    complete &= report.is_complete();
                }
                Ok(Err(err)) => {
                    tracing::warn!(tenant = tenant.name(), err = %err,
                        "upload failed; blocks stay local and are retried");
                    complete = false;
                }
                Err(_) => {
                    tracing::warn!(tenant = tenant.name(), "upload timed out; retried later");
                    complete = false;
                }
            }
        }
        complete
    }

    /// The blocks recorded as uploaded for `tenant` (empty when unknown).
    fn uploaded(&self, tenant: &str) -> Vec<Ulid> {
        let map = self
            .by_tenant
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(tenant)
            .and_then(|s| {
                s.uploaded()
                    .inspect_err(|e| {
                        tracing::warn!(tenant, err = %e, "read shipper progress");
                    })
                    .ok()
            })
            .unwrap_or_default()
    }
}

/// How often the compaction task checks the heads.
fn compaction_interval(block_duration: Duration) -> Duration {
    (block_duration / 10).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// Starts compaction, retention and shipping for `tsdb` in `group`, and registers the
/// shutdown hook that flushes every head and ships the result.
pub fn start(
    lifecycle: BlockLifecycle,
    tsdb: Arc<MultiTsdb>,
    registry: &Registry,
    group: &mut RunGroup,
) -> anyhow::Result<()> {
    tsdb.set_block_labels(lifecycle.external.clone(), &lifecycle.tenant_label);
    let shippers = match &lifecycle.bucket {
        Some(config) => {
            let bucket = config
                .build("receive", registry)
                .context("build the object storage bucket")?;
            tracing::info!(bucket = %config.bucket_name(), "uploading blocks");
            Some(Arc::new(Shippers {
                bucket,
                external: lifecycle.external.clone(),
                tenant_label: lifecycle.tenant_label.clone(),
                registry: registry.clone(),
                by_tenant: Mutex::default(),
            }))
        }
        None => None,
    };
    let cut_done = Arc::new(Notify::new());
    let token = group.token();
    let retention_ms = i64::try_from(lifecycle.retention.as_millis()).unwrap_or(i64::MAX);
    {
        let tsdb = Arc::clone(&tsdb);
        let shippers = shippers.clone();
        let cut_done = Arc::clone(&cut_done);
        let token = token.clone();
        let interval = compaction_interval(lifecycle.block_duration);
        group.spawn("tsdb-compaction", async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = token.cancelled() => return Ok::<(), anyhow::Error>(()),
                    _ = ticker.tick() => {}
                }
                compact_once(&tsdb, shippers.as_deref(), retention_ms, &cut_done).await;
            }
        });
    }
    if let Some(shippers) = &shippers {
        let tsdb = Arc::clone(&tsdb);
        let shippers = Arc::clone(shippers);
        let cut_done = Arc::clone(&cut_done);
        group.spawn("shipper", async move {
            let mut ticker = tokio::time::interval(DEFAULT_SYNC_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = token.cancelled() => return Ok::<(), anyhow::Error>(()),
                    _ = ticker.tick() => {}
                    () = cut_done.notified() => {}
                }
                tokio::select! {
                    () = token.cancelled() => return Ok(()),
                    _ = shippers.sync_all(&tsdb) => {}
                }
            }
        });
    }
    group.on_shutdown("flush-and-upload", move || async move {
        let flush_tsdb = Arc::clone(&tsdb);
        let flushed = tokio::task::spawn_blocking(move || flush_tsdb.flush())
            .await
            .context("flush task")?
            .context("flush tenant heads into blocks")?;
        tracing::info!(blocks = flushed.len(), "flushed tenant heads");
        if let Some(shippers) = shippers
            && !shippers.sync_all(&tsdb).await
        {
            tracing::error!("final upload incomplete; local blocks are uploaded on next start");
        }
        Ok::<(), anyhow::Error>(())
    });
    Ok(())
}

/// One compaction round: cut blocks, wake the shippers if any was cut, apply retention.
async fn compact_once(
    tsdb: &Arc<MultiTsdb>,
    shippers: Option<&Shippers>,
    retention_ms: i64,
    cut_done: &Notify,
) {
    let compact_tsdb = Arc::clone(tsdb);
    match tokio::task::spawn_blocking(move || compact_tsdb.compact()).await {
        Ok(Ok(cut)) if !cut.is_empty() => {
            tracing::info!(blocks = cut.len(), "head compaction cut blocks");
            cut_done.notify_one();
        }
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::error!(err = %err, "head compaction failed; retried next tick"),
        Err(err) => tracing::error!(err = %err, "head compaction task failed"),
    }
    if retention_ms <= 0 {
        return;
    }
    // Unshipped blocks are never deleted when a bucket is configured.
    let uploaded: Option<HashMap<String, Vec<Ulid>>> = shippers.map(|s| {
        tsdb.tenants()
            .into_iter()
            .map(|t| {
                let ids = s.uploaded(&t);
                (t, ids)
            })
            .collect()
    });
    let retention_tsdb = Arc::clone(tsdb);
    let res = tokio::task::spawn_blocking(move || {
        retention_tsdb.apply_retention(retention_ms, &|tenant, id| {
            uploaded
                .as_ref()
                .is_none_or(|u| u.get(tenant).is_some_and(|ids| ids.contains(&id)))
        })
    })
    .await;
    match res {
        Ok(Ok(deleted)) if !deleted.is_empty() => {
            tracing::info!(blocks = deleted.len(), "deleted blocks beyond retention");
        }
        Ok(Ok(_)) => {}
        Ok(Err(err)) => tracing::error!(err = %err, "retention failed; retried next tick"),
        Err(err) => tracing::error!(err = %err, "retention task failed"),
    }
}
