//! JSON encoding of query results exactly as Prometheus writes them (http-api.md §4).
//!
//! Written by hand rather than through `serde` because the number layouts are Go's:
//! sample values as strings in `strconv.FormatFloat(v, 'f' or 'e', -1, 64)` form, vector
//! and matrix timestamps as seconds with exactly three decimals when not whole, scalar and
//! string timestamps as shortest floats.
//!
//! Every encoder has a `write_*` form appending to a `String`, so a whole answer is built
//! in one buffer without intermediate strings; the `String`-returning forms wrap those.

use thanos_model::Labels;
use thanos_model::histogram::FloatHistogram;
use thanos_promql::Value;

/// Formats a sample value as Prometheus does: `NaN`, `+Inf`, `-Inf`, exponent form for
/// `|v| < 1e-6` or `|v| >= 1e21` (`1e-07`, `1e+21`), shortest plain decimal otherwise.
pub fn format_value(v: f64) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

/// Appends `v` formatted as [`format_value`] does.
pub fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v == 0.0 {
        // Go writes negative zero as "-0".
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
    } else if (1e-6..1e21).contains(&v.abs()) {
        write_plain_float(out, v);
    } else {
        write_go_exponent(out, v);
    }
}

/// Largest magnitude below which every integer is exactly representable as an `f64`.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// Appends a finite `v` in shortest positional form: Go's `'f'` layout with precision -1.
/// Whole numbers, common for counters and gauges, are written as integers without going
/// through float formatting; other values take Ryū's shortest round-trip digits, which
/// break ties between two shortest candidates to even as Go does (Rust's `Display`
/// rounds them up: `986988046365828.25` is `…828.2` in Go and Ryū, `…828.3` in Rust).
fn write_plain_float(out: &mut String, v: f64) {
    if v.fract() == 0.0 && v.abs() < EXACT_INTEGERS && v != 0.0 {
        if v < 0.0 {
            out.push('-');
        }
        // Exact: |v| < 2^53 and whole.
        write_u64(out, v.abs() as u64);
    } else {
        let mut buf = ryu::Buffer::new();
        write_positional(out, buf.format_finite(v));
    }
}

/// Appends Ryū's output `s` (`-12.5`, `9007199254740994.0`, or outside [1e-5, 1e16)
/// `1.25e-6`, `1e16`) as Go writes it: no exponent, no `.0` on whole numbers.
fn write_positional(out: &mut String, s: &str) {
    let Some((mantissa, exp)) = s.split_once('e') else {
        out.push_str(s.strip_suffix(".0").unwrap_or(s));
        return;
    };
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let exp: isize = exp.parse().unwrap_or(0);
    out.push_str(sign);
    // The value is 0.DIGITS × 10^point.
    let point = int.len() as isize + exp;
    let digits = || int.chars().chain(frac.chars());
    let n = (int.len() + frac.len()) as isize;
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', point.unsigned_abs()));
        out.extend(digits());
    } else if point >= n {
        out.extend(digits());
        out.extend(std::iter::repeat_n('0', (point - n) as usize));
    } else {
        out.extend(digits().take(point as usize));
        out.push('.');
        out.extend(digits().skip(point as usize));
    }
}

/// Appends the decimal digits of `n`.
fn write_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// Go's `'e'` layout with shortest digits: mantissa, `e`, sign, at least two exponent digits.
fn write_go_exponent(out: &mut String, v: f64) {
    // Ryū writes exponent form below 1e-5 and from 1e16 on: `1.5e300`, `1e-7`.
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(v);
    let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    out.push_str(mantissa);
    out.push('e');
    out.push(sign);
    if digits.len() < 2 {
        out.push('0');
    }
    out.push_str(digits);
}

/// Vector/matrix timestamp: whole seconds, plus `.` and three digits when the milliseconds
/// are not zero (`1700000000.500`, `-1.500`).
pub fn format_timestamp(ms: i64) -> String {
    let mut out = String::new();
    write_timestamp(&mut out, ms);
    out
}

/// Appends `ms` formatted as [`format_timestamp`] does.
pub fn write_timestamp(out: &mut String, ms: i64) {
    if ms < 0 {
        out.push('-');
    }
    let abs = ms.unsigned_abs();
    let (secs, frac) = (abs / 1000, abs % 1000);
    write_u64(out, secs);
    if frac != 0 {
        // `frac` < 1000: three digits.
        let digit = |d: u64| char::from(b'0' + (d % 10) as u8);
        out.push('.');
        out.push(digit(frac / 100));
        out.push(digit(frac / 10));
        out.push(digit(frac));
    }
}

/// Scalar/string timestamp: `ms / 1000` as Go's shortest float (`1700000000.5`).
pub fn format_float_timestamp(ms: i64) -> String {
    let mut out = String::new();
    write_float_timestamp(&mut out, ms);
    out
}

