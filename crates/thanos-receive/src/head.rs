//! The in-memory head of one tenant: series with XOR and native histogram chunks, append
//! rules and queries.
//!
//! Mirrors Prometheus's `tsdb/head` (`head.go`, `head_append.go`, `head_read.go`):
//!
//! * Series are interned by label set in striped hash maps keyed by
//!   [`Labels::stable_hash`]; hash collisions are kept in a per-stripe side map, as
//!   Prometheus's `stripeSeries` does. A series keeps its labels packed in a single
//!   allocation (length-prefixed names and values, like Prometheus's `stringlabels`), not
//!   as one heap string per name and value.
//! * Each series holds closed, exactly-sized XOR chunks plus one open chunk; the open chunk
//!   is cut after [`HeadOptions::samples_per_chunk`] samples (120, as Prometheus) or when
//!   a sample crosses the chunk-range boundary (2h-aligned), so chunks never span blocks.
//! * Native histograms (integer and float) go into histogram chunks (encodings 2 and 3)
//!   under the same cutting rules. A series holds one open chunk at a time: a sample of
//!   another type (float, integer histogram, float histogram) closes it and starts one of
//!   its own type, as Prometheus does. When the chunk appender refuses a histogram
//!   (counter reset, schema or zero-threshold change, gauge/counter switch) a new chunk
//!   is cut with the counter-reset header the appender's reason calls for. A series'
//!   histograms are appended after its float samples of the same request.
//! * Append rules (per sample, floats and histograms alike): `t` further than the too-far-in-future window ahead of
//!   now → [`Reason::TooFarInFuture`], checked before anything is touched, so a wild
//!   timestamp neither creates the series nor moves the head's max time; `t` below the
//!   minimum valid time (`max(min_valid_time, max_time - chunk_range/2)`) →
//!   [`Reason::OutOfBounds`]; `t` below the series' last timestamp →
//!   [`Reason::OutOfOrder`]; equal timestamp with a different value (bitwise) →
//!   [`Reason::DuplicateSample`]; an identical resend is a no-op. Rejected samples are
//!   counted per reason; the other samples of the same request are kept.
//! * Blocks: [`Head::block_series`] hands out the chunks of a block range and
//!   [`Head::truncate`] then drops everything below it, removing emptied series and
//!   raising the minimum valid time so nothing can be appended below a written block.
//! * Concurrency: appenders take a stripe's read lock and then the series' own mutex;
//!   only creating a series takes a stripe's write lock. There is no global lock.
//!
//! Durability: [`Head::append_batch`] is the single entry point of the write path. Once a
//! WAL is attached ([`Head::attach_wal`], see [`crate::wal`]), every batch logs a series
//! record for the series it created and a samples record for every sample it accepted
//! (identical resends included), and waits for the group-commit fsync before returning.
//! Appending to memory and logging happen under one per-head lock, so the WAL holds
//! every series' samples in the order they were appended (a record holds one sample
//! type; a batch switching types writes several records, in order) and replays without
//! out-of-order rejections; the fsync wait happens outside that lock and is shared by
//! concurrent writers. Series references in the WAL are the head's own series IDs,
//! which replay keeps, so later records keep referring to the same series.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use bytes::Bytes;
use prometheus::{IntCounter, IntGauge};
use thanos_model::chunkenc::histogram::{
    AppendOutcome, CounterResetHeader, CutReason, FloatHistogramChunk, FloatHistogramIterator,
    HistogramChunk, HistogramIterator,
};
use thanos_model::chunkenc::{SampleIterator, decode_any};
use thanos_model::{ChunkError, Encoding, Label, Labels, Matcher, Sample, XorChunk, XorIterator};
use thanos_wal::record::{
    RefFloatHistogramSample, RefHistogramSample, RefSample, RefSeries,
    encode_float_histogram_samples, encode_histogram_samples, encode_samples, encode_series,
};
use thanos_wal::wlog::{GroupCommitWal, WalError};

use crate::error::{Reason, Rejections};
use crate::histogram::{HistogramSample, HistogramValue};
use crate::write::{Batch, SeriesSamples};

/// Settings of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadOptions {
    /// Block/chunk range in milliseconds (`--tsdb.min-block-duration`, 2h); chunks are cut
    /// at multiples of it and the append window is half of it.
    pub chunk_range_ms: i64,
    /// Samples after which the open chunk is cut (Prometheus: 120).
    pub samples_per_chunk: usize,
    /// `--tsdb.too-far-in-future.time-window` in milliseconds; 0 disables the check.
    pub too_far_in_future_ms: i64,
}

impl Default for HeadOptions {
    fn default() -> Self {
        Self {
            chunk_range_ms: 2 * 3600 * 1000,
            samples_per_chunk: 120,
            too_far_in_future_ms: 0,
        }
    }
}

/// Number of lock stripes (a power of two).
const STRIPES: usize = 256;

/// Identity hasher for maps keyed by an already well-mixed 64-bit hash.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct Stripe {
    /// The first series seen for a hash. Series are shared so that WAL replay can keep a
    /// handle per series reference and append without looking labels up again.
    unique: IdMap<Arc<MemSeries>>,
    /// Further series whose labels hash to the same value (practically never used).
    conflicts: IdMap<Vec<Arc<MemSeries>>>,
}

impl Stripe {
    fn get(&self, hash: u64, labels: &Labels) -> Option<&Arc<MemSeries>> {
        if let Some(s) = self.unique.get(&hash) {
            if s.labels_eq(labels) {
                return Some(s);
            }
            return self
                .conflicts
                .get(&hash)?
                .iter()
                .find(|s| s.labels_eq(labels));
        }
        None
    }

    /// Removes the series for which `keep` returns false (called once per series);
    /// returns how many were removed.
    fn retain(&mut self, mut keep: impl FnMut(&MemSeries) -> bool) -> u64 {
        let mut removed = 0;
        self.conflicts.retain(|_, list| {
            let before = list.len();
            list.retain(|s| keep(s));
            removed += (before - list.len()) as u64;
            !list.is_empty()
        });
        let gone: Vec<u64> = self
            .unique
            .iter()
            .filter(|(_, s)| !keep(s))
            .map(|(h, _)| *h)
            .collect();
        for hash in gone {
            self.unique.remove(&hash);
            removed += 1;
            // Promote a colliding series so lookups keep finding it.
            if let Some(list) = self.conflicts.get_mut(&hash)
                && let Some(s) = list.pop()
            {
                if list.is_empty() {
                    self.conflicts.remove(&hash);
                }
                self.unique.insert(hash, s);
            }
        }
        removed
    }

