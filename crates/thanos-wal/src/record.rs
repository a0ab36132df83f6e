//! WAL record payloads: encoding and bounds-checked decoding.
//!
//! Mirrors Prometheus's `tsdb/record` package. A record is the byte string the [`crate::wlog`]
//! layer stores (after Snappy decompression); its first byte is the [`RecordType`]. Integers
//! follow Go's `encoding/binary` conventions: fixed-width values are big endian, `uvarint` is
//! unsigned LEB128 and `varint` is zig-zag + LEB128.
//!
//! Encoders append to a caller-owned buffer so that buffers can be reused. Decoders append to
//! a caller-owned vector; on error the vector is restored to its previous length, so a failed
//! decode never leaves partial entries behind.

use std::fmt;

use thanos_model::{Label, Labels, ModelError};

/// A head series ID as stored in WAL records (monotonic, never reused within a process).
pub type HeadSeriesRef = u64;

pub use thanos_model::histogram::{
    CUSTOM_BUCKETS_SCHEMA, CounterResetHint, FloatHistogram, Histogram, Span,
};

/// Record type: the first byte of every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// 1: series ID to label set mappings.
    Series,
    /// 2: float samples.
    Samples,
    /// 3: deletion intervals.
    Tombstones,
    /// 4: exemplars.
    Exemplars,
    /// 5: m-mapped chunk markers (write-behind log only).
    MmapMarkers,
    /// 6: metric metadata (type, unit, help).
    Metadata,
    /// 7: integer native histogram samples.
    HistogramSamples,
    /// 8: float native histogram samples.
    FloatHistogramSamples,
    /// 9: integer native histograms with custom buckets.
    CustomBucketsHistogramSamples,
    /// 10: float native histograms with custom buckets.
    CustomBucketsFloatHistogramSamples,
    /// Any other type byte (0, 11–13 start-timestamp encodings of Prometheus 3.x, future
    /// types). Never decoded; reported so that callers can skip or refuse the record.
    Unknown(u8),
}

impl RecordType {
    /// Maps a type byte to a record type.
    pub fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::Series,
            2 => Self::Samples,
            3 => Self::Tombstones,
            4 => Self::Exemplars,
            5 => Self::MmapMarkers,
            6 => Self::Metadata,
            7 => Self::HistogramSamples,
            8 => Self::FloatHistogramSamples,
            9 => Self::CustomBucketsHistogramSamples,
            10 => Self::CustomBucketsFloatHistogramSamples,
            other => Self::Unknown(other),
        }
    }

    /// The type byte written at the start of a record.
    pub fn as_byte(self) -> u8 {
        match self {
            Self::Series => 1,
            Self::Samples => 2,
            Self::Tombstones => 3,
            Self::Exemplars => 4,
            Self::MmapMarkers => 5,
            Self::Metadata => 6,
            Self::HistogramSamples => 7,
            Self::FloatHistogramSamples => 8,
            Self::CustomBucketsHistogramSamples => 9,
            Self::CustomBucketsFloatHistogramSamples => 10,
            Self::Unknown(b) => b,
        }
    }

    /// The type of an encoded record, `None` for an empty byte string.
    pub fn of(rec: &[u8]) -> Option<Self> {
        rec.first().map(|b| Self::from_byte(*b))
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Series => "series",
            Self::Samples => "samples",
            Self::Tombstones => "tombstones",
            Self::Exemplars => "exemplars",
            Self::MmapMarkers => "mmap markers",
            Self::Metadata => "metadata",
            Self::HistogramSamples => "histogram samples",
            Self::FloatHistogramSamples => "float histogram samples",
            Self::CustomBucketsHistogramSamples => "custom buckets histogram samples",
            Self::CustomBucketsFloatHistogramSamples => "custom buckets float histogram samples",
            Self::Unknown(b) => return write!(f, "unknown type {b}"),
        };
        f.write_str(name)
    }
}

