//! Parser for Prometheus's promqltest scripting language (`load`, `eval`, `clear`).

use std::sync::OnceLock;

use regex::Regex;
use thanos_model::Labels;
use thanos_model::histogram::{CounterResetHint, FloatHistogram, Span};

/// One value position of a series line.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A float sample (may be a stale marker).
    Float(f64),
    /// No sample at this position.
    Skip,
    /// A native histogram sample; the flag says whether the counter-reset hint was
    /// written explicitly (only then is it compared).
    Histogram(Box<FloatHistogram>, bool),
}

/// Parses the inside of a `{{…}}` histogram literal.
pub fn parse_histogram(body: &str) -> Result<(FloatHistogram, bool), String> {
    let mut h = FloatHistogram::default();
    let mut explicit_hint = false;
    let mut offset = 0i32;
    let mut n_offset = 0i32;
    let mut rest = body.trim();
    let list = |v: &str| -> Result<Vec<f64>, String> {
        v.split_whitespace()
            .map(|x| parse_number(x).ok_or_else(|| format!("bad number {x:?} in histogram")))
            .collect()
    };
    while !rest.is_empty() {
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("bad histogram field in {body:?}"))?;
        let key = rest[..colon].trim();
        let after = rest[colon + 1..].trim_start();
        let (value, next) = if let Some(inner) = after.strip_prefix('[') {
            let end = inner.find(']').ok_or("unterminated [ in histogram")?;
            (&inner[..end], &inner[end + 1..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        rest = next.trim_start();
        let num = || parse_number(value).ok_or_else(|| format!("bad value {value:?} for {key}"));
        match key {
            "schema" => h.schema = value.parse().map_err(|_| format!("bad schema {value:?}"))?,
            "sum" => h.sum = num()?,
            "count" => h.count = num()?,
            "z_bucket" => h.zero_count = num()?,
            "z_bucket_w" => h.zero_threshold = num()?,
            "buckets" => h.positive_buckets = list(value)?,
            "n_buckets" => h.negative_buckets = list(value)?,
            "offset" => offset = value.parse().map_err(|_| format!("bad offset {value:?}"))?,
            "n_offset" => {
                n_offset = value
                    .parse()
                    .map_err(|_| format!("bad n_offset {value:?}"))?
            }
            "custom_values" => h.custom_values = list(value)?,
            "counter_reset_hint" => {
                explicit_hint = true;
                h.counter_reset_hint = match value {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    other => return Err(format!("bad counter_reset_hint {other:?}")),
                }
            }
            other => return Err(format!("unknown histogram field {other:?}")),
        }
    }
    if !h.positive_buckets.is_empty() {
        h.positive_spans = vec![Span::new(offset, h.positive_buckets.len() as u32)];
    }
    if !h.negative_buckets.is_empty() {
        h.negative_spans = vec![Span::new(n_offset, h.negative_buckets.len() as u32)];
    }
    Ok((h, explicit_hint))
}

/// Expands `{{A}}`, `{{A}}xK`, `{{A}}+{{B}}xK` and `{{A}}-{{B}}xK`.
fn parse_histogram_item(tok: &str, out: &mut Vec<Item>) -> Result<(), String> {
    let end_a = tok
        .find("}}")
        .ok_or_else(|| format!("bad histogram {tok}"))?;
    let (a, hint) = parse_histogram(&tok[2..end_a])?;
    let rest = &tok[end_a + 2..];
    if rest.is_empty() {
        out.push(Item::Histogram(Box::new(a), hint));
        return Ok(());
    }
    if let Some(k) = rest.strip_prefix('x') {
        let k: usize = k.parse().map_err(|_| format!("bad item {tok}"))?;
        out.extend(std::iter::repeat_n(
            Item::Histogram(Box::new(a), hint),
            k + 1,
        ));
        return Ok(());
    }
    let sign = rest.as_bytes()[0];
    let inner = rest[1..]
        .strip_prefix("{{")
        .ok_or_else(|| format!("bad item {tok}"))?;
    let end_b = inner.find("}}").ok_or_else(|| format!("bad item {tok}"))?;
    let (b, _) = parse_histogram(&inner[..end_b])?;
    let k: usize = inner[end_b + 2..]
        .strip_prefix('x')
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| format!("bad item {tok}"))?;
    let mut cur = a;
    out.push(Item::Histogram(Box::new(cur.clone()), hint));
    for _ in 0..k {
        let r = if sign == b'+' {
            cur.add(&b)
        } else {
            cur.sub(&b)
        };
        r.map_err(|e| format!("{tok}: {e}"))?;
        out.push(Item::Histogram(Box::new(cur.clone()), hint));
    }
    Ok(())
}

/// A series line: labels and expanded values.
#[derive(Debug, Clone)]
pub struct SeriesLine {
    pub labels: Labels,
    pub items: Vec<Item>,
}

/// The kind of an eval.
#[derive(Debug, Clone, Copy)]
pub enum EvalKind {
    Instant { t: i64 },
    Range { start: i64, end: i64, step: i64 },
}

/// Expectations about annotations or failures, from `expect` lines.
#[derive(Debug, Clone, Default)]
pub struct Expect {
    pub fail: bool,
    pub fail_msg: Option<String>,
    pub fail_regex: Option<String>,
    pub warn: Vec<Option<Matcher>>,
    pub info: Vec<Option<Matcher>>,
    pub no_warn: bool,
    pub no_info: bool,
    pub ordered: bool,
    pub range_vector: Option<(i64, i64, i64)>,
    pub string: Option<String>,
}

/// A `msg:` (exact) or `regex:` annotation matcher.
#[derive(Debug, Clone)]
pub enum Matcher {
    Msg(String),
    Regex(String),
}

impl Matcher {
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Msg(m) => m == s,
            Matcher::Regex(r) => Regex::new(r).map(|re| re.is_match(s)).unwrap_or(false),
        }
    }
}

