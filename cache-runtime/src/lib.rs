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
//! In memory by default ([`Cache::in_memory`]), in Redis
//! ([`CacheBuilder::redis`]), or in both: process memory in front of Redis,
//! kept coherent across processes ([`CacheBuilder::local_cache`]); install one
//! with [`Cache::install_default`] or pass one per function with `cache = <expr>`.
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
mod hot;
#[cfg(feature = "tower")]
pub mod http;
mod invalidation;
mod key;
mod learned;
mod linked;
mod mode;
mod observe;
mod returns;
mod shape;
mod single_flight;
mod site;
mod store;
mod value;
mod warm;

pub use cache::{
    AlreadyInstalled, BusStatus, Cache, CacheBuilder, CacheStatus, ConfigError, DEFAULT_LOCAL_MAX_AGE,
    DEFAULT_MAX_BYTES, KeyCounts,
};
/// Caches an async function's result: a cache-aside wrapper generated at compile time.
///
/// | option | meaning |
/// | --- | --- |
/// | `key = "user:<id>"` | the key template; `<name>` is a parameter, `<name.field>` a field of one (`<self.tenant>` in a method). Default: the function's path (with its impl's type and generic arguments) and every parameter not skipped |
/// | `ttl = 300` | seconds an entry is served (required): a number or a `u64` constant expression (`USER_TTL`, `5 * 60`, `PAGE_TTL.as_secs()`), checked at compile time to be positive |
/// | `jitter = 45` | up to this many seconds added at random to each entry's lifetime; a number or a constant expression too |
/// | `group = "reports"` | a name several functions share, for settings made at start-up ([`CacheBuilder::ttl_override`]) and in [`stats`] |
/// | `stale = 60` | stale-while-revalidate: past its `ttl` an entry is served up to this many seconds more while one refresh runs in the background (the body must own its parameters: `Arc<Db>`, not `&Db`); a failed refresh is retried after `fail_safe_throttle`, 5 s by default |
/// | `fail_safe = 3600` | when a load fails (`Err`, an uncached `None`, a panic), the last value is served up to this many seconds past its `ttl`, and the key is loaded at most once per `fail_safe_throttle` (default 5) seconds |
/// | `early_refresh` or `early_refresh = 2.0` | refreshes a fresh entry in the background shortly before it expires, the more likely the hotter the key and the longer its last load took (XFetch; the number is its `beta`, default 1.0, larger is earlier); the body must own its parameters |
/// | `soft_timeout = 200` | milliseconds: with a `fail_safe` value at hand, a caller waits at most this long for the body, then gets that value while the load goes on in the background and fills the cache; the body must own its parameters |
/// | `hard_timeout = 2000` | milliseconds: with a `fail_safe` value at hand, the body is dropped after this long and that value served (the key is then throttled like after a failed load); without one the body runs to its end, since there is nothing else to return |
/// | `max_loads = 8` | at most this many bodies of the function run at once in the process; callers beyond wait their turn, or get a stale value at once when one within `stale` or `fail_safe` is at hand ([`CacheBuilder::max_loads`] bounds a whole cache) |
/// | `negative_ttl = 10` | caches `None` (and `Ok(None)`) for this many seconds; without it absences are not cached |
/// | `tags = ["org:<org_id>"]` | groups invalidated together by `#[invalidates(tags = ...)]` |
/// | `version = "team:<team_id>"` | a versioned namespace: bumping it drops every entry in it at once |
/// | `skip = [db]` | parameters that are not part of the result's identity |
/// | `cache = expr` | the [`Cache`] to use (a `Cache`, `&Cache` or `Arc<Cache>`); default: [`Cache::default_cache`] |
/// | `codec = cache_runtime::Json` | how values are encoded outside the process; default [`Postcard`]; `Bincode` with the `bincode` feature |
/// | `schema = 2` | a version of the value's meaning: raise it when what the function returns changes but its type does not (cents to euros); entries of another schema are misses |
/// | `linked = true` | generate the companion that [`invalidates`], [`cache_put`], [`invalidate!`], [`put!`] and [`get!`] name the entry through; default: yes for free functions and `pub` methods, no for private methods (which may be in a trait impl) |
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
/// # Freshness options on a running system
///
/// ```
/// use std::sync::Arc;
/// use cache_runtime::cached;
///
/// struct Db;
///
/// // A hot, slow query: refreshed before it expires, the old value served
/// // past its ttl while one refresh runs, never more than 4 queries at once,
/// // and a slow database answered by the last value after 250 ms.
/// #[cached(key = "feed:<org>", ttl = 30, stale = 30, early_refresh, fail_safe = 600,
///          soft_timeout = 250, hard_timeout = 5000, max_loads = 4, skip = [db])]
/// async fn feed(db: Arc<Db>, org: u64) -> Result<Vec<u64>, String> {
///     Ok(vec![org])
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// assert_eq!(feed(Arc::new(Db), 7).await, Ok(vec![7]));
/// # });
/// ```
///
/// The same settings can be made for every function of a cache with
/// [`CacheBuilder::early_refresh`], [`CacheBuilder::soft_timeout`],
/// [`CacheBuilder::hard_timeout`] and [`CacheBuilder::max_loads`]; a
/// function's own option wins.
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
/// | `get_user(id)`, `self.count(org)` | entries of `#[cached]` functions, named by the reader and the arguments of the entry (see below) |
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
/// # Naming the reader
///
/// `#[invalidates(get_user(id, org))]` deletes the entry `get_user(db, id, org)`
/// reads (its `skip`ped parameters left out): the key is rendered by the
/// reader's own generated code, so a wrong name or argument type is a compile
/// error, and escaping, impl scope and default keys cannot drift. Write it as
/// the reader is called: `users::get_user(id, org)`, `Self::load(id)`, or
/// `self.count(org)` for a method that takes `self`. Arguments are borrowed
/// and must have the reader's parameter types. Only the named entries go; use
/// `tags` for groups. Each `#[cached]` function has a hidden companion that
/// renders its entry; a private method gets one with `linked = true` (an
/// attribute cannot tell an inherent impl from a trait impl, which may not
/// have extra methods). The entries are deleted from this write's cache
/// (`cache = ...`).
///
/// ```
/// use cache_runtime::{cached, invalidates};
///
/// #[cached(ttl = 300)] // no key: named by its reader only
/// async fn profile(id: u64) -> Option<String> { Some(format!("user {id}")) }
///
/// #[invalidates(profile(id))]
/// async fn rename(id: u64) -> Result<(), String> { Ok(()) }
/// ```
///
/// # Raw keys in methods
///
/// In a method, `self` must be in a template or in `skip`, like any parameter,
/// and each key is removed twice: as written (a free function's entry) and
/// scoped to `Self` (the entry of a `#[cached]` method of the same impl, see
/// [`cached`]). A raw key in a free function cannot name a method's entry:
/// name the method instead (`repo.count(org)`), or use a tag or version, which
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

