//! The functions generated code calls: the cache-aside load path and invalidation.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;

use std::time::Duration;

use crate::cache::{Backend, Cache, Targets};
use crate::codec::{Codec, Envelope, FORMAT_VERSION, encoded_size, type_fingerprint};
use crate::entry_info::{self, EntryInfo, from_unix_ms, generation_fingerprint};
use crate::key::KeyWriter;
use crate::memory::{Lookup, MemoryStore};
use crate::redis_store::{CacheError, Lease, RedisStore, unix_ms};
use crate::single_flight::{FlightOutcome, LeaderGuard, Role, SharedValue, SingleFlight, wait};
use crate::site::Site;

/// Namespace of tag counters.
pub(crate) const TAG: &str = "t:";
/// Namespace of version counters.
pub(crate) const VERSION: &str = "v:";

pub(crate) fn dependency_name(kind: &str, name: &str) -> String {
    let mut full = String::with_capacity(kind.len() + name.len());
    full.push_str(kind);
    full.push_str(name);
    full
}

/// A type whose values can be cached.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached",
    label = "the function returns this",
    note = "a cached value must be `Serialize + DeserializeOwned + Clone + Send + Sync + 'static`: derive `serde::Serialize`, `serde::Deserialize` and `Clone` for it, and own its data (no references, `Rc` or `RefCell`)"
)]
pub trait CacheValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T> CacheValue for T where T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

/// How a function's return value maps to a cached value.
pub trait Mode<R> {
    /// The part of `R` that is cached.
    type Value;
    /// The value to cache, if this outcome is cacheable.
    fn cacheable(output: &R) -> Option<&Self::Value>;
    /// Rebuilds the function's return value from a cached value.
    fn from_cached(value: Self::Value) -> R;
    /// Whether a write succeeded (and so must invalidate).
    fn succeeded(output: &R) -> bool;
}

/// `Result<T, E>`: caches `Ok` only; a write succeeded when it returned `Ok`.
pub struct ResultMode;
/// `Option<T>`: caches `Some` only.
pub struct OptionMode;
/// Any other type: cached as is; a write always succeeded.
pub struct PlainMode;

impl<T, E> Mode<Result<T, E>> for ResultMode {
    type Value = T;
    fn cacheable(output: &Result<T, E>) -> Option<&T> {
        output.as_ref().ok()
    }
    fn from_cached(value: T) -> Result<T, E> {
        Ok(value)
    }
    fn succeeded(output: &Result<T, E>) -> bool {
        output.is_ok()
    }
}

impl<T> Mode<Option<T>> for OptionMode {
    type Value = T;
    fn cacheable(output: &Option<T>) -> Option<&T> {
        output.as_ref()
    }
    fn from_cached(value: T) -> Option<T> {
        Some(value)
    }
    fn succeeded(_: &Option<T>) -> bool {
        true
    }
}

impl<T> Mode<T> for PlainMode {
    type Value = T;
    fn cacheable(output: &T) -> Option<&T> {
        Some(output)
    }
    fn from_cached(value: T) -> T {
        value
    }
    fn succeeded(_: &T) -> bool {
        true
    }
}

/// What `cache = <expr>` may give.
#[diagnostic::on_unimplemented(
    message = "`cache = ...` must give a `cache_runtime::Cache`, not `{Self}`",
    label = "expected a `Cache` or a reference to one"
)]
pub trait AsCache {
    /// The cache.
    fn as_cache(&self) -> &Cache;
}

impl AsCache for Cache {
    fn as_cache(&self) -> &Cache {
        self
    }
}

