//! JSON encoding of query results exactly as Prometheus writes them (http-api.md §4).
//!
//! Written by hand rather than through `serde` because the number layouts are Go's:
//! sample values as strings in `strconv.FormatFloat(v, 'f' or 'e', -1, 64)` form, vector
//! and matrix timestamps as seconds with exactly three decimals when not whole, scalar and
//! string timestamps as shortest floats.

use std::fmt::Write;

use thanos_model::Labels;
use thanos_model::histogram::FloatHistogram;
use thanos_promql::Value;

/// Formats a sample value as Prometheus does: `NaN`, `+Inf`, `-Inf`, exponent form for
/// `|v| < 1e-6` or `|v| >= 1e21` (`1e-07`, `1e+21`), shortest plain decimal otherwise.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let abs = v.abs();
    if v != 0.0 && !(1e-6..1e21).contains(&abs) {
        go_exponent(v)
    } else if v == 0.0 {
        // Go writes negative zero as "-0".
        if v.is_sign_negative() { "-0" } else { "0" }.to_owned()
    } else {
        format!("{v}")
    }
}

/// Go's `'e'` layout with shortest digits: mantissa, `e`, sign, at least two exponent digits.
fn go_exponent(v: f64) -> String {
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    if digits.len() < 2 {
        format!("{mantissa}e{sign}0{digits}")
    } else {
        format!("{mantissa}e{sign}{digits}")
    }
}

/// Vector/matrix timestamp: whole seconds, plus `.` and three digits when the milliseconds
/// are not zero (`1700000000.500`, `-1.500`).
pub fn format_timestamp(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    let (secs, frac) = (abs / 1000, abs % 1000);
    if frac == 0 {
        format!("{sign}{secs}")
    } else {
        format!("{sign}{secs}.{frac:03}")
    }
}

/// Scalar/string timestamp: `ms / 1000` as Go's shortest float (`1700000000.5`).
pub fn format_float_timestamp(ms: i64) -> String {
    let secs = ms as f64 / 1000.0;
    let abs = secs.abs();
    if secs != 0.0 && !(1e-6..1e21).contains(&abs) {
        go_exponent(secs)
    } else {
        format!("{secs}")
    }
}

/// A native histogram as Prometheus's API writes it: `{"count":"…","sum":"…","buckets":
/// [[rule,"lower","upper","count"],…]}` with boundary rule 0 = `(lower, upper]` (positive
/// and custom buckets), 1 = `[lower, upper)` (negative buckets), 3 = `[lower, upper]` (the
/// zero bucket); empty buckets are left out, and `buckets` when none remains.
pub fn histogram(h: &FloatHistogram) -> String {
    let mut out = format!(
        "{{\"count\":\"{}\",\"sum\":\"{}\"",
        format_value(h.count),
        format_value(h.sum)
    );
    let mut first = true;
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        out.push_str(if first { ",\"buckets\":[" } else { "," });
        first = false;
        let rule = if b.zero {
            3
        } else if !h.uses_custom_buckets() && b.upper <= 0.0 {
            1
        } else {
            0
        };
        let _ = write!(
            out,
            "[{rule},\"{}\",\"{}\",\"{}\"]",
            format_value(b.lower),
            format_value(b.upper),
            format_value(b.count)
        );
    }
    if !first {
        out.push(']');
    }
    out.push('}');
    out
}

/// A JSON string literal.
pub fn string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// A label set as a JSON object, keys in label order.
pub fn labels(l: &Labels) -> String {
    let mut out = String::from("{");
    for (i, label) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&string(&label.name));
        out.push(':');
        out.push_str(&string(&label.value));
    }
    out.push('}');
    out
}

/// A JSON array of strings.
pub fn string_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let parts: Vec<String> = items.into_iter().map(string).collect();
    format!("[{}]", parts.join(","))
}

/// The `data` object of a query result: `{"resultType":…,"result":…}`.
pub fn query_data(value: &Value) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"resultType\":\"{}\",\"result\":",
        value.type_name()
    );
    match value {
        Value::Scalar { t, v } => {
            // Scalars use the 'f' layout (never an exponent), except the specials.
            let val = if v.is_finite() {
                format!("{v}")
            } else {
                format_value(*v)
            };
            let _ = write!(out, "[{},{}]", format_float_timestamp(*t), string(&val));
        }
        Value::String { t, v } => {
            let _ = write!(out, "[{},{}]", format_float_timestamp(*t), string(v));
        }
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match &s.h {
                    Some(h) => {
                        let _ = write!(
                            out,
                            "{{\"metric\":{},\"histogram\":[{},{}]}}",
                            labels(&s.labels),
                            format_timestamp(s.t),
                            histogram(h)
                        );
                    }
                    None => {
                        let _ = write!(
                            out,
                            "{{\"metric\":{},\"value\":[{},\"{}\"]}}",
                            labels(&s.labels),
                            format_timestamp(s.t),
                            format_value(s.v)
                        );
                    }
                }
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{{\"metric\":{}", labels(&s.labels));
                if !s.samples.is_empty() {
                    out.push_str(",\"values\":[");
                    for (j, p) in s.samples.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        let _ =
                            write!(out, "[{},\"{}\"]", format_timestamp(p.t), format_value(p.v));
                    }
                    out.push(']');
                }
                if !s.histograms.is_empty() {
                    out.push_str(",\"histograms\":[");
                    for (j, p) in s.histograms.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "[{},{}]", format_timestamp(p.t), histogram(&p.h));
                    }
                    out.push(']');
                }
                out.push('}');
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

