//! Cache-aside on the Redis backend.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::lead_or_wait;
use crate::cache::Cache;
use crate::codec::{Codec, Envelope, FORMAT_VERSION};
use crate::entry_info::{self, EntryInfo, from_unix_ms, generation_fingerprint};
use crate::key::KeyWriter;
use crate::private::{CacheValue, Mode};
use crate::redis_store::{CacheError, Lease, RedisStore, unix_ms};
use crate::single_flight::FlightOutcome;
use crate::site::Site;

/// One `#[cached]` call on a Redis cache, whose values use codec `K`.
pub(super) struct RedisRequest<'a, K> {
    pub(super) site: &'static Site,
    pub(super) cache: &'a Cache,
    pub(super) redis: &'a RedisStore,
    pub(super) key: &'a KeyWriter,
    pub(super) entry_key: Vec<u8>,
    pub(super) counter_keys: Vec<String>,
    pub(super) fingerprint: u64,
    pub(super) codec: PhantomData<K>,
}

/// How waiting for another process's load ended.
enum Waited<V> {
    /// Its value arrived.
    Value(V),
    /// It let go of the lease, which is now ours.
    Lease(String, Vec<u64>),
    /// Too long, or Redis failed: load without storing.
    GaveUp,
}

/// What reading an entry from Redis found.
enum Read<V> {
    Hit(V),
    Miss,
    /// Redis could not be read: run the body, skip Redis for the rest of the call.
    Unavailable,
}

