//! WAL checkpoints: compacted copies of old segments.
//!
//! Mirrors the checkpoint part of Prometheus's `tsdb/wlog` package. A checkpoint
//! `checkpoint.NNNNNNNN` (NNNNNNNN = the last segment it covers) is itself a segmented WAL
//! holding the previous checkpoint plus segments `[first, N]`, filtered: series only if
//! still alive, samples/histograms/exemplars only with `t >= mint`, tombstones of kept
//! series whose interval reaches `mint`, and the latest metadata of each kept series
//! (appended at the end). It is built in `checkpoint.NNNNNNNN.tmp` and renamed; afterwards
//! the covered segments and older checkpoints are deleted. Replay reads the checkpoint first,
//! then the segments after it (see [`crate::wlog::WalReader::open`]).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use tracing::info;

use crate::record::{self, HeadSeriesRef, RecordError, RecordType, RefMetadata};
use crate::wlog::{
    self, CHECKPOINT_PREFIX, Compression, Position, Wal, WalError, WalOptions, WalReader,
};

/// Filtered records are written in batches of about this many bytes.
const BATCH_BYTES: usize = 1024 * 1024;

/// Errors while writing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading the input or writing the checkpoint failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// An input record could not be decoded.
    #[error("decode record in segment {} at offset {} (checkpoint input: {in_checkpoint}): {source}", .position.segment, .position.offset)]
    Record {
        /// Where the record starts.
        position: Position,
        /// True when the record comes from the previous checkpoint.
        in_checkpoint: bool,
        /// The decoding error.
        source: RecordError,
    },
    /// The requested range does not start right after the previous checkpoint.
    #[error(
        "segment range {from}..={to} of {} does not follow checkpoint {last}",
        dir.display()
    )]
    Gap {
        /// The WAL directory.
        dir: PathBuf,
        /// Number of the newest existing checkpoint.
        last: u32,
        /// Requested first segment.
        from: u32,
        /// Requested last segment.
        to: u32,
    },
    /// `from > to`, or the previous checkpoint already covers `to`.
    #[error("empty checkpoint range {from}..={to} in {}", dir.display())]
    EmptyRange {
        /// The WAL directory.
        dir: PathBuf,
        /// First segment.
        from: u32,
        /// Last segment.
        to: u32,
    },
}

/// What a checkpoint kept and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckpointStats {
    /// Number of the checkpoint written (the last segment it covers).
    pub checkpoint: u32,
    /// Series entries read.
    pub total_series: u64,
    /// Series entries dropped (not alive).
    pub dropped_series: u64,
    /// Float samples read.
    pub total_samples: u64,
    /// Float samples dropped (older than `mint`).
    pub dropped_samples: u64,
    /// Histogram samples (integer and float) read.
    pub total_histograms: u64,
    /// Histogram samples dropped.
    pub dropped_histograms: u64,
    /// Tombstone intervals read.
    pub total_tombstones: u64,
    /// Tombstone intervals dropped.
    pub dropped_tombstones: u64,
    /// Exemplars read.
    pub total_exemplars: u64,
    /// Exemplars dropped.
    pub dropped_exemplars: u64,
    /// Metadata entries read.
    pub total_metadata: u64,
    /// Metadata entries dropped (series not alive, or superseded by a later entry).
    pub dropped_metadata: u64,
    /// Records of types a checkpoint does not carry (m-map markers, unknown types).
    pub skipped_records: u64,
}

/// Filter deciding what a checkpoint keeps.
pub trait CheckpointFilter {
    /// True if the series with this ID is still alive in the head.
    fn keep_series(&mut self, series_ref: HeadSeriesRef) -> bool;
    /// The new head minimum time: samples, histograms and exemplars older than this are
    /// dropped, and so are tombstone intervals ending before it.
    fn mint(&self) -> i64;
}

/// A [`CheckpointFilter`] made of a closure and a minimum time.
#[derive(Debug, Clone)]
pub struct KeepFn<F> {
    /// Called per series ID: true keeps the series.
    pub keep: F,
    /// Minimum timestamp kept.
    pub mint: i64,
}

impl<F: FnMut(HeadSeriesRef) -> bool> CheckpointFilter for KeepFn<F> {
    fn keep_series(&mut self, series_ref: HeadSeriesRef) -> bool {
        (self.keep)(series_ref)
    }

    fn mint(&self) -> i64 {
        self.mint
    }
}

