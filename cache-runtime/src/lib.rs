//! Compile-time-checked cache-aside for async Rust.
//!
//! Annotate a read with [`cached`] and it is served from the cache; annotate a
//! write with [`invalidates`] and the entries it changes disappear:
//!
//! ```
//! use cache_runtime::{cached, invalidates};
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! struct User { id: u64, name: String }
//!
//! struct Db;
//!
//! #[cached(key = "user:<id>", ttl = 300, jitter = 30, tags = ["org:<org_id>"], skip = [db])]
//! async fn get_user(db: &Db, id: u64, org_id: u64) -> Result<User, String> {
//!     Ok(User { id, name: format!("user {id}") }) // the real query goes here
//! }
//!
//! #[invalidates(keys = ["user:<id>"], tags = ["org:<org_id>"], skip = [db, name])]
//! async fn rename_user(db: &Db, id: u64, org_id: u64, name: String) -> Result<(), String> {
//!     Ok(()) // the real update goes here
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let db = Db;
//! let user = get_user(&db, 1, 7).await.unwrap();   // miss: runs the body
//! let again = get_user(&db, 1, 7).await.unwrap();  // hit
//! rename_user(&db, 1, 7, "Ada".into()).await.unwrap(); // removes user:1, invalidates org:7
//! # });
//! ```
//!
//! Mistakes are compile errors: a placeholder that names no parameter, a
//! parameter that is neither in the key nor in `skip`, a missing `ttl`, a value
//! type that cannot be cached.
//!
//! # Where entries live
//!
//! In memory by default ([`Cache::in_memory`]), or in Redis
//! ([`CacheBuilder::redis`]); install one with [`Cache::install_default`] or
//! pass one per function with `cache = <expr>`.
//!
//! # What holds
//!
//! - A key is `{prefix}:{rendered template}`; values are escaped so two
//!   different argument tuples never share a key.
//! - An entry written by a build whose value type had another serde shape
//!   (fields reordered, added, removed, renamed or retyped) or another
//!   `schema` is a miss, never a value decoded into the wrong fields.
//! - Invalidating a tag or bumping a version is O(1): generation counters, not
//!   member lists. On Redis the counters expire no earlier than the entries that
//!   depend on them, so they are bounded by the tags in use within one TTL; in
//!   memory they live in a bounded table ([`CacheBuilder::generation_capacity`]).
//! - Two functions whose key templates render the same key never serve each
//!   other a value of the wrong type (the entry's type fingerprint makes it a
//!   miss). When they meet with another value type or other tags, it is
//!   reported: a warning once, `cache_key_collisions_total` and
//!   [`SiteStats::key_collisions`]. A macro sees one function at a time, so this
//!   is found at run time, not at compile time.
//! - One rule on every store: an entry is valid while every tag and version it
//!   was stored under is still at the generation it had when the entry's load
//!   began. A call whose own tags differ (a tag from a parameter that is not in
//!   the key) is served the entry all the same, in memory and on Redis.
//! - No stale sets: a value loaded before an invalidation and stored after it
//!   is never served (leases for keys, generations for tags and versions).
//! - Concurrent misses of one key in a process run the body once; across
//!   processes a lease lets one load while the others wait up to
//!   [`CacheBuilder::lease_wait`].
//!
//! # When the cache fails
//!
//! A `#[cached]` call never fails because of the cache. Connecting to Redis
//! and every answer are bounded by [`CacheBuilder::timeout`]; failures that
//! mean Redis is not serving (see [`CacheError`]) open a circuit breaker,
//! after which calls skip Redis without waiting until a probe succeeds.
//! Meanwhile the function body runs and its value is returned. Undecodable
//! entries — garbage, another type, another format — are misses, counted, and
//! overwritten. [`Cache::status`] reports each layer's breaker.
//!
//! An `#[invalidates]` call returns its body's value whatever Redis does. Its
//! invalidation runs in a task of its own, so cancelling the caller cannot cut
//! it off; at `maxmemory` it deletes counters instead of bumping them (Redis
//! accepts deletes when full). If Redis does not take it, it is retried in the
//! background [`CacheBuilder::invalidation_attempts`] times in all (100 ms,
//! then doubling, at most 5 s apart), ignoring the breaker; pending retries
//! show in [`CacheStatus::pending_invalidations`]; one given up is logged at
//! error level and counted in `cache_invalidation_failures_total`, and the
//! entries it should have removed are served at most until their own lifetime
//! (`ttl + jitter`) ends. Pending retries die with the process.
//!
//! # HTTP
//!
//! With the `tower` feature, `http::PageCache` caches whole responses of a
//! tower service (an axum route) through the same read path, stores and
//! invalidation; with `axum`, `http::CachedJson` answers a handler's cached
//! value with its entry's validators. Both send `Cache-Control: no-cache`
//! with `ETag` and `Last-Modified` by default, so browsers revalidate with
//! cheap `304`s and never outlive an invalidation.
//!
//! # Concurrency and cancellation
//!
//! - A call that starts after an invalidation of its key, tag or version
//!   returned never returns a value loaded before it. A caller that was
//!   already waiting for a load when the invalidation happened may still get
//!   that load's value.
//! - When a load fails (`Err`, `None`), every caller waiting for it runs its
//!   own body at once: failures are not queued.
//! - A call whose future is dropped at any `.await` gives its lease back at
//!   once (without blocking `Drop`), hands its flight to a waiter, and leaves
//!   the breaker as it found it.

