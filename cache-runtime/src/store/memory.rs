//! The in-memory store: typed values in a bounded [`quick_cache`] cache.
//!
//! Values stay typed (`Arc<dyn Any>`) and a hit clones them (a function that
//! returns `Arc<T>` has its own `Arc` kept, so a hit clones only that); nothing is encoded:
//! an entry is weighed once, when it is stored. The bound is the total weight
//! in bytes (key, what the value occupies in memory, estimated from its serde
//! shape, and bookkeeping). Each entry expires
//! at its own deadline (`ttl + uniform(0..=jitter)`), checked on every hit.
//!
//! Loads take a lease like on Redis: a key invalidation removes the entry and
//! the lease together under the key's lock, and a commit stores only while its
//! lease is still held, under the same lock. So a value loaded before an
//! invalidation is never stored after it.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::generations::Generations;
use super::{Commit, Fill, Found, LayerKind, LayerStatus, Lease, Request, Store, Targets, Ticket, Urgency};
use crate::entry_info::{EntryMeta, deadline_after};
use crate::key::KeyWriter;
use crate::store::CacheError;
use crate::value::SharedValue;

/// Bookkeeping bytes counted for each entry besides its key and value.
const ENTRY_OVERHEAD: u64 = 96;
const LEASE_SHARDS: usize = 16;

/// A stored value with what decides whether it may still be served.
pub(crate) struct MemoryEntry {
    pub(crate) value: SharedValue,
    /// Fingerprint of the stored type's serde shape, the schema and generic type arguments.
    fingerprint: u64,
    /// [`Site::id`](crate::site::Site) of the function that wrote it.
    pub(crate) site: u64,
    pub(crate) meta: EntryMeta,
    fresh_until: Instant,
    /// Until when it may be served stale.
    kept_until: Instant,
    /// Tag and version counters, and the generations seen when the load began.
    dependencies: Box<[(Box<str>, u64)]>,
    /// The generations' epoch at which `dependencies` were last found current.
    checked_at: AtomicU64,
    weight: u64,
}

impl MemoryEntry {
    /// How an entry another function wrote differs from what a call of
    /// `fingerprint` under `dependencies` would store: `None` when it does not.
    pub(crate) fn differs_from(&self, fingerprint: u64, dependencies: &[String]) -> Option<&'static str> {
        if self.fingerprint != fingerprint {
            return Some("another value type");
        }
        self.differs_in_dependencies(dependencies)
    }

    /// Whether the entry was stored under other tags or versions than `dependencies`.
    pub(crate) fn differs_in_dependencies(&self, dependencies: &[String]) -> Option<&'static str> {
        let same = self.dependencies.len() == dependencies.len()
            && self.dependencies.iter().zip(dependencies).all(|((name, _), other)| **name == **other);
        (!same).then_some("other tags or versions")
    }
}

#[derive(Clone)]
struct EntryWeighter;

impl quick_cache::Weighter<Box<[u8]>, Arc<MemoryEntry>> for EntryWeighter {
    fn weight(&self, key: &Box<[u8]>, entry: &Arc<MemoryEntry>) -> u64 {
        key.len() as u64 + entry.weight
    }
}

/// Counts the entries evicted to stay within the bound.
#[derive(Clone, Default)]
struct Evictions(Arc<AtomicU64>);

impl quick_cache::Lifecycle<Box<[u8]>, Arc<MemoryEntry>> for Evictions {
    type RequestState = u64;

    fn on_evict(&self, evicted: &mut u64, _key: Box<[u8]>, _entry: Arc<MemoryEntry>) {
        *evicted += 1;
        self.0.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::observe::EVICTIONS).increment(1);
    }
}

type Entries = quick_cache::sync::Cache<
    Box<[u8]>,
    Arc<MemoryEntry>,
    EntryWeighter,
    quick_cache::DefaultHashBuilder,
    Evictions,
>;

type LeaseShard = Mutex<HashMap<Box<[u8]>, u128>>;

pub(crate) struct MemoryStore {
    entries: Entries,
    evictions: Evictions,
    generations: Generations,
    leases: Box<[LeaseShard]>,
    hasher: foldhash::fast::FixedState,
    max_bytes: u64,
}

