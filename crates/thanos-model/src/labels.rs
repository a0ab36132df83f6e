//! Label sets: sorted, validated, cheap to clone and compare.
//!
//! Mirrors Prometheus's `model/labels` package. A [`Labels`] value is an immutable,
//! reference-counted slice of [`Label`]s sorted by name with unique names, so cloning is a
//! pointer copy and equality/ordering are slice comparisons.

use std::fmt;
use std::sync::Arc;

use bytes::{Buf, BufMut};
use compact_str::CompactString;
use prost::DecodeError;
use prost::encoding::{self, DecodeContext, WireType};
use xxhash_rust::xxh64::Xxh64;

use crate::error::ModelError;

/// The reserved label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Separator byte used when hashing label sets (never valid inside UTF-8 text).
pub const HASH_SEP: u8 = 0xff;
/// Label sets whose hashed form fits in this many bytes are hashed in one pass.
const STACK_HASH_BYTES: usize = 512;

/// One label: a name and a value.
///
/// Both are [`CompactString`]s: up to 24 bytes are stored inline (in the space a `String`
/// takes), so the common short names and values cost no allocation to create or clone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Label {
    /// Label name.
    pub name: CompactString,
    /// Label value.
    pub value: CompactString,
}

impl Label {
    /// Creates a label from a name and a value.
    pub fn new(name: impl Into<CompactString>, value: impl Into<CompactString>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// `Label` is also the StoreAPI's `thanos.Label` message (`string name = 1; string value
/// = 2;`): the types generated in `thanos-proto` hold it directly, so label sets move
/// between the model and the wire without copying their strings.
impl prost::Message for Label {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for (tag, s) in [(1, &self.name), (2, &self.value)] {
            if !s.is_empty() {
                encoding::encode_key(tag, WireType::LengthDelimited, buf);
                encoding::encode_varint(s.len() as u64, buf);
                buf.put_slice(s.as_bytes());
            }
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let (field, name) = match tag {
            1 => (&mut self.name, "name"),
            2 => (&mut self.value, "value"),
            _ => return encoding::skip_field(wire_type, tag, buf, ctx),
        };
        // Decoded through prost's own string rules (wire type, length, UTF-8), then
        // stored inline when short.
        let mut s = String::new();
        encoding::string::merge(wire_type, &mut s, buf, ctx).map_err(|mut e| {
            e.push("Label", name);
            e
        })?;
        *field = CompactString::from(s);
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        [&self.name, &self.value]
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|s| 1 + encoding::encoded_len_varint(s.len() as u64) + s.len())
            .sum()
    }

    fn clear(&mut self) {
        self.name.clear();
        self.value.clear();
    }
}

/// An immutable label set, sorted by name, names unique.
///
/// Ordering compares label by label (name, then value), then by length, which is the
/// order Prometheus and the StoreAPI use to sort series.
///
/// Clones share one allocation. A set may view a suffix of a shared allocation: dropping
/// the leading labels (nearly always just `__name__`, which sorts first, as every function
/// and most operators do) allocates and copies nothing.
#[derive(Clone, Default)]
pub struct Labels {
    set: Arc<[Label]>,
    /// Leading labels of `set` that are not part of this set.
    skip: u32,
}

impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        // Handles of one set (merges compare a set with its own clone) are equal without
        // comparing strings.
        self.same_handle(other) || self.as_slice() == other.as_slice()
    }
}

impl Eq for Labels {}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self.same_handle(other) {
            return std::cmp::Ordering::Equal;
        }
        self.as_slice().cmp(other.as_slice())
    }
}

impl Labels {
    fn wrap(labels: impl Into<Arc<[Label]>>) -> Self {
        Self {
            set: labels.into(),
            skip: 0,
        }
    }

