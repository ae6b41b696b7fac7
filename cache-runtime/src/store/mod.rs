//! Where entries live: the stores behind the one read path.
//!
//! A store answers the engine's few questions: a synchronous [`Store::probe`]
//! of process memory (so an in-memory hit stays a few hundred nanoseconds), a
//! [`Store::lookup`], [`Store::begin_load`] (take the entry's lease and read
//! the generations the entry will be stored under), [`Store::commit`] (refused
//! when an invalidation overtook the load), [`Store::abandon`] (give the lease
//! back), [`Store::invalidate`] and [`Store::status`].
//!
//! Every store applies the same rule: an entry is valid while every tag and
//! version it was stored under is still at the generation it saw when its
//! load began. [`AnyStore`] is the one place that knows which store a cache
//! has.

pub(crate) mod bus;
pub(crate) mod fence;
pub(crate) mod generations;
pub(crate) mod memory;
pub(crate) mod redis;
pub(crate) mod tiered;

use std::sync::Arc;
use std::time::Duration;

use crate::entry_info::EntryMeta;
use crate::key::KeyWriter;
use crate::site::Site;
use crate::value::{SharedValue, ValueOps};
pub(crate) use memory::MemoryEntry;
pub(crate) use redis::ReleaseWatch;
pub use redis::{BreakerState, CacheError};

/// One `#[cached]` call, as the stores see it.
#[derive(Clone, Copy)]
pub(crate) struct Request<'a> {
    pub(crate) site: &'static Site,
    /// The rendered, shortened key.
    pub(crate) key: &'a KeyWriter,
    /// Counter names of the call's tags and versions (`t:org:7`, `v:team:3`).
    pub(crate) dependencies: &'a [String],
    pub(crate) ops: &'static ValueOps,
    /// Fingerprint of the stored type's serde shape, the schema and a generic function's type arguments.
    pub(crate) fingerprint: u64,
    /// Whether the function can answer with a cached absence (`None`, `Ok(None)`).
    pub(crate) absences: bool,
}

impl Request<'_> {
    /// Whether `value` answers this call: of its type, or an absence it can give.
    pub(crate) fn accepts(&self, value: &SharedValue) -> bool {
        self.ops.holds(value) || (self.absences && crate::value::is_absent(value))
    }
}

/// What a lookup found.
pub(crate) enum Found {
    Fresh(SharedValue, EntryMeta),
    /// Past its freshness but kept to be served stale; its tags and versions are current.
    Stale(SharedValue, EntryMeta),
    Miss,
    /// The store could not be asked: run the body, store nothing.
    Unavailable,
}

/// Permission to load an entry, and the generations it will be stored under.
#[derive(Clone)]
pub(crate) struct Ticket {
    pub(crate) lease: Lease,
    /// Generations of [`Request::dependencies`], in order, when the load began.
    pub(crate) generations: Vec<u64>,
    /// In a two-level cache: the in-process layer's generations, when it may be filled too.
    pub(crate) local: Option<Vec<u64>>,
    /// In a two-level cache: a put, announced to the other processes once stored.
    pub(crate) announce: bool,
}

impl Ticket {
    pub(crate) fn new(lease: Lease, generations: Vec<u64>) -> Self {
        Self { lease, generations, local: None, announce: false }
    }
}

/// Who loads an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lease {
    /// This caller does: commit with this token.
    Held(u128),
    /// Another process does.
    Busy,
}

/// A loaded value to store.
pub(crate) struct Fill<'a> {
    pub(crate) value: &'a SharedValue,
    /// How long the value is fresh.
    pub(crate) lifetime: Duration,
    /// How much longer it is kept, to be served stale.
    pub(crate) keep: Duration,
    pub(crate) load_time: Duration,
}

/// How a commit ended.
pub(crate) enum Commit {
    Stored(EntryMeta),
    /// An invalidation overtook the load: the value is stale.
    Refused,
    /// Not stored (too large, or the store failed), but current.
    NotStored,
}

/// What one invalidation removes: rendered keys, and tag/version counter names.
#[derive(Debug, Clone, Default)]
pub(crate) struct Targets {
    pub(crate) keys: Vec<KeyWriter>,
    pub(crate) dependencies: Vec<String>,
}

/// Whether a call respects a remote store's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Urgency {
    /// Skip the store while its breaker is open.
    Normal,
    /// Ask anyway (an invalidation retry); the outcome still counts.
    Forced,
}

/// The health and size of one layer of a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerStatus {
    /// What the layer is.
    pub kind: LayerKind,
    /// Entries held in process memory (expired ones included until evicted); `None` for a remote layer.
    pub entries: Option<usize>,
    /// Weight of the in-memory entries in bytes; `None` for a remote layer.
    pub weight_bytes: Option<u64>,
    /// The layer's circuit breaker, if it has one.
    pub breaker: Option<BreakerState>,
    /// Entries evicted to stay within the bound; `None` for a remote layer.
    pub evictions: Option<u64>,
    /// The last misconfiguration the layer met in the past minute (a
    /// permission Redis refused, a certificate it rejected), with its fix.
    pub problem: Option<String>,
}

/// The kind of a cache layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayerKind {
    /// Process memory.
    Memory,
    /// A Redis server.
    Redis,
    /// Process memory in front of Redis, kept coherent by the bus (a two-level cache).
    Local,
}