/// One `eval` block.
#[derive(Debug, Clone)]
pub struct Eval {
    pub line: usize,
    pub expr: String,
    pub kind: EvalKind,
    pub expect: Expect,
    pub series: Vec<SeriesLine>,
    pub scalar: Option<f64>,
}

/// A script command.
#[derive(Debug, Clone)]
pub enum Command {
    Clear,
    Load {
        interval: i64,
        series: Vec<SeriesLine>,
        /// `load_with_nhcb`: classic histograms also become custom-bucket histograms.
        nhcb: bool,
    },
    Eval(Box<Eval>),
}

/// Parses a Prometheus duration (`1h30m`, `10s53ms`, `0`) into milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(0);
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if body.is_empty() {
        return Err(format!("empty duration {s:?}"));
    }
    let mut total: i64 = 0;
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!("bad duration {s:?}"));
        }
        let n: i64 = body[start..i]
            .parse()
            .map_err(|_| format!("bad duration {s:?}"))?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult = match &body[ustart..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            u => return Err(format!("bad duration unit {u:?} in {s:?}")),
        };
        total += n * mult;
    }
    Ok(if neg { -total } else { total })
}

/// Parses a PromQL number (`1`, `-2.5e3`, `0x1f`, `Inf`, `NaN`).
pub fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower = body.to_ascii_lowercase();
    let v = if lower == "inf" {
        f64::INFINITY
    } else if lower == "nan" {
        f64::NAN
    } else if let Some(hex) = lower.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()? as f64
    } else {
        if lower.is_empty()
            || !lower
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-'))
        {
            return None;
        }
        lower.parse::<f64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// Unquotes a Go/PromQL string literal (double, single or back quotes).
fn unquote(s: &str) -> Result<String, String> {
    let q = s.chars().next().ok_or("empty string literal")?;
    if s.len() < 2 || !s.ends_with(q) {
        return Err(format!("bad string literal {s}"));
    }
    let inner = &s[1..s.len() - 1];
    if q == '`' {
        return Ok(inner.to_string());
    }
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('a') => out.push('\x07'),
            Some('b') => out.push('\x08'),
            Some('f') => out.push('\x0c'),
            Some('v') => out.push('\x0b'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some('x') => {
                let h: String = chars.by_ref().take(2).collect();
                let b = u8::from_str_radix(&h, 16).map_err(|e| e.to_string())?;
                out.push(b as char);
            }
            Some('u') => {
                let h: String = chars.by_ref().take(4).collect();
                let c = u32::from_str_radix(&h, 16).map_err(|e| e.to_string())?;
                out.push(char::from_u32(c).ok_or("bad \\u escape")?);
            }
            Some('U') => {
                let h: String = chars.by_ref().take(8).collect();
                let c = u32::from_str_radix(&h, 16).map_err(|e| e.to_string())?;
                out.push(char::from_u32(c).ok_or("bad \\U escape")?);
            }
            Some(d) if d.is_digit(8) => {
                let mut o = String::from(d);
                o.extend(chars.by_ref().take(2));
                let b = u8::from_str_radix(&o, 8).map_err(|e| e.to_string())?;
                out.push(b as char);
            }
            other => return Err(format!("bad escape {other:?} in {s}")),
        }
    }
    Ok(out)
}

