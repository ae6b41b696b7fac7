//! The functions generated code calls: the cache-aside load path and invalidation.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::Cache;
use crate::codec::{encoded_size, type_fingerprint};
use crate::key::KeyWriter;
use crate::memory::Lookup;
use crate::single_flight::{FlightOutcome, Role, wait};
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
        let tags = self
            .tags
            .iter()
            .map(|tag| dependency_name(TAG, tag.as_str()));
        let versions = self
            .versions
            .iter()
            .map(|version| dependency_name(VERSION, version.as_str()));
        tags.chain(versions)
    }
}

#[inline]
fn lookup<V: CacheValue>(cache: &Cache, key: &KeyWriter, generics: u64) -> Option<V> {
    match cache.inner.memory.lookup(key.as_bytes(), generics) {
        Lookup::Fresh(entry) => entry.value.downcast_ref::<V>().cloned(),
        Lookup::Miss => None,
    }
}

/// The cache-aside path of a `#[cached]` function: serve a fresh entry, or run
/// `body` once for all concurrent callers of the key and store its cacheable value.
#[allow(clippy::too_many_arguments)] // one call from generated code; a struct would only rename them
pub async fn cached<M, R, C, F, const TAGS: usize, const VERSIONS: usize>(
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
    C: AsCache,
    F: Future<Output = R>,
{
    key.shorten();
    let cache = cache.as_cache();
    let generics = if generic_types.is_empty() {
        0
    } else {
        type_fingerprint(generic_types)
    };
    if let Some(value) = lookup::<M::Value>(cache, &key, generics) {
        site.record_hit();
        return M::from_cached(value);
    }
    site.record_miss();

    let leader = loop {
        match cache.inner.flights.join(key.as_bytes()) {
            Role::Leader(leader) => break leader,
            Role::Waiter(waiter) => match wait(waiter).await {
                FlightOutcome::Stored => {
                    if let Some(value) = lookup::<M::Value>(cache, &key, generics) {
                        return M::from_cached(value);
                    }
                }
                FlightOutcome::Unstored(shared) => {
                    if let Some(value) = shared.downcast_ref::<M::Value>() {
                        return M::from_cached(value.clone());
                    }
                }
                FlightOutcome::Retry => {}
            },
        }
    };

    let memory = &cache.inner.memory;
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
    let shared: Arc<dyn Any + Send + Sync> = Arc::new(value.clone());
    leader.finish(|doomed| {
        let current = seen.iter().all(|(name, generation)| memory.generations.is_current(name, *generation));
        if doomed || !current {
            site.record_refused();
            tracing::debug!(function = site.function(), key = %key, "store refused: invalidated during the load");
            return FlightOutcome::Retry;
        }
        let lifetime = site.entry_lifetime();
        if memory.insert(key.as_bytes(), Arc::clone(&shared), value_bytes, generics, lifetime, seen) {
            FlightOutcome::Stored
        } else {
            tracing::debug!(function = site.function(), key = %key, value_bytes, "value larger than the cache");
            FlightOutcome::Unstored(shared)
        }
    });
    output
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

/// Runs a write's `body`; when it succeeded, applies `invalidation`.
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
        apply(cache.as_cache(), invalidation);
    }
    output
}

fn apply<const KEYS: usize, const TAGS: usize, const VERSIONS: usize>(
    cache: &Cache,
    invalidation: Invalidation<KEYS, TAGS, VERSIONS>,
) {
    for mut key in invalidation.keys {
        key.shorten();
        cache.invalidate_rendered_key(&key);
    }
    for tag in &invalidation.tags {
        cache.invalidate_tag(tag.as_str());
    }
    for version in &invalidation.versions {
        cache.bump_version(version.as_str());
    }
    tracing::debug!(keys = KEYS, tags = TAGS, versions = VERSIONS, "invalidated");
}
