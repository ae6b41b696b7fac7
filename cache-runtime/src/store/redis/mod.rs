//! The Redis store.
//!
//! # Keys
//! Entries, their leases and the tag and version counters, all under the
//! cache's prefix in shapes only this cache writes: see [`keys`].
//!
//! # Guarantees
//! - A hit is one round trip: a plain `GET` when the function has no tags or
//!   versions, else a pipeline of the `GET` and one `GET` per counter. An entry
//!   stored under other counters than the caller's (a tag that is not part of
//!   the key) costs one more round trip to read those.
//! - A tag invalidation or version bump is one script on one counter, whatever
//!   the number of entries; at `maxmemory` (which refuses the script) the
//!   counter is deleted instead, which Redis accepts and which invalidates just
//!   the same. An entry whose counters moved or vanished since its load began
//!   is a miss. Counters expire no earlier than the entries that depend on them.
//! - No stale sets: a load takes the entry's lease before running the body, a
//!   key invalidation deletes entry and lease together, and the store is a
//!   script that writes only while the lease still holds the loader's token.
//! - Connecting and every answer are bounded by the timeout; failures that mean
//!   Redis is not serving open a circuit breaker (see [`CacheError`]).

mod breaker;
mod conn;
mod direct;
mod error;
mod keys;
mod problem;
mod scripts;
mod tls;
mod wake;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use breaker::BreakerState;
use breaker::{Breaker, Permit};
use conn::Conn;
pub(crate) use conn::{Endpoint, Target};
pub use error::CacheError;
use problem::Problem;
use redis::{RedisResult, Value};
use scripts::Scripts;
pub(crate) use tls::TlsOptions;
pub(crate) use wake::ReleaseWatch;
use wake::Wakeups;

use super::{
    Commit, Fill, Found, LayerKind, LayerStatus, Lease, MemoryEntry, Request, Store, Targets, Ticket, Urgency,
};
use crate::codec::Envelope;
use crate::entry_info::{EntryMeta, duration_ms, unix_ms};
use crate::key::KeyWriter;

/// Longest expiry sent to Redis (about 100 years): larger values are refused.
const MAX_EXPIRE_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// Settings of the Redis store.
#[derive(Debug, Clone)]
pub(crate) struct RedisSettings {
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) lease: Duration,
    pub(crate) lease_wait: Duration,
    pub(crate) max_value_bytes: usize,
    pub(crate) breaker_threshold: u32,
    pub(crate) breaker_cooldown: Duration,
    /// Whether waiters for another process's lease subscribe to its release.
    pub(crate) lease_notifications: bool,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            prefix: "cache".to_owned(),
            timeout: Duration::from_millis(250),
            lease: Duration::from_secs(5),
            lease_wait: Duration::from_millis(500),
            max_value_bytes: 4 * 1024 * 1024,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
            lease_notifications: true,
        }
    }
}

/// How a load takes an entry's lease.
#[derive(Clone, Copy)]
enum Take {
    /// Only when no one holds it (a load).
    IfFree,
    /// Whoever holds it (a put, which wins over a load in progress).
    Over,
}

/// A handle on the Redis store; clones share the connection and breaker.
#[derive(Clone)]
pub(crate) struct RedisStore {
    shared: Arc<Shared>,
}

struct Shared {
    target: Target,
    connection: OnceLock<Conn>,
    settings: RedisSettings,
    breaker: Breaker,
    /// Woken when a breaker of the store closes again.
    recovered: Arc<tokio::sync::Notify>,
    /// The last misconfiguration Redis answered with.
    problem: Problem,
    scripts: Scripts,
    undecodable_warnings: AtomicU64,
    /// Wake-ups of waiters for another process's lease (`None`: they poll).
    wakeups: Option<Arc<Wakeups>>,
    /// The channel lease releases are published on.
    wake_channel: String,
}