/// Writes `checkpoint.<to>` from the previous checkpoint and segments `from..=to` of the WAL
/// directory `dir`, then deletes the segments up to `to` and the older checkpoints.
///
/// If a checkpoint already exists, `from` may be at most one past it, and reading starts
/// right after it (segments it covers are ignored, as in Prometheus). The segments must be
/// closed, i.e. `to` must be older than the writer's active segment
/// (see [`Wal::cut`]).
pub fn checkpoint(
    dir: &Path,
    from: u32,
    to: u32,
    filter: &mut dyn CheckpointFilter,
    compression: Compression,
) -> Result<CheckpointStats, CheckpointError> {
    let mut from = from;
    let prev = wlog::last_checkpoint(dir)?;
    if let Some((last, _)) = &prev {
        let next = last.saturating_add(1);
        if from > next {
            return Err(CheckpointError::Gap {
                dir: dir.to_path_buf(),
                last: *last,
                from,
                to,
            });
        }
        from = next;
    }
    if from > to {
        return Err(CheckpointError::EmptyRange {
            dir: dir.to_path_buf(),
            from,
            to,
        });
    }

    let name = format!("{CHECKPOINT_PREFIX}{to:08}");
    let final_dir = dir.join(&name);
    let tmp_dir = dir.join(format!("{name}.tmp"));
    if tmp_dir.exists() {
        fs::remove_dir_all(&tmp_dir).map_err(|source| WalError::Io {
            op: "remove stale checkpoint",
            path: tmp_dir.clone(),
            source,
        })?;
    }
    let mut stats = CheckpointStats {
        checkpoint: to,
        ..CheckpointStats::default()
    };
    let mut out = Wal::open(
        &tmp_dir,
        WalOptions {
            compression,
            ..WalOptions::default()
        },
    )?;

    let mut inputs = Vec::new();
    if let Some((_, cp_dir)) = &prev {
        inputs.push(WalReader::checkpoint(cp_dir)?);
    }
    inputs.push(WalReader::segment_range(dir, from, to)?);

    let mut filt = Filtering {
        filter,
        stats: &mut stats,
        metadata: HashMap::new(),
        batch: Vec::new(),
        batch_bytes: 0,
        bufs: Buffers::default(),
    };
    for mut reader in inputs {
        while let Some(rec) = reader.next_record()? {
            if let Err(source) = filt.record(rec) {
                let pos = reader.last_position();
                return Err(CheckpointError::Record {
                    position: pos.position,
                    in_checkpoint: pos.in_checkpoint,
                    source,
                });
            }
            if filt.batch_bytes >= BATCH_BYTES {
                out.log(&filt.batch)?;
                filt.batch.clear();
                filt.batch_bytes = 0;
            }
        }
    }
    let mut metadata: Vec<RefMetadata> = filt.metadata.into_values().collect();
    let mut batch = filt.batch;
    if !metadata.is_empty() {
        metadata.sort_unstable_by_key(|m| m.series_ref);
        let mut buf = Vec::new();
        record::encode_metadata(&metadata, &mut buf);
        batch.push(buf);
    }
    stats.dropped_metadata = stats.total_metadata - metadata.len() as u64;
    out.log(&batch)?;
    out.close()?;
    wlog::sync_dir(&tmp_dir)?;
    fs::rename(&tmp_dir, &final_dir).map_err(|source| WalError::Io {
        op: "rename checkpoint",
        path: tmp_dir.clone(),
        source,
    })?;
    wlog::sync_dir(dir)?;

    delete_segments_through(dir, to)?;
    delete_checkpoints_before(dir, to)?;
    info!(
        dir = %dir.display(),
        checkpoint = to,
        from,
        kept_series = stats.total_series - stats.dropped_series,
        kept_samples = stats.total_samples - stats.dropped_samples,
        "wrote wal checkpoint"
    );
    Ok(stats)
}

/// Deletes the segments of `dir` numbered `<= last`.
pub fn delete_segments_through(dir: &Path, last: u32) -> Result<(), WalError> {
    for s in wlog::list_segments(dir)?.into_iter().filter(|s| *s <= last) {
        let path = wlog::segment_path(dir, s);
        fs::remove_file(&path).map_err(|source| WalError::Io {
            op: "delete segment",
            path,
            source,
        })?;
    }
    wlog::sync_dir(dir)
}

/// Deletes the checkpoints of `dir` numbered `< before`.
pub fn delete_checkpoints_before(dir: &Path, before: u32) -> Result<(), WalError> {
    for (n, path) in wlog::list_checkpoints(dir)? {
        if n < before {
            fs::remove_dir_all(&path).map_err(|source| WalError::Io {
                op: "delete checkpoint",
                path,
                source,
            })?;
        }
    }
    wlog::sync_dir(dir)
}

