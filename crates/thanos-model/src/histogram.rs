//! Native histograms: the sparse, exponentially (or custom) bucketed histogram model.
//!
//! Mirrors Prometheus's `model/histogram` package. Buckets are addressed by an integer
//! index; which indexes are populated is described by [`Span`]s. An integer
//! [`Histogram`] stores its bucket counts delta-encoded (each value is the difference to
//! the previous bucket of the same sign), a [`FloatHistogram`] stores absolute counts.

use std::fmt;

/// Schema number of histograms with custom (explicit) bucket bounds.
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
/// Smallest exponential schema (coarsest resolution, bucket growth factor 2^16).
pub const EXPONENTIAL_SCHEMA_MIN: i32 = -4;
/// Largest exponential schema (finest resolution, growth factor 2^(2^-8)).
pub const EXPONENTIAL_SCHEMA_MAX: i32 = 8;

/// True for schema [`CUSTOM_BUCKETS_SCHEMA`].
pub fn is_custom_buckets_schema(schema: i32) -> bool {
    schema == CUSTOM_BUCKETS_SCHEMA
}

/// True for the exponential schemas [`EXPONENTIAL_SCHEMA_MIN`]..=[`EXPONENTIAL_SCHEMA_MAX`].
pub fn is_exponential_schema(schema: i32) -> bool {
    (EXPONENTIAL_SCHEMA_MIN..=EXPONENTIAL_SCHEMA_MAX).contains(&schema)
}

/// What the producer knows about counter resets of a histogram sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum CounterResetHint {
    /// Nothing is known; the consumer has to compare with the previous sample.
    #[default]
    Unknown = 0,
    /// The counter was reset before this sample.
    CounterReset = 1,
    /// The counter was not reset before this sample.
    NotCounterReset = 2,
    /// The histogram is a gauge histogram (counts may go up and down).
    Gauge = 3,
}

impl CounterResetHint {
    /// The hint's byte as used in WAL records and protobuf messages.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Parses the hint byte; `None` for values above 3.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Unknown),
            1 => Some(Self::CounterReset),
            2 => Some(Self::NotCounterReset),
            3 => Some(Self::Gauge),
            _ => None,
        }
    }
}

/// A run of consecutive populated buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// Gap to the end of the previous span (for the first span: the index of its first
    /// bucket). Only the first span may have a negative offset.
    pub offset: i32,
    /// Number of consecutive buckets in the span.
    pub length: u32,
}

impl Span {
    /// Creates a span.
    pub fn new(offset: i32, length: u32) -> Self {
        Self { offset, length }
    }
}

/// Total number of buckets the spans describe.
pub fn count_spans(spans: &[Span]) -> u64 {
    spans.iter().map(|s| u64::from(s.length)).sum()
}

/// The absolute bucket indexes the spans describe, in order.
pub fn bucket_indexes(spans: &[Span]) -> impl Iterator<Item = i64> + '_ {
    let mut next: i64 = 0;
    spans.iter().flat_map(move |s| {
        let start = next + i64::from(s.offset);
        next = start + i64::from(s.length);
        start..start + i64::from(s.length)
    })
}

/// Which half of a histogram a bucket belongs to (used in error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BucketSide {
    /// Buckets for positive observations (all buckets of a custom-bucket histogram).
    Positive,
    /// Buckets for negative observations.
    Negative,
}

impl fmt::Display for BucketSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BucketSide::Positive => "positive",
            BucketSide::Negative => "negative",
        })
    }
}

/// Why a histogram is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistogramError {
    /// The schema is neither exponential (-4..=8) nor custom (-53).
    #[error("invalid histogram schema {0}: must be in -4..=8 or -53 (custom buckets)")]
    InvalidSchema(i32),
    /// A span after the first one has a negative offset.
    #[error("{side} span {index} has negative offset {offset}")]
    NegativeSpanOffset {
        /// Which bucket half.
        side: BucketSide,
        /// 0-based span index.
        index: usize,
        /// The offending offset.
        offset: i32,
    },
    /// The spans describe a different number of buckets than are given.
    #[error("{side} spans describe {spans} buckets but {buckets} bucket counts are given")]
    SpanBucketMismatch {
        /// Which bucket half.
        side: BucketSide,
        /// Buckets described by the spans.
        spans: u64,
        /// Bucket counts given.
        buckets: usize,
    },
    /// A bucket count is negative (or NaN for float histograms).
    #[error("{side} bucket {index} has a negative or NaN count")]
    NegativeBucketCount {
        /// Which bucket half.
        side: BucketSide,
        /// 0-based bucket position.
        index: usize,
    },
    /// The zero count is negative or NaN (float histograms).
    #[error("zero count is negative or NaN")]
    NegativeZeroCount,
    /// The total count is smaller than the observations in the buckets.
    #[error("count {count} is smaller than the {buckets} observations in the buckets")]
    CountNotBigEnough {
        /// The histogram's count (rounded down for float histograms).
        count: u64,
        /// Sum of zero count and all bucket counts.
        buckets: u64,
    },
    /// The count differs from the bucket total although the sum is not NaN.
    #[error("count {count} differs from the {buckets} observations in the buckets")]
    CountMismatch {
        /// The histogram's count.
        count: u64,
        /// Sum of zero count and all bucket counts.
        buckets: u64,
    },
    /// A custom-bucket histogram has negative buckets or spans.
    #[error("histogram with custom buckets must not have negative spans or buckets")]
    CustomBucketsNegativeBuckets,
    /// A custom-bucket histogram has a zero bucket.
    #[error("histogram with custom buckets must have zero threshold and zero count 0")]
    CustomBucketsZeroBucket,
    /// Custom bounds are not strictly increasing finite values.
    #[error("custom bucket bound {index} is not a finite value above the previous bound")]
    CustomBoundsNotIncreasing {
        /// 0-based index of the offending bound.
        index: usize,
    },
    /// A custom-bucket span points at a bucket that has no bound.
    #[error("custom bucket index {index} is outside 0..={max}")]
    CustomBucketOutOfRange {
        /// Offending bucket index.
        index: i64,
        /// Highest valid index (the +Inf bucket, equal to the number of bounds).
        max: usize,
    },
    /// Custom bounds are given for an exponential schema.
    #[error("custom bucket bounds given for exponential schema {0}")]
    UnexpectedCustomBounds(i32),
}

