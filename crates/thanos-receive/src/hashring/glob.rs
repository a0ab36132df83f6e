//! Shell-style tenant patterns with the semantics of Go's `path/filepath.Match` on Unix.
//!
//! Grammar (Go's, separator `/`):
//!
//! * `*` matches any sequence of characters other than `/` (including the empty one);
//! * `?` matches exactly one character other than `/`;
//! * `[` `^`? ranges `]` is a character class: each range is a single character `c` or
//!   `lo-hi`; `^` negates the class; a class must hold at least one range; `-` and `]`
//!   must be escaped with `\` inside a class (`]` closes it only after the first range);
//! * `\c` matches the character `c` literally;
//! * any other character matches itself.
//!
//! Unlike Go, which may only notice a malformed pattern while matching, the whole pattern
//! is validated up front by [`GlobPattern::new`], so a bad tenant pattern is reported
//! when the hashring configuration is loaded rather than on the first write.

use thiserror::Error;

/// Separator that `*`, `?` never match (Go's `filepath.Separator` on Unix).
const SEPARATOR: char = '/';

/// A malformed glob pattern (Go's `filepath.ErrBadPattern`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("syntax error in pattern {pattern:?}: {reason}")]
pub struct GlobError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    /// Whether this single-character token accepts `c` (`Star` is handled by the matcher).
    fn accepts(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::AnyChar => c != SEPARATOR,
            Token::Class { negated, ranges } => {
                let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                inside != *negated
            }
            Token::Star => false,
        }
    }
}

/// A compiled, validated shell-style pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobPattern {
    pattern: String,
    tokens: Vec<Token>,
}

impl GlobPattern {
    /// Compiles `pattern`, rejecting everything Go's `filepath.Match` reports as
    /// `ErrBadPattern` (unclosed or empty class, unescaped `-`/`]` at a range bound,
    /// trailing `\`).
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        let bad = |reason| GlobError {
            pattern: pattern.to_owned(),
            reason,
        };
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::AnyChar),
                '\\' => match chars.next() {
                    Some(escaped) => tokens.push(Token::Literal(escaped)),
                    None => return Err(bad("trailing backslash")),
                },
                '[' => {
                    let negated = chars.next_if_eq(&'^').is_some();
                    let mut ranges = Vec::new();
                    loop {
                        if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
                            break;
                        }
                        let lo = class_char(&mut chars).map_err(bad)?;
                        let hi = if chars.next_if_eq(&'-').is_some() {
                            class_char(&mut chars).map_err(bad)?
                        } else {
                            lo
                        };
                        ranges.push((lo, hi));
                    }
                    tokens.push(Token::Class { negated, ranges });
                }
                other => tokens.push(Token::Literal(other)),
            }
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `name` matches the pattern.
    pub fn matches(&self, name: &str) -> bool {
        let chars: Vec<char> = name.chars().collect();
        let n = chars.len();
        // next[j]: tokens[i+1..] match chars[j..]; cur[j]: tokens[i..] match chars[j..].
        let mut next = vec![false; n + 1];
        next[n] = true;
        let mut cur = vec![false; n + 1];
        for token in self.tokens.iter().rev() {
            for j in (0..=n).rev() {
                cur[j] = match token {
                    Token::Star => next[j] || (j < n && chars[j] != SEPARATOR && cur[j + 1]),
                    single => j < n && single.accepts(chars[j]) && next[j + 1],
                };
            }
            std::mem::swap(&mut cur, &mut next);
        }
        next[0]
    }
}

/// One bound of a class range (Go's `getEsc`): a plain or `\`-escaped character that is
/// not `-` or `]` and is followed by more pattern text (the class must still be closed).
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, &'static str> {
    let c = match chars.next() {
        None => return Err("unclosed character class"),
        Some('-') | Some(']') => return Err("unescaped '-' or ']' in character class"),
        Some('\\') => chars.next().ok_or("unclosed character class")?,
        Some(c) => c,
    };
    if chars.peek().is_none() {
        return Err("unclosed character class");
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        GlobPattern::new(pattern)
            .unwrap_or_else(|e| panic!("{e}"))
            .matches(name)
    }

    #[test]
    fn matches_like_go_filepath_match() {
        // (pattern, name, expected) — cases follow the documented Go semantics.
        let cases = [
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("*", "abc", true),
            ("*", "", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a[^a][^a][^a]b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "x", true),
            ("[\\-x]", "a", false),
            ("[^/]", "/", false),
            ("[^a]", "/", true),
            ("default*", "default-tenant", true),
            ("default*", "tenant-default", false),
            ("team-?", "team-a", true),
            ("team-?", "team-ab", false),
            ("[z-a]", "m", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(m(pattern, name), want, "pattern {pattern:?} name {name:?}");
        }
    }

    #[test]
    fn rejects_bad_patterns() {
        for pattern in [
            "[]a]", "[-]", "[x-]", "[", "[^", "[^bc", "a[", "\\", "a\\", "[a-", "[\\", "[a", "[]",
            "[a-]",
        ] {
            assert!(
                GlobPattern::new(pattern).is_err(),
                "pattern {pattern:?} should be rejected"
            );
        }
    }

    #[test]
    fn collapses_consecutive_stars() {
        let p = GlobPattern::new("a**b").unwrap_or_else(|e| panic!("{e}"));
        assert!(p.matches("axyzb"));
        assert!(p.matches("ab"));
        assert_eq!(p.as_str(), "a**b");
    }
}