#[derive(Default)]
struct Buffers {
    series: Vec<record::RefSeries>,
    samples: Vec<record::RefSample>,
    tombstones: Vec<record::RefTombstone>,
    exemplars: Vec<record::RefExemplar>,
    metadata: Vec<RefMetadata>,
    histograms: Vec<record::RefHistogramSample>,
    float_histograms: Vec<record::RefFloatHistogramSample>,
}

struct Filtering<'a> {
    filter: &'a mut dyn CheckpointFilter,
    stats: &'a mut CheckpointStats,
    metadata: HashMap<HeadSeriesRef, RefMetadata>,
    batch: Vec<Vec<u8>>,
    batch_bytes: usize,
    bufs: Buffers,
}

impl Filtering<'_> {
    fn push(&mut self, rec: Vec<u8>) {
        self.batch_bytes += rec.len();
        self.batch.push(rec);
    }

    fn record(&mut self, rec: &[u8]) -> Result<(), RecordError> {
        let Some(typ) = RecordType::of(rec) else {
            return Err(RecordError::Empty);
        };
        let mint = self.filter.mint();
        let b = &mut self.bufs;
        let mut out = Vec::new();
        match typ {
            RecordType::Series => {
                b.series.clear();
                record::decode_series(rec, &mut b.series)?;
                let n = b.series.len();
                let filter = &mut *self.filter;
                b.series.retain(|s| filter.keep_series(s.series_ref));
                self.stats.total_series += n as u64;
                self.stats.dropped_series += (n - b.series.len()) as u64;
                if !b.series.is_empty() {
                    record::encode_series(&b.series, &mut out);
                }
            }
            RecordType::Samples => {
                b.samples.clear();
                record::decode_samples(rec, &mut b.samples)?;
                let n = b.samples.len();
                b.samples.retain(|s| s.t >= mint);
                self.stats.total_samples += n as u64;
                self.stats.dropped_samples += (n - b.samples.len()) as u64;
                if !b.samples.is_empty() {
                    record::encode_samples(&b.samples, &mut out);
                }
            }
            RecordType::Tombstones => {
                b.tombstones.clear();
                record::decode_tombstones(rec, &mut b.tombstones)?;
                let n = b.tombstones.len();
                let filter = &mut *self.filter;
                b.tombstones
                    .retain(|s| s.maxt >= mint && filter.keep_series(s.series_ref));
                self.stats.total_tombstones += n as u64;
                self.stats.dropped_tombstones += (n - b.tombstones.len()) as u64;
                if !b.tombstones.is_empty() {
                    record::encode_tombstones(&b.tombstones, &mut out);
                }
            }
            RecordType::Exemplars => {
                b.exemplars.clear();
                record::decode_exemplars(rec, &mut b.exemplars)?;
                let n = b.exemplars.len();
                b.exemplars.retain(|e| e.t >= mint);
                self.stats.total_exemplars += n as u64;
                self.stats.dropped_exemplars += (n - b.exemplars.len()) as u64;
                if !b.exemplars.is_empty() {
                    record::encode_exemplars(&b.exemplars, &mut out);
                }
            }
            RecordType::Metadata => {
                b.metadata.clear();
                record::decode_metadata(rec, &mut b.metadata)?;
                self.stats.total_metadata += b.metadata.len() as u64;
                for m in b.metadata.drain(..) {
                    if self.filter.keep_series(m.series_ref) {
                        self.metadata.insert(m.series_ref, m);
                    }
                }
            }
            RecordType::HistogramSamples | RecordType::CustomBucketsHistogramSamples => {
                b.histograms.clear();
                record::decode_histogram_samples(rec, &mut b.histograms)?;
                let n = b.histograms.len();
                b.histograms.retain(|h| h.t >= mint);
                self.stats.total_histograms += n as u64;
                self.stats.dropped_histograms += (n - b.histograms.len()) as u64;
                if !b.histograms.is_empty() {
                    record::encode_histogram_samples(&b.histograms, &mut out);
                }
            }
            RecordType::FloatHistogramSamples | RecordType::CustomBucketsFloatHistogramSamples => {
                b.float_histograms.clear();
                record::decode_float_histogram_samples(rec, &mut b.float_histograms)?;
                let n = b.float_histograms.len();
                b.float_histograms.retain(|h| h.t >= mint);
                self.stats.total_histograms += n as u64;
                self.stats.dropped_histograms += (n - b.float_histograms.len()) as u64;
                if !b.float_histograms.is_empty() {
                    record::encode_float_histogram_samples(&b.float_histograms, &mut out);
                }
            }
            RecordType::MmapMarkers | RecordType::Unknown(_) => {
                self.stats.skipped_records += 1;
            }
        }
        if !out.is_empty() {
            self.push(out);
        }
        Ok(())
    }
}
