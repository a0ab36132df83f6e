//! Fast paths for fully anchored matcher regexes, in the spirit of Prometheus's
//! `FastRegexMatcher`: the regex's syntax tree is inspected once and common shapes
//! (literals, alternations of literals, `prefix.*`, `.*suffix`, `.*contains.*`, `.*`,
//! `.+`) are answered with plain string operations. Every shortcut is exact: it accepts
//! precisely the strings the anchored regex accepts; anything else falls back to the
//! compiled regex (after a cheap literal-prefix check when one exists).

use std::sync::{Arc, LazyLock};

use regex::Regex;
use regex_syntax::hir::{Class, Hir, HirKind};

use crate::cache::TextCache;

/// Compiles `pattern` like [`FastRegex::new`], reusing an earlier compilation of the same
/// pattern in this process (up to 512 patterns of up to 1 KiB). Compiling builds the
/// regex's automata, which costs more than a small query's whole evaluation, and
/// dashboards send the same few patterns over and over (Prometheus 2.48+ keeps a similar
/// cache). Failures are not cached.
pub(crate) fn cached(pattern: &str) -> Result<Arc<FastRegex>, String> {
    static CACHE: LazyLock<TextCache<Arc<FastRegex>>> = LazyLock::new(|| TextCache::new(512, 1024));
    CACHE.get_or_try_insert_with(pattern, || FastRegex::new(pattern).map(Arc::new))
}

/// Most strings (or character-class sequences) kept for a finite-language shortcut.
const MAX_SET: usize = 256;
/// Largest bounded repetition (`x{n,m}` with `m` up to this) expanded into a finite set.
const MAX_REPEAT: u32 = 8;
/// Most branches of a top-level alternation compiled into separate shortcuts.
const MAX_OR: usize = 16;

/// One position of a fixed-length pattern: the (sorted) character ranges it accepts.
type Atom = Box<[(char, char)]>;

/// A compiled matcher regex plus the fastest exact shortcut found for it.
#[derive(Debug)]
pub(crate) struct FastRegex {
    re: Regex,
    shortcut: Shortcut,
    prefix: Option<String>,
}

#[derive(Debug, PartialEq)]
enum Shortcut {
    /// Use the regex (after the prefix check).
    Regex,
    /// `.*`: every string.
    Any,
    /// `.+`: every non-empty string.
    NonEmpty,
    /// A finite set of strings, sorted and deduplicated.
    Set(Vec<String>),
    /// A finite set of fixed-length character-class sequences (e.g. case-insensitive
    /// literals too numerous to expand).
    Seqs(Vec<Vec<Atom>>),
    /// `prefix <middle> suffix` with literal prefix and suffix.
    Affix {
        prefix: String,
        suffix: String,
        middle: Middle,
    },
    /// Any of the branches.
    Or(Vec<Shortcut>),
}

#[derive(Debug, PartialEq)]
enum Middle {
    /// `.*`
    Any,
    /// `.+`
    NonEmpty,
    /// `.*(a|b|...).*`
    Contains(Vec<String>),
}

impl FastRegex {
    /// Compiles `pattern` with Prometheus semantics (`^(?s:pattern)$`, Go's ASCII Perl
    /// classes) and analyses it.
    pub(crate) fn new(pattern: &str) -> Result<Self, String> {
        let inner = format!("(?s:{})", go_compat(pattern));
        let re = Regex::new(&format!("^{inner}$")).map_err(|e| e.to_string())?;
        let (shortcut, prefix) = match regex_syntax::Parser::new().parse(&inner) {
            Ok(hir) => (shortcut(&hir), literal_prefix(&hir)),
            Err(_) => (Shortcut::Regex, None),
        };
        Ok(Self {
            re,
            shortcut,
            prefix: prefix.filter(|p| !p.is_empty()),
        })
    }

    /// True when the anchored regex matches `v`.
    pub(crate) fn is_match(&self, v: &str) -> bool {
        match &self.shortcut {
            Shortcut::Regex => {
                self.prefix.as_deref().is_none_or(|p| v.starts_with(p)) && self.re.is_match(v)
            }
            s => s.matches(v),
        }
    }

    /// The exact, finite set of strings the regex matches, when it is small.
    pub(crate) fn set_matches(&self) -> Option<&[String]> {
        match &self.shortcut {
            Shortcut::Set(set) => Some(set),
            _ => None,
        }
    }

    /// A literal every matched string starts with.
    pub(crate) fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }
}

