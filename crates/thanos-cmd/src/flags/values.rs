//! clap value parsers for Thanos flag syntaxes, on top of `thanos_server::parse`.

use std::time::Duration;

use thanos_server::TlsVersion;

/// `model.Duration` flags (`2h`, `15d`, `1y`).
pub fn duration(value: &str) -> Result<Duration, String> {
    thanos_server::parse_duration(value).map_err(|err| err.to_string())
}

/// `units.Base2Bytes` flags (`250MB`, `2GB`).
pub fn bytes(value: &str) -> Result<u64, String> {
    thanos_server::parse_bytes(value).map_err(|err| err.to_string())
}

/// TLS version flags (`1.0` … `1.3`); whether rustls supports it is checked when TLS is built.
pub fn tls_version(value: &str) -> Result<TlsVersion, String> {
    value.parse()
}

/// A time flag value: absolute (RFC 3339) or relative to now (`-6w`, `2h45m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOrDuration {
    /// Milliseconds since the Unix epoch.
    Absolute(i64),
    /// Signed offset from "now" in milliseconds.
    Relative(i64),
}

impl TimeOrDuration {
    /// Resolves the value against `now_ms` (milliseconds since the epoch).
    pub fn resolve(self, now_ms: i64) -> i64 {
        match self {
            TimeOrDuration::Absolute(ms) => ms,
            TimeOrDuration::Relative(offset) => now_ms.saturating_add(offset),
        }
    }
}

/// Parses `--min-time` / `--max-time` (Thanos `model.TimeOrDurationValue`): an RFC 3339
/// timestamp, or a Prometheus duration with an optional sign meaning "now ± duration".
pub fn time_or_duration(value: &str) -> Result<TimeOrDuration, String> {
    if let Ok(ms) = parse_rfc3339(value) {
        return Ok(TimeOrDuration::Absolute(ms));
    }
    let (sign, body) = match value.as_bytes().first() {
        Some(b'-') => (-1, &value[1..]),
        Some(b'+') => (1, &value[1..]),
        _ => (1, value),
    };
    let duration = thanos_server::parse_duration(body).map_err(|_| {
        format!("{value:?} is neither an RFC 3339 time nor a duration such as -6w or 2h45m")
    })?;
    let ms =
        i64::try_from(duration.as_millis()).map_err(|_| format!("{value:?} is out of range"))?;
    Ok(TimeOrDuration::Relative(sign * ms))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to milliseconds since the epoch.
fn parse_rfc3339(value: &str) -> Result<i64, ()> {
    let bytes = value.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Result<i64, ()> {
        let part = bytes.get(range).ok_or(())?;
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(());
        }
        std::str::from_utf8(part)
            .map_err(|_| ())?
            .parse()
            .map_err(|_| ())
    };
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators
        .iter()
        .any(|(at, sep)| bytes.get(*at) != Some(sep))
        || !matches!(bytes.get(10), Some(b'T' | b't'))
    {
        return Err(());
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(());
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(());
    }
    let mut pos = 19;
    let mut millis = 0;
    if bytes.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        if pos == start {
            return Err(());
        }
        let fraction = format!("{:0<3}", &value[start..pos.min(start + 3)]);
        millis = fraction.parse::<i64>().map_err(|_| ())?;
    }
    let offset_minutes = match bytes.get(pos) {
        Some(b'Z' | b'z') if pos + 1 == bytes.len() => 0,
        Some(sign @ (b'+' | b'-')) if pos + 6 == bytes.len() && bytes[pos + 3] == b':' => {
            let minutes = digits(pos + 1..pos + 3)? * 60 + digits(pos + 4..pos + 6)?;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return Err(()),
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339("2026-11-24T06:00:00Z"), Ok(1_795_500_000_000));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Ok(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.5Z"), Ok(500));
        assert_eq!(
            parse_rfc3339("0000-01-01T00:00:00Z"),
            Ok(-62_167_219_200_000)
        );
        assert_eq!(
            parse_rfc3339("9999-12-31T23:59:59Z"),
            Ok(253_402_300_799_000)
        );
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00",
            "x",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn relative_times() {
        assert_eq!(
            time_or_duration("-6w"),
            Ok(TimeOrDuration::Relative(-6 * 7 * 86_400_000))
        );
        assert_eq!(
            time_or_duration("2h45m"),
            Ok(TimeOrDuration::Relative(9_900_000))
        );
        assert_eq!(TimeOrDuration::Relative(-1000).resolve(5000), 4000);
        assert!(time_or_duration("yesterday").is_err());
    }
}
