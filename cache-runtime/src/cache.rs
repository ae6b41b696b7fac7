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
use crate::store::fence::FencedStore;
use crate::store::memory::MemoryStore;
use crate::store::redis::{Endpoint, RedisSettings, RedisStore, Target, TlsOptions};
use crate::store::tiered::TieredStore;
use crate::store::{AnyStore, CacheError, LayerKind, LayerStatus, Store, Targets};

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
    pub(crate) store: FencedStore,
    pub(crate) flights: SingleFlight,
    pub(crate) pending_invalidations: AtomicU64,
    pub(crate) invalidation_attempts: u32,
    lease_wait: Duration,
    ttl_overrides: Box<[TtlOverride]>,
    /// Keys whose load failed and was answered by a fail-safe value: not loaded
    /// again until the deadline.
    throttled: quick_cache::sync::Cache<Box<[u8]>, Instant>,
    /// Freshness settings for functions that do not set their own.
    freshness: Freshness,
    /// Bounds the bodies running at once over every function of this cache (`max_loads`).
    load_permits: Option<tokio::sync::Semaphore>,
}

/// Cache-wide defaults of the freshness options a function does not set itself.
#[derive(Debug, Clone, Copy, Default)]
struct Freshness {
    early_refresh: f64,
    soft_timeout: Duration,
    hard_timeout: Duration,
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
    /// The coherence bus of a two-level cache ([`CacheBuilder::local_cache`]).
    pub bus: Option<BusStatus>,
}

/// How many entries a cache holds, by namespace (the key up to its first
/// single `:`: `user` of `user:7`, the function's path of a default key).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyCounts {
    /// Entries per namespace.
    pub namespaces: std::collections::BTreeMap<String, u64>,
    /// Whether every entry was counted; on Redis a scan stops at its limit.
    pub complete: bool,
}

/// The state of a two-level cache's coherence bus.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusStatus {
    /// Whether the subscriber is connected and has missed nothing, so the
    /// in-process layer serves; otherwise reads go to Redis.
    pub vouched: bool,
    /// Messages received from other processes.
    pub messages: u64,
    /// Missed messages detected (a publisher's sequence skipped a number).
    pub gaps: u64,
    /// Times the in-process layer was emptied to start over: after each
    /// (re)connection and each gap.
    pub resyncs: u64,
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
    /// Where Redis is, as given, and its target made with `tls`.
    redis: Option<(Endpoint, Target)>,
    tls: TlsOptions,
    settings: RedisSettings,
    read_from_replicas: bool,
    invalidation_attempts: u32,
    ttl_overrides: Vec<TtlOverride>,
    /// The in-process layer in front of Redis: its bound in bytes and the longest it keeps an entry.
    local: Option<(u64, Duration)>,
    local_max_silence: Duration,
    freshness: Freshness,
    max_loads: usize,
}

/// Default [`CacheBuilder::local_max_age`].
pub const DEFAULT_LOCAL_MAX_AGE: Duration = Duration::from_secs(60);

impl Default for CacheBuilder {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            estimated_entries: 100_000,
            generation_capacity: 1_000_000,
            redis: None,
            tls: TlsOptions::default(),
            settings: RedisSettings::default(),
            read_from_replicas: false,
            invalidation_attempts: 16,
            ttl_overrides: Vec::new(),
            local: None,
            local_max_silence: crate::store::bus::DEFAULT_MAX_SILENCE,
            freshness: Freshness::default(),
            max_loads: 0,
        }
    }
}

impl CacheBuilder {
    /// Bound on the in-memory cache's total weight: keys, what values occupy in
    /// memory (estimated from their serde shape: strings and sequences count
    /// their headers and contents) and bookkeeping.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// How many entries to size the in-memory tables for (a hint, not a bound).
    pub fn estimated_entries(mut self, entries: usize) -> Self {
        self.estimated_entries = entries;
        self
    }