/// Appends `ms` formatted as [`format_float_timestamp`] does.
pub fn write_float_timestamp(out: &mut String, ms: i64) {
    // Go's shortest float, the same layout as a finite sample value.
    write_value(out, ms as f64 / 1000.0);
}

/// A native histogram as Prometheus's API writes it: `{"count":"…","sum":"…","buckets":
/// [[rule,"lower","upper","count"],…]}` with boundary rule 0 = `(lower, upper]` (positive
/// and custom buckets), 1 = `[lower, upper)` (negative buckets), 3 = `[lower, upper]` (the
/// zero bucket); empty buckets are left out, and `buckets` when none remains.
pub fn histogram(h: &FloatHistogram) -> String {
    let mut out = String::new();
    write_histogram(&mut out, h);
    out
}

/// Appends `h` encoded as [`histogram`] does.
pub fn write_histogram(out: &mut String, h: &FloatHistogram) {
    out.push_str("{\"count\":");
    write_quoted_value(out, h.count);
    out.push_str(",\"sum\":");
    write_quoted_value(out, h.sum);
    let mut first = true;
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        out.push_str(if first { ",\"buckets\":[" } else { "," });
        first = false;
        let rule = if b.zero {
            '3'
        } else if !h.uses_custom_buckets() && b.upper <= 0.0 {
            '1'
        } else {
            '0'
        };
        out.push('[');
        out.push(rule);
        out.push(',');
        write_quoted_value(out, b.lower);
        out.push(',');
        write_quoted_value(out, b.upper);
        out.push(',');
        write_quoted_value(out, b.count);
        out.push(']');
    }
    if !first {
        out.push(']');
    }
    out.push('}');
}

/// Appends `"v"` with `v` formatted by [`write_value`].
fn write_quoted_value(out: &mut String, v: f64) {
    out.push('"');
    write_value(out, v);
    out.push('"');
}

/// A JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(&mut out, s);
    out
}

/// Appends `s` as a JSON string literal, escaped as `serde_json` does: `"` and `\`
/// backslash-escaped, control characters as `\b`, `\f`, `\n`, `\r`, `\t` or `\u00xx`,
/// everything else (including non-ASCII) verbatim.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    // Label names and values rarely need escaping: check all bytes at once first.
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut plain_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Every byte escaped is ASCII, so `i` and `i + 1` are character boundaries.
        out.push_str(&s[plain_from..i]);
        plain_from = i + 1;
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

/// A label set as a JSON object, keys in label order.
pub fn labels(l: &Labels) -> String {
    let mut out = String::new();
    write_labels(&mut out, l);
    out
}

/// Appends `l` encoded as [`labels`] does.
pub fn write_labels(out: &mut String, l: &Labels) {
    out.push('{');
    for (i, label) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, &label.name);
        out.push(':');
        write_string(out, &label.value);
    }
    out.push('}');
}

/// A JSON array of strings.
pub fn string_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    write_string_array(&mut out, items);
    out
}

/// Appends a JSON array of strings.
pub fn write_string_array<'a>(out: &mut String, items: impl IntoIterator<Item = &'a str>) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, item);
    }
    out.push(']');
}

/// The `data` object of a query result: `{"resultType":…,"result":…}`.
pub fn query_data(value: &Value) -> String {
    let mut out = String::with_capacity(estimated_size(value));
    write_query_data(&mut out, value);
    out
}

/// A guess of the encoded size of `value` in bytes, to size the output buffer once.
pub fn estimated_size(value: &Value) -> usize {
    const LABEL_BYTES: usize = 24;
    const POINT_BYTES: usize = 28;
    let metric = |l: &Labels| 16 + l.len() * LABEL_BYTES;
    let body = match value {
        Value::Scalar { .. } => 32,
        Value::String { v, .. } => 32 + v.len(),
        Value::Vector(samples) => samples
            .iter()
            .map(|s| metric(&s.labels) + 24 + POINT_BYTES)
            .sum(),
        Value::Matrix(series) => series
            .iter()
            .map(|s| metric(&s.labels) + 32 + POINT_BYTES * s.samples.len())
            .sum(),
    };
    64 + body
}

