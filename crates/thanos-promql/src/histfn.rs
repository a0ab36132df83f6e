//! Native-histogram estimations used by the PromQL functions: quantile, fraction,
//! variance and the rate of a range of histograms (Prometheus's `quantile.go` and
//! `histogramRate` in `functions.go`).

use thanos_model::histogram::{CounterResetHint, FloatBucket, FloatHistogram};

use crate::value::HPoint;

/// The φ-quantile of the observations in `h`, interpolating exponentially inside
/// exponential buckets and linearly inside the zero bucket and custom buckets.
pub(crate) fn quantile(q: f64, h: &FloatHistogram) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if h.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    let buckets = h.all_buckets();
    let forward = h.sum.is_nan() || q < 0.5;
    let mut rank = if forward {
        q * h.count
    } else {
        (1.0 - q) * h.count
    };
    let mut count = 0.0;
    let mut bucket: Option<FloatBucket> = None;
    let iter: Box<dyn Iterator<Item = &FloatBucket>> = if forward {
        Box::new(buckets.iter())
    } else {
        Box::new(buckets.iter().rev())
    };
    for b in iter {
        bucket = Some(*b);
        if b.count == 0.0 {
            continue;
        }
        count += b.count;
        if count >= rank {
            break;
        }
    }
    let Some(mut b) = bucket else {
        return f64::NAN;
    };
    let custom = h.uses_custom_buckets();
    if !custom && b.lower < 0.0 && b.upper > 0.0 {
        if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
            b.lower = 0.0;
        } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
            b.upper = 0.0;
        }
    } else if custom {
        if b.lower == f64::NEG_INFINITY {
            if b.upper <= 0.0 {
                return b.upper;
            }
            b.lower = 0.0;
        } else if b.upper == f64::INFINITY {
            return b.lower;
        }
    }
    if count > h.count {
        count = h.count;
    }
    if count < rank {
        // The rank lies among the NaN observations (count without bucket).
        return if h.sum.is_nan() { f64::NAN } else { b.upper };
    }
    if forward {
        rank -= count - b.count;
    } else {
        rank = count - rank;
    }
    let fraction = rank / b.count;
    if custom || (b.lower <= 0.0 && b.upper >= 0.0) {
        return b.lower + (b.upper - b.lower) * fraction;
    }
    let log_lower = b.lower.abs().log2();
    let log_upper = b.upper.abs().log2();
    if b.lower > 0.0 {
        (log_lower + (log_upper - log_lower) * fraction).exp2()
    } else {
        -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2()
    }
}

/// The fraction of observations in `h` between `lower` and `upper`.
pub(crate) fn fraction(lower: f64, upper: f64, h: &FloatHistogram) -> f64 {
    if h.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let custom = h.uses_custom_buckets();
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let buckets = h.all_buckets();
    for mut b in buckets.iter().copied() {
        let mut zero_bucket = false;
        if !custom && b.lower <= 0.0 && b.upper >= 0.0 {
            zero_bucket = true;
            if h.negative_buckets.is_empty() && !h.positive_buckets.is_empty() {
                b.lower = 0.0;
            } else if h.positive_buckets.is_empty() && !h.negative_buckets.is_empty() {
                b.upper = 0.0;
            }
        }
        if custom && b.lower == f64::NEG_INFINITY && b.upper > 0.0 {
            b.lower = 0.0;
        }
        let interpolate = |v: f64, rank: f64| -> f64 {
            if custom || zero_bucket {
                // No interpolation in a bucket of infinite width: its observations
                // count as lying beyond `v`.
                if b.lower.is_infinite() {
                    return rank + b.count;
                }
                if b.upper.is_infinite() {
                    return rank;
                }
                rank + b.count * (v - b.lower) / (b.upper - b.lower)
            } else {
                let log_lower = b.lower.abs().log2();
                let log_upper = b.upper.abs().log2();
                let log_v = v.abs().log2();
                let f = if v > 0.0 {
                    (log_v - log_lower) / (log_upper - log_lower)
                } else {
                    1.0 - ((log_v - log_upper) / (log_lower - log_upper))
                };
                rank + b.count * f
            }
        };
        if !lower_set && b.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && b.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && b.lower < lower && b.upper > lower {
            lower_rank = interpolate(lower, rank);
            lower_set = true;
        }
        if !upper_set && b.lower < upper && b.upper > upper {
            upper_rank = interpolate(upper, rank);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += b.count;
    }
    // Unset ranks lie above every bucket: all bucketed observations (NaN observations
    // are counted but in no bucket).
    let total: f64 = buckets.iter().map(|b| b.count).sum();
    if !lower_set || lower_rank > total {
        lower_rank = total;
    }
    if !upper_set || upper_rank > total {
        upper_rank = total;
    }
    (upper_rank - lower_rank) / h.count
}

/// The estimated variance of the observations in `h` (bucket midpoints: geometric for
/// exponential buckets, arithmetic for custom ones, 0 for the zero bucket).
pub(crate) fn stdvar(h: &FloatHistogram) -> f64 {
    let mean = h.sum / h.count;
    let (mut var, mut c) = (0.0, 0.0);
    let custom = h.uses_custom_buckets();
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        let val = if custom {
            if b.lower == f64::NEG_INFINITY {
                b.upper
            } else if b.upper == f64::INFINITY {
                b.lower
            } else {
                (b.upper + b.lower) / 2.0
            }
        } else if b.lower <= 0.0 && b.upper >= 0.0 {
            0.0
        } else {
            let v = (b.upper * b.lower).sqrt();
            if b.upper < 0.0 { -v } else { v }
        };
        let delta = val - mean;
        (var, c) = crate::mathx::kahan_inc(b.count * delta * delta, var, c);
    }
    (var + c) / h.count
}