    fn iter(&self) -> impl Iterator<Item = &MemSeries> {
        self.unique
            .values()
            .chain(self.conflicts.values().flatten())
            .map(|s| &**s)
    }
}

/// A label set packed into one allocation: for every label, the name and then the value,
/// each as a LEB128 length followed by its UTF-8 bytes (the layout of Prometheus's
/// default `stringlabels` build). Compared with one heap string per name and value this
/// saves the per-string headers and allocations, and comparing a series' labels with a
/// request's touches one contiguous buffer instead of chasing a pointer per string.
struct PackedLabels(Box<[u8]>);

impl PackedLabels {
    fn new(labels: &Labels) -> Self {
        let size: usize = labels
            .iter()
            .map(|l| l.name.len() + l.value.len() + 2 * 5)
            .sum();
        let mut buf = Vec::with_capacity(size);
        for l in labels {
            for s in [&l.name, &l.value] {
                let mut n = s.len();
                while n >= 0x80 {
                    buf.push((n as u8) | 0x80);
                    n >>= 7;
                }
                buf.push(n as u8);
                buf.extend_from_slice(s.as_bytes());
            }
        }
        Self(buf.into_boxed_slice())
    }

    /// `(name, value)` byte slices in label order.
    fn pairs(&self) -> PackedPairs<'_> {
        PackedPairs { buf: &self.0 }
    }

    fn eq_labels(&self, labels: &Labels) -> bool {
        let mut pairs = self.pairs();
        labels.iter().all(|l| {
            pairs
                .next()
                .is_some_and(|(n, v)| n == l.name.as_bytes() && v == l.value.as_bytes())
        }) && pairs.next().is_none()
    }
}

struct PackedPairs<'a> {
    buf: &'a [u8],
}

impl<'a> PackedPairs<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let (&b, rest) = self.buf.split_first()?;
            self.buf = rest;
            len |= usize::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
            shift += 7;
        }
        let (s, rest) = self.buf.split_at_checked(len)?;
        self.buf = rest;
        Some(s)
    }
}

impl<'a> Iterator for PackedPairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        Some((self.string()?, self.string()?))
    }
}

