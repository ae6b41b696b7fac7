//! The [`Cache`] handle, its builder and the process-wide default.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::call::{TAG, VERSION, dependency_name};
use crate::invalidation;
use crate::key::KeyWriter;
use crate::single_flight::SingleFlight;
use crate::site::Site;
use crate::store::memory::MemoryStore;
use crate::store::redis::{RedisSettings, RedisStore};
use crate::store::{AnyStore, CacheError, LayerStatus, Store, Targets};

/// How many keys the fail-safe throttle remembers (the oldest are forgotten first).
const THROTTLED_KEYS: usize = 10_000;

/// Default bound of the in-memory cache: 256 MiB of keys, values and bookkeeping.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// A cache: cheap to clone (one `Arc`), shared by every clone.
///
/// In memory (the default), or on Redis. `#[cached]` and `#[invalidates]` use
/// the process-wide default (see [`Cache::install_default`]) unless given
/// `cache = <expr>`.
///
/// ```
/// use cache_runtime::Cache;
///
/// let cache = Cache::builder().max_bytes(64 * 1024 * 1024).build();
/// let same = cache.clone();
/// assert_eq!(same.status(), cache.status());
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: AnyStore,
    pub(crate) flights: SingleFlight,
    pub(crate) pending_invalidations: AtomicU64,
    pub(crate) invalidation_attempts: u32,
    lease_wait: Duration,
    ttl_overrides: Box<[TtlOverride]>,
    /// Keys whose load failed and was answered by a fail-safe value: not loaded
    /// again until the deadline.
    throttled: quick_cache::sync::Cache<Box<[u8]>, Instant>,
}

/// A `ttl` and `jitter` set at start-up for a function or a group.
#[derive(Debug, Clone)]
struct TtlOverride {
    target: String,
    ttl: Duration,
    jitter: Duration,
}

impl TtlOverride {
    fn applies_to(&self, site: &Site) -> bool {
        let function = site.function();
        site.group() == Some(self.target.as_str())
            || function == self.target
            || function.strip_suffix(self.target.as_str()).is_some_and(|rest| rest.ends_with("::"))
    }
}

/// What [`Cache::status`] reports: each layer's size and health.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStatus {
    /// The layers, nearest first.
    pub layers: Vec<LayerStatus>,
    /// Invalidations the store has not taken yet, being retried in the background.
    pub pending_invalidations: u64,
}

impl CacheStatus {
    /// Whether a layer's circuit breaker is not closed: calls skip it.
    #[must_use]
    pub fn degraded(&self) -> bool {
        self.layers
            .iter()
            .any(|layer| layer.breaker.is_some_and(|state| state != crate::BreakerState::Closed))
    }

    /// Entries held in process memory, over all layers.
    #[must_use]
    pub fn entries(&self) -> usize {
        self.layers.iter().filter_map(|layer| layer.entries).sum()
    }

    /// Weight of the entries held in process memory, in bytes.
    #[must_use]
    pub fn weight_bytes(&self) -> u64 {
        self.layers.iter().filter_map(|layer| layer.weight_bytes).sum()
    }
}

/// A cache could not be configured as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub(crate) String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Builds a [`Cache`].
///
/// ```
/// # fn main() -> Result<(), cache_runtime::ConfigError> {
/// use std::time::Duration;
///
/// let in_memory = cache_runtime::Cache::builder()
///     .max_bytes(32 * 1024 * 1024)
///     .estimated_entries(50_000)
///     .build();
///
/// // Connects lazily: building needs no running Redis.
/// let shared = cache_runtime::Cache::builder()
///     .redis("redis://127.0.0.1:6379/0")?
///     .prefix("myapp:prod")?
///     .timeout(Duration::from_millis(100))
///     .build();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CacheBuilder {
    max_bytes: u64,
    estimated_entries: usize,
    generation_capacity: usize,
    redis: Option<redis::Client>,
    settings: RedisSettings,
    invalidation_attempts: u32,
    ttl_overrides: Vec<TtlOverride>,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            estimated_entries: 100_000,
            generation_capacity: 1_000_000,
            redis: None,
            settings: RedisSettings::default(),
            invalidation_attempts: 10,
            ttl_overrides: Vec::new(),
        }
    }
}

