//! Prometheus relabelling (`relabel_config`): parse a YAML list of rules, validate them
//! and apply them to a label set.
//!
//! Mirrors Prometheus's `model/relabel` package. Semantics reproduced:
//!
//! * defaults: `separator: ";"`, `regex: "(.*)"`, `replacement: "$1"`, `action: replace`;
//!   the action name is case-insensitive;
//! * regexes are fully anchored with `.` matching newlines (`^(?s:re)$`) and Go's ASCII
//!   Perl classes (the same rewriting as label matchers);
//! * `replacement` and `target_label` use Go's `Regexp.Expand` rules: `$1`, `${1}`,
//!   `$name`, `${name}`; a reference takes the longest run of letters, digits and `_`
//!   (`$1x` is group `1x`), unknown or unmatched groups expand to nothing, `$$` is a `$`,
//!   and a `$` not followed by a valid reference stays literal;
//! * `hashmod`: MD5 of the joined source values, its last 8 bytes read big-endian as an
//!   unsigned 64-bit integer, modulo `modulus`;
//! * `replace` does nothing when the regex does not match or the expanded target is not a
//!   valid label name; an empty result deletes `target_label` (as written, unexpanded).
//!
//! Label names are validated with the classic rule `[a-zA-Z_][a-zA-Z0-9_]*`.

use std::fmt;

use md5::{Digest as _, Md5};
use regex::Regex;
use serde::Deserialize;

use crate::fast_regex::go_compat;
use crate::labels::{Label, Labels, LabelsBuilder};

/// Default `separator`.
pub const DEFAULT_SEPARATOR: &str = ";";
/// Default `regex`.
pub const DEFAULT_REGEX: &str = "(.*)";
/// Default `replacement`.
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// What a relabel rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Set `target_label` to the expanded `replacement` when `regex` matches.
    Replace,
    /// Drop the label set unless `regex` matches the joined source values.
    Keep,
    /// Drop the label set when `regex` matches the joined source values.
    Drop,
    /// Drop the label set unless the joined source values equal `target_label`'s value.
    KeepEqual,
    /// Drop the label set when the joined source values equal `target_label`'s value.
    DropEqual,
    /// Set `target_label` to the MD5-based hash of the source values modulo `modulus`.
    HashMod,
    /// Copy every label whose name matches `regex` to the name given by `replacement`.
    LabelMap,
    /// Remove every label whose name matches `regex`.
    LabelDrop,
    /// Remove every label whose name does not match `regex`.
    LabelKeep,
    /// Set `target_label` to the lower-cased joined source values.
    Lowercase,
    /// Set `target_label` to the upper-cased joined source values.
    Uppercase,
}

impl Action {
    /// The action's name as written in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }

    /// Parses an action name, case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        let all = [
            Action::Replace,
            Action::Keep,
            Action::Drop,
            Action::KeepEqual,
            Action::DropEqual,
            Action::HashMod,
            Action::LabelMap,
            Action::LabelDrop,
            Action::LabelKeep,
            Action::Lowercase,
            Action::Uppercase,
        ];
        let lower = name.to_lowercase();
        all.into_iter().find(|a| a.as_str() == lower)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of relabel configuration parsing and validation.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum RelabelError {
    /// The YAML document does not parse as a list of relabel rules.
    #[error("relabel config is not valid YAML: {0}")]
    Yaml(String),
    /// One rule is invalid.
    #[error("relabel config #{index}: {field}: {reason}")]
    Invalid {
        /// 0-based position of the rule in the list.
        index: usize,
        /// The offending field (`action`, `regex`, `target_label`, …).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// An anchored relabel regex (`^(?s:re)$`), remembering the pattern as written.
#[derive(Debug, Clone)]
pub struct RelabelRegex {
    source: String,
    re: Regex,
}

impl RelabelRegex {
    /// Compiles `pattern` with Prometheus's anchoring and Go's Perl classes.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        let re = Regex::new(&format!("^(?s:{})$", go_compat(pattern)))?;
        Ok(Self {
            source: pattern.to_owned(),
            re,
        })
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }

    /// Expands `template` with the groups of the match of `s`, or `None` when `s` does not
    /// match (Go's `Regexp.ExpandString` after `FindStringSubmatchIndex`).
    pub fn expand(&self, template: &str, s: &str) -> Option<String> {
        let caps = self.re.captures(s)?;
        Some(expand_template(template, |name| {
            let group = match parse_group_number(name) {
                Some(n) => caps.get(n),
                None => self
                    .re
                    .capture_names()
                    .position(|n| n == Some(name))
                    .and_then(|i| caps.get(i)),
            };
            group.map_or("", |m| m.as_str())
        }))
    }
}

impl PartialEq for RelabelRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// A group reference that is a decimal number without leading zeros (Go's rule: `$01`
/// and huge numbers are names, not indexes).
fn parse_group_number(name: &str) -> Option<usize> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if name.len() > 1 && name.starts_with('0') {
        return None;
    }
    if name.len() > 8 {
        return None;
    }
    name.parse().ok()
}