/// Why a record could not be decoded. Offsets are byte positions inside the record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// The record has no type byte.
    #[error("empty record")]
    Empty,
    /// The decoder was given a record of another type.
    #[error("record of type {found} given to the {expected} decoder")]
    WrongType {
        /// The type the decoder handles.
        expected: RecordType,
        /// The type byte found.
        found: RecordType,
    },
    /// The record ends in the middle of a field.
    #[error("{record} record truncated at byte {offset}")]
    Truncated {
        /// Record type.
        record: RecordType,
        /// Where the missing field starts.
        offset: usize,
    },
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("{record} record: varint overflow at byte {offset}")]
    VarintOverflow {
        /// Record type.
        record: RecordType,
        /// Where the varint starts.
        offset: usize,
    },
    /// A decoded number does not fit its field.
    #[error("{record} record: {field} value {value} out of range at byte {offset}")]
    OutOfRange {
        /// Record type.
        record: RecordType,
        /// Field name.
        field: &'static str,
        /// The decoded value.
        value: i128,
        /// Where the field starts.
        offset: usize,
    },
    /// A label name or value is not valid UTF-8.
    #[error("{record} record: invalid utf-8 string at byte {offset}")]
    InvalidUtf8 {
        /// Record type.
        record: RecordType,
        /// Where the string starts.
        offset: usize,
    },
    /// A label set has duplicate or empty names.
    #[error("{record} record: invalid label set ending at byte {offset}: {source}")]
    InvalidLabels {
        /// Record type.
        record: RecordType,
        /// Where the label set ends.
        offset: usize,
        /// What is wrong with it.
        source: ModelError,
    },
}

/// A series record entry: a head series ID and its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefSeries {
    /// Head series ID.
    pub series_ref: HeadSeriesRef,
    /// The series' label set.
    pub labels: Labels,
}

/// A float sample of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSample {
    /// Head series ID.
    pub series_ref: HeadSeriesRef,
    /// Timestamp in milliseconds.
    pub t: i64,
    /// Value (bit pattern preserved, including staleness NaNs).
    pub v: f64,
}

/// One deletion interval of a series (both ends inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefTombstone {
    /// Head series ID.
    pub series_ref: HeadSeriesRef,
    /// First deleted timestamp.
    pub mint: i64,
    /// Last deleted timestamp.
    pub maxt: i64,
}

/// An exemplar of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct RefExemplar {
    /// Head series ID.
    pub series_ref: HeadSeriesRef,
    /// Timestamp in milliseconds.
    pub t: i64,
    /// Value.
    pub v: f64,
    /// Exemplar labels (for example `trace_id`).
    pub labels: Labels,
}

/// A marker saying a series' chunk was m-mapped (write-behind log only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefMmapMarker {
    /// Head series ID.
    pub series_ref: HeadSeriesRef,
    /// Reference of the m-mapped head chunk.
    pub mmap_ref: u64,
}

/// Metric type stored in metadata records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricType {
    /// 0, also used for type bytes this crate does not know (as Prometheus does).
    #[default]
    Unknown,
    /// 1.
    Counter,
    /// 2.
    Gauge,
    /// 3.
    Histogram,
    /// 4.
    GaugeHistogram,
    /// 5.
    Summary,
    /// 6.
    Info,
    /// 7.
    StateSet,
}

impl MetricType {
    /// Maps the stored byte; unknown values become [`MetricType::Unknown`].
    pub fn from_byte(b: u8) -> Self {
        match b {
            1 => Self::Counter,
            2 => Self::Gauge,
            3 => Self::Histogram,
            4 => Self::GaugeHistogram,
            5 => Self::Summary,
            6 => Self::Info,
            7 => Self::StateSet,
            _ => Self::Unknown,
        }
    }

    /// The stored byte.
    pub fn as_byte(self) -> u8 {
        match self {
            Self::Unknown => 0,
            Self::Counter => 1,
            Self::Gauge => 2,
            Self::Histogram => 3,
            Self::GaugeHistogram => 4,
            Self::Summary => 5,
            Self::Info => 6,
            Self::StateSet => 7,
        }
    }
}

