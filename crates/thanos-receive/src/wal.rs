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
//! Replay works by series reference, as Prometheus's `loadWAL` does: a series record maps
//! its WAL reference to the head's series once, and samples go straight to that series,
//! with no label lookup. The calling thread reads and decodes the records (CRC, Snappy,
//! varints); worker threads append the samples, each owning a disjoint share of the series,
//! so every series sees its samples in log order and the result does not depend on the
//! number of workers.
//!
//! After the head is cut into a block, [`checkpoint_head`] compacts the lower two thirds
//! of the closed segments into `checkpoint.N` (live series, samples at or after the
//! block's end) and deletes them, so the WAL stays bounded; replay then starts from that
//! checkpoint and reads the segments after it.
//!
//! Series, float sample and native histogram sample records (integer, float and
//! custom-bucket) are replayed; exemplar, metadata, tombstone and mmap-marker records
//! (which a Prometheus WAL may hold) are counted and skipped, as are samples whose series
//! record is missing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use thanos_wal::checkpoint::{CheckpointError, CheckpointStats, KeepFn, checkpoint};
use thanos_wal::record::{
    RecordType, RefFloatHistogramSample, RefHistogramSample, RefSample, RefSeries,
    decode_float_histogram_samples, decode_histogram_samples, decode_samples, decode_series,
};

use crate::histogram::HistogramValue;
use thanos_wal::wlog::{
    Compression, GroupCommitWal, Position, Wal, WalError, WalOptions, WalReader, list_segments,
    repair,
};

use crate::head::{Head, ReplaySink};

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
    /// Histogram samples (integer and float) read.
    pub histograms: u64,
    /// Samples stored in the head (excludes identical repeats and rejected ones).
    pub samples_appended: u64,
    /// Samples the head rejected (out of order or duplicate within the log).
    pub samples_rejected: u64,
    /// Samples whose series reference had no series record.
    pub unknown_refs: u64,
    /// Samples older than the head's min valid time (already in a block: the process
    /// stopped after writing the block but before checkpointing the WAL), skipped.
    pub samples_in_blocks: u64,
    /// Records of other types (exemplars, metadata, tombstones, …).
    pub skipped_records: u64,
    /// Where the WAL was repaired (torn tail or corrupt record), if it was.
    pub repaired_at: Option<Position>,
    /// Wall time of the replay in milliseconds.
    pub duration_ms: u64,
}

/// Replay threads to use by default: one per available core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Replays the WAL in `dir` (checkpoint, then segments) into `head` and repairs a torn or
/// corrupt tail. Samples below the head's min valid time (set from the newest block's
/// max time before replay) are skipped, so no sample is both in a block and in the head.
/// The calling thread reads and decodes the log; `workers` threads append the samples,
/// each to its own share of the series, so the result does not depend on `workers`.
/// A missing or empty directory replays nothing. Blocking.
pub fn replay(head: &Head, dir: &Path, workers: usize) -> Result<ReplayStats, OpenError> {
    let started = Instant::now();
    let mut stats = ReplayStats::default();
    if !dir.exists() {
        return Ok(stats);
    }
    let mut reader = WalReader::open(dir).map_err(|source| OpenError::Wal {
        dir: dir.to_path_buf(),
        source,
    })?;
    let (read, counts) = head.replay(workers, |sink| feed(&mut reader, dir, sink, &mut stats));
    let repair_at = read?.or(reader.torn_tail());
    stats.samples_appended = counts.appended;
    stats.samples_rejected = counts.rejected;
    stats.unknown_refs = counts.unknown_refs;
    stats.samples_in_blocks = counts.in_blocks;
    if let Some(at) = repair_at {
        drop(reader);
        repair(dir, at).map_err(|source| OpenError::Wal {
            dir: dir.to_path_buf(),
            source,
        })?;
        stats.repaired_at = Some(at);
    }
    stats.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        dir = %dir.display(),
        workers,
        records = stats.records,
        series = stats.series,
        samples = stats.samples,
        histograms = stats.histograms,
        samples_appended = stats.samples_appended,
        samples_rejected = stats.samples_rejected,
        unknown_refs = stats.unknown_refs,
        samples_in_blocks = stats.samples_in_blocks,
        skipped_records = stats.skipped_records,
        duration_ms = stats.duration_ms,
        "replayed wal"
    );
    Ok(stats)
}

