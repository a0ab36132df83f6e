//! Parsers for the value syntaxes Thanos flags accept: Prometheus durations, base-2 byte
//! sizes and `--label` external labels.
//!
//! Each parser mirrors the Go function Thanos hands the flag to (`model.ParseDuration`,
//! `units.ParseBase2Bytes`, `strconv.Unquote` for label values) so that command lines written
//! for Thanos keep their exact meaning.

use std::time::Duration;

/// Error returned by the parsers in this module; the message quotes the offending input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A duration that `model.ParseDuration` would reject.
    #[error("invalid duration {input:?}: {reason}")]
    Duration {
        /// The rejected input.
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A byte size that `units.ParseBase2Bytes` would reject.
    #[error("invalid byte size {input:?}: {reason}")]
    Bytes {
        /// The rejected input.
        input: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An external label that is not `name="value"`.
    #[error("invalid label {input:?}: {reason}")]
    Label {
        /// The rejected input.
        input: String,
        /// Why it was rejected.
        reason: String,
    },
}

/// Duration units in the only order Prometheus accepts them, with their length in milliseconds.
const DURATION_UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus duration (`model.ParseDuration`): a sequence of integer+unit terms
/// with units `y` (always 365 days), `w`, `d`, `h`, `m`, `s`, `ms`, each at most once and in
/// that order, e.g. `1h30m`, `15d`, `500ms`. A bare `0` is zero. Fractions (`1.5h`), signs,
/// spaces and unknown units are rejected.
pub fn parse_duration(input: &str) -> Result<Duration, ParseError> {
    let err = |reason| ParseError::Duration {
        input: input.to_owned(),
        reason,
    };
    if input == "0" {
        return Ok(Duration::ZERO);
    }
    if input.is_empty() {
        return Err(err("empty duration string"));
    }
    if input.contains('.') {
        return Err(err(
            "fractions are not allowed (use e.g. 1h30m instead of 1.5h)",
        ));
    }
    let bytes = input.as_bytes();
    let mut pos = 0;
    // Index into DURATION_UNITS of the next unit allowed (units must strictly descend).
    let mut next_unit = 0;
    let mut total_ms: u64 = 0;
    while pos < bytes.len() {
        let digits_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == digits_start {
            return Err(err("expected a number"));
        }
        let number: u64 = input[digits_start..pos]
            .parse()
            .map_err(|_| err("number out of range"))?;
        let unit_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &input[unit_start..pos];
        if unit.is_empty() {
            return Err(err("missing unit"));
        }
        let Some(offset) = DURATION_UNITS[next_unit..]
            .iter()
            .position(|(name, _)| *name == unit)
        else {
            return Err(if DURATION_UNITS.iter().any(|(name, _)| *name == unit) {
                err("units must appear once each, from largest to smallest")
            } else {
                err("unknown unit (want one of y, w, d, h, m, s, ms)")
            });
        };
        let index = next_unit + offset;
        let term = number
            .checked_mul(DURATION_UNITS[index].1)
            .ok_or_else(|| err("duration out of range"))?;
        total_ms = total_ms
            .checked_add(term)
            .ok_or_else(|| err("duration out of range"))?;
        next_unit = index + 1;
    }
    // Prometheus stores durations as int64 nanoseconds.
    if u128::from(total_ms) * 1_000_000 > i64::MAX as u128 {
        return Err(err("duration out of range"));
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way Prometheus prints `model.Duration` (`1h30m`, `15d`, `0s`), so
/// `parse_duration(&format_duration(d)) == d` for whole milliseconds.
pub fn format_duration(duration: Duration) -> String {
    let mut ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (name, unit_ms) in DURATION_UNITS {
        // Like Prometheus, weeks and years are only used when they divide the whole value.
        if (name == "w" || name == "y") && ms % unit_ms != 0 {
            continue;
        }
        let count = ms / unit_ms;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(name);
            ms -= count * unit_ms;
        }
    }
    out
}

/// Byte-size units of `units.ParseBase2Bytes`; both spellings are powers of 1024.
const IEC_UNITS: [(&str, u32); 7] = [
    ("B", 0),
    ("KiB", 1),
    ("MiB", 2),
    ("GiB", 3),
    ("TiB", 4),
    ("PiB", 5),
    ("EiB", 6),
];
const LEGACY_UNITS: [(&str, u32); 7] = [
    ("B", 0),
    ("KB", 1),
    ("MB", 2),
    ("GB", 3),
    ("TB", 4),
    ("PB", 5),
    ("EB", 6),
];

/// Parses a byte size the way Thanos size flags (`--index-cache-size=250MB`,
/// `--chunk-pool-size=2GB`) do with `units.ParseBase2Bytes`: `KB`/`KiB`, `MB`/`MiB`, … all
/// mean powers of 1024; a unit is required (except for a bare `0`); terms may be compound
/// (`1GB512MB`) and fractional (`1.5GB`, truncated to whole bytes). The SI spelling `kB` and
/// negative values are rejected.
pub fn parse_bytes(input: &str) -> Result<u64, ParseError> {
    let err = |reason: &str| ParseError::Bytes {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    let body = input.strip_prefix('+').unwrap_or(input);
    if body.starts_with('-') {
        return Err(err("negative sizes are not allowed"));
    }
    if body == "0" {
        return Ok(0);
    }
    if body.is_empty() {
        return Err(err("empty size"));
    }
    // Go tries the IEC table first and the legacy one second; mixing both in one value fails.
    parse_bytes_with(body, &IEC_UNITS)
        .or_else(|_| parse_bytes_with(body, &LEGACY_UNITS))
        .map_err(|reason| err(&reason))
}

fn parse_bytes_with(body: &str, units: &[(&str, u32)]) -> Result<u64, String> {
    let bytes = body.as_bytes();
    let mut pos = 0;
    let mut total = 0f64;
    while pos < bytes.len() {
        let start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let integer_digits = pos - start;
        let mut fraction_digits = 0;
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
            let fraction_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            fraction_digits = pos - fraction_start;
        }
        if integer_digits == 0 && fraction_digits == 0 {
            return Err("expected a number".to_owned());
        }
        let number: f64 = body[start..pos]
            .parse()
            .map_err(|_| "malformed number".to_owned())?;
        let unit_start = pos;
        while pos < bytes.len() && !(bytes[pos] == b'.' || bytes[pos].is_ascii_digit()) {
            pos += 1;
        }
        let unit = &body[unit_start..pos];
        let Some((_, power)) = units.iter().find(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() {
                "missing unit (e.g. B, KB, MiB, GB)".to_owned()
            } else {
                format!("unknown unit {unit:?}")
            });
        };
        total += number * 1024f64.powi(*power as i32);
    }
    if total >= 2f64.powi(63) {
        return Err("size out of range".to_owned());
    }
    // Truncation towards zero, as Go's int64(float64) conversion does.
    Ok(total as u64)
}

/// One external label from a `--label` flag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExternalLabel {
    /// Label name.
    pub name: String,
    /// Label value (already unquoted).
    pub value: String,
}

