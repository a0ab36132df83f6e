//! Label matchers `=`, `!=`, `=~`, `!~` with Prometheus semantics.
//!
//! Mirrors Prometheus's `model/labels` matcher code. Regexes are fully anchored and `.`
//! matches newlines (`^(?s:re)$`), as in Prometheus. A label that is absent matches as if
//! its value were the empty string.
//!
//! Regexes are analysed once at construction so that common shapes (literals,
//! alternations of literals, `prefix.*`, `.*suffix`, `.*contains.*`, `.*`, `.+`) are
//! matched with string operations instead of running the regex engine, like Prometheus's
//! `FastRegexMatcher`. The shortcuts accept exactly the strings the regex accepts.

use std::fmt;
use std::sync::Arc;

use crate::error::ModelError;
use crate::fast_regex::{self, FastRegex};
use crate::labels::Labels;

/// The kind of a matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchType {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    RegexMatch,
    /// `!~`
    RegexNoMatch,
}

impl MatchType {
    /// The operator as written in PromQL.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::RegexMatch => "=~",
            MatchType::RegexNoMatch => "!~",
        }
    }
}

/// A label matcher.
#[derive(Clone)]
pub struct Matcher {
    match_type: MatchType,
    name: String,
    value: String,
    re: Option<Arc<FastRegex>>,
}

impl Matcher {
    /// Creates a matcher; regex matchers compile their pattern (fully anchored).
    pub fn new(
        match_type: MatchType,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, ModelError> {
        let name = name.into();
        let value = value.into();
        let re = match match_type {
            MatchType::RegexMatch | MatchType::RegexNoMatch => {
                let re = fast_regex::cached(&value).map_err(|reason| ModelError::InvalidRegex {
                    name: name.clone(),
                    regex: value.clone(),
                    reason,
                })?;
                Some(re)
            }
            _ => None,
        };
        Ok(Self {
            match_type,
            name,
            value,
            re,
        })
    }

    /// An `=` matcher (cannot fail).
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            match_type: MatchType::Equal,
            name: name.into(),
            value: value.into(),
            re: None,
        }
    }

    /// The matcher's kind.
    pub fn match_type(&self) -> MatchType {
        self.match_type
    }

    /// The label name matched.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value or regex as given.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// True when the matcher accepts the value `v`.
    pub fn matches(&self, v: &str) -> bool {
        match self.match_type {
            MatchType::Equal => v == self.value,
            MatchType::NotEqual => v != self.value,
            MatchType::RegexMatch => self.regex_matches(v),
            MatchType::RegexNoMatch => !self.regex_matches(v),
        }
    }

    /// True when the matcher accepts the empty string (i.e. series lacking the label).
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// For regex matchers (`=~` and `!~`): the exact, sorted list of strings the regex
    /// matches when it is a small finite set (e.g. `a|b|c`, `(foo|bar)baz?`), so postings
    /// can be looked up per value instead of scanning every label value. Note that for
    /// `!~` these are the values *excluded*. `None` for other matchers and other regexes.
    pub fn set_matches(&self) -> Option<&[String]> {
        self.re.as_ref().and_then(|re| re.set_matches())
    }

    /// For regex matchers (`=~` and `!~`): a non-empty literal that every string matched
    /// by the regex starts with (e.g. `foo` for `foo.*bar`), letting callers seek in sorted
    /// label values. `None` for other matchers or when the regex has no literal prefix.
    pub fn prefix(&self) -> Option<&str> {
        self.re.as_ref().and_then(|re| re.prefix())
    }

    fn regex_matches(&self, v: &str) -> bool {
        self.re.as_ref().is_some_and(|re| re.is_match(v))
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.match_type == other.match_type && self.name == other.name && self.value == other.value
    }
}

impl Eq for Matcher {}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{:?}",
            self.name,
            self.match_type.as_str(),
            self.value
        )
    }
}

/// True when every matcher accepts `labels` (absent labels count as empty values).
pub fn matches_labels(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(m.name()).unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(t: MatchType, v: &str) -> Matcher {
        Matcher::new(t, "l", v).unwrap()
    }

    #[test]
    fn equality_matchers() {
        assert!(m(MatchType::Equal, "a").matches("a"));
        assert!(!m(MatchType::Equal, "a").matches("ab"));
        assert!(m(MatchType::NotEqual, "a").matches("b"));
        assert!(m(MatchType::Equal, "").matches_empty());
    }

    #[test]
    fn regexes_are_anchored_and_dot_matches_newline() {
        assert!(m(MatchType::RegexMatch, "foo.*").matches("foo\nbar"));
        assert!(!m(MatchType::RegexMatch, "foo").matches("xfoo"));
        assert!(!m(MatchType::RegexMatch, "foo").matches("foox"));
        assert!(m(MatchType::RegexMatch, "a|b").matches("b"));
        assert!(!m(MatchType::RegexMatch, "a|b").matches("ab"));
        assert!(m(MatchType::RegexNoMatch, "a|b").matches("c"));
        assert!(m(MatchType::RegexMatch, ".*").matches_empty());
    }

    #[test]
    fn perl_classes_are_ascii_like_go() {
        assert!(m(MatchType::RegexMatch, r"\d+").matches("123"));
        assert!(!m(MatchType::RegexMatch, r"\d+").matches("١٢٣"));
        assert!(m(MatchType::RegexMatch, r"\\d").matches("\\d"));
    }

    #[test]
    fn set_matches_and_prefix() {
        let re = m(MatchType::RegexMatch, "b|a|c");
        assert_eq!(re.set_matches().unwrap(), ["a", "b", "c"]);
        assert_eq!(
            m(MatchType::RegexNoMatch, "x|y").set_matches().unwrap(),
            ["x", "y"]
        );
        assert_eq!(m(MatchType::Equal, "a").set_matches(), None);
        assert_eq!(m(MatchType::RegexMatch, "a.*").set_matches(), None);
        assert_eq!(m(MatchType::RegexMatch, "api-.*").prefix(), Some("api-"));
        assert_eq!(m(MatchType::RegexMatch, ".*api").prefix(), None);
        assert_eq!(m(MatchType::Equal, "api").prefix(), None);
        assert!(m(MatchType::RegexNoMatch, "api-.*").matches("web"));
        assert!(!m(MatchType::RegexNoMatch, "api-.*").matches("api-1"));
    }

    #[test]
    fn invalid_regex_is_a_clear_error() {
        let err = Matcher::new(MatchType::RegexMatch, "job", "(").unwrap_err();
        assert!(err.to_string().contains("job"), "{err}");
    }

    #[test]
    fn matches_labels_treats_absent_as_empty() {
        let ls = Labels::from_pairs([("job", "api")]);
        let ms = vec![
            Matcher::equal("job", "api"),
            Matcher::new(MatchType::Equal, "missing", "").unwrap(),
        ];
        assert!(matches_labels(&ms, &ls));
        let ms = vec![Matcher::new(MatchType::RegexMatch, "missing", ".+").unwrap()];
        assert!(!matches_labels(&ms, &ls));
    }
}