/// Checks span offsets and that the spans describe `buckets` bucket counts.
fn check_spans(side: BucketSide, spans: &[Span], buckets: usize) -> Result<(), HistogramError> {
    for (index, s) in spans.iter().enumerate().skip(1) {
        if s.offset < 0 {
            return Err(HistogramError::NegativeSpanOffset {
                side,
                index,
                offset: s.offset,
            });
        }
    }
    check_span_lengths(side, spans, buckets)
}

/// Checks only that the spans describe `buckets` bucket counts.
pub(crate) fn check_span_lengths(
    side: BucketSide,
    spans: &[Span],
    buckets: usize,
) -> Result<(), HistogramError> {
    let n = count_spans(spans);
    if n != buckets as u64 {
        return Err(HistogramError::SpanBucketMismatch {
            side,
            spans: n,
            buckets,
        });
    }
    Ok(())
}

/// Checks the custom-bucket rules shared by both histogram flavours.
fn check_custom(
    schema: i32,
    zero_bucket_empty: bool,
    negative_spans: &[Span],
    negative_buckets: usize,
    positive_spans: &[Span],
    custom_values: &[f64],
) -> Result<(), HistogramError> {
    if !is_custom_buckets_schema(schema) {
        if !is_exponential_schema(schema) {
            return Err(HistogramError::InvalidSchema(schema));
        }
        if !custom_values.is_empty() {
            return Err(HistogramError::UnexpectedCustomBounds(schema));
        }
        return Ok(());
    }
    if !negative_spans.is_empty() || negative_buckets > 0 {
        return Err(HistogramError::CustomBucketsNegativeBuckets);
    }
    if !zero_bucket_empty {
        return Err(HistogramError::CustomBucketsZeroBucket);
    }
    let mut prev = f64::NEG_INFINITY;
    for (index, &b) in custom_values.iter().enumerate() {
        // A NaN compares as not greater and is rejected too.
        if b.partial_cmp(&prev) != Some(std::cmp::Ordering::Greater) || b.is_infinite() {
            return Err(HistogramError::CustomBoundsNotIncreasing { index });
        }
        prev = b;
    }
    let max = custom_values.len();
    for index in bucket_indexes(positive_spans) {
        if index < 0 || index > max as i64 {
            return Err(HistogramError::CustomBucketOutOfRange { index, max });
        }
    }
    Ok(())
}

/// True for counts that are neither negative nor NaN.
fn non_negative(c: f64) -> bool {
    c >= 0.0
}

/// An integer native histogram (counter or gauge) with delta-encoded bucket counts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// What is known about counter resets.
    pub counter_reset_hint: CounterResetHint,
    /// Resolution: exponential schemas -4..=8 or [`CUSTOM_BUCKETS_SCHEMA`].
    pub schema: i32,
    /// Width of the zero bucket (observations with |v| <= threshold).
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: u64,
    /// Total number of observations.
    pub count: u64,
    /// Sum of observations (the staleness marker for stale histograms).
    pub sum: f64,
    /// Spans of positive buckets.
    pub positive_spans: Vec<Span>,
    /// Spans of negative buckets.
    pub negative_spans: Vec<Span>,
    /// Positive bucket counts, each the delta to the previous positive bucket (the
    /// first one absolute).
    pub positive_buckets: Vec<i64>,
    /// Negative bucket counts, delta-encoded like `positive_buckets`.
    pub negative_buckets: Vec<i64>,
    /// Upper bounds of the custom buckets (only for [`CUSTOM_BUCKETS_SCHEMA`]; the last
    /// bucket, up to +Inf, has no entry).
    pub custom_values: Vec<f64>,
}

/// Turns delta-encoded counts into absolute counts (wrapping on overflow).
pub fn absolute_counts(deltas: &[i64]) -> Vec<i64> {
    let mut cur = 0i64;
    deltas
        .iter()
        .map(|&d| {
            cur = cur.wrapping_add(d);
            cur
        })
        .collect()
}

/// Turns absolute counts into the delta encoding of [`Histogram`] buckets.
pub fn delta_counts(absolute: &[i64]) -> Vec<i64> {
    let mut prev = 0i64;
    absolute
        .iter()
        .map(|&a| {
            let d = a.wrapping_sub(prev);
            prev = a;
            d
        })
        .collect()
}

impl Histogram {
    /// A staleness marker: an empty histogram whose sum is the stale NaN.
    pub fn stale() -> Self {
        Self {
            sum: crate::sample::stale_nan(),
            ..Self::default()
        }
    }

    /// True when the sum is the staleness marker.
    pub fn is_stale(&self) -> bool {
        crate::sample::is_stale_nan(self.sum)
    }

    /// Absolute positive bucket counts.
    pub fn positive_counts(&self) -> Vec<i64> {
        absolute_counts(&self.positive_buckets)
    }

