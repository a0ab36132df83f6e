//! Float histogram chunk (encoding 3).

use std::fmt;

use super::super::bstream::{BitReader, BitWriter};
use super::int::same_bits;
use super::meta::{DecodeResult, Layout, XorState, bits, put_varbit_int, read_varbit_int};
use super::{
    AppendOutcome, CounterResetHeader, CutReason, HEADER_LEN, MAX_SAMPLES, Plan, compare_buckets,
    decode_error, expand_buckets, read_header,
};
use crate::chunkenc::{ChunkError, Encoding};
use crate::histogram::{
    BucketSide, CounterResetHint, FloatHistogram, Span, check_span_lengths,
    is_custom_buckets_schema,
};
use crate::sample::is_stale_nan;

/// A float native histogram chunk that owns its bytes (header included, encoding byte
/// excluded).
#[derive(Clone, PartialEq)]
pub struct FloatHistogramChunk {
    w: BitWriter,
    num: u16,
    layout: Layout,
    first_t: i64,
    t: i64,
    t_delta: i64,
    cnt: XorState,
    zcnt: XorState,
    sum: XorState,
    pos: Vec<XorState>,
    neg: Vec<XorState>,
}

impl Default for FloatHistogramChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FloatHistogramChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FloatHistogramChunk")
            .field("num_samples", &self.num)
            .field("counter_reset_header", &self.counter_reset_header())
            .field("min_time", &self.min_time())
            .field("max_time", &self.max_time())
            .field("bytes", &self.w.bytes().len())
            .finish()
    }
}

impl FloatHistogramChunk {
    /// The most samples one chunk can hold (the header is a 16-bit count).
    pub const MAX_SAMPLES: usize = MAX_SAMPLES;

    /// An empty chunk with an unknown counter-reset header.
    pub fn new() -> Self {
        let mut b = Vec::with_capacity(128);
        b.resize(HEADER_LEN, 0);
        Self {
            w: BitWriter::resume(b, HEADER_LEN * 8),
            num: 0,
            layout: Layout::default(),
            first_t: 0,
            t: 0,
            t_delta: 0,
            cnt: XorState::new(0),
            zcnt: XorState::new(0),
            sum: XorState::new(0),
            pos: Vec::new(),
            neg: Vec::new(),
        }
    }

    /// An empty chunk with the given counter-reset header.
    pub fn with_header(header: CounterResetHeader) -> Self {
        let mut c = Self::new();
        c.set_counter_reset_header(header);
        c
    }

    /// The chunk's counter-reset header.
    pub fn counter_reset_header(&self) -> CounterResetHeader {
        CounterResetHeader::from_flags(self.w.bytes()[2])
    }

    /// Overwrites the chunk's counter-reset header.
    pub fn set_counter_reset_header(&mut self, header: CounterResetHeader) {
        self.w.bytes_mut()[2] = header.bits();
    }

    /// The encoded bytes: sample count, flags byte, bit stream.
    pub fn bytes(&self) -> &[u8] {
        self.w.bytes()
    }