/// Go's `Regexp.Expand` template language; `group` resolves a name or number.
fn expand_template<'a>(template: &str, group: impl Fn(&str) -> &'a str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match extract_reference(rest) {
            Some((name, after)) => {
                out.push_str(group(name));
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
    out
}

/// Parses `name`, or `{name}`, at the start of `s`: the reference name and the text after.
fn extract_reference(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let len: usize = body
        .chars()
        .take_while(|c| c.is_alphabetic() || c.is_numeric() || *c == '_')
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let name = &body[..len];
    let after = &body[len..];
    if braced {
        return after.strip_prefix('}').map(|a| (name, a));
    }
    Some((name, after))
}

/// True for a valid (classic) label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// True when `s` is a valid `target_label` of `replace` (or `replacement` of `labelmap`):
/// label-name characters mixed with `$name`/`${name}` references.
fn is_valid_target_template(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let mut first = true;
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('$') {
            let (braced, body) = match after.strip_prefix('{') {
                Some(b) => (true, b),
                None => (false, after),
            };
            let len = body
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            if len == 0 {
                return false;
            }
            rest = &body[len..];
            if braced {
                match rest.strip_prefix('}') {
                    Some(a) => rest = a,
                    None => return false,
                }
            }
        } else {
            let b = rest.as_bytes()[0];
            let ok = if first {
                b.is_ascii_alphabetic() || b == b'_'
            } else {
                b.is_ascii_alphanumeric() || b == b'_'
            };
            if !ok {
                return false;
            }
            rest = &rest[1..];
        }
        first = false;
    }
    true
}

/// One validated relabel rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RelabelConfig {
    /// Labels whose values are joined (with `separator`) as the rule's input.
    pub source_labels: Vec<String>,
    /// Joins the source values.
    pub separator: String,
    /// Anchored regex applied to the joined values (or label names for the label* actions).
    pub regex: RelabelRegex,
    /// Divisor of `hashmod`.
    pub modulus: u64,
    /// Label written by `replace`, `hashmod`, `lowercase`, `uppercase`; compared by
    /// `keepequal`/`dropequal`.
    pub target_label: String,
    /// Template written by `replace` and `labelmap`.
    pub replacement: String,
    /// What the rule does.
    pub action: Action,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        Self {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.to_owned(),
            regex: RelabelRegex::new(DEFAULT_REGEX)
                .unwrap_or_else(|e| unreachable!("the default regex compiles: {e}")),
            modulus: 0,
            target_label: String::new(),
            replacement: DEFAULT_REPLACEMENT.to_owned(),
            action: Action::Replace,
        }
    }
}

/// A YAML scalar read as text (`regex: 0` is the string `"0"`, as in Prometheus).
#[derive(Debug, Clone)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The YAML shape of one rule, before defaults and validation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelabelConfig {
    source_labels: Option<Vec<Text>>,
    separator: Option<Text>,
    regex: Option<Text>,
    modulus: Option<u64>,
    target_label: Option<Text>,
    replacement: Option<Text>,
    action: Option<Text>,
}