impl RedisStore {
    /// Takes the entry's lease (`how`) and reads the generations of its dependencies, in one round trip.
    async fn begin(
        &self,
        request: &Request<'_>,
        lifetime: Duration,
        token: u128,
        how: Take,
    ) -> Result<Ticket, CacheError> {
        let entry_key = self.entry_key(request.key.as_bytes());
        let lease_key = keys::lease_key(&entry_key);
        let settings = &self.shared.settings;
        let counter_ms = expire_ms(lifetime.saturating_add(settings.lease));
        let mut pipe = redis::pipe();
        match how {
            Take::IfFree => pipe
                .cmd("EVALSHA")
                .arg(self.shared.scripts.acquire.get_hash())
                .arg(2)
                .arg(&lease_key)
                .arg(keys::wait_key(&entry_key)),
            // A plain write: whoever held the lease loses it, and with it its commit.
            Take::Over => pipe.cmd("SET").arg(&lease_key),
        };
        pipe.arg(token_text(token));
        match how {
            Take::IfFree => pipe.arg(expire_ms(settings.lease)),
            Take::Over => pipe.arg("PX").arg(expire_ms(settings.lease)),
        };
        for name in request.dependencies {
            pipe.cmd("EVALSHA")
                .arg(self.shared.scripts.observe.get_hash())
                .arg(1)
                .arg(self.counter_key(name))
                .arg(counter_ms);
        }
        let values: Vec<Value> = self.with_scripts(Urgency::Normal, &pipe).await?;
        let mut values = values.into_iter();
        let lease = match values.next() {
            Some(Value::Int(1) | Value::Okay) => Lease::Held(token),
            _ => Lease::Busy,
        };
        let generations = values.map(|value| counter_value(value).unwrap_or(0)).collect();
        Ok(Ticket::new(lease, generations))
    }
    pub(crate) fn new(target: Target, settings: RedisSettings) -> Self {
        let recovered = Arc::new(tokio::sync::Notify::new());
        let breaker =
            Breaker::new(settings.breaker_threshold, settings.breaker_cooldown, Arc::clone(&recovered));
        let wake_channel = format!("{}:wake", settings.prefix);
        let wakeups = settings
            .lease_notifications
            .then(|| Wakeups::new(target.node_client(0).clone(), wake_channel.clone(), settings.timeout));
        Self {
            shared: Arc::new(Shared {
                target,
                connection: OnceLock::new(),
                settings,
                breaker,
                recovered,
                problem: Problem::default(),
                scripts: Scripts::new(),
                undecodable_warnings: AtomicU64::new(0),
                wakeups,
                wake_channel,
            }),
        }
    }

    /// Remembers an error met outside the store's calls (the bus's
    /// subscription), and says it loudly if it means a misconfiguration.
    pub(crate) fn note_problem(&self, error: &CacheError) {
        self.shared.problem.note(error);
    }

    /// Woken when a breaker of the store closes again: Redis answers after an outage.
    pub(crate) fn recovered(&self) -> &tokio::sync::Notify {
        &self.shared.recovered
    }

    fn connection(&self) -> RedisResult<Conn> {
        if let Some(connection) = self.shared.connection.get() {
            return Ok(connection.clone());
        }
        let connection = self.shared.target.connect(&self.shared.settings, &self.shared.recovered)?;
        Ok(self.shared.connection.get_or_init(|| connection).clone())
    }