    /// Gives back the encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.w.into_bytes()
    }

    /// Number of samples in the chunk.
    pub fn num_samples(&self) -> usize {
        usize::from(self.num)
    }

    /// True when the chunk holds no samples.
    pub fn is_empty(&self) -> bool {
        self.num == 0
    }

    /// Timestamp of the first sample.
    pub fn min_time(&self) -> Option<i64> {
        (self.num > 0).then_some(self.first_t)
    }

    /// Timestamp of the last sample.
    pub fn max_time(&self) -> Option<i64> {
        (self.num > 0).then_some(self.t)
    }

    /// An iterator over the samples.
    pub fn iter(&self) -> FloatHistogramIterator<'_> {
        FloatHistogramIterator::new(self.w.bytes())
    }

    /// Appends a histogram, encoding it exactly like Prometheus's float histogram
    /// appender. The rules are those of [`super::HistogramChunk::append`], with counts
    /// compared as floats.
    pub fn append(&mut self, t: i64, h: &FloatHistogram) -> Result<AppendOutcome, ChunkError> {
        if self.num > 0 && t <= self.t {
            return Err(ChunkError::OutOfOrder { t, last: self.t });
        }
        if self.num_samples() >= MAX_SAMPLES {
            return Ok(AppendOutcome::NewChunk(CutReason::Full));
        }
        let stale = h.is_stale();
        if !stale {
            check_span_lengths(
                BucketSide::Positive,
                &h.positive_spans,
                h.positive_buckets.len(),
            )?;
            check_span_lengths(
                BucketSide::Negative,
                &h.negative_spans,
                h.negative_buckets.len(),
            )?;
        }
        let mut outcome = AppendOutcome::Appended;
        if self.num > 0 {
            match self.plan(h) {
                Plan::Append => {}
                Plan::Recode => {
                    self.recode(&h.positive_spans, &h.negative_spans);
                    outcome = AppendOutcome::Recoded;
                }
                Plan::Cut(reason) => return Ok(AppendOutcome::NewChunk(reason)),
            }
        } else if !stale {
            match h.counter_reset_hint {
                CounterResetHint::Gauge => self.set_counter_reset_header(CounterResetHeader::Gauge),
                CounterResetHint::CounterReset => {
                    self.set_counter_reset_header(CounterResetHeader::CounterReset);
                }
                _ => {}
            }
        }
        if stale {
            self.append_sample(t, &FloatHistogram::stale());
        } else {
            self.append_sample(t, h);
        }
        Ok(outcome)
    }

    /// What appending `h` after the chunk's last sample needs.
    fn plan(&self, h: &FloatHistogram) -> Plan {
        if h.is_stale() {
            return Plan::Append;
        }
        if is_stale_nan(f64::from_bits(self.sum.bits)) {
            return Plan::Cut(CutReason::AfterStaleMarker);
        }
        let gauge = self.counter_reset_header() == CounterResetHeader::Gauge;
        if gauge != (h.counter_reset_hint == CounterResetHint::Gauge) {
            return Plan::Cut(CutReason::GaugeChanged);
        }
        let prev_count = f64::from_bits(self.cnt.bits);
        if !gauge
            && (h.counter_reset_hint == CounterResetHint::CounterReset || h.count < prev_count)
        {
            return Plan::Cut(CutReason::CounterReset);
        }
        let l = &self.layout;
        if h.schema != l.schema || h.zero_threshold.to_bits() != l.zero_threshold.to_bits() {
            return Plan::Cut(CutReason::LayoutChanged);
        }
        if is_custom_buckets_schema(h.schema) && !same_bits(&h.custom_values, &l.custom_values) {
            return Plan::Cut(if gauge {
                CutReason::LayoutChanged
            } else {
                CutReason::CounterReset
            });
        }
        if !gauge && h.zero_count < f64::from_bits(self.zcnt.bits) {
            return Plan::Cut(CutReason::CounterReset);
        }
        for (old_spans, old, new_spans, new) in [
            (
                &l.positive_spans,
                values(&self.pos),
                &h.positive_spans,
                &h.positive_buckets,
            ),
            (
                &l.negative_spans,
                values(&self.neg),
                &h.negative_spans,
                &h.negative_buckets,
            ),
        ] {
            let change = compare_buckets(old_spans, &old, new_spans, new);
            if change.vanished {
                return Plan::Cut(if gauge {
                    CutReason::LayoutChanged
                } else {
                    CutReason::CounterReset
                });
            }
            if change.decreased && !gauge {
                return Plan::Cut(CutReason::CounterReset);
            }
        }
        if l.positive_spans != h.positive_spans || l.negative_spans != h.negative_spans {
            return Plan::Recode;
        }
        Plan::Append
    }

    /// Re-encodes the chunk with new spans that cover every current bucket.
    fn recode(&mut self, positive_spans: &[Span], negative_spans: &[Span]) {
        let header = self.counter_reset_header();
        let samples: Vec<(i64, FloatHistogram)> = self.iter().collect();
        let mut fresh = Self::with_header(header);
        for (t, mut h) in samples {
            if !h.is_stale() {
                for (spans, buckets, new_spans) in [
                    (
                        &mut h.positive_spans,
                        &mut h.positive_buckets,
                        positive_spans,
                    ),
                    (
                        &mut h.negative_spans,
                        &mut h.negative_buckets,
                        negative_spans,
                    ),
                ] {
                    *buckets = expand_buckets(spans, buckets, new_spans, 0.0);
                    *spans = new_spans.to_vec();
                }
            }
            fresh.append_sample(t, &h);
        }
        *self = fresh;
    }

    /// Writes a sample; the layout has been checked (or this is the first sample).
    fn append_sample(&mut self, t: i64, h: &FloatHistogram) {
        let mut t_delta = 0i64;
        if self.num == 0 {
            self.layout = Layout {
                schema: h.schema,
                zero_threshold: h.zero_threshold,
                positive_spans: h.positive_spans.clone(),
                negative_spans: h.negative_spans.clone(),
                custom_values: if is_custom_buckets_schema(h.schema) {
                    h.custom_values.clone()
                } else {
                    Vec::new()
                },
            };
            self.layout.write(&mut self.w);
            put_varbit_int(&mut self.w, t);
            for v in [h.count, h.zero_count, h.sum] {
                self.w.write_bits(v.to_bits(), 64);
            }
            for &b in h.positive_buckets.iter().chain(&h.negative_buckets) {
                self.w.write_bits(b.to_bits(), 64);
            }
            self.cnt = XorState::new(h.count.to_bits());
            self.zcnt = XorState::new(h.zero_count.to_bits());
            self.sum = XorState::new(h.sum.to_bits());
            self.pos = h
                .positive_buckets
                .iter()
                .map(|b| XorState::new(b.to_bits()))
                .collect();
            self.neg = h
                .negative_buckets
                .iter()
                .map(|b| XorState::new(b.to_bits()))
                .collect();
            self.first_t = t;
        } else {
            t_delta = t.wrapping_sub(self.t);
            put_varbit_int(&mut self.w, t_delta.wrapping_sub(self.t_delta));
            self.cnt.write(&mut self.w, h.count.to_bits());
            self.zcnt.write(&mut self.w, h.zero_count.to_bits());
            self.sum.write(&mut self.w, h.sum.to_bits());
            for (new, states) in [
                (&h.positive_buckets, &mut self.pos),
                (&h.negative_buckets, &mut self.neg),
            ] {
                for (&b, s) in new.iter().zip(states.iter_mut()) {
                    s.write(&mut self.w, b.to_bits());
                }
            }
        }
        self.t = t;
        self.t_delta = t_delta;
        self.num += 1;
        self.w.bytes_mut()[..2].copy_from_slice(&self.num.to_be_bytes());
    }
}