    /// How many tag and version counters to keep in memory (default 1,000,000):
    /// a bound in bytes of 64 a counter, its name included, so counters with
    /// long names count for more (names are at most 200 bytes). A counter
    /// evicted past this bound comes back with a new generation: its entries
    /// miss once, never go stale.
    pub fn generation_capacity(mut self, counters: usize) -> Self {
        self.generation_capacity = counters;
        self
    }

    /// Stores entries in Redis at `url`: `redis://[user:password@]host:port[/db]`,
    /// or `rediss://` for TLS (with the `tls` feature). The connection is made on
    /// first use and remade after failures; Redis need not be up yet.
    ///
    /// With TLS the server's certificate must be signed by a CA of the webpki
    /// roots (those a browser trusts), or by one given to
    /// [`CacheBuilder::tls_root_ca`]; [`CacheBuilder::tls_client_cert`]
    /// presents a client certificate. rustls's crypto is `ring`: when the
    /// cache is built it becomes the process's default rustls provider, unless
    /// the application installed one before. A certificate refused at the
    /// handshake makes the cache unavailable (the function bodies run), with a
    /// warning saying what to change.
    ///
    /// # Errors
    /// A URL that cannot be parsed, TLS without the `tls` feature, or a
    /// `redis://` URL after certificates were given.
    pub fn redis(self, url: &str) -> Result<Self, ConfigError> {
        self.connect_to(Endpoint::Single(url.to_owned()))
    }

    /// Stores entries in a Redis Cluster reached through `seeds`, URLs as for
    /// [`CacheBuilder::redis`] (`redis://[user:password@]host:port`, or
    /// `rediss://` with the `tls` feature, its certificates and provider as
    /// there), all with the same credentials. Any
    /// node will do; give several (masters and replicas), since a two-level
    /// cache's subscriber connects to them in turn. Replaces
    /// [`CacheBuilder::redis`]; the other settings apply alike.
    ///
    /// The client learns the topology from the seeds and follows it by itself
    /// (redirections, failovers, resharding); every guarantee of the standalone
    /// store holds, and every wait, the client's retries included, is bounded
    /// by [`CacheBuilder::timeout`]. An entry and its lease share a hash slot;
    /// tag and version counters have slots of their own and are read in
    /// parallel, one round trip per node. Plain reads go straight to the
    /// slot's master. The circuit breaker is kept per range of slots, so a
    /// failed or stalled master costs only the calls on its slots. Connects
    /// lazily: the cluster need not be up yet.
    ///
    /// # Errors
    /// No seed, a URL that cannot be parsed, seeds with different credentials,
    /// TLS without the `tls` feature, or `redis://` seeds after certificates
    /// were given.
    ///
    /// ```
    /// # fn main() -> Result<(), cache_runtime::ConfigError> {
    /// let cache = cache_runtime::Cache::builder()
    ///     .redis_cluster(&["redis://10.0.0.1:6379", "redis://10.0.0.2:6379", "redis://10.0.0.3:6379"])?
    ///     .prefix("myapp:prod")?
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn redis_cluster<S: AsRef<str>>(self, seeds: &[S]) -> Result<Self, ConfigError> {
        self.connect_to(Endpoint::Cluster(seeds.iter().map(|url| url.as_ref().to_owned()).collect()))
    }

    /// Trusts the CA certificates of `pem` (the contents of a PEM file, one
    /// certificate or more) for the Redis server's certificate, instead of the
    /// webpki roots: for a server whose certificate a private CA signed. For
    /// `rediss://` URLs; before or after [`CacheBuilder::redis`] or
    /// [`CacheBuilder::redis_cluster`] alike, and for every node of a cluster.
    ///
    /// # Errors
    /// Without the `tls` feature; a PEM holding no certificate, or one that
    /// does not parse; a `redis://` URL given.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cache_runtime::Cache::builder()
    ///     .redis("rediss://redis.internal:6380")?
    ///     .tls_root_ca(&std::fs::read("/etc/myapp/redis-ca.crt")?)?
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn tls_root_ca(mut self, pem: &[u8]) -> Result<Self, ConfigError> {
        self.tls.set_root_ca(pem).map_err(ConfigError)?;
        self.retarget()
    }

