//! Duration expressions (`x[5m+1m]`, `x[step()*2:1s]`, `x offset min_of(step(), 1s)`), an
//! experimental Prometheus 3 feature `promql-parser` 0.11 cannot parse.
//!
//! This thin layer runs before the parser: it finds the contents of `[...]` and the operand
//! of `offset`, evaluates any arithmetic there (numbers are seconds; `step()` and `range()`
//! come from the query parameters; `min_of`/`max_of`; `+ - * / % ^` and parentheses) and
//! substitutes a plain millisecond duration, which the parser understands.

use crate::engine::QueryParams;
use crate::error::Error;

/// Rewrites duration expressions in `query` into literal durations.
pub(crate) fn rewrite(query: &str, params: &QueryParams) -> Result<String, Error> {
    let step_s = if params.instant {
        0.0
    } else {
        params.step as f64 / 1000.0
    };
    let range_s = (params.end - params.start) as f64 / 1000.0;
    let chars: Vec<char> = query.chars().collect();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            let end = skip_string(&chars, i);
            out.extend(&chars[i..end]);
            i = end;
            continue;
        }
        if c == '[' {
            let Some(close) = matching(&chars, i, '[', ']') else {
                out.push(c);
                i += 1;
                continue;
            };
            let inner: String = chars[i + 1..close].iter().collect();
            out.push('[');
            let parts = split_top_level(&inner, ':');
            for (k, part) in parts.iter().enumerate() {
                if k > 0 {
                    out.push(':');
                }
                out.push_str(&rewrite_part(part, step_s, range_s)?);
            }
            out.push(']');
            i = close + 1;
            continue;
        }
        if is_word_at(&chars, i, "offset") {
            let mark = out.len();
            out.push_str("offset");
            i += "offset".len();
            while i < chars.len() && chars[i].is_whitespace() {
                out.push(chars[i]);
                i += 1;
            }
            let start = i;
            let mut sign = 1.0;
            if i < chars.len() && (chars[i] == '-' || chars[i] == '+') {
                if chars[i] == '-' {
                    sign = -1.0;
                }
                i += 1;
                while i < chars.len() && chars[i].is_whitespace() {
                    i += 1;
                }
            }
            let atom_end = offset_atom_end(&chars, i);
            let atom: String = chars[i..atom_end].iter().collect();
            if atom.is_empty() || is_plain_duration(&atom) {
                out.extend(&chars[start..atom_end]);
            } else {
                let v = Parser::new(&atom, step_s, range_s).parse_all()? * sign;
                if (v * 1000.0).round() == 0.0 {
                    // A zero offset is no offset (the parser rejects `offset 0ms`).
                    out.truncate(mark);
                } else {
                    out.push_str(&format_ms(v));
                }
            }
            i = atom_end;
            continue;
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

fn skip_string(chars: &[char], start: usize) -> usize {
    let q = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\\' && q != '`' {
            i += 2;
            continue;
        }
        if chars[i] == q {
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

fn matching(chars: &[char], open_at: usize, open: char, close: char) -> Option<usize> {
    let mut depth = 0;
    for (k, &c) in chars.iter().enumerate().skip(open_at) {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Some(k);
            }
        }
    }
    None
}

fn is_word_at(chars: &[char], i: usize, word: &str) -> bool {
    let w: Vec<char> = word.chars().collect();
    if i + w.len() > chars.len() {
        return false;
    }
    let before_ok = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    let after = chars.get(i + w.len());
    let after_ok = after.is_none_or(|c| !(c.is_alphanumeric() || *c == '_'));
    before_ok
        && after_ok
        && chars[i..i + w.len()]
            .iter()
            .zip(&w)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
}

/// End of the operand of `offset`: a literal, a parenthesised expression or a call.
fn offset_atom_end(chars: &[char], start: usize) -> usize {
    let mut i = start;
    if i < chars.len() && chars[i] == '(' {
        return matching(chars, i, '(', ')').map_or(chars.len(), |c| c + 1);
    }
    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
        i += 1;
    }
    if i < chars.len() && chars[i] == '(' {
        return matching(chars, i, '(', ')').map_or(chars.len(), |c| c + 1);
    }
    i
}

fn split_top_level(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        if c == sep && depth == 0 {
            parts.push(String::new());
        } else if let Some(p) = parts.last_mut() {
            p.push(c);
        }
    }
    parts
}

fn is_plain_duration(s: &str) -> bool {
    let t = s.trim();
    !t.is_empty() && parse_duration_s(t).is_some() && !t.bytes().all(|b| b.is_ascii_digit())
}

fn rewrite_part(part: &str, step_s: f64, range_s: f64) -> Result<String, Error> {
    let t = part.trim();
    if t.is_empty() || is_plain_duration(t) {
        return Ok(part.to_string());
    }
    let v = Parser::new(t, step_s, range_s).parse_all()?;
    if v < 0.0 {
        return Err(Error::Parse(format!(
            "duration must be non-negative, got {t}"
        )));
    }
    Ok(format_ms(v))
}

fn format_ms(seconds: f64) -> String {
    let ms = (seconds * 1000.0).round() as i64;
    if ms < 0 {
        format!("-{}ms", -ms)
    } else {
        format!("{ms}ms")
    }
}

/// Parses a Prometheus duration literal (`1h30m`, `500ms`) into seconds.
fn parse_duration_s(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut total = 0.0;
    let mut any = false;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        let n: f64 = s[start..i].parse().ok()?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult = match &s[ustart..i] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 604_800.0,
            "y" => 31_536_000.0,
            _ => return None,
        };
        total += n * mult;
        any = true;
    }
    any.then_some(total)
}

/// Recursive-descent evaluator for duration arithmetic (values in seconds).
struct Parser {
    toks: Vec<char>,
    pos: usize,
    step_s: f64,
    range_s: f64,
}

impl Parser {
    fn new(s: &str, step_s: f64, range_s: f64) -> Self {
        Self {
            toks: s.chars().filter(|c| !c.is_whitespace()).collect(),
            pos: 0,
            step_s,
            range_s,
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, Error> {
        let s: String = self.toks.iter().collect();
        Err(Error::Parse(format!(
            "invalid duration expression {s:?}: {what}"
        )))
    }

    fn peek(&self) -> Option<char> {
        self.toks.get(self.pos).copied()
    }

    fn parse_all(mut self) -> Result<f64, Error> {
        let v = self.sum()?;
        if self.pos != self.toks.len() {
            return self.err("unexpected trailing input");
        }
        Ok(v)
    }

    fn sum(&mut self) -> Result<f64, Error> {
        let mut v = self.product()?;
        while let Some(c) = self.peek() {
            match c {
                '+' => {
                    self.pos += 1;
                    v += self.product()?;
                }
                '-' => {
                    self.pos += 1;
                    v -= self.product()?;
                }
                _ => break,
            }
        }
        Ok(v)
    }

    fn product(&mut self) -> Result<f64, Error> {
        let mut v = self.unary()?;
        while let Some(c) = self.peek() {
            match c {
                '*' => {
                    self.pos += 1;
                    v *= self.unary()?;
                }
                '/' => {
                    self.pos += 1;
                    v /= self.unary()?;
                }
                '%' => {
                    self.pos += 1;
                    v %= self.unary()?;
                }
                _ => break,
            }
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<f64, Error> {
        match self.peek() {
            Some('-') => {
                self.pos += 1;
                Ok(-self.unary()?)
            }
            Some('+') => {
                self.pos += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<f64, Error> {
        let base = self.atom()?;
        if self.peek() == Some('^') {
            self.pos += 1;
            let exp = self.unary()?;
            return Ok(base.powf(exp));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<f64, Error> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let v = self.sum()?;
                if self.peek() != Some(')') {
                    return self.err("missing )");
                }
                self.pos += 1;
                Ok(v)
            }
            Some(c) if c.is_ascii_digit() || c == '.' => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                let text: String = self.toks[start..self.pos].iter().collect();
                if let Ok(n) = text.parse::<f64>() {
                    return Ok(n);
                }
                match parse_duration_s(&text) {
                    Some(v) => Ok(v),
                    None => self.err("bad number or duration"),
                }
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                let name: String = self.toks[start..self.pos]
                    .iter()
                    .collect::<String>()
                    .to_ascii_lowercase();
                if self.peek() != Some('(') {
                    return self.err("expected (");
                }
                self.pos += 1;
                let mut args = Vec::new();
                if self.peek() != Some(')') {
                    loop {
                        args.push(self.sum()?);
                        if self.peek() == Some(',') {
                            self.pos += 1;
                            continue;
                        }
                        break;
                    }
                }
                if self.peek() != Some(')') {
                    return self.err("missing )");
                }
                self.pos += 1;
                match (name.as_str(), args.as_slice()) {
                    ("step", []) => Ok(self.step_s),
                    ("range", []) => Ok(self.range_s),
                    ("min_of", [a, b]) => Ok(crate::mathx::go_min(*a, *b)),
                    ("max_of", [a, b]) => Ok(crate::mathx::go_max(*a, *b)),
                    _ => self.err("unknown function"),
                }
            }
            _ => self.err("unexpected token"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(q: &str) -> String {
        rewrite(q, &QueryParams::range(50_000, 60_000, 5_000)).unwrap()
    }

    #[test]
    fn rewrites_brackets_and_offsets() {
        assert_eq!(rw("rate(x[5m])"), "rate(x[5m])");
        assert_eq!(rw("changes(x[26m+4m])"), "changes(x[1800000ms])");
        assert_eq!(rw("x[2m*(10+5)]"), "x[1800000ms]");
        assert_eq!(rw("x[30m1s-30m1s % 1m]"), "x[1800000ms]");
        assert_eq!(rw("x[29s+1s:5s+5s]"), "x[30000ms:10000ms]");
        assert_eq!(rw("x[5m:]"), "x[5m:]");
        assert_eq!(rw("x[step()+1]"), "x[6000ms]");
        assert_eq!(rw("x offset (100 + 2)"), "x offset 102000ms");
        assert_eq!(rw("x offset -2 * 2"), "x offset -2000ms * 2");
        assert_eq!(
            rw(r#"sum by (offset) (x{offset="1"})"#),
            r#"sum by (offset) (x{offset="1"})"#
        );
        assert_eq!(rw("x offset -step()*2"), "x offset -5000ms*2");
        assert_eq!(
            rw("x offset min_of(step(), 1s)+8000"),
            "x offset 1000ms+8000"
        );
        assert_eq!(rw("x offset range()"), "x offset 10000ms");
        let instant = rewrite("x offset range()", &QueryParams::instant(0)).unwrap();
        assert_eq!(instant.trim(), "x");
        assert_eq!(rw(r#"x{a="[1+1]"}[1m]"#), r#"x{a="[1+1]"}[1m]"#);
        assert!(rewrite("x[1m-2m]", &QueryParams::instant(0)).is_err());
    }
}