/// Annotations produced while computing a histogram rate.
#[derive(Debug, Default)]
pub(crate) struct RateNotes {
    pub not_counter: bool,
    pub not_gauge: bool,
    pub mixed_schemas: bool,
    pub reconciled: bool,
}

/// The (unextrapolated) increase of a range of histogram samples, handling counter
/// resets (`counter`) or computing a plain difference (gauges, `delta`). `None` when
/// exponential and custom-bucket histograms are mixed.
pub(crate) fn rate(
    points: &[HPoint],
    counter: bool,
    notes: &mut RateNotes,
) -> Option<FloatHistogram> {
    let first = &points[0].h;
    let last = &points[points.len() - 1].h;
    let mut prev: FloatHistogram = first.clone();
    let mut custom = prev.uses_custom_buckets();
    if counter
        && (first.counter_reset_hint == CounterResetHint::Gauge
            || last.counter_reset_hint == CounterResetHint::Gauge)
    {
        notes.not_counter = true;
    }
    if counter && points.len() > 1 {
        let second = &points[1].h;
        if second.detect_reset(&prev) {
            prev = FloatHistogram {
                schema: second.schema,
                custom_values: second.custom_values.clone(),
                ..FloatHistogram::default()
            };
            custom = second.uses_custom_buckets();
        }
    }
    if last.uses_custom_buckets() != custom {
        notes.mixed_schemas = true;
        return None;
    }
    let mut min_schema = prev.schema.min(last.schema);
    for p in &points[1..points.len() - 1] {
        if !counter {
            continue;
        }
        if p.h.counter_reset_hint == CounterResetHint::Gauge {
            notes.not_counter = true;
        }
        min_schema = min_schema.min(p.h.schema);
        if p.h.uses_custom_buckets() != custom {
            notes.mixed_schemas = true;
            return None;
        }
    }
    let mut h = last.copy_to_schema(min_schema);
    match h.sub(&prev) {
        Err(_) => {
            notes.mixed_schemas = true;
            return None;
        }
        Ok(o) => notes.reconciled |= o.custom_bounds_reconciled,
    }
    if counter {
        // Starts from the (possibly nulled-out) first sample.
        let mut prev = &prev;
        for p in &points[1..] {
            if p.h.detect_reset(prev) {
                match h.add(prev) {
                    Err(_) => {
                        notes.mixed_schemas = true;
                        return None;
                    }
                    Ok(o) => notes.reconciled |= o.custom_bounds_reconciled,
                }
            }
            prev = &p.h;
        }
    } else if first.counter_reset_hint != CounterResetHint::Gauge
        || last.counter_reset_hint != CounterResetHint::Gauge
    {
        notes.not_gauge = true;
    }
    h.counter_reset_hint = CounterResetHint::Gauge;
    h.compact();
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use thanos_model::histogram::Span;

    fn hist(count: f64, buckets: Vec<f64>) -> FloatHistogram {
        FloatHistogram {
            schema: 0,
            count,
            sum: count,
            positive_spans: vec![Span::new(0, buckets.len() as u32)],
            positive_buckets: buckets,
            ..FloatHistogram::default()
        }
    }

    #[test]
    fn quantile_interpolates_exponentially() {
        // Buckets (0.5,1] and (1,2] with 2 observations each.
        let h = hist(4.0, vec![2.0, 2.0]);
        assert_eq!(quantile(0.5, &h), 1.0);
        assert_eq!(quantile(1.0, &h), 2.0);
        let q = quantile(0.75, &h);
        assert!((q - 2f64.sqrt()).abs() < 1e-12, "{q}");
        assert!(quantile(f64::NAN, &h).is_nan());
        assert_eq!(quantile(-1.0, &h), f64::NEG_INFINITY);
    }

    #[test]
    fn fraction_and_variance() {
        let h = hist(4.0, vec![2.0, 2.0]);
        assert_eq!(fraction(0.0, 1.0, &h), 0.5);
        assert_eq!(fraction(f64::NEG_INFINITY, f64::INFINITY, &h), 1.0);
        assert_eq!(fraction(2.0, 1.0, &h), 0.0);
        let v = stdvar(&hist(2.0, vec![1.0, 1.0]));
        // Midpoints sqrt(0.5) and sqrt(2), mean 1.
        let want = ((0.5f64.sqrt() - 1.0).powi(2) + (2f64.sqrt() - 1.0).powi(2)) / 2.0;
        assert!((v - want).abs() < 1e-12);
    }

    #[test]
    fn rate_handles_counter_resets() {
        let pts = [
            HPoint {
                t: 0,
                h: hist(4.0, vec![2.0, 2.0]),
            },
            HPoint {
                t: 1,
                h: hist(6.0, vec![3.0, 3.0]),
            },
            HPoint {
                t: 2,
                h: hist(2.0, vec![1.0, 1.0]),
            },
        ];
        let mut notes = RateNotes::default();
        let r = rate(&pts, true, &mut notes).expect("rate");
        assert_eq!(r.count, 4.0);
        assert_eq!(r.positive_buckets, vec![2.0, 2.0]);
        assert_eq!(r.counter_reset_hint, CounterResetHint::Gauge);
        assert!(!notes.not_counter);
        let d = rate(&pts, false, &mut notes).expect("delta");
        assert_eq!(d.count, -2.0);
        assert!(notes.not_gauge);
    }
}