impl Shortcut {
    fn matches(&self, v: &str) -> bool {
        match self {
            // Never reached through FastRegex::is_match; kept total for `Or`, which never
            // contains it.
            Shortcut::Regex => false,
            Shortcut::Any => true,
            Shortcut::NonEmpty => !v.is_empty(),
            Shortcut::Set(set) => {
                if set.len() <= 8 {
                    set.iter().any(|s| s == v)
                } else {
                    set.binary_search_by(|s| s.as_str().cmp(v)).is_ok()
                }
            }
            Shortcut::Seqs(seqs) => seqs.iter().any(|seq| seq_matches(seq, v)),
            Shortcut::Affix {
                prefix,
                suffix,
                middle,
            } => {
                if v.len() < prefix.len() + suffix.len()
                    || !v.starts_with(prefix.as_str())
                    || !v.ends_with(suffix.as_str())
                {
                    return false;
                }
                // Both cut points are char boundaries: they end/start matched literals.
                let mid = &v[prefix.len()..v.len() - suffix.len()];
                match middle {
                    Middle::Any => true,
                    Middle::NonEmpty => !mid.is_empty(),
                    Middle::Contains(needles) => needles.iter().any(|n| mid.contains(n.as_str())),
                }
            }
            Shortcut::Or(branches) => branches.iter().any(|b| b.matches(v)),
        }
    }
}

fn seq_matches(seq: &[Atom], v: &str) -> bool {
    let mut chars = v.chars();
    for atom in seq {
        match chars.next() {
            Some(c) if atom_contains(atom, c) => {}
            _ => return false,
        }
    }
    chars.next().is_none()
}

fn atom_contains(atom: &[(char, char)], c: char) -> bool {
    atom.iter().any(|&(lo, hi)| lo <= c && c <= hi)
}

fn shortcut(h: &Hir) -> Shortcut {
    if let Some(seqs) = finite(h) {
        return match expand(&seqs) {
            Some(set) => Shortcut::Set(set),
            None => Shortcut::Seqs(seqs),
        };
    }
    match h.kind() {
        HirKind::Capture(c) => shortcut(&c.sub),
        _ if is_any_repeat(h, 0) => Shortcut::Any,
        _ if is_any_repeat(h, 1) => Shortcut::NonEmpty,
        HirKind::Concat(items) => affix(items).unwrap_or(Shortcut::Regex),
        HirKind::Alternation(branches) if branches.len() <= MAX_OR => {
            let subs: Vec<Shortcut> = branches.iter().map(shortcut).collect();
            if subs.contains(&Shortcut::Regex) {
                Shortcut::Regex
            } else {
                Shortcut::Or(subs)
            }
        }
        _ => Shortcut::Regex,
    }
}

/// `prefix (.*|.+|.*X.*) suffix` where prefix/suffix are literals and X a small finite set.
fn affix(items: &[Hir]) -> Option<Shortcut> {
    let mut lo = 0;
    let mut prefix = String::new();
    while let Some(l) = items.get(lo).and_then(literal) {
        prefix.push_str(l);
        lo += 1;
    }
    let mut hi = items.len();
    let mut suffix_parts = Vec::new();
    while hi > lo {
        match literal(&items[hi - 1]) {
            Some(l) => suffix_parts.push(l),
            None => break,
        }
        hi -= 1;
    }
    let suffix: String = suffix_parts.into_iter().rev().collect();
    let middle = match &items[lo..hi] {
        [m] if is_any_repeat(m, 0) => Middle::Any,
        [m] if is_any_repeat(m, 1) => Middle::NonEmpty,
        [a, m, b] if is_any_repeat(a, 0) && is_any_repeat(b, 0) => {
            Middle::Contains(expand(&finite(m)?)?)
        }
        _ => return None,
    };
    Some(Shortcut::Affix {
        prefix,
        suffix,
        middle,
    })
}

/// The literal every match starts with, from the leading literals of the top level.
fn literal_prefix(h: &Hir) -> Option<String> {
    match h.kind() {
        HirKind::Capture(c) => literal_prefix(&c.sub),
        HirKind::Literal(_) => literal(h).map(str::to_owned),
        HirKind::Concat(items) => {
            let mut prefix = String::new();
            for l in items.iter().map_while(literal) {
                prefix.push_str(l);
            }
            Some(prefix)
        }
        _ => None,
    }
}

