//! Cache-aside on the in-memory backend.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use super::lead_or_wait;
use crate::cache::Cache;
use crate::codec::encoded_size;
use crate::entry_info;
use crate::key::KeyWriter;
use crate::memory::{Lookup, MemoryStore};
use crate::private::{CacheValue, Dependencies, Mode};
use crate::single_flight::{FlightOutcome, SharedValue};
use crate::site::Site;

#[inline]
pub(super) fn lookup<V: CacheValue>(memory: &MemoryStore, key: &KeyWriter, generics: u64) -> Option<V> {
    match memory.lookup(key.as_bytes(), generics) {
        Lookup::Fresh(entry) => {
            let value = entry.value.downcast_ref::<V>().cloned();
            if value.is_some() {
                entry_info::record(|| entry.info(key, true));
            }
            value
        }
        Lookup::Miss => None,
    }
}

/// Loads on a miss, once for every concurrent caller, and stores under the
/// key's flight lock unless an invalidation overtook the load.
pub(super) async fn load<M, R, F, const TAGS: usize, const VERSIONS: usize>(
    site: &'static Site,
    cache: &Cache,
    memory: &MemoryStore,
    key: &KeyWriter,
    dependencies: &Dependencies<TAGS, VERSIONS>,
    generics: u64,
    body: F,
) -> R
where
    M: Mode<R>,
    M::Value: CacheValue,
    F: Future<Output = R>,
{
    let reread = || std::future::ready(lookup::<M::Value>(memory, key, generics));
    let leader = match lead_or_wait(&cache.inner.flights, key, reread).await {
        Ok(leader) => leader,
        Err(value) => return M::from_cached(value),
    };
    let seen: Box<[(Box<str>, u64)]> = dependencies
        .names()
        .map(|name| {
            let generation = memory.generations.observe(&name);
            (name.into_boxed_str(), generation)
        })
        .collect();
    let started = Instant::now();
    let output = body.await;
    site.record_load(started.elapsed());

    let Some(value) = M::cacheable(&output) else {
        drop(leader); // waiters retry: failures are not shared
        return output;
    };
    let value_bytes = encoded_size(value).unwrap_or(size_of::<M::Value>());
    site.record_value_bytes(value_bytes);
    let shared: SharedValue = Arc::new(value.clone());
    leader.finish(|doomed| {
        let current = seen.iter().all(|(name, generation)| memory.generations.is_current(name, *generation));
        if doomed || !current {
            site.record_refused();
            tracing::debug!(function = site.function(), key = %key, "store refused: invalidated during the load");
            return FlightOutcome::Retry;
        }
        let lifetime = site.entry_lifetime();
        if let Some(entry) = memory.insert(key.as_bytes(), Arc::clone(&shared), value_bytes, generics, lifetime, seen) {
            entry_info::record(|| entry.info(key, false));
            FlightOutcome::Stored
        } else {
            tracing::debug!(function = site.function(), key = %key, value_bytes, "value larger than the cache");
            FlightOutcome::Unstored(shared)
        }
    });
    output
}