/// Metadata of a series.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RefMetadata {
    /// Head series ID.
    pub series_ref: HeadSeriesRef,
    /// Metric type.
    pub metric_type: MetricType,
    /// Unit (may be empty).
    pub unit: String,
    /// Help text (may be empty).
    pub help: String,
}

/// An integer histogram sample of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct RefHistogramSample {
    /// Head series ID.
    pub series_ref: HeadSeriesRef,
    /// Timestamp in milliseconds.
    pub t: i64,
    /// The histogram.
    pub h: Histogram,
}

/// A float histogram sample of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct RefFloatHistogramSample {
    /// Head series ID.
    pub series_ref: HeadSeriesRef,
    /// Timestamp in milliseconds.
    pub t: i64,
    /// The histogram.
    pub fh: FloatHistogram,
}

/// A decoded record of any type.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Type 1.
    Series(Vec<RefSeries>),
    /// Type 2.
    Samples(Vec<RefSample>),
    /// Type 3.
    Tombstones(Vec<RefTombstone>),
    /// Type 4.
    Exemplars(Vec<RefExemplar>),
    /// Type 5.
    MmapMarkers(Vec<RefMmapMarker>),
    /// Type 6.
    Metadata(Vec<RefMetadata>),
    /// Types 7 and 9 (the schema of each histogram tells which).
    HistogramSamples(Vec<RefHistogramSample>),
    /// Types 8 and 10.
    FloatHistogramSamples(Vec<RefFloatHistogramSample>),
    /// A type this crate does not decode; the payload was not inspected.
    Unknown(u8),
}