/// Stores a write's result into a `#[cached]` function's entry (write-through).
///
/// `#[cache_put(get_user(id))]` names the reader and the arguments of its
/// entry, exactly as [`invalidates`] does. When the write returns `Ok(value)`
/// (or `Some(value)`, or any value of a function returning neither), `value`
/// is stored into that entry, with the reader's TTL, tags, version, codec and
/// fingerprint; the writer's value type must be the reader's (a compile error
/// otherwise). A write that succeeds without a value (`Ok(None)`) deletes the
/// entry; a failed write does nothing.
///
/// The put takes the entry's lease over, so a load of the entry that began
/// before it and ends after it is not stored: the put wins. If the value
/// cannot be stored (Redis unreachable, too large), the entry is deleted
/// instead, with the retries of an invalidation: the old value is never left.
/// The put runs in a task of its own, so cancelling the caller after its write
/// cannot cut it off.
///
/// | option | meaning |
/// | --- | --- |
/// | `get_user(id)` | the reader's entry (required, one) |
/// | `cache = expr` | the [`Cache`]; default: [`Cache::default_cache`] |
/// | `returns = value` | what counts as success, as in [`invalidates`] |
///
/// ```
/// use cache_runtime::{Cache, cache_put, cached};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct User { id: u64, name: String }
///
/// #[cached(key = "user:<id>", ttl = 300, cache = cache, skip = [cache])]
/// async fn get_user(cache: &Cache, id: u64) -> Option<User> {
///     Some(User { id, name: "from the database".into() })
/// }
///
/// #[cache_put(get_user(id), cache = cache)]
/// async fn rename(cache: &Cache, id: u64, name: String) -> Result<User, String> {
///     Ok(User { id, name }) // the real update, returning the new row
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let cache = Cache::in_memory();
/// rename(&cache, 1, "Ada".into()).await.unwrap();
/// assert_eq!(get_user(&cache, 1).await.unwrap().name, "Ada"); // a hit on the stored value
/// # });
/// ```
#[doc(inline)]
pub use cache_macros::cache_put;

