//! The [`Shipper`]: scans a TSDB directory and uploads new blocks (Thanos `shipper.Shipper`).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use thanos_model::Labels;
use thanos_objstore::{Bucket, Path as ObjectPath};
use thanos_tsdb::meta::{BlockMeta, META_FILENAME};
use tokio_util::sync::CancellationToken;
use ulid::Ulid;

use crate::error::ShipperError;
use crate::metrics::ShipperMetrics;
use crate::prepare::{self, HashFunc, ThanosFields};
use crate::progress;

/// Longest a single sync may take inside [`Shipper::run`] (Thanos receive uses 10 minutes).
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Default interval of [`Shipper::run`] (Thanos receive: every 30 s).
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// Options of a [`Shipper`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipperOptions {
    /// Written into `thanos.source` of every uploaded meta (`"receive"` for receive).
    pub source: String,
    /// Keep uploading later blocks after one fails (hidden flag
    /// `--shipper.allow-out-of-order-uploads`); failures are then reported in
    /// [`SyncReport::failed`] instead of ending the sync.
    pub allow_out_of_order: bool,
    /// Hash recorded for every file in `thanos.files` (`--hash-func`).
    pub hash_func: HashFunc,
    /// Skip block directories whose meta.json is missing or corrupt instead of failing the
    /// sync (hidden flag `--shipper.skip-corrupted-blocks`).
    pub skip_corrupted: bool,
}

impl Default for ShipperOptions {
    /// Source `receive`, in-order uploads, no hashes, corrupt blocks fail the sync.
    fn default() -> Self {
        Self {
            source: "receive".to_owned(),
            allow_out_of_order: false,
            hash_func: HashFunc::None,
            skip_corrupted: false,
        }
    }
}

/// What one [`Shipper::sync`] did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Blocks uploaded by this sync, oldest first.
    pub uploaded: Vec<Ulid>,
    /// Blocks found complete in the bucket (`<ULID>/meta.json` exists) and recorded as
    /// uploaded without uploading them again.
    pub already_in_bucket: Vec<Ulid>,
    /// Blocks whose upload failed (only with [`ShipperOptions::allow_out_of_order`]; without
    /// it the first failure is returned as the sync's error). They are retried by the next
    /// sync.
    pub failed: Vec<(Ulid, ShipperError)>,
    /// Block directories skipped because their meta.json is missing or corrupt (only with
    /// [`ShipperOptions::skip_corrupted`]).
    pub corrupted: Vec<PathBuf>,
}

impl SyncReport {
    /// Whether every eligible block is now in the bucket (nothing failed, nothing skipped as
    /// corrupt).
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.corrupted.is_empty()
    }
}

type LabelsFn = dyn Fn() -> Labels + Send + Sync;

/// Uploads the blocks of one TSDB directory to a bucket. Cheap to clone; clones share state,
/// and concurrent [`Shipper::sync`] calls run one after the other.
#[derive(Clone)]
pub struct Shipper {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    bucket: Bucket,
    labels: Box<LabelsFn>,
    options: ShipperOptions,
    metrics: ShipperMetrics,
    sync_lock: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Shipper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shipper")
            .field("dir", &self.inner.dir)
            .field("bucket", &self.inner.bucket.name())
            .field("options", &self.inner.options)
            .finish()
    }
}

/// Result of scanning the TSDB directory.
#[derive(Debug, Default)]
struct Scan {
    /// Names of every ULID-named directory (readable meta or not).
    present: HashSet<Ulid>,
    /// Readable metas, oldest first (min time, then ULID).
    metas: Vec<BlockMeta>,
    /// Directories whose meta.json could not be read.
    corrupted: Vec<ShipperError>,
    /// Uploaded ULIDs from the progress file (`None`: no file).
    recorded: Option<Vec<Ulid>>,
}