/// Decodes a record of any type. Unknown types yield [`Record::Unknown`], never an error.
pub fn decode(rec: &[u8]) -> Result<Record, RecordError> {
    let typ = RecordType::of(rec).ok_or(RecordError::Empty)?;
    Ok(match typ {
        RecordType::Series => {
            let mut v = Vec::new();
            decode_series(rec, &mut v)?;
            Record::Series(v)
        }
        RecordType::Samples => {
            let mut v = Vec::new();
            decode_samples(rec, &mut v)?;
            Record::Samples(v)
        }
        RecordType::Tombstones => {
            let mut v = Vec::new();
            decode_tombstones(rec, &mut v)?;
            Record::Tombstones(v)
        }
        RecordType::Exemplars => {
            let mut v = Vec::new();
            decode_exemplars(rec, &mut v)?;
            Record::Exemplars(v)
        }
        RecordType::MmapMarkers => {
            let mut v = Vec::new();
            decode_mmap_markers(rec, &mut v)?;
            Record::MmapMarkers(v)
        }
        RecordType::Metadata => {
            let mut v = Vec::new();
            decode_metadata(rec, &mut v)?;
            Record::Metadata(v)
        }
        RecordType::HistogramSamples | RecordType::CustomBucketsHistogramSamples => {
            let mut v = Vec::new();
            decode_histogram_samples(rec, &mut v)?;
            Record::HistogramSamples(v)
        }
        RecordType::FloatHistogramSamples | RecordType::CustomBucketsFloatHistogramSamples => {
            let mut v = Vec::new();
            decode_float_histogram_samples(rec, &mut v)?;
            Record::FloatHistogramSamples(v)
        }
        RecordType::Unknown(b) => Record::Unknown(b),
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn put_be64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_uvarint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

fn put_labels(buf: &mut Vec<u8>, labels: &Labels) {
    put_uvarint(buf, labels.len() as u64);
    for l in labels.iter() {
        put_str(buf, &l.name);
        put_str(buf, &l.value);
    }
}

/// Appends a series record (type 1).
pub fn encode_series(series: &[RefSeries], buf: &mut Vec<u8>) {
    buf.push(RecordType::Series.as_byte());
    for s in series {
        put_be64(buf, s.series_ref);
        put_labels(buf, &s.labels);
    }
}

/// Appends a samples record (type 2). IDs and timestamps are stored as deltas to the first
/// sample's.
pub fn encode_samples(samples: &[RefSample], buf: &mut Vec<u8>) {
    buf.push(RecordType::Samples.as_byte());
    let Some(first) = samples.first() else {
        return;
    };
    buf.reserve(16 + samples.len() * 12);
    put_be64(buf, first.series_ref);
    put_be64(buf, first.t as u64);
    for s in samples {
        put_varint(buf, s.series_ref.wrapping_sub(first.series_ref) as i64);
        put_varint(buf, s.t.wrapping_sub(first.t));
        put_be64(buf, s.v.to_bits());
    }
}

/// Appends a tombstones record (type 3), one entry per interval.
pub fn encode_tombstones(stones: &[RefTombstone], buf: &mut Vec<u8>) {
    buf.push(RecordType::Tombstones.as_byte());
    for s in stones {
        put_be64(buf, s.series_ref);
        put_varint(buf, s.mint);
        put_varint(buf, s.maxt);
    }
}

/// Appends an exemplars record (type 4).
pub fn encode_exemplars(exemplars: &[RefExemplar], buf: &mut Vec<u8>) {
    buf.push(RecordType::Exemplars.as_byte());
    let Some(first) = exemplars.first() else {
        return;
    };
    put_be64(buf, first.series_ref);
    put_be64(buf, first.t as u64);
    for e in exemplars {
        put_varint(buf, e.series_ref.wrapping_sub(first.series_ref) as i64);
        put_varint(buf, e.t.wrapping_sub(first.t));
        put_be64(buf, e.v.to_bits());
        put_labels(buf, &e.labels);
    }
}

/// Appends an m-mapped chunk markers record (type 5).
pub fn encode_mmap_markers(markers: &[RefMmapMarker], buf: &mut Vec<u8>) {
    buf.push(RecordType::MmapMarkers.as_byte());
    for m in markers {
        put_be64(buf, m.series_ref);
        put_be64(buf, m.mmap_ref);
    }
}

/// Appends a metadata record (type 6) with the two fields `UNIT` and `HELP` per entry.
pub fn encode_metadata(metadata: &[RefMetadata], buf: &mut Vec<u8>) {
    buf.push(RecordType::Metadata.as_byte());
    for m in metadata {
        put_uvarint(buf, m.series_ref);
        buf.push(m.metric_type.as_byte());
        put_uvarint(buf, 2);
        put_str(buf, UNIT_FIELD);
        put_str(buf, &m.unit);
        put_str(buf, HELP_FIELD);
        put_str(buf, &m.help);
    }
}

const UNIT_FIELD: &str = "UNIT";
const HELP_FIELD: &str = "HELP";

fn put_spans(buf: &mut Vec<u8>, spans: &[Span]) {
    put_uvarint(buf, spans.len() as u64);
    for s in spans {
        put_varint(buf, i64::from(s.offset));
        put_uvarint(buf, u64::from(s.length));
    }
}

fn put_f64s(buf: &mut Vec<u8>, values: &[f64]) {
    put_uvarint(buf, values.len() as u64);
    for v in values {
        put_be64(buf, v.to_bits());
    }
}

fn put_histogram(buf: &mut Vec<u8>, h: &Histogram) {
    buf.push(h.counter_reset_hint.as_u8());
    put_varint(buf, i64::from(h.schema));
    put_be64(buf, h.zero_threshold.to_bits());
    put_uvarint(buf, h.zero_count);
    put_uvarint(buf, h.count);
    put_be64(buf, h.sum.to_bits());
    put_spans(buf, &h.positive_spans);
    put_spans(buf, &h.negative_spans);
    for buckets in [&h.positive_buckets, &h.negative_buckets] {
        put_uvarint(buf, buckets.len() as u64);
        for b in buckets {
            put_varint(buf, *b);
        }
    }
    if h.schema == CUSTOM_BUCKETS_SCHEMA {
        put_f64s(buf, &h.custom_values);
    }
}

fn put_float_histogram(buf: &mut Vec<u8>, h: &FloatHistogram) {
    buf.push(h.counter_reset_hint.as_u8());
    put_varint(buf, i64::from(h.schema));
    put_be64(buf, h.zero_threshold.to_bits());
    put_be64(buf, h.zero_count.to_bits());
    put_be64(buf, h.count.to_bits());
    put_be64(buf, h.sum.to_bits());
    put_spans(buf, &h.positive_spans);
    put_spans(buf, &h.negative_spans);
    for buckets in [&h.positive_buckets, &h.negative_buckets] {
        put_uvarint(buf, buckets.len() as u64);
        for b in buckets {
            put_be64(buf, b.to_bits());
        }
    }
    if h.schema == CUSTOM_BUCKETS_SCHEMA {
        put_f64s(buf, &h.custom_values);
    }
}

/// Appends an integer histogram samples record: type 9 when every histogram uses custom
/// buckets, type 7 otherwise. Prometheus writes custom-bucket histograms in records of their
/// own; mixed type-7 records still decode because each histogram's schema drives its layout.
pub fn encode_histogram_samples(samples: &[RefHistogramSample], buf: &mut Vec<u8>) {
    let custom = !samples.is_empty() && samples.iter().all(|s| s.h.schema == CUSTOM_BUCKETS_SCHEMA);
    buf.push(if custom {
        RecordType::CustomBucketsHistogramSamples.as_byte()
    } else {
        RecordType::HistogramSamples.as_byte()
    });
    let Some(first) = samples.first() else {
        return;
    };
    put_be64(buf, first.series_ref);
    put_be64(buf, first.t as u64);
    for s in samples {
        put_varint(buf, s.series_ref.wrapping_sub(first.series_ref) as i64);
        put_varint(buf, s.t.wrapping_sub(first.t));
        put_histogram(buf, &s.h);
    }
}

/// Appends a float histogram samples record: type 10 when every histogram uses custom
/// buckets, type 8 otherwise.
pub fn encode_float_histogram_samples(samples: &[RefFloatHistogramSample], buf: &mut Vec<u8>) {
    let custom =
        !samples.is_empty() && samples.iter().all(|s| s.fh.schema == CUSTOM_BUCKETS_SCHEMA);
    buf.push(if custom {
        RecordType::CustomBucketsFloatHistogramSamples.as_byte()
    } else {
        RecordType::FloatHistogramSamples.as_byte()
    });
    let Some(first) = samples.first() else {
        return;
    };
    put_be64(buf, first.series_ref);
    put_be64(buf, first.t as u64);
    for s in samples {
        put_varint(buf, s.series_ref.wrapping_sub(first.series_ref) as i64);
        put_varint(buf, s.t.wrapping_sub(first.t));
        put_float_histogram(buf, &s.fh);
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Bounds-checked cursor over one record.
struct Dec<'a> {
    b: &'a [u8],
    pos: usize,
    record: RecordType,
}

impl<'a> Dec<'a> {
    /// Checks the type byte against `accepted` and positions after it.
    fn open(rec: &'a [u8], accepted: &[RecordType]) -> Result<Self, RecordError> {
        let found = RecordType::of(rec).ok_or(RecordError::Empty)?;
        if !accepted.contains(&found) {
            return Err(RecordError::WrongType {
                expected: accepted[0],
                found,
            });
        }
        Ok(Self {
            b: rec,
            pos: 1,
            record: found,
        })
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.b.len()
    }

    fn remaining(&self) -> usize {
        self.b.len().saturating_sub(self.pos)
    }

    fn truncated(&self) -> RecordError {
        RecordError::Truncated {
            record: self.record,
            offset: self.pos,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.remaining() < n {
            return Err(self.truncated());
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }

    fn counter_reset_hint(&mut self) -> Result<CounterResetHint, RecordError> {
        let start = self.pos;
        let b = self.byte()?;
        CounterResetHint::from_u8(b)
            .ok_or_else(|| self.out_of_range("counter reset hint", i128::from(b), start))
    }

    fn be64(&mut self) -> Result<u64, RecordError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }

    fn f64(&mut self) -> Result<f64, RecordError> {
        Ok(f64::from_bits(self.be64()?))
    }

    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let start = self.pos;
        let mut x = 0u64;
        let mut shift = 0u32;
        for i in 0..10 {
            let Some(&b) = self.b.get(start + i) else {
                self.pos = start;
                return Err(self.truncated());
            };
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(RecordError::VarintOverflow {
                        record: self.record,
                        offset: start,
                    });
                }
                self.pos = start + i + 1;
                return Ok(x | (u64::from(b) << shift));
            }
            x |= u64::from(b & 0x7f) << shift;
            shift += 7;
        }
        Err(RecordError::VarintOverflow {
            record: self.record,
            offset: start,
        })
    }

    fn varint(&mut self) -> Result<i64, RecordError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn out_of_range(&self, field: &'static str, value: i128, offset: usize) -> RecordError {
        RecordError::OutOfRange {
            record: self.record,
            field,
            value,
            offset,
        }
    }

    fn varint_i32(&mut self, field: &'static str) -> Result<i32, RecordError> {
        let start = self.pos;
        let v = self.varint()?;
        i32::try_from(v).map_err(|_| self.out_of_range(field, i128::from(v), start))
    }

    fn uvarint_u32(&mut self, field: &'static str) -> Result<u32, RecordError> {
        let start = self.pos;
        let v = self.uvarint()?;
        u32::try_from(v).map_err(|_| self.out_of_range(field, i128::from(v), start))
    }

    /// Reads an element count and checks it against the bytes left, given the minimum
    /// encoded size of one element, so that corrupt counts cannot trigger huge allocations.
    fn count(&mut self, field: &'static str, min_elem_size: usize) -> Result<usize, RecordError> {
        let start = self.pos;
        let n = self.uvarint()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_elem_size) <= self.remaining() => Ok(n),
            _ => Err(self.out_of_range(field, i128::from(n), start)),
        }
    }

    /// A length-prefixed UTF-8 string, as a `String` or as a label's `CompactString`.
    fn string<S: for<'s> From<&'s str>>(&mut self) -> Result<S, RecordError> {
        let start = self.pos;
        let len = self.count("string length", 1)?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(S::from)
            .map_err(|_| RecordError::InvalidUtf8 {
                record: self.record,
                offset: start,
            })
    }

    fn labels(&mut self) -> Result<Labels, RecordError> {
        let n = self.count("label count", 2)?;
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.string()?;
            let value = self.string()?;
            labels.push(Label { name, value });
        }
        let well_formed = labels.windows(2).all(|w| w[0].name < w[1].name)
            && labels
                .iter()
                .all(|l| !l.name.is_empty() && !l.value.is_empty());
        if well_formed {
            return Ok(Labels::from_sorted_unchecked(labels));
        }
        Labels::new(labels).map_err(|source| RecordError::InvalidLabels {
            record: self.record,
            offset: self.pos,
            source,
        })
    }

    fn spans(&mut self) -> Result<Vec<Span>, RecordError> {
        let n = self.count("span count", 2)?;
        let mut spans = Vec::with_capacity(n);
        for _ in 0..n {
            let offset = self.varint_i32("span offset")?;
            let length = self.uvarint_u32("span length")?;
            spans.push(Span { offset, length });
        }
        Ok(spans)
    }

    fn f64s(&mut self, field: &'static str) -> Result<Vec<f64>, RecordError> {
        let n = self.count(field, 8)?;
        (0..n).map(|_| self.f64()).collect()
    }

    fn histogram(&mut self) -> Result<Histogram, RecordError> {
        let counter_reset_hint = self.counter_reset_hint()?;
        let schema = self.varint_i32("schema")?;
        let zero_threshold = self.f64()?;
        let zero_count = self.uvarint()?;
        let count = self.uvarint()?;
        let sum = self.f64()?;
        let positive_spans = self.spans()?;
        let negative_spans = self.spans()?;
        let n = self.count("positive bucket count", 1)?;
        let positive_buckets = (0..n).map(|_| self.varint()).collect::<Result<_, _>>()?;
        let n = self.count("negative bucket count", 1)?;
        let negative_buckets = (0..n).map(|_| self.varint()).collect::<Result<_, _>>()?;
        let custom_values = if schema == CUSTOM_BUCKETS_SCHEMA {
            self.f64s("custom value count")?
        } else {
            Vec::new()
        };
        Ok(Histogram {
            counter_reset_hint,
            schema,
            zero_threshold,
            zero_count,
            count,
            sum,
            positive_spans,
            negative_spans,
            positive_buckets,
            negative_buckets,
            custom_values,
        })
    }

    fn float_histogram(&mut self) -> Result<FloatHistogram, RecordError> {
        let counter_reset_hint = self.counter_reset_hint()?;
        let schema = self.varint_i32("schema")?;
        let zero_threshold = self.f64()?;
        let zero_count = self.f64()?;
        let count = self.f64()?;
        let sum = self.f64()?;
        let positive_spans = self.spans()?;
        let negative_spans = self.spans()?;
        let positive_buckets = self.f64s("positive bucket count")?;
        let negative_buckets = self.f64s("negative bucket count")?;
        let custom_values = if schema == CUSTOM_BUCKETS_SCHEMA {
            self.f64s("custom value count")?
        } else {
            Vec::new()
        };
        Ok(FloatHistogram {
            counter_reset_hint,
            schema,
            zero_threshold,
            zero_count,
            count,
            sum,
            positive_spans,
            negative_spans,
            positive_buckets,
            negative_buckets,
            custom_values,
        })
    }
}