/// Bytes that came from a `&str` (packed labels are only built from [`Labels`]).
fn text(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

/// One series: its packed labels and its samples.
struct MemSeries {
    /// The series ID, used as the series reference in WAL records.
    series_ref: u64,
    labels: PackedLabels,
    state: Mutex<SeriesState>,
}

impl MemSeries {
    fn new(series_ref: u64, labels: &Labels) -> Self {
        Self {
            series_ref,
            labels: PackedLabels::new(labels),
            state: Mutex::new(SeriesState::new()),
        }
    }

    fn labels_eq(&self, labels: &Labels) -> bool {
        self.labels.eq_labels(labels)
    }

    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .pairs()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| text(v))
    }

    fn matches(&self, matchers: &[Matcher]) -> bool {
        matchers
            .iter()
            .all(|m| m.matches(self.label(m.name()).unwrap_or("")))
    }

    fn to_labels(&self) -> Labels {
        Labels::from_sorted_unchecked(
            self.labels
                .pairs()
                .map(|(n, v)| Label::new(text(n), text(v)))
                .collect::<Vec<_>>(),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SeriesState> {
        // A panic while holding the lock cannot leave a half-appended sample: the
        // chunk append is the last mutation, so the state stays usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The open histogram chunk of a series: integer or float counts.
enum HistChunk {
    Int(HistogramChunk),
    Float(FloatHistogramChunk),
}

impl HistChunk {
    /// An empty chunk for the kind of `v` with counter-reset header `header`.
    fn for_value(v: &HistogramValue, header: CounterResetHeader) -> Self {
        match v {
            HistogramValue::Int(_) => Self::Int(HistogramChunk::with_header(header)),
            HistogramValue::Float(_) => Self::Float(FloatHistogramChunk::with_header(header)),
        }
    }

    /// True when `v` has the kind of this chunk (integer or float counts).
    fn holds(&self, v: &HistogramValue) -> bool {
        matches!(
            (self, v),
            (Self::Int(_), HistogramValue::Int(_)) | (Self::Float(_), HistogramValue::Float(_))
        )
    }

    /// Appends `v`, which must be of the chunk's kind (see [`HistChunk::holds`]).
    fn append(&mut self, t: i64, v: &HistogramValue) -> Result<AppendOutcome, ChunkError> {
        match (self, v) {
            (Self::Int(c), HistogramValue::Int(h)) => c.append(t, h),
            (Self::Float(c), HistogramValue::Float(h)) => c.append(t, h),
            _ => Ok(AppendOutcome::NewChunk(CutReason::LayoutChanged)),
        }
    }

    fn num_samples(&self) -> usize {
        match self {
            Self::Int(c) => c.num_samples(),
            Self::Float(c) => c.num_samples(),
        }
    }

    fn min_time(&self) -> Option<i64> {
        match self {
            Self::Int(c) => c.min_time(),
            Self::Float(c) => c.min_time(),
        }
    }

    fn max_time(&self) -> Option<i64> {
        match self {
            Self::Int(c) => c.max_time(),
            Self::Float(c) => c.max_time(),
        }
    }

    fn encoding(&self) -> Encoding {
        match self {
            Self::Int(_) => Encoding::Histogram,
            Self::Float(_) => Encoding::FloatHistogram,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Self::Int(c) => c.bytes(),
            Self::Float(c) => c.bytes(),
        }
    }

    /// The chunk as a [`ChunkMeta`] (`None` when empty), its bytes copied.
    fn meta(&self) -> Option<ChunkMeta> {
        Some(ChunkMeta {
            min_time: self.min_time()?,
            max_time: self.max_time()?,
            encoding: self.encoding(),
            data: Bytes::copy_from_slice(self.bytes()),
        })
    }

    /// The chunk as a [`ChunkMeta`] (`None` when empty), taking its bytes.
    fn into_meta(self) -> Option<ChunkMeta> {
        let (min_time, max_time, encoding) = (self.min_time()?, self.max_time()?, self.encoding());
        let data = match self {
            Self::Int(c) => c.into_bytes(),
            Self::Float(c) => c.into_bytes(),
        };
        Some(ChunkMeta {
            min_time,
            max_time,
            encoding,
            data: Bytes::from(data.into_boxed_slice()),
        })
    }
}

/// Histogram state of a series whose newest sample or open chunk is a histogram.
#[derive(Default)]
struct HistState {
    /// The open histogram chunk (none after a truncation moved it to the closed ones).
    open: Option<HistChunk>,
    /// The newest histogram sample, for telling identical resends from conflicts.
    last: Option<HistogramValue>,
}

struct SeriesState {
    closed: Vec<ChunkMeta>,
    open: XorChunk,
    /// Set while the series' newest sample is a histogram; at most one of `open` and
    /// `hist.open` holds samples (a sample of the other type cuts the open chunk).
    hist: Option<Box<HistState>>,
    /// Exclusive end of the chunk range the open chunk belongs to.
    open_end: i64,
    /// Timestamp and value bits of the newest sample (`i64::MIN` when empty).
    last_t: i64,
    last_v: u64,
}

/// Outcome of appending one sample that did not fail.
enum Appended {
    New,
    Identical,
}

/// Exclusive end of the `range`-aligned chunk range holding `t`.
fn range_end(t: i64, range: i64) -> i64 {
    t.div_euclid(range).saturating_add(1).saturating_mul(range)
}

impl SeriesState {
    fn new() -> Self {
        Self {
            closed: Vec::new(),
            open: XorChunk::new(),
            hist: None,
            open_end: i64::MIN,
            last_t: i64::MIN,
            last_v: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.last_t == i64::MIN && self.open.is_empty() && self.closed.is_empty()
    }

    fn append(
        &mut self,
        s: Sample,
        opts: &HeadOptions,
        chunks_created: &IntCounter,
    ) -> Result<Appended, Reason> {
        if !self.is_empty() {
            if s.t < self.last_t {
                return Err(Reason::OutOfOrder);
            }
            if s.t == self.last_t {
                return if self.hist.is_none() && s.v.to_bits() == self.last_v {
                    Ok(Appended::Identical)
                } else {
                    Err(Reason::DuplicateSample)
                };
            }
        }
        if let Some(hist) = self.hist.take()
            && let Some(open) = hist.open
        {
            // The sample type changes: the histogram chunk is closed.
            self.closed.extend(open.into_meta());
        }
        if !self.open.is_empty()
            && (self.open.num_samples() >= opts.samples_per_chunk || s.t >= self.open_end)
        {
            self.cut();
        }
        if self.open.is_empty() {
            self.open_end = range_end(s.t, opts.chunk_range_ms);
            chunks_created.inc();
        }
        self.open.append(s.t, s.v);
        self.last_t = s.t;
        self.last_v = s.v.to_bits();
        Ok(Appended::New)
    }

    /// Appends a native histogram sample with the same order and duplicate rules as
    /// floats. The open chunk is cut when the sample type changes (float, integer or
    /// float histogram), when it is full or crosses the chunk range, and when the chunk
    /// appender asks for a new chunk (counter reset, schema change, …), which then gets
    /// the counter-reset header the appender's reason calls for.
    fn append_histogram(
        &mut self,
        t: i64,
        v: &HistogramValue,
        opts: &HeadOptions,
        chunks_created: &IntCounter,
    ) -> Result<Appended, Reason> {
        if !self.is_empty() {
            if t < self.last_t {
                return Err(Reason::OutOfOrder);
            }
            if t == self.last_t {
                let last = self.hist.as_ref().and_then(|h| h.last.as_ref());
                return match last {
                    Some(last) if last.same_as(v) => Ok(Appended::Identical),
                    _ => Err(Reason::DuplicateSample),
                };
            }
        }
        if !self.open.is_empty() {
            // The sample type changes: the float chunk is closed.
            self.cut();
        }
        let mut hist = self.hist.take().unwrap_or_default();
        let mut header = CounterResetHeader::Unknown;
        if let Some(open) = &mut hist.open {
            let fits =
                open.holds(v) && open.num_samples() < opts.samples_per_chunk && t < self.open_end;
            let outcome = if fits {
                match open.append(t, v) {
                    Ok(outcome) => Some(outcome),
                    Err(_) => {
                        self.hist = Some(hist);
                        return Err(Reason::InvalidHistogram);
                    }
                }
            } else {
                None
            };
            match outcome {
                Some(AppendOutcome::Appended | AppendOutcome::Recoded) => {
                    hist.last = Some(v.clone());
                    self.hist = Some(hist);
                    self.last_t = t;
                    return Ok(Appended::New);
                }
                Some(AppendOutcome::NewChunk(reason)) => header = reason.next_chunk_header(),
                None => {}
            }
            if let Some(open) = hist.open.take() {
                self.closed.extend(open.into_meta());
            }
        }
        let mut chunk = HistChunk::for_value(v, header);
        let appended = matches!(
            chunk.append(t, v),
            Ok(AppendOutcome::Appended | AppendOutcome::Recoded)
        );
        if !appended {
            self.hist = Some(hist);
            return Err(Reason::InvalidHistogram);
        }
        chunks_created.inc();
        self.open_end = range_end(t, opts.chunk_range_ms);
        hist.open = Some(chunk);
        hist.last = Some(v.clone());
        self.hist = Some(hist);
        self.last_t = t;
        Ok(Appended::New)
    }

    fn cut(&mut self) {
        let open = std::mem::take(&mut self.open);
        let (Some(min_time), Some(max_time)) = (open.min_time(), open.max_time()) else {
            return;
        };
        let data = Bytes::from(open.into_bytes().into_boxed_slice());
        self.closed.push(ChunkMeta {
            min_time,
            max_time,
            encoding: Encoding::Xor,
            data,
        });
    }

    fn open_hist(&self) -> Option<&HistChunk> {
        self.hist.as_ref().and_then(|h| h.open.as_ref())
    }

    /// The open chunk (float or histogram) as a [`ChunkMeta`], if it holds samples.
    fn open_meta(&self) -> Option<ChunkMeta> {
        if let Some(h) = self.open_hist() {
            return h.meta();
        }
        Some(ChunkMeta {
            min_time: self.open.min_time()?,
            max_time: self.open.max_time()?,
            encoding: Encoding::Xor,
            data: Bytes::copy_from_slice(self.open.bytes()),
        })
    }

    /// Time range of the open chunk (float or histogram), if it holds samples.
    fn open_range(&self) -> Option<(i64, i64)> {
        match self.open_hist() {
            Some(h) => Some((h.min_time()?, h.max_time()?)),
            None => Some((self.open.min_time()?, self.open.max_time()?)),
        }
    }

    /// True when the series holds no sample in memory.
    fn has_no_data(&self) -> bool {
        self.closed.is_empty() && self.open.is_empty() && self.open_hist().is_none()
    }

    /// Chunks holding the samples in `[mint, maxt)` (end-exclusive, as block ranges are);
    /// a chunk reaching outside the range is re-encoded with only the samples inside.
    fn chunks_in_block_range(&self, mint: i64, maxt: i64) -> Vec<ChunkMeta> {
        let mut out = Vec::new();
        let mut take = |c: ChunkMeta| {
            if c.max_time < mint || c.min_time >= maxt {
                return;
            }
            if c.min_time >= mint && c.max_time < maxt {
                out.push(c);
            } else {
                out.extend(reencode(c.encoding, &c.data, mint, maxt));
            }
        };
        for c in &self.closed {
            take(c.clone());
        }
        if let Some(open) = self.open_meta() {
            take(open);
        }
        out
    }

    /// Drops every sample older than `mint`; returns the number of chunks removed.
    fn truncate(&mut self, mint: i64) -> u64 {
        let mut removed = 0;
        if self.closed.iter().any(|c| c.min_time < mint) {
            let mut kept = Vec::with_capacity(self.closed.len());
            for c in std::mem::take(&mut self.closed) {
                if c.max_time < mint {
                    removed += 1;
                } else if c.min_time < mint {
                    let parts = reencode(c.encoding, &c.data, mint, i64::MAX);
                    if parts.is_empty() {
                        removed += 1;
                    }
                    kept.extend(parts);
                } else {
                    kept.push(c);
                }
            }
            self.closed = kept;
        }
        if let Some(hist) = &mut self.hist
            && let Some((a, b)) = hist
                .open
                .as_ref()
                .and_then(|h| Some((h.min_time()?, h.max_time()?)))
            && a < mint
        {
            let open = hist.open.take();
            if b < mint {
                removed += 1;
            } else if let Some(open) = open {
                // The part at or after `mint` is closed; a later histogram starts a new
                // chunk.
                let parts = reencode(open.encoding(), open.bytes(), mint, i64::MAX);
                self.closed.extend(parts);
            }
        }
        if let (Some(a), Some(b)) = (self.open.min_time(), self.open.max_time()) {
            if b < mint {
                self.open = XorChunk::new();
                removed += 1;
            } else if a < mint {
                let mut kept = XorChunk::new();
                for s in self.open.iter().filter(|s| s.t >= mint) {
                    kept.append(s.t, s.v);
                }
                self.open = kept;
            }
        }
        removed
    }

    /// Timestamp of the oldest sample in memory.
    fn min_time(&self) -> Option<i64> {
        self.closed
            .first()
            .map(|c| c.min_time)
            .or_else(|| self.open_range().map(|(a, _)| a))
    }

    fn overlaps(&self, mint: i64, maxt: i64) -> bool {
        self.closed
            .iter()
            .any(|c| c.max_time >= mint && c.min_time <= maxt)
            || matches!(self.open_range(), Some((a, b)) if b >= mint && a <= maxt)
    }

    fn chunks(&self, mint: i64, maxt: i64) -> Vec<ChunkMeta> {
        let mut out: Vec<ChunkMeta> = self
            .closed
            .iter()
            .filter(|c| c.max_time >= mint && c.min_time <= maxt)
            .cloned()
            .collect();
        if let Some((a, b)) = self.open_range()
            && b >= mint
            && a <= maxt
        {
            out.extend(self.open_meta());
        }
        out
    }
}

/// One chunk of a series as returned by queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Timestamp of the first sample.
    pub min_time: i64,
    /// Timestamp of the last sample.
    pub max_time: i64,
    /// The chunk encoding: XOR for float samples, histogram or float histogram for
    /// native histograms.
    pub encoding: Encoding,
    /// Chunk bytes (sample-count header included, encoding byte excluded), exactly as
    /// stored in TSDB chunk files.
    pub data: Bytes,
}

impl ChunkMeta {
    /// Iterates the chunk's float samples (nothing for a histogram chunk; see
    /// [`ChunkMeta::decode`]).
    pub fn iter(&self) -> XorIterator<'_> {
        let data: &[u8] = if self.encoding == Encoding::Xor {
            &self.data
        } else {
            &[]
        };
        XorIterator::new(data)
    }

    /// Iterates the chunk's samples whatever its encoding.
    pub fn decode(&self) -> Result<SampleIterator<'_>, ChunkError> {
        decode_any(self.encoding.as_u8(), &self.data)
    }
}

/// Re-encodes the samples of chunk `data` that lie in `[mint, maxt)`; empty when there
/// are none. Histogram samples keep their decoded counter-reset hints, so the first
/// re-encoded chunk gets the header the original chunk implies.
fn reencode(encoding: Encoding, data: &[u8], mint: i64, maxt: i64) -> Vec<ChunkMeta> {
    let inside = |t: i64| t >= mint && t < maxt;
    match encoding {
        Encoding::Histogram => reencode_hist(
            HistogramIterator::new(data)
                .filter(|(t, _)| inside(*t))
                .map(|(t, h)| (t, HistogramValue::Int(h))),
        ),
        Encoding::FloatHistogram => reencode_hist(
            FloatHistogramIterator::new(data)
                .filter(|(t, _)| inside(*t))
                .map(|(t, h)| (t, HistogramValue::Float(h))),
        ),
        _ => {
            let mut chunk = XorChunk::new();
            for s in XorIterator::new(data).filter(|s| inside(s.t)) {
                chunk.append(s.t, s.v);
            }
            let (Some(min_time), Some(max_time)) = (chunk.min_time(), chunk.max_time()) else {
                return Vec::new();
            };
            vec![ChunkMeta {
                min_time,
                max_time,
                encoding: Encoding::Xor,
                data: Bytes::from(chunk.into_bytes()),
            }]
        }
    }
}

/// Appends histogram samples to as many chunks as the chunk appender asks for.
fn reencode_hist(samples: impl Iterator<Item = (i64, HistogramValue)>) -> Vec<ChunkMeta> {
    let mut out = Vec::new();
    let mut chunk: Option<HistChunk> = None;
    for (t, v) in samples {
        if let Some(c) = &mut chunk {
            match c.append(t, &v) {
                Ok(AppendOutcome::Appended | AppendOutcome::Recoded) => continue,
                Ok(AppendOutcome::NewChunk(reason)) => {
                    let mut fresh = HistChunk::for_value(&v, reason.next_chunk_header());
                    // Decoded samples of one chunk fit an empty chunk of their kind.
                    let _ = fresh.append(t, &v);
                    out.extend(chunk.replace(fresh).and_then(HistChunk::into_meta));
                    continue;
                }
                Err(_) => continue,
            }
        }
        let mut fresh = HistChunk::for_value(&v, CounterResetHeader::Unknown);
        let _ = fresh.append(t, &v);
        chunk = Some(fresh);
    }
    out.extend(chunk.and_then(HistChunk::into_meta));
    out
}

/// A series returned by [`Head::select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadSeries {
    /// The series' labels.
    pub labels: Labels,
    /// Chunks overlapping the queried range, oldest first.
    pub chunks: Vec<ChunkMeta>,
}