impl Shipper {
    /// A shipper for the blocks under `dir` (the TSDB directory holding `<ULID>/` blocks; the
    /// progress file `thanos.shipper.json` and the staging directory `thanos/upload/` live
    /// there too). `labels` is called at every upload to get the external labels written into
    /// `thanos.labels`, so it may follow configuration changes.
    pub fn new(
        dir: PathBuf,
        bucket: Bucket,
        labels: impl Fn() -> Labels + Send + Sync + 'static,
        options: ShipperOptions,
        metrics: ShipperMetrics,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                dir,
                bucket,
                labels: Box::new(labels),
                options,
                metrics,
                sync_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The TSDB directory this shipper watches.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The shipper's counters.
    pub fn metrics(&self) -> &ShipperMetrics {
        &self.inner.metrics
    }

    /// ULIDs recorded as uploaded in `thanos.shipper.json` (empty when the file does not
    /// exist yet). Reads a small local file.
    pub fn uploaded(&self) -> Result<Vec<Ulid>, ShipperError> {
        Ok(progress::read_progress(&self.inner.dir)?.unwrap_or_default())
    }

    /// Uploads every local block that is not in the bucket yet, oldest first.
    ///
    /// Eligible blocks are ULID-named directories with a readable meta.json, compaction level
    /// 1 and at least one sample. Blocks recorded in `thanos.shipper.json` are skipped; blocks
    /// whose `<ULID>/meta.json` already exists in the bucket are recorded without upload. Each
    /// block is hard-linked into `thanos/upload/<ULID>/`, its meta.json rewritten there with
    /// the Thanos section, then `chunks/*`, `index` and any other file except `tombstones` go
    /// up, and meta.json last. The progress file is then rewritten (atomically) with the
    /// uploaded blocks that still exist locally.
    ///
    /// Returns an error when the directory cannot be read, a block directory is corrupt (unless
    /// [`ShipperOptions::skip_corrupted`]), the bucket cannot be checked, or, unless
    /// [`ShipperOptions::allow_out_of_order`], at the first failed upload (later blocks are
    /// left for the next sync). Blocks uploaded before an error are still recorded. Local
    /// blocks are never modified, so a failed block is retried by the next sync.
    pub async fn sync(&self) -> Result<SyncReport, ShipperError> {
        let _guard = self.inner.sync_lock.lock().await;
        let metrics = &self.inner.metrics;
        metrics.dir_syncs.inc();
        let result = self.sync_locked().await;
        match &result {
            Ok(report) if report.is_complete() => {}
            Ok(report) => {
                metrics.dir_sync_failures.inc();
                tracing::warn!(
                    dir = %self.inner.dir.display(),
                    failed = report.failed.len(),
                    corrupted = report.corrupted.len(),
                    "shipper sync incomplete"
                );
            }
            Err(err) => {
                metrics.dir_sync_failures.inc();
                tracing::warn!(dir = %self.inner.dir.display(), err = %err, "shipper sync failed");
            }
        }
        result
    }

    /// Syncs right away and then every `interval` until `cancel` fires; each sync is limited
    /// to [`SYNC_TIMEOUT`]. Errors are logged and counted, never returned: the next tick
    /// retries. A sync in progress when `cancel` fires is abandoned (a final upload on
    /// shutdown is the caller's [`Shipper::sync`]).
    pub async fn run(&self, interval: Duration, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                res = tokio::time::timeout(SYNC_TIMEOUT, self.sync()) => {
                    if res.is_err() {
                        self.inner.metrics.dir_sync_failures.inc();
                        tracing::warn!(
                            dir = %self.inner.dir.display(),
                            timeout_s = SYNC_TIMEOUT.as_secs(),
                            "shipper sync timed out"
                        );
                    }
                }
            }
        }
    }

    async fn sync_locked(&self) -> Result<SyncReport, ShipperError> {
        let inner = &self.inner;
        let dir = inner.dir.clone();
        let scan = blocking(&inner.dir, move || scan_dir(&dir)).await??;
        let mut report = SyncReport::default();
        for err in scan.corrupted {
            inner.metrics.corrupted_blocks.inc();
            if !inner.options.skip_corrupted {
                return Err(err);
            }
            tracing::error!(
                dir = %inner.dir.display(),
                block = ?err.block(),
                err = %err,
                "skipping corrupted block"
            );
            if let ShipperError::CorruptBlock { path, .. } = err {
                report.corrupted.push(path);
            }
        }

        let recorded_file = scan.recorded.clone();
        let recorded: HashSet<Ulid> = scan.recorded.unwrap_or_default().into_iter().collect();
        // Keep only records of blocks that still exist locally, as Thanos does.
        let mut uploaded: Vec<Ulid> = recorded_file
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter(|id| scan.present.contains(id))
            .copied()
            .collect();

        let outcome = self
            .ship_all(&scan.metas, &recorded, &mut uploaded, &mut report)
            .await;

        if recorded_file.as_deref() != Some(uploaded.as_slice()) {
            let dir = inner.dir.clone();
            let ids = uploaded.clone();
            let written = blocking(&inner.dir, move || progress::write_progress(&dir, &ids))
                .await
                .and_then(|r| r);
            if let Err(err) = written {
                // An upload error is the more useful one to return; the next sync finds the
                // blocks in the bucket anyway.
                outcome?;
                return Err(err);
            }
        }
        outcome.map(|()| report)
    }

    /// Ships every eligible block; `uploaded` collects what is now known to be in the bucket.
    async fn ship_all(
        &self,
        metas: &[BlockMeta],
        recorded: &HashSet<Ulid>,
        uploaded: &mut Vec<Ulid>,
        report: &mut SyncReport,
    ) -> Result<(), ShipperError> {
        let inner = &self.inner;
        for meta in metas {
            let id = meta.ulid;
            if recorded.contains(&id) {
                continue;
            }
            if meta.stats.num_samples == 0 {
                tracing::debug!(block = %id, "skipping empty block");
                continue;
            }
            if meta.compaction.level > 1 {
                tracing::debug!(block = %id, level = meta.compaction.level, "skipping compacted block");
                continue;
            }
            let meta_obj = ObjectPath::from(format!("{id}/{META_FILENAME}"));
            let exists = inner
                .bucket
                .exists(&meta_obj)
                .await
                .map_err(|source| ShipperError::CheckExists { block: id, source })?;
            if exists {
                tracing::info!(block = %id, "block already in bucket, recording it as uploaded");
                uploaded.push(id);
                report.already_in_bucket.push(id);
                continue;
            }
            match self.upload_block(meta).await {
                Ok(()) => {
                    inner.metrics.uploads.inc();
                    uploaded.push(id);
                    report.uploaded.push(id);
                }
                Err(err) => {
                    inner.metrics.upload_failures.inc();
                    tracing::error!(block = %id, err = %err, "block upload failed");
                    if !inner.options.allow_out_of_order {
                        return Err(err);
                    }
                    report.failed.push((id, err));
                }
            }
        }
        Ok(())
    }

    /// Uploads one block through `thanos/upload/<ULID>/`, meta.json last. The staging
    /// directory is removed afterwards, whatever the outcome.
    async fn upload_block(&self, meta: &BlockMeta) -> Result<(), ShipperError> {
        let inner = &self.inner;
        let id = meta.ulid;
        let labels: BTreeMap<String, String> = (inner.labels)()
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect();
        if labels.is_empty() {
            return Err(ShipperError::EmptyLabels { block: id });
        }
        tracing::info!(block = %id, min_time = meta.min_time, max_time = meta.max_time, "uploading new block");
        let src = inner.dir.join(id.to_string());
        let updir = inner.dir.join("thanos").join("upload").join(id.to_string());
        let prepared = {
            let (src, updir, meta) = (src.clone(), updir.clone(), meta.clone());
            let source = inner.options.source.clone();
            let hash = inner.options.hash_func;
            blocking(&src.clone(), move || {
                let fields = ThanosFields {
                    labels,
                    source: &source,
                    hash,
                };
                prepare::prepare_upload(&src, &updir, &meta, &fields)
            })
            .await
            .and_then(|r| r)
        };
        let result = match prepared {
            Ok(prepared) => self.upload_prepared(id, &updir, prepared).await,
            Err(err) => Err(err),
        };
        let cleanup_dir = updir.clone();
        let cleaned = blocking(&updir, move || prepare::remove_dir_if_exists(&cleanup_dir)).await;
        match cleaned {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(block = %id, path = %updir.display(), err = %err, "remove upload directory");
            }
            Err(err) => {
                tracing::warn!(block = %id, err = %err, "remove upload directory");
            }
        }
        result
    }

    async fn upload_prepared(
        &self,
        id: Ulid,
        updir: &Path,
        prepared: prepare::Prepared,
    ) -> Result<(), ShipperError> {
        let bucket = &self.inner.bucket;
        for rel in &prepared.files {
            let object = format!("{id}/{rel}");
            bucket
                .upload_file(&ObjectPath::from(object.as_str()), &updir.join(rel))
                .await
                .map_err(|source| ShipperError::Upload {
                    block: id,
                    object,
                    source,
                })?;
        }
        let mut meta = prepared.meta;
        if let Some(t) = meta.thanos.as_mut() {
            t.upload_time = Some(prepare::rfc3339_nano_utc(SystemTime::now()));
        }
        let object = format!("{id}/{META_FILENAME}");
        bucket
            .upload(
                &ObjectPath::from(object.as_str()),
                Bytes::from(meta.to_json()),
            )
            .await
            .map_err(|source| ShipperError::Upload {
                block: id,
                object,
                source,
            })?;
        tracing::info!(block = %id, files = prepared.files.len() + 1, "uploaded block");
        Ok(())
    }
}

