//! The [`Cache`] handle, its builder and the process-wide default.

use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::key::KeyWriter;
use crate::memory::MemoryStore;
use crate::single_flight::SingleFlight;

/// Default bound of the in-memory cache: 256 MiB of keys, values and bookkeeping.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// A cache: cheap to clone (one `Arc`), shared by every clone.
///
/// `#[cached]` and `#[invalidates]` use the process-wide default (see
/// [`Cache::install_default`]) unless given `cache = <expr>`.
///
/// ```
/// use cache_runtime::Cache;
///
/// let cache = Cache::builder().max_bytes(64 * 1024 * 1024).build();
/// let same = cache.clone();
/// assert_eq!(same.len(), cache.len());
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) memory: MemoryStore,
    pub(crate) flights: SingleFlight,
}

/// Builds a [`Cache`].
///
/// ```
/// let cache = cache_runtime::Cache::builder()
///     .max_bytes(32 * 1024 * 1024)
///     .estimated_entries(50_000)
///     .build();
/// assert!(cache.is_empty());
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CacheBuilder {
    max_bytes: u64,
    estimated_entries: usize,
    generation_capacity: usize,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            estimated_entries: 100_000,
            generation_capacity: 1_000_000,
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

    /// How many tag and version counters to keep. A counter evicted past this
    /// bound comes back with a new generation: its entries miss once, never go stale.
    pub fn generation_capacity(mut self, counters: usize) -> Self {
        self.generation_capacity = counters;
        self
    }

    /// The cache.
    pub fn build(self) -> Cache {
        Cache {
            inner: Arc::new(Inner {
                memory: MemoryStore::new(
                    self.max_bytes,
                    self.estimated_entries,
                    self.generation_capacity,
                ),
                flights: SingleFlight::new(),
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
    /// cache.invalidate_key("user:1");
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
    /// ```
    /// cache_runtime::Cache::in_memory().invalidate_key("user:42");
    /// ```
    pub fn invalidate_key(&self, key: &str) {
        let mut writer = KeyWriter::new();
        writer.write_literal(key);
        writer.shorten();
        self.invalidate_rendered_key(&writer);
    }

    /// Invalidates every entry tagged `tag` (`"org:7"`), in O(1).
    ///
    /// ```
    /// cache_runtime::Cache::in_memory().invalidate_tag("org:7");
    /// ```
    pub fn invalidate_tag(&self, tag: &str) {
        self.inner
            .memory
            .generations
            .bump(&crate::private::dependency_name(crate::private::TAG, tag));
    }

    /// Moves the versioned namespace `version` (`"team:3"`) to a new version: every
    /// entry of the old one becomes unreachable at once.
    ///
    /// ```
    /// cache_runtime::Cache::in_memory().bump_version("team:3");
    /// ```
    pub fn bump_version(&self, version: &str) {
        self.inner
            .memory
            .generations
            .bump(&crate::private::dependency_name(
                crate::private::VERSION,
                version,
            ));
    }

    pub(crate) fn invalidate_rendered_key(&self, key: &KeyWriter) {
        let memory = &self.inner.memory;
        self.inner.flights.doom(key.as_bytes(), || {
            memory.remove(key.as_bytes());
        });
    }

    /// Number of entries held, expired ones included until evicted or replaced.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.memory.len()
    }

    /// Whether the cache holds no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total weight of the in-memory entries, in bytes.
    #[must_use]
    pub fn weight_bytes(&self) -> u64 {
        self.inner.memory.weight()
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}