/// Runs `body` and restores `out` to its original length if it fails.
fn all_or_nothing<T>(
    out: &mut Vec<T>,
    body: impl FnOnce(&mut Vec<T>) -> Result<(), RecordError>,
) -> Result<(), RecordError> {
    let len = out.len();
    let res = body(out);
    if res.is_err() {
        out.truncate(len);
    }
    res
}

/// Decodes a series record (type 1), appending to `out`.
pub fn decode_series(rec: &[u8], out: &mut Vec<RefSeries>) -> Result<(), RecordError> {
    let mut d = Dec::open(rec, &[RecordType::Series])?;
    all_or_nothing(out, |out| {
        while !d.is_empty() {
            let series_ref = d.be64()?;
            let labels = d.labels()?;
            out.push(RefSeries { series_ref, labels });
        }
        Ok(())
    })
}

/// Decodes a samples record (type 2), appending to `out`.
pub fn decode_samples(rec: &[u8], out: &mut Vec<RefSample>) -> Result<(), RecordError> {
    let mut d = Dec::open(rec, &[RecordType::Samples])?;
    if d.is_empty() {
        return Ok(());
    }
    all_or_nothing(out, |out| {
        let base_ref = d.be64()?;
        let base_t = d.be64()? as i64;
        // Each sample takes at least 10 bytes.
        out.reserve(d.remaining() / 10);
        while !d.is_empty() {
            let dref = d.varint()?;
            let dt = d.varint()?;
            let v = d.f64()?;
            out.push(RefSample {
                series_ref: base_ref.wrapping_add(dref as u64),
                t: base_t.wrapping_add(dt),
                v,
            });
        }
        Ok(())
    })
}

