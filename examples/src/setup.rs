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

/// Redis at `REDIS_URL` when set, else the in-memory cache.
///
/// # Errors
/// A malformed `REDIS_URL`.
pub fn cache() -> Result<Cache, cache_runtime::ConfigError> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Ok(Cache::builder().redis(&url)?.prefix("examples:api")?.build()),
        _ => Ok(Cache::in_memory()),
    }
}
