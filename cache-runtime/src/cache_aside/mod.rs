//! The cache-aside path of `#[cached]`: serve a fresh entry, or load once for
//! every concurrent caller of the key and store what is cacheable. One module
//! a backend; what they share is here.

mod memory;
mod redis;

use std::future::Future;
use std::marker::PhantomData;

use crate::cache::Backend;
use crate::codec::{Codec, type_fingerprint};
use crate::key::KeyWriter;
use crate::private::{AsCache, CacheValue, Dependencies, Mode};
use crate::single_flight::{FlightOutcome, LeaderGuard, Role, SingleFlight, wait};
use crate::site::Site;

/// The cache-aside path of a `#[cached]` function: serve a fresh entry, or run
/// `body` once for all concurrent callers of the key and store its cacheable value.
pub async fn cached<M, R, K, C, F, const TAGS: usize, const VERSIONS: usize>(
    site: &'static Site,
    cache: C,
    mut key: KeyWriter,
    dependencies: Dependencies<TAGS, VERSIONS>,
    generic_types: &[&'static str],
    body: F,
) -> R
where
    M: Mode<R>,
    M::Value: CacheValue,
    K: Codec,
    C: AsCache,
    F: Future<Output = R>,
{
    key.shorten();
    let cache = cache.as_cache();
    match &cache.inner.backend {
        Backend::Memory(memory_store) => {
            let generics = if generic_types.is_empty() { 0 } else { type_fingerprint(generic_types) };
            if let Some(value) = memory::lookup::<M::Value>(memory_store, &key, generics) {
                site.record_hit();
                return M::from_cached(value);
            }
            site.record_miss();
            memory::load::<M, R, F, TAGS, VERSIONS>(
                site,
                cache,
                memory_store,
                &key,
                &dependencies,
                generics,
                body,
            )
            .await
        }
        Backend::Redis(redis) => {
            let request = redis::RedisRequest {
                site,
                cache,
                redis,
                key: &key,
                entry_key: redis.entry_key(key.as_bytes()),
                counter_keys: dependencies.names().map(|name| redis.counter_key(&name)).collect(),
                fingerprint: site.fingerprint::<M::Value>(generic_types),
                codec: PhantomData::<K>,
            };
            request.serve::<M, R, F>(body).await
        }
    }
}

/// Waits for the key's flight; `Ok(leader)` when this caller must load, `Err(value)`
/// when another caller's load answered.
async fn lead_or_wait<'c, V: CacheValue, Fut: Future<Output = Option<V>>>(
    flights: &'c SingleFlight,
    key: &KeyWriter,
    reread: impl Fn() -> Fut,
) -> Result<LeaderGuard<'c>, V> {
    loop {
        match flights.join(key.as_bytes()) {
            Role::Leader(leader) => return Ok(leader),
            Role::Waiter(waiter) => match wait(waiter).await {
                FlightOutcome::Stored => {
                    if let Some(value) = reread().await {
                        return Err(value);
                    }
                }
                FlightOutcome::Unstored(shared) => {
                    if let Some(value) = shared.downcast_ref::<V>() {
                        return Err(value.clone());
                    }
                }
                FlightOutcome::Retry => {}
            },
        }
    }
}