    /// Runs one Redis exchange under the breaker and classifies its errors.
    async fn call<T, F, Fut>(&self, urgency: Urgency, exchange: F) -> Result<T, CacheError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let permit: Permit<'_> = match urgency {
            Urgency::Normal => self.shared.breaker.permit().ok_or(CacheError::BreakerOpen)?,
            Urgency::Forced => self.shared.breaker.force_permit(),
        };
        let connection = match self.connection() {
            Ok(connection) => connection.for_call(urgency),
            Err(error) => {
                permit.failed(&error);
                return Err(CacheError::Connection(error));
            }
        };
        // A cluster has breakers per slot, in the connection.
        let judged = connection.uses_store_breaker();
        match exchange(connection).await {
            Ok(value) => {
                permit.succeeded();
                Ok(value)
            }
            Err(error) => {
                let error = CacheError::classify(error);
                self.shared.problem.note(&error);
                if error.is_outage() && judged {
                    permit.failed(&error)
                } else {
                    permit.succeeded()
                }
                Err(error)
            }
        }
    }

    /// Sends a pipeline that uses scripts, loading them once if Redis lost them.
    async fn with_scripts<T: redis::FromRedisValue>(
        &self,
        urgency: Urgency,
        pipe: &redis::Pipeline,
    ) -> Result<T, CacheError> {
        let first =
            self.call(urgency, |mut connection| async move { pipe.query_async(&mut connection).await }).await;
        match first {
            Err(CacheError::Server(error)) if error.code() == Some("NOSCRIPT") => {
                self.call(urgency, |mut connection| async move {
                    for script in self.shared.scripts.all() {
                        script.load_async(&mut connection).await?;
                    }
                    pipe.query_async(&mut connection).await
                })
                .await
            }
            other => other,
        }
    }

    pub(crate) fn entry_key(&self, key: &[u8]) -> Vec<u8> {
        keys::entry_key(&self.shared.settings.prefix, key)
    }

    fn counter_key(&self, dependency: &str) -> String {
        keys::counter_key(&self.shared.settings.prefix, dependency)
    }

    /// The entry's bytes and the current values of `counters`, in one round trip.
    async fn read(
        &self,
        entry_key: &[u8],
        counters: &[String],
    ) -> Result<(Option<Vec<u8>>, Vec<Option<u64>>), CacheError> {
        if counters.is_empty() {
            let bytes = self
                .call(Urgency::Normal, |mut connection| async move {
                    redis::cmd("GET").arg(entry_key).query_async(&mut connection).await
                })
                .await?;
            return Ok((bytes, Vec::new()));
        }
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(entry_key);
        for counter in counters {
            pipe.cmd("GET").arg(counter);
        }
        let values: Vec<Value> = self
            .call(Urgency::Normal, |mut connection| async move { pipe.query_async(&mut connection).await })
            .await?;
        let mut values = values.into_iter();
        let bytes = match values.next() {
            Some(Value::BulkString(bytes)) => Some(bytes),
            _ => None,
        };
        Ok((bytes, values.map(counter_value).collect()))
    }

    /// Current values of counters, one round trip.
    async fn counters(&self, counters: &[String]) -> Result<Vec<Option<u64>>, CacheError> {
        let values: Vec<Value> = self
            .call(Urgency::Normal, |mut connection| async move {
                redis::cmd("MGET").arg(counters).query_async(&mut connection).await
            })
            .await?;
        Ok(values.into_iter().map(counter_value).collect())
    }

    /// Whether the entry's generations are all current: `fetched` are the
    /// caller's counters, read with the entry; an entry stored under others
    /// (`under_callers` false) reads its own.
    async fn is_current(
        &self,
        envelope: &Envelope,
        fetched: Vec<Option<u64>>,
        under_callers: bool,
    ) -> Result<bool, CacheError> {
        let now = if under_callers {
            fetched
        } else {
            // Stored by a call with other tags (a tag that is not part of the key):
            // the entry answers to the counters it was stored under.
            let names: Vec<String> =
                envelope.dependencies.iter().map(|(name, _)| self.counter_key(name)).collect();
            if names.is_empty() { Vec::new() } else { self.counters(&names).await? }
        };
        Ok(now.len() == envelope.dependencies.len()
            && envelope.dependencies.iter().zip(&now).all(|((_, seen), now)| Some(*seen) == *now))
    }

    fn undecodable(&self, request: &Request<'_>, error: &dyn std::fmt::Display) {
        request.site.record_error("undecodable");
        // One warning, then one every 1,000: a deploy that changes a type would
        // otherwise log every read.
        if self.shared.undecodable_warnings.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
            tracing::warn!(function = request.site.function(), key = %request.key, %error, "undecodable entry treated as a miss");
        }
    }

    /// Logs a failed TLS handshake as a warning, at most once a minute: a
    /// misconfiguration that fails every call, where other outages pass.
    #[cold]
    fn unavailable(request: &Request<'_>, error: &CacheError) {
        request.site.record_error(error.class());
        tracing::debug!(function = request.site.function(), %error, "cache unavailable: running the function body");
    }

    /// Deletes the keys this cache wrote (entries, leases, wait marks,
    /// counters: the shapes of [`keys`], nothing else under its prefix),
    /// `SCAN` batch by `UNLINK` batch, on every master of a cluster; returns
    /// how many were deleted.
    pub(crate) async fn clear(&self) -> Result<u64, CacheError> {
        let prefix = &self.shared.settings.prefix;
        let pattern = keys::scan_pattern(prefix);
        let mut deleted = 0;
        for node in &self.masters().await? {
            let mut cursor = 0_u64;
            loop {
                let (next, mut found) = self.scan_page(node.as_ref(), cursor, &pattern).await?;
                found.retain(|key| keys::own_key(prefix, key).is_some());
                if !found.is_empty() {
                    // On a cluster the client splits it by slot.
                    let mut unlink = redis::cmd("UNLINK");
                    unlink.arg(found);
                    deleted += self.raw::<u64>(unlink).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }

    /// The nodes that hold keys: every master of a cluster, `[None]` for one server.
    async fn masters(&self) -> Result<Vec<Option<conn::Node>>, CacheError> {
        self.call(Urgency::Normal, |mut connection| async move { connection.masters().await }).await
    }

    /// One page of a `SCAN` of `node` for keys matching `pattern`: the next
    /// cursor (0 at the end) and the keys.
    async fn scan_page(
        &self,
        node: Option<&conn::Node>,
        cursor: u64,
        pattern: &str,
    ) -> Result<(u64, Vec<Vec<u8>>), CacheError> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000);
        self.call(Urgency::Normal, |mut connection| async move { connection.on_node(node, scan).await }).await
    }

    /// Entries by namespace, from a `SCAN` of every master, of at most about
    /// `limit` keys in all; and whether the scan saw every key.
    pub(crate) async fn key_counts(
        &self,
        limit: u64,
    ) -> Result<(std::collections::BTreeMap<String, u64>, u64, bool), CacheError> {
        let prefix = &self.shared.settings.prefix;
        let pattern = keys::scan_pattern(prefix);
        let mut counts = std::collections::BTreeMap::new();
        let mut scanned = 0_u64;
        for node in &self.masters().await? {
            let mut cursor = 0_u64;
            loop {
                let (next, found) = self.scan_page(node.as_ref(), cursor, &pattern).await?;
                for key in found {
                    scanned += 1;
                    if let Some(keys::OwnKey::Entry(inner)) = keys::own_key(prefix, &key) {
                        *counts.entry(super::memory::namespace(inner).to_owned()).or_insert(0) += 1;
                    }
                }
                if next == 0 {
                    break;
                }
                if scanned >= limit {
                    return Ok((counts, scanned, false));
                }
                cursor = next;
            }
        }
        Ok((counts, scanned, true))
    }

    /// Runs a raw command (for tools and tests).
    pub(crate) async fn raw<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Result<T, CacheError> {
        self.call(Urgency::Normal, |mut connection| async move { command.query_async(&mut connection).await })
            .await
    }

    /// The key prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.shared.settings.prefix
    }

    /// A client for a connection of its own (the bus's subscriber): on a
    /// cluster, each seed node in turn, `attempt` picking which.
    pub(crate) fn node_client(&self, attempt: usize) -> &redis::Client {
        self.shared.target.node_client(attempt)
    }

    /// The bound on every wait for Redis.
    pub(crate) fn timeout(&self) -> Duration {
        self.shared.settings.timeout
    }

    /// Publishes `message` on `channel`.
    pub(crate) async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), CacheError> {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(channel).arg(message);
        self.raw::<redis::Value>(publish).await.map(drop)
    }

    async fn invalidate_with(&self, targets: &Targets, urgency: Urgency) -> Result<(), CacheError> {
        self.invalidate_announcing(targets, urgency, None).await
    }

    /// Deletes the keys and bumps the counters of `targets`, then publishes
    /// `announcement` (a channel and a message), in one round trip.
    pub(crate) async fn invalidate_announcing(
        &self,
        targets: &Targets,
        urgency: Urgency,
        announcement: Option<(&str, &[u8])>,
    ) -> Result<(), CacheError> {
        let entry_keys: Vec<Vec<u8>> =
            targets.keys.iter().map(|key| self.entry_key(key.as_bytes())).collect();
        let counters: Vec<String> = targets.dependencies.iter().map(|name| self.counter_key(name)).collect();
        let mut pipe = redis::pipe();
        for entry_key in &entry_keys {
            pipe.cmd("DEL").arg(entry_key).arg(keys::lease_key(entry_key)).ignore();
        }
        for counter in &counters {
            pipe.cmd("EVALSHA").arg(self.shared.scripts.bump.get_hash()).arg(1).arg(counter).ignore();
        }
        if let Some((channel, message)) = announcement {
            pipe.cmd("PUBLISH").arg(channel).arg(message).ignore();
        }
        // Every command but the announcement applied: the invalidation holds in Redis.
        let announcement_at = entry_keys.len() + counters.len();
        let outcome = self.with_scripts::<()>(urgency, &pipe).await;
        match outcome.map_err(|error| {
            if announcement.is_some() { error.announcement_refused_at(announcement_at) } else { error }
        }) {
            Err(error @ CacheError::NotAnnounced(_)) => {
                self.shared.problem.note(&error);
                Err(error)
            }
            Err(CacheError::OutOfMemory(_)) => {
                // At `maxmemory` Redis refuses the bump but accepts deletes, and a
                // deleted counter invalidates its entries just as well.
                tracing::warn!("Redis is out of memory: invalidating by deleting the counters");
                let mut pipe = redis::pipe();
                for entry_key in &entry_keys {
                    pipe.cmd("DEL").arg(entry_key).arg(keys::lease_key(entry_key)).ignore();
                }
                for counter in &counters {
                    pipe.cmd("DEL").arg(counter).ignore();
                }
                if let Some((channel, message)) = announcement {
                    pipe.cmd("PUBLISH").arg(channel).arg(message).ignore();
                }
                self.call(urgency, |mut connection| async move { pipe.query_async(&mut connection).await })
                    .await
            }
            other => other,
        }
    }
}

