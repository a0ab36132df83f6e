//! Integer histogram chunk (encoding 2).

use std::fmt;

use super::super::bstream::{BitReader, BitWriter};
use super::meta::{
    DecodeResult, Layout, XorState, bits, put_varbit_int, put_varbit_uint, read_varbit_int,
    read_varbit_uint,
};
use super::{
    AppendOutcome, CounterResetHeader, CutReason, HEADER_LEN, MAX_SAMPLES, Plan, compare_buckets,
    decode_error, expand_buckets, read_header,
};
use crate::chunkenc::{ChunkError, Encoding};
use crate::histogram::{
    BucketSide, CounterResetHint, Histogram, Span, absolute_counts, check_span_lengths,
    delta_counts, is_custom_buckets_schema,
};
use crate::sample::is_stale_nan;

/// An integer native histogram chunk that owns its bytes (header included, encoding
/// byte excluded).
#[derive(Clone, PartialEq)]
pub struct HistogramChunk {
    w: BitWriter,
    num: u16,
    layout: Layout,
    first_t: i64,
    t: i64,
    t_delta: i64,
    cnt: u64,
    cnt_delta: i64,
    zcnt: u64,
    zcnt_delta: i64,
    sum: XorState,
    pos: Vec<i64>,
    pos_delta: Vec<i64>,
    neg: Vec<i64>,
    neg_delta: Vec<i64>,
}

impl Default for HistogramChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HistogramChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistogramChunk")
            .field("num_samples", &self.num)
            .field("counter_reset_header", &self.counter_reset_header())
            .field("min_time", &self.min_time())
            .field("max_time", &self.max_time())
            .field("bytes", &self.w.bytes().len())
            .finish()
    }
}

impl HistogramChunk {
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
            cnt: 0,
            cnt_delta: 0,
            zcnt: 0,
            zcnt_delta: 0,
            sum: XorState::new(0),
            pos: Vec::new(),
            pos_delta: Vec::new(),
            neg: Vec::new(),
            neg_delta: Vec::new(),
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
    pub fn iter(&self) -> HistogramIterator<'_> {
        HistogramIterator::new(self.w.bytes())
    }

    /// Appends a histogram, encoding it exactly like Prometheus's histogram appender.
    ///
    /// The first sample fixes the layout (a gauge or counter-reset hint on it also sets
    /// the chunk header). Later samples must have the same schema, zero threshold and
    /// custom bounds, must agree on gauge vs counter, and in counter chunks must not go
    /// down; otherwise nothing is written and [`AppendOutcome::NewChunk`] says why. A
    /// sample that only adds buckets makes the chunk re-encode itself with the new
    /// spans ([`AppendOutcome::Recoded`]). Staleness markers ([`Histogram::is_stale`])
    /// always fit and are stored as empty histograms; after one only markers fit.
    ///
    /// Errors: a timestamp not after the last one, or bucket counts that do not
    /// match the spans.
    pub fn append(&mut self, t: i64, h: &Histogram) -> Result<AppendOutcome, ChunkError> {
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
            self.append_sample(t, &Histogram::stale());
        } else {
            self.append_sample(t, h);
        }
        Ok(outcome)
    }

    /// What appending `h` after the chunk's last sample needs.
    fn plan(&self, h: &Histogram) -> Plan {
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
        if !gauge && (h.counter_reset_hint == CounterResetHint::CounterReset || h.count < self.cnt)
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
        if !gauge && h.zero_count < self.zcnt {
            return Plan::Cut(CutReason::CounterReset);
        }
        for (old_spans, old, new_spans, new) in [
            (
                &l.positive_spans,
                &self.pos,
                &h.positive_spans,
                &h.positive_buckets,
            ),
            (
                &l.negative_spans,
                &self.neg,
                &h.negative_spans,
                &h.negative_buckets,
            ),
        ] {
            let change = compare_buckets(
                old_spans,
                &absolute_counts(old),
                new_spans,
                &absolute_counts(new),
            );
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
        let samples: Vec<(i64, Histogram)> = self.iter().collect();
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
                    let abs = expand_buckets(spans, &absolute_counts(buckets), new_spans, 0);
                    *buckets = delta_counts(&abs);
                    *spans = new_spans.to_vec();
                }
            }
            fresh.append_sample(t, &h);
        }
        *self = fresh;
    }

    /// Writes a sample; the layout has been checked (or this is the first sample).
    fn append_sample(&mut self, t: i64, h: &Histogram) {
        let (mut t_delta, mut cnt_delta, mut zcnt_delta) = (0i64, 0i64, 0i64);
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
            put_varbit_uint(&mut self.w, h.count);
            put_varbit_uint(&mut self.w, h.zero_count);
            self.w.write_bits(h.sum.to_bits(), 64);
            for &b in h.positive_buckets.iter().chain(&h.negative_buckets) {
                put_varbit_int(&mut self.w, b);
            }
            self.sum = XorState::new(h.sum.to_bits());
            self.pos = h.positive_buckets.clone();
            self.neg = h.negative_buckets.clone();
            self.pos_delta = vec![0; self.pos.len()];
            self.neg_delta = vec![0; self.neg.len()];
            self.first_t = t;
        } else {
            t_delta = t.wrapping_sub(self.t);
            cnt_delta = (h.count as i64).wrapping_sub(self.cnt as i64);
            zcnt_delta = (h.zero_count as i64).wrapping_sub(self.zcnt as i64);
            let mut cnt_dod = cnt_delta.wrapping_sub(self.cnt_delta);
            let mut zcnt_dod = zcnt_delta.wrapping_sub(self.zcnt_delta);
            if h.is_stale() {
                cnt_dod = 0;
                zcnt_dod = 0;
            }
            put_varbit_int(&mut self.w, t_delta.wrapping_sub(self.t_delta));
            put_varbit_int(&mut self.w, cnt_dod);
            put_varbit_int(&mut self.w, zcnt_dod);
            self.sum.write(&mut self.w, h.sum.to_bits());
            for (new, (prev, prev_delta)) in [
                (&h.positive_buckets, (&mut self.pos, &mut self.pos_delta)),
                (&h.negative_buckets, (&mut self.neg, &mut self.neg_delta)),
            ] {
                for ((&b, p), pd) in new.iter().zip(prev.iter_mut()).zip(prev_delta.iter_mut()) {
                    let delta = b.wrapping_sub(*p);
                    put_varbit_int(&mut self.w, delta.wrapping_sub(*pd));
                    *pd = delta;
                    *p = b;
                }
            }
        }
        self.t = t;
        self.t_delta = t_delta;
        self.cnt = h.count;
        self.cnt_delta = cnt_delta;
        self.zcnt = h.zero_count;
        self.zcnt_delta = zcnt_delta;
        self.num += 1;
        self.w.bytes_mut()[..2].copy_from_slice(&self.num.to_be_bytes());
    }
}