pub mod codec;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;

mod cache;
mod call;
mod engine;
mod entry_info;
#[cfg(feature = "tower")]
pub mod http;
mod invalidation;
mod key;
mod mode;
mod observe;
mod returns;
mod shape;
mod single_flight;
mod site;
mod store;
mod value;

pub use cache::{AlreadyInstalled, Cache, CacheBuilder, CacheStatus, ConfigError, DEFAULT_MAX_BYTES};
/// Caches an async function's result: a cache-aside wrapper generated at compile time.
///
/// | option | meaning |
/// | --- | --- |
/// | `key = "user:<id>"` | the key template; `<name>` is a parameter, `<name.field>` a field of one (`<self.tenant>` in a method). Default: the function's path (with its impl's type and generic arguments) and every parameter not skipped |
/// | `ttl = 300` | seconds an entry is served (required): a number or a `u64` constant expression (`USER_TTL`, `5 * 60`, `PAGE_TTL.as_secs()`), checked at compile time to be positive |
/// | `jitter = 45` | up to this many seconds added at random to each entry's lifetime; a number or a constant expression too |
/// | `group = "reports"` | a name several functions share, for settings made at start-up ([`CacheBuilder::ttl_override`]) and in [`stats`] |
/// | `stale = 60` | stale-while-revalidate: past its `ttl` an entry is served up to this many seconds more while one refresh runs in the background (the body must own its parameters: `Arc<Db>`, not `&Db`) |
/// | `fail_safe = 3600` | when a load fails (`Err`, an uncached `None`, a panic), the last value is served up to this many seconds past its `ttl`, and the key is loaded at most once per `fail_safe_throttle` (default 5) seconds |
/// | `negative_ttl = 10` | caches `None` (and `Ok(None)`) for this many seconds; without it absences are not cached |
/// | `tags = ["org:<org_id>"]` | groups invalidated together by `#[invalidates(tags = ...)]` |
/// | `version = "team:<team_id>"` | a versioned namespace: bumping it drops every entry in it at once |
/// | `skip = [db]` | parameters that are not part of the result's identity |
/// | `cache = expr` | the [`Cache`] to use (a `Cache`, `&Cache` or `Arc<Cache>`); default: [`Cache::default_cache`] |
/// | `codec = cache_runtime::Json` | how values are encoded outside the process; default [`Postcard`]; `Bincode` with the `bincode` feature |
/// | `schema = 2` | a version of the value's meaning: raise it when what the function returns changes but its type does not (cents to euros); entries of another schema are misses |
/// | `returns = value` | what is cached when the return type cannot say it: `result` (`Ok` only), `option` (`Some` only) or `value` (everything); required when the function returns one of its own type parameters |
///
/// `Result<T, E>` caches `Ok` only, `Option<T>` caches `Some` only (and `None`
/// for `negative_ttl` seconds when set), `Result<Option<T>, E>` follows the
/// rule of `Option<T>` inside `Ok`, any other type is cached as is. The type decides, not its name: aliases such as
/// `type ApiResult<T> = Result<T, ApiError>` or `type Maybe<T> = Option<T>`
/// behave like the types they name, and a type of yours called `Option` is a
/// value like any other. A return type that is a generic parameter of the
/// impl is cached whole (the function cannot tell what it will be). The cached value must be
/// `Serialize + DeserializeOwned + Clone + Send + Sync + 'static`; key parts
/// must implement [`KeyPart`]. Every parameter must appear in the key, a tag
/// or the version, or be skipped.
///
/// # Large values: return `Arc<T>`
///
/// A hit in memory clones the cached value: for a 10,000-row `Vec` that is
/// every row, every call. Return `Arc<T>` (or `Result<Arc<T>, E>`,
/// `Option<Arc<T>>`) and the cache keeps the very `Arc` the body returned, so
/// a hit clones the `Arc` only, and `T` need not be `Clone`. Outside the
/// process the value is stored as `T` (no serde `rc` feature needed), so a
/// function returning `T` and one returning `Arc<T>` read each other's entries.
///
/// ```
/// use std::sync::Arc;
/// use cache_runtime::cached;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Report { rows: Vec<(u64, String)> }
///
/// #[cached(key = "report:<org>", ttl = 60)]
/// async fn report(org: u64) -> Arc<Report> {
///     Arc::new(Report { rows: (0..10_000).map(|i| (i, format!("row {i}"))).collect() })
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let first = report(7).await;
/// assert!(Arc::ptr_eq(&first, &report(7).await)); // a hit: the same Arc, no copy
/// # });
/// ```
///
/// # Entries across deploys
///
/// Every entry carries a fingerprint of its value type's serde shape (struct
/// and field names in order, enum variants and their payloads, the kind of
/// every field; see [`codec::shape_of`]), so after a deploy that reorders,
/// adds, removes, renames or retypes a field, the old entries in Redis are
/// misses, never values decoded into the wrong fields. A change of meaning
/// that keeps the shape needs `schema = N`.
///
/// A constant `ttl` or `jitter` is read by a `static` inside the function, so
/// it cannot name the function's parameters, its generics or `Self`: use a
/// `const` outside the impl (the macro says so at the offending name).
///
/// # Methods
///
/// `self` is a parameter like the others: put the fields the result depends
/// on into the key (`<self.tenant>`), a tag or the version, or write
/// `skip = [self]`; without `key`, an unskipped `self` is a key part itself.
/// A method's entries belong to its impl's type, generic arguments included:
/// `Users::count` and `Orders::count`, `Service<Pg>` and `Service<Mock>`, or a
/// trait's default body in two implementors never share an entry, with or
/// without `key`. An explicit key starts with `type_name::<Self>()`, a default
/// key with the function's full path. An associated function without `self`
/// counts as a method when it names `Self` in its signature or body (outside
/// nested items and macro calls); otherwise its explicit key is used as
/// written, since an attribute cannot see the `impl` around it (its default
/// key still names the impl).
///
/// ```
/// use cache_runtime::{Cache, cached};
///
/// struct Users { cache: Cache }
/// struct Orders { cache: Cache }
///
/// impl Users {
///     #[cached(key = "count:<org>", ttl = 60, cache = self.cache, skip = [self])]
///     async fn count(&self, org: u64) -> u64 { org * 10 }
/// }
///
/// impl Orders {
///     #[cached(key = "count:<org>", ttl = 60, cache = self.cache, skip = [self])]
///     async fn count(&self, org: u64) -> u64 { org * 100 }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let cache = Cache::in_memory();
/// let (users, orders) = (Users { cache: cache.clone() }, Orders { cache });
/// assert_eq!(users.count(7).await, 70);
/// assert_eq!(orders.count(7).await, 700); // not the `Users` entry
/// # });
/// ```
///
/// ```
/// use cache_runtime::{Cache, cached};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Page { items: Vec<u64> }
///
/// #[cached(key = "org:<org>:page:<page>", ttl = 60, jitter = 10, tags = ["org:<org>"], cache = cache, skip = [cache])]
/// async fn page(cache: &Cache, org: u64, page: u32) -> Option<Page> {
///     Some(Page { items: vec![org, u64::from(page)] })
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let cache = Cache::in_memory();
/// assert!(page(&cache, 7, 1).await.is_some()); // loads
/// assert!(page(&cache, 7, 1).await.is_some()); // served from the cache
/// # });
/// ```
///
/// # With `#[tracing::instrument]`
///
/// Attributes expand from the top. Put `#[cached]` above
/// `#[tracing::instrument]` to trace every call, hits included; put it below
/// to trace only the calls that run the body:
///
/// ```
/// # use cache_runtime::cached;
/// #[cached(key = "user:<id>", ttl = 60)]
/// #[tracing::instrument] // a span for every call
/// async fn user_name(id: u64) -> String { format!("user {id}") }
///
/// #[tracing::instrument] // a span for loads only
/// #[cached(key = "team:<id>", ttl = 60)]
/// async fn team_name(id: u64) -> String { format!("team {id}") }
/// ```
#[doc(inline)]
pub use cache_macros::cached;