    /// Absolute negative bucket counts.
    pub fn negative_counts(&self) -> Vec<i64> {
        absolute_counts(&self.negative_buckets)
    }

    /// Converts to a float histogram with absolute bucket counts.
    pub fn to_float(&self) -> FloatHistogram {
        let to_f = |v: Vec<i64>| v.into_iter().map(|c| c as f64).collect();
        FloatHistogram {
            counter_reset_hint: self.counter_reset_hint,
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count as f64,
            count: self.count as f64,
            sum: self.sum,
            positive_spans: self.positive_spans.clone(),
            negative_spans: self.negative_spans.clone(),
            positive_buckets: to_f(self.positive_counts()),
            negative_buckets: to_f(self.negative_counts()),
            custom_values: self.custom_values.clone(),
        }
    }

    /// Checks the histogram the way Prometheus does before ingesting it: valid schema,
    /// spans consistent with bucket counts, no negative bucket counts, a count that
    /// covers all buckets (and equals their total unless the sum is NaN), and the
    /// custom-bucket rules for schema -53.
    pub fn validate(&self) -> Result<(), HistogramError> {
        check_spans(
            BucketSide::Negative,
            &self.negative_spans,
            self.negative_buckets.len(),
        )?;
        check_spans(
            BucketSide::Positive,
            &self.positive_spans,
            self.positive_buckets.len(),
        )?;
        check_custom(
            self.schema,
            self.zero_threshold == 0.0 && self.zero_count == 0,
            &self.negative_spans,
            self.negative_buckets.len(),
            &self.positive_spans,
            &self.custom_values,
        )?;
        let mut total = u128::from(self.zero_count);
        for (side, deltas) in [
            (BucketSide::Negative, &self.negative_buckets),
            (BucketSide::Positive, &self.positive_buckets),
        ] {
            let mut cur: i128 = 0;
            for (index, &d) in deltas.iter().enumerate() {
                cur += i128::from(d);
                if cur < 0 {
                    return Err(HistogramError::NegativeBucketCount { side, index });
                }
                total += cur as u128;
            }
        }
        let buckets = u64::try_from(total).unwrap_or(u64::MAX);
        if u128::from(self.count) < total {
            return Err(HistogramError::CountNotBigEnough {
                count: self.count,
                buckets,
            });
        }
        if !self.sum.is_nan() && u128::from(self.count) != total {
            return Err(HistogramError::CountMismatch {
                count: self.count,
                buckets,
            });
        }
        Ok(())
    }
}

/// A native histogram with float counts (absolute bucket counts).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    /// What is known about counter resets.
    pub counter_reset_hint: CounterResetHint,
    /// Resolution: exponential schemas -4..=8 or [`CUSTOM_BUCKETS_SCHEMA`].
    pub schema: i32,
    /// Width of the zero bucket.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: f64,
    /// Total number of observations.
    pub count: f64,
    /// Sum of observations (the staleness marker for stale histograms).
    pub sum: f64,
    /// Spans of positive buckets.
    pub positive_spans: Vec<Span>,
    /// Spans of negative buckets.
    pub negative_spans: Vec<Span>,
    /// Absolute positive bucket counts.
    pub positive_buckets: Vec<f64>,
    /// Absolute negative bucket counts.
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (only for [`CUSTOM_BUCKETS_SCHEMA`]).
    pub custom_values: Vec<f64>,
}

impl FloatHistogram {
    /// A staleness marker: an empty histogram whose sum is the stale NaN.
    pub fn stale() -> Self {
        Self {
            sum: crate::sample::stale_nan(),
            ..Self::default()
        }
    }

    /// True when the sum is the staleness marker.
    pub fn is_stale(&self) -> bool {
        crate::sample::is_stale_nan(self.sum)
    }