/// An entry another function wrote under this call's key: reported when it
/// holds another value type or was stored under other tags.
#[cold]
fn check_collision(request: &Request<'_>, envelope: &Envelope) {
    let what = if envelope.fingerprint != request.fingerprint {
        Some("another value type")
    } else {
        let same = envelope.dependencies.len() == request.dependencies.len()
            && envelope.dependencies.iter().zip(request.dependencies).all(|((name, _), other)| name == other);
        (!same).then_some("other tags or versions")
    };
    if let Some(what) = what {
        request.site.record_collision(request.key, envelope.site, what);
    }
}

/// Whether `envelope` was stored under the dependencies `request` has.
fn stored_under_callers(request: &Request<'_>, envelope: &Envelope) -> bool {
    envelope.dependencies.len() == request.dependencies.len()
        && envelope.dependencies.iter().zip(request.dependencies).all(|((name, _), caller)| name == caller)
}

fn counter_value(value: Value) -> Option<u64> {
    redis::from_redis_value::<Option<u64>>(value).ok().flatten()
}

fn expire_ms(duration: Duration) -> u64 {
    duration_ms(duration).clamp(1, MAX_EXPIRE_MS)
}

fn token_text(token: u128) -> String {
    format!("{token:032x}")
}

impl Store for RedisStore {
    fn probe(&self, _key: &[u8], _fingerprint: u64) -> Option<Arc<MemoryEntry>> {
        None
    }