/// Reads a quoted string starting at `s[0]`; returns it and the rest.
fn take_quoted(s: &str) -> Result<(String, &str), String> {
    let q = s.chars().next().ok_or("expected string")?;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' && q != '`' {
            escaped = true;
            continue;
        }
        if c == q {
            return Ok((unquote(&s[..=i])?, &s[i + 1..]));
        }
    }
    Err(format!("unterminated string in {s}"))
}

/// Parses a series descriptor at the start of `line`; returns labels and the rest.
pub fn parse_series_desc(line: &str) -> Result<(Labels, &str), String> {
    let line = line.trim_start();
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let mut pairs: Vec<(String, String)> = Vec::new();
    if name_end > 0 {
        pairs.push(("__name__".into(), line[..name_end].to_string()));
    }
    let mut rest = &line[name_end..];
    if rest.starts_with('{') {
        rest = rest[1..].trim_start();
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (name, r) = if rest.starts_with(['"', '\'', '`']) {
                take_quoted(rest)?
            } else {
                let end = rest
                    .find(|c: char| c == '=' || c == ',' || c == '}' || c.is_whitespace())
                    .ok_or("bad label")?;
                (rest[..end].to_string(), &rest[end..])
            };
            let r = r.trim_start();
            if let Some(r2) = r.strip_prefix('=') {
                let (value, r3) = take_quoted(r2.trim_start())?;
                pairs.push((name, value));
                rest = r3.trim_start();
            } else {
                // A quoted metric name inside braces: {"metric", a="b"}.
                pairs.push(("__name__".into(), name));
                rest = r;
            }
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
            }
        }
    }
    Ok((Labels::from_pairs(pairs), rest))
}

fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    let b: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '{' && b.get(i + 1) == Some(&'{') {
            depth += 1;
            cur.push_str("{{");
            i += 2;
            continue;
        }
        if c == '}' && b.get(i + 1) == Some(&'}') && depth > 0 {
            depth -= 1;
            cur.push_str("}}");
            i += 2;
            continue;
        }
        if c.is_whitespace() && depth == 0 {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
        i += 1;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Expands the value notation of a series line.
pub fn parse_values(s: &str) -> Result<Vec<Item>, String> {
    let mut out = Vec::new();
    for tok in tokens(s) {
        if tok == "_" {
            out.push(Item::Skip);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad item {tok}"))?;
            out.extend(std::iter::repeat_n(Item::Skip, n));
            continue;
        }
        if tok == "stale" {
            out.push(Item::Float(thanos_model::sample::stale_nan()));
            continue;
        }
        if tok.starts_with("{{") {
            parse_histogram_item(&tok, &mut out)?;
            continue;
        }
        let repeat = tok.rfind('x').filter(|&p| {
            p > 0 && p + 1 < tok.len() && tok[p + 1..].bytes().all(|b| b.is_ascii_digit())
        });
        if repeat.is_none()
            && let Some(v) = parse_number(&tok)
        {
            out.push(Item::Float(v));
            continue;
        }
        let xp = repeat.ok_or_else(|| format!("bad item {tok}"))?;
        let k: usize = tok[xp + 1..]
            .parse()
            .map_err(|_| format!("bad item {tok}"))?;
        let head = &tok[..xp];
        let mut op_pos = None;
        for (i, c) in head.char_indices().skip(1) {
            if (c == '+' || c == '-') && !matches!(head.as_bytes()[i - 1], b'e' | b'E') {
                op_pos = Some(i);
            }
        }
        match op_pos {
            Some(p) => {
                let start = parse_number(&head[..p]).ok_or_else(|| format!("bad item {tok}"))?;
                let mut d =
                    parse_number(&head[p + 1..]).ok_or_else(|| format!("bad item {tok}"))?;
                if &head[p..=p] == "-" {
                    d = -d;
                }
                let mut v = start;
                out.push(Item::Float(v));
                for _ in 0..k {
                    v += d;
                    out.push(Item::Float(v));
                }
            }
            None => {
                let v = parse_number(head).ok_or_else(|| format!("bad item {tok}"))?;
                out.extend(std::iter::repeat_n(Item::Float(v), k + 1));
            }
        }
    }
    Ok(out)
}

fn instant_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
            .expect("static regex")
    })
}

fn range_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$",
        )
        .expect("static regex")
    })
}

fn range_vector_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^vector\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)$").expect("static regex")
    })
}

fn parse_matcher(rest: &str) -> Option<Matcher> {
    let rest = rest.trim();
    if rest.is_empty() {
        return None;
    }
    if let Some(m) = rest.strip_prefix("msg:") {
        return Some(Matcher::Msg(m.trim().to_string()));
    }
    rest.strip_prefix("regex:")
        .map(|r| Matcher::Regex(r.trim().to_string()))
}