    /// Checks the histogram like [`Histogram::validate`]; counts are floats here, so
    /// the count must be at least the bucket total and (unless the sum is NaN) equal to
    /// it.
    pub fn validate(&self) -> Result<(), HistogramError> {
        check_spans(
            BucketSide::Negative,
            &self.negative_spans,
            self.negative_buckets.len(),
        )?;
        check_spans(
            BucketSide::Positive,
            &self.positive_spans,
            self.positive_buckets.len(),
        )?;
        check_custom(
            self.schema,
            self.zero_threshold == 0.0 && self.zero_count == 0.0,
            &self.negative_spans,
            self.negative_buckets.len(),
            &self.positive_spans,
            &self.custom_values,
        )?;
        if !non_negative(self.zero_count) {
            return Err(HistogramError::NegativeZeroCount);
        }
        let mut total = self.zero_count;
        for (side, counts) in [
            (BucketSide::Negative, &self.negative_buckets),
            (BucketSide::Positive, &self.positive_buckets),
        ] {
            for (index, &c) in counts.iter().enumerate() {
                if !non_negative(c) {
                    return Err(HistogramError::NegativeBucketCount { side, index });
                }
                total += c;
            }
        }
        // Saturating float-to-int casts; only used for the error message.
        if self.count < total {
            return Err(HistogramError::CountNotBigEnough {
                count: self.count as u64,
                buckets: total as u64,
            });
        }
        if !self.sum.is_nan() && self.count != total {
            return Err(HistogramError::CountMismatch {
                count: self.count as u64,
                buckets: total as u64,
            });
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ float-histogram math

/// The upper bound of bucket `idx` of a histogram with `schema` (and custom bounds for
/// [`CUSTOM_BUCKETS_SCHEMA`]); the lower bound of bucket `idx` is the bound of `idx - 1`.
pub fn bucket_bound(idx: i64, schema: i32, custom_values: &[f64]) -> f64 {
    if is_custom_buckets_schema(schema) {
        if idx < 0 {
            return f64::NEG_INFINITY;
        }
        return usize::try_from(idx)
            .ok()
            .and_then(|i| custom_values.get(i).copied())
            .unwrap_or(f64::INFINITY);
    }
    // Schemas outside -4..=8 are invalid; clamping keeps the shifts in range.
    if schema <= 0 {
        let exp = idx.saturating_mul(1i64 << schema.saturating_neg().min(62) as u32);
        if exp == 1024 {
            return f64::MAX;
        }
        return ldexp(1.0, exp);
    }
    let per = 1i64 << schema.min(30);
    let frac_idx = idx.rem_euclid(per);
    let exp = idx.div_euclid(per) + 1;
    // 2^(frac_idx / 2^schema) / 2, in [0.5, 1).
    let frac = (frac_idx as f64 / per as f64).exp2() / 2.0;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

/// `frac * 2^exp`, saturating to 0 or infinity.
fn ldexp(frac: f64, exp: i64) -> f64 {
    if exp > 1100 {
        return frac * f64::INFINITY;
    }
    if exp < -1100 {
        return 0.0;
    }
    let e = exp as i32;
    // Split to avoid overflowing powi's intermediate for subnormal results.
    if e < -1000 {
        frac * 2f64.powi(e + 100) * 2f64.powi(-100)
    } else {
        frac * 2f64.powi(e)
    }
}

/// One bucket of a float histogram with its bounds, as iterated by
/// [`FloatHistogram::all_buckets`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FloatBucket {
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
    /// Observations in the bucket.
    pub count: f64,
    /// True for the zero bucket.
    pub zero: bool,
}

/// Why two histograms cannot be combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistogramArithError {
    /// One histogram uses custom buckets, the other exponential ones.
    #[error("cannot combine histograms with exponential and custom bucket schemas")]
    MixedSchemas,
}

/// What happened while adding or subtracting two histograms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArithOutcome {
    /// One operand was marked as a counter reset and the other as no reset.
    pub counter_reset_collision: bool,
    /// Custom bucket bounds differed and were reduced to the common bounds.
    pub custom_bounds_reconciled: bool,
}

/// (index, count) pairs of the populated buckets described by `spans`.
fn bucket_list(spans: &[Span], counts: &[f64]) -> Vec<(i64, f64)> {
    bucket_indexes(spans).zip(counts.iter().copied()).collect()
}

/// Spans and counts for (index, count) pairs sorted by index; zero counts are dropped.
fn from_bucket_list(list: &[(i64, f64)]) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut counts = Vec::new();
    let mut next: Option<i64> = None;
    for &(idx, c) in list {
        if c == 0.0 {
            continue;
        }
        match next {
            Some(n) if n == idx => {
                if let Some(last) = spans.last_mut() {
                    last.length += 1;
                }
            }
            Some(n) => spans.push(Span::new((idx - n) as i32, 1)),
            None => spans.push(Span::new(idx as i32, 1)),
        }
        counts.push(c);
        next = Some(idx + 1);
    }
    (spans, counts)
}

