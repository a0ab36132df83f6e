//! One tenant's TSDB: its head plus the local blocks cut from it (mirrors the head
//! compaction, flush and retention parts of Prometheus's `tsdb/db.go` as Thanos's
//! `pkg/receive/multitsdb.go` drives them).
//!
//! Cutting one block `[mint, maxt)` (Prometheus's `compactHead` + `truncateMemory` +
//! `truncateWAL`), in this order so that a crash at any point loses no acknowledged sample:
//!
//! 1. the head's min valid time is raised to `maxt`, so no append can add a sample to the
//!    range while it is written;
//! 2. the head's chunks in the range are written into `<ULID>.tmp-for-creation`, fsynced
//!    and renamed to `<ULID>` (compaction level 1, `thanos.source: receive`);
//! 3. the head drops everything below `maxt` (series left empty are removed);
//! 4. the WAL is checkpointed as Prometheus does it ([`crate::wal::checkpoint_head`]): a
//!    new segment is cut, and only the lower two thirds of the closed segments go into
//!    `checkpoint.N` (live series, samples at or after `maxt`); those segments and older
//!    checkpoints are deleted. The newer segments stay as they are.
//!
//! A crash between 2 and 4 leaves samples both in the block and in the WAL, and the
//! segments kept in step 4 still hold samples below `maxt`; replay skips the samples
//! below the newest block's max time ([`crate::wal::replay`]).
//!
//! Blocks are end-exclusive: a block's `maxTime` is one past its last sample's range, as
//! in Prometheus. Head chunks are cut at multiples of the block duration, so an aligned
//! block takes whole chunks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use thanos_tsdb::block::{Block, BlockWriter, BlockWriterOptions, ChunkData};
use thanos_tsdb::meta::{BlockMeta, ThanosMeta};
use thanos_wal::checkpoint::CheckpointError;
use thanos_wal::wlog::Compression;
use ulid::Ulid;

use crate::head::Head;
use crate::wal;

/// Suffix of a block directory being deleted (Prometheus renames before removing).
const TMP_FOR_DELETION_SUFFIX: &str = ".tmp-for-deletion";

/// `thanos.source` of the blocks receive writes.
pub const BLOCK_SOURCE: &str = "receive";

/// Errors of cutting, loading and deleting a tenant's blocks.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// Writing a block from the head failed; the head and WAL are unchanged.
    #[error("tenant {tenant}: write block [{mint}, {maxt}): {source}")]
    Write {
        /// The tenant.
        tenant: String,
        /// Block start (inclusive).
        mint: i64,
        /// Block end (exclusive).
        maxt: i64,
        /// The TSDB error (names the block).
        source: Box<thanos_tsdb::error::Error>,
    },
    /// Opening a block directory failed.
    #[error("tenant {tenant}: open block {dir}: {source}")]
    Open {
        /// The tenant.
        tenant: String,
        /// The block directory.
        dir: PathBuf,
        /// The TSDB error.
        source: Box<thanos_tsdb::error::Error>,
    },
    /// Checkpointing the WAL after a cut failed (the block is durable; replay skips the
    /// samples it holds).
    #[error("tenant {tenant}: checkpoint wal {dir}: {source}")]
    Checkpoint {
        /// The tenant.
        tenant: String,
        /// The WAL directory.
        dir: PathBuf,
        /// The checkpoint error.
        source: Box<CheckpointError>,
    },
    /// A file system operation on the tenant directory failed.
    #[error("tenant {tenant}: {op} {path}: {source}")]
    Io {
        /// The tenant.
        tenant: String,
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A tenant: its head and, when persisted, its directory and local blocks.
pub struct Tenant {
    name: String,
    head: Arc<Head>,
    /// `<tsdb.path>/<tenant>`; `None` for in-memory tenants (no blocks).
    dir: Option<PathBuf>,
    compression: Compression,
    /// Open blocks sorted by min time.
    blocks: RwLock<Vec<Arc<Block>>>,
    /// Serializes cuts, flushes and retention.
    cutting: Mutex<()>,
    /// Held for reading by queries ([`Tenant::with_view`]) and for writing while a new
    /// block is published and the head truncated, so a query sees each sample once.
    view: RwLock<()>,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("head", &self.head)
            .field("blocks", &self.blocks().len())
            .finish()
    }
}