/// The text of a literal node (looking through capture groups).
fn literal(h: &Hir) -> Option<&str> {
    match h.kind() {
        HirKind::Literal(lit) => std::str::from_utf8(&lit.0).ok(),
        HirKind::Capture(c) => literal(&c.sub),
        _ => None,
    }
}

/// True for `.*` (`min == 0`) or `.+` (`min == 1`) where `.` matches every character.
fn is_any_repeat(h: &Hir, min: u32) -> bool {
    match h.kind() {
        HirKind::Repetition(rep) => rep.min == min && rep.max.is_none() && is_any_char(&rep.sub),
        HirKind::Capture(c) => is_any_repeat(&c.sub, min),
        _ => false,
    }
}

fn is_any_char(h: &Hir) -> bool {
    match h.kind() {
        HirKind::Class(Class::Unicode(c)) => {
            matches!(c.ranges(), [r] if r.start() == '\0' && r.end() == char::MAX)
        }
        HirKind::Capture(c) => is_any_char(&c.sub),
        _ => false,
    }
}

/// The language of `h` as at most [`MAX_SET`] fixed-length class sequences, when finite.
fn finite(h: &Hir) -> Option<Vec<Vec<Atom>>> {
    match h.kind() {
        HirKind::Empty => Some(vec![Vec::new()]),
        HirKind::Literal(lit) => {
            let s = std::str::from_utf8(&lit.0).ok()?;
            Some(vec![s.chars().map(|c| Box::from([(c, c)])).collect()])
        }
        HirKind::Class(Class::Unicode(c)) => {
            let atom: Atom = c.ranges().iter().map(|r| (r.start(), r.end())).collect();
            Some(if atom.is_empty() {
                Vec::new()
            } else {
                vec![vec![atom]]
            })
        }
        HirKind::Class(Class::Bytes(c)) => {
            // Only ASCII byte classes are characters; others cannot occur in UTF-8 mode.
            if !c.ranges().iter().all(|r| r.end().is_ascii()) {
                return None;
            }
            let atom: Atom = c
                .ranges()
                .iter()
                .map(|r| (char::from(r.start()), char::from(r.end())))
                .collect();
            Some(if atom.is_empty() {
                Vec::new()
            } else {
                vec![vec![atom]]
            })
        }
        HirKind::Look(_) => None,
        HirKind::Capture(c) => finite(&c.sub),
        HirKind::Repetition(rep) => {
            let max = rep.max.filter(|&m| m <= MAX_REPEAT)?;
            let sub = finite(&rep.sub)?;
            let mut out = Vec::new();
            let mut power = vec![Vec::new()];
            for k in 0..=max {
                if k >= rep.min {
                    out.extend(power.iter().cloned());
                    if out.len() > MAX_SET {
                        return None;
                    }
                }
                if k < max {
                    power = product(&power, &sub)?;
                }
            }
            Some(out)
        }
        HirKind::Concat(items) => {
            let mut acc = vec![Vec::new()];
            for item in items {
                acc = product(&acc, &finite(item)?)?;
            }
            Some(acc)
        }
        HirKind::Alternation(branches) => {
            let mut out = Vec::new();
            for b in branches {
                out.extend(finite(b)?);
                if out.len() > MAX_SET {
                    return None;
                }
            }
            Some(out)
        }
    }
}

fn product(a: &[Vec<Atom>], b: &[Vec<Atom>]) -> Option<Vec<Vec<Atom>>> {
    if a.len().saturating_mul(b.len()) > MAX_SET {
        return None;
    }
    Some(
        a.iter()
            .flat_map(|x| {
                b.iter().map(move |y| {
                    let mut seq = x.clone();
                    seq.extend(y.iter().cloned());
                    seq
                })
            })
            .collect(),
    )
}