    async fn lookup(&self, request: &Request<'_>) -> Found {
        let entry_key = self.entry_key(request.key.as_bytes());
        let counters: Vec<String> = request.dependencies.iter().map(|name| self.counter_key(name)).collect();
        let (bytes, fetched) = match self.read(&entry_key, &counters).await {
            Ok(found) => found,
            Err(error @ CacheError::WrongType(_)) => {
                self.undecodable(request, &error);
                return Found::Miss;
            }
            Err(error) => {
                Self::unavailable(request, &error);
                return Found::Unavailable;
            }
        };
        let Some(bytes) = bytes else { return Found::Miss };
        let decoded = Envelope::decode_header(&bytes).and_then(|(envelope, payload)| {
            if envelope.site != request.site.id() {
                check_collision(request, &envelope);
            }
            let value = envelope.decode_payload(payload, request.ops, request.fingerprint)?;
            Ok((envelope, value))
        });
        let (envelope, value) = match decoded {
            Ok(decoded) => decoded,
            Err(error) => {
                self.undecodable(request, &error);
                return Found::Miss;
            }
        };
        let under_callers = stored_under_callers(request, &envelope);
        let meta = EntryMeta { other_dependencies: !under_callers, ..envelope.meta() };
        match self.is_current(&envelope, fetched, under_callers).await {
            Ok(true) if unix_ms() < envelope.fresh_until_ms => Found::Fresh(value, meta),
            Ok(true) if unix_ms() < envelope.stale_until_ms => Found::Stale(value, meta),
            Ok(_) => Found::Miss,
            Err(error) => {
                Self::unavailable(request, &error);
                Found::Unavailable
            }
        }
    }

