//! The in-memory backend: typed values in a bounded [`quick_cache`] cache.
//!
//! Values stay typed (`Arc<dyn Any>`) and a hit clones them; nothing is encoded
//! except to weigh an entry once, when it is stored. The bound is the total
//! weight in bytes (key, encoded value size and bookkeeping). Each entry expires
//! at its own deadline (`ttl + uniform(0..=jitter)`), checked on every hit.

use std::any::Any;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::generations::Generations;

/// Bookkeeping bytes counted for each entry besides its key and value.
const ENTRY_OVERHEAD: u64 = 96;

/// A stored value with what decides whether it may still be served.
pub(crate) struct MemoryEntry {
    pub(crate) value: Arc<dyn Any + Send + Sync>,
    /// Fingerprint of a generic function's type arguments (0 when not generic).
    pub(crate) generics: u64,
    pub(crate) filled_at: SystemTime,
    pub(crate) lifetime: std::time::Duration,
    pub(crate) fresh_until: Instant,
    /// Tag and version counters seen when the load began.
    pub(crate) dependencies: Box<[(Box<str>, u64)]>,
    weight: u64,
}

#[derive(Clone)]
struct EntryWeighter;

impl MemoryEntry {
    /// What [`capture`](crate::capture) reports for this entry.
    pub(crate) fn info(&self, key: &crate::KeyWriter, hit: bool) -> crate::EntryInfo {
        crate::EntryInfo {
            key: key.as_str().to_owned(),
            filled_at: self.filled_at,
            fresh_until: self.filled_at + self.lifetime,
            generation: crate::entry_info::generation_fingerprint(self.dependencies.iter().map(|(_, g)| *g)),
            hit,
        }
    }
}

impl quick_cache::Weighter<Box<[u8]>, Arc<MemoryEntry>> for EntryWeighter {
    fn weight(&self, key: &Box<[u8]>, entry: &Arc<MemoryEntry>) -> u64 {
        key.len() as u64 + entry.weight
    }
}

/// What a lookup found.
pub(crate) enum Lookup {
    Fresh(Arc<MemoryEntry>),
    Miss,
}

pub(crate) struct MemoryStore {
    entries: quick_cache::sync::Cache<Box<[u8]>, Arc<MemoryEntry>, EntryWeighter>,
    pub(crate) generations: Generations,
    max_bytes: u64,
}

impl MemoryStore {
    pub(crate) fn new(max_bytes: u64, estimated_entries: usize, generation_capacity: usize) -> Self {
        Self {
            entries: quick_cache::sync::Cache::with_weighter(
                estimated_entries.max(16),
                max_bytes,
                EntryWeighter,
            ),
            generations: Generations::new(generation_capacity),
            max_bytes,
        }
    }

    /// A fresh entry of `key` whose tags and versions are all current.
    #[inline]
    pub(crate) fn lookup(&self, key: &[u8], generics: u64) -> Lookup {
        let Some(entry) = self.entries.get(key) else {
            return Lookup::Miss;
        };
        if entry.generics != generics
            || entry.fresh_until <= Instant::now()
            || !entry.dependencies.iter().all(|(name, seen)| self.generations.is_current(name, *seen))
        {
            return Lookup::Miss;
        }
        Lookup::Fresh(entry)
    }

    /// Stores a value; `None` when it is heavier than the whole cache allows.
    pub(crate) fn insert(
        &self,
        key: &[u8],
        value: Arc<dyn Any + Send + Sync>,
        value_bytes: usize,
        generics: u64,
        lifetime: std::time::Duration,
        dependencies: Box<[(Box<str>, u64)]>,
    ) -> Option<Arc<MemoryEntry>> {
        let dependency_bytes: usize = dependencies.iter().map(|(name, _)| name.len() + 8).sum();
        let weight = ENTRY_OVERHEAD + (value_bytes + dependency_bytes) as u64;
        if weight + key.len() as u64 > self.max_bytes {
            return None;
        }
        let entry = MemoryEntry {
            value,
            generics,
            filled_at: SystemTime::now(),
            lifetime,
            fresh_until: Instant::now() + lifetime,
            dependencies,
            weight,
        };
        let entry = Arc::new(entry);
        self.entries.insert(key.into(), Arc::clone(&entry));
        Some(entry)
    }

    pub(crate) fn remove(&self, key: &[u8]) -> bool {
        self.entries.remove(key).is_some()
    }

    /// Number of entries held (expired ones included until evicted or replaced).
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Total weight of the entries, in bytes.
    pub(crate) fn weight(&self) -> u64 {
        self.entries.weight()
    }
}