impl Tenant {
    /// An in-memory tenant: no directory, never cuts blocks.
    pub(crate) fn in_memory(name: &str, head: Head) -> Self {
        Self {
            name: name.to_owned(),
            head: Arc::new(head),
            dir: None,
            compression: Compression::None,
            blocks: RwLock::default(),
            cutting: Mutex::new(()),
            view: RwLock::new(()),
        }
    }

    /// A persisted tenant in `dir`: deletes leftovers of interrupted block writes and
    /// deletions, opens the blocks and raises the head's min valid time to the newest
    /// block's max time (call it before replaying the WAL). Blocking.
    pub(crate) fn open(
        name: &str,
        head: Head,
        dir: PathBuf,
        compression: Compression,
    ) -> Result<Self, BlockError> {
        let io = |op, path: &Path| {
            let tenant = name.to_owned();
            let path = path.to_path_buf();
            move |source| BlockError::Io {
                tenant,
                op,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&dir).map_err(io("create tenant directory", &dir))?;
        let mut blocks = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io("list tenant directory", &dir))? {
            let entry = entry.map_err(io("list tenant directory", &dir))?;
            let path = entry.path();
            let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let leftover = [
                thanos_tsdb::block::TMP_FOR_CREATION_SUFFIX,
                TMP_FOR_DELETION_SUFFIX,
            ]
            .iter()
            .any(|suffix| {
                file.strip_suffix(suffix)
                    .is_some_and(|id| Ulid::from_string(id).is_ok())
            });
            if leftover {
                tracing::info!(tenant = name, dir = %path.display(), "removing unfinished block directory");
                std::fs::remove_dir_all(&path).map_err(io("remove unfinished block", &path))?;
                continue;
            }
            if Ulid::from_string(&file).is_err() || !path.is_dir() {
                continue;
            }
            let block = Block::open(&path).map_err(|source| BlockError::Open {
                tenant: name.to_owned(),
                dir: path.clone(),
                source: Box::new(source),
            })?;
            blocks.push(Arc::new(block));
        }
        blocks.sort_by_key(|b| (b.meta().min_time, b.ulid()));
        if let Some(maxt) = blocks.iter().map(|b| b.meta().max_time).max() {
            head.set_min_valid_time(maxt);
        }
        Ok(Self {
            name: name.to_owned(),
            head: Arc::new(head),
            dir: Some(dir),
            compression,
            blocks: RwLock::new(blocks),
            cutting: Mutex::new(()),
            view: RwLock::new(()),
        })
    }

    /// The tenant name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The in-memory head.
    pub fn head(&self) -> &Arc<Head> {
        &self.head
    }

