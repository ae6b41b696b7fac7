//! Picking the database and the cache from the environment.

use std::path::PathBuf;

use cache_runtime::Cache;

use crate::db::{Db, DbError};

/// `DATABASE_URL` (PostgreSQL) when set, else SQLite at `SQLITE_PATH` or in the
/// system's temporary directory; created and seeded on first use.
///
/// # Errors
/// When the database cannot be opened.
pub async fn database() -> Result<Db, DbError> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Db::postgres(&url).await,
        _ => {
            let path = std::env::var_os("SQLITE_PATH")
                .map_or_else(|| std::env::temp_dir().join("cache-runtime-example.sqlite3"), PathBuf::from);
            let db = tokio::task::spawn_blocking(move || Db::sqlite(&path))
                .await
                .map_err(|error| DbError(error.to_string()))??;
            Ok(db)
        }
    }
}

/// Redis at `REDIS_URL` when set, else the in-memory cache; with Redis and
/// `CACHE_LOCAL_MB` (a number of MiB), a two-level cache: that much process
/// memory in front of Redis.
///
/// # Errors
/// A malformed `REDIS_URL` or `CACHE_LOCAL_MB`, described.
pub fn cache() -> Result<Cache, String> {
    let Ok(url) = std::env::var("REDIS_URL") else {
        return Ok(Cache::in_memory());
    };
    if url.is_empty() {
        return Ok(Cache::in_memory());
    }
    let builder = Cache::builder()
        .redis(&url)
        .and_then(|builder| builder.prefix("examples:api"))
        .map_err(|error| error.to_string())?;
    match std::env::var("CACHE_LOCAL_MB") {
        Ok(megabytes) if !megabytes.is_empty() => {
            let megabytes: u64 = megabytes
                .trim()
                .parse()
                .map_err(|_| format!("CACHE_LOCAL_MB={megabytes:?} is not a whole number of MiB"))?;
            Ok(builder.local_cache(megabytes.saturating_mul(1 << 20)).build())
        }
        _ => Ok(builder.build()),
    }
}