impl<T: AsCache + ?Sized> AsCache for &T {
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

impl<T: AsCache + ?Sized> AsCache for Arc<T> {
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

/// Clones the cache a `cache = <expr>` option names, so the call owns it.
pub fn cache_of<C: AsCache + ?Sized>(cache: &C) -> Cache {
    cache.as_cache().clone()
}

/// The process-wide default cache.
#[must_use]
pub fn default_cache() -> &'static Cache {
    Cache::default_cache()
}

/// The rendered names a `#[cached]` call depends on.
pub struct Dependencies<const TAGS: usize, const VERSIONS: usize> {
    /// Rendered tag templates.
    pub tags: [KeyWriter; TAGS],
    /// Rendered version templates.
    pub versions: [KeyWriter; VERSIONS],
}

impl<const TAGS: usize, const VERSIONS: usize> Dependencies<TAGS, VERSIONS> {
    fn names(&self) -> impl Iterator<Item = String> + '_ {
        let tags = self.tags.iter().map(|tag| dependency_name(TAG, tag.as_str()));
        let versions = self.versions.iter().map(|version| dependency_name(VERSION, version.as_str()));
        tags.chain(versions)
    }
}

#[inline]
fn lookup<V: CacheValue>(memory: &MemoryStore, key: &KeyWriter, generics: u64) -> Option<V> {
    match memory.lookup(key.as_bytes(), generics) {
        Lookup::Fresh(entry) => {
            let value = entry.value.downcast_ref::<V>().cloned();
            if value.is_some() {
                entry_info::record(|| entry.info(key, true));
            }
            value
        }
        Lookup::Miss => None,
    }
}

/// The cache-aside path of a `#[cached]` function: serve a fresh entry, or run
/// `body` once for all concurrent callers of the key and store its cacheable value.
pub async fn cached<M, R, K, C, F, const TAGS: usize, const VERSIONS: usize>(
    site: &'static Site,
    cache: C,
    mut key: KeyWriter,
    dependencies: Dependencies<TAGS, VERSIONS>,
    generic_types: &[&'static str],
    body: F,
) -> R
where
    M: Mode<R>,
    M::Value: CacheValue,
    K: Codec,
    C: AsCache,
    F: Future<Output = R>,
{
    key.shorten();
    let cache = cache.as_cache();
    match &cache.inner.backend {
        Backend::Memory(memory) => {
            let generics = if generic_types.is_empty() { 0 } else { type_fingerprint(generic_types) };
            if let Some(value) = lookup::<M::Value>(memory, &key, generics) {
                site.record_hit();
                return M::from_cached(value);
            }
            site.record_miss();
            load_into_memory::<M, R, F, TAGS, VERSIONS>(
                site,
                cache,
                memory,
                &key,
                &dependencies,
                generics,
                body,
            )
            .await
        }
        Backend::Redis(redis) => {
            let request = RedisRequest {
                site,
                cache,
                redis,
                key: &key,
                entry_key: redis.entry_key(key.as_bytes()),
                counter_keys: dependencies.names().map(|name| redis.counter_key(&name)).collect(),
                fingerprint: site.fingerprint::<M::Value>(generic_types),
                codec: PhantomData::<K>,
            };
            request.serve::<M, R, F>(body).await
        }
    }
}

/// Waits for the key's flight; `Ok(leader)` when this caller must load, `Err(value)`
/// when another caller's load answered.
async fn lead_or_wait<'c, V: CacheValue, Fut: Future<Output = Option<V>>>(
    flights: &'c SingleFlight,
    key: &KeyWriter,
    reread: impl Fn() -> Fut,
) -> Result<LeaderGuard<'c>, V> {
    loop {
        match flights.join(key.as_bytes()) {
            Role::Leader(leader) => return Ok(leader),
            Role::Waiter(waiter) => match wait(waiter).await {
                FlightOutcome::Stored => {
                    if let Some(value) = reread().await {
                        return Err(value);
                    }
                }
                FlightOutcome::Unstored(shared) => {
                    if let Some(value) = shared.downcast_ref::<V>() {
                        return Err(value.clone());
                    }
                }
                FlightOutcome::Retry => {}
            },
        }
    }
}

