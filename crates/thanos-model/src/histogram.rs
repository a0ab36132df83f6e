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

    #[test]
    fn hint_bytes_round_trip() {
        for b in 0..4u8 {
            assert_eq!(CounterResetHint::from_u8(b).map(|h| h.as_u8()), Some(b));
        }
        assert_eq!(CounterResetHint::from_u8(4), None);
    }
}