impl CacheBuilder {
    /// Bound on the in-memory cache's total weight: keys, encoded value sizes and bookkeeping.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// How many entries to size the in-memory tables for (a hint, not a bound).
    pub fn estimated_entries(mut self, entries: usize) -> Self {
        self.estimated_entries = entries;
        self
    }

    /// How many tag and version counters to keep in memory. A counter evicted past
    /// this bound comes back with a new generation: its entries miss once, never go stale.
    pub fn generation_capacity(mut self, counters: usize) -> Self {
        self.generation_capacity = counters;
        self
    }

    /// Stores entries in Redis at `url`: `redis://[user:password@]host:port[/db]`,
    /// or `rediss://` for TLS (with the `tls` feature). The connection is made on
    /// first use and remade after failures; Redis need not be up yet.
    ///
    /// # Errors
    /// A URL that cannot be parsed, or TLS without the `tls` feature.
    pub fn redis(mut self, url: &str) -> Result<Self, ConfigError> {
        if url.starts_with("rediss://") && !cfg!(feature = "tls") {
            return Err(ConfigError(format!(
                "{url:?} asks for TLS: enable the `tls` feature of cache-runtime"
            )));
        }
        let client = redis::Client::open(url)
            .map_err(|error| ConfigError(format!("invalid Redis URL {url:?}: {error}")))?;
        self.redis = Some(client);
        Ok(self)
    }

    /// Prefix of every Redis key, such as `"myapp:prod"` (default `"cache"`).
    ///
    /// # Errors
    /// An empty prefix, or one with braces, whitespace or control characters
    /// (braces would change which Redis Cluster slot keys land in).
    pub fn prefix(mut self, prefix: &str) -> Result<Self, ConfigError> {
        if prefix.is_empty()
            || prefix.chars().any(|c| matches!(c, '{' | '}') || c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError(format!(
                "invalid key prefix {prefix:?}: use a non-empty name without braces or whitespace, such as \"myapp:prod\""
            )));
        }
        prefix.clone_into(&mut self.settings.prefix);
        Ok(self)
    }

    /// Longest wait for a connection to Redis, and for each answer, before the
    /// body runs instead (default 250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// How long a load may hold an entry's lease (default 5 s); a longer load
    /// is not stored.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.settings.lease = lease;
        self
    }

    /// How long callers in other processes wait for a lease holder's value
    /// before running the body themselves (default 500 ms).
    pub fn lease_wait(mut self, wait: Duration) -> Self {
        self.settings.lease_wait = wait;
        self
    }

    /// Values larger than this, encoded, are not stored in Redis (default 4 MiB).
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_value_bytes = bytes;
        self
    }

    /// Consecutive failures that open the circuit breaker, and how long it
    /// stays open before one probe (defaults 5 and 1 s).
    pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.settings.breaker_threshold = failures;
        self.settings.breaker_cooldown = cooldown;
        self
    }

    /// Attempts of an invalidation Redis does not take (default 10: the first,
    /// then retries 100 ms, 200 ms, ... and at most 5 s apart, about 21 s in all).
    pub fn invalidation_attempts(mut self, attempts: u32) -> Self {
        self.invalidation_attempts = attempts.max(1);
        self
    }

    /// Overrides the `ttl` and `jitter` of the `#[cached]` functions `target`
    /// names, for entries this cache stores: a function's path
    /// (`"myapp::users::get_user"`), its last segments (`"users::get_user"`,
    /// `"get_user"`), or a `group = "..."` given to several functions. For TTLs
    /// from configuration, read at start-up. The first override that names a
    /// function applies.
    ///
    /// # Errors
    /// An empty `target`, or a `ttl` of zero.
    ///
    /// ```
    /// # fn main() -> Result<(), cache_runtime::ConfigError> {
    /// use std::time::Duration;
    ///
    /// let user_ttl = Duration::from_secs(120); // from the configuration file
    /// let cache = cache_runtime::Cache::builder()
    ///     .ttl_override("users::get_user", user_ttl, Duration::from_secs(10))?
    ///     .ttl_override("reports", Duration::from_secs(3600), Duration::ZERO)? // #[cached(group = "reports")]
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn ttl_override(
        mut self,
        target: &str,
        ttl: Duration,
        jitter: Duration,
    ) -> Result<Self, ConfigError> {
        if target.is_empty() {
            return Err(ConfigError("a TTL override needs a function path or a group name".to_owned()));
        }
        if ttl.is_zero() {
            return Err(ConfigError(format!(
                "the TTL override for {target:?} is zero, which would never serve a cached value"
            )));
        }
        self.ttl_overrides.push(TtlOverride { target: target.to_owned(), ttl, jitter });
        Ok(self)
    }

    /// The cache.
    pub fn build(self) -> Cache {
        let lease_wait = self.settings.lease_wait;
        let store = match self.redis {
            Some(client) => AnyStore::Redis(RedisStore::new(client, self.settings)),
            None => AnyStore::Memory(MemoryStore::new(
                self.max_bytes,
                self.estimated_entries,
                self.generation_capacity,
            )),
        };
        Cache {
            inner: Arc::new(Inner {
                store,
                flights: SingleFlight::new(),
                pending_invalidations: AtomicU64::new(0),
                invalidation_attempts: self.invalidation_attempts,
                lease_wait,
                ttl_overrides: self.ttl_overrides.into_boxed_slice(),
                throttled: quick_cache::sync::Cache::new(THROTTLED_KEYS),
            }),
        }
    }
}