/// Decodes a tombstones record (type 3), appending one entry per interval to `out`.
pub fn decode_tombstones(rec: &[u8], out: &mut Vec<RefTombstone>) -> Result<(), RecordError> {
    let mut d = Dec::open(rec, &[RecordType::Tombstones])?;
    all_or_nothing(out, |out| {
        while !d.is_empty() {
            let series_ref = d.be64()?;
            let mint = d.varint()?;
            let maxt = d.varint()?;
            out.push(RefTombstone {
                series_ref,
                mint,
                maxt,
            });
        }
        Ok(())
    })
}

/// Decodes an exemplars record (type 4), appending to `out`.
pub fn decode_exemplars(rec: &[u8], out: &mut Vec<RefExemplar>) -> Result<(), RecordError> {
    let mut d = Dec::open(rec, &[RecordType::Exemplars])?;
    if d.is_empty() {
        return Ok(());
    }
    all_or_nothing(out, |out| {
        let base_ref = d.be64()?;
        let base_t = d.be64()? as i64;
        while !d.is_empty() {
            let dref = d.varint()?;
            let dt = d.varint()?;
            let v = d.f64()?;
            let labels = d.labels()?;
            out.push(RefExemplar {
                series_ref: base_ref.wrapping_add(dref as u64),
                t: base_t.wrapping_add(dt),
                v,
                labels,
            });
        }
        Ok(())
    })
}