fn parse_eval(lines: &[(usize, String)]) -> Result<Eval, String> {
    let (lineno, head) = &lines[0];
    let mut expect = Expect::default();
    let (kind, expr, variant) = if let Some(c) = instant_re().captures(head) {
        let t = parse_duration(c.get(2).map_or("0", |m| m.as_str()))?;
        (
            EvalKind::Instant { t },
            c[3].to_string(),
            c.get(1).map(|m| m.as_str().to_string()),
        )
    } else if let Some(c) = range_re().captures(head) {
        let start = parse_duration(&c[2])?;
        let end = parse_duration(&c[3])?;
        let step = parse_duration(&c[4])?;
        if end < start {
            return Err("end before start".into());
        }
        (
            EvalKind::Range { start, end, step },
            c[5].to_string(),
            c.get(1).map(|m| m.as_str().to_string()),
        )
    } else {
        return Err(format!("line {lineno}: bad eval {head:?}"));
    };
    match variant.as_deref() {
        Some("fail") => expect.fail = true,
        Some("warn") => expect.warn.push(None),
        Some("info") => expect.info.push(None),
        Some("ordered") => expect.ordered = true,
        _ => {}
    }
    let mut series = Vec::new();
    let mut scalar = None;
    for (_, l) in &lines[1..] {
        if let Some(rest) = l.strip_prefix("expect ") {
            let rest = rest.trim();
            let (word, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            match word {
                "fail" => {
                    expect.fail = true;
                    match parse_matcher(tail) {
                        Some(Matcher::Msg(m)) => expect.fail_msg = Some(m),
                        Some(Matcher::Regex(r)) => expect.fail_regex = Some(r),
                        None => {}
                    }
                }
                "warn" => expect.warn.push(parse_matcher(tail)),
                "info" => expect.info.push(parse_matcher(tail)),
                "no_warn" => expect.no_warn = true,
                "no_info" => expect.no_info = true,
                "ordered" => expect.ordered = true,
                "string" => expect.string = Some(unquote(tail.trim())?),
                "range" => {
                    let c = range_vector_re()
                        .captures(tail.trim())
                        .ok_or("bad expect range vector")?;
                    expect.range_vector = Some((
                        parse_duration(&c[1])?,
                        parse_duration(&c[2])?,
                        parse_duration(&c[3])?,
                    ));
                }
                other => return Err(format!("unknown expect {other:?}")),
            }
            continue;
        }
        if let Some(m) = l.strip_prefix("expected_fail_message") {
            expect.fail = true;
            expect.fail_msg = Some(m.trim().to_string());
            continue;
        }
        if let Some(r) = l.strip_prefix("expected_fail_regexp") {
            expect.fail = true;
            expect.fail_regex = Some(r.trim().to_string());
            continue;
        }
        let t = l.trim();
        if let Some(v) = parse_go_number(t) {
            scalar = Some(v);
            break;
        }
        let (labels, rest) = parse_series_desc(t)?;
        series.push(SeriesLine {
            labels,
            items: parse_values(rest)?,
        });
    }
    Ok(Eval {
        line: *lineno,
        expr,
        kind,
        expect,
        series,
        scalar,
    })
}

/// Go's `strconv.ParseInt(s, 0, 64)` then `ParseFloat`, as the runner does for scalars.
fn parse_go_number(s: &str) -> Option<f64> {
    if s.is_empty() || s.contains(char::is_whitespace) || s.contains('{') {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity" | "nan") {
        return parse_number(s);
    }
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    parse_number(s)
}

/// Splits a test file into commands.
pub fn parse_script(text: &str) -> Result<Vec<Command>, String> {
    let lines: Vec<(usize, String)> = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| {
            let t = l.trim();
            (
                i + 1,
                if t.starts_with('#') {
                    String::new()
                } else {
                    t.to_string()
                },
            )
        })
        .collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].1.is_empty() {
            i += 1;
            continue;
        }
        let start = i;
        while i < lines.len() && !lines[i].1.is_empty() {
            i += 1;
        }
        let block = &lines[start..i];
        let first = block[0]
            .1
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_lowercase();
        if first == "clear" {
            cmds.push(Command::Clear);
            // Anything following `clear` in the same block is another command.
            i = start + 1;
        } else if first.starts_with("load") {
            let mut parts = block[0].1.split_whitespace();
            parts.next();
            let interval = parse_duration(parts.next().ok_or("load without interval")?)?;
            let mut series = Vec::new();
            for (n, l) in &block[1..] {
                if l.contains("@st") {
                    continue;
                }
                let (labels, rest) = parse_series_desc(l).map_err(|e| format!("line {n}: {e}"))?;
                let items = parse_values(rest).map_err(|e| format!("line {n}: {e}"))?;
                series.retain(|s: &SeriesLine| s.labels != labels);
                series.push(SeriesLine { labels, items });
            }
            cmds.push(Command::Load {
                interval,
                series,
                nhcb: first == "load_with_nhcb",
            });
        } else if first.starts_with("eval") {
            cmds.push(Command::Eval(Box::new(parse_eval(block)?)));
        } else {
            return Err(format!("line {}: unknown command {first:?}", block[0].0));
        }
    }
    Ok(cmds)
}

#[test]
fn values_expand_like_prometheus() {
    let f = |s: &str| -> Vec<Option<f64>> {
        parse_values(s)
            .unwrap()
            .into_iter()
            .map(|i| match i {
                Item::Float(v) => Some(v),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        f("-2+4x3"),
        vec![Some(-2.0), Some(2.0), Some(6.0), Some(10.0)]
    );
    assert_eq!(
        f("1-2x4"),
        vec![Some(1.0), Some(-1.0), Some(-3.0), Some(-5.0), Some(-7.0)]
    );
    assert_eq!(f("1x4").len(), 5);
    assert_eq!(f("1 _x3").len(), 4);
    assert_eq!(f("0x1f"), vec![Some(31.0)]);
    assert_eq!(f("0x2"), vec![Some(0.0); 3]);
    assert_eq!(parse_duration("1h30m").unwrap(), 5_400_000);
    assert_eq!(parse_duration("10s53ms").unwrap(), 10_053);
}