/// The current values of XOR-encoded series.
fn values(v: &[XorState]) -> Vec<f64> {
    v.iter().map(|s| f64::from_bits(s.bits)).collect()
}

impl<'a> IntoIterator for &'a FloatHistogramChunk {
    type Item = (i64, FloatHistogram);
    type IntoIter = FloatHistogramIterator<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterates the samples of float histogram chunk bytes; stops (setting
/// [`FloatHistogramIterator::err`]) on corrupt or truncated data instead of panicking.
#[derive(Debug, Clone)]
pub struct FloatHistogramIterator<'a> {
    r: BitReader<'a>,
    num: u16,
    header: CounterResetHeader,
    read: u16,
    layout: Layout,
    t: i64,
    t_delta: i64,
    cnt: XorState,
    zcnt: XorState,
    sum: XorState,
    pos: Vec<XorState>,
    neg: Vec<XorState>,
    has_cur: bool,
    err: Option<ChunkError>,
}

impl<'a> FloatHistogramIterator<'a> {
    /// An iterator over chunk bytes (header included, encoding byte excluded).
    pub fn new(data: &'a [u8]) -> Self {
        let (num, header, err) = match read_header(data) {
            Ok((n, h)) => (n, h, None),
            Err(e) => (0, CounterResetHeader::Unknown, Some(e)),
        };
        Self {
            r: BitReader::new(data, HEADER_LEN * 8),
            num,
            header,
            read: 0,
            layout: Layout::default(),
            t: 0,
            t_delta: 0,
            cnt: XorState::reader(0),
            zcnt: XorState::reader(0),
            sum: XorState::reader(0),
            pos: Vec::new(),
            neg: Vec::new(),
            has_cur: false,
            err,
        }
    }