/// Decodes an m-mapped chunk markers record (type 5), appending to `out`.
pub fn decode_mmap_markers(rec: &[u8], out: &mut Vec<RefMmapMarker>) -> Result<(), RecordError> {
    let mut d = Dec::open(rec, &[RecordType::MmapMarkers])?;
    all_or_nothing(out, |out| {
        while !d.is_empty() {
            let series_ref = d.be64()?;
            let mmap_ref = d.be64()?;
            out.push(RefMmapMarker {
                series_ref,
                mmap_ref,
            });
        }
        Ok(())
    })
}

/// Decodes a metadata record (type 6), appending to `out`. Fields other than `UNIT` and
/// `HELP` are skipped, as Prometheus does.
pub fn decode_metadata(rec: &[u8], out: &mut Vec<RefMetadata>) -> Result<(), RecordError> {
    let mut d = Dec::open(rec, &[RecordType::Metadata])?;
    all_or_nothing(out, |out| {
        while !d.is_empty() {
            let series_ref = d.uvarint()?;
            let metric_type = MetricType::from_byte(d.byte()?);
            let fields = d.count("metadata field count", 2)?;
            let mut m = RefMetadata {
                series_ref,
                metric_type,
                ..RefMetadata::default()
            };
            for _ in 0..fields {
                let name: String = d.string()?;
                let value = d.string()?;
                match name.as_str() {
                    UNIT_FIELD => m.unit = value,
                    HELP_FIELD => m.help = value,
                    _ => {}
                }
            }
            out.push(m);
        }
        Ok(())
    })
}