/// Reads every record of `reader` into `sink`, counting in `stats`. Returns where the
/// log must be repaired when it stopped at a corrupt or undecodable record.
fn feed(
    reader: &mut WalReader,
    dir: &Path,
    sink: &mut ReplaySink<'_>,
    stats: &mut ReplayStats,
) -> Result<Option<Position>, OpenError> {
    let mut series_buf: Vec<RefSeries> = Vec::new();
    let mut samples_buf: Vec<RefSample> = Vec::new();
    let mut hist_buf: Vec<RefHistogramSample> = Vec::new();
    let mut float_hist_buf: Vec<RefFloatHistogramSample> = Vec::new();
    loop {
        let rec = match reader.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => return Ok(None),
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
                return Ok(Some(at));
            }
            Err(source) => {
                return Err(OpenError::Wal {
                    dir: dir.to_path_buf(),
                    source,
                });
            }
        };
        stats.records += 1;
        let decoded = match RecordType::of(rec) {
            Some(RecordType::Series) => {
                series_buf.clear();
                decode_series(rec, &mut series_buf)
            }
            Some(RecordType::Samples) => {
                samples_buf.clear();
                decode_samples(rec, &mut samples_buf)
            }
            Some(RecordType::HistogramSamples | RecordType::CustomBucketsHistogramSamples) => {
                hist_buf.clear();
                decode_histogram_samples(rec, &mut hist_buf)
            }
            Some(
                RecordType::FloatHistogramSamples | RecordType::CustomBucketsFloatHistogramSamples,
            ) => {
                float_hist_buf.clear();
                decode_float_histogram_samples(rec, &mut float_hist_buf)
            }
            _ => {
                stats.skipped_records += 1;
                continue;
            }
        };
        if let Err(err) = decoded {
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
            return Ok(Some(pos.position));
        }
        // Exactly one of the buffers was filled by this record.
        stats.series += series_buf.len() as u64;
        for s in series_buf.drain(..) {
            sink.series(s.series_ref, &s.labels);
        }
        stats.samples += samples_buf.len() as u64;
        sink.samples(&samples_buf);
        samples_buf.clear();
        stats.histograms += (hist_buf.len() + float_hist_buf.len()) as u64;
        sink.histograms(
            hist_buf
                .drain(..)
                .map(|s| (s.series_ref, s.t, HistogramValue::Int(s.h))),
        );
        sink.histograms(
            float_hist_buf
                .drain(..)
                .map(|s| (s.series_ref, s.t, HistogramValue::Float(s.fh))),
        );
    }
}

/// Replays `dir` into `head` with `workers` threads ([`replay`]), then opens the WAL for
/// writing there and attaches it to `head`. Creates `dir` if needed. Blocking.
pub fn open(
    head: &Head,
    dir: &Path,
    options: WalOptions,
    workers: usize,
) -> Result<ReplayStats, OpenError> {
    std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let stats = replay(head, dir, workers)?;
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

/// Checkpoints the WAL attached to `head` (directory `dir`) after a truncation to `mint`,
/// as Prometheus's head does: cuts the active segment, then, of the segments
/// `first..=last` that existed before the cut, writes `checkpoint.N` over the previous
/// checkpoint and the lower two thirds of the closed ones ([`checkpoint_range`]), keeping
/// the series still in the head (or created after this call started) and the samples at
/// or after `mint`, and deletes the covered segments and older checkpoints. The newer
/// third stays as segments: it holds mostly samples still in the head, which a
/// checkpoint would only copy. Returns `None` when the head has no WAL or nothing was
/// checkpointed. Blocking.
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
    let segments = list_segments(dir).map_err(|e| Box::new(e.into()))?;
    wal.cut().map_err(|e| Box::new(e.into()))?;
    let (Some(&first), Some(&last)) = (segments.first(), segments.last()) else {
        return Ok(None);
    };
    let Some((from, to)) = checkpoint_range(first, last) else {
        return Ok(None);
    };
    let mut filter = KeepFn {
        keep: |r: u64| r >= next || alive.contains(&r),
        mint,
    };
    match checkpoint(dir, from, to, &mut filter, compression) {
        Ok(stats) => Ok(Some(stats)),
        // The previous checkpoint already covers these segments.
        Err(CheckpointError::EmptyRange { .. }) => Ok(None),
        Err(e) => Err(Box::new(e)),
    }
}