/// Expands class sequences into the (sorted, deduplicated) strings they match, when
/// there are at most [`MAX_SET`] of them.
fn expand(seqs: &[Vec<Atom>]) -> Option<Vec<String>> {
    let mut total = 0usize;
    for seq in seqs {
        let mut n = 1usize;
        for atom in seq {
            let size: usize = atom
                .iter()
                .map(|&(lo, hi)| (u32::from(hi) - u32::from(lo)) as usize + 1)
                .sum();
            n = n.saturating_mul(size);
            if n > MAX_SET {
                return None;
            }
        }
        total += n;
        if total > MAX_SET {
            return None;
        }
    }
    let mut out = Vec::with_capacity(total);
    for seq in seqs {
        let mut strings = vec![String::new()];
        for atom in seq {
            strings = strings
                .iter()
                .flat_map(|s| {
                    atom.iter().flat_map(|&(lo, hi)| lo..=hi).map(move |c| {
                        let mut t = s.clone();
                        t.push(c);
                        t
                    })
                })
                .collect();
        }
        out.extend(strings);
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// Rewrites Go (RE2) syntax whose meaning differs in Rust's regex crate: the Perl classes
/// `\d \w \s` (ASCII-only in Go) become explicit ASCII classes that also work inside
/// brackets, `\b \B` become ASCII word boundaries, and `\Q...\E` quoting is escaped.
pub(crate) fn go_compat(re: &str) -> String {
    let mut out = String::with_capacity(re.len());
    let mut chars = re.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str("[0-9]"),
            Some('D') => out.push_str("[^0-9]"),
            Some('w') => out.push_str("[0-9A-Za-z_]"),
            Some('W') => out.push_str("[^0-9A-Za-z_]"),
            Some('s') => out.push_str("[\\t\\n\\f\\r ]"),
            Some('S') => out.push_str("[^\\t\\n\\f\\r ]"),
            Some(k @ ('b' | 'B')) => {
                out.push_str("(?-u:\\");
                out.push(k);
                out.push(')');
            }
            Some('Q') => {
                let rest = chars.as_str();
                let (quoted, tail) = match rest.find("\\E") {
                    Some(end) => (&rest[..end], &rest[end + 2..]),
                    None => (rest, ""),
                };
                out.push_str(&regex_syntax::escape(quoted));
                chars = tail.chars();
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn cache_shares_compilations_and_keeps_no_errors() {
        let a = cached("cache-test-(a|b)x.*").unwrap();
        let b = cached("cache-test-(a|b)x.*").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(a.is_match("cache-test-bx1") && !a.is_match("cache-test-cx"));
        assert!(cached("cache-test-(").is_err());
        assert!(cached("cache-test-(").is_err());
        let long = format!("{}.*", "y".repeat(1024));
        assert!(!Arc::ptr_eq(
            &cached(&long).unwrap(),
            &cached(&long).unwrap()
        ));
    }

    fn plain(pattern: &str) -> Regex {
        Regex::new(&format!("^(?s:{})$", go_compat(pattern))).unwrap()
    }

    fn shortcut_of(pattern: &str) -> Shortcut {
        FastRegex::new(pattern).unwrap().shortcut
    }

    #[test]
    fn shapes_get_their_shortcut() {
        assert_eq!(shortcut_of("foo"), Shortcut::Set(vec!["foo".into()]));
        assert_eq!(
            shortcut_of("b|a|c|a"),
            Shortcut::Set(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(shortcut_of(".*"), Shortcut::Any);
        assert_eq!(shortcut_of(".+"), Shortcut::NonEmpty);
        assert_eq!(shortcut_of("(.*)"), Shortcut::Any);
        assert!(matches!(shortcut_of("(?i)foo|bar"), Shortcut::Set(s) if s.len() == 16));
        assert!(matches!(shortcut_of("(?i)abcdefghijk"), Shortcut::Seqs(_)));
        assert!(matches!(
            shortcut_of("foo.*"),
            Shortcut::Affix { prefix, suffix, middle: Middle::Any } if prefix == "foo" && suffix.is_empty()
        ));
        assert!(matches!(
            shortcut_of(".*foo"),
            Shortcut::Affix { prefix, suffix, middle: Middle::Any } if prefix.is_empty() && suffix == "foo"
        ));
        assert!(matches!(
            shortcut_of(".*(foo|bar).*"),
            Shortcut::Affix { middle: Middle::Contains(n), .. } if n == ["bar", "foo"]
        ));
        assert!(matches!(
            shortcut_of("ab.+yz"),
            Shortcut::Affix {
                middle: Middle::NonEmpty,
                ..
            }
        ));
        assert!(matches!(shortcut_of("foo.*|.*bar"), Shortcut::Or(b) if b.len() == 2));
        assert_eq!(shortcut_of("a+b"), Shortcut::Regex);
        assert_eq!(shortcut_of(r"foo\b.*"), Shortcut::Regex);
    }

    #[test]
    fn prefixes() {
        assert_eq!(FastRegex::new("foo.*").unwrap().prefix(), Some("foo"));
        assert_eq!(
            FastRegex::new("(foo)bar[0-9]+").unwrap().prefix(),
            Some("foobar")
        );
        assert_eq!(FastRegex::new("foo").unwrap().prefix(), Some("foo"));
        assert_eq!(FastRegex::new(".*foo").unwrap().prefix(), None);
        assert_eq!(FastRegex::new("(?i)foo.*").unwrap().prefix(), None);
        assert_eq!(FastRegex::new("a|b").unwrap().prefix(), None);
        let re = FastRegex::new("api-[0-9]+x").unwrap();
        assert_eq!(re.prefix(), Some("api-"));
        assert!(re.is_match("api-12x"));
        assert!(!re.is_match("apx-12x"));
    }

    #[test]
    fn set_matches_are_exact_and_bounded() {
        let re = FastRegex::new("(a|b)(c|d)e?").unwrap();
        assert_eq!(
            re.set_matches().unwrap(),
            ["ac", "ace", "ad", "ade", "bc", "bce", "bd", "bde"]
        );
        // `(?i)k` also matches the Kelvin sign, like the regex does.
        let re = FastRegex::new("(?i)k").unwrap();
        assert_eq!(re.set_matches().unwrap(), ["K", "k", "\u{212a}"]);
        assert!(FastRegex::new("[a-z]{3}").unwrap().set_matches().is_none());
        assert!(FastRegex::new("foo.*").unwrap().set_matches().is_none());
        assert_eq!(FastRegex::new("").unwrap().set_matches().unwrap(), [""]);
    }

    #[test]
    fn go_perl_classes_work_inside_brackets_and_negated() {
        let re = FastRegex::new(r"[\d.]+").unwrap();
        assert!(re.is_match("1.5"));
        assert!(!re.is_match("(?"));
        assert!(!re.is_match("١"));
        let re = FastRegex::new(r"\D+").unwrap();
        assert!(re.is_match("ab١"));
        assert!(!re.is_match("a1"));
        assert!(FastRegex::new(r"\W\S").unwrap().is_match("-é"));
        assert!(FastRegex::new(r"\s").unwrap().is_match("\t"));
        assert!(!FastRegex::new(r"\s").unwrap().is_match("\u{a0}"));
        assert!(FastRegex::new(r"\Qa.b\E+").unwrap().is_match("a.bb"));
        assert!(!FastRegex::new(r"\Qa.b\E").unwrap().is_match("axb"));
    }

    /// Pattern pieces combined into a family of patterns covering every shortcut.
    fn piece() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "a", "b", "ab", "foo", "é", "K", ".*", ".+", ".", "[a-c]", "[^a]", "(?i)k", "(?i:fo)",
            "a?", "(a|bc)", "(a|b){2}", "", r"\d", r"\w", "(?:.*)", "x*", "(?i)é",
        ])
        .prop_map(str::to_owned)
    }

    fn pattern() -> impl Strategy<Value = String> {
        let concat = prop::collection::vec(piece(), 1..5).prop_map(|p| p.concat());
        prop::collection::vec(concat, 1..4).prop_map(|alts| alts.join("|"))
    }

    fn input() -> impl Strategy<Value = String> {
        let ch = prop::sample::select(vec![
            'a', 'b', 'c', 'f', 'o', 'x', 'A', 'B', 'F', 'O', 'k', 'K', '\u{212a}', 'é', 'É', '\n',
            '1', '_',
        ]);
        prop::collection::vec(ch, 0..8).prop_map(|c| c.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn fast_paths_agree_with_the_plain_regex(pattern in pattern(), inputs in prop::collection::vec(input(), 1..16)) {
            let fast = FastRegex::new(&pattern).unwrap();
            let re = plain(&pattern);
            for v in inputs {
                prop_assert_eq!(fast.is_match(&v), re.is_match(&v), "pattern {:?} input {:?} strategy {:?}", pattern, v, fast.shortcut);
            }
            if let Some(set) = fast.set_matches() {
                for s in set {
                    prop_assert!(re.is_match(s), "set member {:?} of {:?}", s, pattern);
                }
            }
        }

        #[test]
        fn matched_strings_start_with_the_prefix(pattern in pattern(), inputs in prop::collection::vec(input(), 1..16), lead in prop::sample::select(vec!["", "foo", "ab", "a"])) {
            let fast = FastRegex::new(&pattern).unwrap();
            let re = plain(&pattern);
            if let Some(p) = fast.prefix() {
                for v in inputs {
                    let v = format!("{lead}{v}");
                    prop_assert!(!re.is_match(&v) || v.starts_with(p), "{:?} matches {:?} without prefix {:?}", pattern, v, p);
                }
            }
        }
    }
}