    /// `<tsdb.path>/<tenant>`, when persisted.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The WAL directory, when persisted.
    pub fn wal_dir(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("wal"))
    }

    /// The local blocks, sorted by min time.
    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.blocks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `f` on a consistent view of the blocks (sorted by min time) and the head: a
    /// cut publishes its block and truncates the head atomically with respect to it, so
    /// every sample is in exactly one of them. Blocks a cut while `f` runs.
    pub fn with_view<R>(&self, f: impl FnOnce(&[Arc<Block>], &Head) -> R) -> R {
        let _view = self.view.read().unwrap_or_else(PoisonError::into_inner);
        f(&self.blocks(), &self.head)
    }

    /// The oldest time of any block or head sample.
    pub fn min_time(&self) -> Option<i64> {
        let blocks = self.blocks().first().map(|b| b.meta().min_time);
        match (blocks, self.head.min_time()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the head spans more than 1.5 block durations (Prometheus's
    /// `Head.compactable`).
    fn compactable(&self) -> bool {
        let range = self.head.options().chunk_range_ms;
        match (self.head.min_time(), self.head.max_time()) {
            (Some(min), Some(max)) => max.saturating_sub(min) > range / 2 * 3,
            _ => false,
        }
    }

    /// Cuts aligned blocks `[head min, next multiple of the block duration)` from the head
    /// while it spans more than 1.5 block durations; returns the blocks written. Does
    /// nothing for in-memory tenants. Blocking.
    pub fn compact(&self, thanos: Option<&ThanosMeta>) -> Result<Vec<BlockMeta>, BlockError> {
        let _cutting = self.cutting.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        if self.dir.is_none() {
            return Ok(out);
        }
        let range = self.head.options().chunk_range_ms;
        while self.compactable() {
            let Some(mint) = self.head.min_time() else {
                break;
            };
            let maxt = mint
                .div_euclid(range)
                .saturating_add(1)
                .saturating_mul(range);
            out.extend(self.cut(mint, maxt, thanos)?);
        }
        Ok(out)
    }

    /// Cuts the whole head into blocks: one up to the last multiple of the block
    /// duration, then the remainder, which may be shorter (Thanos's `Flush`). Appends
    /// below the head's max time fail afterwards. Used on shutdown and hashring changes;
    /// stop writes first. Does nothing for in-memory tenants. Blocking.
    pub fn flush(&self, thanos: Option<&ThanosMeta>) -> Result<Vec<BlockMeta>, BlockError> {
        let _cutting = self.cutting.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        if self.dir.is_none() || self.head.num_series() == 0 {
            return Ok(out);
        }
        let (Some(min), Some(max)) = (self.head.min_time(), self.head.max_time()) else {
            return Ok(out);
        };
        if max < min {
            return Ok(out);
        }
        let range = self.head.options().chunk_range_ms;
        let boundary = max - max.rem_euclid(range);
        if min < boundary {
            out.extend(self.cut(min, boundary, thanos)?);
        }
        out.extend(self.cut(boundary.max(min), max.saturating_add(1), thanos)?);
        Ok(out)
    }

    /// Writes the head's samples in `[mint, maxt)` as a block, truncates the head below
    /// `maxt` and checkpoints the WAL. Returns the block's meta, `None` when the range
    /// held no sample (the head is still truncated).
    fn cut(
        &self,
        mint: i64,
        maxt: i64,
        thanos: Option<&ThanosMeta>,
    ) -> Result<Option<BlockMeta>, BlockError> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let started = Instant::now();
        self.head.set_min_valid_time(maxt);
        let meta = self.write_block(dir, mint, maxt, thanos)?;
        let write_ms = started.elapsed().as_millis();
        let block = match &meta {
            Some(meta) => {
                let path = dir.join(meta.ulid.to_string());
                let block = Block::open(&path).map_err(|source| BlockError::Open {
                    tenant: self.name.clone(),
                    dir: path.clone(),
                    source: Box::new(source),
                })?;
                Some(Arc::new(block))
            }
            None => None,
        };
        let truncated = {
            let _view = self.view.write().unwrap_or_else(PoisonError::into_inner);
            if let Some(block) = block {
                let mut blocks = self.blocks.write().unwrap_or_else(PoisonError::into_inner);
                blocks.push(block);
                blocks.sort_by_key(|b| (b.meta().min_time, b.ulid()));
            }
            self.head.truncate(maxt)
        };
        if let Some(wal_dir) = self.wal_dir() {
            wal::checkpoint_head(&self.head, &wal_dir, maxt, self.compression).map_err(
                |source| BlockError::Checkpoint {
                    tenant: self.name.clone(),
                    dir: wal_dir.clone(),
                    source,
                },
            )?;
        }
        tracing::info!(
            tenant = %self.name,
            mint,
            maxt,
            block = ?meta.as_ref().map(|m| m.ulid),
            series = meta.as_ref().map_or(0, |m| m.stats.num_series),
            samples = meta.as_ref().map_or(0, |m| m.stats.num_samples),
            series_removed = truncated.series_removed,
            write_ms,
            total_ms = started.elapsed().as_millis(),
            "cut head into block"
        );
        Ok(meta)
    }

    fn write_block(
        &self,
        dir: &Path,
        mint: i64,
        maxt: i64,
        thanos: Option<&ThanosMeta>,
    ) -> Result<Option<BlockMeta>, BlockError> {
        let err = |source| BlockError::Write {
            tenant: self.name.clone(),
            mint,
            maxt,
            source: Box::new(source),
        };
        let series = self.head.block_series(mint, maxt);
        if series.is_empty() {
            return Ok(None);
        }
        let mut symbols = std::collections::BTreeSet::new();
        symbols.insert("");
        for s in &series {
            for l in &s.labels {
                symbols.insert(l.name.as_str());
                symbols.insert(l.value.as_str());
            }
        }
        let opts = BlockWriterOptions {
            time_range: Some((mint, maxt)),
            thanos: thanos.cloned(),
            ..BlockWriterOptions::default()
        };
        let mut writer = BlockWriter::new(dir, symbols, opts).map_err(err)?;
        for s in &series {
            let chunks: Vec<ChunkData> = s
                .chunks
                .iter()
                .map(|c| ChunkData {
                    min_time: c.min_time,
                    max_time: c.max_time,
                    encoding: c.encoding.as_u8(),
                    data: c.data.to_vec(),
                })
                .collect();
            writer.add_series(&s.labels, &chunks).map_err(err)?;
        }
        writer.finish().map_err(err)
    }

    /// Deletes the blocks whose max time is at least `retention_ms` older than the newest
    /// block's max time (Prometheus's time retention; the newest block is always kept),
    /// skipping those `deletable` refuses (unshipped blocks when a bucket is configured).
    /// Returns the deleted blocks. Blocking.
    pub fn apply_retention(
        &self,
        retention_ms: i64,
        deletable: &dyn Fn(Ulid) -> bool,
    ) -> Result<Vec<Ulid>, BlockError> {
        let _cutting = self.cutting.lock().unwrap_or_else(PoisonError::into_inner);
        let mut deleted = Vec::new();
        let Some(dir) = &self.dir else {
            return Ok(deleted);
        };
        if retention_ms <= 0 {
            return Ok(deleted);
        }
        let doomed: Vec<Arc<Block>> = {
            let mut blocks = self.blocks.write().unwrap_or_else(PoisonError::into_inner);
            let Some(newest) = blocks.iter().map(|b| b.meta().max_time).max() else {
                return Ok(deleted);
            };
            let (gone, kept): (Vec<_>, Vec<_>) = blocks.drain(..).partition(|b| {
                newest.saturating_sub(b.meta().max_time) >= retention_ms && deletable(b.ulid())
            });
            *blocks = kept;
            gone
        };
        for b in doomed {
            let id = b.ulid();
            let path = dir.join(id.to_string());
            let tmp = dir.join(format!("{id}{TMP_FOR_DELETION_SUFFIX}"));
            let io = |op, path: &Path| {
                let tenant = self.name.clone();
                let path = path.to_path_buf();
                move |source| BlockError::Io {
                    tenant,
                    op,
                    path,
                    source,
                }
            };
            std::fs::rename(&path, &tmp).map_err(io("rename block for deletion", &path))?;
            std::fs::remove_dir_all(&tmp).map_err(io("delete block", &tmp))?;
            tracing::info!(tenant = %self.name, block = %id, max_time = b.meta().max_time,
                "deleted block beyond retention");
            deleted.push(id);
        }
        Ok(deleted)
    }
}

/// The `thanos` section of the blocks of a tenant labelled `labels`.
pub fn thanos_meta(labels: BTreeMap<String, String>) -> ThanosMeta {
    ThanosMeta {
        labels,
        source: BLOCK_SOURCE.to_owned(),
        ..ThanosMeta::default()
    }
}
