//! A small bounded cache keyed by text, for values that cost more to build from their text
//! than to look up: compiled matcher regexes, parsed queries.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

/// Values built from text keys, at most `max_entries` of them and only for keys of up to
/// `max_key_len` bytes; when full it starts over (no per-entry bookkeeping on hits).
pub struct TextCache<V> {
    map: Mutex<HashMap<String, V>>,
    max_entries: usize,
    max_key_len: usize,
}

impl<V: Clone> TextCache<V> {
    /// An empty cache with the given bounds.
    pub fn new(max_entries: usize, max_key_len: usize) -> Self {
        Self {
            map: Mutex::default(),
            max_entries,
            max_key_len,
        }
    }

    /// The value of `key`, built with `build` (outside the lock, so a slow build does not
    /// hold up other callers) and kept when it is not there yet. Failures are not kept.
    pub fn get_or_try_insert_with<E>(
        &self,
        key: &str,
        build: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if key.len() > self.max_key_len {
            return build();
        }
        if let Some(v) = self.lock().get(key) {
            return Ok(v.clone());
        }
        let v = build()?;
        let mut map = self.lock();
        if map.len() >= self.max_entries {
            map.clear();
        }
        map.insert(key.to_owned(), v.clone());
        Ok(v)
    }

    /// Number of values kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no value is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, V>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<V> fmt::Debug for TextCache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("TextCache")
            .field("entries", &entries)
            .field("max_entries", &self.max_entries)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_built_values_within_bounds_and_no_failures() {
        let cache = TextCache::new(2, 4);
        let mut builds = 0;
        let mut get = |key: &str| {
            cache.get_or_try_insert_with(key, || {
                builds += 1;
                if key == "bad" {
                    Err("bad")
                } else {
                    Ok(key.len())
                }
            })
        };
        assert_eq!(get("ab"), Ok(2));
        assert_eq!(get("ab"), Ok(2));
        assert_eq!(get("bad"), Err("bad"));
        assert_eq!(get("bad"), Err("bad"));
        assert_eq!(get("toolong"), Ok(7));
        assert_eq!(get("toolong"), Ok(7));
        assert_eq!(
            builds, 5,
            "hits build nothing; failures and long keys every time"
        );
        assert_eq!(cache.len(), 1);
        cache
            .get_or_try_insert_with("c", || Ok::<_, ()>(1))
            .unwrap();
        cache
            .get_or_try_insert_with("d", || Ok::<_, ()>(1))
            .unwrap();
        assert_eq!(cache.len(), 1, "a full cache starts over");
    }
}