/// Appends the `data` object of a query result, as [`query_data`] returns it.
pub fn write_query_data(out: &mut String, value: &Value) {
    out.push_str("{\"resultType\":\"");
    out.push_str(value.type_name());
    out.push_str("\",\"result\":");
    match value {
        Value::Scalar { t, v } => {
            out.push('[');
            write_float_timestamp(out, *t);
            out.push_str(",\"");
            // Scalars use the 'f' layout (never an exponent), except the specials.
            if v.is_finite() {
                write_plain_float(out, *v);
            } else {
                write_value(out, *v);
            }
            out.push_str("\"]");
        }
        Value::String { t, v } => {
            out.push('[');
            write_float_timestamp(out, *t);
            out.push(',');
            write_string(out, v);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(out, &s.labels);
                match &s.h {
                    Some(h) => {
                        out.push_str(",\"histogram\":[");
                        write_timestamp(out, s.t);
                        out.push(',');
                        write_histogram(out, h);
                    }
                    None => {
                        out.push_str(",\"value\":[");
                        write_timestamp(out, s.t);
                        out.push(',');
                        write_quoted_value(out, s.v);
                    }
                }
                out.push_str("]}");
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(out, &s.labels);
                if !s.samples.is_empty() {
                    out.push_str(",\"values\":[");
                    for (j, p) in s.samples.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        out.push('[');
                        write_timestamp(out, p.t);
                        out.push(',');
                        write_quoted_value(out, p.v);
                        out.push(']');
                    }
                    out.push(']');
                }
                if !s.histograms.is_empty() {
                    out.push_str(",\"histograms\":[");
                    for (j, p) in s.histograms.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        out.push('[');
                        write_timestamp(out, p.t);
                        out.push(',');
                        write_histogram(out, &p.h);
                        out.push(']');
                    }
                    out.push(']');
                }
                out.push('}');
            }
            out.push(']');
        }
    }
    out.push('}');
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
            // Checked against Prometheus 2.42: ties go to even, and values outside
            // Ryū's positional range are expanded.
            (986_988_046_365_828.0 + 0.25, "986988046365828.2"),
            (1_152_921_504_606_846.0 + 0.75, "1152921504606846.8"),
            (1.5e-6, "0.0000015"),
            (1.2345678901234567e-6, "0.0000012345678901234567"),
            (-1.5e-6, "-0.0000015"),
            (12345678901234567890.0, "12345678901234567000"),
            (1.8446744073709552e19, "18446744073709552000"),
            (3.0000000000000004e16, "30000000000000004"),
            (9.999999999999999e20, "999999999999999900000"),
            (9105124849491904.0, "9105124849491904"),
        ];
        for (v, want) in cases {
            assert_eq!(format_value(v), want, "{v}");
        }
    }

    #[test]
    fn plain_floats_match_display() {
        // Deterministic pseudo-random values: whole numbers of every size, fractions,
        // and raw bit patterns.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            x
        };
        for i in 0..400_000 {
            let r = next();
            let v = match i % 5 {
                0 => (r >> (r % 64)) as f64,
                1 => -((r >> 11) as f64) / 1024.0,
                2 => (r >> 12) as f64 * 1e-3,
                // Any mantissa with a binary exponent from -20 to 69: the whole
                // positional range.
                3 => f64::from_bits((r & 0x000f_ffff_ffff_ffff) | ((1003 + (r >> 52) % 90) << 52)),
                _ => f64::from_bits(r),
            };
            if !v.is_finite() || v == 0.0 || !(1e-6..1e21).contains(&v.abs()) {
                continue;
            }
            let mut got = String::new();
            write_plain_float(&mut got, v);
            // Shortest round trip, like `Display`; the digits differ only on ties.
            let display = format!("{v}");
            assert_eq!(got.parse::<f64>(), Ok(v), "{v:e}");
            assert_eq!(got.len(), display.len(), "{v:e}: {got} vs {display}");
            assert!(!got.contains('e'), "{got}");
        }
        for v in [
            9_007_199_254_740_992.0,
            9_007_199_254_740_993.0,
            -1.0,
            1e20,
            123.0,
        ] {
            let mut got = String::new();
            write_plain_float(&mut got, v);
            assert_eq!(got, format!("{v}"));
        }
        let mut n = String::new();
        write_u64(&mut n, u64::MAX);
        write_u64(&mut n, 0);
        assert_eq!(n, format!("{}0", u64::MAX));
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
    fn strings_escape_like_serde_json() {
        let mut all: String = (0u8..0x80).map(char::from).collect();
        all.push_str("é€😀\u{7f}\u{2028}/<>&");
        for s in [
            all.as_str(),
            "",
            "plain",
            "a\"b\\c",
            "\n\u{1}x",
            "tail\u{1f}",
        ] {
            let want = serde_json::Value::String(s.to_owned()).to_string();
            assert_eq!(string(s), want, "{s:?}");
        }
        assert_eq!(string("a\u{1}b"), r#""a\u0001b""#);
    }

    #[test]
    fn arrays_and_label_sets() {
        assert_eq!(string_array(["a", "b\""]), r#"["a","b\""]"#);
        assert_eq!(string_array([]), "[]");
        assert_eq!(
            labels(&Labels::from_pairs([("a", "1"), ("b", "x\ny")])),
            r#"{"a":"1","b":"x\ny"}"#
        );
        assert_eq!(labels(&Labels::empty()), "{}");
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
