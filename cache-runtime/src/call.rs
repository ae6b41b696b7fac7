//! What generated code calls: the entry points of `#[cached]` and
//! `#[invalidates]`, the cache handle they are given, and their rendered
//! dependencies.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::cache::Cache;
use crate::codec::Codec;
use crate::engine::{self, Loaded, Refresh, Served, Start};
use crate::invalidation;
use crate::key::KeyWriter;
use crate::linked::Entry;
use crate::mode::Mode;
use crate::site::Site;
use crate::store::{MemoryEntry, Request, Store, Targets};
use crate::value::{self, Cacheable, OpsOf, SharedValue};

/// Namespace of tag counters.
pub(crate) const TAG: &str = "t:";
/// Namespace of version counters.
pub(crate) const VERSION: &str = "v:";

/// The counter name of tag or version `name` (`kind` is [`TAG`] or
/// [`VERSION`]): control characters become `%XX`, as in a rendered key (so no
/// name can break a line of the bus's messages), and a name longer than a key
/// may be is shortened like one, so a counter costs a bounded number of bytes.
pub(crate) fn dependency_name(kind: &str, name: &str) -> String {
    let mut full = String::with_capacity(kind.len() + name.len());
    full.push_str(kind);
    if name.len() + kind.len() <= crate::key::MAX_KEY_LEN
        && name.bytes().all(|byte| (0x20..0x7f).contains(&byte))
    {
        full.push_str(name); // printable ASCII, short: as is
        return full;
    }
    for c in name.chars() {
        if c.is_control() {
            for byte in c.encode_utf8(&mut [0; 4]).bytes() {
                let _ = write!(full, "%{byte:02X}"); // writing to a String cannot fail
            }
        } else {
            full.push(c);
        }
    }
    if full.len() <= crate::key::MAX_KEY_LEN {
        return full;
    }
    let mut shortened = KeyWriter::from_rendered(full.as_bytes());
    shortened.shorten();
    shortened.as_str().to_owned()
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

/// Counter names of tags, then versions.
pub(crate) fn counter_names(tags: &[KeyWriter], versions: &[KeyWriter]) -> Vec<String> {
    let tags = tags.iter().map(|tag| dependency_name(TAG, tag.as_str()));
    let versions = versions.iter().map(|version| dependency_name(VERSION, version.as_str()));
    tags.chain(versions).collect()
}

/// A hit on an entry another function wrote: reported if it was stored under
/// other tags or versions than this call's.
#[cold]
fn shared_entry(
    site: &'static Site,
    key: &KeyWriter,
    entry: &MemoryEntry,
    tags: &[KeyWriter],
    versions: &[KeyWriter],
) {
    if let Some(what) = entry.differs_in_dependencies(&counter_names(tags, versions)) {
        site.record_collision(key, entry.site, what);
    }
}

/// The cache-aside path of a `#[cached]` function: serve a fresh entry, or run
/// `body` once for all concurrent callers of the key and store its cacheable
/// value, held and encoded as storage `S` says.
pub async fn cached<M, R, K, S, C, F, const TAGS: usize, const VERSIONS: usize>(
    entry: Entry<R, K, TAGS, VERSIONS>,
    cache: C,
    body: F,
) -> R
where
    M: Mode<R>,
    M::Value: Cacheable<S>,
    K: Codec,
    C: AsCache,
    F: Future<Output = R>,
{
    // Without a body that outlives the call, nothing runs in the background.
    Call::from(entry).run::<M, R, K, S, F>(cache.as_cache(), body, Start::Lookup, |_, _, _, _, _| None).await
}

/// [`cached`] for functions whose body owns its data (`stale`,
/// `early_refresh`, `soft_timeout`): it may run in a task of its own, to
/// refresh an entry while the caller is served, or to go on loading after the
/// caller got the fail-safe value.
pub async fn cached_refreshing<M, R, K, S, C, F, const TAGS: usize, const VERSIONS: usize>(
    entry: Entry<R, K, TAGS, VERSIONS>,
    cache: C,
    body: F,
) -> R
where
    M: Mode<R> + 'static,
    M::Value: Cacheable<S>,
    S: 'static,
    K: Codec,
    C: AsCache,
    F: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let site = entry.site;
    Call::from(entry)
        .run::<M, R, K, S, F>(
            cache.as_cache(),
            body,
            Start::LookupOwned,
            |cache, request, body, refresh, value| {
                if refresh.wait.is_zero() {
                    engine::spawn_refresh(
                        cache,
                        request,
                        refresh_load::<M, R, S, F>(site, body, None),
                        refresh,
                        None,
                    );
                    return None;
                }
                let (sender, output) = tokio::sync::oneshot::channel();
                let load = refresh_load::<M, R, S, F>(site, body, Some(sender));
                engine::spawn_refresh(cache, request, load, refresh, Some(Arc::clone(value)));
                Some(output)
            },
        )
        .await
}

