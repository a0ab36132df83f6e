//! The index cache (Thanos's `pkg/store/cache`): its YAML configuration
//! (`--index-cache.config`) and the IN-MEMORY implementation, one size-bounded LRU shared
//! by decoded postings lists (item type `Postings`) and raw series entries (`Series`).
//!
//! Only `type: IN-MEMORY` is implemented; `MEMCACHED` and `REDIS` configurations are
//! refused with an error naming the type rather than silently replaced by a local cache.
//! `ExpandedPostings` is accepted in `enabled_items` (Thanos enables it by default) but
//! this store has no expanded-postings cache, so it has no effect.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use serde::Deserialize;
use ulid::Ulid;

/// Thanos's default `max_size` (250MB).
pub const DEFAULT_MAX_SIZE: u64 = 250 * 1024 * 1024;
/// Thanos's default `max_item_size` (125MB).
pub const DEFAULT_MAX_ITEM_SIZE: u64 = 125 * 1024 * 1024;

/// Per-entry bookkeeping overhead counted against the size budget.
const ENTRY_OVERHEAD: u64 = 64;

/// Kinds of items an index cache can hold (`enabled_items`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemType {
    /// Postings lists of one label pair.
    Postings,
    /// Series entries (labels and chunk references) by series reference.
    Series,
    /// Postings expanded for a whole matcher set (accepted, not cached by this store).
    ExpandedPostings,
}

impl ItemType {
    /// The name used in configuration and in the `item_type` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemType::Postings => "Postings",
            ItemType::Series => "Series",
            ItemType::ExpandedPostings => "ExpandedPostings",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            ItemType::Postings,
            ItemType::Series,
            ItemType::ExpandedPostings,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

impl fmt::Display for ItemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of `--index-cache.config`.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexCacheConfigError {
    /// The YAML does not parse.
    #[error("index cache config is not valid YAML: {0}")]
    Yaml(String),
    /// A known cache type that this store does not implement.
    #[error("index cache type {0} is not supported by this store gateway (only IN-MEMORY is)")]
    Unsupported(String),
    /// An unknown cache type.
    #[error("index cache with type {0:?} is not supported")]
    UnknownType(String),
    /// A field has an invalid value.
    #[error("index cache config: {field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Settings of the IN-MEMORY index cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexCacheConfig {
    /// Budget of the whole cache in bytes (`max_size`, default 250MB).
    pub max_size: u64,
    /// Items larger than this are not cached (`max_item_size`, default 125MB).
    pub max_item_size: u64,
    /// Item types cached (`enabled_items`; empty in the YAML means all).
    pub enabled_items: Vec<ItemType>,
}

impl Default for IndexCacheConfig {
    fn default() -> Self {
        Self::with_size(DEFAULT_MAX_SIZE)
    }
}

impl IndexCacheConfig {
    /// The cache `--index-cache-size` configures: `max_size` bytes, every item type, and
    /// the default `max_item_size` capped at `max_size`.
    pub fn with_size(max_size: u64) -> Self {
        Self {
            max_size,
            max_item_size: DEFAULT_MAX_ITEM_SIZE.min(max_size),
            enabled_items: vec![
                ItemType::Postings,
                ItemType::Series,
                ItemType::ExpandedPostings,
            ],
        }
    }

    /// Whether items of `t` are cached.
    pub fn enabled(&self, t: ItemType) -> bool {
        self.enabled_items.contains(&t)
    }

