//! A bounded cache: at most `max_entries` entries and `max_bytes` bytes (as the caller weighs
//! them), least recently used out first, each entry with its own expiry.
//!
//! Pure data: the caller passes the time, so tests need no clock. A stream of distinct images
//! (a tenant creating Pods with a new tag each time, or an attacker) costs at most the bounds;
//! before this, every image ever seen stayed for the life of the process.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Bounds of a [`Cache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most entries held.
    pub max_entries: usize,
    /// Most bytes held, as weighed by the caller at insertion.
    pub max_bytes: usize,
}

struct Entry<V> {
    value: V,
    bytes: usize,
    expires: Instant,
    /// Position in the recency order (larger: used more recently).
    used: u64,
}

/// A bounded LRU cache with per-entry expiry.
pub struct Cache<K, V> {
    limits: Limits,
    entries: HashMap<K, Entry<V>>,
    /// Recency order: `used` tick → key; the first is the least recently used.
    order: BTreeMap<u64, K>,
    bytes: usize,
    tick: u64,
}

impl<K: Clone + Eq + Hash, V: Clone> Cache<K, V> {
    /// An empty cache with these bounds.
    pub fn new(limits: Limits) -> Self {
        Cache { limits, entries: HashMap::new(), order: BTreeMap::new(), bytes: 0, tick: 0 }
    }

    /// The value under `key` unless it has expired by `now`; a hit makes it the most
    /// recently used, an expired entry is dropped.
    pub fn get(&mut self, key: &K, now: Instant) -> Option<V> {
        let entry = self.entries.get(key)?;
        if entry.expires <= now {
            self.remove(key);
            return None;
        }
        self.tick += 1;
        let tick = self.tick;
        let entry = self.entries.get_mut(key)?;
        let key = self.order.remove(&entry.used)?;
        entry.used = tick;
        self.order.insert(tick, key);
        Some(entry.value.clone())
    }

    /// Holds `value` under `key` until `now + ttl`, as `bytes` bytes, evicting the least
    /// recently used entries to stay within the bounds. A value larger than `max_bytes` on its
    /// own is not held.
    pub fn insert(&mut self, key: K, value: V, bytes: usize, ttl: Duration, now: Instant) {
        self.remove(&key);
        if bytes > self.limits.max_bytes || self.limits.max_entries == 0 {
            return;
        }
        while self.entries.len() >= self.limits.max_entries || self.bytes + bytes > self.limits.max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            if let Some(entry) = self.entries.remove(&oldest) {
                self.bytes -= entry.bytes;
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.entries.insert(key, Entry { value, bytes, expires: now + ttl, used: self.tick });
        self.bytes += bytes;
    }

    fn remove(&mut self, key: &K) {
        if let Some(entry) = self.entries.remove(key) {
            self.order.remove(&entry.used);
            self.bytes -= entry.bytes;
        }
    }

    /// Entries held (expired ones included until they are touched or evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes held, as weighed at insertion.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn cache(max_entries: usize, max_bytes: usize) -> Cache<String, u32> {
        Cache::new(Limits { max_entries, max_bytes })
    }

    #[test]
    fn the_least_recently_used_entry_goes_first_when_the_entries_are_full() {
        let now = Instant::now();
        let mut c = cache(2, 1000);
        c.insert("a".into(), 1, 10, HOUR, now);
        c.insert("b".into(), 2, 10, HOUR, now);
        assert_eq!(c.get(&"a".into(), now), Some(1)); // `b` is now the least recently used
        c.insert("c".into(), 3, 10, HOUR, now);
        assert_eq!(
            (c.get(&"a".into(), now), c.get(&"b".into(), now), c.get(&"c".into(), now)),
            (Some(1), None, Some(3))
        );
        assert_eq!((c.len(), c.bytes()), (2, 20));
    }

    #[test]
    fn the_bytes_bound_evicts_as_many_as_it_takes_and_an_oversized_value_is_not_held() {
        let now = Instant::now();
        let mut c = cache(100, 100);
        for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
            c.insert(key.into(), u32::try_from(i).unwrap(), 25, HOUR, now);
        }
        c.insert("big".into(), 9, 60, HOUR, now);
        assert_eq!(c.get(&"a".into(), now), None);
        assert_eq!(c.get(&"b".into(), now), None);
        assert_eq!(c.get(&"c".into(), now), None);
        assert_eq!(c.get(&"d".into(), now), Some(3));
        assert_eq!(c.bytes(), 85);
        c.insert("huge".into(), 9, 101, HOUR, now);
        assert_eq!(c.get(&"huge".into(), now), None);
        assert_eq!(c.get(&"d".into(), now), Some(3), "an oversized value evicts nothing");
    }

    #[test]
    fn an_entry_expires_at_its_own_ttl_and_replacing_it_does_not_count_twice() {
        let now = Instant::now();
        let mut c = cache(10, 1000);
        c.insert("tag".into(), 1, 10, Duration::from_secs(300), now);
        c.insert("digest".into(), 2, 10, Duration::from_secs(86_400), now);
        let later = now + Duration::from_secs(301);
        assert_eq!(c.get(&"tag".into(), later), None);
        assert_eq!(c.get(&"digest".into(), later), Some(2));
        c.insert("digest".into(), 3, 30, HOUR, later);
        assert_eq!((c.len(), c.bytes()), (1, 30));
    }

    #[test]
    fn a_hundred_thousand_distinct_keys_stay_within_both_bounds() {
        let now = Instant::now();
        let mut c = cache(1000, 20_000);
        for i in 0..100_000u32 {
            c.insert(format!("registry.example/team/app:{i}"), i, 10 + (i as usize % 40), HOUR, now);
            assert!(c.len() <= 1000 && c.bytes() <= 20_000, "after {i}: {} entries, {} bytes", c.len(), c.bytes());
        }
        assert_eq!(c.get(&"registry.example/team/app:99999".into(), now), Some(99_999));
        assert_eq!(c.order.len(), c.len(), "the recency order and the map agree");
    }
}