impl MemoryStore {
    pub(crate) fn new(max_bytes: u64, estimated_entries: usize, generation_capacity: usize) -> Self {
        let evictions = Evictions::default();
        metrics::counter!(crate::observe::EVICTIONS).increment(0); // exported before the first eviction
        Self {
            entries: Entries::with(
                estimated_entries.max(16),
                max_bytes,
                EntryWeighter,
                quick_cache::DefaultHashBuilder::default(),
                evictions.clone(),
            ),
            evictions,
            generations: Generations::new(generation_capacity),
            leases: (0..LEASE_SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::FixedState::default(),
            max_bytes,
        }
    }

    /// Entries by namespace (the key up to its first single `:`), counted exactly.
    pub(crate) fn key_counts(&self) -> std::collections::BTreeMap<String, u64> {
        let mut counts = std::collections::BTreeMap::new();
        for (key, _) in self.entries.iter() {
            *counts.entry(namespace(&key).to_owned()).or_insert(0) += 1;
        }
        counts
    }

    /// Entries evicted to stay within the bound, so far.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.0.load(Ordering::Relaxed)
    }

    /// Removes every entry and lease.
    pub(crate) fn clear(&self) {
        self.entries.clear();
        for shard in &self.leases {
            shard.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }

    /// The lock that orders a key's commits and invalidations.
    fn leases_of(&self, key: &[u8]) -> MutexGuard<'_, HashMap<Box<[u8]>, u128>> {
        let shard = (self.hasher.hash_one(key) as usize) % LEASE_SHARDS;
        // A panic while holding the lock cannot leave the map inconsistent.
        self.leases[shard].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_valid(&self, entry: &MemoryEntry) -> bool {
        entry.fresh_until > Instant::now() && self.is_current(entry)
    }

    /// Whether every tag and version the entry was stored under is current;
    /// checked once per epoch of the generations (that is, after each bump).
    #[inline]
    fn is_current(&self, entry: &MemoryEntry) -> bool {
        if entry.dependencies.is_empty() {
            return true;
        }
        let epoch = self.generations.epoch();
        if entry.checked_at.load(Ordering::Relaxed) == epoch {
            return true;
        }
        let current = entry.dependencies.iter().all(|(name, seen)| self.generations.is_current(name, *seen));
        if current {
            entry.checked_at.store(epoch, Ordering::Relaxed);
        }
        current
    }

    fn generations_current(&self, request: &Request<'_>, ticket: &Ticket) -> bool {
        request
            .dependencies
            .iter()
            .zip(&ticket.generations)
            .all(|(name, generation)| self.generations.is_current(name, *generation))
    }

    fn insert(&self, request: &Request<'_>, ticket: &Ticket, fill: &Fill<'_>) -> Commit {
        let dependencies: Box<[(Box<str>, u64)]> = request
            .dependencies
            .iter()
            .zip(&ticket.generations)
            .map(|(name, generation)| (name.as_str().into(), *generation))
            .collect();
        let value_bytes = (request.ops.weigh)(&**fill.value);
        request.site.record_value_bytes(value_bytes);
        let dependency_bytes: usize = dependencies.iter().map(|(name, _)| name.len() + 8).sum();
        let weight = ENTRY_OVERHEAD.saturating_add((value_bytes + dependency_bytes) as u64);
        let key = request.key.as_bytes();
        if weight.saturating_add(key.len() as u64) > self.max_bytes {
            tracing::debug!(function = request.site.function(), key = %request.key, value_bytes, "value larger than the cache");
            return Commit::NotStored;
        }
        let meta = EntryMeta::filled_now(fill, &ticket.generations);
        let entry = MemoryEntry {
            value: Arc::clone(fill.value),
            fingerprint: request.fingerprint,
            site: request.site.id(),
            meta,
            fresh_until: deadline_after(fill.lifetime),
            kept_until: deadline_after(fill.lifetime.saturating_add(fill.keep)),
            dependencies,
            checked_at: AtomicU64::new(u64::MAX),
            weight,
        };
        self.entries.insert(key.into(), Arc::new(entry));
        metrics::gauge!(crate::observe::MEMORY_BYTES).set(self.entries.weight() as f64);
        Commit::Stored(meta)
    }
}

impl Store for MemoryStore {
    #[inline]
    fn probe(&self, key: &[u8], fingerprint: u64) -> Option<Arc<MemoryEntry>> {
        let entry = self.entries.get(key)?;
        (entry.fingerprint == fingerprint && self.is_valid(&entry)).then_some(entry)
    }