/// Decodes an integer histogram samples record (type 7 or 9), appending to `out`.
pub fn decode_histogram_samples(
    rec: &[u8],
    out: &mut Vec<RefHistogramSample>,
) -> Result<(), RecordError> {
    let mut d = Dec::open(
        rec,
        &[
            RecordType::HistogramSamples,
            RecordType::CustomBucketsHistogramSamples,
        ],
    )?;
    if d.is_empty() {
        return Ok(());
    }
    all_or_nothing(out, |out| {
        let base_ref = d.be64()?;
        let base_t = d.be64()? as i64;
        while !d.is_empty() {
            let dref = d.varint()?;
            let dt = d.varint()?;
            let h = d.histogram()?;
            out.push(RefHistogramSample {
                series_ref: base_ref.wrapping_add(dref as u64),
                t: base_t.wrapping_add(dt),
                h,
            });
        }
        Ok(())
    })
}

/// Decodes a float histogram samples record (type 8 or 10), appending to `out`.
pub fn decode_float_histogram_samples(
    rec: &[u8],
    out: &mut Vec<RefFloatHistogramSample>,
) -> Result<(), RecordError> {
    let mut d = Dec::open(
        rec,
        &[
            RecordType::FloatHistogramSamples,
            RecordType::CustomBucketsFloatHistogramSamples,
        ],
    )?;
    if d.is_empty() {
        return Ok(());
    }
    all_or_nothing(out, |out| {
        let base_ref = d.be64()?;
        let base_t = d.be64()? as i64;
        while !d.is_empty() {
            let dref = d.varint()?;
            let dt = d.varint()?;
            let fh = d.float_histogram()?;
            out.push(RefFloatHistogramSample {
                series_ref: base_ref.wrapping_add(dref as u64),
                t: base_t.wrapping_add(dt),
                fh,
            });
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests;
