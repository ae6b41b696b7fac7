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
//! - Invalidating a tag or bumping a version is O(1): generation counters, not
//!   member lists. On Redis the counters expire no earlier than the entries that
//!   depend on them, so they are bounded by the tags in use within one TTL; in
//!   memory they live in a bounded table ([`CacheBuilder::generation_capacity`]).
//! - No stale sets: a value loaded before an invalidation and stored after it
//!   is never served (leases for keys, generations for tags and versions).
//! - Concurrent misses of one key in a process run the body once; across
//!   processes a lease lets one load while the others wait up to
//!   [`CacheBuilder::lease_wait`].
//!
//! # When the cache fails
//!
//! A `#[cached]` call never fails because of the cache. Every Redis exchange is
//! bounded by [`CacheBuilder::timeout`]; consecutive failures open a circuit
//! breaker, after which calls skip Redis without waiting until a probe
//! succeeds. Meanwhile the function body runs and its value is returned (and
//! shared with concurrent callers of the same key). Undecodable entries — garbage,
//! another type, another format — are misses, counted, and overwritten.
//!
//! An `#[invalidates]` call returns its body's value whatever Redis does. Its
//! invalidation is sent once (one round trip); if Redis cannot take it, it is
//! retried in the background [`CacheBuilder::invalidation_attempts`] times in
//! all, with backoff from 100 ms (about 1.5 s), then logged with `tracing` at
//! error level and counted in `cache_invalidation_failures_total`. You can then
//! rely on this: entries it should have removed are served at most until their
//! own lifetime (`ttl + jitter`) ends; everything else stays correct. Pending
//! retries die with the process.

pub mod codec;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;

mod cache;
mod cache_aside;
mod entry_info;
mod generations;
#[cfg(feature = "axum")]
pub mod http;
mod key;
mod memory;
mod private;
mod redis_store;
mod single_flight;
mod site;

pub use cache::{AlreadyInstalled, Cache, CacheBuilder, ConfigError, DEFAULT_MAX_BYTES};
pub use cache_macros::{cached, invalidates};
pub use codec::{Codec, DecodeError, EncodeError, Envelope, Json, Postcard};
pub use entry_info::{EntryInfo, capture};
pub use key::{KeyPart, KeyWriter, MAX_KEY_LEN};
pub use redis;
pub use redis_store::CacheError;
pub use site::{SiteStats, stats};

/// What generated code calls. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::codec::Postcard;
    pub use crate::key::{KeyPart, KeyWriter};
    pub use crate::private::{
        AsCache, CacheValue, Dependencies, Invalidation, Mode, OptionMode, PlainMode, ResultMode, cache_of,
        cached, default_cache, invalidating,
    };
    pub use crate::site::Site;
    pub use core::any::type_name;
    pub use core::{concat, module_path};
}
