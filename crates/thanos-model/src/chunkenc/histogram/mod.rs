//! Native histogram chunks: integer histograms (encoding 2, [`HistogramChunk`]) and
//! float histograms (encoding 3, [`FloatHistogramChunk`]), bit-compatible with
//! Prometheus's `tsdb/chunkenc` histogram encodings.
//!
//! Both share a 3-byte header (16-bit big-endian sample count and a flags byte whose
//! top two bits are the [`CounterResetHeader`]) and a layout section written with the
//! first sample (zero threshold, schema, spans, custom bounds). Every sample of a chunk
//! uses that layout: a histogram that only adds buckets makes the appender re-encode the
//! chunk with the wider layout ([`AppendOutcome::Recoded`]); one that changes schema or
//! zero threshold, resets the counter, switches between gauge and counter or follows a
//! staleness marker is refused with [`AppendOutcome::NewChunk`] and the caller cuts a
//! new chunk.
//!
//! Byte compatibility is checked against chunks written by Prometheus 2.42 (see the
//! crate's `tests/integration/prometheus_histogram_chunks.rs`).

mod float;
mod int;
mod meta;

#[cfg(test)]
mod tests;

pub use float::{FloatHistogramChunk, FloatHistogramIterator};
pub use int::{HistogramChunk, HistogramIterator};

use super::{ChunkError, Encoding};
use crate::histogram::{CounterResetHint, Span, bucket_indexes};
use meta::DecodeError;

/// Length of the header shared by both histogram encodings.
const HEADER_LEN: usize = 3;
/// Mask of the counter-reset bits in the flags byte.
const COUNTER_RESET_MASK: u8 = 0b1100_0000;
/// The most samples a histogram chunk can count.
const MAX_SAMPLES: usize = u16::MAX as usize;

/// The counter-reset information of a whole histogram chunk (top two bits of byte 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CounterResetHeader {
    /// Nothing known (`00`).
    #[default]
    Unknown,
    /// The chunk was cut because of a counter reset (`10`).
    CounterReset,
    /// The chunk was cut for another reason; its first sample is no reset (`01`).
    NotCounterReset,
    /// The chunk holds gauge histograms (`11`).
    Gauge,
}

impl CounterResetHeader {
    /// The flags byte bits of this header.
    pub fn bits(self) -> u8 {
        match self {
            Self::Unknown => 0b0000_0000,
            Self::CounterReset => 0b1000_0000,
            Self::NotCounterReset => 0b0100_0000,
            Self::Gauge => 0b1100_0000,
        }
    }

    /// Reads the header from a flags byte (the low six bits are ignored).
    pub fn from_flags(b: u8) -> Self {
        match b & COUNTER_RESET_MASK {
            0b1000_0000 => Self::CounterReset,
            0b0100_0000 => Self::NotCounterReset,
            0b1100_0000 => Self::Gauge,
            _ => Self::Unknown,
        }
    }

    /// The hint a decoded sample gets: gauge chunks give gauge; in counter chunks every
    /// sample after the first is no reset; the first is a reset when the chunk says so
    /// and unknown otherwise (the previous chunk may be gone).
    pub fn sample_hint(self, index: usize) -> CounterResetHint {
        match self {
            Self::Gauge => CounterResetHint::Gauge,
            _ if index > 0 => CounterResetHint::NotCounterReset,
            Self::CounterReset => CounterResetHint::CounterReset,
            _ => CounterResetHint::Unknown,
        }
    }
}

/// Why a histogram cannot go into the current chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CutReason {
    /// The counter went down (count, zero count or a bucket decreased, a bucket
    /// disappeared, custom bounds changed) or the histogram carries the reset hint.
    CounterReset,
    /// Schema or zero threshold changed (or, in a gauge chunk, a bucket disappeared).
    LayoutChanged,
    /// The histogram switches between gauge and counter semantics.
    GaugeChanged,
    /// The previous sample is a staleness marker; only markers may follow it.
    AfterStaleMarker,
    /// The chunk holds the maximum number of samples.
    Full,
}