async fn load_into_memory<M, R, F, const TAGS: usize, const VERSIONS: usize>(
    site: &'static Site,
    cache: &Cache,
    memory: &MemoryStore,
    key: &KeyWriter,
    dependencies: &Dependencies<TAGS, VERSIONS>,
    generics: u64,
    body: F,
) -> R
where
    M: Mode<R>,
    M::Value: CacheValue,
    F: Future<Output = R>,
{
    let reread = || std::future::ready(lookup::<M::Value>(memory, key, generics));
    let leader = match lead_or_wait(&cache.inner.flights, key, reread).await {
        Ok(leader) => leader,
        Err(value) => return M::from_cached(value),
    };
    let seen: Box<[(Box<str>, u64)]> = dependencies
        .names()
        .map(|name| {
            let generation = memory.generations.observe(&name);
            (name.into_boxed_str(), generation)
        })
        .collect();
    let started = Instant::now();
    let output = body.await;
    site.record_load(started.elapsed());

    let Some(value) = M::cacheable(&output) else {
        drop(leader); // waiters retry: failures are not shared
        return output;
    };
    let value_bytes = encoded_size(value).unwrap_or(size_of::<M::Value>());
    site.record_value_bytes(value_bytes);
    let shared: SharedValue = Arc::new(value.clone());
    leader.finish(|doomed| {
        let current = seen.iter().all(|(name, generation)| memory.generations.is_current(name, *generation));
        if doomed || !current {
            site.record_refused();
            tracing::debug!(function = site.function(), key = %key, "store refused: invalidated during the load");
            return FlightOutcome::Retry;
        }
        let lifetime = site.entry_lifetime();
        if let Some(entry) = memory.insert(key.as_bytes(), Arc::clone(&shared), value_bytes, generics, lifetime, seen) {
            entry_info::record(|| entry.info(key, false));
            FlightOutcome::Stored
        } else {
            tracing::debug!(function = site.function(), key = %key, value_bytes, "value larger than the cache");
            FlightOutcome::Unstored(shared)
        }
    });
    output
}

/// One `#[cached]` call on a Redis cache, whose values use codec `K`.
struct RedisRequest<'a, K> {
    site: &'static Site,
    cache: &'a Cache,
    redis: &'a RedisStore,
    key: &'a KeyWriter,
    entry_key: Vec<u8>,
    counter_keys: Vec<String>,
    fingerprint: u64,
    codec: PhantomData<K>,
}

/// How waiting for another process's load ended.
enum Waited<V> {
    /// Its value arrived.
    Value(V),
    /// It let go of the lease, which is now ours.
    Lease(String, Vec<u64>),
    /// Too long, or Redis failed: load without storing.
    GaveUp,
}

/// What reading an entry from Redis found.
enum Read<V> {
    Hit(V),
    Miss,
    /// Redis could not be read: run the body, skip Redis for the rest of the call.
    Unavailable,
}

