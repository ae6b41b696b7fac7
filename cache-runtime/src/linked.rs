//! Entries named by their reader: `#[invalidates(get_user(id))]`,
//! `#[cache_put(get_user(id))]`, [`invalidate!`](crate::invalidate),
//! [`put!`](crate::put) and [`get!`](crate::get).
//!
//! Next to each `#[cached]` function the macro generates a hidden companion
//! that renders the function's key, tags and version for given arguments and
//! returns them as an [`Entry`]; the function itself serves its calls through
//! the same companion. Naming the reader therefore cannot drift from it: a
//! wrong name or argument type is a compile error, and the key is the one the
//! reader uses, escaping, impl scope and default key included.
//!
//! A put stores a value into the entry the way a load would, under the
//! entry's lease. `#[cache_put]` takes the lease over *before* the write runs:
//! - a load that began before the write and finishes after it is refused (the
//!   put wins);
//! - of two overlapping writes of one entry, only the one that began last
//!   stores its value; the other deletes the entry, since its value may be
//!   older than the table;
//! - a value that cannot be stored deletes the entry (with the retries of an
//!   invalidation), never leaves it as it was;
//! - a write cancelled while it runs deletes the entry (its outcome is
//!   unknown); once it has its value, the put runs in a task of its own, so a
//!   caller cancelled then cannot cut it off.

use std::marker::PhantomData;

use crate::cache::Cache;
use crate::call::{AsCache, Dependencies, counter_names};
use crate::codec::Codec;
use crate::engine;
use crate::invalidation;
use crate::key::KeyWriter;
use crate::mode::Mode;
use crate::returns::Probe;
use crate::site::Site;
use crate::store::{CacheError, Found, Request, Store, Targets};
use crate::value::{Cacheable, OpsOf, StorageProbe};

/// The entry a `#[cached]` function uses for one set of arguments: its site,
/// rendered key, tags and version. `R` is the function's return type and `K`
/// its codec. Made by the function's companion; see the [module](self).
pub struct Entry<R, K, const TAGS: usize, const VERSIONS: usize> {
    pub(crate) site: &'static Site,
    pub(crate) key: KeyWriter,
    pub(crate) dependencies: Dependencies<TAGS, VERSIONS>,
    /// Type names of a generic function's type arguments (part of the fingerprint).
    pub(crate) generic_types: Vec<&'static str>,
    types: PhantomData<fn() -> (R, K)>,
}

impl<R, K, const TAGS: usize, const VERSIONS: usize> Entry<R, K, TAGS, VERSIONS> {
    /// An entry of `site`; called by generated code.
    #[must_use]
    pub fn new(
        site: &'static Site,
        key: KeyWriter,
        dependencies: Dependencies<TAGS, VERSIONS>,
        generic_types: Vec<&'static str>,
    ) -> Self {
        Self { site, key, dependencies, generic_types, types: PhantomData }
    }

    /// The rendered key, as the stores see it (shortened when too long).
    #[must_use]
    pub fn key(&self) -> KeyWriter {
        let mut key = self.key.clone();
        key.shorten();
        key
    }

    /// The rendered key, for an invalidation.
    #[must_use]
    pub fn into_key(self) -> KeyWriter {
        self.key
    }

    /// A probe of the function's return type, to pick its mode by type.
    #[must_use]
    pub fn probe(&self) -> Probe<R> {
        Probe::new()
    }

    /// A probe of the value type `mode` caches, to pick its storage.
    #[must_use]
    pub fn storage_probe<M: Mode<R>>(&self, _mode: &M) -> StorageProbe<M::Value> {
        StorageProbe::of::<R, M>(_mode)
    }

    /// The request the stores see for this entry (shortened key, counter names).
    fn parts<M, S>(mut self) -> Parts
    where
        M: Mode<R>,
        M::Value: Cacheable<S>,
        K: Codec,
    {
        self.key.shorten();
        let fingerprint = self.site.fingerprint::<<M::Value as Cacheable<S>>::Stored>(&self.generic_types);
        Parts {
            site: self.site,
            dependencies: counter_names(&self.dependencies.tags, &self.dependencies.versions),
            key: self.key,
            ops: OpsOf::<<M::Value as Cacheable<S>>::Stored, K>::OPS,
            fingerprint,
            absences: M::absent().is_some(),
        }
    }
}

/// An [`Entry`] with its types erased, owned so a task can carry it.
#[derive(Clone)]
struct Parts {
    site: &'static Site,
    key: KeyWriter,
    dependencies: Vec<String>,
    ops: &'static crate::value::ValueOps,
    fingerprint: u64,
    absences: bool,
}