impl RawRelabelConfig {
    fn validate(self, index: usize) -> Result<RelabelConfig, RelabelError> {
        let invalid = |field: &'static str, reason: String| RelabelError::Invalid {
            index,
            field,
            reason,
        };
        let action = match self.action.as_ref().map(|t| t.0.as_str()) {
            None => Action::Replace,
            Some("") => return Err(invalid("action", "relabel action cannot be empty".into())),
            Some(a) => Action::parse(a)
                .ok_or_else(|| invalid("action", format!("unknown action {a:?}")))?,
        };
        let source_labels_set = self.source_labels.is_some();
        let source_labels: Vec<String> = self
            .source_labels
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.0)
            .collect();
        if let Some(bad) = source_labels.iter().find(|n| !is_valid_label_name(n)) {
            return Err(invalid(
                "source_labels",
                format!("{bad:?} is not a valid label name"),
            ));
        }
        let separator = self
            .separator
            .map_or_else(|| DEFAULT_SEPARATOR.into(), |t| t.0);
        let regex_text = self.regex.map_or_else(|| DEFAULT_REGEX.into(), |t| t.0);
        let regex = RelabelRegex::new(&regex_text)
            .map_err(|e| invalid("regex", format!("invalid regex {regex_text:?}: {e}")))?;
        let modulus = self.modulus.unwrap_or(0);
        let target_label = self.target_label.map(|t| t.0).unwrap_or_default();
        let replacement = self
            .replacement
            .map_or_else(|| DEFAULT_REPLACEMENT.into(), |t| t.0);

        use Action::*;
        if action == HashMod && modulus == 0 {
            return Err(invalid(
                "modulus",
                "hashmod action requires a non-zero modulus".into(),
            ));
        }
        let writes_target = matches!(
            action,
            Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if writes_target && target_label.is_empty() {
            return Err(invalid(
                "target_label",
                format!("{action} action requires a target_label"),
            ));
        }
        if action == Replace && !is_valid_target_template(&target_label) {
            return Err(invalid(
                "target_label",
                format!("{target_label:?} is invalid for {action} action"),
            ));
        }
        let plain_target = matches!(
            action,
            HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
        );
        if plain_target && !is_valid_label_name(&target_label) {
            return Err(invalid(
                "target_label",
                format!("{target_label:?} is invalid for {action} action"),
            ));
        }
        if matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual)
            && replacement != DEFAULT_REPLACEMENT
        {
            return Err(invalid(
                "replacement",
                format!("replacement cannot be set for {action} action"),
            ));
        }
        if action == LabelMap && !is_valid_target_template(&replacement) {
            return Err(invalid(
                "replacement",
                format!("{replacement:?} is invalid for {action} action"),
            ));
        }
        if matches!(action, KeepEqual | DropEqual)
            && (regex_text != DEFAULT_REGEX || modulus != 0 || separator != DEFAULT_SEPARATOR)
        {
            return Err(invalid(
                "action",
                format!("{action} action requires only source_labels and target_label"),
            ));
        }
        if matches!(action, LabelDrop | LabelKeep)
            && (source_labels_set
                || !target_label.is_empty()
                || modulus != 0
                || separator != DEFAULT_SEPARATOR
                || replacement != DEFAULT_REPLACEMENT)
        {
            return Err(invalid(
                "action",
                format!("{action} action requires only regex"),
            ));
        }
        Ok(RelabelConfig {
            source_labels,
            separator,
            regex,
            modulus,
            target_label,
            replacement,
            action,
        })
    }
}

/// Parses and validates a YAML list of relabel rules. An empty document is an empty list.
pub fn parse_yaml(yaml: &str) -> Result<Vec<RelabelConfig>, RelabelError> {
    if yaml.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: Option<Vec<RawRelabelConfig>> =
        serde_saphyr::from_str(yaml).map_err(|e| RelabelError::Yaml(e.to_string()))?;
    raw.unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.validate(i))
        .collect()
}

/// The MD5-based hash of `hashmod`: the last 8 bytes of MD5(`value`), big-endian.
pub fn hashmod_hash(value: &str) -> u64 {
    let digest = Md5::digest(value.as_bytes());
    let mut last = [0u8; 8];
    last.copy_from_slice(&digest[8..16]);
    u64::from_be_bytes(last)
}

/// Applies `configs` in order to `labels`. `None` means the label set was dropped.
pub fn process(labels: &Labels, configs: &[RelabelConfig]) -> Option<Labels> {
    let mut b = labels.builder();
    for cfg in configs {
        if !apply(cfg, &mut b) {
            return None;
        }
    }
    Some(b.build())
}