/// The cacheable part of a body's output.
fn cacheable<M: Mode<R>, R, S>(site: &'static Site, output: &R) -> Option<Loaded>
where
    M::Value: Cacheable<S>,
{
    if let Some(value) = M::cacheable(output) {
        return Some(Loaded { value: value.share(), negative: false });
    }
    (M::is_absent(output) && site.caches_absences())
        .then(|| Loaded { value: value::absent(), negative: true })
}

/// The output a value held in memory stands for: a clone of it, or the
/// function's absence; `None` when it answers another function.
#[inline]
fn shared_output<M: Mode<R>, R, S>(shared: &SharedValue) -> Option<R>
where
    M::Value: Cacheable<S>,
{
    match M::Value::get(shared) {
        Some(value) => Some(M::from_cached(value)),
        None if value::is_absent(shared) => M::absent(),
        None => None,
    }
}

/// A body run in a task of its own: its cacheable part, and its output sent
/// to the caller that waits for it, with whether it is a value to serve.
async fn refresh_load<M: Mode<R>, R, S, F: Future<Output = R>>(
    site: &'static Site,
    body: F,
    output: Option<Output<R>>,
) -> Option<Loaded>
where
    M::Value: Cacheable<S>,
{
    let returned = body.await;
    let loaded = cacheable::<M, R, S>(site, &returned);
    if let Some(output) = output {
        let _ = output.send((returned, loaded.is_some()));
    }
    loaded
}

/// Where a body run in a task sends its output: with whether it is a value to serve.
type Output<R> = tokio::sync::oneshot::Sender<(R, bool)>;

/// One call of a `#[cached]` function, its key and dependencies rendered.
struct Call<const TAGS: usize, const VERSIONS: usize> {
    site: &'static Site,
    key: KeyWriter,
    tags: [KeyWriter; TAGS],
    versions: [KeyWriter; VERSIONS],
    generic_types: Vec<&'static str>,
}

impl<R, K, const TAGS: usize, const VERSIONS: usize> From<Entry<R, K, TAGS, VERSIONS>>
    for Call<TAGS, VERSIONS>
{
    fn from(entry: Entry<R, K, TAGS, VERSIONS>) -> Self {
        let Dependencies { tags, versions } = entry.dependencies;
        Self { site: entry.site, key: entry.key, tags, versions, generic_types: entry.generic_types }
    }
}

impl<const TAGS: usize, const VERSIONS: usize> Call<TAGS, VERSIONS> {
    /// Serves the call; `background` hands the body to a task (a refresh, or a
    /// load past the soft timeout, whose output it gives back).
    async fn run<M, R, K, S, F>(
        mut self,
        cache: &Cache,
        body: F,
        start: Start,
        background: impl FnOnce(
            &Cache,
            &Request<'_>,
            F,
            Refresh,
            &SharedValue,
        ) -> Option<tokio::sync::oneshot::Receiver<(R, bool)>>,
    ) -> R
    where
        M: Mode<R>,
        M::Value: Cacheable<S>,
        K: Codec,
        F: Future<Output = R>,
    {
        let site = self.site;
        self.key.shorten();
        let key = &self.key;
        crate::hot::record(key.as_str());
        let fingerprint = site.fingerprint::<<M::Value as Cacheable<S>>::Stored>(&self.generic_types);
        let start = if crate::warm::take_refresh() { Start::Reload } else { start };
        if start.looks_up()
            && let Some(entry) = cache.inner.store.probe(key.as_bytes(), fingerprint)
            && let Some(output) = shared_output::<M, R, S>(&entry.value)
        {
            site.record_hit();
            if entry.site != site.id() {
                shared_entry(site, key, &entry, &self.tags, &self.versions);
            }
            crate::entry_info::record(|| entry.meta.info(key, true));
            if start == Start::LookupOwned
                && let Some(refresh) = engine::early_refresh(cache, site, key.as_bytes(), &entry.meta)
            {
                let dependencies = counter_names(&self.tags, &self.versions);
                let request = Request {
                    site,
                    key,
                    dependencies: &dependencies,
                    ops: OpsOf::<<M::Value as Cacheable<S>>::Stored, K>::OPS,
                    fingerprint,
                    absences: M::absent().is_some(),
                };
                background(cache, &request, body, refresh, &entry.value);
            }
            return output;
        }
        let dependencies = counter_names(&self.tags, &self.versions);
        let request = Request {
            site,
            key,
            dependencies: &dependencies,
            ops: OpsOf::<<M::Value as Cacheable<S>>::Stored, K>::OPS,
            fingerprint,
            absences: M::absent().is_some(),
        };
        let mut body = Some(body);
        let mut output = None;
        let span = tracing::debug_span!("cache_load", function = site.function(), key = %key, outcome = tracing::field::Empty);
        let load = tracing::Instrument::instrument(
            async {
                let returned = body.take()?.await;
                let cacheable = cacheable::<M, R, S>(site, &returned);
                let outcome = match &cacheable {
                    Some(loaded) if loaded.negative => "absent",
                    Some(_) => "value",
                    None => "not cacheable",
                };
                tracing::Span::current().record("outcome", outcome);
                output = Some(returned);
                cacheable
            },
            span,
        );
        let value = match engine::serve(cache, &request, load, start).await {
            Served::Cached(value) => value,
            Served::Stale { value, refresh: Some(refresh) } => {
                if let Some(body) = body.take()
                    && let Some(output) = background(cache, &request, body, refresh, &value)
                    && let Some(output) = engine::await_load(site, output, refresh).await
                {
                    return output;
                }
                value
            }
            Served::Stale { value, refresh: None } => value,
            Served::Loaded => match output {
                Some(output) => return output,
                None => unreachable!("the engine ran the body before answering `Loaded`"),
            },
        };
        if value::is_absent(&value)
            && let Some(absent) = M::absent()
        {
            return absent;
        }
        // A value decoded for this call alone is moved out, not cloned.
        match M::Value::take(value) {
            Some(value) => M::from_cached(value),
            None => unreachable!("the engine serves values of the request's type"),
        }
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
/// trip on Redis; retried in the background when Redis cannot take it).
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
        let Invalidation { keys, tags, versions } = invalidation;
        let mut keys = Vec::from(keys);
        keys.iter_mut().for_each(KeyWriter::shorten);
        let targets = Targets { keys, dependencies: counter_names(&tags, &versions) };
        match invalidation::invalidate(cache.as_cache(), targets).await {
            Ok(()) => tracing::debug!(keys = KEYS, tags = TAGS, versions = VERSIONS, "invalidated"),
            Err(error) => tracing::warn!(%error, "invalidation not applied yet: retrying in the background"),
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_names_hold_no_line_break_and_are_bounded() {
        assert_eq!(dependency_name(TAG, "org:7"), "t:org:7");
        assert_eq!(dependency_name(TAG, "a\nkuser:1\r"), "t:a%0Akuser:1%0D");
        let long = dependency_name(VERSION, &"é".repeat(10_000));
        assert!(long.len() <= crate::key::MAX_KEY_LEN, "{}", long.len());
        assert!(long.starts_with("v:é"));
        assert_ne!(long, dependency_name(VERSION, &"é".repeat(10_001)));
    }
}
