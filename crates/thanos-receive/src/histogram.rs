//! Native histogram samples of the write path: the remote-write `Histogram` message
//! (identical field numbers in remote write 1.0, 2.0 and Thanos's `prometheus_copy`,
//! remote-write.md §3) converted to and from the model's [`Histogram`] /
//! [`FloatHistogram`].
//!
//! A message is a float histogram iff its count uses the `count_float` field; integer
//! histograms carry delta-encoded bucket counts (`*_deltas`), float ones absolute counts
//! (`*_counts`). Exponential schemas and the custom-buckets schema -53 are both accepted;
//! [`HistogramValue::validate`] applies Prometheus's ingestion checks.

use prost::Message;
use thanos_model::{CounterResetHint, FloatHistogram, Histogram, HistogramError, Span};
use thanos_proto::prometheus_copy::{self, BucketSpan, histogram as pb};

/// One histogram value: integer or float counts.
#[derive(Debug, Clone, PartialEq)]
pub enum HistogramValue {
    /// Integer counts (delta-encoded buckets), stored in encoding-2 chunks.
    Int(Histogram),
    /// Float counts, stored in encoding-3 chunks.
    Float(FloatHistogram),
}

impl HistogramValue {
    /// Equality as Prometheus's `Equals`: like `==`, but the sums are compared bitwise, so
    /// two identical staleness markers (NaN sums) are equal.
    pub fn same_as(&self, other: &HistogramValue) -> bool {
        let sum_bits = |v: &HistogramValue| match v {
            HistogramValue::Int(h) => h.sum.to_bits(),
            HistogramValue::Float(h) => h.sum.to_bits(),
        };
        if sum_bits(self) != sum_bits(other) {
            return false;
        }
        match (self, other) {
            (HistogramValue::Int(a), HistogramValue::Int(b)) => {
                Histogram {
                    sum: 0.0,
                    ..a.clone()
                } == Histogram {
                    sum: 0.0,
                    ..b.clone()
                }
            }
            (HistogramValue::Float(a), HistogramValue::Float(b)) => {
                FloatHistogram {
                    sum: 0.0,
                    ..a.clone()
                } == FloatHistogram {
                    sum: 0.0,
                    ..b.clone()
                }
            }
            _ => false,
        }
    }

    /// Prometheus's ingestion checks (schema, spans against bucket counts, no negative
    /// counts, count covering the buckets, custom-bucket rules).
    pub fn validate(&self) -> Result<(), HistogramError> {
        match self {
            HistogramValue::Int(h) => h.validate(),
            HistogramValue::Float(h) => h.validate(),
        }
    }

    /// The observation count (as a float for both kinds).
    pub fn count(&self) -> f64 {
        match self {
            HistogramValue::Int(h) => h.count as f64,
            HistogramValue::Float(h) => h.count,
        }
    }

    /// The sum of observations.
    pub fn sum(&self) -> f64 {
        match self {
            HistogramValue::Int(h) => h.sum,
            HistogramValue::Float(h) => h.sum,
        }
    }
}

/// A histogram sample: timestamp (ms) and value.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    /// Timestamp in milliseconds.
    pub t: i64,
    /// The histogram.
    pub value: HistogramValue,
}

fn hint_from_proto(hint: i32) -> CounterResetHint {
    match pb::ResetHint::try_from(hint) {
        Ok(pb::ResetHint::Yes) => CounterResetHint::CounterReset,
        Ok(pb::ResetHint::No) => CounterResetHint::NotCounterReset,
        Ok(pb::ResetHint::Gauge) => CounterResetHint::Gauge,
        _ => CounterResetHint::Unknown,
    }
}

fn hint_to_proto(hint: CounterResetHint) -> i32 {
    match hint {
        CounterResetHint::Unknown => pb::ResetHint::Unknown as i32,
        CounterResetHint::CounterReset => pb::ResetHint::Yes as i32,
        CounterResetHint::NotCounterReset => pb::ResetHint::No as i32,
        CounterResetHint::Gauge => pb::ResetHint::Gauge as i32,
    }
}

fn spans_from_proto(spans: &[BucketSpan]) -> Vec<Span> {
    spans
        .iter()
        .map(|s| Span::new(s.offset, s.length))
        .collect()
}

fn spans_to_proto(spans: &[Span]) -> Vec<BucketSpan> {
    spans
        .iter()
        .map(|s| BucketSpan {
            offset: s.offset,
            length: s.length,
        })
        .collect()
}

impl HistogramSample {
    /// Decodes one `Histogram` message (the bytes of a `TimeSeries.histograms` entry; the
    /// 2.0-only start timestamp, field 17, is ignored).
    pub fn decode(buf: &[u8]) -> Result<Self, prost::DecodeError> {
        prometheus_copy::Histogram::decode(buf).map(Self::from_proto)
    }