/// Deletes the entries of `#[cached]` functions, named by their readers: a
/// future of `Result<(), CacheError>`.
///
/// `invalidate!(get_user(id), self.count(org))` renders each entry's key with
/// the reader's own code (see [`invalidates`] for how to name one); add
/// `cache = expr` for a cache other than [`Cache::default_cache`]. An error
/// means Redis did not take the deletion at once; it is retried in the
/// background.
///
/// ```
/// use cache_runtime::{cached, invalidate};
///
/// #[cached(key = "email:<address>", ttl = 300)]
/// async fn user_by_email(address: String) -> Option<u64> { Some(7) }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// user_by_email("a:b@x.io".into()).await;
/// invalidate!(user_by_email("a:b@x.io".to_owned())).await.unwrap(); // escaped as the reader escapes it
/// # });
/// ```
#[doc(inline)]
pub use cache_macros::invalidate;

/// Stores a value into a `#[cached]` function's entry, named by its reader: a
/// future of `Result<(), CacheError>`. `put!(get_user(id), user)` (`user` or
/// `&user`, of the reader's value type); add `cache = expr` for a cache other
/// than [`Cache::default_cache`]. The put follows the rules of [`cache_put`].
///
/// ```
/// use cache_runtime::{cached, get, put};
///
/// #[cached(key = "score:<id>", ttl = 300)]
/// async fn score(id: u64) -> u32 { 0 }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// put!(score(7), 42).await.unwrap();
/// assert_eq!(get!(score(7)).await, Some(42));
/// assert_eq!(score(7).await, 42); // a hit
/// # });
/// ```
#[doc(inline)]
pub use cache_macros::put;

/// Reads a `#[cached]` function's fresh entry, named by its reader, without
/// running its body: a future of `Option<V>`, `V` the reader's value type
/// (the `T` of its `Result<T, E>` or `Option<T>`); `None` on a miss, a cached
/// absence, or when the store cannot be asked. Add `cache = expr` for a cache
/// other than [`Cache::default_cache`]. See [`put!`] for an example.
#[doc(inline)]
pub use cache_macros::get;
#[cfg(feature = "bincode")]
pub use codec::Bincode;
pub use codec::{Codec, DecodeError, EncodeError, Envelope, Json, Postcard};
pub use entry_info::{EntryInfo, capture};
pub use hot::{HotKey, hot_keys};
pub use key::{KeyPart, KeyWriter, MAX_KEY_LEN};
pub use learned::add_tag;
pub use redis;
pub use site::{SiteStats, stats};
pub use store::{BreakerState, CacheError, LayerKind, LayerStatus};
pub use warm::{Warmer, refresh};

/// What generated code calls. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::call::{
        AsCache, Dependencies, Invalidation, cache_of, cached, cached_refreshing, default_cache, invalidating,
    };
    pub use crate::codec::Postcard;
    pub use crate::key::{KeyPart, KeyWriter, function_path};
    pub use crate::linked::{
        Entry, ValueFor, get_value, invalidate_keys, put_value, putting, returning, value_for,
    };
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
    pub use std::vec;
}
