//! The per-tenant write-ahead log: replay into a head on start, repair, then open for
//! writing (mirrors the WAL part of Prometheus's `tsdb/head_wal.go` and `Head.Init`).
//!
//! Start-up order, per tenant directory `<tsdb.path>/<tenant>/wal`:
//!
//! 1. replay the newest checkpoint and the segments after it into the head, keeping the
//!    WAL's series references as the head's series IDs (a series logged twice under two
//!    references maps both to one series);
//! 2. if the reader stopped at a torn tail (a crash in the middle of a write) or at a
//!    corrupt or undecodable record, [`repair`] the directory there: the records before
//!    it are kept, everything after is dropped — those writes were never acknowledged;
//! 3. open a [`Wal`] (a fresh segment) and attach it to the head.
//!
//! After the head is cut into a block, [`checkpoint_head`] compacts the closed segments
//! into `checkpoint.N` (live series, samples at or after the block's end) and deletes them,
//! so the WAL stays bounded; replay then starts from that checkpoint.
//!
//! Only float samples and series records are replayed; histogram, exemplar, metadata,
//! tombstone and mmap-marker records (which a Prometheus WAL may hold) are counted and
//! skipped, as are samples whose series record is missing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use thanos_model::Sample;
use thanos_wal::checkpoint::{CheckpointError, CheckpointStats, KeepFn, checkpoint};
use thanos_wal::record::{RecordType, RefSample, RefSeries, decode_samples, decode_series};
use thanos_wal::wlog::{
    Compression, GroupCommitWal, Position, Wal, WalError, WalOptions, WalReader, list_segments,
    repair,
};

use crate::head::Head;
use crate::write::{Batch, SeriesSamples};

