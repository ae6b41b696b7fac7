//! Call sites: one per annotated function, holding its policy and counters.
//!
//! Each `#[cached]` function owns a `static` [`Site`]. Its counters are plain
//! atomics readable through [`stats`]; the same events go to the [`metrics`]
//! facade under the names listed in `observe`, labelled `function`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock, PoisonError};
use std::time::Duration;

use crate::observe;

/// The static description of one `#[cached]` function.
pub struct Site {
    function: &'static str,
    /// A hash of `function`, stored with entries to tell which site wrote them.
    id: u64,
    /// The name with the method's impl type, once known (see [`Site::qualify`]).
    qualified: OnceLock<&'static str>,
    /// Whether a key shared with another function was reported.
    collision_reported: std::sync::atomic::AtomicBool,
    ttl: Duration,
    jitter: Duration,
    /// How long an absence (`None`) is served; `None`: absences are not cached.
    negative_ttl: Option<Duration>,
    /// The `group = "..."` of the function, for settings shared by several functions.
    group: Option<&'static str>,
    /// Stale-while-revalidate: how long past its freshness an entry is served
    /// while one refresh runs in the background (zero: off).
    stale: Duration,
    /// Fail-safe: how long past its freshness an entry is served when a load fails (zero: off).
    fail_safe: Duration,
    /// After a failed load served by fail-safe, how long the key is not loaded again.
    fail_safe_throttle: Duration,
    /// XFetch's beta: how eagerly a fresh entry is refreshed before it expires (zero: off).
    early_refresh: f64,
    /// With a fail-safe value at hand, how long a caller waits for the body before
    /// being served that value while the load goes on in the background (zero: off).
    soft_timeout: Duration,
    /// With a fail-safe value at hand, when the body is abandoned (zero: off).
    hard_timeout: Duration,
    /// How many bodies of this function may run at once in this process (zero: no limit).
    max_loads: usize,
    /// The semaphore of `max_loads`, made on first use.
    load_permits: OnceLock<tokio::sync::Semaphore>,
    /// `schema = N`: bumped for a change of meaning that keeps the shape.
    schema: u32,
    counters: Counters,
    registered: Once,
    metrics: OnceLock<SiteMetrics>,
    /// The value type's fingerprint, computed on first use.
    fingerprint: OnceLock<(std::any::TypeId, u64)>,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
    refused: AtomicU64,
    errors: AtomicU64,
    collisions: AtomicU64,
    stale_served: AtomicU64,
    refreshes: AtomicU64,
    fail_safe_served: AtomicU64,
    puts: AtomicU64,
    early_refreshes: AtomicU64,
    soft_timeouts: AtomicU64,
    hard_timeouts: AtomicU64,
    throttled_loads: AtomicU64,
    load_nanos: AtomicU64,
}

struct SiteMetrics {
    hits: metrics::Counter,
    misses: metrics::Counter,
    loads: metrics::Counter,
    refused: metrics::Counter,
    load_seconds: metrics::Histogram,
    value_bytes: metrics::Histogram,
}

/// Counters of one function, as returned by [`stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SiteStats {
    /// `module::function` of the annotated function.
    pub function: &'static str,
    /// Its `group = "..."`, if any.
    pub group: Option<&'static str>,
    /// Calls answered from the cache.
    pub hits: u64,
    /// Calls that found no usable entry.
    pub misses: u64,
    /// Times the function body ran.
    pub loads: u64,
    /// Loaded values not stored because an invalidation happened during the load.
    pub refused_stores: u64,
    /// Cache failures (unreachable, undecodable entries) that fell back to the body.
    pub errors: u64,
    /// Entries met under this function's key that another function wrote with
    /// another value type or other tags: two key templates render the same key.
    pub key_collisions: u64,
    /// Calls served a stale entry while it was refreshed (`stale`).
    pub stale_served: u64,
    /// Refreshes run in the background (`stale`).
    pub background_refreshes: u64,
    /// Calls served a stale entry because the load failed or is throttled (`fail_safe`).
    pub fail_safe_served: u64,
    /// Values stored by a write (`#[cache_put]`, `put!`).
    pub puts: u64,
    /// Fresh entries refreshed in the background before they expired (`early_refresh`),
    /// a part of `background_refreshes`.
    pub early_refreshes: u64,
    /// Calls served the fail-safe value because the body outran `soft_timeout`
    /// (the load went on in the background).
    pub soft_timeouts: u64,
    /// Loads abandoned at `hard_timeout` (the fail-safe value was served).
    pub hard_timeouts: u64,
    /// Loads that waited for a `max_loads` permit, or were answered by a stale
    /// value instead of waiting.
    pub throttled_loads: u64,
    /// Total time spent in the function body.
    pub load_time: Duration,
}