impl HeadSeries {
    /// Every sample of the returned chunks, in time order (chunks may reach outside the
    /// queried range; filter by timestamp if needed).
    pub fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        self.chunks.iter().flat_map(ChunkMeta::iter)
    }
}

/// Result of [`Head::append_batch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendReport {
    /// Samples stored (floats and histograms).
    pub appended: u64,
    /// Histogram samples accepted: stored or identical resends (also counted in
    /// `appended` / `identical`).
    pub histograms: u64,
    /// Histogram samples stored (also counted in `appended`).
    pub histograms_appended: u64,
    /// Identical resends of the newest sample, accepted without storing anything.
    pub identical: u64,
    /// Series created by this batch.
    pub series_created: u64,
    /// Samples rejected, per reason.
    pub rejections: Rejections,
}

/// Per-tenant head metrics (Prometheus's `prometheus_tsdb_*` names; the tenant label is
/// added by [`crate::MultiTsdb`]).
#[derive(Debug, Clone)]
pub struct HeadMetrics {
    /// `prometheus_tsdb_head_series`.
    pub series: IntGauge,
    /// `prometheus_tsdb_head_series_created_total`.
    pub series_created: IntCounter,
    /// `prometheus_tsdb_head_chunks_created_total`.
    pub chunks_created: IntCounter,
    /// `prometheus_tsdb_head_samples_appended_total{type="float"}`.
    pub samples_appended: IntCounter,
    /// `prometheus_tsdb_head_samples_appended_total{type="histogram"}` (integer and float
    /// histograms).
    pub histograms_appended: IntCounter,
    /// `prometheus_tsdb_out_of_order_samples_total{type="float"}`.
    pub out_of_order: IntCounter,
    /// `prometheus_tsdb_out_of_bounds_samples_total{type="float"}` (too far in the future
    /// included, as Prometheus counts it).
    pub out_of_bounds: IntCounter,
}