    async fn begin_load(
        &self,
        request: &Request<'_>,
        lifetime: Duration,
        token: u128,
    ) -> Result<Ticket, CacheError> {
        self.begin(request, lifetime, token, Take::IfFree).await
    }

    async fn begin_put(
        &self,
        request: &Request<'_>,
        lifetime: Duration,
        token: u128,
    ) -> Result<Ticket, CacheError> {
        self.begin(request, lifetime, token, Take::Over).await
    }

    async fn commit(&self, request: &Request<'_>, ticket: &Ticket, fill: Fill<'_>) -> Commit {
        let Lease::Held(token) = ticket.lease else { return Commit::NotStored };
        let meta = EntryMeta::filled_now(&fill, &ticket.generations);
        let envelope = Envelope {
            format: crate::codec::FORMAT_VERSION,
            codec: request.ops.codec,
            fingerprint: request.fingerprint,
            site: request.site.id(),
            filled_at_ms: meta.filled_at_ms,
            fresh_until_ms: meta.fresh_until_ms,
            stale_until_ms: meta.stale_until_ms,
            load_micros: meta.load_micros,
            absent: crate::value::is_absent(fill.value),
            dependencies: request
                .dependencies
                .iter()
                .cloned()
                .zip(ticket.generations.iter().copied())
                .collect(),
        };
        let bytes = match envelope.encode_erased(request.ops, fill.value) {
            Ok(bytes) => bytes,
            Err(error) => {
                request.site.record_error("encode");
                tracing::warn!(function = request.site.function(), %error, "value not stored");
                return Commit::NotStored;
            }
        };
        request.site.record_value_bytes(bytes.len());
        if bytes.len() > self.shared.settings.max_value_bytes {
            tracing::debug!(
                function = request.site.function(),
                bytes = bytes.len(),
                "value larger than max_value_bytes"
            );
            request.site.record_oversized();
            return Commit::NotStored;
        }
        let entry_key = self.entry_key(request.key.as_bytes());
        let mut pipe = redis::pipe();
        pipe.cmd("EVALSHA")
            .arg(self.shared.scripts.store.get_hash())
            .arg(3)
            .arg(&entry_key)
            .arg(keys::lease_key(&entry_key))
            .arg(keys::wait_key(&entry_key))
            .arg(token_text(token))
            .arg(bytes)
            .arg(expire_ms(fill.lifetime.saturating_add(fill.keep)))
            .arg(&self.shared.wake_channel);
        match self.with_scripts::<Vec<i64>>(Urgency::Normal, &pipe).await {
            Ok(stored) if stored.first() == Some(&1) => Commit::Stored(meta),
            Ok(_) => Commit::Refused,
            Err(error) => {
                Self::unavailable(request, &error);
                Commit::NotStored
            }
        }
    }