/// Parses one `--label` value: `name="value"`, where the value is a Go string literal
/// (double-quoted with escapes, back-quoted raw, or a single-quoted character) as
/// `strconv.Unquote` accepts it. Unquoted values such as `replica=0` are rejected, like
/// Thanos does. Names must be non-empty valid UTF-8 (Prometheus 3 allows UTF-8 names).
pub fn parse_label(input: &str) -> Result<ExternalLabel, ParseError> {
    let err = |reason: &str| ParseError::Label {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    let Some((name, quoted)) = input.split_once('=') else {
        return Err(err(r#"expected name="value""#));
    };
    if name.is_empty() {
        return Err(err("empty label name"));
    }
    let value = unquote_go(quoted).map_err(|reason| err(&reason))?;
    Ok(ExternalLabel {
        name: name.to_owned(),
        value,
    })
}

/// Parses every `--label` value and rejects duplicate names; the result is sorted by name.
pub fn parse_labels<S: AsRef<str>>(inputs: &[S]) -> Result<Vec<ExternalLabel>, ParseError> {
    let mut labels = inputs
        .iter()
        .map(|input| parse_label(input.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    labels.sort();
    if let Some(pair) = labels.windows(2).find(|pair| pair[0].name == pair[1].name) {
        return Err(ParseError::Label {
            input: format!("{}=…", pair[0].name),
            reason: "label name given more than once".to_owned(),
        });
    }
    Ok(labels)
}

/// Go `strconv.Unquote`: double-quoted with escapes, back-quoted raw, or one quoted rune.
fn unquote_go(quoted: &str) -> Result<String, String> {
    let not_quoted = || {
        format!(
            "value {quoted:?} must be a quoted string (e.g. name=\"value\"); \
             Go string-literal syntax is used"
        )
    };
    let first = quoted.chars().next().ok_or_else(not_quoted)?;
    if quoted.len() < 2 || !quoted.ends_with(first) {
        return Err(not_quoted());
    }
    let inner = &quoted[1..quoted.len() - 1];
    match first {
        '`' => {
            if inner.contains('`') {
                return Err("back-quoted value contains a back quote".to_owned());
            }
            Ok(inner.replace('\r', ""))
        }
        '"' | '\'' => {
            let out = unescape_go(inner, first)?;
            if first == '\'' && out.chars().count() != 1 {
                return Err(
                    "single quotes hold exactly one character; use double quotes".to_owned(),
                );
            }
            Ok(out)
        }
        _ => Err(not_quoted()),
    }
}

fn unescape_go(inner: &str, quote: char) -> Result<String, String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == quote {
            return Err(format!("unescaped {quote} inside the quoted value"));
        }
        if c == '\n' {
            return Err("newline inside the quoted value".to_owned());
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escape = chars.next().ok_or("value ends with a lone backslash")?;
        let simple = match escape {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' | '\'' if escape == quote => Some(escape),
            _ => None,
        };
        if let Some(simple) = simple {
            out.push(simple);
            continue;
        }
        let (digits, radix) = match escape {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return Err(format!("unknown escape sequence \\{escape}")),
        };
        let mut text = String::new();
        if radix == 8 {
            text.push(escape);
        }
        for _ in 0..digits {
            text.push(chars.next().ok_or("truncated escape sequence")?);
        }
        let code = u32::from_str_radix(&text, radix)
            .map_err(|_| format!("malformed escape sequence in {text:?}"))?;
        match escape {
            // \x and octal escapes are single bytes; only ASCII bytes form valid UTF-8 alone.
            'x' | '0'..='7' => {
                if code > 0xff {
                    return Err("octal escape value above 255".to_owned());
                }
                if code > 0x7f {
                    return Err(
                        "byte escapes above 0x7f would make the value invalid UTF-8".to_owned()
                    );
                }
                out.push(char::from(code as u8));
            }
            _ => out.push(
                char::from_u32(code)
                    .ok_or_else(|| format!("invalid Unicode code point {code:#x}"))?,
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_prometheus() {
        let cases = [
            ("0", 0),
            ("0s", 0),
            ("500ms", 500),
            ("90s", 90_000),
            ("2h", 7_200_000),
            ("1h30m", 5_400_000),
            ("15d", 15 * 86_400_000),
            ("1w", 7 * 86_400_000),
            ("1y", 365 * 86_400_000),
            (
                "1y2w3d4h5m6s7ms",
                365 * 86_400_000 + 17 * 86_400_000 + 14_706_007,
            ),
            ("60m", 3_600_000),
        ];
        for (input, ms) in cases {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_millis(ms)),
                "{input}"
            );
        }
    }

    #[test]
    fn durations_reject_garbage() {
        for input in [
            "",
            "1.5h",
            "-1h",
            "+1h",
            "h",
            "1",
            "10",
            "1x",
            "1m1h",
            "1h1h",
            "1 h",
            " 1h",
            "1hh",
            "1µs",
            "1ns",
            "1H",
            "9999999999999y",
        ] {
            assert!(parse_duration(input).is_err(), "{input:?} must be rejected");
        }
        let message = parse_duration("1.5h").unwrap_err().to_string();
        assert!(message.contains("\"1.5h\""), "{message}");
    }

    #[test]
    fn durations_round_trip_through_format() {
        for input in [
            "2h", "1h30m", "15d", "1w", "1y", "500ms", "1d1h", "0s", "5m", "3w", "10d",
        ] {
            let parsed = parse_duration(input).unwrap();
            assert_eq!(format_duration(parsed), input);
        }
        assert_eq!(format_duration(Duration::from_secs(8 * 86_400)), "8d");
    }

    #[test]
    fn byte_sizes_are_base_two() {
        let cases = [
            ("0", 0),
            ("0B", 0),
            ("1B", 1),
            ("250MB", 250 << 20),
            ("250MiB", 250 << 20),
            ("2GB", 2 << 30),
            ("2GiB", 2 << 30),
            ("512KB", 512 << 10),
            ("1TiB", 1 << 40),
            ("1.5GB", 3 << 29),
            ("1GB512MB", (1 << 30) + (512 << 20)),
            ("+1KB", 1024),
        ];
        for (input, want) in cases {
            assert_eq!(parse_bytes(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn byte_sizes_reject_garbage() {
        for input in [
            "", "100", "1kB", "1kb", "-1MB", "MB", "1.MB.", "1 MB", "1GiB1MB", "10XB", "9EB",
        ] {
            assert!(parse_bytes(input).is_err(), "{input:?} must be rejected");
        }
    }

    #[test]
    fn labels_need_go_quoted_values() {
        assert_eq!(
            parse_label(r#"replica="r-0""#),
            Ok(ExternalLabel {
                name: "replica".into(),
                value: "r-0".into()
            })
        );
        let escaped = parse_label(r#"a="x\"y\n\t\\\x41\101\u00e9\U0001F600""#).unwrap();
        assert_eq!(escaped.value, "x\"y\n\t\\AAé😀");
        assert_eq!(parse_label("a=`raw\\n`").unwrap().value, "raw\\n");
        assert_eq!(parse_label("a='x'").unwrap().value, "x");
        assert_eq!(parse_label(r#"a="""#).unwrap().value, "");
        assert_eq!(parse_label(r#"a="b=c""#).unwrap().value, "b=c");
        assert_eq!(parse_label(r#"ünïcode="v""#).unwrap().name, "ünïcode");
    }

    #[test]
    fn labels_reject_malformed_input() {
        for input in [
            "replica=0",
            "replica",
            r#"="x""#,
            r#"a="unterminated"#,
            r#"a="x"y""#,
            r#"a="\q""#,
            r#"a="\xff""#,
            "a='xy'",
            r#"a="\"#,
        ] {
            assert!(parse_label(input).is_err(), "{input:?} must be rejected");
        }
        let message = parse_label("replica=0").unwrap_err().to_string();
        assert!(message.contains("quoted"), "{message}");
    }

    #[test]
    fn duplicate_label_names_are_rejected() {
        let ok = parse_labels(&[r#"b="2""#, r#"a="1""#]).unwrap();
        assert_eq!(ok[0].name, "a");
        assert_eq!(ok[1].name, "b");
        assert!(parse_labels(&[r#"a="1""#, r#"a="2""#]).is_err());
    }
}