impl HeadMetrics {
    /// Metrics not registered anywhere (for standalone heads and tests).
    pub fn unregistered() -> Self {
        let counter = |name: &str| {
            IntCounter::new(name, "unregistered head metric")
                .expect("constant metric name and help are valid")
        };
        Self {
            series: IntGauge::new("prometheus_tsdb_head_series", "unregistered head metric")
                .expect("constant metric name and help are valid"),
            series_created: counter("prometheus_tsdb_head_series_created_total"),
            chunks_created: counter("prometheus_tsdb_head_chunks_created_total"),
            samples_appended: counter("prometheus_tsdb_head_samples_appended_total"),
            histograms_appended: counter("prometheus_tsdb_head_samples_appended_total"),
            out_of_order: counter("prometheus_tsdb_out_of_order_samples_total"),
            out_of_bounds: counter("prometheus_tsdb_out_of_bounds_samples_total"),
        }
    }
}

/// The in-memory head of one tenant.
pub struct Head {
    options: HeadOptions,
    stripes: Box<[RwLock<Stripe>]>,
    min_time: AtomicI64,
    max_time: AtomicI64,
    min_valid_time: AtomicI64,
    num_series: AtomicU64,
    /// The next series ID to hand out (IDs start at 1, as in Prometheus).
    next_ref: AtomicU64,
    metrics: HeadMetrics,
    wal: OnceLock<GroupCommitWal>,
    /// Serializes "append to memory + log" while a WAL is attached.
    wal_order: Mutex<()>,
    /// Set once logging failed: the WAL may miss records the memory has, so no later
    /// write can be acknowledged.
    wal_broken: AtomicBool,
}

/// Why [`Head::append_batch`] could not acknowledge a write.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Logging or syncing the WAL failed.
    #[error("write wal: {0}")]
    Wal(#[from] WalError),
    /// An earlier logging error left the WAL behind the memory.
    #[error("wal is unusable after an earlier write error; restart to replay and repair it")]
    WalBroken,
}

/// Sample type of the records a [`WalBatch`] is collecting.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum SampleKind {
    #[default]
    Float,
    Histogram,
    FloatHistogram,
}