impl SiteStats {
    /// Hits over hits plus misses, or 0 before any call.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// #[cache_runtime::cached(ttl = 60)]
    /// async fn double(n: u64) -> u64 { n * 2 }
    ///
    /// for _ in 0..4 {
    ///     double(21).await; // one miss, then three hits
    /// }
    /// let stats = cache_runtime::stats();
    /// let double = stats.iter().find(|s| s.function.ends_with("::double")).unwrap();
    /// assert_eq!(double.hit_ratio(), 0.75);
    /// # });
    /// ```
    #[must_use]
    pub fn hit_ratio(&self) -> f64 {
        let calls = self.hits + self.misses;
        if calls == 0 { 0.0 } else { self.hits as f64 / calls as f64 }
    }
}

static SITES: Mutex<Vec<&'static Site>> = Mutex::new(Vec::new());

/// Counters of every `#[cached]` function called so far in this process.
///
/// ```
/// # async fn demo() {
/// #[cache_runtime::cached(ttl = 60)]
/// async fn square(n: u64) -> u64 { n * n }
///
/// square(3).await;
/// square(3).await;
/// let stats = cache_runtime::stats();
/// let square = stats.iter().find(|s| s.function.ends_with("square")).unwrap();
/// assert_eq!((square.hits, square.misses), (1, 1));
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo());
/// ```
#[must_use]
pub fn stats() -> Vec<SiteStats> {
    let sites = SITES.lock().unwrap_or_else(PoisonError::into_inner);
    // A function and its companion (which counts puts) are one function.
    let mut merged: Vec<SiteStats> = Vec::with_capacity(sites.len());
    for site in sites.iter() {
        let stats = site.stats();
        match merged.iter_mut().find(|other| other.function == stats.function) {
            Some(into) => into.add(&stats),
            None => merged.push(stats),
        }
    }
    merged
}

impl SiteStats {
    fn add(&mut self, other: &Self) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.loads += other.loads;
        self.refused_stores += other.refused_stores;
        self.errors += other.errors;
        self.key_collisions += other.key_collisions;
        self.stale_served += other.stale_served;
        self.background_refreshes += other.background_refreshes;
        self.fail_safe_served += other.fail_safe_served;
        self.puts += other.puts;
        self.early_refreshes += other.early_refreshes;
        self.soft_timeouts += other.soft_timeouts;
        self.hard_timeouts += other.hard_timeouts;
        self.throttled_loads += other.throttled_loads;
        self.load_time += other.load_time;
    }
}

impl Site {
    /// A site for `function` (its `module_path!()::name`), with `ttl` and `jitter` in seconds.
    #[must_use]
    pub const fn new(function: &'static str, ttl_secs: u64, jitter_secs: u64) -> Self {
        Self {
            function,
            id: fnv1a(function.as_bytes()),
            qualified: OnceLock::new(),
            collision_reported: std::sync::atomic::AtomicBool::new(false),
            ttl: Duration::from_secs(ttl_secs),
            jitter: Duration::from_secs(jitter_secs),
            negative_ttl: None,
            group: None,
            stale: Duration::ZERO,
            fail_safe: Duration::ZERO,
            fail_safe_throttle: Duration::ZERO,
            early_refresh: 0.0,
            soft_timeout: Duration::ZERO,
            hard_timeout: Duration::ZERO,
            max_loads: 0,
            load_permits: OnceLock::new(),
            schema: 0,
            counters: Counters {
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                loads: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                collisions: AtomicU64::new(0),
                stale_served: AtomicU64::new(0),
                refreshes: AtomicU64::new(0),
                fail_safe_served: AtomicU64::new(0),
                puts: AtomicU64::new(0),
                early_refreshes: AtomicU64::new(0),
                soft_timeouts: AtomicU64::new(0),
                hard_timeouts: AtomicU64::new(0),
                throttled_loads: AtomicU64::new(0),
                load_nanos: AtomicU64::new(0),
            },
            registered: Once::new(),
            metrics: OnceLock::new(),
            fingerprint: OnceLock::new(),
        }
    }

    /// This site, caching absences (`None`) for `secs` seconds.
    #[must_use]
    pub const fn with_negative_ttl(mut self, secs: u64) -> Self {
        self.negative_ttl = Some(Duration::from_secs(secs));
        self
    }

    /// This site, in the group `group` (`#[cached(group = "...")]`).
    #[must_use]
    pub const fn in_group(mut self, group: &'static str) -> Self {
        self.group = Some(group);
        self
    }