/// The segments a head truncation checkpoints when segments `first..=last` exist
/// (`last` being the one written to until the truncation cut a new segment): never
/// `last`, and of the closed segments `first..last` only the lower two thirds,
/// `first..=first + (last - 1 - first) * 2 / 3`; `None` when that range would be the
/// single segment `first` or less (Prometheus's `Head.truncateWAL`).
pub fn checkpoint_range(first: u32, last: u32) -> Option<(u32, u32)> {
    let newest_closed = last.checked_sub(1).filter(|&l| l >= first)?;
    let end = u64::from(first) + u64::from(newest_closed - first) * 2 / 3;
    let end = u32::try_from(end).ok()?;
    (end > first).then_some((first, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::{HeadMetrics, HeadOptions, HeadSeries};
    use crate::write::{Batch, SeriesSamples};
    use thanos_model::{Labels, Sample};
    use thanos_wal::record::{encode_samples, encode_series};
    use thanos_wal::wlog::list_checkpoints;

    const T0: i64 = 1_700_000_000_000;

    fn head() -> Head {
        Head::new(HeadOptions::default(), HeadMetrics::unregistered())
    }

    fn series_record(series: &[(u64, Labels)]) -> Vec<u8> {
        let list: Vec<RefSeries> = series
            .iter()
            .map(|(r, l)| RefSeries {
                series_ref: *r,
                labels: l.clone(),
            })
            .collect();
        let mut buf = Vec::new();
        encode_series(&list, &mut buf);
        buf
    }

    fn samples_record(samples: &[(u64, i64, f64)]) -> Vec<u8> {
        let list: Vec<RefSample> = samples
            .iter()
            .map(|&(series_ref, t, v)| RefSample { series_ref, t, v })
            .collect();
        let mut buf = Vec::new();
        encode_samples(&list, &mut buf);
        buf
    }

    fn write_wal(dir: &Path, records: &[Vec<u8>]) {
        let mut wal = Wal::open(dir, WalOptions::default()).expect("open wal");
        wal.log(records).expect("log");
        wal.close().expect("close");
    }

    fn dump(head: &Head) -> Vec<(Labels, Vec<(i64, u64)>)> {
        head.select(&[], i64::MIN, i64::MAX)
            .into_iter()
            .map(|s: HeadSeries| {
                let samples = s.samples().map(|x| (x.t, x.v.to_bits())).collect();
                (s.labels, samples)
            })
            .collect()
    }

    /// A WAL written by another process (Prometheus, Thanos) numbers series its own way:
    /// sparse references, one label set under two references, samples for a reference
    /// that has no series record.
    #[test]
    fn replays_a_wal_whose_refs_are_not_head_ids() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Labels::from_pairs([("__name__", "a")]);
        let b = Labels::from_pairs([("__name__", "b")]);
        write_wal(
            dir.path(),
            &[
                series_record(&[(1000, a.clone()), (77, b.clone())]),
                samples_record(&[(1000, T0 + 10, 1.0), (77, T0 + 10, 2.0), (42, T0 + 10, 9.0)]),
                // `a` again under another reference: both refer to one series.
                series_record(&[(5000, a.clone())]),
                samples_record(&[
                    (5000, T0 + 20, 3.0),
                    (77, T0 + 5, 2.5),    // out of order for b
                    (1000, T0 + 20, 3.0), // identical resend through the first reference
                    (1000, T0 + 20, 4.0), // same timestamp, other value
                    (77, T0 - 1, 7.0),    // below the floor: already in a block
                    (5000, T0 + 30, 5.0),
                ]),
            ],
        );
        let h = head();
        h.set_min_valid_time(T0);
        let stats = replay(&h, dir.path(), 2).expect("replay");
        assert_eq!(stats.records, 4);
        assert_eq!(stats.series, 3);
        assert_eq!(stats.samples, 9);
        assert_eq!(stats.samples_appended, 4);
        assert_eq!(stats.samples_rejected, 2);
        assert_eq!(stats.unknown_refs, 1);
        assert_eq!(stats.samples_in_blocks, 1);
        assert_eq!(h.num_series(), 2);
        let want = vec![
            (
                a,
                vec![
                    (T0 + 10, 1f64.to_bits()),
                    (T0 + 20, 3f64.to_bits()),
                    (T0 + 30, 5f64.to_bits()),
                ],
            ),
            (b, vec![(T0 + 10, 2f64.to_bits())]),
        ];
        assert_eq!(dump(&h), want);
        assert_eq!((h.min_time(), h.max_time()), (Some(T0 + 10), Some(T0 + 30)));
        // The first reference names the series; new series are numbered above every
        // reference seen.
        let (refs, next) = h.series_refs();
        assert_eq!(refs, [77, 1000].into_iter().collect());
        assert_eq!(next, 5001);
    }

    /// A WAL with many series, duplicate references, out-of-order and unknown samples.
    fn busy_wal(dir: &Path) -> u64 {
        let mut records = Vec::new();
        let mut expected_appended = 0;
        let n = 500u64;
        // Sparse, shuffled references.
        let wal_ref = |i: u64| (i * 7919) % 100_003 + 10;
        for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
            let list: Vec<(u64, Labels)> = chunk
                .iter()
                .map(|&i| {
                    let job = format!("{}", i % 7);
                    let inst = format!("{i}");
                    (
                        wal_ref(i),
                        Labels::from_pairs([("job", job.as_str()), ("i", inst.as_str())]),
                    )
                })
                .collect();
            records.push(series_record(&list));
        }
        // Every tenth series is logged again under a second reference.
        let dup: Vec<(u64, Labels)> = (0..n)
            .step_by(10)
            .map(|i| {
                let job = format!("{}", i % 7);
                let inst = format!("{i}");
                (
                    200_000 + i,
                    Labels::from_pairs([("job", job.as_str()), ("i", inst.as_str())]),
                )
            })
            .collect();
        records.push(series_record(&dup));
        for round in 0..40i64 {
            let mut samples = Vec::new();
            for i in 0..n {
                // Alternate the two references of duplicated series.
                let r = if i % 10 == 0 && round % 2 == 1 {
                    200_000 + i
                } else {
                    wal_ref(i)
                };
                samples.push((r, T0 + round * 15_000, (round * 1000) as f64 + i as f64));
                expected_appended += 1;
                if i % 13 == 0 && round > 0 {
                    // Out of order: rejected.
                    samples.push((r, T0 + (round - 1) * 15_000 - 1, -1.0));
                }
            }
            samples.push((999_999, T0, 0.0));
            records.push(samples_record(&samples));
        }
        write_wal(dir, &records);
        expected_appended
    }

    #[test]
    fn parallel_replay_is_deterministic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let expected_appended = busy_wal(dir.path());
        let mut results = Vec::new();
        for workers in [1, 2, 3, 8] {
            let h = head();
            let mut stats = replay(&h, dir.path(), workers).expect("replay");
            stats.duration_ms = 0;
            results.push((
                workers,
                stats,
                dump(&h),
                h.min_time(),
                h.max_time(),
                h.num_series(),
            ));
        }
        let (_, first, first_dump, min_t, max_t, num) = &results[0];
        assert_eq!(first.samples_appended, expected_appended);
        assert_eq!(first.samples_rejected, 39 * 39);
        assert_eq!(first.unknown_refs, 40);
        assert_eq!(*num, 500);
        assert_eq!(first_dump.len(), 500);
        assert!(first_dump.iter().all(|(_, s)| s.len() == 40));
        assert_eq!((*min_t, *max_t), (Some(T0), Some(T0 + 39 * 15_000)));
        for (workers, stats, dump, mi, ma, n) in &results[1..] {
            assert_eq!(stats, first, "stats with {workers} workers");
            assert!(dump == first_dump, "head content with {workers} workers");
            assert_eq!((mi, ma, n), (min_t, max_t, num), "{workers} workers");
        }
    }

    /// Appends one sample to each of `n` series at time `t`.
    fn append(head: &Head, n: usize, t: i64) {
        let series = (0..n)
            .map(|i| SeriesSamples {
                histograms: Vec::new(),
                labels: Labels::from_pairs([("i", i.to_string().as_str())]),
                samples: vec![Sample::new(t, 1.0)],
            })
            .collect();
        head.append_batch(&Batch::from_series(series), t)
            .expect("acknowledged");
    }

    fn hist(t: i64, count: u64) -> crate::histogram::HistogramSample {
        crate::histogram::HistogramSample {
            t,
            value: HistogramValue::Int(thanos_model::Histogram {
                count,
                sum: 1.0,
                positive_spans: vec![thanos_model::Span::new(0, 1)],
                positive_buckets: vec![count as i64],
                ..Default::default()
            }),
        }
    }

    fn float_hist(t: i64, count: f64) -> crate::histogram::HistogramSample {
        crate::histogram::HistogramSample {
            t,
            value: HistogramValue::Float(thanos_model::FloatHistogram {
                count,
                sum: 1.0,
                zero_count: count,
                ..Default::default()
            }),
        }
    }

    /// Every sample of the head as (labels, t, kind, value or count), kind 1 = float, 2 =
    /// integer histogram, 3 = float histogram.
    fn decoded(h: &Head) -> Vec<(String, i64, u8, u64)> {
        use thanos_model::chunkenc::SampleIterator;
        let mut out = Vec::new();
        for s in h.select(&[], i64::MIN, i64::MAX) {
            for c in &s.chunks {
                let l = s.labels.to_string();
                match c.decode().expect("chunk") {
                    SampleIterator::Float(it) => {
                        out.extend(it.map(|x| (l.clone(), x.t, 1, x.v.to_bits())));
                    }
                    SampleIterator::Histogram(it) => {
                        out.extend(it.map(|(t, x)| (l.clone(), t, 2, x.count)));
                    }
                    SampleIterator::FloatHistogram(it) => {
                        out.extend(it.map(|(t, x)| (l.clone(), t, 3, x.count.to_bits())));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn histograms_are_logged_replayed_in_order_and_checkpointed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = head();
        open(&h, dir.path(), WalOptions::default(), 2).expect("open");
        let wal = h.wal().expect("wal attached");
        let m = |i: usize| Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]);
        for round in 0..6i64 {
            if round > 0 {
                wal.cut().expect("cut");
            }
            let t = T0 + round * 10_000;
            let mut series = Vec::new();
            for i in 0..20 {
                // Per series: floats, then an integer histogram (a counter reset every
                // third round), then the same labels again with a float histogram and a
                // float: every type change lands in a record of its own, in order.
                series.push(SeriesSamples {
                    labels: m(i),
                    samples: vec![Sample::new(t, i as f64)],
                    histograms: vec![hist(
                        t + 1,
                        if round % 3 == 2 { 1 } else { 10 + round as u64 },
                    )],
                });
                series.push(SeriesSamples {
                    labels: m(i),
                    samples: vec![],
                    histograms: vec![float_hist(t + 2, 2.0), float_hist(t + 3, 3.0)],
                });
                series.push(SeriesSamples {
                    labels: m(i),
                    samples: vec![Sample::new(t + 4, 4.0)],
                    histograms: vec![],
                });
            }
            let report = h
                .append_batch(&Batch::from_series(series), t)
                .expect("acknowledged");
            assert!(report.rejections.is_empty(), "{}", report.rejections);
            assert_eq!((report.appended, report.histograms), (100, 60));
        }
        let want = h.select(&[], i64::MIN, i64::MAX);
        for workers in [1, 3] {
            let replayed = head();
            let stats = replay(&replayed, dir.path(), workers).expect("replay");
            assert_eq!((stats.histograms, stats.samples_rejected), (360, 0));
            assert!(
                replayed.select(&[], i64::MIN, i64::MAX) == want,
                "{workers} workers"
            );
        }

        // Inside round 2: its integer histogram goes, its float histograms stay.
        let mint = T0 + 20_002;
        h.truncate(mint);
        let stats = checkpoint_head(&h, dir.path(), mint, Compression::Snappy)
            .expect("checkpoint")
            .expect("checkpointed");
        assert!(stats.total_histograms > 0);
        assert!(
            stats.dropped_histograms > 0 && stats.dropped_histograms < stats.total_histograms,
            "{stats:?}"
        );
        let replayed = head();
        let stats = replay(&replayed, dir.path(), 2).expect("replay");
        assert_eq!(stats.samples_rejected, 0);
        let got = decoded(&replayed);
        assert_eq!(got, decoded(&h));
        assert_eq!(got.len(), 20 * (3 * 5 + 3));
        assert!(got.iter().all(|s| s.1 >= mint));
    }

    fn segments_and_checkpoints(dir: &Path) -> (Vec<u32>, Vec<u32>) {
        let segs = list_segments(dir).expect("segments");
        let cps = list_checkpoints(dir)
            .expect("checkpoints")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        (segs, cps)
    }

    #[test]
    fn head_truncation_checkpoints_two_thirds_of_the_closed_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = head();
        open(&h, dir.path(), WalOptions::default(), 1).expect("open");
        let wal = h.wal().expect("wal attached");
        // Segments 0..=3, each with one round of samples; 3 is active.
        for round in 0..4 {
            if round > 0 {
                wal.cut().expect("cut");
            }
            append(&h, 5, T0 + round * 1000);
        }
        assert_eq!(
            segments_and_checkpoints(dir.path()),
            (vec![0, 1, 2, 3], vec![])
        );
        let mint = T0 + 1000;
        h.truncate(mint);
        let stats = checkpoint_head(&h, dir.path(), mint, Compression::Snappy).expect("checkpoint");
        assert!(stats.is_some());
        // 0..=1 checkpointed; 2 and 3 stay, 4 is the new active segment.
        assert_eq!(
            segments_and_checkpoints(dir.path()),
            (vec![2, 3, 4], vec![1])
        );
        append(&h, 5, T0 + 4000);
        // Segments 2..=4: only 2..=2 would qualify, not worth a checkpoint.
        let stats = checkpoint_head(&h, dir.path(), mint, Compression::Snappy).expect("checkpoint");
        assert!(stats.is_none());
        assert_eq!(
            segments_and_checkpoints(dir.path()),
            (vec![2, 3, 4, 5], vec![1])
        );
        append(&h, 5, T0 + 5000);
        let mint = T0 + 2500;
        h.truncate(mint);
        checkpoint_head(&h, dir.path(), mint, Compression::Snappy).expect("checkpoint");
        assert_eq!(
            segments_and_checkpoints(dir.path()),
            (vec![4, 5, 6], vec![3])
        );
        // Checkpoint plus the remaining segments replay the head.
        let before = dump(&h);
        drop(h);
        let replayed = head();
        replayed.set_min_valid_time(mint);
        let stats = replay(&replayed, dir.path(), 2).expect("replay");
        assert_eq!(stats.unknown_refs, 0);
        assert_eq!(dump(&replayed), before);
        assert!(before.iter().all(|(_, s)| s.len() == 3), "{before:?}");
    }

    #[test]
    fn checkpoint_range_takes_the_lower_two_thirds_of_closed_segments() {
        // Too few closed segments: nothing is worth checkpointing yet.
        assert_eq!(checkpoint_range(0, 0), None);
        assert_eq!(checkpoint_range(0, 1), None);
        assert_eq!(checkpoint_range(0, 2), None);
        // Observed with Prometheus 2.42: segments 0..=3 → checkpoint of 0..=1.
        assert_eq!(checkpoint_range(0, 3), Some((0, 1)));
        assert_eq!(checkpoint_range(2, 5), Some((2, 3)));
        assert_eq!(checkpoint_range(0, 10), Some((0, 6)));
        assert_eq!(checkpoint_range(7, 7), None);
        assert_eq!(
            checkpoint_range(u32::MAX - 4, u32::MAX),
            Some((u32::MAX - 4, u32::MAX - 2))
        );
    }
}