/// WAL records collected while appending one batch: a series record, then sample
/// records in append order. Samples of one type go into one record; when the type
/// changes, the collected record is sealed and a new one starts, so replay appends every
/// series' samples in the order they were appended.
#[derive(Default)]
struct WalBatch {
    series: Vec<RefSeries>,
    kind: SampleKind,
    samples: Vec<RefSample>,
    histograms: Vec<RefHistogramSample>,
    float_histograms: Vec<RefFloatHistogramSample>,
    /// Sample records already encoded, in order.
    sealed: Vec<Vec<u8>>,
}

impl WalBatch {
    fn push_sample(&mut self, sample: RefSample) {
        self.switch(SampleKind::Float);
        self.samples.push(sample);
    }

    fn push_histogram(&mut self, series_ref: u64, t: i64, v: &HistogramValue) {
        match v {
            HistogramValue::Int(h) => {
                self.switch(SampleKind::Histogram);
                self.histograms.push(RefHistogramSample {
                    series_ref,
                    t,
                    h: h.clone(),
                });
            }
            HistogramValue::Float(fh) => {
                self.switch(SampleKind::FloatHistogram);
                self.float_histograms.push(RefFloatHistogramSample {
                    series_ref,
                    t,
                    fh: fh.clone(),
                });
            }
        }
    }

    fn switch(&mut self, kind: SampleKind) {
        if self.kind != kind {
            self.seal();
            self.kind = kind;
        }
    }

    /// Encodes the samples collected so far into a record of their own.
    fn seal(&mut self) {
        if !self.samples.is_empty() {
            let mut buf = Vec::new();
            encode_samples(&self.samples, &mut buf);
            self.sealed.push(buf);
            self.samples.clear();
        }
        if !self.histograms.is_empty() {
            let mut buf = Vec::new();
            encode_histogram_samples(&self.histograms, &mut buf);
            self.sealed.push(buf);
            self.histograms.clear();
        }
        if !self.float_histograms.is_empty() {
            let mut buf = Vec::new();
            encode_float_histogram_samples(&self.float_histograms, &mut buf);
            self.sealed.push(buf);
            self.float_histograms.clear();
        }
    }

    fn encode(mut self) -> Vec<Vec<u8>> {
        self.seal();
        let mut records = Vec::with_capacity(1 + self.sealed.len());
        if !self.series.is_empty() {
            let mut buf = Vec::new();
            encode_series(&self.series, &mut buf);
            records.push(buf);
        }
        records.append(&mut self.sealed);
        records
    }
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("options", &self.options)
            .field("series", &self.num_series())
            .field("min_time", &self.min_time())
            .field("max_time", &self.max_time())
            .finish()
    }
}

impl Head {
    /// An empty head. `samples_per_chunk` is clamped to `1..=XorChunk::MAX_SAMPLES` and
    /// `chunk_range_ms` to at least 1.
    pub fn new(mut options: HeadOptions, metrics: HeadMetrics) -> Self {
        options.samples_per_chunk = options.samples_per_chunk.clamp(1, XorChunk::MAX_SAMPLES);
        options.chunk_range_ms = options.chunk_range_ms.max(1);
        Self {
            options,
            stripes: (0..STRIPES).map(|_| RwLock::default()).collect(),
            min_time: AtomicI64::new(i64::MAX),
            max_time: AtomicI64::new(i64::MIN),
            min_valid_time: AtomicI64::new(i64::MIN),
            num_series: AtomicU64::new(0),
            next_ref: AtomicU64::new(1),
            metrics,
            wal: OnceLock::new(),
            wal_order: Mutex::new(()),
            wal_broken: AtomicBool::new(false),
        }
    }

    /// The options in effect.
    pub fn options(&self) -> &HeadOptions {
        &self.options
    }

    /// Number of series.
    pub fn num_series(&self) -> u64 {
        self.num_series.load(Ordering::Relaxed)
    }

    /// Timestamp of the oldest sample, `None` when empty.
    pub fn min_time(&self) -> Option<i64> {
        let t = self.min_time.load(Ordering::Acquire);
        (t != i64::MAX).then_some(t)
    }

    /// Timestamp of the newest sample, `None` when empty.
    pub fn max_time(&self) -> Option<i64> {
        let t = self.max_time.load(Ordering::Acquire);
        (t != i64::MIN).then_some(t)
    }

    /// Raises the lower bound for appends (set once data below it lives in blocks). With
    /// a WAL attached, every append that returns after this call sees the new bound.
    pub fn set_min_valid_time(&self, t: i64) {
        let _order = self.lock_order();
        self.raise_min_valid_time(t);
    }

    fn raise_min_valid_time(&self, t: i64) {
        self.min_valid_time.fetch_max(t, Ordering::AcqRel);
    }

    /// The oldest timestamp an append may have right now:
    /// `max(min_valid_time, max_time - chunk_range/2)` (Prometheus's appendable window).
    pub fn appendable_min_valid_time(&self) -> i64 {
        let floor = self.min_valid_time.load(Ordering::Acquire);
        match self.max_time() {
            Some(max) => floor.max(max.saturating_sub(self.options.chunk_range_ms / 2)),
            None => floor,
        }
    }

    fn stripe(&self, hash: u64) -> &RwLock<Stripe> {
        &self.stripes[(hash as usize) & (STRIPES - 1)]
    }

    /// Attaches the write-ahead log: from now on [`Head::append_batch`] logs and syncs
    /// every batch before returning. Call it after replaying the WAL directory into this
    /// head. Returns false (and drops `wal`) if a log is attached already.
    pub fn attach_wal(&self, wal: GroupCommitWal) -> bool {
        self.wal.set(wal).is_ok()
    }

    /// The attached WAL, if any.
    pub fn wal(&self) -> Option<&GroupCommitWal> {
        self.wal.get()
    }

