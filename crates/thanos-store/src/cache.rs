//! Size-bounded in-memory LRU cache of decoded postings lists, keyed by block and label
//! pair (Thanos's IN-MEMORY index cache, `Postings` item type).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use ulid::Ulid;

/// Cache key: block, label name, label value.
type Key = (Ulid, String, String);

/// Per-entry bookkeeping overhead counted against the size budget.
const ENTRY_OVERHEAD: u64 = 64;

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, (Arc<Vec<u64>>, u64)>,
    /// Access tick → key; the smallest tick is the least recently used entry.
    order: BTreeMap<u64, Key>,
    tick: u64,
    size: u64,
}

/// LRU of postings lists bounded by an approximate byte size (`--index-cache-size`).
#[derive(Debug)]
pub struct PostingsCache {
    max_size: u64,
    max_item_size: u64,
    inner: Mutex<Inner>,
    requests: IntCounterVec,
    hits: IntCounterVec,
    size_gauge: IntGauge,
}

fn entry_size(key: &Key, value: &[u64]) -> u64 {
    (key.1.len() + key.2.len()) as u64 + 8 * value.len() as u64 + ENTRY_OVERHEAD
}

impl PostingsCache {
    /// A cache of at most `max_size` bytes; items larger than half of it are not cached.
    /// Registers `thanos_store_index_cache_{requests,hits}_total` and
    /// `thanos_store_index_cache_items_size_bytes` on `registry`.
    pub fn new(max_size: u64, registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "thanos_store_index_cache_requests_total",
                "Total number of items requests to the cache.",
            ),
            &["item_type"],
        )?;
        let hits = IntCounterVec::new(
            Opts::new(
                "thanos_store_index_cache_hits_total",
                "Total number of items requests to the cache that were a hit.",
            ),
            &["item_type"],
        )?;
        let size_gauge = IntGauge::new(
            "thanos_store_index_cache_items_size_bytes",
            "Current byte size of items in the index cache.",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(hits.clone()))?;
        registry.register(Box::new(size_gauge.clone()))?;
        Ok(Self {
            max_size,
            max_item_size: max_size / 2,
            inner: Mutex::new(Inner::default()),
            requests,
            hits,
            size_gauge,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters for a cache; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks up the postings of `name=value` in `block`, refreshing its recency.
    pub fn get(&self, block: Ulid, name: &str, value: &str) -> Option<Arc<Vec<u64>>> {
        self.requests.with_label_values(&["Postings"]).inc();
        let key = (block, name.to_owned(), value.to_owned());
        let mut g = self.lock();
        let inner = &mut *g;
        inner.tick += 1;
        let tick = inner.tick;
        let (value, old_tick) = inner.entries.get_mut(&key)?;
        let value = Arc::clone(value);
        let old = std::mem::replace(old_tick, tick);
        inner.order.remove(&old);
        inner.order.insert(tick, key);
        self.hits.with_label_values(&["Postings"]).inc();
        Some(value)
    }

    /// Stores postings, evicting least recently used entries to stay within the budget.
    pub fn put(&self, block: Ulid, name: &str, value: &str, postings: Arc<Vec<u64>>) {
        let key = (block, name.to_owned(), value.to_owned());
        let size = entry_size(&key, &postings);
        if size > self.max_item_size {
            return;
        }
        let mut g = self.lock();
        let inner = &mut *g;
        if let Some((old, old_tick)) = inner.entries.remove(&key) {
            inner.order.remove(&old_tick);
            inner.size -= entry_size(&key, &old);
        }
        while inner.size + size > self.max_size {
            let Some((_, victim)) = inner.order.pop_first() else {
                break;
            };
            if let Some((v, _)) = inner.entries.remove(&victim) {
                inner.size -= entry_size(&victim, &v);
            }
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner.order.insert(tick, key.clone());
        inner.entries.insert(key, (postings, tick));
        inner.size += size;
        self.size_gauge
            .set(i64::try_from(inner.size).unwrap_or(i64::MAX));
    }

    /// Drops every entry of `block` (called when the block is unloaded).
    pub fn remove_block(&self, block: Ulid) {
        let mut g = self.lock();
        let inner = &mut *g;
        let keys: Vec<Key> = inner
            .entries
            .keys()
            .filter(|k| k.0 == block)
            .cloned()
            .collect();
        for k in keys {
            if let Some((v, t)) = inner.entries.remove(&k) {
                inner.order.remove(&t);
                inner.size -= entry_size(&k, &v);
            }
        }
        self.size_gauge
            .set(i64::try_from(inner.size).unwrap_or(i64::MAX));
    }

    /// Current accounted size in bytes.
    pub fn size(&self) -> u64 {
        self.lock().size
    }

    /// Number of cached lists.
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

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let reg = Registry::new();
        let b = Ulid::from_parts(1, 1);
        // Each entry: 2 bytes of key + 80 bytes of postings + overhead = 146 bytes.
        let cache = PostingsCache::new(3 * 146, &reg).unwrap();
        let list = Arc::new(vec![0u64; 10]);
        for v in ["a", "b", "c"] {
            cache.put(b, "n", v, Arc::clone(&list));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.size(), 3 * 146);
        // Touch "a" so that "b" is the LRU entry.
        assert!(cache.get(b, "n", "a").is_some());
        cache.put(b, "n", "d", Arc::clone(&list));
        assert_eq!(cache.len(), 3);
        assert!(cache.get(b, "n", "b").is_none());
        assert!(cache.get(b, "n", "a").is_some());
        assert!(cache.get(b, "n", "d").is_some());
        assert!(cache.size() <= 3 * 146);
        // Too large items are refused.
        cache.put(b, "n", "huge", Arc::new(vec![0u64; 1000]));
        assert!(cache.get(b, "n", "huge").is_none());
        cache.remove_block(b);
        assert!(cache.is_empty());
        assert_eq!(cache.size(), 0);
    }
}