impl CutReason {
    /// The counter-reset header for the new chunk, as Prometheus 2.42 writes it: a reset
    /// for counter resets, "not a reset" when the sample itself would have fitted, and
    /// unknown otherwise. A gauge histogram appended first overrides it with
    /// [`CounterResetHeader::Gauge`]. (Newer Prometheus versions write "not a reset"
    /// after layout changes and staleness markers; readers treat a first sample under
    /// either header as "unknown".)
    pub fn next_chunk_header(self) -> CounterResetHeader {
        match self {
            Self::CounterReset => CounterResetHeader::CounterReset,
            Self::Full => CounterResetHeader::NotCounterReset,
            Self::LayoutChanged | Self::GaugeChanged | Self::AfterStaleMarker => {
                CounterResetHeader::Unknown
            }
        }
    }
}

/// Result of appending a histogram to a chunk.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppendOutcome {
    /// The sample is in the chunk.
    Appended,
    /// The sample brought new buckets: the chunk was re-encoded with the new spans
    /// (earlier samples get zero counts in the new buckets), then the sample appended.
    /// Prometheus does the same; the bytes equal a fresh encoding of the expanded
    /// samples.
    Recoded,
    /// The sample was not appended; start a new chunk (see
    /// [`CutReason::next_chunk_header`]) and append it there.
    NewChunk(CutReason),
}

/// What appending a sample to a non-empty chunk requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Same layout: append.
    Append,
    /// New buckets (or a different span encoding of a superset): recode, then append.
    Recode,
    /// Start a new chunk.
    Cut(CutReason),
}

/// How the buckets of a new sample relate to the chunk's previous sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct BucketChange {
    /// A bucket of the previous sample is missing.
    vanished: bool,
    /// A bucket present in both has a smaller count.
    decreased: bool,
}

/// Compares absolute bucket counts of the previous sample with a new one.
fn compare_buckets<T: PartialOrd + Copy>(
    old_spans: &[Span],
    old: &[T],
    new_spans: &[Span],
    new: &[T],
) -> BucketChange {
    let mut change = BucketChange::default();
    let mut new_iter = bucket_indexes(new_spans)
        .zip(new.iter().copied())
        .peekable();
    for (idx, old_v) in bucket_indexes(old_spans).zip(old.iter().copied()) {
        while new_iter.next_if(|&(nidx, _)| nidx < idx).is_some() {}
        match new_iter.next_if(|&(nidx, _)| nidx == idx) {
            Some((_, new_v)) => change.decreased |= new_v < old_v,
            None => change.vanished = true,
        }
    }
    change
}

/// Re-lays `values` (absolute counts on `old_spans`) out on `new_spans`, which must
/// cover every old bucket; new buckets get `zero`.
fn expand_buckets<T: Copy>(
    old_spans: &[Span],
    values: &[T],
    new_spans: &[Span],
    zero: T,
) -> Vec<T> {
    let mut old = bucket_indexes(old_spans)
        .zip(values.iter().copied())
        .peekable();
    bucket_indexes(new_spans)
        .map(|idx| {
            while old.next_if(|&(oidx, _)| oidx < idx).is_some() {}
            old.next_if(|&(oidx, _)| oidx == idx)
                .map_or(zero, |(_, v)| v)
        })
        .collect()
}

/// Builds the error for a failed decode of sample `sample`.
fn decode_error(
    encoding: Encoding,
    e: DecodeError,
    sample: usize,
    num_samples: usize,
) -> ChunkError {
    match e {
        DecodeError::Truncated => ChunkError::HistogramTruncated {
            encoding,
            sample,
            num_samples,
        },
        DecodeError::Corrupt(reason) => ChunkError::HistogramCorrupt {
            encoding,
            sample,
            reason,
        },
    }
}

/// Reads the sample count and counter-reset header of histogram chunk bytes.
fn read_header(data: &[u8]) -> Result<(u16, CounterResetHeader), ChunkError> {
    match data.first_chunk::<HEADER_LEN>() {
        Some(h) => Ok((
            u16::from_be_bytes([h[0], h[1]]),
            CounterResetHeader::from_flags(h[2]),
        )),
        None => Err(ChunkError::ShortHeader {
            len: data.len(),
            needed: HEADER_LEN,
        }),
    }
}