    /// Parses `--index-cache.config(-file)` YAML:
    ///
    /// ```yaml
    /// type: IN-MEMORY        # MEMCACHED and REDIS are refused
    /// config:
    ///   max_size: 250MB
    ///   max_item_size: 125MB
    ///   enabled_items: [Postings, Series]   # also accepted at the top level
    /// ```
    pub fn from_yaml(yaml: &str) -> Result<Self, IndexCacheConfigError> {
        let raw: RawConfig =
            serde_saphyr::from_str(yaml).map_err(|e| IndexCacheConfigError::Yaml(e.to_string()))?;
        match raw.cache_type.to_uppercase().as_str() {
            "IN-MEMORY" => {}
            "MEMCACHED" | "REDIS" => {
                return Err(IndexCacheConfigError::Unsupported(
                    raw.cache_type.to_uppercase(),
                ));
            }
            _ => return Err(IndexCacheConfigError::UnknownType(raw.cache_type)),
        }
        let inner = raw.config.unwrap_or_default();
        let size = |field: &'static str, v: Option<SizeText>, default: u64| match v {
            None => Ok(default),
            Some(SizeText(t)) => {
                thanos_server::parse_bytes(&t).map_err(|e| IndexCacheConfigError::Invalid {
                    field,
                    reason: e.to_string(),
                })
            }
        };
        let max_size = size("max_size", inner.max_size, DEFAULT_MAX_SIZE)?;
        let max_item_size = size("max_item_size", inner.max_item_size, DEFAULT_MAX_ITEM_SIZE)?;
        if max_item_size > max_size {
            return Err(IndexCacheConfigError::Invalid {
                field: "max_item_size",
                reason: format!(
                    "max item size ({max_item_size}) cannot be bigger than overall cache size \
                     ({max_size}); set max_item_size (default 125MB) to at most max_size"
                ),
            });
        }
        let names = match raw.enabled_items {
            Some(v) if !v.is_empty() => v,
            _ => inner.enabled_items.unwrap_or_default(),
        };
        let enabled_items = if names.is_empty() {
            Self::with_size(max_size).enabled_items
        } else {
            names
                .iter()
                .map(|n| {
                    ItemType::parse(n).ok_or_else(|| IndexCacheConfigError::Invalid {
                        field: "enabled_items",
                        reason: format!("unsupported item type {n}"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        Ok(Self {
            max_size,
            max_item_size,
            enabled_items,
        })
    }
}

/// A byte size written as a string (`250MB`) or a bare number.
#[derive(Debug)]
struct SizeText(String);

impl<'de> Deserialize<'de> for SizeText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SizeText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size such as 250MB")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SizeText, E> {
                Ok(SizeText(v.to_owned()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SizeText, E> {
                Ok(SizeText(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SizeText, E> {
                Ok(SizeText(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "type")]
    cache_type: String,
    /// Backend settings; other backends' fields are not validated since they are refused.
    #[serde(default)]
    config: Option<RawInMemory>,
    #[serde(default)]
    enabled_items: Option<Vec<String>>,
    /// Only meaningful for remote caches; accepted for compatibility.
    #[serde(rename = "ttl", default)]
    _ttl: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
struct RawInMemory {
    max_size: Option<SizeText>,
    max_item_size: Option<SizeText>,
    enabled_items: Option<Vec<String>>,
}

/// Cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Postings(Ulid, String, String),
    Series(Ulid, u64),
}

impl Key {
    fn block(&self) -> Ulid {
        match self {
            Key::Postings(b, ..) | Key::Series(b, _) => *b,
        }
    }

    fn item_type(&self) -> ItemType {
        match self {
            Key::Postings(..) => ItemType::Postings,
            Key::Series(..) => ItemType::Series,
        }
    }

    fn size(&self) -> u64 {
        match self {
            Key::Postings(_, n, v) => (16 + n.len() + v.len()) as u64,
            Key::Series(..) => 24,
        }
    }
}

#[derive(Debug, Clone)]
enum Value {
    Postings(Arc<Vec<u64>>),
    Series(Bytes),
}

impl Value {
    fn size(&self) -> u64 {
        match self {
            Value::Postings(p) => 8 * p.len() as u64,
            Value::Series(b) => b.len() as u64,
        }
    }
}

#[derive(Debug)]
struct Entry {
    value: Value,
    tick: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    /// Access tick → key; the smallest tick is the least recently used entry.
    order: BTreeMap<u64, Key>,
    tick: u64,
    size: u64,
}

/// Metric handles of the index cache (Thanos's names).
#[derive(Debug, Clone)]
struct CacheMetrics {
    requests: IntCounterVec,
    hits: IntCounterVec,
    added: IntCounterVec,
    evicted: IntCounterVec,
    overflowed: IntCounterVec,
    items: IntGaugeVec,
    items_size: IntGaugeVec,
    total_size: IntGaugeVec,
}

impl CacheMetrics {
    fn new(registry: &Registry, cfg: &IndexCacheConfig) -> prometheus::Result<Self> {
        let counter =
            |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), &["item_type"]);
        let gauge =
            |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &["item_type"]);
        let m = Self {
            requests: counter(
                "thanos_store_index_cache_requests_total",
                "Total number of requests to the cache.",
            )?,
            hits: counter(
                "thanos_store_index_cache_hits_total",
                "Total number of requests to the cache that were a hit.",
            )?,
            added: counter(
                "thanos_store_index_cache_items_added_total",
                "Total number of items that were added to the index cache.",
            )?,
            evicted: counter(
                "thanos_store_index_cache_items_evicted_total",
                "Total number of items that were evicted from the index cache.",
            )?,
            overflowed: counter(
                "thanos_store_index_cache_items_overflowed_total",
                "Total number of items that could not be added to the cache due to being too big.",
            )?,
            items: gauge(
                "thanos_store_index_cache_items",
                "Current number of items in the index cache.",
            )?,
            items_size: gauge(
                "thanos_store_index_cache_items_size_bytes",
                "Current byte size of items in the index cache.",
            )?,
            total_size: gauge(
                "thanos_store_index_cache_total_size_bytes",
                "Current byte size of items (both value and key) in the index cache.",
            )?,
        };
        let max_size = IntGauge::new(
            "thanos_store_index_cache_max_size_bytes",
            "Maximum number of bytes to be held in the index cache.",
        )?;
        max_size.set(i64::try_from(cfg.max_size).unwrap_or(i64::MAX));
        let max_item = IntGauge::new(
            "thanos_store_index_cache_max_item_size_bytes",
            "Maximum number of bytes for single entry to be held in the index cache.",
        )?;
        max_item.set(i64::try_from(cfg.max_item_size).unwrap_or(i64::MAX));
        for t in [ItemType::Postings, ItemType::Series] {
            let l = [t.as_str()];
            m.requests.with_label_values(&l);
            m.hits.with_label_values(&l);
            m.added.with_label_values(&l);
            m.evicted.with_label_values(&l);
            m.overflowed.with_label_values(&l);
            m.items.with_label_values(&l);
            m.items_size.with_label_values(&l);
            m.total_size.with_label_values(&l);
        }
        for c in [&m.requests, &m.hits, &m.added, &m.evicted, &m.overflowed] {
            registry.register(Box::new(c.clone()))?;
        }
        for g in [&m.items, &m.items_size, &m.total_size] {
            registry.register(Box::new(g.clone()))?;
        }
        registry.register(Box::new(max_size))?;
        registry.register(Box::new(max_item))?;
        Ok(m)
    }

    fn account(&self, key: &Key, value: &Value, sign: i64) {
        let l = [key.item_type().as_str()];
        let v = i64::try_from(value.size()).unwrap_or(i64::MAX);
        let total = i64::try_from(entry_size(key, value)).unwrap_or(i64::MAX);
        self.items.with_label_values(&l).add(sign);
        self.items_size.with_label_values(&l).add(sign * v);
        self.total_size.with_label_values(&l).add(sign * total);
    }
}

fn entry_size(key: &Key, value: &Value) -> u64 {
    key.size() + value.size() + ENTRY_OVERHEAD
}

/// The IN-MEMORY index cache: one LRU bounded by `max_size` bytes (keys, values and a
/// fixed per-entry overhead are counted) shared by every enabled item type.
#[derive(Debug)]
pub struct IndexCache {
    cfg: IndexCacheConfig,
    inner: Mutex<Inner>,
    metrics: CacheMetrics,
}

impl IndexCache {
    /// A cache configured by `cfg`; registers `thanos_store_index_cache_*` on `registry`.
    pub fn new(cfg: IndexCacheConfig, registry: &Registry) -> prometheus::Result<Self> {
        let metrics = CacheMetrics::new(registry, &cfg)?;
        Ok(Self {
            cfg,
            inner: Mutex::new(Inner::default()),
            metrics,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &IndexCacheConfig {
        &self.cfg
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters for a cache; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: Key) -> Option<Value> {
        self.get_many(key.item_type(), std::iter::once(key))
            .pop()
            .flatten()
    }

    /// Looks up `keys` (all of item type `t`) under one lock, refreshing their recency.
    fn get_many(
        &self,
        t: ItemType,
        keys: impl ExactSizeIterator<Item = Key>,
    ) -> Vec<Option<Value>> {
        if !self.cfg.enabled(t) {
            return keys.map(|_| None).collect();
        }
        let mut out = Vec::with_capacity(keys.len());
        let mut hits = 0u64;
        {
            let mut g = self.lock();
            let inner = &mut *g;
            for key in keys {
                inner.tick += 1;
                let tick = inner.tick;
                let Some(entry) = inner.entries.get_mut(&key) else {
                    out.push(None);
                    continue;
                };
                let value = entry.value.clone();
                let old = std::mem::replace(&mut entry.tick, tick);
                inner.order.remove(&old);
                inner.order.insert(tick, key);
                hits += 1;
                out.push(Some(value));
            }
        }
        let l = [t.as_str()];
        self.metrics
            .requests
            .with_label_values(&l)
            .inc_by(out.len() as u64);
        self.metrics.hits.with_label_values(&l).inc_by(hits);
        out
    }

    fn put(&self, key: Key, value: Value) {
        self.put_many(key.item_type(), std::iter::once((key, value)));
    }

    /// Stores `items` (all of item type `t`) under one lock, evicting least recently used
    /// entries to stay within the budget.
    fn put_many(&self, t: ItemType, items: impl Iterator<Item = (Key, Value)>) {
        if !self.cfg.enabled(t) {
            return;
        }
        let mut g = self.lock();
        let inner = &mut *g;
        for (key, value) in items {
            let size = entry_size(&key, &value);
            if size > self.cfg.max_item_size || size > self.cfg.max_size {
                self.metrics
                    .overflowed
                    .with_label_values(&[t.as_str()])
                    .inc();
                continue;
            }
            if let Some(old) = inner.entries.remove(&key) {
                inner.order.remove(&old.tick);
                inner.size -= entry_size(&key, &old.value);
                self.metrics.account(&key, &old.value, -1);
            }
            while inner.size + size > self.cfg.max_size {
                let Some((_, victim)) = inner.order.pop_first() else {
                    break;
                };
                if let Some(old) = inner.entries.remove(&victim) {
                    inner.size -= entry_size(&victim, &old.value);
                    self.metrics.account(&victim, &old.value, -1);
                    self.metrics
                        .evicted
                        .with_label_values(&[victim.item_type().as_str()])
                        .inc();
                }
            }
            inner.tick += 1;
            let tick = inner.tick;
            self.metrics.account(&key, &value, 1);
            self.metrics.added.with_label_values(&[t.as_str()]).inc();
            inner.order.insert(tick, key.clone());
            inner.entries.insert(key, Entry { value, tick });
            inner.size += size;
        }
    }

    /// Looks up the postings of `name=value` in `block`, refreshing its recency.
    pub fn get_postings(&self, block: Ulid, name: &str, value: &str) -> Option<Arc<Vec<u64>>> {
        match self.get(Key::Postings(block, name.to_owned(), value.to_owned()))? {
            Value::Postings(p) => Some(p),
            Value::Series(_) => None,
        }
    }

    /// Stores the postings of `name=value` in `block`, evicting least recently used
    /// entries to stay within the budget.
    pub fn put_postings(&self, block: Ulid, name: &str, value: &str, postings: Arc<Vec<u64>>) {
        self.put(
            Key::Postings(block, name.to_owned(), value.to_owned()),
            Value::Postings(postings),
        );
    }

    /// Looks up the raw series entry `series_ref` of `block`.
    pub fn get_series(&self, block: Ulid, series_ref: u64) -> Option<Bytes> {
        match self.get(Key::Series(block, series_ref))? {
            Value::Series(b) => Some(b),
            Value::Postings(_) => None,
        }
    }

    /// Stores the raw series entry `series_ref` of `block`.
    pub fn put_series(&self, block: Ulid, series_ref: u64, entry: Bytes) {
        self.put(Key::Series(block, series_ref), Value::Series(entry));
    }

    /// [`IndexCache::get_series`] for many refs under one lock.
    pub fn get_series_many(&self, block: Ulid, refs: &[u64]) -> Vec<Option<Bytes>> {
        self.get_many(
            ItemType::Series,
            refs.iter().map(|&r| Key::Series(block, r)),
        )
        .into_iter()
        .map(|v| match v {
            Some(Value::Series(b)) => Some(b),
            _ => None,
        })
        .collect()
    }

    /// [`IndexCache::put_series`] for many entries under one lock.
    pub fn put_series_many(&self, block: Ulid, entries: impl IntoIterator<Item = (u64, Bytes)>) {
        self.put_many(
            ItemType::Series,
            entries
                .into_iter()
                .map(|(r, b)| (Key::Series(block, r), Value::Series(b))),
        );
    }

    /// Drops every entry of `block` (called when the block is unloaded).
    pub fn remove_block(&self, block: Ulid) {
        let mut g = self.lock();
        let inner = &mut *g;
        let keys: Vec<Key> = inner
            .entries
            .keys()
            .filter(|k| k.block() == block)
            .cloned()
            .collect();
        for k in keys {
            if let Some(old) = inner.entries.remove(&k) {
                inner.order.remove(&old.tick);
                inner.size -= entry_size(&k, &old.value);
                self.metrics.account(&k, &old.value, -1);
            }
        }
    }

    /// Current accounted size in bytes.
    pub fn size(&self) -> u64 {
        self.lock().size
    }

    /// Number of cached items.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(reg: &Registry, name: &str, item: &str) -> f64 {
        reg.gather()
            .iter()
            .find(|f| f.name() == name)
            .and_then(|f| {
                f.get_metric()
                    .iter()
                    .find(|m| m.get_label().iter().any(|l| l.value() == item))
                    .map(|m| {
                        if f.get_field_type() == prometheus::proto::MetricType::COUNTER {
                            m.get_counter().get_value()
                        } else {
                            m.get_gauge().get_value()
                        }
                    })
            })
            .unwrap_or(f64::NAN)
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let reg = Registry::new();
        let b = Ulid::from_parts(1, 1);
        // Each entry: 16 + 2 bytes of key + 80 bytes of postings + 64 overhead = 162.
        let cfg = IndexCacheConfig::with_size(3 * 162);
        let cache = IndexCache::new(cfg, &reg).unwrap();
        let list = Arc::new(vec![0u64; 10]);
        for v in ["a", "b", "c"] {
            cache.put_postings(b, "n", v, Arc::clone(&list));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.size(), 3 * 162);
        // Touch "a" so that "b" is the LRU entry.
        assert!(cache.get_postings(b, "n", "a").is_some());
        cache.put_postings(b, "n", "d", Arc::clone(&list));
        assert_eq!(cache.len(), 3);
        assert!(cache.get_postings(b, "n", "b").is_none());
        assert!(cache.get_postings(b, "n", "a").is_some());
        assert!(cache.get_postings(b, "n", "d").is_some());
        assert!(cache.size() <= 3 * 162);
        assert_eq!(
            gauge(
                &reg,
                "thanos_store_index_cache_items_evicted_total",
                "Postings"
            ),
            1.0
        );
        assert_eq!(
            gauge(&reg, "thanos_store_index_cache_items", "Postings"),
            3.0
        );
        assert_eq!(
            gauge(
                &reg,
                "thanos_store_index_cache_total_size_bytes",
                "Postings"
            ),
            (3 * 162) as f64
        );
        // Too large items are refused.
        cache.put_postings(b, "n", "huge", Arc::new(vec![0u64; 1000]));
        assert!(cache.get_postings(b, "n", "huge").is_none());
        assert_eq!(
            gauge(
                &reg,
                "thanos_store_index_cache_items_overflowed_total",
                "Postings"
            ),
            1.0
        );
        // Requests and hits are counted per item type.
        assert_eq!(
            gauge(&reg, "thanos_store_index_cache_requests_total", "Postings"),
            5.0
        );
        assert_eq!(
            gauge(&reg, "thanos_store_index_cache_hits_total", "Postings"),
            3.0
        );
        cache.remove_block(b);
        assert!(cache.is_empty());
        assert_eq!(cache.size(), 0);
        assert_eq!(
            gauge(&reg, "thanos_store_index_cache_items", "Postings"),
            0.0
        );
    }

    #[test]
    fn series_and_postings_share_the_budget_and_respect_enabled_items() {
        let reg = Registry::new();
        let b = Ulid::from_parts(2, 2);
        let cache = IndexCache::new(IndexCacheConfig::with_size(1000), &reg).unwrap();
        for r in 0..20u64 {
            cache.put_series(b, r * 16, Bytes::from(vec![7u8; 100]));
        }
        // 188 bytes per series entry: at most 5 fit.
        assert_eq!(cache.len(), 5);
        assert!(cache.size() <= 1000);
        assert_eq!(cache.get_series(b, 19 * 16).unwrap().len(), 100);
        assert!(cache.get_series(b, 0).is_none());

        let reg = Registry::new();
        let cfg = IndexCacheConfig {
            enabled_items: vec![ItemType::Series],
            ..IndexCacheConfig::with_size(1 << 20)
        };
        let cache = IndexCache::new(cfg, &reg).unwrap();
        cache.put_postings(b, "a", "b", Arc::new(vec![1, 2]));
        assert!(cache.get_postings(b, "a", "b").is_none());
        assert!(cache.is_empty());
        assert_eq!(
            gauge(&reg, "thanos_store_index_cache_requests_total", "Postings"),
            0.0
        );
        cache.put_series(b, 16, Bytes::from_static(b"x"));
        assert_eq!(cache.get_series(b, 16).unwrap(), Bytes::from_static(b"x"));
    }

    #[test]
    fn config_yaml_in_memory() {
        let c = IndexCacheConfig::from_yaml(
            "type: in-memory\nconfig:\n  max_size: 1GB\n  max_item_size: 1MiB\nenabled_items: [Postings]\nttl: 1h",
        )
        .unwrap();
        assert_eq!(c.max_size, 1 << 30);
        assert_eq!(c.max_item_size, 1 << 20);
        assert_eq!(c.enabled_items, vec![ItemType::Postings]);
        let c = IndexCacheConfig::from_yaml("type: IN-MEMORY").unwrap();
        assert_eq!(c, IndexCacheConfig::default());
        assert_eq!(c.max_item_size, DEFAULT_MAX_ITEM_SIZE);
        let c = IndexCacheConfig::from_yaml(
            "type: IN-MEMORY\nconfig:\n  max_size: 10MB\n  max_item_size: 0\n  enabled_items: [Series, ExpandedPostings]",
        )
        .unwrap();
        assert_eq!(c.max_size, 10 << 20);
        assert_eq!(c.max_item_size, 0);
        assert!(c.enabled(ItemType::Series) && !c.enabled(ItemType::Postings));
    }

    #[test]
    fn config_yaml_errors() {
        use IndexCacheConfigError as E;
        let err = |y: &str| IndexCacheConfig::from_yaml(y).unwrap_err();
        assert_eq!(
            err("type: MEMCACHED\nconfig:\n  addresses: [a:1]"),
            E::Unsupported("MEMCACHED".into())
        );
        assert!(
            err("type: redis")
                .to_string()
                .contains("REDIS is not supported"),
            "{}",
            err("type: redis")
        );
        assert_eq!(err("type: GROUPCACHE"), E::UnknownType("GROUPCACHE".into()));
        assert!(matches!(
            err("type: IN-MEMORY\nconfig:\n  max_size: 10XB"),
            E::Invalid {
                field: "max_size",
                ..
            }
        ));
        assert!(matches!(
            err("type: IN-MEMORY\nconfig:\n  max_size: 1MB\n  max_item_size: 2MB"),
            E::Invalid {
                field: "max_item_size",
                ..
            }
        ));
        assert!(matches!(
            err("type: IN-MEMORY\nenabled_items: [Chunks]"),
            E::Invalid {
                field: "enabled_items",
                ..
            }
        ));
        assert!(matches!(err("type: IN-MEMORY\nbogus: 1"), E::Yaml(_)));
        assert!(matches!(err("config: {}"), E::Yaml(_)));
    }
}