impl<K: Codec> RedisRequest<'_, K> {
    async fn serve<M, R, F>(&self, body: F) -> R
    where
        M: Mode<R>,
        M::Value: CacheValue,
        F: Future<Output = R>,
    {
        let reachable = match self.read::<M::Value>().await {
            Read::Hit(value) => {
                self.site.record_hit();
                return M::from_cached(value);
            }
            Read::Miss => true,
            Read::Unavailable => false,
        };
        self.site.record_miss();
        let reread = || async {
            match self.read::<M::Value>().await {
                Read::Hit(value) => Some(value),
                Read::Miss | Read::Unavailable => None,
            }
        };
        let leader = match lead_or_wait(&self.cache.inner.flights, self.key, reread).await {
            Ok(leader) => leader,
            Err(value) => return M::from_cached(value),
        };
        let lifetime = self.site.entry_lifetime();
        let began = if reachable {
            match self.redis.begin_load(&self.entry_key, &self.counter_keys, lifetime).await {
                Ok(began) => Some(began),
                Err(error) => {
                    self.failed(&error);
                    None
                }
            }
        } else {
            None
        };
        let (token, generations) = match began {
            Some((Lease::Held(token), generations)) => (Some(token), generations),
            Some((Lease::Busy, _)) => match self.wait_for_other_process::<M::Value>(lifetime).await {
                Waited::Value(value) => {
                    leader.finish(|_| FlightOutcome::Stored);
                    return M::from_cached(value);
                }
                Waited::Lease(token, generations) => (Some(token), generations),
                Waited::GaveUp => (None, Vec::new()),
            },
            None => (None, Vec::new()),
        };

        let started = Instant::now();
        let output = body.await;
        self.site.record_load(started.elapsed());
        let Some(value) = M::cacheable(&output) else {
            if let Some(token) = &token
                && let Err(error) = self.redis.release(&self.entry_key, token).await
            {
                self.failed(&error);
            }
            drop(leader);
            return output;
        };
        let outcome = match token {
            Some(token) => self.store(value, &token, generations, lifetime).await,
            None => FlightOutcome::Unstored(Arc::new(value.clone())),
        };
        leader.finish(|doomed| if doomed { FlightOutcome::Retry } else { outcome });
        output
    }

    /// Encodes and stores under the lease; tells waiters what happened.
    async fn store<V: CacheValue>(
        &self,
        value: &V,
        token: &str,
        generations: Vec<u64>,
        lifetime: Duration,
    ) -> FlightOutcome {
        let filled_at_ms = unix_ms();
        let lifetime_ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        let envelope = Envelope {
            format: FORMAT_VERSION,
            codec: K::ID,
            fingerprint: self.fingerprint,
            filled_at_ms,
            fresh_until_ms: filled_at_ms.saturating_add(lifetime_ms),
            stale_until_ms: filled_at_ms.saturating_add(lifetime_ms),
            generations,
        };
        let bytes = match envelope.encode::<K, V>(value) {
            Ok(bytes) => bytes,
            Err(error) => {
                self.site.record_error();
                tracing::warn!(function = self.site.function(), %error, "value not stored");
                return FlightOutcome::Unstored(Arc::new(value.clone()));
            }
        };
        self.site.record_value_bytes(bytes.len());
        if bytes.len() > self.redis.settings.max_value_bytes {
            tracing::debug!(
                function = self.site.function(),
                bytes = bytes.len(),
                "value larger than max_value_bytes"
            );
            metrics::counter!("cache_oversized_values_total", "function" => self.site.function())
                .increment(1);
            return FlightOutcome::Unstored(Arc::new(value.clone()));
        }
        let info = || EntryInfo {
            key: self.key.as_str().to_owned(),
            filled_at: from_unix_ms(envelope.filled_at_ms),
            fresh_until: from_unix_ms(envelope.fresh_until_ms),
            generation: generation_fingerprint(envelope.generations.iter().copied()),
            hit: false,
        };
        match self.redis.store(&self.entry_key, token, &bytes, lifetime).await {
            Ok(true) => {
                entry_info::record(info);
                FlightOutcome::Stored
            }
            Ok(false) => {
                self.site.record_refused();
                tracing::debug!(function = self.site.function(), key = %self.key, "store refused: invalidated during the load");
                FlightOutcome::Retry
            }
            Err(error) => {
                self.failed(&error);
                FlightOutcome::Unstored(Arc::new(value.clone()))
            }
        }
    }

    /// Reads and checks the entry: its type, format and generations.
    async fn read<V: CacheValue>(&self) -> Read<V> {
        let (bytes, counters) = match self.redis.read(&self.entry_key, &self.counter_keys).await {
            Ok(found) => found,
            Err(CacheError::Server(error)) => {
                // A key of another type: a miss, overwritten by the next store.
                self.undecodable(&error);
                return Read::Miss;
            }
            Err(error) => {
                self.failed(&error);
                return Read::Unavailable;
            }
        };
        let Some(bytes) = bytes else { return Read::Miss };
        match Envelope::decode::<K, V>(&bytes, self.fingerprint) {
            Ok((envelope, value)) => {
                let current = envelope.generations.len() == counters.len()
                    && envelope.generations.iter().zip(&counters).all(|(seen, now)| Some(*seen) == *now);
                if !current {
                    return Read::Miss;
                }
                entry_info::record(|| EntryInfo {
                    key: self.key.as_str().to_owned(),
                    filled_at: from_unix_ms(envelope.filled_at_ms),
                    fresh_until: from_unix_ms(envelope.fresh_until_ms),
                    generation: generation_fingerprint(envelope.generations.iter().copied()),
                    hit: true,
                });
                Read::Hit(value)
            }
            Err(error) => {
                self.undecodable(&error);
                Read::Miss
            }
        }
    }

    /// Another process holds the lease: poll for its value, and take the lease
    /// as soon as it is released, for at most `lease_wait`.
    async fn wait_for_other_process<V: CacheValue>(&self, lifetime: Duration) -> Waited<V> {
        let deadline = Instant::now() + self.redis.settings.lease_wait;
        let mut pause = Duration::from_millis(2);
        while Instant::now() < deadline {
            tokio::time::sleep(pause).await;
            match self.read::<V>().await {
                Read::Hit(value) => return Waited::Value(value),
                Read::Unavailable => return Waited::GaveUp,
                Read::Miss => {}
            }
            match self.redis.begin_load(&self.entry_key, &self.counter_keys, lifetime).await {
                Ok((Lease::Held(token), generations)) => return Waited::Lease(token, generations),
                Ok((Lease::Busy, _)) => {}
                Err(error) => {
                    self.failed(&error);
                    return Waited::GaveUp;
                }
            }
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        Waited::GaveUp
    }

    fn failed(&self, error: &CacheError) {
        self.site.record_error();
        tracing::debug!(function = self.site.function(), %error, "cache unavailable: running the function body");
    }

    fn undecodable(&self, error: &dyn std::fmt::Display) {
        self.site.record_error();
        metrics::counter!("cache_undecodable_total", "function" => self.site.function()).increment(1);
        tracing::warn!(function = self.site.function(), key = %self.key, %error, "undecodable entry treated as a miss");
    }
}