    fn same_handle(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.set, &other.set) && self.skip == other.skip
    }

    /// The empty label set.
    pub fn empty() -> Self {
        Self::wrap(Vec::new())
    }

    /// Builds a validated label set: sorts by name and rejects empty names, duplicate
    /// names and empty values (an empty value means "label absent" in Prometheus, so such
    /// labels are dropped instead of rejected).
    pub fn new(mut labels: Vec<Label>) -> Result<Self, ModelError> {
        labels.retain(|l| !l.value.is_empty());
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        for w in labels.windows(2) {
            if w[0].name == w[1].name {
                return Err(ModelError::DuplicateLabelName(w[0].name.to_string()));
            }
        }
        if labels.iter().any(|l| l.name.is_empty()) {
            return Err(ModelError::EmptyLabelName);
        }
        Ok(Self::wrap(labels))
    }

    /// Wraps labels the caller guarantees are sorted by name with unique names.
    ///
    /// Use only for data that was validated already (decoded from a block index, produced
    /// by a builder); `debug_assert`s check the invariant in debug builds.
    pub fn from_sorted_unchecked(labels: impl Into<Arc<[Label]>>) -> Self {
        let labels = Self::wrap(labels);
        debug_assert!(labels.set.windows(2).all(|w| w[0].name < w[1].name));
        labels
    }

    /// Convenience constructor from `(name, value)` pairs, for literals and tests: sorts by
    /// name; on duplicate names the last pair wins; empty values are dropped.
    pub fn from_pairs<N, V, I>(pairs: I) -> Self
    where
        N: Into<CompactString>,
        V: Into<CompactString>,
        I: IntoIterator<Item = (N, V)>,
    {
        let mut b = LabelsBuilder::default();
        for (n, v) in pairs {
            b.set(n, v);
        }
        b.build()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// The labels as a sorted slice.
    pub fn as_slice(&self) -> &[Label] {
        &self.set[self.skip as usize..]
    }

    /// The labels in name order as a vector; their strings are moved out, not copied,
    /// when no other handle shares this set.
    pub fn into_vec(mut self) -> Vec<Label> {
        let skip = self.skip as usize;
        match Arc::get_mut(&mut self.set) {
            Some(labels) => labels[skip..].iter_mut().map(std::mem::take).collect(),
            None => self.as_slice().to_vec(),
        }
    }

    /// Iterates the labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.as_slice().iter()
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        let labels = self.as_slice();
        labels
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| labels[i].value.as_str())
    }

    /// True when label `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The metric name (`__name__`), if present.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// These labels without those named in `names`; a handle to the same set when none
    /// of them is present, and to the same allocation when the dropped labels lead the set
    /// (as `__name__` does). Otherwise only the kept labels are copied.
    pub fn without(&self, names: &[&str]) -> Labels {
        let labels = self.as_slice();
        let dropped = |l: &Label| names.contains(&l.name.as_str());
        let leading = labels.iter().take_while(|l| dropped(l)).count();
        if !labels[leading..].iter().any(dropped) {
            let mut out = self.clone();
            // `leading` is at most the set's length, which `skip` already counts within
            out.skip += leading as u32;
            return out;
        }
        Self::wrap(
            labels
                .iter()
                .filter(|l| !dropped(l))
                .cloned()
                .collect::<Arc<[Label]>>(),
        )
    }

    /// Only the labels named in `names`; a handle to the same set when all are kept.
    pub fn keep(&self, names: &[&str]) -> Labels {
        let kept = |l: &Label| names.contains(&l.name.as_str());
        if self.iter().all(kept) {
            return self.clone();
        }
        Self::wrap(
            self.iter()
                .filter(|l| kept(l))
                .cloned()
                .collect::<Arc<[Label]>>(),
        )
    }

    /// A builder initialised with these labels, to derive a modified set.
    pub fn builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.as_slice().to_vec(),
        }
    }

    /// Prometheus's `Labels.Hash()`: xxhash64 (seed 0) over `name 0xff value 0xff` for
    /// every label in order. Stable across processes and releases.
    pub fn stable_hash(&self) -> u64 {
        // Label sets of up to a few hundred bytes (nearly all) are laid out in a stack
        // buffer and hashed in one pass, which is several times faster than four streaming
        // updates per label; larger ones are streamed.
        let mut buf = [0u8; STACK_HASH_BYTES];
        let mut len = 0;
        for l in self.iter() {
            let (name, value) = (l.name.as_bytes(), l.value.as_bytes());
            let end = len + name.len() + value.len() + 2;
            if end > buf.len() {
                let mut h = Xxh64::new(0);
                self.hash_into(&mut h);
                return h.digest();
            }
            buf[len..len + name.len()].copy_from_slice(name);
            len += name.len();
            buf[len] = HASH_SEP;
            buf[len + 1..end - 1].copy_from_slice(value);
            buf[end - 1] = HASH_SEP;
            len = end;
        }
        xxhash_rust::xxh64::xxh64(&buf[..len], 0)
    }

    /// Thanos receive's routing hash (`HashWithPrefix`): xxhash64 (seed 0) over
    /// `prefix 0xff` followed by `name 0xff value 0xff` for every label.
    pub fn hash_with_prefix(&self, prefix: &str) -> u64 {
        let mut h = Xxh64::new(0);
        h.update(prefix.as_bytes());
        h.update(&[HASH_SEP]);
        self.hash_into(&mut h);
        h.digest()
    }

    fn hash_into(&self, h: &mut Xxh64) {
        for l in self.iter() {
            h.update(l.name.as_bytes());
            h.update(&[HASH_SEP]);
            h.update(l.value.as_bytes());
            h.update(&[HASH_SEP]);
        }
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Formats as Prometheus does: `{a="1", b="2"}` with Go-style escaping of values.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
        }
        f.write_str("}")
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Builds or modifies a label set; the result is always sorted with unique names.
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    /// Sets `name` to `value`, replacing an existing value; an empty value deletes the label.
    pub fn set(
        &mut self,
        name: impl Into<CompactString>,
        value: impl Into<CompactString>,
    ) -> &mut Self {
        let name = name.into();
        let value = value.into();
        match self.labels.iter().position(|l| l.name == name) {
            Some(i) if value.is_empty() => {
                self.labels.remove(i);
            }
            Some(i) => self.labels[i].value = value,
            None if value.is_empty() => {}
            None => self.labels.push(Label { name, value }),
        }
        self
    }

    /// Removes label `name` if present.
    pub fn del(&mut self, name: &str) -> &mut Self {
        self.labels.retain(|l| l.name != name);
        self
    }

    /// Keeps only the labels whose names are in `names`.
    pub fn keep(&mut self, names: &[&str]) -> &mut Self {
        self.labels.retain(|l| names.contains(&l.name.as_str()));
        self
    }

    /// The value currently set for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }

    /// Finishes the label set.
    pub fn build(&self) -> Labels {
        let mut labels = self.labels.clone();
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Labels::wrap(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_leading_labels_shares_the_set() {
        let full = Labels::from_pairs([("__name__", "up"), ("job", "a"), ("pod", "p")]);
        let plain = Labels::from_pairs([("job", "a"), ("pod", "p")]);
        let dropped = full.without(&[METRIC_NAME]);
        assert!(Arc::ptr_eq(&dropped.set, &full.set));
        assert_eq!(dropped, plain);
        assert_eq!(dropped.cmp(&plain), std::cmp::Ordering::Equal);
        assert_eq!(dropped.stable_hash(), plain.stable_hash());
        let h = |l: &Labels| {
            use std::hash::{BuildHasher, BuildHasherDefault};
            BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(l)
        };
        assert_eq!(h(&dropped), h(&plain));
        assert_eq!(dropped.len(), 2);
        assert_eq!(dropped.get("job"), Some("a"));
        assert_eq!(dropped.get(METRIC_NAME), None);
        assert_eq!(dropped.to_string(), plain.to_string());
        // a view of a view; a set that differs only in the dropped label is not equal
        let none = dropped.without(&["job", "pod"]);
        assert!(none.is_empty() && Arc::ptr_eq(&none.set, &full.set));
        assert_ne!(dropped, full);
        assert!(dropped > full, "{dropped} sorts after {full}");
        // the same allocation with another skip is another handle
        assert_ne!(full.without(&["__name__"]), full);
        assert_eq!(dropped.clone().into_vec(), plain.clone().into_vec());
        drop(full);
        assert_eq!(dropped.into_vec(), plain.into_vec());
    }

    #[test]
    fn dropping_inner_labels_copies_the_kept_ones() {
        let full = Labels::from_pairs([("__name__", "up"), ("job", "a"), ("pod", "p")]);
        let dropped = full.without(&["job"]);
        assert!(!Arc::ptr_eq(&dropped.set, &full.set));
        assert_eq!(
            dropped,
            Labels::from_pairs([("__name__", "up"), ("pod", "p")])
        );
        let both = full.without(&["__name__", "pod"]);
        assert_eq!(both, Labels::from_pairs([("job", "a")]));
        assert!(Arc::ptr_eq(&full.without(&["x"]).set, &full.set));
    }

    #[test]
    fn without_drops_named_labels_and_shares_unchanged_sets() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "api"), ("a", "1")]);
        let w = l.without(&["__name__", "__type__"]);
        assert_eq!(w, Labels::from_pairs([("job", "api"), ("a", "1")]));
        let same = w.without(&["__name__"]);
        assert!(Arc::ptr_eq(&same.set, &w.set));
        assert_eq!(l.keep(&["job", "x"]), Labels::from_pairs([("job", "api")]));
        assert!(Arc::ptr_eq(&w.keep(&["a", "job"]).set, &w.set));
        assert!(l.keep(&[]).is_empty());
    }

    #[test]
    fn new_sorts_and_validates() {
        let l = Labels::new(vec![Label::new("b", "2"), Label::new("a", "1")]).unwrap();
        assert_eq!(l.as_slice()[0].name, "a");
        assert_eq!(l.get("b"), Some("2"));
        assert_eq!(l.get("c"), None);
        assert!(matches!(
            Labels::new(vec![Label::new("a", "1"), Label::new("a", "2")]),
            Err(ModelError::DuplicateLabelName(n)) if n == "a"
        ));
        assert!(matches!(
            Labels::new(vec![Label::new("", "1")]),
            Err(ModelError::EmptyLabelName)
        ));
        let dropped = Labels::new(vec![Label::new("a", ""), Label::new("b", "1")]).unwrap();
        assert_eq!(dropped.len(), 1);
    }

    #[test]
    fn display_and_order() {
        let a = Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]);
        assert_eq!(a.to_string(), r#"{__name__="up", job="a\"b"}"#);
        let b = Labels::from_pairs([("__name__", "up"), ("job", "b")]);
        assert!(a < b);
        let shorter = Labels::from_pairs([("__name__", "up")]);
        assert!(shorter < a);
        assert_eq!(a.metric_name(), Some("up"));
    }

    #[test]
    fn builder_set_del_keep() {
        let base = Labels::from_pairs([("a", "1"), ("b", "2"), ("c", "3")]);
        let mut b = base.builder();
        b.set("d", "4").del("a").set("b", "");
        assert_eq!(b.build(), Labels::from_pairs([("c", "3"), ("d", "4")]));
        let mut k = base.builder();
        k.keep(&["a", "c"]);
        assert_eq!(k.build(), Labels::from_pairs([("a", "1"), ("c", "3")]));
    }

    #[test]
    fn hashes_match_reference_construction() {
        let l = Labels::from_pairs([("a", "1"), ("b", "2")]);
        let expected = xxhash_rust::xxh64::xxh64(b"a\xff1\xffb\xff2\xff", 0);
        assert_eq!(l.stable_hash(), expected);
        let expected = xxhash_rust::xxh64::xxh64(b"tenant\xffa\xff1\xffb\xff2\xff", 0);
        assert_eq!(l.hash_with_prefix("tenant"), expected);
        assert_eq!(
            Labels::empty().stable_hash(),
            xxhash_rust::xxh64::xxh64(b"", 0)
        );
        // Both sides of the stack-buffer limit hash the same bytes the same way.
        for len in [
            STACK_HASH_BYTES - 3,
            STACK_HASH_BYTES - 2,
            STACK_HASH_BYTES * 3,
        ] {
            let value = "v".repeat(len);
            let l = Labels::from_pairs([("n", value.as_str())]);
            let bytes = [b"n\xff".as_slice(), value.as_bytes(), b"\xff"].concat();
            let expected = xxhash_rust::xxh64::xxh64(&bytes, 0);
            assert_eq!(l.stable_hash(), expected, "value of {len} bytes");
        }
    }

    #[test]
    fn into_vec_moves_unshared_labels_and_copies_shared_ones() {
        // Names longer than the inline capacity, so that they live on the heap and a
        // move keeps their address.
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let labels = Labels::from_pairs([(b.as_str(), "2"), (a.as_str(), "1")]);
        let shared = labels.clone();
        let copied = labels.into_vec();
        assert_eq!(copied, shared.as_slice());
        let name_ptr = shared.as_slice()[0].name.as_ptr();
        let moved = shared.into_vec();
        assert_eq!(moved, [Label::new(a, "1"), Label::new(b, "2")]);
        assert_eq!(
            moved[0].name.as_ptr(),
            name_ptr,
            "the unshared string was copied"
        );
    }

    #[test]
    fn label_is_the_wire_message() {
        use prost::Message;
        // Short strings are stored inline, long ones on the heap; both encode as prost's
        // generated `string` fields would.
        for (name, value) in [("job", "api"), ("n", "v".repeat(300).as_str()), ("", "")] {
            let l = Label::new(name, value);
            let bytes = l.encode_to_vec();
            let mut expected = Vec::new();
            for (tag, s) in [(1u8, name), (2, value)] {
                if !s.is_empty() {
                    expected.push(tag << 3 | 2);
                    encoding::encode_varint(s.len() as u64, &mut expected);
                    expected.extend_from_slice(s.as_bytes());
                }
            }
            assert_eq!(bytes, expected);
            assert_eq!(l.encoded_len(), bytes.len());
            assert_eq!(Label::decode(bytes.as_slice()).unwrap(), l);
        }
        // Unknown fields are skipped; invalid UTF-8 and a wrong wire type are errors.
        assert_eq!(
            Label::decode([0x0a, 1, b'a', 0x18, 7, 0x12, 1, b'b'].as_slice()).unwrap(),
            Label::new("a", "b")
        );
        let err = Label::decode([0x0a, 1, 0xff].as_slice()).unwrap_err();
        assert!(err.to_string().contains("Label.name"), "{err}");
        assert!(Label::decode([0x08, 1].as_slice()).is_err());
    }
}