/// Applies one rule; false when the label set is dropped.
fn apply(cfg: &RelabelConfig, b: &mut LabelsBuilder) -> bool {
    let value = cfg
        .source_labels
        .iter()
        .map(|n| b.get(n).unwrap_or(""))
        .collect::<Vec<_>>()
        .join(&cfg.separator);
    match cfg.action {
        Action::Drop => return !cfg.regex.is_match(&value),
        Action::Keep => return cfg.regex.is_match(&value),
        Action::DropEqual => return b.get(&cfg.target_label).unwrap_or("") != value,
        Action::KeepEqual => return b.get(&cfg.target_label).unwrap_or("") == value,
        Action::Replace => {
            let Some(target) = cfg.regex.expand(&cfg.target_label, &value) else {
                return true;
            };
            if !is_valid_label_name(&target) {
                return true;
            }
            let res = cfg
                .regex
                .expand(&cfg.replacement, &value)
                .unwrap_or_default();
            if res.is_empty() {
                b.del(&cfg.target_label);
            } else {
                b.set(target, res);
            }
        }
        Action::Lowercase => {
            b.set(cfg.target_label.clone(), value.to_lowercase());
        }
        Action::Uppercase => {
            b.set(cfg.target_label.clone(), value.to_uppercase());
        }
        Action::HashMod => {
            // Validation guarantees a non-zero modulus; guard anyway for hand-built rules.
            let m = hashmod_hash(&value).checked_rem(cfg.modulus).unwrap_or(0);
            b.set(cfg.target_label.clone(), m.to_string());
        }
        Action::LabelMap => {
            for l in snapshot(b) {
                if let Some(name) = cfg.regex.expand(&cfg.replacement, &l.name) {
                    b.set(name, l.value);
                }
            }
        }
        Action::LabelDrop => {
            for l in snapshot(b) {
                if cfg.regex.is_match(&l.name) {
                    b.del(&l.name);
                }
            }
        }
        Action::LabelKeep => {
            for l in snapshot(b) {
                if !cfg.regex.is_match(&l.name) {
                    b.del(&l.name);
                }
            }
        }
    }
    true
}