static INSTALLED: OnceLock<Cache> = OnceLock::new();
static FALLBACK: OnceLock<Cache> = OnceLock::new();

/// [`Cache::install_default`] was called twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlreadyInstalled;

impl fmt::Display for AlreadyInstalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a default cache is already installed")
    }
}

impl std::error::Error for AlreadyInstalled {}

impl Cache {
    /// A builder with the defaults: in memory, [`DEFAULT_MAX_BYTES`].
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// An in-memory cache with the default bounds.
    #[must_use]
    pub fn in_memory() -> Self {
        Self::builder().build()
    }

    /// Makes this cache the process-wide default used by `#[cached]` and
    /// `#[invalidates]` without `cache = ...`. Do it once, at start-up; until
    /// then an in-memory default serves.
    ///
    /// # Errors
    /// [`AlreadyInstalled`] when a default was installed before.
    ///
    /// ```
    /// let cache = cache_runtime::Cache::in_memory();
    /// cache.clone().install_default().unwrap();
    /// assert!(cache_runtime::Cache::in_memory().install_default().is_err());
    /// ```
    pub fn install_default(self) -> Result<(), AlreadyInstalled> {
        INSTALLED.set(self).map_err(|_| AlreadyInstalled)
    }

    /// The process-wide default cache.
    ///
    /// ```
    /// let cache = cache_runtime::Cache::default_cache();
    /// assert_eq!(cache.status().layers[0].kind, cache_runtime::LayerKind::Memory);
    /// ```
    #[must_use]
    pub fn default_cache() -> &'static Cache {
        match INSTALLED.get() {
            Some(cache) => cache,
            None => FALLBACK.get_or_init(Cache::in_memory),
        }
    }

    /// Removes the entry of a rendered key (`"user:42"`), and refuses the store
    /// of any load of it in progress.
    ///
    /// # Errors
    /// When Redis cannot be reached (never for the in-memory cache).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// cache_runtime::Cache::in_memory().invalidate_key("user:42").await.unwrap();
    /// # });
    /// ```
    pub async fn invalidate_key(&self, key: &str) -> Result<(), CacheError> {
        let mut writer = KeyWriter::new();
        writer.write_literal(key);
        writer.shorten();
        invalidation::invalidate(self, Targets { keys: vec![writer], dependencies: Vec::new() }).await
    }

    /// Invalidates every entry tagged `tag` (`"org:7"`), in O(1).
    ///
    /// # Errors
    /// When Redis cannot be reached (never for the in-memory cache).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// cache_runtime::Cache::in_memory().invalidate_tag("org:7").await.unwrap();
    /// # });
    /// ```
    pub async fn invalidate_tag(&self, tag: &str) -> Result<(), CacheError> {
        invalidation::invalidate(
            self,
            Targets { keys: Vec::new(), dependencies: vec![dependency_name(TAG, tag)] },
        )
        .await
    }

    /// Moves the versioned namespace `version` (`"team:3"`) to a new version: every
    /// entry of the old one becomes unreachable at once.
    ///
    /// # Errors
    /// When Redis cannot be reached (never for the in-memory cache).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// cache_runtime::Cache::in_memory().bump_version("team:3").await.unwrap();
    /// # });
    /// ```
    pub async fn bump_version(&self, version: &str) -> Result<(), CacheError> {
        invalidation::invalidate(
            self,
            Targets { keys: Vec::new(), dependencies: vec![dependency_name(VERSION, version)] },
        )
        .await
    }

    /// Runs a raw Redis command on this cache's connection, under its timeout
    /// and circuit breaker; `None` for an in-memory cache. For tools and tests.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let cache = cache_runtime::Cache::in_memory();
    /// assert!(cache.redis_command::<String>(redis::cmd("PING")).await.is_none());
    /// # });
    /// ```
    pub async fn redis_command<T: redis::FromRedisValue>(
        &self,
        command: redis::Cmd,
    ) -> Option<Result<T, CacheError>> {
        Some(self.inner.store.redis()?.raw(command).await)
    }

    /// The full Redis key of a rendered cache key (`"user:42"` gives
    /// `"{prefix}:{user:42}"`); `None` for an in-memory cache.
    #[must_use]
    pub fn redis_key(&self, key: &str) -> Option<String> {
        let redis = self.inner.store.redis()?;
        let mut writer = KeyWriter::new();
        writer.write_literal(key);
        writer.shorten();
        Some(String::from_utf8_lossy(&redis.entry_key(writer.as_bytes())).into_owned())
    }

    /// Each layer's size and health, and the invalidations still being retried.
    ///
    /// ```
    /// let cache = cache_runtime::Cache::in_memory();
    /// let status = cache.status();
    /// assert_eq!(status.entries(), 0);
    /// assert!(!status.degraded());
    /// ```
    #[must_use]
    pub fn status(&self) -> CacheStatus {
        CacheStatus {
            layers: vec![self.inner.store.status()],
            pending_invalidations: self.inner.pending_invalidations.load(Ordering::Relaxed),
        }
    }

    /// The lifetime of a new entry of `site`: its `ttl` and `jitter`, or an override's.
    pub(crate) fn entry_lifetime(&self, site: &Site) -> Duration {
        match self.inner.ttl_overrides.iter().find(|o| o.applies_to(site)) {
            Some(o) => crate::site::lifetime(o.ttl, o.jitter),
            None => site.entry_lifetime(),
        }
    }

    /// Whether `key` failed to load recently and is answered by its fail-safe value.
    pub(crate) fn is_throttled(&self, key: &[u8]) -> bool {
        self.inner.throttled.get(key).is_some_and(|until| Instant::now() < until)
    }

    /// Answers `key` by its fail-safe value, without loading, for `duration`.
    pub(crate) fn throttle(&self, key: &[u8], duration: Duration) {
        if !duration.is_zero() {
            self.inner.throttled.insert(key.into(), crate::entry_info::deadline_after(duration));
        }
    }

    /// How long a call waits for another process's load of the same entry.
    pub(crate) fn lease_wait(&self) -> Duration {
        self.inner.lease_wait
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache").field("status", &self.status()).finish_non_exhaustive()
    }
}