    /// Number of samples the chunk header announces.
    pub fn num_samples(&self) -> usize {
        usize::from(self.num)
    }

    /// The chunk's counter-reset header.
    pub fn counter_reset_header(&self) -> CounterResetHeader {
        self.header
    }

    /// The error that stopped iteration early, if any.
    pub fn err(&self) -> Option<&ChunkError> {
        self.err.as_ref()
    }

    /// The sample returned by the last `next` or `seek`, if any.
    pub fn at(&self) -> Option<(i64, FloatHistogram)> {
        self.has_cur.then(|| (self.t, self.current()))
    }

    /// Timestamp of the current sample, without building the histogram.
    pub fn at_t(&self) -> Option<i64> {
        self.has_cur.then_some(self.t)
    }

    /// Advances to the first sample with timestamp `>= t` and returns it. Never moves
    /// backwards: when the current sample already satisfies `t` it is returned again.
    pub fn seek(&mut self, t: i64) -> Option<(i64, FloatHistogram)> {
        if self.has_cur && self.t >= t {
            return self.at();
        }
        while self.advance() {
            if self.t >= t {
                return self.at();
            }
        }
        None
    }

    fn current(&self) -> FloatHistogram {
        let sum = f64::from_bits(self.sum.bits);
        if is_stale_nan(sum) {
            return FloatHistogram::stale();
        }
        FloatHistogram {
            counter_reset_hint: self.header.sample_hint(usize::from(self.read) - 1),
            schema: self.layout.schema,
            zero_threshold: self.layout.zero_threshold,
            zero_count: f64::from_bits(self.zcnt.bits),
            count: f64::from_bits(self.cnt.bits),
            sum,
            positive_spans: self.layout.positive_spans.clone(),
            negative_spans: self.layout.negative_spans.clone(),
            positive_buckets: values(&self.pos),
            negative_buckets: values(&self.neg),
            custom_values: self.layout.custom_values.clone(),
        }
    }

    /// Decodes the next sample into the iterator state; `false` at the end or on error.
    fn advance(&mut self) -> bool {
        if self.err.is_some() || self.read >= self.num {
            self.has_cur = false;
            return false;
        }
        if let Err(e) = self.decode_next() {
            self.err = Some(decode_error(
                Encoding::FloatHistogram,
                e,
                usize::from(self.read),
                usize::from(self.num),
            ));
            self.has_cur = false;
            return false;
        }
        self.read += 1;
        self.has_cur = true;
        true
    }

    fn decode_next(&mut self) -> DecodeResult<()> {
        let r = &mut self.r;
        if self.read == 0 {
            self.layout = Layout::read(r, 64)?;
            let (np, nn) = self.layout.bucket_counts();
            self.t = read_varbit_int(r)?;
            self.cnt = XorState::reader(bits(r, 64)?);
            self.zcnt = XorState::reader(bits(r, 64)?);
            self.sum = XorState::reader(bits(r, 64)?);
            self.pos = Vec::with_capacity(np);
            for _ in 0..np {
                self.pos.push(XorState::reader(bits(r, 64)?));
            }
            self.neg = Vec::with_capacity(nn);
            for _ in 0..nn {
                self.neg.push(XorState::reader(bits(r, 64)?));
            }
            return Ok(());
        }
        self.t_delta = self.t_delta.wrapping_add(read_varbit_int(r)?);
        self.t = self.t.wrapping_add(self.t_delta);
        self.cnt.read(r)?;
        self.zcnt.read(r)?;
        self.sum.read(r)?;
        if is_stale_nan(f64::from_bits(self.sum.bits)) {
            return Ok(());
        }
        for s in self.pos.iter_mut().chain(self.neg.iter_mut()) {
            s.read(r)?;
        }
        Ok(())
    }
}

impl Iterator for FloatHistogramIterator<'_> {
    type Item = (i64, FloatHistogram);

    fn next(&mut self) -> Option<(i64, FloatHistogram)> {
        if self.advance() { self.at() } else { None }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.err.is_some() {
            return (0, Some(0));
        }
        (0, Some(usize::from(self.num - self.read)))
    }
}

impl std::iter::FusedIterator for FloatHistogramIterator<'_> {}