    /// This site, serving entries up to `secs` seconds past their freshness
    /// while one refresh runs in the background.
    #[must_use]
    pub const fn with_stale(mut self, secs: u64) -> Self {
        self.stale = Duration::from_secs(secs);
        self
    }

    /// This site, serving entries up to `secs` seconds past their freshness when
    /// a load fails, and loading a key at most once per `throttle_secs` then.
    #[must_use]
    pub const fn with_fail_safe(mut self, secs: u64, throttle_secs: u64) -> Self {
        self.fail_safe = Duration::from_secs(secs);
        self.fail_safe_throttle = Duration::from_secs(throttle_secs);
        self
    }

    /// This site, refreshing a fresh entry in the background before it expires,
    /// the more likely the closer its expiry and the longer its last load took
    /// (XFetch with this `beta`; 1.0 is the usual choice, larger is earlier).
    /// A `beta` that is not a positive finite number turns it off.
    #[must_use]
    pub const fn with_early_refresh(mut self, beta: f64) -> Self {
        self.early_refresh = beta;
        self
    }

    /// This site, with the loader timeouts in milliseconds (zero: none). Both
    /// apply when a fail-safe value is at hand: past `soft_ms` the caller gets
    /// that value while the load goes on in the background; at `hard_ms` the
    /// load is abandoned.
    #[must_use]
    pub const fn with_timeouts(mut self, soft_ms: u64, hard_ms: u64) -> Self {
        self.soft_timeout = Duration::from_millis(soft_ms);
        self.hard_timeout = Duration::from_millis(hard_ms);
        self
    }

    /// This site, running at most `loads` bodies at once in this process.
    #[must_use]
    pub const fn with_max_loads(mut self, loads: u64) -> Self {
        self.max_loads = if loads > usize::MAX as u64 { usize::MAX } else { loads as usize };
        self
    }

    /// XFetch's beta, if early refresh is on.
    pub(crate) fn early_refresh(&self) -> Option<f64> {
        (self.early_refresh.is_finite() && self.early_refresh > 0.0).then_some(self.early_refresh)
    }

    /// The soft loader timeout, if set.
    pub(crate) fn soft_timeout(&self) -> Option<Duration> {
        (!self.soft_timeout.is_zero()).then_some(self.soft_timeout)
    }

    /// The hard loader timeout, if set.
    pub(crate) fn hard_timeout(&self) -> Option<Duration> {
        (!self.hard_timeout.is_zero()).then_some(self.hard_timeout)
    }

    /// The semaphore of `max_loads`, if set.
    pub(crate) fn load_permits(&self) -> Option<&tokio::sync::Semaphore> {
        (self.max_loads > 0).then(|| {
            self.load_permits.get_or_init(|| {
                tokio::sync::Semaphore::new(self.max_loads.min(tokio::sync::Semaphore::MAX_PERMITS))
            })
        })
    }

    /// How long past its freshness a stale entry is served while it is refreshed.
    pub(crate) fn stale(&self) -> Duration {
        self.stale
    }

    /// How long past its freshness an entry is served when a load fails.
    pub(crate) fn fail_safe(&self) -> Duration {
        self.fail_safe
    }

    /// How long a key whose load failed is not loaded again (fail-safe).
    pub(crate) fn fail_safe_throttle(&self) -> Duration {
        self.fail_safe_throttle
    }

    /// How long entries are kept past their freshness.
    pub(crate) fn keep(&self) -> Duration {
        self.stale.max(self.fail_safe)
    }

