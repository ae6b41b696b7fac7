//! Generated code is clean under `clippy::pedantic` and rustc's own lints in a
//! user crate: CI runs clippy on this file with `-D warnings`.
#![warn(clippy::pedantic)]
#![deny(unused, unreachable_code, unused_qualifications, missing_docs)]

use cache_runtime::{Cache, cached, invalidates};
use serde::{Deserialize, Serialize};

/// A row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Primary key.
    pub id: u64,
    /// Owning organisation.
    pub org: u64,
}

/// Reads an account.
///
/// # Errors
/// When the id is zero.
#[cached(key = "account:<id>", ttl = 60, jitter = 5, tags = ["org:<org>"], skip = [cache], cache = cache)]
pub async fn account(cache: &Cache, id: u64, org: u64) -> Result<Account, String> {
    if id == 0 {
        return Err("no account 0".to_owned());
    }
    Ok(Account { id, org })
}

/// How long a name lookup is served.
const NAME_TTL: u64 = 60;

/// Finds an account by name.
#[cached(key = "by-name:<name>", ttl = NAME_TTL, jitter = NAME_TTL / 6, version = "names", cache = cache, skip = [cache])]
pub async fn by_name(cache: &Cache, name: &str) -> Option<u64> {
    name.strip_prefix("acct-").and_then(|id| id.parse().ok())
}

/// Holds a tenant.
pub struct Tenant {
    /// The tenant's name, part of keys.
    pub name: String,
    /// Its cache.
    pub cache: Cache,
}

impl Tenant {
    /// A count per tenant.
    #[cached(key = "count:<self.name>", ttl = 60, cache = self.cache)]
    pub async fn count(&self) -> usize {
        self.name.len()
    }

    /// Ids by tenant, under the default key.
    #[cached(ttl = 60, cache = self.cache, skip = [self])]
    pub async fn ids(&self, first: u64) -> Vec<u64> {
        vec![first]
    }

    /// Renames an account.
    ///
    /// # Errors
    /// Never; returns `Result` to show that only `Ok` invalidates.
    #[invalidates(keys = ["account:<id>"], tags = ["org:<org>"], versions = ["names"], cache = self.cache, skip = [self])]
    pub async fn rename(&self, id: u64, org: u64) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::test]
async fn lint_clean_functions_work() {
    let cache = Cache::in_memory();
    assert_eq!(account(&cache, 1, 2).await, Ok(Account { id: 1, org: 2 }));
    assert_eq!(by_name(&cache, "acct-7").await, Some(7));
    let tenant = Tenant { name: "acme".to_owned(), cache: cache.clone() };
    assert_eq!(tenant.count().await, 4);
    assert_eq!(tenant.ids(3).await, [3]);
    tenant.rename(1, 2).await.unwrap();
}
