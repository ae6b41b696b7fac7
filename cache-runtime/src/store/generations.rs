//! Generation counters for tags and versioned namespaces, in process memory.
//!
//! Invalidating a tag or bumping a version replaces its counter with a fresh
//! number from one process-wide sequence; an entry remembers the numbers it saw
//! when its load began and is served only while they are all still current. So
//! invalidation is O(1) whatever the number of entries, and nothing lists the
//! members of a tag.
//!
//! The counters live in a cache bounded in bytes: a counter weighs its name
//! and [`COUNTER_OVERHEAD`], and the table holds `capacity` counters of
//! [`TYPICAL_COUNTER_BYTES`] (fewer with longer names). A counter that is
//! evicted comes back with a fresh number no entry has seen, so eviction can
//! only cause misses, never a stale hit.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a counter costs besides its name: the table's slot, the number, the allocation.
const COUNTER_OVERHEAD: u64 = 48;
/// What one counter of the configured capacity may weigh.
const TYPICAL_COUNTER_BYTES: u64 = 64;

/// Weighs a counter by its name.
#[derive(Clone, Copy, Default)]
struct CounterWeight;

impl quick_cache::Weighter<String, u64> for CounterWeight {
    fn weight(&self, name: &String, _generation: &u64) -> u64 {
        name.len() as u64 + COUNTER_OVERHEAD
    }
}

/// The bounded table of counters.
pub(crate) struct Generations {
    counters: quick_cache::sync::Cache<String, u64, CounterWeight>,
    sequence: AtomicU64,
    /// Bumps so far: an entry found current at this epoch stays current until the next bump.
    epoch: AtomicU64,
}

impl Generations {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(16);
        let bytes = (capacity as u64).saturating_mul(TYPICAL_COUNTER_BYTES);
        Self {
            counters: quick_cache::sync::Cache::with_weighter(capacity, bytes, CounterWeight),
            sequence: AtomicU64::new(1),
            epoch: AtomicU64::new(0),
        }
    }

    fn next(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed)
    }

    /// The current generation of `name`, creating it when unknown.
    pub(crate) fn observe(&self, name: &str) -> u64 {
        if let Some(current) = self.counters.get(name) {
            return current;
        }
        let created =
            self.counters.get_or_insert_with(name, || Ok::<_, std::convert::Infallible>(self.next()));
        match created {
            Ok(current) => current,
            Err(never) => match never {},
        }
    }

    /// Whether `name` is still at generation `seen`.
    pub(crate) fn is_current(&self, name: &str, seen: u64) -> bool {
        self.counters.get(name) == Some(seen)
    }

    /// Moves `name` to a generation no entry has seen.
    pub(crate) fn bump(&self, name: &str) {
        self.counters.insert(name.into(), self.next());
        self.epoch.fetch_add(1, Ordering::Release);
    }

    /// The number of bumps so far. Read it before checking counters: what is
    /// current at an epoch stays current while the epoch does not move (an
    /// evicted counter is not a bump, and its tag was not invalidated).
    #[inline]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_invalidates_what_was_observed() {
        let gens = Generations::new(100);
        let seen = gens.observe("org:1");
        assert!(gens.is_current("org:1", seen));
        assert_eq!(gens.observe("org:1"), seen);
        gens.bump("org:1");
        assert!(!gens.is_current("org:1", seen));
        assert!(gens.is_current("org:2", gens.observe("org:2")));
    }

    #[test]
    fn long_names_are_weighed_within_the_bound() {
        let gens = Generations::new(1000);
        for i in 0..20_000 {
            gens.bump(&format!("{i}:{}", "x".repeat(200)));
        }
        assert!(gens.counters.weight() <= 1000 * TYPICAL_COUNTER_BYTES, "{}", gens.counters.weight());
        assert!(gens.counters.len() < 1000, "{} counters of 200-byte names", gens.counters.len());
    }

    #[test]
    fn eviction_never_revives_an_old_generation() {
        let gens = Generations::new(16);
        let seen = gens.observe("tag:0");
        gens.bump("tag:0");
        for i in 1..10_000 {
            gens.observe(&format!("tag:{i}"));
        }
        // Whether or not tag:0 was evicted, the old number never comes back.
        assert!(!gens.is_current("tag:0", seen));
        assert_ne!(gens.observe("tag:0"), seen);
    }
}