    /// Appends every series of `batch` (series rejected while decoding are not in it) at
    /// wall-clock time `now_ms` and reports what was stored and what was rejected.
    ///
    /// This is the single write entry point of a tenant. With a WAL attached, the series
    /// created and the samples accepted are logged and fsynced (group commit) before
    /// this returns, so an `Ok` means the samples survive a crash. This blocks on the
    /// fsync: call it from a blocking thread. An error means the write must not be
    /// acknowledged; after a logging error every later write fails too.
    pub fn append_batch(&self, batch: &Batch, now_ms: i64) -> Result<AppendReport, AppendError> {
        let future_limit = (self.options.too_far_in_future_ms > 0)
            .then(|| now_ms.saturating_add(self.options.too_far_in_future_ms));
        let Some(wal) = self.wal.get() else {
            let min_valid = self.appendable_min_valid_time();
            return Ok(self.apply(batch, min_valid, future_limit, None));
        };
        let mut log = WalBatch::default();
        let (report, ticket) = {
            let _order = self
                .wal_order
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if self.wal_broken.load(Ordering::Acquire) {
                return Err(AppendError::WalBroken);
            }
            let min_valid = self.appendable_min_valid_time();
            let report = self.apply(batch, min_valid, future_limit, Some(&mut log));
            let records = log.encode();
            if records.is_empty() {
                return Ok(report);
            }
            match wal.log(&records) {
                Ok(ticket) => (report, ticket),
                Err(err) => {
                    self.wal_broken.store(true, Ordering::Release);
                    return Err(err.into());
                }
            }
        };
        wal.wait_durable(ticket)?;
        Ok(report)
    }

    /// Adds a new series to `stripe` and returns it.
    fn insert_series(
        &self,
        stripe: &mut Stripe,
        hash: u64,
        labels: &Labels,
        series_ref: u64,
    ) -> Arc<MemSeries> {
        let new = Arc::new(MemSeries::new(series_ref, labels));
        match stripe.unique.entry(hash) {
            Entry::Occupied(_) => stripe
                .conflicts
                .entry(hash)
                .or_default()
                .push(Arc::clone(&new)),
            Entry::Vacant(slot) => {
                slot.insert(Arc::clone(&new));
            }
        }
        self.num_series.fetch_add(1, Ordering::Relaxed);
        self.metrics.series.inc();
        self.metrics.series_created.inc();
        new
    }

    fn apply(
        &self,
        batch: &Batch,
        min_valid: i64,
        future_limit: Option<i64>,
        mut log: Option<&mut WalBatch>,
    ) -> AppendReport {
        let mut report = AppendReport::default();
        let mut batch_min = i64::MAX;
        let mut batch_max = i64::MIN;
        let mut accepted = Vec::new();
        let mut accepted_h = Vec::new();
        for series in &batch.series {
            // Checks that need no series state run first, so samples rejected by them
            // change nothing (not even the series index).
            accepted.clear();
            accepted_h.clear();
            let mut check = |t: i64| {
                let reason = if future_limit.is_some_and(|limit| t > limit) {
                    Reason::TooFarInFuture
                } else if t < min_valid {
                    Reason::OutOfBounds
                } else {
                    return true;
                };
                report
                    .rejections
                    .add(reason, 1, || format!("{} t={}", series.labels, t));
                false
            };
            accepted.extend(series.samples.iter().copied().filter(|s| check(s.t)));
            accepted_h.extend(series.histograms.iter().filter(|h| check(h.t)));
            if accepted.is_empty() && accepted_h.is_empty() {
                continue;
            }
            self.append_series(
                series,
                (&accepted, &accepted_h),
                &mut report,
                (&mut batch_min, &mut batch_max),
                log.as_deref_mut(),
            );
        }
        if batch_min <= batch_max {
            self.min_time.fetch_min(batch_min, Ordering::AcqRel);
            self.max_time.fetch_max(batch_max, Ordering::AcqRel);
        }
        let m = &self.metrics;
        m.samples_appended
            .inc_by(report.appended - report.histograms_appended);
        m.histograms_appended.inc_by(report.histograms_appended);
        m.out_of_order
            .inc_by(report.rejections.count(Reason::OutOfOrder));
        m.out_of_bounds.inc_by(
            report.rejections.count(Reason::OutOfBounds)
                + report.rejections.count(Reason::TooFarInFuture),
        );
        report
    }

    fn append_series(
        &self,
        series: &SeriesSamples,
        (samples, histograms): (&[Sample], &[&HistogramSample]),
        report: &mut AppendReport,
        (batch_min, batch_max): (&mut i64, &mut i64),
        mut log: Option<&mut WalBatch>,
    ) {
        let hash = series.labels.stable_hash();
        let stripe = self.stripe(hash);
        let mut append_to =
            |s: &MemSeries, report: &mut AppendReport, mut log: Option<&mut WalBatch>| {
                let mut state = s.lock();
                for &sample in samples {
                    match state.append(sample, &self.options, &self.metrics.chunks_created) {
                        Ok(appended) => {
                            if matches!(appended, Appended::New) {
                                report.appended += 1;
                                *batch_min = (*batch_min).min(sample.t);
                                *batch_max = (*batch_max).max(sample.t);
                            } else {
                                report.identical += 1;
                            }
                            // Identical resends are logged too: the first copy may have
                            // reached memory without its WAL record being acknowledged.
                            if let Some(log) = log.as_deref_mut() {
                                log.push_sample(RefSample {
                                    series_ref: s.series_ref,
                                    t: sample.t,
                                    v: sample.v,
                                });
                            }
                        }
                        Err(reason) => report
                            .rejections
                            .add(reason, 1, || format!("{} t={}", series.labels, sample.t)),
                    }
                }
                // Histograms follow the series' floats, as in Prometheus's write handler.
                for h in histograms {
                    match state.append_histogram(
                        h.t,
                        &h.value,
                        &self.options,
                        &self.metrics.chunks_created,
                    ) {
                        Ok(appended) => {
                            if matches!(appended, Appended::New) {
                                report.appended += 1;
                                report.histograms_appended += 1;
                                *batch_min = (*batch_min).min(h.t);
                                *batch_max = (*batch_max).max(h.t);
                            } else {
                                report.identical += 1;
                            }
                            report.histograms += 1;
                            if let Some(log) = log.as_deref_mut() {
                                log.push_histogram(s.series_ref, h.t, &h.value);
                            }
                        }
                        Err(reason) => report
                            .rejections
                            .add(reason, 1, || format!("{} t={}", series.labels, h.t)),
                    }
                }
            };
        {
            let guard = stripe.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(s) = guard.get(hash, &series.labels) {
                append_to(s, report, log);
                return;
            }
        }
        let mut guard = stripe.write().unwrap_or_else(PoisonError::into_inner);
        if guard.get(hash, &series.labels).is_none() {
            let series_ref = self.next_ref.fetch_add(1, Ordering::AcqRel);
            self.insert_series(&mut guard, hash, &series.labels, series_ref);
            report.series_created += 1;
            if let Some(log) = log.as_deref_mut() {
                log.series.push(RefSeries {
                    series_ref,
                    labels: series.labels.clone(),
                });
            }
        }
        // Appending under the write lock is fine: it is the rare creation path.
        if let Some(s) = guard.get(hash, &series.labels) {
            append_to(s, report, log);
        }
    }