/// Invalidates cache entries after an async function succeeds.
///
/// | option | meaning |
/// | --- | --- |
/// | `keys = ["user:<id>"]` | keys to delete (templates as in [`cached`]) |
/// | `tags = ["org:<org_id>"]` | tags to invalidate, O(1) each |
/// | `versions = ["team:<team_id>"]` | versioned namespaces to bump |
/// | `skip = [db, input]` | parameters that name nothing to invalidate |
/// | `cache = expr` | the [`Cache`]; default: [`Cache::default_cache`] |
/// | `returns = value` | what counts as success: `result` (`Ok` only), `option` or `value` (every value); default: the return type decides |
///
/// The body runs first. When it returns `Ok` (or any value of a function that
/// does not return `Result`; an alias of `Result` is a `Result`), all of the keys, tags and versions are
/// invalidated in one round trip; a failed write invalidates nothing. The
/// function's value is returned unchanged either way.
///
/// In a method, `self` must be in a template or in `skip`, like any parameter,
/// and each key is removed twice: as written (a free function's entry) and
/// scoped to `Self` (the entry of a `#[cached]` method of the same impl, see
/// [`cached`]). A free function cannot name a method's key: invalidate such
/// entries from a method of the same type, or through a tag or version, which
/// are never scoped.
///
/// ```
/// use cache_runtime::{Cache, cached, invalidates};
///
/// #[cached(key = "user:<id>", ttl = 300, cache = cache, skip = [cache])]
/// async fn name(cache: &Cache, id: u64) -> String { format!("user {id}") }
///
/// #[invalidates(keys = ["user:<id>"], cache = cache, skip = [cache, new_name])]
/// async fn rename(cache: &Cache, id: u64, new_name: String) -> Result<(), String> {
///     if new_name.is_empty() { Err("empty name".into()) } else { Ok(()) }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let cache = Cache::in_memory();
/// name(&cache, 1).await;
/// assert!(rename(&cache, 1, String::new()).await.is_err()); // nothing invalidated
/// rename(&cache, 1, "Ada".into()).await.unwrap();            // user:1 removed
/// # });
/// ```
#[doc(inline)]
pub use cache_macros::invalidates;
#[cfg(feature = "bincode")]
pub use codec::Bincode;
pub use codec::{Codec, DecodeError, EncodeError, Envelope, Json, Postcard};
pub use entry_info::{EntryInfo, capture};
pub use key::{KeyPart, KeyWriter, MAX_KEY_LEN};
pub use redis;
pub use site::{SiteStats, stats};
pub use store::{BreakerState, CacheError, LayerKind, LayerStatus};

/// What generated code calls. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::call::{
        AsCache, Dependencies, Invalidation, cache_of, cached, cached_refreshing, default_cache, invalidating,
    };
    pub use crate::codec::Postcard;
    pub use crate::key::{KeyPart, KeyWriter, function_path};
    pub use crate::mode::{
        CacheValue, Mode, NegativeCaching, OptionMode, PlainMode, ResultMode, ResultOptionMode,
        negative_caching,
    };
    pub use crate::returns::{
        IsOption, IsResult, Probe, Returns, cached_as, cached_refreshing_as, invalidating_as, option_mode,
        result_mode,
    };
    pub use crate::site::Site;
    pub use crate::value::{Cacheable, Cloned, Encodable, Shared, StorageProbe, Stores};
    pub use core::any::type_name;
    pub use core::primitive::u64;
    pub use core::{assert, concat, module_path};
}