/// Errors opening a tenant's WAL.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Reading, repairing or opening the WAL failed.
    #[error("wal {dir}: {source}")]
    Wal {
        /// The WAL directory.
        dir: PathBuf,
        /// The WAL layer's error.
        source: WalError,
    },
    /// A checkpoint is corrupt: it cannot be repaired by truncation.
    #[error("wal {dir}: corrupt checkpoint at segment {segment} offset {offset}: {reason}")]
    CorruptCheckpoint {
        /// The WAL directory.
        dir: PathBuf,
        /// Checkpoint segment.
        segment: u32,
        /// Offset of the bad record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Creating the WAL directory failed.
    #[error("create wal directory {dir}: {source}")]
    CreateDir {
        /// The WAL directory.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Registering the tenant metrics failed.
    #[error("register tsdb metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Listing the tenant directories failed.
    #[error("list tenant directories in {dir}: {source}")]
    ListTenants {
        /// `--tsdb.path`.
        dir: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Opening the tenant's blocks failed.
    #[error(transparent)]
    Blocks(#[from] crate::tenant::BlockError),
    /// The head already has a WAL.
    #[error("wal {dir}: the head already has a wal attached")]
    AlreadyAttached {
        /// The WAL directory.
        dir: PathBuf,
    },
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records read.
    pub records: u64,
    /// Series records' entries seen.
    pub series: u64,
    /// Float samples read.
    pub samples: u64,
    /// Samples stored in the head (excludes identical repeats and rejected ones).
    pub samples_appended: u64,
    /// Samples the head rejected (out of order or duplicate within the log).
    pub samples_rejected: u64,
    /// Samples whose series reference had no series record.
    pub unknown_refs: u64,
    /// Samples older than the head's min valid time (already in a block: the process
    /// stopped after writing the block but before checkpointing the WAL), skipped.
    pub samples_in_blocks: u64,
    /// Records of other types (histograms, exemplars, metadata, tombstones, …).
    pub skipped_records: u64,
    /// Where the WAL was repaired (torn tail or corrupt record), if it was.
    pub repaired_at: Option<Position>,
    /// Wall time of the replay in milliseconds.
    pub duration_ms: u64,
}

/// Replays the WAL in `dir` (checkpoint, then segments) into `head` and repairs a torn or
/// corrupt tail. Samples below the head's min valid time (set from the newest block's
/// max time before replay) are skipped, so no sample is both in a block and in the head.
/// A missing or empty directory replays nothing. Blocking.
pub fn replay(head: &Head, dir: &Path) -> Result<ReplayStats, OpenError> {
    let started = Instant::now();
    let mut stats = ReplayStats::default();
    if !dir.exists() {
        return Ok(stats);
    }
    let wal_err = |source| OpenError::Wal {
        dir: dir.to_path_buf(),
        source,
    };
    let mut reader = WalReader::open(dir).map_err(wal_err)?;
    let mut refs: HashMap<u64, SeriesSamples> = HashMap::new();
    let mut series_buf: Vec<RefSeries> = Vec::new();
    let mut samples_buf: Vec<RefSample> = Vec::new();
    let mut repair_at: Option<Position> = None;
    loop {
        let rec = match reader.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => break,
            Err(WalError::Corruption(c)) => {
                let Some(at) = c.repair_position() else {
                    return Err(OpenError::CorruptCheckpoint {
                        dir: dir.to_path_buf(),
                        segment: c.segment,
                        offset: c.offset,
                        reason: c.reason,
                    });
                };
                tracing::warn!(dir = %dir.display(), segment = c.segment, offset = c.offset,
                    reason = %c.reason, "corrupt wal record; repairing");
                repair_at = Some(at);
                break;
            }
            Err(err) => return Err(wal_err(err)),
        };
        stats.records += 1;
        let decoded = match RecordType::of(rec) {
            Some(RecordType::Series) => {
                series_buf.clear();
                decode_series(rec, &mut series_buf).map(|()| true)
            }
            Some(RecordType::Samples) => {
                samples_buf.clear();
                decode_samples(rec, &mut samples_buf).map(|()| false)
            }
            _ => {
                stats.skipped_records += 1;
                continue;
            }
        };
        let is_series = match decoded {
            Ok(is_series) => is_series,
            Err(err) => {
                let pos = reader.last_position();
                if pos.in_checkpoint {
                    return Err(OpenError::CorruptCheckpoint {
                        dir: dir.to_path_buf(),
                        segment: pos.position.segment,
                        offset: pos.position.offset,
                        reason: err.to_string(),
                    });
                }
                tracing::warn!(dir = %dir.display(), segment = pos.position.segment,
                    offset = pos.position.offset, error = %err,
                    "undecodable wal record; repairing");
                repair_at = Some(pos.position);
                break;
            }
        };
        if is_series {
            for s in series_buf.drain(..) {
                stats.series += 1;
                head.replay_series(&s.labels, s.series_ref);
                refs.insert(
                    s.series_ref,
                    SeriesSamples {
                        labels: s.labels,
                        samples: Vec::new(),
                    },
                );
            }
        } else {
            stats.samples += samples_buf.len() as u64;
            apply_samples(head, &mut refs, &samples_buf, &mut stats);
        }
    }
    let repair_at = repair_at.or(reader.torn_tail());
    if let Some(at) = repair_at {
        drop(reader);
        repair(dir, at).map_err(wal_err)?;
        stats.repaired_at = Some(at);
    }
    stats.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        dir = %dir.display(),
        records = stats.records,
        series = stats.series,
        samples = stats.samples,
        unknown_refs = stats.unknown_refs,
        samples_in_blocks = stats.samples_in_blocks,
        skipped_records = stats.skipped_records,
        duration_ms = stats.duration_ms,
        "replayed wal"
    );
    Ok(stats)
}

/// Groups one samples record by series and appends it without window checks.
fn apply_samples(
    head: &Head,
    refs: &mut HashMap<u64, SeriesSamples>,
    samples: &[RefSample],
    stats: &mut ReplayStats,
) {
    let mut touched: Vec<u64> = Vec::new();
    let floor = head.min_valid_time();
    for s in samples {
        if s.t < floor {
            stats.samples_in_blocks += 1;
            continue;
        }
        match refs.get_mut(&s.series_ref) {
            Some(series) => {
                if series.samples.is_empty() {
                    touched.push(s.series_ref);
                }
                series.samples.push(Sample { t: s.t, v: s.v });
            }
            None => stats.unknown_refs += 1,
        }
    }
    let mut batch = Batch::from_series(Vec::with_capacity(touched.len()));
    for r in &touched {
        if let Some(series) = refs.get_mut(r) {
            batch.series.push(SeriesSamples {
                labels: series.labels.clone(),
                samples: std::mem::take(&mut series.samples),
            });
        }
    }
    let report = head.replay_batch(&batch);
    stats.samples_appended += report.appended;
    stats.samples_rejected += report.rejections.samples();
}

/// Replays `dir` into `head` ([`replay`]), then opens the WAL for writing there and
/// attaches it to `head`. Creates `dir` if needed. Blocking.
pub fn open(head: &Head, dir: &Path, options: WalOptions) -> Result<ReplayStats, OpenError> {
    std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let stats = replay(head, dir)?;
    let wal = Wal::open(dir, options).map_err(|source| OpenError::Wal {
        dir: dir.to_path_buf(),
        source,
    })?;
    if !head.attach_wal(GroupCommitWal::new(wal)) {
        return Err(OpenError::AlreadyAttached {
            dir: dir.to_path_buf(),
        });
    }
    Ok(stats)
}

/// Checkpoints the WAL attached to `head` (directory `dir`) after a truncation to `mint`:
/// cuts the active segment, then writes `checkpoint.N` over the previous checkpoint and
/// every closed segment, keeping the series still in the head (or created after this
/// call started) and the samples at or after `mint`, and deletes the covered segments and
/// older checkpoints. Returns `None` when the head has no WAL. Blocking.
pub fn checkpoint_head(
    head: &Head,
    dir: &Path,
    mint: i64,
    compression: Compression,
) -> Result<Option<CheckpointStats>, Box<CheckpointError>> {
    let Some(wal) = head.wal() else {
        return Ok(None);
    };
    // Series IDs are read before the cut: a series created afterwards has an ID at or
    // above `next` and is kept even if this snapshot misses it.
    let (alive, next) = head.series_refs();
    let active = wal.cut().map_err(|e| Box::new(e.into()))?;
    let Some(&first) = list_segments(dir).map_err(|e| Box::new(e.into()))?.first() else {
        return Ok(None);
    };
    let Some(last) = active.checked_sub(1).filter(|&l| l >= first) else {
        return Ok(None);
    };
    let mut filter = KeepFn {
        keep: |r: u64| r >= next || alive.contains(&r),
        mint,
    };
    match checkpoint(dir, first, last, &mut filter, compression) {
        Ok(stats) => Ok(Some(stats)),
        // The previous checkpoint already covers every closed segment.
        Err(CheckpointError::EmptyRange { .. }) => Ok(None),
        Err(e) => Err(Box::new(e)),
    }
}