    async fn still_current(
        &self,
        request: &Request<'_>,
        token: u128,
        ticket: &Ticket,
    ) -> Result<bool, CacheError> {
        let lease_key = keys::lease_key(&self.entry_key(request.key.as_bytes()));
        let counters: Vec<String> = request.dependencies.iter().map(|name| self.counter_key(name)).collect();
        let (lease, now) = self.read(&lease_key, &counters).await?;
        let held = lease.is_some_and(|holder| holder == token_text(token).as_bytes());
        Ok(held
            && now.len() == ticket.generations.len()
            && now.iter().zip(&ticket.generations).all(|(now, seen)| *now == Some(*seen)))
    }

    async fn observe(&self, name: &str, keep_for: Duration) -> Result<u64, CacheError> {
        let mut pipe = redis::pipe();
        pipe.cmd("EVALSHA")
            .arg(self.shared.scripts.observe.get_hash())
            .arg(1)
            .arg(self.counter_key(name))
            .arg(expire_ms(keep_for));
        let values: Vec<Value> = self.with_scripts(Urgency::Normal, &pipe).await?;
        values.into_iter().next().and_then(counter_value).ok_or_else(|| {
            CacheError::Server(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "a counter's generation is not a number",
            )))
        })
    }

    fn abandon(&self, key: &KeyWriter, token: u128) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime to release it on: the lease expires by itself
        };
        let store = self.clone();
        let entry_key = self.entry_key(key.as_bytes());
        runtime.spawn(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("EVALSHA")
                .arg(store.shared.scripts.release.get_hash())
                .arg(2)
                .arg(keys::lease_key(&entry_key))
                .arg(keys::wait_key(&entry_key))
                .arg(token_text(token))
                .arg(&store.shared.wake_channel)
                .arg(&entry_key)
                .ignore();
            if let Err(error) = store.with_scripts::<()>(Urgency::Forced, &pipe).await {
                tracing::debug!(%error, "lease not released: it expires by itself");
            }
        });
    }

    async fn invalidate(&self, targets: &Targets, urgency: Urgency) -> Result<(), CacheError> {
        self.invalidate_with(targets, urgency).await
    }

    fn watch_release(&self, key: &KeyWriter) -> Option<ReleaseWatch> {
        self.shared.wakeups.as_ref()?.watch(&self.entry_key(key.as_bytes()))
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn status(&self) -> LayerStatus {
        LayerStatus {
            kind: LayerKind::Redis,
            entries: None,
            weight_bytes: None,
            breaker: Some(
                self.shared
                    .connection
                    .get()
                    .and_then(Conn::breaker_state)
                    .unwrap_or_else(|| self.shared.breaker.state()),
            ),
            evictions: None,
            problem: self.shared.problem.current(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_are_clamped_to_what_redis_accepts() {
        assert_eq!(expire_ms(Duration::MAX), MAX_EXPIRE_MS);
        assert_eq!(expire_ms(Duration::ZERO), 1);
    }
}