    /// Converts a decoded message (its bucket vectors are moved, not copied). A missing
    /// count oneof is an integer count of 0.
    pub fn from_proto(h: prometheus_copy::Histogram) -> Self {
        let hint = hint_from_proto(h.reset_hint);
        let value = match h.count {
            Some(pb::Count::CountFloat(count)) => HistogramValue::Float(FloatHistogram {
                counter_reset_hint: hint,
                schema: h.schema,
                zero_threshold: h.zero_threshold,
                zero_count: match h.zero_count {
                    Some(pb::ZeroCount::ZeroCountFloat(c)) => c,
                    Some(pb::ZeroCount::ZeroCountInt(c)) => c as f64,
                    None => 0.0,
                },
                count,
                sum: h.sum,
                positive_spans: spans_from_proto(&h.positive_spans),
                negative_spans: spans_from_proto(&h.negative_spans),
                positive_buckets: h.positive_counts,
                negative_buckets: h.negative_counts,
                custom_values: h.custom_values,
            }),
            Some(pb::Count::CountInt(_)) | None => HistogramValue::Int(Histogram {
                counter_reset_hint: hint,
                schema: h.schema,
                zero_threshold: h.zero_threshold,
                zero_count: match h.zero_count {
                    Some(pb::ZeroCount::ZeroCountInt(c)) => c,
                    Some(pb::ZeroCount::ZeroCountFloat(c)) => c as u64,
                    None => 0,
                },
                count: match h.count {
                    Some(pb::Count::CountInt(c)) => c,
                    _ => 0,
                },
                sum: h.sum,
                positive_spans: spans_from_proto(&h.positive_spans),
                negative_spans: spans_from_proto(&h.negative_spans),
                positive_buckets: h.positive_deltas,
                negative_buckets: h.negative_deltas,
                custom_values: h.custom_values,
            }),
        };
        Self {
            t: h.timestamp,
            value,
        }
    }

    /// The sample as a `prometheus_copy.Histogram` message (for forwarding to a peer).
    pub fn to_proto(&self) -> prometheus_copy::Histogram {
        match &self.value {
            HistogramValue::Int(h) => prometheus_copy::Histogram {
                count: Some(pb::Count::CountInt(h.count)),
                zero_count: Some(pb::ZeroCount::ZeroCountInt(h.zero_count)),
                sum: h.sum,
                schema: h.schema,
                zero_threshold: h.zero_threshold,
                negative_spans: spans_to_proto(&h.negative_spans),
                negative_deltas: h.negative_buckets.clone(),
                positive_spans: spans_to_proto(&h.positive_spans),
                positive_deltas: h.positive_buckets.clone(),
                reset_hint: hint_to_proto(h.counter_reset_hint),
                timestamp: self.t,
                custom_values: h.custom_values.clone(),
                ..prometheus_copy::Histogram::default()
            },
            HistogramValue::Float(h) => prometheus_copy::Histogram {
                count: Some(pb::Count::CountFloat(h.count)),
                zero_count: Some(pb::ZeroCount::ZeroCountFloat(h.zero_count)),
                sum: h.sum,
                schema: h.schema,
                zero_threshold: h.zero_threshold,
                negative_spans: spans_to_proto(&h.negative_spans),
                negative_counts: h.negative_buckets.clone(),
                positive_spans: spans_to_proto(&h.positive_spans),
                positive_counts: h.positive_buckets.clone(),
                reset_hint: hint_to_proto(h.counter_reset_hint),
                timestamp: self.t,
                custom_values: h.custom_values.clone(),
                ..prometheus_copy::Histogram::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int() -> HistogramSample {
        HistogramSample {
            t: 7,
            value: HistogramValue::Int(Histogram {
                counter_reset_hint: CounterResetHint::Gauge,
                schema: 1,
                zero_threshold: 0.001,
                zero_count: 2,
                count: 10,
                sum: 12.5,
                positive_spans: vec![Span::new(0, 2), Span::new(3, 1)],
                negative_spans: vec![Span::new(-1, 1)],
                positive_buckets: vec![1, 1, 1],
                negative_buckets: vec![2],
                custom_values: vec![],
            }),
        }
    }

    #[test]
    fn proto_round_trip_keeps_every_field() {
        let h = int();
        let bytes = h.to_proto().encode_to_vec();
        let back = HistogramSample::decode(&bytes).expect("decode");
        assert_eq!(back, h);
        back.value.validate().expect("valid");
        let float = HistogramSample {
            t: -3,
            value: HistogramValue::Float(FloatHistogram {
                schema: -53,
                count: 3.0,
                sum: 1.0,
                positive_spans: vec![Span::new(0, 2)],
                positive_buckets: vec![1.0, 2.0],
                custom_values: vec![0.5],
                ..FloatHistogram::default()
            }),
        };
        let back = HistogramSample::decode(&float.to_proto().encode_to_vec()).expect("decode");
        assert_eq!(back, float);
        back.value.validate().expect("valid custom buckets");
    }

    #[test]
    fn stale_markers_are_the_same_and_other_values_differ() {
        let stale = HistogramValue::Int(Histogram::stale());
        assert!(stale.same_as(&HistogramValue::Int(Histogram::stale())));
        assert!(!stale.same_as(&HistogramValue::Float(FloatHistogram::stale())));
        assert!(!int().value.same_as(&stale));
        assert!(int().value.same_as(&int().value));
    }
}