    /// The function's `group`, if it has one.
    #[must_use]
    pub fn group(&self) -> Option<&'static str> {
        self.group
    }

    /// The configured `jitter`.
    #[must_use]
    pub fn jitter(&self) -> Duration {
        self.jitter
    }

    /// Whether absences (`None`) are cached.
    pub(crate) fn caches_absences(&self) -> bool {
        self.negative_ttl.is_some()
    }

    /// The lifetime of a new entry holding an absence.
    pub(crate) fn negative_lifetime(&self) -> Duration {
        self.negative_ttl.unwrap_or_default()
    }

    /// The site with schema version `schema` (`#[cached(schema = N)]`): entries
    /// written under another schema are misses. For a change of meaning that
    /// keeps the value type's shape (a unit, a rounding, a filter).
    #[must_use]
    pub const fn schema(mut self, schema: u32) -> Self {
        self.schema = schema;
        self
    }

    /// `module::function` of the annotated function.
    #[must_use]
    pub fn function(&self) -> &'static str {
        self.qualified.get().copied().unwrap_or(self.function)
    }

    /// Names the site after the method it serves: `path` is the method's path
    /// with its impl's type (`app::Users::count`). Generic arguments and the
    /// implementor of a trait's default body are shown as `_`, since one site
    /// serves every instantiation (`app::Service<_>::answer`,
    /// `<_ as app::Greeter>::greeting`). Set once; generated code calls it in methods.
    #[inline]
    pub fn qualify(&'static self, path: &'static str) {
        if self.qualified.get().is_none() {
            let _ = self.qualified.set(erase_instantiation(path));
        }
    }

    /// Identifies this site in stored entries.
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// An entry under this site's key was written by the site `other` with
    /// another value type or other tags (`what`): two key templates render the
    /// same key. Counted every time, logged once per site.
    #[cold]
    pub(crate) fn record_collision(&'static self, key: &crate::KeyWriter, other: u64, what: &'static str) {
        self.counters.collisions.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(observe::KEY_COLLISIONS, "function" => self.function()).increment(1);
        if !self.collision_reported.swap(true, Ordering::Relaxed) {
            let other = SITES
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .find(|site| site.id == other)
                .map_or("a function of another process or build", |site| site.function);
            tracing::warn!(
                function = self.function(),
                other,
                %key,
                "two cached functions share a key with {what}: give one of them another key template"
            );
        }
    }

    /// The configured time to live.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Fingerprint of the stored type `V`'s serde shape, the site's schema and
    /// a generic function's type arguments, remembered for the first `V` seen:
    /// a `static` is shared by every instantiation of a generic function or impl.
    pub(crate) fn fingerprint<V: serde::de::DeserializeOwned + 'static>(
        &self,
        generic_types: &[&'static str],
    ) -> u64 {
        self.fingerprint_with(std::any::TypeId::of::<V>(), crate::shape::fingerprint_of::<V>, generic_types)
    }

    /// [`Site::fingerprint`] of the type of `type_id`, whose shape's fingerprint `shape` gives.
    #[inline(never)]
    fn fingerprint_with(
        &self,
        type_id: std::any::TypeId,
        shape: fn() -> u64,
        generic_types: &[&'static str],
    ) -> u64 {
        let compute = || crate::codec::value_fingerprint(shape(), self.schema, generic_types);
        if !generic_types.is_empty() {
            return compute();
        }
        match self.fingerprint.get_or_init(|| (type_id, compute())) {
            (seen, fingerprint) if *seen == type_id => *fingerprint,
            _ => compute(),
        }
    }

    /// The lifetime of a new entry: `ttl` plus a uniform random share of `jitter`.
    pub(crate) fn entry_lifetime(&self) -> Duration {
        lifetime(self.ttl, self.jitter)
    }

    fn metrics(&'static self) -> &'static SiteMetrics {
        self.registered.call_once(|| {
            SITES.lock().unwrap_or_else(PoisonError::into_inner).push(self);
        });
        self.metrics.get_or_init(|| {
            let function = self.function();
            SiteMetrics {
                hits: metrics::counter!(observe::HITS, "function" => function),
                misses: metrics::counter!(observe::MISSES, "function" => function),
                loads: metrics::counter!(observe::LOADS, "function" => function),
                refused: metrics::counter!(observe::STORES_REFUSED, "function" => function),
                load_seconds: metrics::histogram!(observe::LOAD_SECONDS, "function" => function),
                value_bytes: metrics::histogram!(observe::VALUE_BYTES, "function" => function),
            }
        })
    }

    #[inline]
    pub(crate) fn record_hit(&'static self) {
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        self.metrics().hits.increment(1);
    }

    pub(crate) fn record_miss(&'static self) {
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        self.metrics().misses.increment(1);
    }

    pub(crate) fn record_load(&'static self, took: Duration) {
        self.counters.loads.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.counters.load_nanos.fetch_add(nanos, Ordering::Relaxed);
        let metrics = self.metrics();
        metrics.loads.increment(1);
        metrics.load_seconds.record(took.as_secs_f64());
    }

    pub(crate) fn record_value_bytes(&'static self, bytes: usize) {
        self.metrics().value_bytes.record(bytes as f64);
    }

    pub(crate) fn record_refused(&'static self) {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        self.metrics().refused.increment(1);
    }

    /// A cache failure of `class` (see `observe`) that fell back to the body.
    pub(crate) fn record_error(&'static self, class: &'static str) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(observe::ERRORS, "function" => self.function(), "class" => class).increment(1);
    }

    pub(crate) fn record_stale_served(&'static self) {
        self.counters.stale_served.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(observe::STALE_SERVED, "function" => self.function()).increment(1);
    }

    pub(crate) fn record_refresh(&'static self) {
        self.counters.refreshes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(observe::BACKGROUND_REFRESHES, "function" => self.function()).increment(1);
    }

    pub(crate) fn record_fail_safe(&'static self) {
        self.counters.fail_safe_served.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(observe::FAIL_SAFE_SERVED, "function" => self.function()).increment(1);
    }

    pub(crate) fn record_put(&'static self) {
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        let _ = self.metrics(); // listed in `stats()`
        metrics::counter!(observe::PUTS, "function" => self.function()).increment(1);
    }

    pub(crate) fn record_early_refresh(&'static self) {
        self.counters.early_refreshes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(observe::EARLY_REFRESHES, "function" => self.function()).increment(1);
    }

    pub(crate) fn record_soft_timeout(&'static self) {
        self.counters.soft_timeouts.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(observe::SOFT_TIMEOUTS, "function" => self.function()).increment(1);
    }

    pub(crate) fn record_hard_timeout(&'static self) {
        self.counters.hard_timeouts.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(observe::HARD_TIMEOUTS, "function" => self.function()).increment(1);
    }

    pub(crate) fn record_throttled_load(&'static self) {
        self.counters.throttled_loads.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(observe::THROTTLED_LOADS, "function" => self.function()).increment(1);
    }

    pub(crate) fn record_oversized(&'static self) {
        metrics::counter!(observe::OVERSIZED_VALUES, "function" => self.function()).increment(1);
    }

    /// A snapshot of this site's counters.
    #[must_use]
    pub fn stats(&self) -> SiteStats {
        SiteStats {
            function: self.function(),
            group: self.group,
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            loads: self.counters.loads.load(Ordering::Relaxed),
            refused_stores: self.counters.refused.load(Ordering::Relaxed),
            errors: self.counters.errors.load(Ordering::Relaxed),
            key_collisions: self.counters.collisions.load(Ordering::Relaxed),
            stale_served: self.counters.stale_served.load(Ordering::Relaxed),
            background_refreshes: self.counters.refreshes.load(Ordering::Relaxed),
            fail_safe_served: self.counters.fail_safe_served.load(Ordering::Relaxed),
            puts: self.counters.puts.load(Ordering::Relaxed),
            early_refreshes: self.counters.early_refreshes.load(Ordering::Relaxed),
            soft_timeouts: self.counters.soft_timeouts.load(Ordering::Relaxed),
            hard_timeouts: self.counters.hard_timeouts.load(Ordering::Relaxed),
            throttled_loads: self.counters.throttled_loads.load(Ordering::Relaxed),
            load_time: Duration::from_nanos(self.counters.load_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// FNV-1a of `bytes`, at compile time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

/// `ttl` plus a uniform random share of `jitter`, saturating.
pub(crate) fn lifetime(ttl: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return ttl;
    }
    let jitter_ms = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
    ttl.saturating_add(Duration::from_millis(fastrand::u64(0..=jitter_ms)))
}

/// A method path with the parts that differ between the instantiations one
/// site serves replaced by `_`: generic arguments, and the implementor of a
/// trait's default body. Leaked once per site.
fn erase_instantiation(path: &str) -> &'static str {
    let mut out = String::with_capacity(path.len());
    let mut depth = 0_usize;
    let path = crate::key::reader_path(path);
    let path = path.0.to_owned() + path.1;
    let path = path.as_str();
    let rest = match path.strip_prefix('<').and_then(|inner| inner.split_once(" as ")) {
        // `<Implementor as Trait>::method`: the implementor varies.
        Some((_, tail)) if !tail.is_empty() => {
            out.push_str("<_ as ");
            tail
        }
        _ => path,
    };
    for c in rest.chars() {
        match c {
            '<' => {
                if depth == 0 {
                    out.push_str("<_");
                }
                depth += 1;
            }
            '>' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push('>');
                }
            }
            _ if depth > 0 => {}
            c => out.push(c),
        }
    }
    Box::leak(out.into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::erase_instantiation;

    #[test]
    fn instantiations_one_site_serves_are_erased() {
        assert_eq!(erase_instantiation("app::Users::count"), "app::Users::count");
        assert_eq!(erase_instantiation("app::Service<app::Pg<u8>>::answer"), "app::Service<_>::answer");
        assert_eq!(
            erase_instantiation("<app::Users as app::Greeter>::greeting"),
            "<_ as app::Greeter>::greeting"
        );
        assert_eq!(erase_instantiation("<app::S<u8> as app::T<u16>>::m"), "<_ as app::T<_>>::m");
    }
}