/// The builder's labels as they are before a rule iterates over them.
fn snapshot(b: &LabelsBuilder) -> Vec<Label> {
    b.build().iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ls(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn one(yaml: &str) -> RelabelConfig {
        let mut v = parse_yaml(yaml).unwrap();
        assert_eq!(v.len(), 1, "{yaml}");
        v.remove(0)
    }

    fn run(yaml: &str, input: &[(&str, &str)]) -> Option<Labels> {
        process(&ls(input), &parse_yaml(yaml).unwrap())
    }

    #[test]
    fn defaults_are_prometheus_defaults() {
        let c = one("- target_label: x");
        assert_eq!(c.action, Action::Replace);
        assert_eq!(c.separator, ";");
        assert_eq!(c.regex.as_str(), "(.*)");
        assert_eq!(c.replacement, "$1");
        assert_eq!(c.modulus, 0);
        assert!(c.source_labels.is_empty());
        assert_eq!(one("- action: KeeP").action, Action::Keep);
        assert!(parse_yaml("").unwrap().is_empty());
        assert!(parse_yaml("[]").unwrap().is_empty());
    }

    #[test]
    fn replace_expands_groups_like_go() {
        let y = r#"
- source_labels: [a, b]
  regex: "(\\w+);(?P<second>\\w+)"
  target_label: out
  replacement: "${1}x-$second-$2y-$$-$"
"#;
        // `$2y` is the (unknown) group "2y": expands to nothing.
        let out = run(y, &[("a", "foo"), ("b", "bar")]).unwrap();
        assert_eq!(out.get("out"), Some("foox-bar--$-$"));
        // No match: nothing happens.
        let out = run(y, &[("a", "foo")]).unwrap();
        assert_eq!(out, ls(&[("a", "foo")]));
    }

    #[test]
    fn replace_with_templated_target_and_empty_result() {
        let y = r#"
- source_labels: [k, v]
  regex: "(.+);(.*)"
  target_label: "dyn_$1"
  replacement: "$2"
"#;
        let out = run(y, &[("k", "zone"), ("v", "eu")]).unwrap();
        assert_eq!(out.get("dyn_zone"), Some("eu"));
        // Expanded target is not a valid label name: no-op.
        let out = run(y, &[("k", "a-b"), ("v", "x")]).unwrap();
        assert_eq!(out.get("dyn_a-b"), None);
        assert_eq!(out.len(), 2);
        // Empty replacement deletes the target as written.
        let y = "- source_labels: [x]\n  regex: '.*'\n  target_label: x\n  replacement: ''";
        assert_eq!(
            run(y, &[("x", "1"), ("y", "2")]).unwrap(),
            ls(&[("y", "2")])
        );
    }

    #[test]
    fn regex_is_fully_anchored_and_dot_matches_newline() {
        let keep = "- source_labels: [a]\n  regex: 'fo+'\n  action: keep";
        assert!(run(keep, &[("a", "foo")]).is_some());
        assert!(run(keep, &[("a", "xfoo")]).is_none());
        assert!(run(keep, &[("a", "foox")]).is_none());
        let keep = "- source_labels: [a]\n  regex: 'a.*'\n  action: keep";
        assert!(run(keep, &[("a", "a\nb")]).is_some());
        // Go's \d is ASCII only.
        let keep = "- source_labels: [a]\n  regex: '\\d+'\n  action: keep";
        assert!(run(keep, &[("a", "42")]).is_some());
        assert!(run(keep, &[("a", "١٢")]).is_none());
    }

    #[test]
    fn keep_and_drop_use_joined_values_with_missing_as_empty() {
        let y = "- source_labels: [a, b]\n  separator: '|'\n  regex: 'x\\|'\n  action: keep";
        assert!(run(y, &[("a", "x")]).is_some());
        assert!(run(y, &[("a", "x"), ("b", "y")]).is_none());
        let y = "- source_labels: [a]\n  regex: ''\n  action: drop";
        assert!(run(y, &[("b", "1")]).is_none());
        assert!(run(y, &[("a", "1")]).is_some());
    }

    #[test]
    fn numeric_regex_scalars_are_text() {
        let c = one("- source_labels: [shard]\n  regex: 0\n  action: keep");
        assert_eq!(c.regex.as_str(), "0");
        assert!(process(&ls(&[("shard", "0")]), std::slice::from_ref(&c)).is_some());
        assert!(process(&ls(&[("shard", "1")]), &[c]).is_none());
    }

    #[test]
    fn keepequal_and_dropequal() {
        let y = "- source_labels: [a]\n  target_label: b\n  action: keepequal";
        assert!(run(y, &[("a", "1"), ("b", "1")]).is_some());
        assert!(run(y, &[("a", "1"), ("b", "2")]).is_none());
        assert!(run(y, &[]).is_some());
        let y = "- source_labels: [a]\n  target_label: b\n  action: dropequal";
        assert!(run(y, &[("a", "1"), ("b", "1")]).is_none());
        assert!(run(y, &[("a", "1"), ("b", "2")]).is_some());
    }

    #[test]
    fn hashmod_matches_md5_vectors() {
        // Computed independently: int.from_bytes(hashlib.md5(s).digest()[8:], "big").
        let vectors: [(&str, u64); 5] = [
            ("", 16_825_458_760_271_544_958),
            ("a", 3_585_878_926_028_121_697),
            ("01ARZ3NDEKTSV4RRFFQ69G5FAV", 8_927_341_293_638_776_300),
            ("foo;bar", 15_973_639_978_189_266_750),
            ("hello", 13_362_634_815_750_784_402),
        ];
        for (s, want) in vectors {
            assert_eq!(hashmod_hash(s), want, "{s:?}");
        }
        let y = "- source_labels: [a, b]\n  target_label: h\n  modulus: 10\n  action: hashmod";
        let out = run(y, &[("a", "foo"), ("b", "bar")]).unwrap();
        assert_eq!(out.get("h"), Some("0"));
        let y = "- source_labels: [a]\n  target_label: h\n  modulus: 3\n  action: hashmod";
        assert_eq!(run(y, &[("a", "hello")]).unwrap().get("h"), Some("1"));
    }

    #[test]
    fn labelmap_labeldrop_labelkeep() {
        let y = "- regex: '__meta_(.+)'\n  action: labelmap";
        let out = run(y, &[("__meta_zone", "eu"), ("job", "a")]).unwrap();
        assert_eq!(
            out,
            ls(&[("__meta_zone", "eu"), ("job", "a"), ("zone", "eu")])
        );
        let y = "- regex: '(j)(o)b'\n  replacement: '${2}x$1'\n  action: labelmap";
        assert_eq!(run(y, &[("job", "a")]).unwrap().get("oxj"), Some("a"));
        let y = "- regex: '__meta_.*'\n  action: labeldrop";
        let out = run(y, &[("__meta_zone", "eu"), ("job", "a")]).unwrap();
        assert_eq!(out, ls(&[("job", "a")]));
        let y = "- regex: 'job|instance'\n  action: labelkeep";
        let out = run(y, &[("__meta_zone", "eu"), ("job", "a"), ("instance", "i")]).unwrap();
        assert_eq!(out, ls(&[("instance", "i"), ("job", "a")]));
    }

    #[test]
    fn lowercase_and_uppercase() {
        let y = "- source_labels: [a, b]\n  target_label: lo\n  action: lowercase\n- source_labels: [a]\n  target_label: up\n  action: uppercase";
        let out = run(y, &[("a", "FoO"), ("b", "ÄB")]).unwrap();
        assert_eq!(out.get("lo"), Some("foo;äb"));
        assert_eq!(out.get("up"), Some("FOO"));
    }

    #[test]
    fn rules_apply_in_order_and_drop_stops() {
        let y = r#"
- source_labels: [__block_id]
  target_label: shard
  modulus: 2
  action: hashmod
- source_labels: [shard]
  regex: 1
  action: keep
- regex: shard
  action: labeldrop
"#;
        let cfgs = parse_yaml(y).unwrap();
        // "a" hashes to an odd value, "" to an even one (see the vectors above).
        let kept = process(&ls(&[("__block_id", "a"), ("r", "x")]), &cfgs).unwrap();
        assert_eq!(kept, ls(&[("__block_id", "a"), ("r", "x")]));
        assert!(process(&ls(&[("r", "x")]), &cfgs).is_none());
    }

    /// The output of Prometheus 2.42 (Debian's `/usr/bin/prometheus`) for these rules as
    /// `metric_relabel_configs` on its own `go_info` series, recorded from its query API.
    #[test]
    fn matches_prometheus_2_42_on_a_recorded_case() {
        let y = r#"
- source_labels: [job, __name__]
  regex: '(\w+);(?P<second>\w+)'
  target_label: out
  replacement: '${1}x-$second-$2y-$$-$'
- source_labels: [instance]
  target_label: h
  modulus: 7
  action: hashmod
- regex: '(ver)sion'
  replacement: '${1}_x'
  action: labelmap
- source_labels: [job, version]
  target_label: lo
  action: lowercase
- source_labels: [out]
  target_label: up
  action: uppercase
- source_labels: [nonexistent]
  target_label: instance
  replacement: '$1'
- source_labels: [job]
  regex: '(c)(1)'
  target_label: 'dyn_$2'
  replacement: '$1x'
- source_labels: [job]
  regex: '(c)(1)'
  target_label: '$2'
  replacement: 'never'
- source_labels: [job]
  target_label: job
  action: keepequal
- source_labels: [__name__]
  regex: 'go_info'
  action: keep
"#;
        let input = [
            ("__name__", "go_info"),
            ("instance", "127.0.0.1:19390"),
            ("job", "c1"),
            ("version", "go1.19.8"),
        ];
        let want = ls(&[
            ("__name__", "go_info"),
            ("h", "0"),
            ("job", "c1"),
            ("lo", "c1;go1.19.8"),
            ("out", "c1x-go_info--$-$"),
            ("up", "C1X-GO_INFO--$-$"),
            ("ver_x", "go1.19.8"),
            ("version", "go1.19.8"),
        ]);
        assert_eq!(run(y, &input), Some(want));
        // Prometheus refuses `target_label: 'bad-$1'` for replace at load time; so do we.
        let bad = "- source_labels: [job]\n  target_label: 'bad-$1'";
        assert!(matches!(
            parse_yaml(bad),
            Err(RelabelError::Invalid {
                field: "target_label",
                ..
            })
        ));
    }

    #[test]
    fn validation_names_field_and_index() {
        let cases: &[(&str, &str)] = &[
            ("- action: hashmod\n  target_label: t", "modulus"),
            ("- action: replace", "target_label"),
            ("- action: replace\n  target_label: '1x'", "target_label"),
            (
                "- action: hashmod\n  modulus: 2\n  target_label: '$1'",
                "target_label",
            ),
            (
                "- action: lowercase\n  target_label: x\n  replacement: y",
                "replacement",
            ),
            ("- action: labelmap\n  replacement: 'a-b'", "replacement"),
            (
                "- action: keepequal\n  target_label: x\n  regex: a",
                "action",
            ),
            ("- action: labeldrop\n  source_labels: [a]", "action"),
            ("- action: labelkeep\n  target_label: a", "action"),
            ("- action: explode", "action"),
            ("- action: ''", "action"),
            ("- action: keep\n  regex: '('", "regex"),
            ("- action: keep\n  source_labels: ['a-b']", "source_labels"),
        ];
        for (yaml, field) in cases {
            let y = format!("- action: keep\n{yaml}");
            match parse_yaml(&y) {
                Err(RelabelError::Invalid {
                    index, field: f, ..
                }) => {
                    assert_eq!(index, 1, "{y}");
                    assert_eq!(f, *field, "{y}");
                }
                other => panic!("{y}: {other:?}"),
            }
        }
        let err = parse_yaml("- action: keep\n  bogus: 1").unwrap_err();
        assert!(matches!(err, RelabelError::Yaml(_)), "{err}");
        assert!(err.to_string().contains("bogus"), "{err}");
        let err = parse_yaml("- action: hashmod\n  target_label: t").unwrap_err();
        assert_eq!(
            err.to_string(),
            "relabel config #0: modulus: hashmod action requires a non-zero modulus"
        );
    }

    #[test]
    fn expand_template_edge_cases() {
        let g = |n: &str| match n {
            "1" => "one",
            "name" => "N",
            _ => "",
        };
        assert_eq!(expand_template("$1", g), "one");
        assert_eq!(expand_template("${1}x", g), "onex");
        assert_eq!(expand_template("$1x", g), "");
        assert_eq!(expand_template("a$", g), "a$");
        assert_eq!(expand_template("${1", g), "${1");
        assert_eq!(expand_template("$-", g), "$-");
        assert_eq!(expand_template("$$1", g), "$1");
        assert_eq!(expand_template("<$name>", g), "<N>");
        assert_eq!(parse_group_number("01"), None);
        assert_eq!(parse_group_number("10"), Some(10));
    }

    fn label_set() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(
            (
                prop::sample::select(vec!["a", "b", "job", "__block_id"]),
                "[a-c0-2]{0,3}",
            ),
            0..4,
        )
        .prop_map(|v| v.into_iter().map(|(n, val)| (n.to_owned(), val)).collect())
    }

    proptest! {
        #[test]
        fn keep_and_drop_are_complements(
            pairs in label_set(),
            regex in prop::sample::select(vec!["a.*", "", "(a|b)1", ".+", "[0-2]*;.*", "c"]),
            sources in prop::collection::vec(prop::sample::select(vec!["a", "b", "job"]), 1..3),
        ) {
            let labels = Labels::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            let mk = |action: Action| RelabelConfig {
                source_labels: sources.iter().map(|s| s.to_string()).collect(),
                regex: RelabelRegex::new(regex).unwrap(),
                action,
                ..RelabelConfig::default()
            };
            let kept = process(&labels, &[mk(Action::Keep)]);
            let dropped = process(&labels, &[mk(Action::Drop)]);
            prop_assert_eq!(kept.is_some(), dropped.is_none());
            if let Some(k) = kept {
                prop_assert_eq!(k, labels.clone());
            }
            if let Some(d) = dropped {
                prop_assert_eq!(d, labels);
            }
        }
    }
}