    /// Presents a client certificate to the Redis server (for a server with
    /// `tls-auth-clients yes`): `cert_pem` its chain (the certificate first)
    /// and `key_pem` its private key (PKCS#8, PKCS#1 or SEC1), both in PEM.
    /// Otherwise as [`CacheBuilder::tls_root_ca`].
    ///
    /// # Errors
    /// Without the `tls` feature; a PEM that does not parse, holds no
    /// certificate or no key, or a key that is not the certificate's; a
    /// `redis://` URL given.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cache_runtime::Cache::builder()
    ///     .tls_root_ca(&std::fs::read("ca.crt")?)?
    ///     .tls_client_cert(&std::fs::read("client.crt")?, &std::fs::read("client.key")?)?
    ///     .redis("rediss://redis.internal:6380")?
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn tls_client_cert(mut self, cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, ConfigError> {
        self.tls.set_client_cert(cert_pem, key_pem).map_err(ConfigError)?;
        self.retarget()
    }

    /// Connects to `endpoint`, with the certificates given so far.
    fn connect_to(mut self, endpoint: Endpoint) -> Result<Self, ConfigError> {
        let target = Target::open(&endpoint, &self.tls).map_err(ConfigError)?;
        self.redis = Some((endpoint, target));
        Ok(self)
    }

    /// Makes the target again after the certificates changed.
    fn retarget(self) -> Result<Self, ConfigError> {
        match self.redis.clone() {
            Some((endpoint, _)) => self.connect_to(endpoint),
            None => Ok(self),
        }
    }

    /// On a Redis Cluster, sends reads (the entry and its counters) to a random
    /// replica of the slot's master rather than to the master (default off).
    /// Spreads reads over more machines, but a replica lags its master: for
    /// that lag (usually under a millisecond, longer under load or after a
    /// partition) a read may still find an entry or a counter an invalidation
    /// already changed, so a caller that starts right after an invalidation
    /// may get the old value. Leases, stores and invalidations always go to the
    /// master. Without a cluster it does nothing.
    pub fn read_from_replicas(mut self, enabled: bool) -> Self {
        self.read_from_replicas = enabled;
        self
    }

    /// Puts a bounded in-process layer of `max_bytes` in front of Redis (a
    /// two-level cache): a hit there costs no network, and every process's
    /// layer is kept coherent through a Redis channel. Needs [`CacheBuilder::redis`];
    /// without it the cache is in memory with this bound.
    ///
    /// What holds:
    /// - The process that invalidates (or puts) never reads its old entry afterwards.
    /// - Another process stops serving it when the bus message arrives (measured
    ///   in BENCHMARKS.md; about a round trip to Redis).
    /// - While the bus is disconnected, or after it missed a message, the layer
    ///   serves nothing: it is emptied, and reads go to Redis until it is
    ///   back. A bus that falls silent stops the layer from serving within
    ///   [`CacheBuilder::local_max_silence`] (100 ms by default).
    /// - An entry stays in the layer at most what is left of its freshness
    ///   in Redis, and at most [`CacheBuilder::local_max_age`].
    ///
    /// ```
    /// # fn main() -> Result<(), cache_runtime::ConfigError> {
    /// let cache = cache_runtime::Cache::builder()
    ///     .redis("redis://127.0.0.1:6379")?
    ///     .local_cache(64 << 20) // 64 MiB in each process
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn local_cache(mut self, max_bytes: u64) -> Self {
        let max_age = self.local.map_or(DEFAULT_LOCAL_MAX_AGE, |(_, age)| age);
        self.local = Some((max_bytes, max_age));
        self.max_bytes = max_bytes;
        self
    }

    /// The longest an entry stays in the in-process layer of a two-level cache
    /// (default [`DEFAULT_LOCAL_MAX_AGE`]): the last bound on what a process
    /// could serve if the bus lost a message unnoticed.
    pub fn local_max_age(mut self, max_age: Duration) -> Self {
        let max_bytes = self.local.map_or(self.max_bytes, |(bytes, _)| bytes);
        self.local = Some((max_bytes, max_age));
        self
    }

    /// The longest the in-process layer of a two-level cache serves while its
    /// bus is silent (default 100 ms): the subscriber connection is pinged
    /// twice as often, and when nothing has answered for this long the layer
    /// serves nothing until an answer comes. This bounds how long a process
    /// may serve an entry that another process invalidated through a Redis
    /// it can no longer hear (paused, partitioned).
    pub fn local_max_silence(mut self, silence: Duration) -> Self {
        self.local_max_silence = silence;
        self
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

    /// Whether a caller waiting for another process's load of an entry is woken
    /// when that load stores or gives up (default `true`). The loader's script
    /// publishes the entry key on `{prefix}:wake`, only for entries someone waits
    /// for; each cache keeps one subscriber connection, made on the first such
    /// wait and remade after failures. Waiters still look every 100 ms in case
    /// a message is lost, and every 2 to 50 ms while the subscription is down
    /// or turned off (`false`, for servers whose ACLs forbid `SUBSCRIBE`).
    ///
    /// ```
    /// # fn main() -> Result<(), cache_runtime::ConfigError> {
    /// let cache = cache_runtime::Cache::builder()
    ///     .redis("redis://127.0.0.1:6379/0")?
    ///     .lease_notifications(false) // poll only
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn lease_notifications(mut self, enabled: bool) -> Self {
        self.settings.lease_notifications = enabled;
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

    /// Attempts of an invalidation Redis does not take (default 16: the first,
    /// then retries 5 ms, 10 ms, 20 ms, ... and at most 5 s apart, about 25 s
    /// in all; a retry comes at once when Redis answers again after its
    /// circuit breaker opened). Until one is taken, the invalidation fences
    /// this process (the reads it covers bypass the cache).
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

    /// Early refresh for every function of this cache that does not set its
    /// own `early_refresh`: a fresh entry is refreshed in the background before
    /// it expires, with probability rising as expiry nears and with the time
    /// its last load took (XFetch, `beta` 1.0 is the usual choice; larger
    /// refreshes earlier; not a positive finite number: off). It needs a body
    /// that can run after the call returned, so it applies to the functions
    /// declared with `stale`, `early_refresh` or `soft_timeout` (their
    /// parameters are owned).
    ///
    /// ```
    /// let cache = cache_runtime::Cache::builder().early_refresh(1.0).build();
    /// ```
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.freshness.early_refresh = beta;
        self
    }

    /// The soft loader timeout of every function of this cache that does not
    /// set its own (zero: none). When a call would load while a fail-safe value
    /// is at hand (`fail_safe`), it waits at most this long for the body, then
    /// gets that value while the load goes on in the background and fills the
    /// cache. Like `early_refresh`, it applies to functions whose body owns its
    /// data (declared with `stale`, `early_refresh` or `soft_timeout`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = cache_runtime::Cache::builder().soft_timeout(Duration::from_millis(150)).build();
    /// ```
    pub fn soft_timeout(mut self, timeout: Duration) -> Self {
        self.freshness.soft_timeout = timeout;
        self
    }

    /// The hard loader timeout of every function of this cache that does not
    /// set its own (zero: none). When a fail-safe value is at hand, a body still
    /// running after this long is dropped (cancelled at its current `.await`),
    /// the fail-safe value is served and the key is throttled like after a
    /// failed load. Without such a value there is nothing else to return, so
    /// the body runs to its end.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = cache_runtime::Cache::builder().hard_timeout(Duration::from_secs(2)).build();
    /// ```
    pub fn hard_timeout(mut self, timeout: Duration) -> Self {
        self.freshness.hard_timeout = timeout;
        self
    }

    /// At most `loads` function bodies of this cache run at once in this
    /// process, over all functions (0: no limit, the default). A caller beyond
    /// the limit waits for a turn, first come first served, unless a stale
    /// value within its `stale` or `fail_safe` window is at hand: then it gets
    /// that value at once. A function's own `max_loads` applies as well.
    ///
    /// ```
    /// let cache = cache_runtime::Cache::builder().max_loads(32).build();
    /// ```
    pub fn max_loads(mut self, loads: usize) -> Self {
        self.max_loads = loads;
        self
    }

    /// The cache.
    pub fn build(self) -> Cache {
        let lease_wait = self.settings.lease_wait;
        let memory = || MemoryStore::new(self.max_bytes, self.estimated_entries, self.generation_capacity);
        let target = self.redis.map(|(_, target)| match target {
            Target::Cluster(mut cluster) => {
                cluster.set_read_from_replicas(self.read_from_replicas);
                Target::Cluster(cluster)
            }
            single @ Target::Single(_) => single,
        });
        let store = match (target, self.local) {
            (Some(target), Some((_, max_age))) => {
                let redis = RedisStore::new(target, self.settings);
                AnyStore::Tiered(TieredStore::new(memory(), redis, max_age, self.local_max_silence))
            }
            (Some(target), None) => AnyStore::Redis(RedisStore::new(target, self.settings)),
            (None, _) => AnyStore::Memory(memory()),
        };
        Cache {
            inner: Arc::new(Inner {
                store: FencedStore::new(store),
                flights: SingleFlight::new(),
                pending_invalidations: AtomicU64::new(0),
                invalidation_attempts: self.invalidation_attempts,
                lease_wait,
                ttl_overrides: self.ttl_overrides.into_boxed_slice(),
                throttled: quick_cache::sync::Cache::new(THROTTLED_KEYS),
                freshness: self.freshness,
                load_permits: (self.max_loads > 0).then(|| {
                    tokio::sync::Semaphore::new(self.max_loads.min(tokio::sync::Semaphore::MAX_PERMITS))
                }),
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

    /// Removes the entry of a key written as its template renders it, with
    /// values escaped by [`KeyWriter::write_part`], and refuses the store of any
    /// load of it in progress. Prefer [`invalidate!`](crate::invalidate), which
    /// names the entry by its reader and renders the key with the reader's code.
    ///
    /// # Errors
    /// When Redis did not take it at once (never for the in-memory cache); it
    /// is then retried in the background.
    ///
    /// ```
    /// use cache_runtime::{Cache, KeyWriter};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut key = KeyWriter::new(); // the key of `key = "email:<address>"`
    /// key.write_literal("email:");
    /// key.write_part("a:b@x.io"); // escaped as the template escapes it
    /// Cache::in_memory().invalidate_rendered(key).await.unwrap();
    /// # });
    /// ```
    pub async fn invalidate_rendered(&self, mut key: KeyWriter) -> Result<(), CacheError> {
        key.shorten();
        invalidation::invalidate(self, Targets { keys: vec![key], dependencies: Vec::new() }).await
    }

    /// Removes the entry of a key given as text, unescaped: `"user:42"` works,
    /// but a key whose values needed escaping (`"email:a:b@x.io"`) is not the
    /// key the template rendered, so nothing is removed.
    ///
    /// # Errors
    /// When Redis did not take it at once (never for the in-memory cache).
    #[deprecated(
        since = "0.1.0",
        note = "text keys are not escaped as templates escape values: use `invalidate!(reader(args))` or `Cache::invalidate_rendered`"
    )]
    pub async fn invalidate_key(&self, key: &str) -> Result<(), CacheError> {
        let mut writer = KeyWriter::new();
        writer.write_literal(key);
        self.invalidate_rendered(writer).await
    }

    /// Empties the cache: every entry of this cache, and no load in progress
    /// is stored. In Redis it deletes, with `SCAN` and `UNLINK`, the keys of
    /// the shapes this cache writes (`{prefix}:{…}` entries, leases and wait
    /// marks, `{prefix}:{}t:…` and `{prefix}:{}v:…` counters) and nothing
    /// else: neither a cache whose prefix extends this one (`app:v2` beside
    /// `app`) nor the application's own keys under the same text
    /// (`app:sessions:42`).
    ///
    /// # Errors
    /// When Redis cannot be reached (never for the in-memory cache); part of
    /// the keys may be deleted by then.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// cache_runtime::Cache::in_memory().clear().await.unwrap();
    /// # });
    /// ```
    pub async fn clear(&self) -> Result<(), CacheError> {
        self.inner.flights.doom_all();
        let deleted = match &*self.inner.store {
            AnyStore::Memory(memory) => {
                memory.clear();
                return Ok(());
            }
            AnyStore::Redis(redis) => redis.clear().await?,
            AnyStore::Tiered(tiered) => tiered.clear().await?,
        };
        tracing::info!(deleted, "cache cleared");
        Ok(())
    }

    /// Counts the entries by namespace: exactly in memory; on Redis (and for a
    /// two-level cache, which counts Redis) with `SCAN`, stopping after about
    /// `limit` keys. Meant for a background task, never the request path.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let counts = cache_runtime::Cache::in_memory().key_counts(10_000).await.unwrap();
    /// assert!(counts.namespaces.is_empty() && counts.complete);
    /// # });
    /// ```
    pub async fn key_counts(&self, limit: u64) -> Result<KeyCounts, CacheError> {
        let redis = match &*self.inner.store {
            AnyStore::Memory(memory) => {
                return Ok(KeyCounts { namespaces: memory.key_counts(), complete: true });
            }
            AnyStore::Redis(redis) => redis,
            AnyStore::Tiered(tiered) => tiered.l2(),
        };
        let (namespaces, _scanned, complete) = redis.key_counts(limit).await?;
        Ok(KeyCounts { namespaces, complete })
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

    /// Drops the next message the coherence bus receives, as if Redis lost it:
    /// a test hook for gap detection. Does nothing without a two-level cache.
    #[doc(hidden)]
    pub fn drop_next_bus_message(&self) {
        if let AnyStore::Tiered(tiered) = &*self.inner.store {
            tiered.bus().drop_next_message();
        }
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
        let (layers, bus) = match &*self.inner.store {
            AnyStore::Tiered(tiered) => {
                let mut local = tiered.l1().status();
                local.kind = LayerKind::Local;
                let bus = tiered.bus();
                let bus = BusStatus {
                    vouched: bus.vouched(),
                    messages: bus.messages.load(Ordering::Relaxed),
                    gaps: bus.gaps.load(Ordering::Relaxed),
                    resyncs: bus.resyncs.load(Ordering::Relaxed),
                };
                (vec![local, tiered.l2().status()], Some(bus))
            }
            store => (vec![store.status()], None),
        };
        CacheStatus {
            layers,
            pending_invalidations: self.inner.pending_invalidations.load(Ordering::Relaxed),
            bus,
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

    /// XFetch's beta for `site`: its own, else this cache's; `None`: off.
    pub(crate) fn early_refresh(&self, site: &Site) -> Option<f64> {
        let beta = self.inner.freshness.early_refresh;
        site.early_refresh().or_else(|| (beta.is_finite() && beta > 0.0).then_some(beta))
    }

    /// The soft loader timeout of `site`: its own, else this cache's.
    pub(crate) fn soft_timeout(&self, site: &Site) -> Option<Duration> {
        let soft = self.inner.freshness.soft_timeout;
        site.soft_timeout().or_else(|| (!soft.is_zero()).then_some(soft))
    }

    /// The hard loader timeout of `site`: its own, else this cache's.
    pub(crate) fn hard_timeout(&self, site: &Site) -> Option<Duration> {
        let hard = self.inner.freshness.hard_timeout;
        site.hard_timeout().or_else(|| (!hard.is_zero()).then_some(hard))
    }

    /// The semaphore bounding the bodies of every function of this cache.
    pub(crate) fn load_permits(&self) -> Option<&tokio::sync::Semaphore> {
        self.inner.load_permits.as_ref()
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