impl<K: Codec> RedisRequest<'_, K> {
    pub(super) async fn serve<M, R, F>(&self, body: F) -> R
    where
        M: Mode<R>,
        M::Value: CacheValue,
        F: Future<Output = R>,
    {
        let reachable = match self.read::<M::Value>().await {
            Read::Hit(value) => {
                self.site.record_hit();
                return M::from_cached(value);
            }
            Read::Miss => true,
            Read::Unavailable => false,
        };
        self.site.record_miss();
        let reread = || async {
            match self.read::<M::Value>().await {
                Read::Hit(value) => Some(value),
                Read::Miss | Read::Unavailable => None,
            }
        };
        let leader = match lead_or_wait(&self.cache.inner.flights, self.key, reread).await {
            Ok(leader) => leader,
            Err(value) => return M::from_cached(value),
        };
        let lifetime = self.site.entry_lifetime();
        let began = if reachable {
            match self.redis.begin_load(&self.entry_key, &self.counter_keys, lifetime).await {
                Ok(began) => Some(began),
                Err(error) => {
                    self.failed(&error);
                    None
                }
            }
        } else {
            None
        };
        let (token, generations) = match began {
            Some((Lease::Held(token), generations)) => (Some(token), generations),
            Some((Lease::Busy, _)) => match self.wait_for_other_process::<M::Value>(lifetime).await {
                Waited::Value(value) => {
                    leader.finish(|_| FlightOutcome::Stored);
                    return M::from_cached(value);
                }
                Waited::Lease(token, generations) => (Some(token), generations),
                Waited::GaveUp => (None, Vec::new()),
            },
            None => (None, Vec::new()),
        };

        let started = Instant::now();
        let output = body.await;
        self.site.record_load(started.elapsed());
        let Some(value) = M::cacheable(&output) else {
            if let Some(token) = &token
                && let Err(error) = self.redis.release(&self.entry_key, token).await
            {
                self.failed(&error);
            }
            drop(leader);
            return output;
        };
        let outcome = match token {
            Some(token) => self.store(value, &token, generations, lifetime).await,
            None => FlightOutcome::Unstored(Arc::new(value.clone())),
        };
        leader.finish(|doomed| if doomed { FlightOutcome::Retry } else { outcome });
        output
    }

    /// Encodes and stores under the lease; tells waiters what happened.
    async fn store<V: CacheValue>(
        &self,
        value: &V,
        token: &str,
        generations: Vec<u64>,
        lifetime: Duration,
    ) -> FlightOutcome {
        let filled_at_ms = unix_ms();
        let lifetime_ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        let envelope = Envelope {
            format: FORMAT_VERSION,
            codec: K::ID,
            fingerprint: self.fingerprint,
            filled_at_ms,
            fresh_until_ms: filled_at_ms.saturating_add(lifetime_ms),
            stale_until_ms: filled_at_ms.saturating_add(lifetime_ms),
            generations,
        };
        let bytes = match envelope.encode::<K, V>(value) {
            Ok(bytes) => bytes,
            Err(error) => {
                self.site.record_error();
                tracing::warn!(function = self.site.function(), %error, "value not stored");
                return FlightOutcome::Unstored(Arc::new(value.clone()));
            }
        };
        self.site.record_value_bytes(bytes.len());
        if bytes.len() > self.redis.settings.max_value_bytes {
            tracing::debug!(
                function = self.site.function(),
                bytes = bytes.len(),
                "value larger than max_value_bytes"
            );
            metrics::counter!("cache_oversized_values_total", "function" => self.site.function())
                .increment(1);
            return FlightOutcome::Unstored(Arc::new(value.clone()));
        }
        let info = || EntryInfo {
            key: self.key.as_str().to_owned(),
            filled_at: from_unix_ms(envelope.filled_at_ms),
            fresh_until: from_unix_ms(envelope.fresh_until_ms),
            generation: generation_fingerprint(envelope.generations.iter().copied()),
            hit: false,
        };
        match self.redis.store(&self.entry_key, token, &bytes, lifetime).await {
            Ok(true) => {
                entry_info::record(info);
                FlightOutcome::Stored
            }
            Ok(false) => {
                self.site.record_refused();
                tracing::debug!(function = self.site.function(), key = %self.key, "store refused: invalidated during the load");
                FlightOutcome::Retry
            }
            Err(error) => {
                self.failed(&error);
                FlightOutcome::Unstored(Arc::new(value.clone()))
            }
        }
    }

    /// Reads and checks the entry: its type, format and generations.
    async fn read<V: CacheValue>(&self) -> Read<V> {
        let (bytes, counters) = match self.redis.read(&self.entry_key, &self.counter_keys).await {
            Ok(found) => found,
            Err(CacheError::Server(error)) => {
                // A key of another type: a miss, overwritten by the next store.
                self.undecodable(&error);
                return Read::Miss;
            }
            Err(error) => {
                self.failed(&error);
                return Read::Unavailable;
            }
        };
        let Some(bytes) = bytes else { return Read::Miss };
        match Envelope::decode::<K, V>(&bytes, self.fingerprint) {
            Ok((envelope, value)) => {
                let current = envelope.generations.len() == counters.len()
                    && envelope.generations.iter().zip(&counters).all(|(seen, now)| Some(*seen) == *now);
                if !current {
                    return Read::Miss;
                }
                entry_info::record(|| EntryInfo {
                    key: self.key.as_str().to_owned(),
                    filled_at: from_unix_ms(envelope.filled_at_ms),
                    fresh_until: from_unix_ms(envelope.fresh_until_ms),
                    generation: generation_fingerprint(envelope.generations.iter().copied()),
                    hit: true,
                });
                Read::Hit(value)
            }
            Err(error) => {
                self.undecodable(&error);
                Read::Miss
            }
        }
    }

    /// Another process holds the lease: poll for its value, and take the lease
    /// as soon as it is released, for at most `lease_wait`.
    async fn wait_for_other_process<V: CacheValue>(&self, lifetime: Duration) -> Waited<V> {
        let deadline = Instant::now() + self.redis.settings.lease_wait;
        let mut pause = Duration::from_millis(2);
        while Instant::now() < deadline {
            tokio::time::sleep(pause).await;
            match self.read::<V>().await {
                Read::Hit(value) => return Waited::Value(value),
                Read::Unavailable => return Waited::GaveUp,
                Read::Miss => {}
            }
            match self.redis.begin_load(&self.entry_key, &self.counter_keys, lifetime).await {
                Ok((Lease::Held(token), generations)) => return Waited::Lease(token, generations),
                Ok((Lease::Busy, _)) => {}
                Err(error) => {
                    self.failed(&error);
                    return Waited::GaveUp;
                }
            }
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        Waited::GaveUp
    }

    fn failed(&self, error: &CacheError) {
        self.site.record_error();
        tracing::debug!(function = self.site.function(), %error, "cache unavailable: running the function body");
    }

    fn undecodable(&self, error: &dyn std::fmt::Display) {
        self.site.record_error();
        metrics::counter!("cache_undecodable_total", "function" => self.site.function()).increment(1);
        tracing::warn!(function = self.site.function(), key = %self.key, %error, "undecodable entry treated as a miss");
    }
}