    async fn lookup(&self, request: &Request<'_>) -> Found {
        let Some(entry) = self.entries.get(request.key.as_bytes()) else { return Found::Miss };
        if entry.fingerprint != request.fingerprint || !self.is_current(&entry) {
            return Found::Miss;
        }
        let now = Instant::now();
        if now < entry.fresh_until {
            Found::Fresh(Arc::clone(&entry.value), entry.meta)
        } else if now < entry.kept_until {
            Found::Stale(Arc::clone(&entry.value), entry.meta)
        } else {
            Found::Miss
        }
    }

    async fn begin_load(
        &self,
        request: &Request<'_>,
        _lifetime: Duration,
        token: u128,
    ) -> Result<Ticket, CacheError> {
        // In process, single flight already makes one caller load; a newer load
        // of the key (after an invalidation) takes the lease over.
        self.leases_of(request.key.as_bytes()).insert(request.key.as_bytes().into(), token);
        let generations = request.dependencies.iter().map(|name| self.generations.observe(name)).collect();
        Ok(Ticket::new(Lease::Held(token), generations))
    }

    async fn begin_put(
        &self,
        request: &Request<'_>,
        lifetime: Duration,
        token: u128,
    ) -> Result<Ticket, CacheError> {
        self.begin_load(request, lifetime, token).await
    }

    async fn commit(&self, request: &Request<'_>, ticket: &Ticket, fill: Fill<'_>) -> Commit {
        let Lease::Held(token) = ticket.lease else { return Commit::NotStored };
        let key = request.key.as_bytes();
        let mut leases = self.leases_of(key);
        if leases.get(key) != Some(&token) {
            return Commit::Refused;
        }
        leases.remove(key);
        if !self.generations_current(request, ticket) {
            return Commit::Refused;
        }
        if let Some(old) = self.entries.peek(key)
            && old.site != request.site.id()
            && let Some(what) = old.differs_from(request.fingerprint, request.dependencies)
        {
            request.site.record_collision(request.key, old.site, what);
        }
        self.insert(request, ticket, &fill)
    }

    async fn still_current(
        &self,
        request: &Request<'_>,
        token: u128,
        ticket: &Ticket,
    ) -> Result<bool, CacheError> {
        let key = request.key.as_bytes();
        Ok(self.leases_of(key).get(key) == Some(&token) && self.generations_current(request, ticket))
    }

    async fn observe(&self, name: &str, _keep_for: Duration) -> Result<u64, CacheError> {
        Ok(self.generations.observe(name))
    }

    fn abandon(&self, key: &KeyWriter, token: u128) {
        let mut leases = self.leases_of(key.as_bytes());
        if leases.get(key.as_bytes()) == Some(&token) {
            leases.remove(key.as_bytes());
        }
    }

    async fn invalidate(&self, targets: &Targets, _urgency: Urgency) -> Result<(), CacheError> {
        for key in &targets.keys {
            let mut leases = self.leases_of(key.as_bytes());
            leases.remove(key.as_bytes());
            self.entries.remove(key.as_bytes());
        }
        for name in &targets.dependencies {
            self.generations.bump(name);
        }
        Ok(())
    }

    fn watch_release(&self, _key: &KeyWriter) -> Option<super::ReleaseWatch> {
        None // in process, single flight wakes waiters
    }

    fn is_remote(&self) -> bool {
        false
    }

    fn status(&self) -> LayerStatus {
        LayerStatus {
            kind: LayerKind::Memory,
            entries: Some(self.entries.len()),
            weight_bytes: Some(self.entries.weight()),
            breaker: None,
            evictions: Some(self.evictions()),
            problem: None,
        }
    }
}

/// A key's namespace: the key up to its first `:` that is not part of `::`
/// (`user` of `user:7`, `app::users::get_user` of a default key).
pub(crate) fn namespace(key: &[u8]) -> &str {
    let text = std::str::from_utf8(key).unwrap_or("");
    let bytes = text.as_bytes();
    for (index, &byte) in bytes.iter().enumerate() {
        let single =
            byte == b':' && bytes.get(index + 1) != Some(&b':') && (index == 0 || bytes[index - 1] != b':');
        if single {
            return &text[..index];
        }
    }
    text
}