/// Merges two sorted (index, count) lists, combining counts of equal indexes with `f`
/// (`f(a, b)` where a missing side counts as 0).
fn merge_lists(a: &[(i64, f64)], b: &[(i64, f64)], f: impl Fn(f64, f64) -> f64) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                out.push((x.0, f(x.1, y.1)));
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                out.push((x.0, f(x.1, 0.0)));
                i += 1;
            }
            (Some(x), None) => {
                out.push((x.0, f(x.1, 0.0)));
                i += 1;
            }
            (_, Some(y)) => {
                out.push((y.0, f(0.0, y.1)));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// Maps a sorted (index, count) list to a coarser exponential schema.
fn reduce_list(list: &[(i64, f64)], from: i32, to: i32) -> Vec<(i64, f64)> {
    if from <= to {
        return list.to_vec();
    }
    let shift = (i64::from(from) - i64::from(to)).min(63) as u32;
    let mut out: Vec<(i64, f64)> = Vec::with_capacity(list.len());
    for &(idx, c) in list {
        let t = ((idx - 1) >> shift) + 1;
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

/// Maps a custom-bucket list onto `target` bounds (a subset of `bounds`): every bucket
/// moves to the target bucket whose upper bound is the smallest one not below its own.
fn remap_custom(list: &[(i64, f64)], bounds: &[f64], target: &[f64]) -> Vec<(i64, f64)> {
    let mut out: Vec<(i64, f64)> = Vec::with_capacity(list.len());
    for &(idx, c) in list {
        let upper = bucket_bound(idx, CUSTOM_BUCKETS_SCHEMA, bounds);
        let t = target.partition_point(|b| *b < upper) as i64;
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

impl FloatHistogram {
    /// True when the histogram uses custom bucket bounds (schema -53).
    pub fn uses_custom_buckets(&self) -> bool {
        is_custom_buckets_schema(self.schema)
    }

    /// (index, count) pairs of the populated positive buckets.
    pub fn positive_bucket_list(&self) -> Vec<(i64, f64)> {
        bucket_list(&self.positive_spans, &self.positive_buckets)
    }

    /// (index, count) pairs of the populated negative buckets.
    pub fn negative_bucket_list(&self) -> Vec<(i64, f64)> {
        bucket_list(&self.negative_spans, &self.negative_buckets)
    }

    fn set_lists(&mut self, pos: &[(i64, f64)], neg: &[(i64, f64)]) {
        (self.positive_spans, self.positive_buckets) = from_bucket_list(pos);
        (self.negative_spans, self.negative_buckets) = from_bucket_list(neg);
    }

    /// Removes empty buckets and merges adjacent spans (Prometheus's `Compact(0)`).
    pub fn compact(&mut self) {
        let (pos, neg) = (self.positive_bucket_list(), self.negative_bucket_list());
        self.set_lists(&pos, &neg);
    }

    /// A copy reduced to the coarser exponential `schema` (unchanged when `schema` is not
    /// coarser or the histogram uses custom buckets).
    pub fn copy_to_schema(&self, schema: i32) -> FloatHistogram {
        let mut h = self.clone();
        if self.uses_custom_buckets() || schema >= self.schema {
            return h;
        }
        let pos = reduce_list(&self.positive_bucket_list(), self.schema, schema);
        let neg = reduce_list(&self.negative_bucket_list(), self.schema, schema);
        h.schema = schema;
        h.set_lists(&pos, &neg);
        h
    }

    /// Multiplies every count and the sum by `f`.
    pub fn mul(&mut self, f: f64) {
        self.zero_count *= f;
        self.count *= f;
        self.sum *= f;
        self.positive_buckets.iter_mut().for_each(|c| *c *= f);
        self.negative_buckets.iter_mut().for_each(|c| *c *= f);
    }

    /// Divides every count and the sum by `f`; dividing by zero also removes all
    /// buckets (as Prometheus does).
    pub fn div(&mut self, f: f64) {
        self.zero_count /= f;
        self.count /= f;
        self.sum /= f;
        if f == 0.0 {
            self.positive_spans.clear();
            self.negative_spans.clear();
            self.positive_buckets.clear();
            self.negative_buckets.clear();
            return;
        }
        self.positive_buckets.iter_mut().for_each(|c| *c /= f);
        self.negative_buckets.iter_mut().for_each(|c| *c /= f);
    }

    /// The zero count and threshold when the zero bucket is widened to at least
    /// `threshold` (widened further to the upper bound of any bucket it would cut).
    fn zero_count_for_larger_threshold(&self, threshold: f64) -> (f64, f64) {
        let mut t = threshold;
        if t == self.zero_threshold {
            return (self.zero_count, t);
        }
        loop {
            let orig = t;
            let mut count = self.zero_count;
            for list in [self.positive_bucket_list(), self.negative_bucket_list()] {
                for (idx, c) in list {
                    let lower = bucket_bound(idx - 1, self.schema, &self.custom_values);
                    if lower >= t {
                        break;
                    }
                    count += c;
                    let upper = bucket_bound(idx, self.schema, &self.custom_values);
                    if upper > t {
                        t = upper;
                    }
                }
            }
            if t == orig {
                return (count, t);
            }
        }
    }

    /// Drops the buckets that lie entirely inside the zero bucket.
    fn trim_buckets_in_zero_bucket(&mut self) {
        let t = self.zero_threshold;
        let keep = |l: Vec<(i64, f64)>| -> Vec<(i64, f64)> {
            l.into_iter()
                .filter(|(idx, _)| bucket_bound(*idx, self.schema, &self.custom_values) > t)
                .collect()
        };
        let (pos, neg) = (
            keep(self.positive_bucket_list()),
            keep(self.negative_bucket_list()),
        );
        self.set_lists(&pos, &neg);
    }

    /// Aligns the zero buckets of `self` and `other`; returns other's zero count for the
    /// common threshold.
    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_count = other.zero_count;
        let mut other_threshold = other.zero_threshold;
        while other_threshold != self.zero_threshold {
            if self.zero_threshold > other_threshold {
                (other_count, other_threshold) =
                    other.zero_count_for_larger_threshold(self.zero_threshold);
            }
            if other_threshold > self.zero_threshold {
                (self.zero_count, self.zero_threshold) =
                    self.zero_count_for_larger_threshold(other_threshold);
                self.trim_buckets_in_zero_bucket();
            }
        }
        other_count
    }

    /// Combines the counter-reset hints of two operands as Prometheus does; returns true
    /// on a collision of "reset" and "not reset".
    fn adjust_counter_reset(&mut self, other: &FloatHistogram) -> bool {
        use CounterResetHint::*;
        match (self.counter_reset_hint, other.counter_reset_hint) {
            (a, b) if a == b => false,
            (Gauge, _) => false,
            (_, Gauge) => {
                self.counter_reset_hint = Gauge;
                false
            }
            (Unknown, _) => false,
            (_, Unknown) => {
                self.counter_reset_hint = Unknown;
                false
            }
            _ => {
                self.counter_reset_hint = Unknown;
                true
            }
        }
    }

    /// Adds `other` into `self` (`sign` = -1 subtracts), reconciling schemas, zero
    /// buckets and custom bounds.
    fn combine(
        &mut self,
        other: &FloatHistogram,
        sign: f64,
    ) -> Result<ArithOutcome, HistogramArithError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramArithError::MixedSchemas);
        }
        let mut out = ArithOutcome {
            counter_reset_collision: self.adjust_counter_reset(other),
            custom_bounds_reconciled: false,
        };
        if self.uses_custom_buckets() {
            let mut opos = other.positive_bucket_list();
            if self.custom_values != other.custom_values {
                out.custom_bounds_reconciled = true;
                let common: Vec<f64> = self
                    .custom_values
                    .iter()
                    .copied()
                    .filter(|b| other.custom_values.contains(b))
                    .collect();
                let mine = remap_custom(&self.positive_bucket_list(), &self.custom_values, &common);
                opos = remap_custom(&opos, &other.custom_values, &common);
                self.custom_values = common;
                self.set_lists(&mine, &[]);
            }
            self.count += sign * other.count;
            self.sum += sign * other.sum;
            let pos = merge_lists(&self.positive_bucket_list(), &opos, |a, b| a + sign * b);
            self.set_lists(&pos, &[]);
            return Ok(out);
        }
        let other_zero = self.reconcile_zero_buckets(other);
        if other.schema < self.schema {
            *self = self.copy_to_schema(other.schema);
        }
        let opos = reduce_list(&other.positive_bucket_list(), other.schema, self.schema);
        let oneg = reduce_list(&other.negative_bucket_list(), other.schema, self.schema);
        let t = self.zero_threshold;
        let schema = self.schema;
        let outside = |l: Vec<(i64, f64)>| -> Vec<(i64, f64)> {
            l.into_iter()
                .filter(|(idx, _)| bucket_bound(*idx, schema, &[]) > t)
                .collect()
        };
        let (opos, oneg) = (outside(opos), outside(oneg));
        self.zero_count += sign * other_zero;
        self.count += sign * other.count;
        self.sum += sign * other.sum;
        let pos = merge_lists(&self.positive_bucket_list(), &opos, |a, b| a + sign * b);
        let neg = merge_lists(&self.negative_bucket_list(), &oneg, |a, b| a + sign * b);
        self.set_lists(&pos, &neg);
        Ok(out)
    }

    /// Adds `other` to `self` (Prometheus's `FloatHistogram.Add`): the result has the
    /// coarser schema, the wider zero bucket and, for custom buckets, the common bounds.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<ArithOutcome, HistogramArithError> {
        self.combine(other, 1.0)
    }

    /// Subtracts `other` from `self` (Prometheus's `FloatHistogram.Sub`).
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<ArithOutcome, HistogramArithError> {
        self.combine(other, -1.0)
    }

    /// True when `self` is a counter reset relative to `previous`: an explicit reset hint,
    /// a lower count, a finer schema, a narrower zero bucket, changed bucket layout type,
    /// or any bucket (at the common resolution) with fewer observations.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() != previous.uses_custom_buckets() {
            return true;
        }
        if self.uses_custom_buckets() {
            if self.custom_values != previous.custom_values {
                let common: Vec<f64> = self
                    .custom_values
                    .iter()
                    .copied()
                    .filter(|b| previous.custom_values.contains(b))
                    .collect();
                let cur = remap_custom(&self.positive_bucket_list(), &self.custom_values, &common);
                let prev = remap_custom(
                    &previous.positive_bucket_list(),
                    &previous.custom_values,
                    &common,
                );
                return merge_lists(&prev, &cur, |p, c| c - p)
                    .iter()
                    .any(|(_, d)| *d < 0.0);
            }
            return merge_lists(
                &previous.positive_bucket_list(),
                &self.positive_bucket_list(),
                |p, c| c - p,
            )
            .iter()
            .any(|(_, d)| *d < 0.0);
        }
        if self.schema > previous.schema {
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (prev_zero, t) = previous.zero_count_for_larger_threshold(self.zero_threshold);
        if t != self.zero_threshold {
            return true;
        }
        if self.zero_count < prev_zero {
            return true;
        }
        let schema = self.schema;
        let outside = |l: Vec<(i64, f64)>| -> Vec<(i64, f64)> {
            l.into_iter()
                .filter(|(idx, _)| bucket_bound(*idx, schema, &[]) > t)
                .collect()
        };
        for (p, c) in [
            (previous.positive_bucket_list(), self.positive_bucket_list()),
            (previous.negative_bucket_list(), self.negative_bucket_list()),
        ] {
            let p = outside(reduce_list(&p, previous.schema, schema));
            let c = outside(c);
            if merge_lists(&p, &c, |p, c| c - p)
                .iter()
                .any(|(_, d)| *d < 0.0)
            {
                return true;
            }
        }
        false
    }

    /// Every populated bucket in ascending order of value: negative buckets, the zero
    /// bucket (when it has observations), positive buckets. Buckets inside the zero
    /// bucket are skipped.
    pub fn all_buckets(&self) -> Vec<FloatBucket> {
        let mut out = Vec::new();
        let t = self.zero_threshold;
        let bound = |idx: i64| bucket_bound(idx, self.schema, &self.custom_values);
        for (idx, c) in self.negative_bucket_list().into_iter().rev() {
            if !self.uses_custom_buckets() && bound(idx) <= t {
                continue;
            }
            out.push(FloatBucket {
                lower: -bound(idx),
                upper: -bound(idx - 1),
                count: c,
                zero: false,
            });
        }
        if self.zero_count > 0.0 {
            out.push(FloatBucket {
                lower: -t,
                upper: t,
                count: self.zero_count,
                zero: true,
            });
        }
        for (idx, c) in self.positive_bucket_list() {
            if !self.uses_custom_buckets() && bound(idx) <= t {
                continue;
            }
            out.push(FloatBucket {
                lower: bound(idx - 1),
                upper: bound(idx),
                count: c,
                zero: false,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Histogram {
        // Buckets 0,1 and 4 positive with counts 2,3,1; bucket -1 negative count 1.
        Histogram {
            counter_reset_hint: CounterResetHint::NotCounterReset,
            schema: 1,
            zero_threshold: 0.001,
            zero_count: 2,
            count: 9,
            sum: 12.5,
            positive_spans: vec![Span::new(0, 2), Span::new(2, 1)],
            negative_spans: vec![Span::new(-1, 1)],
            positive_buckets: vec![2, 1, -2],
            negative_buckets: vec![1],
            custom_values: vec![],
        }
    }

    #[test]
    fn bucket_indexes_follow_spans() {
        let h = sample();
        assert_eq!(
            bucket_indexes(&h.positive_spans).collect::<Vec<_>>(),
            [0, 1, 4]
        );
        assert_eq!(
            bucket_indexes(&[Span::new(-3, 2), Span::new(0, 1), Span::new(5, 1)])
                .collect::<Vec<_>>(),
            [-3, -2, -1, 5]
        );
        assert_eq!(count_spans(&h.positive_spans), 3);
    }

    #[test]
    fn deltas_and_absolute_counts_are_inverse() {
        let h = sample();
        assert_eq!(h.positive_counts(), [2, 3, 1]);
        assert_eq!(delta_counts(&[2, 3, 1]), h.positive_buckets);
    }

    #[test]
    fn to_float_uses_absolute_counts() {
        let f = sample().to_float();
        assert_eq!(f.positive_buckets, [2.0, 3.0, 1.0]);
        assert_eq!(f.negative_buckets, [1.0]);
        assert_eq!(f.count, 9.0);
        assert_eq!(f.zero_count, 2.0);
        assert_eq!(f.counter_reset_hint, CounterResetHint::NotCounterReset);
        assert_eq!(f.validate(), Ok(()));
    }

    #[test]
    fn valid_histogram_passes() {
        assert_eq!(sample().validate(), Ok(()));
        assert_eq!(Histogram::stale().validate(), Ok(()));
        assert!(Histogram::stale().is_stale());
        assert!(!sample().is_stale());
    }

    #[test]
    fn validation_errors_are_typed() {
        let mut h = sample();
        h.positive_buckets.pop();
        assert_eq!(
            h.validate(),
            Err(HistogramError::SpanBucketMismatch {
                side: BucketSide::Positive,
                spans: 3,
                buckets: 2
            })
        );
        let mut h = sample();
        h.positive_spans[1].offset = -1;
        assert_eq!(
            h.validate(),
            Err(HistogramError::NegativeSpanOffset {
                side: BucketSide::Positive,
                index: 1,
                offset: -1
            })
        );
        let mut h = sample();
        h.positive_buckets[2] = -4;
        assert_eq!(
            h.validate(),
            Err(HistogramError::NegativeBucketCount {
                side: BucketSide::Positive,
                index: 2
            })
        );
        let mut h = sample();
        h.count = 8;
        assert_eq!(
            h.validate(),
            Err(HistogramError::CountNotBigEnough {
                count: 8,
                buckets: 9
            })
        );
        h.count = 10;
        assert_eq!(
            h.validate(),
            Err(HistogramError::CountMismatch {
                count: 10,
                buckets: 9
            })
        );
        h.sum = f64::NAN;
        assert_eq!(h.validate(), Ok(()));
        let mut h = sample();
        h.schema = 9;
        assert_eq!(h.validate(), Err(HistogramError::InvalidSchema(9)));
    }

    #[test]
    fn custom_bucket_rules() {
        let mut h = Histogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 3,
            sum: 1.0,
            positive_spans: vec![Span::new(0, 1), Span::new(1, 1)],
            positive_buckets: vec![1, 1],
            custom_values: vec![0.1, 0.5],
            ..Histogram::default()
        };
        assert_eq!(h.validate(), Ok(()));
        h.custom_values = vec![0.5, 0.5];
        assert_eq!(
            h.validate(),
            Err(HistogramError::CustomBoundsNotIncreasing { index: 1 })
        );
        h.custom_values = vec![0.1];
        assert_eq!(
            h.validate(),
            Err(HistogramError::CustomBucketOutOfRange { index: 2, max: 1 })
        );
        h.custom_values = vec![0.1, 0.5];
        h.zero_count = 1;
        h.count = 4;
        assert_eq!(h.validate(), Err(HistogramError::CustomBucketsZeroBucket));
        let mut e = sample();
        e.custom_values = vec![1.0];
        assert_eq!(e.validate(), Err(HistogramError::UnexpectedCustomBounds(1)));
    }

    #[test]
    fn float_validation() {
        let mut f = sample().to_float();
        f.positive_buckets[0] = f64::NAN;
        assert_eq!(
            f.validate(),
            Err(HistogramError::NegativeBucketCount {
                side: BucketSide::Positive,
                index: 0
            })
        );
        let mut f = sample().to_float();
        f.count = 100.0;
        assert!(matches!(
            f.validate(),
            Err(HistogramError::CountMismatch { .. })
        ));
        assert_eq!(FloatHistogram::stale().validate(), Ok(()));
    }

    fn fh(schema: i32, offset: i32, buckets: &[f64]) -> FloatHistogram {
        let count = buckets.iter().sum();
        FloatHistogram {
            schema,
            count,
            sum: count,
            positive_spans: vec![Span::new(offset, buckets.len() as u32)],
            positive_buckets: buckets.to_vec(),
            ..FloatHistogram::default()
        }
    }

    #[test]
    fn bucket_bounds() {
        assert_eq!(bucket_bound(0, 0, &[]), 1.0);
        assert_eq!(bucket_bound(1, 0, &[]), 2.0);
        assert_eq!(bucket_bound(-1, 0, &[]), 0.5);
        assert_eq!(bucket_bound(1, -1, &[]), 4.0);
        assert!((bucket_bound(1, 1, &[]) - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(bucket_bound(2, 1, &[]), 2.0);
        assert_eq!(
            bucket_bound(-1, CUSTOM_BUCKETS_SCHEMA, &[1.0]),
            f64::NEG_INFINITY
        );
        assert_eq!(bucket_bound(0, CUSTOM_BUCKETS_SCHEMA, &[1.0]), 1.0);
        assert_eq!(
            bucket_bound(1, CUSTOM_BUCKETS_SCHEMA, &[1.0]),
            f64::INFINITY
        );
    }

    #[test]
    fn add_and_sub_merge_layouts_and_schemas() {
        // Schema 1 buckets 1,2 (bounds (1,1.41], (1.41,2]) fold into schema 0 bucket 1.
        let mut a = fh(0, 0, &[1.0, 2.0]);
        let b = fh(1, 1, &[3.0, 4.0]);
        let out = a.add(&b).expect("compatible");
        assert_eq!(out, ArithOutcome::default());
        assert_eq!(a.schema, 0);
        assert_eq!(a.positive_bucket_list(), vec![(0, 1.0), (1, 9.0)]);
        assert_eq!(a.count, 10.0);
        a.sub(&b).expect("compatible");
        assert_eq!(a.positive_bucket_list(), vec![(0, 1.0), (1, 2.0)]);
        let mut c = fh(CUSTOM_BUCKETS_SCHEMA, 0, &[1.0]);
        assert_eq!(c.add(&a), Err(HistogramArithError::MixedSchemas));
    }

    #[test]
    fn custom_bounds_are_reconciled_to_common_ones() {
        let mut a = fh(CUSTOM_BUCKETS_SCHEMA, 0, &[1.0, 2.0, 3.0]);
        a.custom_values = vec![1.0, 2.0];
        let mut b = fh(CUSTOM_BUCKETS_SCHEMA, 0, &[1.0, 1.0]);
        b.custom_values = vec![2.0];
        let out = a.add(&b).expect("both custom");
        assert!(out.custom_bounds_reconciled);
        assert_eq!(a.custom_values, vec![2.0]);
        assert_eq!(a.positive_bucket_list(), vec![(0, 4.0), (1, 4.0)]);
    }

    #[test]
    fn zero_buckets_are_widened() {
        let mut a = fh(0, 0, &[1.0, 1.0]);
        a.zero_threshold = 0.5;
        let mut b = fh(0, 0, &[2.0, 2.0]);
        // Threshold 1.5 cuts bucket 1 ((1,2]) and is widened to 2.
        b.zero_threshold = 1.5;
        a.add(&b).expect("compatible");
        assert_eq!(a.zero_threshold, 2.0);
        assert_eq!(a.zero_count, 6.0);
        assert!(a.positive_buckets.is_empty());
    }

    #[test]
    fn compaction_and_schema_reduction() {
        let mut h = fh(2, -1, &[1.0, 0.0, 0.0, 2.0, 3.0]);
        h.compact();
        assert_eq!(h.positive_spans, vec![Span::new(-1, 1), Span::new(2, 2)]);
        assert_eq!(h.positive_buckets, vec![1.0, 2.0, 3.0]);
        let r = h.copy_to_schema(0);
        assert_eq!(r.schema, 0);
        // (0.71,0.84] falls into (0.5,1]; (1.19,1.41] and (1.41,1.68] into (1,2].
        assert_eq!(r.positive_bucket_list(), vec![(0, 1.0), (1, 5.0)]);
    }

    #[test]
    fn reset_detection() {
        let prev = fh(0, 0, &[2.0, 2.0]);
        let mut cur = fh(0, 0, &[3.0, 1.0]);
        cur.count = 5.0;
        assert!(cur.detect_reset(&prev), "a bucket decreased");
        let grown = fh(0, 0, &[2.0, 3.0]);
        assert!(!grown.detect_reset(&prev));
        let mut hinted = grown.clone();
        hinted.counter_reset_hint = CounterResetHint::CounterReset;
        assert!(hinted.detect_reset(&prev));
        assert!(fh(1, 0, &[4.0, 4.0]).detect_reset(&prev), "finer schema");
        assert!(
            !fh(-1, 0, &[2.0, 2.0]).detect_reset(&prev),
            "coarser schema, same buckets"
        );
        assert!(
            fh(-1, 0, &[4.0]).detect_reset(&prev),
            "bucket (1,4] emptied"
        );
    }

    #[test]
    fn buckets_iterate_in_value_order() {
        let mut h = fh(0, 0, &[1.0]);
        h.negative_spans = vec![Span::new(0, 2)];
        h.negative_buckets = vec![2.0, 3.0];
        h.zero_count = 4.0;
        h.zero_threshold = 0.1;
        let b: Vec<(f64, f64, f64)> = h
            .all_buckets()
            .iter()
            .map(|b| (b.lower, b.upper, b.count))
            .collect();
        assert_eq!(
            b,
            vec![
                (-2.0, -1.0, 3.0),
                (-1.0, -0.5, 2.0),
                (-0.1, 0.1, 4.0),
                (0.5, 1.0, 1.0)
            ]
        );
        let mut d = h.clone();
        d.div(0.0);
        assert!(d.positive_buckets.is_empty() && d.count.is_infinite());
    }

    #[test]
    fn hint_bytes_round_trip() {
        for b in 0..4u8 {
            assert_eq!(CounterResetHint::from_u8(b).map(|h| h.as_u8()), Some(b));
        }
        assert_eq!(CounterResetHint::from_u8(4), None);
    }
}