/// At most 10 annotations, the rest summarised as `"<n> more <kind> annotations omitted"`.
pub fn limit_annotations(mut items: Vec<String>, kind: &str) -> Vec<String> {
    const MAX: usize = 10;
    if items.len() > MAX {
        let more = items.len() - MAX;
        items.truncate(MAX);
        items.push(format!("{more} more {kind} annotations omitted"));
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use thanos_model::Sample;
    use thanos_model::histogram::Span;
    use thanos_promql::{HPoint, InstantSample, RangeSeries};

    #[test]
    fn values_like_go() {
        let cases = [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (1e21, "1e+21"),
            (1e-7, "1e-07"),
            (123456789.125, "123456789.125"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.0, "1"),
            (0.0, "0"),
            (-2.5, "-2.5"),
            (1.5e300, "1.5e+300"),
            (-1.25e-10, "-1.25e-10"),
            (1e20, "100000000000000000000"),
            (1e-6, "0.000001"),
        ];
        for (v, want) in cases {
            assert_eq!(format_value(v), want, "{v}");
        }
    }

    #[test]
    fn timestamps_like_prometheus() {
        assert_eq!(format_timestamp(1_700_000_000_500), "1700000000.500");
        assert_eq!(format_timestamp(1_700_000_000_050), "1700000000.050");
        assert_eq!(format_timestamp(1_700_000_000_000), "1700000000");
        assert_eq!(format_timestamp(-1500), "-1.500");
        assert_eq!(format_timestamp(-500), "-0.500");
        assert_eq!(format_float_timestamp(1_700_000_000_500), "1700000000.5");
        assert_eq!(format_float_timestamp(1_700_000_000_123), "1700000000.123");
        assert_eq!(format_float_timestamp(0), "0");
    }

    #[test]
    fn results_encode_exactly() {
        let scalar = Value::Scalar {
            t: 1_700_000_000_123,
            v: 1.5,
        };
        assert_eq!(
            query_data(&scalar),
            r#"{"resultType":"scalar","result":[1700000000.123,"1.5"]}"#
        );
        let big = Value::Scalar { t: 0, v: 1e21 };
        assert_eq!(
            query_data(&big),
            r#"{"resultType":"scalar","result":[0,"1000000000000000000000"]}"#
        );
        let s = Value::String {
            t: 1_700_000_000_000,
            v: "hello".into(),
        };
        assert_eq!(
            query_data(&s),
            r#"{"resultType":"string","result":[1700000000,"hello"]}"#
        );
        let v = Value::Vector(vec![InstantSample {
            labels: Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]),
            t: 1_700_000_000_500,
            v: f64::NAN,
            h: None,
        }]);
        assert_eq!(
            query_data(&v),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b"},"value":[1700000000.500,"NaN"]}]}"#
        );
        let m = Value::Matrix(vec![
            RangeSeries {
                labels: Labels::empty(),
                samples: vec![Sample::new(0, 0.0), Sample::new(500, 0.5)],
                histograms: vec![],
            },
            RangeSeries {
                labels: Labels::from_pairs([("a", "b")]),
                samples: vec![],
                histograms: vec![],
            },
        ]);
        assert_eq!(
            query_data(&m),
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[0,"0"],[0.500,"0.5"]]},{"metric":{"a":"b"}}]}"#
        );
    }

    #[test]
    fn native_histograms_encode_like_prometheus() {
        // Schema 0: positive buckets 1 = (1,2] and 2 = (2,4]; negative bucket 0 =
        // [-1,-0.5); zero bucket [-0.001,0.001]; an empty positive bucket is left out.
        let h = FloatHistogram {
            schema: 0,
            count: 10.0,
            sum: 12.5,
            zero_threshold: 0.001,
            zero_count: 2.0,
            positive_spans: vec![Span::new(1, 3)],
            positive_buckets: vec![3.0, 0.0, 4.0],
            negative_spans: vec![Span::new(0, 1)],
            negative_buckets: vec![1.0],
            ..FloatHistogram::default()
        };
        let v = Value::Vector(vec![InstantSample {
            labels: Labels::from_pairs([("__name__", "h")]),
            t: 1_700_000_000_500,
            v: 0.0,
            h: Some(h.clone()),
        }]);
        assert_eq!(
            query_data(&v),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"h"},"histogram":[1700000000.500,{"count":"10","sum":"12.5","buckets":[[1,"-1","-0.5","1"],[3,"-0.001","0.001","2"],[0,"1","2","3"],[0,"4","8","4"]]}]}]}"#
        );
        let nhcb = FloatHistogram {
            schema: thanos_model::histogram::CUSTOM_BUCKETS_SCHEMA,
            count: 3.0,
            sum: 1e-7,
            positive_spans: vec![Span::new(0, 2)],
            positive_buckets: vec![1.0, 2.0],
            custom_values: vec![0.5],
            ..FloatHistogram::default()
        };
        let empty = FloatHistogram::default();
        let m = Value::Matrix(vec![RangeSeries {
            labels: Labels::empty(),
            samples: vec![Sample::new(0, 1.0)],
            histograms: vec![HPoint { t: 1000, h: nhcb }, HPoint { t: 2000, h: empty }],
        }]);
        assert_eq!(
            query_data(&m),
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[0,"1"]],"histograms":[[1,{"count":"3","sum":"1e-07","buckets":[[0,"-Inf","0.5","1"],[0,"0.5","+Inf","2"]]}],[2,{"count":"0","sum":"0"}]]}]}"#
        );
    }

    #[test]
    fn annotations_are_capped() {
        let many: Vec<String> = (0..12).map(|i| i.to_string()).collect();
        let out = limit_annotations(many, "warning");
        assert_eq!(out.len(), 11);
        assert_eq!(out[10], "2 more warning annotations omitted");
        assert_eq!(limit_annotations(vec!["x".into()], "info"), vec!["x"]);
    }
}