/// The questions the engine asks a store.
pub(crate) trait Store {
    /// A fresh, valid entry of this value type in process memory, without waiting.
    fn probe(&self, key: &[u8], fingerprint: u64) -> Option<Arc<MemoryEntry>>;
    /// A fresh, valid entry, wherever the store keeps it.
    async fn lookup(&self, request: &Request<'_>) -> Found;
    /// Takes the entry's lease for `token` and reads the generations of its
    /// dependencies. The caller guards `token` before asking, so a call cut off
    /// while the lease is being taken still gives it back.
    async fn begin_load(
        &self,
        request: &Request<'_>,
        lifetime: Duration,
        token: u128,
    ) -> Result<Ticket, CacheError>;
    /// [`Store::begin_load`] for a put: takes the lease over even when another
    /// load holds it, so that load's commit is refused.
    async fn begin_put(
        &self,
        request: &Request<'_>,
        lifetime: Duration,
        token: u128,
    ) -> Result<Ticket, CacheError>;
    /// Stores the value if the lease is still ours and no dependency moved.
    async fn commit(&self, request: &Request<'_>, ticket: &Ticket, fill: Fill<'_>) -> Commit;
    /// Whether a load's value is still current: its lease still holds `token`
    /// and no dependency moved. For values that could not be stored.
    async fn still_current(
        &self,
        request: &Request<'_>,
        token: u128,
        ticket: &Ticket,
    ) -> Result<bool, CacheError>;
    /// Gives the lease of `token` back (if it holds it) without storing; never waits.
    fn abandon(&self, key: &KeyWriter, token: u128);
    /// The current generation of dependency `name`, kept at least `keep_for`
    /// (a tag a body learned while loading).
    async fn observe(&self, name: &str, keep_for: Duration) -> Result<u64, CacheError>;
    /// Deletes keys and moves dependencies to new generations.
    async fn invalidate(&self, targets: &Targets, urgency: Urgency) -> Result<(), CacheError>;
    /// Interest in the release of another process's lease of `key`, taken
    /// before the lease is asked for; `None` where releases are not announced.
    fn watch_release(&self, key: &KeyWriter) -> Option<ReleaseWatch>;
    /// Whether the store is outside the process (its calls can be cut off halfway).
    fn is_remote(&self) -> bool;
    fn status(&self) -> LayerStatus;
}

/// The store of a cache.
pub(crate) enum AnyStore {
    Memory(memory::MemoryStore),
    Redis(redis::RedisStore),
    Tiered(tiered::TieredStore),
}

macro_rules! each_store {
    ($self:ident, $store:ident => $body:expr) => {
        match $self {
            AnyStore::Memory($store) => $body,
            AnyStore::Redis($store) => $body,
            AnyStore::Tiered($store) => $body,
        }
    };
}

impl Store for AnyStore {
    #[inline]
    fn probe(&self, key: &[u8], fingerprint: u64) -> Option<Arc<MemoryEntry>> {
        each_store!(self, store => store.probe(key, fingerprint))
    }

    async fn lookup(&self, request: &Request<'_>) -> Found {
        each_store!(self, store => store.lookup(request).await)
    }

    async fn begin_load(
        &self,
        request: &Request<'_>,
        lifetime: Duration,
        token: u128,
    ) -> Result<Ticket, CacheError> {
        each_store!(self, store => store.begin_load(request, lifetime, token).await)
    }

    async fn begin_put(
        &self,
        request: &Request<'_>,
        lifetime: Duration,
        token: u128,
    ) -> Result<Ticket, CacheError> {
        each_store!(self, store => store.begin_put(request, lifetime, token).await)
    }

    async fn commit(&self, request: &Request<'_>, ticket: &Ticket, fill: Fill<'_>) -> Commit {
        each_store!(self, store => store.commit(request, ticket, fill).await)
    }

    async fn still_current(
        &self,
        request: &Request<'_>,
        token: u128,
        ticket: &Ticket,
    ) -> Result<bool, CacheError> {
        each_store!(self, store => store.still_current(request, token, ticket).await)
    }

    async fn observe(&self, name: &str, keep_for: Duration) -> Result<u64, CacheError> {
        each_store!(self, store => store.observe(name, keep_for).await)
    }

    fn abandon(&self, key: &KeyWriter, token: u128) {
        each_store!(self, store => store.abandon(key, token));
    }

    async fn invalidate(&self, targets: &Targets, urgency: Urgency) -> Result<(), CacheError> {
        each_store!(self, store => store.invalidate(targets, urgency).await)
    }

    fn watch_release(&self, key: &KeyWriter) -> Option<ReleaseWatch> {
        each_store!(self, store => store.watch_release(key))
    }

    fn is_remote(&self) -> bool {
        each_store!(self, store => store.is_remote())
    }

    fn status(&self) -> LayerStatus {
        each_store!(self, store => store.status())
    }
}

impl AnyStore {
    /// Woken when the remote store answers again after an outage (`None` in memory).
    pub(crate) fn recovered(&self) -> Option<&tokio::sync::Notify> {
        self.redis().map(redis::RedisStore::recovered)
    }

    /// The Redis store, for the Redis-only tools of [`Cache`](crate::Cache).
    pub(crate) fn redis(&self) -> Option<&redis::RedisStore> {
        match self {
            Self::Memory(_) => None,
            Self::Redis(store) => Some(store),
            Self::Tiered(store) => Some(store.l2()),
        }
    }
}

/// A random lease token.
pub(crate) fn new_token() -> u128 {
    (u128::from(fastrand::u64(..)) << 64) | u128::from(fastrand::u64(..))
}