/// Runs blocking filesystem work off the async runtime.
async fn blocking<T, F>(path: &Path, f: F) -> Result<T, ShipperError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| ShipperError::Task {
            path: path.to_path_buf(),
            source,
        })
}

/// Lists block directories and reads their metas and the progress file.
fn scan_dir(dir: &Path) -> Result<Scan, ShipperError> {
    let list_err = |source| ShipperError::ListDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut scan = Scan::default();
    for entry in fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let is_dir = entry.file_type().map_err(list_err)?.is_dir();
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| Ulid::from_string(n).ok()) else {
            continue;
        };
        if !is_dir {
            continue;
        }
        scan.present.insert(id);
        let path = entry.path();
        match BlockMeta::read_from_dir(&path) {
            Ok(meta) if meta.ulid == id => scan.metas.push(meta),
            Ok(meta) => scan.corrupted.push(ShipperError::CorruptBlock {
                block: id,
                path: path.clone(),
                source: thanos_tsdb::Error::invalid(
                    path.join(META_FILENAME).display().to_string(),
                    format!("ulid {} does not match directory name", meta.ulid),
                ),
            }),
            Err(source) => scan.corrupted.push(ShipperError::CorruptBlock {
                block: id,
                path,
                source,
            }),
        }
    }
    scan.metas.sort_by_key(|m| (m.min_time, m.ulid));
    scan.recorded = match progress::read_progress(dir) {
        Ok(r) => r,
        Err(err) => {
            // As Thanos: an unreadable progress file is overwritten; blocks already in the
            // bucket are found again by the existence check.
            tracing::warn!(err = %err, "reading progress file failed, it will be rewritten");
            None
        }
    };
    Ok(scan)
}
