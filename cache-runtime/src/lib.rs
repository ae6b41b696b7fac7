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

pub mod codec;

mod cache;
mod entry_info;
mod generations;
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
    pub use crate::key::{KeyPart, KeyWriter};
    pub use crate::private::{
        AsCache, CacheValue, Dependencies, Invalidation, Mode, OptionMode, PlainMode, ResultMode, cache_of,
        cached, default_cache, invalidating,
    };
    pub use crate::site::Site;
    pub use core::any::type_name;
    pub use core::module_path;
}