impl Parts {
    fn request(&self) -> Request<'_> {
        Request {
            site: self.site,
            key: &self.key,
            dependencies: &self.dependencies,
            ops: self.ops,
            fingerprint: self.fingerprint,
            absences: self.absences,
        }
    }
}

/// A value a write gives for an entry of `V`: a `V` or a `&V`.
#[diagnostic::on_unimplemented(
    message = "this write gives `{Self}`, but the entry holds `{V}`",
    label = "the reader caches `{V}`",
    note = "`#[cache_put]` and `put!` store the reader's value type (the `T` of its `Result<T, E>` or `Option<T>`): give a `{V}`, or name another reader"
)]
pub trait ValueFor<V> {
    /// The value.
    fn value(&self) -> &V;
}

impl<V> ValueFor<V> for V {
    fn value(&self) -> &V {
        self
    }
}

impl<V> ValueFor<V> for &V {
    fn value(&self) -> &V {
        self
    }
}

/// A writer's value as the reader's: compiles only when they are one type.
pub fn value_for<W: ValueFor<V>, V>(value: &W) -> &V {
    value.value()
}

/// `body`, its output pinned to `R`, so `?` and `return` in it infer as in the function.
pub fn returning<R, F: Future<Output = R>>(body: F) -> F {
    body
}

/// Runs a write's `body`; when it succeeded with a value, stores that value
/// into the reader's `entry` (the writer's value type must be the reader's);
/// when it succeeded without one (`None`), deletes the entry.
///
/// `same` is [`value_for`]: the one place the two value types are compared,
/// so a mismatch is reported once.
#[allow(clippy::too_many_arguments)]
pub fn putting<WM, WR, M, R, K, S, C, F, const TAGS: usize, const VERSIONS: usize>(
    _writer: WM,
    _reader: M,
    _storage: S,
    entry: Entry<R, K, TAGS, VERSIONS>,
    cache: C,
    same: fn(&WM::Value) -> &M::Value,
    body: F,
) -> impl Future<Output = WR>
where
    WM: Mode<WR>,
    M: Mode<R>,
    M::Value: Cacheable<S>,
    K: Codec,
    C: AsCache,
    F: Future<Output = WR>,
{
    put_after::<WM, WR, M, R, K, S, C, F, TAGS, VERSIONS>(entry, cache, same, body)
}

async fn put_after<WM, WR, M, R, K, S, C, F, const TAGS: usize, const VERSIONS: usize>(
    entry: Entry<R, K, TAGS, VERSIONS>,
    cache: C,
    same: fn(&WM::Value) -> &M::Value,
    body: F,
) -> WR
where
    WM: Mode<WR>,
    M: Mode<R>,
    M::Value: Cacheable<S>,
    K: Codec,
    C: AsCache,
    F: Future<Output = WR>,
{
    let pending = PendingPut::begin(cache.as_cache(), entry.parts::<M, S>()).await;
    let output = body.await;
    let end = if !WM::succeeded(&output) {
        PutEnd::Abandon
    } else if let Some(value) = WM::cacheable(&output) {
        PutEnd::Store(same(value).share())
    } else {
        PutEnd::Delete
    };
    if let Err(error) = pending.end(end).await {
        tracing::warn!(%error, "cache put not applied yet: the entry is being deleted in the background");
    }
    output
}

/// A write-through in progress: it took the entry's lease over before the
/// write ran, so that of two overlapping writes of one entry only the one
/// that began last can store its value, and the other deletes the entry
/// (its value may be older than the table). Dropped before it ended (its
/// caller was cancelled during the write, whose outcome is then unknown), it
/// deletes the entry.
struct PendingPut {
    cache: Cache,
    parts: Parts,
    /// `None` when the store could not be asked: the write then ends in a deletion.
    ticket: Option<crate::store::Ticket>,
    ended: bool,
}

/// How a write-through ends.
enum PutEnd {
    Store(crate::value::SharedValue),
    Delete,
    /// The write failed and changed nothing: the lease is given back.
    Abandon,
}

impl PendingPut {
    async fn begin(cache: &Cache, parts: Parts) -> Self {
        cache.inner.flights.doom(&[parts.key.as_bytes()], &[]);
        let ticket = match engine::begin_put(cache, &parts.request()).await {
            Ok(ticket) => Some(ticket),
            Err(error) => {
                tracing::debug!(function = parts.site.function(), key = %parts.key, %error, "lease not taken for a put: it will delete the entry");
                None
            }
        };
        Self { cache: cache.clone(), parts, ticket, ended: false }
    }