/// What one `#[invalidates]` call removes, rendered.
pub struct Invalidation<const KEYS: usize, const TAGS: usize, const VERSIONS: usize> {
    /// Rendered keys to delete.
    pub keys: [KeyWriter; KEYS],
    /// Rendered tags to invalidate.
    pub tags: [KeyWriter; TAGS],
    /// Rendered versions to bump.
    pub versions: [KeyWriter; VERSIONS],
}

/// Runs a write's `body`; when it succeeded, applies `invalidation` (one round
/// trip on Redis; retried in the background when Redis cannot be reached).
pub async fn invalidating<M, R, C, F, const KEYS: usize, const TAGS: usize, const VERSIONS: usize>(
    cache: C,
    invalidation: Invalidation<KEYS, TAGS, VERSIONS>,
    body: F,
) -> R
where
    M: Mode<R>,
    C: AsCache,
    F: Future<Output = R>,
{
    let output = body.await;
    if M::succeeded(&output) {
        let Invalidation { mut keys, tags, versions } = invalidation;
        for key in &mut keys {
            key.shorten();
        }
        let tags = tags.iter().map(|tag| dependency_name(TAG, tag.as_str()));
        let versions = versions.iter().map(|version| dependency_name(VERSION, version.as_str()));
        let targets = Targets { keys: &keys, dependencies: tags.chain(versions).collect() };
        match cache.as_cache().invalidate(targets).await {
            Ok(()) => tracing::debug!(keys = KEYS, tags = TAGS, versions = VERSIONS, "invalidated"),
            Err(error) => tracing::warn!(%error, "invalidation not applied yet: retrying in the background"),
        }
    }
    output
}