/// Bit-exact equality of float slices.
pub(super) fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

impl<'a> IntoIterator for &'a HistogramChunk {
    type Item = (i64, Histogram);
    type IntoIter = HistogramIterator<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterates the samples of integer histogram chunk bytes; stops (setting
/// [`HistogramIterator::err`]) on corrupt or truncated data instead of panicking.
#[derive(Debug, Clone)]
pub struct HistogramIterator<'a> {
    r: BitReader<'a>,
    num: u16,
    header: CounterResetHeader,
    read: u16,
    layout: Layout,
    t: i64,
    t_delta: i64,
    cnt: u64,
    cnt_delta: i64,
    zcnt: u64,
    zcnt_delta: i64,
    sum: XorState,
    pos: Vec<i64>,
    pos_delta: Vec<i64>,
    neg: Vec<i64>,
    neg_delta: Vec<i64>,
    has_cur: bool,
    err: Option<ChunkError>,
}

impl<'a> HistogramIterator<'a> {
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
            cnt: 0,
            cnt_delta: 0,
            zcnt: 0,
            zcnt_delta: 0,
            sum: XorState::reader(0),
            pos: Vec::new(),
            pos_delta: Vec::new(),
            neg: Vec::new(),
            neg_delta: Vec::new(),
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
    pub fn at(&self) -> Option<(i64, Histogram)> {
        self.has_cur.then(|| (self.t, self.current()))
    }

    /// Timestamp of the current sample, without building the histogram.
    pub fn at_t(&self) -> Option<i64> {
        self.has_cur.then_some(self.t)
    }

    /// Advances to the first sample with timestamp `>= t` and returns it. Never moves
    /// backwards: when the current sample already satisfies `t` it is returned again.
    pub fn seek(&mut self, t: i64) -> Option<(i64, Histogram)> {
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

    fn current(&self) -> Histogram {
        let sum = f64::from_bits(self.sum.bits);
        if is_stale_nan(sum) {
            return Histogram::stale();
        }
        Histogram {
            counter_reset_hint: self.header.sample_hint(usize::from(self.read) - 1),
            schema: self.layout.schema,
            zero_threshold: self.layout.zero_threshold,
            zero_count: self.zcnt,
            count: self.cnt,
            sum,
            positive_spans: self.layout.positive_spans.clone(),
            negative_spans: self.layout.negative_spans.clone(),
            positive_buckets: self.pos.clone(),
            negative_buckets: self.neg.clone(),
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
                Encoding::Histogram,
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
            self.layout = Layout::read(r, 1)?;
            let (np, nn) = self.layout.bucket_counts();
            self.t = read_varbit_int(r)?;
            self.cnt = read_varbit_uint(r)?;
            self.zcnt = read_varbit_uint(r)?;
            self.sum = XorState::reader(bits(r, 64)?);
            self.pos = Vec::with_capacity(np);
            for _ in 0..np {
                self.pos.push(read_varbit_int(r)?);
            }
            self.neg = Vec::with_capacity(nn);
            for _ in 0..nn {
                self.neg.push(read_varbit_int(r)?);
            }
            self.pos_delta = vec![0; np];
            self.neg_delta = vec![0; nn];
            return Ok(());
        }
        self.t_delta = self.t_delta.wrapping_add(read_varbit_int(r)?);
        self.t = self.t.wrapping_add(self.t_delta);
        self.cnt_delta = self.cnt_delta.wrapping_add(read_varbit_int(r)?);
        self.cnt = (self.cnt as i64).wrapping_add(self.cnt_delta) as u64;
        self.zcnt_delta = self.zcnt_delta.wrapping_add(read_varbit_int(r)?);
        self.zcnt = (self.zcnt as i64).wrapping_add(self.zcnt_delta) as u64;
        self.sum.read(r)?;
        if is_stale_nan(f64::from_bits(self.sum.bits)) {
            return Ok(());
        }
        for (vals, deltas) in [
            (&mut self.pos, &mut self.pos_delta),
            (&mut self.neg, &mut self.neg_delta),
        ] {
            for (v, d) in vals.iter_mut().zip(deltas.iter_mut()) {
                *d = d.wrapping_add(read_varbit_int(r)?);
                *v = v.wrapping_add(*d);
            }
        }
        Ok(())
    }
}

impl Iterator for HistogramIterator<'_> {
    type Item = (i64, Histogram);

    fn next(&mut self) -> Option<(i64, Histogram)> {
        if self.advance() { self.at() } else { None }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.err.is_some() {
            return (0, Some(0));
        }
        (0, Some(usize::from(self.num - self.read)))
    }
}

impl std::iter::FusedIterator for HistogramIterator<'_> {}