    /// Ends the put in a task of its own when a runtime runs (so the caller's
    /// cancellation cannot cut it off), and reports the outcome.
    async fn end(mut self, end: PutEnd) -> Result<(), CacheError> {
        self.ended = true;
        let (cache, parts, ticket) = (self.cache.clone(), self.parts.clone(), self.ticket.take());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return end_put(&cache, &parts, ticket, end).await;
        };
        let (done, outcome) = tokio::sync::oneshot::channel();
        runtime.spawn(async move {
            let _ = done.send(end_put(&cache, &parts, ticket, end).await);
        });
        outcome.await.unwrap_or(Err(CacheError::BreakerOpen))
    }
}

impl Drop for PendingPut {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (cache, key) = (self.cache.clone(), self.parts.key.clone());
            runtime.spawn(async move {
                tracing::debug!(%key, "a write-through was cancelled: deleting its entry");
                let _ = delete(&cache, key).await;
            });
        }
    }
}

async fn end_put(
    cache: &Cache,
    parts: &Parts,
    ticket: Option<crate::store::Ticket>,
    end: PutEnd,
) -> Result<(), CacheError> {
    let request = parts.request();
    match (end, ticket) {
        (PutEnd::Store(value), Some(ticket)) => {
            cache.inner.flights.doom(&[parts.key.as_bytes()], &[]);
            match engine::commit_put(cache, &request, &ticket, &value).await {
                Ok(()) => {
                    parts.site.record_put();
                    Ok(())
                }
                Err(error) => {
                    tracing::debug!(function = parts.site.function(), key = %parts.key, %error, "put not stored: deleting the entry");
                    delete(cache, parts.key.clone()).await.and(Err(error))
                }
            }
        }
        (PutEnd::Abandon, Some(ticket)) => {
            if let crate::store::Lease::Held(token) = ticket.lease {
                cache.inner.store.abandon(&parts.key, token);
            }
            Ok(())
        }
        (PutEnd::Abandon, None) => Ok(()),
        (PutEnd::Store(_) | PutEnd::Delete, _) => delete(cache, parts.key.clone()).await,
    }
}

/// Stores `value` into the reader's `entry`, as [`put!`](crate::put) does.
///
/// # Errors
/// When the store could not take the value; the entry is then deleted (with
/// retries, like an invalidation).
pub async fn put_value<M, R, K, S, C, const TAGS: usize, const VERSIONS: usize>(
    _reader: M,
    _storage: S,
    entry: Entry<R, K, TAGS, VERSIONS>,
    cache: C,
    value: impl ValueFor<M::Value>,
) -> Result<(), CacheError>
where
    M: Mode<R>,
    M::Value: Cacheable<S>,
    K: Codec,
    C: AsCache,
{
    let pending = PendingPut::begin(cache.as_cache(), entry.parts::<M, S>()).await;
    pending.end(PutEnd::Store(value.value().share())).await
}

/// The reader's fresh cached value of `entry`, as [`get!`](crate::get) reads
/// it; `None` on a miss, a cached absence, or when the store cannot be asked.
pub async fn get_value<M, R, K, S, C, const TAGS: usize, const VERSIONS: usize>(
    _reader: M,
    _storage: S,
    entry: Entry<R, K, TAGS, VERSIONS>,
    cache: C,
) -> Option<M::Value>
where
    M: Mode<R>,
    M::Value: Cacheable<S>,
    K: Codec,
    C: AsCache,
{
    let cache = cache.as_cache();
    let parts = entry.parts::<M, S>();
    let request = parts.request();
    if let Some(entry) = cache.inner.store.probe(request.key.as_bytes(), request.fingerprint) {
        return M::Value::get(&entry.value);
    }
    match cache.inner.store.lookup(&request).await {
        Found::Fresh(value, _) if request.ops.holds(&value) => M::Value::take(value),
        _ => None,
    }
}

/// Deletes the entries of `keys`, as [`invalidate!`](crate::invalidate) does.
///
/// # Errors
/// When Redis did not take the deletion at once; it is then retried in the background.
pub async fn invalidate_keys<C: AsCache, const KEYS: usize>(
    cache: C,
    keys: [KeyWriter; KEYS],
) -> Result<(), CacheError> {
    let mut keys = Vec::from(keys);
    keys.iter_mut().for_each(KeyWriter::shorten);
    invalidation::invalidate(cache.as_cache(), Targets { keys, dependencies: Vec::new() }).await
}

/// Deletes the entry of `key` (as [`Parts`] holds it: shortened).
async fn delete(cache: &Cache, key: KeyWriter) -> Result<(), CacheError> {
    invalidation::invalidate(cache, Targets { keys: vec![key], dependencies: Vec::new() }).await
}