    /// Visits every series matching `matchers` that has samples in `[mint, maxt]`.
    fn for_each_match(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        mut f: impl FnMut(&MemSeries, &SeriesState),
    ) {
        for stripe in self.stripes.iter() {
            let guard = stripe.read().unwrap_or_else(PoisonError::into_inner);
            for s in guard.iter() {
                if !s.matches(matchers) {
                    continue;
                }
                let state = s.lock();
                if state.overlaps(mint, maxt) {
                    f(s, &state);
                }
            }
        }
    }

    /// Series matching all `matchers` with samples in `[mint, maxt]` (inclusive), sorted
    /// by labels, each with its chunks overlapping the range. An empty matcher list
    /// selects every series.
    pub fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<HeadSeries> {
        let mut out = Vec::new();
        self.for_each_match(matchers, mint, maxt, |s, state| {
            out.push(HeadSeries {
                labels: s.to_labels(),
                chunks: state.chunks(mint, maxt),
            });
        });
        out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Sorted label names of the series matching `matchers` with samples in
    /// `[mint, maxt]`.
    pub fn label_names(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<String> {
        let mut names = BTreeSet::new();
        self.for_each_match(matchers, mint, maxt, |s, _| {
            for (name, _) in s.labels.pairs() {
                let name = text(name);
                if !names.contains(name) {
                    names.insert(name.to_owned());
                }
            }
        });
        names.into_iter().collect()
    }

    /// Sorted values of label `name` over the series matching `matchers` with samples in
    /// `[mint, maxt]`.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Vec<String> {
        let mut values = BTreeSet::new();
        self.for_each_match(matchers, mint, maxt, |s, _| {
            if let Some(v) = s.label(name)
                && !values.contains(v)
            {
                values.insert(v.to_owned());
            }
        });
        values.into_iter().collect()
    }
}

/// What [`Head::truncate`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TruncateStats {
    /// Series removed because nothing was left of them.
    pub series_removed: u64,
    /// Chunks dropped (whole chunks below the truncation time).
    pub chunks_removed: u64,
}

impl Head {
    /// The lower bound for appends set by [`Head::set_min_valid_time`] (data below it
    /// lives in blocks); `i64::MIN` when unset.
    pub fn min_valid_time(&self) -> i64 {
        self.min_valid_time.load(Ordering::Acquire)
    }

    /// Every series with samples in `[mint, maxt)` (end-exclusive, like a block's range),
    /// sorted by labels, with exactly the chunks holding those samples: the input of a
    /// block. Chunks reaching outside the range are re-encoded to the part inside.
    pub fn block_series(&self, mint: i64, maxt: i64) -> Vec<HeadSeries> {
        let mut out = Vec::new();
        if maxt <= mint {
            return out;
        }
        self.for_each_match(&[], mint, maxt - 1, |s, state| {
            let chunks = state.chunks_in_block_range(mint, maxt);
            if !chunks.is_empty() {
                out.push(HeadSeries {
                    labels: s.to_labels(),
                    chunks,
                });
            }
        });
        out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Drops every sample older than `mint` (they were written to a block), removes the
    /// series left without samples and raises the head's min valid time and min time to
    /// `mint`, so no later append can go below it. Call it after the block covering the
    /// dropped samples is durable.
    pub fn truncate(&self, mint: i64) -> TruncateStats {
        {
            // Appends compute their window under this lock: once it is released, none can
            // add a sample below `mint`.
            let _order = self.lock_order();
            self.raise_min_valid_time(mint);
            self.min_time.fetch_max(mint, Ordering::AcqRel);
        }
        let mut stats = TruncateStats::default();
        let mut actual_min = i64::MAX;
        for stripe in self.stripes.iter() {
            let mut guard = stripe.write().unwrap_or_else(PoisonError::into_inner);
            stats.series_removed += guard.retain(|s| {
                let mut state = s.lock();
                stats.chunks_removed += state.truncate(mint);
                if let Some(t) = state.min_time() {
                    actual_min = actual_min.min(t);
                }
                !state.has_no_data()
            });
        }
        self.num_series
            .fetch_sub(stats.series_removed, Ordering::AcqRel);
        self.metrics
            .series
            .sub(i64::try_from(stats.series_removed).unwrap_or(i64::MAX));
        // As Prometheus: the head starts at its oldest remaining sample (the appendable
        // window when nothing is left), but never above what may still be appended.
        let _order = self.lock_order();
        let new_min = actual_min.min(self.appendable_min_valid_time()).max(mint);
        self.raise_min_valid_time(new_min);
        self.min_time.fetch_max(new_min, Ordering::AcqRel);
        stats
    }

    fn lock_order(&self) -> std::sync::MutexGuard<'_, ()> {
        self.wal_order
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// IDs of the series in the head and the next ID to be handed out: a series created
    /// later gets an ID at or above it (for WAL checkpoints).
    pub(crate) fn series_refs(&self) -> (std::collections::HashSet<u64>, u64) {
        let next = self.next_ref.load(Ordering::Acquire);
        let mut refs = std::collections::HashSet::new();
        for stripe in self.stripes.iter() {
            let guard = stripe.read().unwrap_or_else(PoisonError::into_inner);
            refs.extend(guard.iter().map(|s| s.series_ref));
        }
        (refs, next)
    }
}

mod replay;
pub(crate) use replay::ReplaySink;

#[cfg(test)]
mod tests;
