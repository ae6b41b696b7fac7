//! What generated code calls: result modes, the cache handle, rendered
//! dependencies and invalidation; the read path is in `cache_aside`.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::{Cache, Targets};
pub use crate::cache_aside::cached;
use crate::key::KeyWriter;

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
    /// Counter names of the tags, then the versions.
    pub(crate) fn names(&self) -> impl Iterator<Item = String> + '_ {
        let tags = self.tags.iter().map(|tag| dependency_name(TAG, tag.as_str()));
        let versions = self.versions.iter().map(|version| dependency_name(VERSION, version.as_str()));
        tags.chain(versions)
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
