//! String literals whose Go escapes spell bytes rather than characters.
//!
//! PromQL strings are Go strings: `"\xc3\xbf"` is the two bytes of `ÿ`, and `"\xff"` is one
//! byte that is not UTF-8 at all. `promql-parser` decodes each `\xNN` (and octal `\NNN`)
//! escape to the character U+00NN instead, so the first literal would read `Ã¿` and the
//! second a valid label name, where Prometheus refuses it (`label_replace(v, "\xff", …)`).
//!
//! This thin layer runs before the parser. Each quoted literal with a byte escape of 0x80 or
//! more is decoded the Go way; the bytes that form UTF-8 become their characters, and each
//! byte that does not becomes a stand-in character from the top of Unicode's last private
//! use plane (U+10FF80 + byte − 0x80). The literal is written back with those characters
//! unescaped, which the parser keeps as they are. [`is_valid_label_name`] refuses names
//! holding a stand-in (like Go's `utf8.ValidString`) and [`go_quote`] prints it as `\xNN`,
//! so errors read like Prometheus's.

use std::borrow::Cow;

/// First stand-in character: byte 0x80.
const STAND_IN_BASE: u32 = 0x10_FF80;

/// Rewrites the quoted literals of `query` that hold byte escapes (see the module docs);
/// the query comes back borrowed when there are none.
pub(crate) fn normalize(query: &str) -> Cow<'_, str> {
    if !query.contains('\\') {
        return Cow::Borrowed(query);
    }
    let b = query.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => i = memchr_or_end(b, i, b'\n'),
            b'`' => i = memchr_or_end(b, i + 1, b'`') + 1,
            q @ (b'"' | b'\'') => {
                let end = literal_end(b, i + 1, q);
                let inner = &query[i + 1..end];
                if end < b.len()
                    && has_high_byte_escape(inner)
                    && let Some(bytes) = go_unescape(inner)
                {
                    out.push_str(&query[copied..i]);
                    write_literal(&mut out, &bytes, q as char);
                    copied = (end + 1).min(b.len());
                }
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    if copied == 0 {
        return Cow::Borrowed(query);
    }
    out.push_str(&query[copied.min(query.len())..]);
    Cow::Owned(out)
}

/// Whether `name` is a valid label name in Prometheus 3's UTF-8 scheme: not empty, and
/// valid UTF-8 (no stand-in for a stray byte).
pub(crate) fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(is_stand_in)
}

/// Quotes `s` like Go's `%q`: stand-ins print as the `\xNN` byte they replace.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_quoted(&mut out, s, '"', true);
    out
}

/// Appends `s` in `quote`s with the quote, backslash and control characters escaped;
/// stand-ins as their `\xNN` byte when `show_bytes`, else as they are.
fn push_quoted(out: &mut String, s: &str, quote: char, show_bytes: bool) {
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if show_bytes && is_stand_in(c) => {
                out.push_str(&format!("\\x{:02x}", c as u32 - STAND_IN_BASE + 0x80))
            }
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
}

fn is_stand_in(c: char) -> bool {
    (c as u32) >= STAND_IN_BASE
}

fn memchr_or_end(b: &[u8], from: usize, needle: u8) -> usize {
    b[from.min(b.len())..]
        .iter()
        .position(|&c| c == needle)
        .map_or(b.len(), |p| from + p)
}

/// Index of the closing quote of a literal whose contents start at `from` (or the end of
/// the input when it is unterminated: the parser reports that).
fn literal_end(b: &[u8], from: usize, quote: u8) -> usize {
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            c if c == quote => return i,
            _ => i += 1,
        }
    }
    b.len()
}

fn has_high_byte_escape(inner: &str) -> bool {
    let b = inner.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'\\' {
            match b[i + 1] {
                b'x' if i + 2 < b.len()
                    && matches!(b[i + 2], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F') =>
                {
                    return true;
                }
                b'2'..=b'3' => return true,
                _ => {}
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// Decodes the contents of a quoted literal to bytes the way Go's `strconv.Unquote` does;
/// `None` for a malformed escape (left for the parser to report).
fn go_unescape(inner: &str) -> Option<Vec<u8>> {
    let b = inner.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let e = *b.get(i + 1)?;
        i += 2;
        match e {
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'\\' | b'\'' | b'"' => out.push(e),
            b'x' => {
                out.push(u8::from_str_radix(inner.get(i..i + 2)?, 16).ok()?);
                i += 2;
            }
            b'0'..=b'7' => {
                let v = u32::from_str_radix(inner.get(i - 1..i + 2)?, 8).ok()?;
                out.push(u8::try_from(v).ok()?);
                i += 2;
            }
            b'u' | b'U' => {
                let n = if e == b'u' { 4 } else { 8 };
                let v = u32::from_str_radix(inner.get(i..i + n)?, 16).ok()?;
                let mut buf = [0; 4];
                out.extend_from_slice(char::from_u32(v)?.encode_utf8(&mut buf).as_bytes());
                i += n;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Writes `bytes` as a literal the parser reads back to the intended characters: UTF-8
/// runs as they are, stray bytes as stand-ins, and the quote, backslash and control
/// characters escaped.
fn write_literal(out: &mut String, bytes: &[u8], quote: char) {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        text.extend(chunk.invalid().iter().map(|&b| stand_in(b)));
    }
    push_quoted(out, &text, quote, false);
}

fn stand_in(byte: u8) -> char {
    // bytes below 0x80 are always valid UTF-8, so `byte` is 0x80..=0xff here
    char::from_u32(STAND_IN_BASE + u32::from(byte.saturating_sub(0x80))).unwrap_or('\u{fffd}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_queries_are_borrowed() {
        for q in [
            r#"up{job="a"}"#,
            r#"label_replace(up, "a\n", "", "b", "(.*)")"#,
        ] {
            assert!(matches!(normalize(q), Cow::Borrowed(_)), "{q}");
        }
    }

    #[test]
    fn byte_escapes_that_spell_utf8_become_characters() {
        assert_eq!(normalize(r#"x{a="\xc3\xbf"}"#), r#"x{a="ÿ"}"#);
        assert_eq!(
            normalize(r#"x{a='\303\277'} # "\xff""#),
            r#"x{a='ÿ'} # "\xff""#
        );
    }

    #[test]
    fn stray_bytes_become_invalid_label_names_that_quote_like_go() {
        let q = normalize(r#"count_values("a\xc5z", v)"#).into_owned();
        let name = q.split('"').nth(1).unwrap();
        assert!(!is_valid_label_name(name));
        assert_eq!(go_quote(name), r#""a\xc5z""#);
        assert!(is_valid_label_name("ÿ"));
        assert!(!is_valid_label_name(""));
    }

    #[test]
    fn escapes_and_quotes_survive_the_rewrite() {
        assert_eq!(
            normalize(r#"f("\xff\"\\\n\u00e9", `\xff`, '\'')"#),
            "f(\"\u{10ffff}\\\"\\\\\\né\", `\\xff`, '\\'')"
        );
    }

    #[test]
    fn malformed_escapes_are_left_for_the_parser() {
        for q in [r#"f("\xf")"#, r#"f("\400")"#, r#"f("\xff"#] {
            assert_eq!(normalize(q), q);
        }
    }
}
