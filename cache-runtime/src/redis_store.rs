//! The Redis backend.
//!
//! # Keys
//! With prefix `P` and a rendered key `K`:
//! - `P:{K}` holds the encoded entry (an [`Envelope`](crate::Envelope) and the value);
//! - `P:{K}:lease` is the load lease of that entry (same hash slot, thanks to `{K}`);
//! - `P:gen:t:<tag>` and `P:gen:v:<version>` are generation counters.
//!
//! # Guarantees
//! - A hit is one round trip: a plain `GET` when the function has no tags or
//!   versions, else a pipeline of the `GET` and one `GET` per counter.
//! - A tag invalidation or version bump is one `INCR`-like script on one
//!   counter, whatever the number of entries. An entry whose counters moved or
//!   vanished since its load began is a miss. Counters expire no earlier than
//!   the entries that depend on them (each load extends its counters' expiry to
//!   the entry's lifetime), so they are bounded by the tags and versions in use
//!   within one TTL. A counter created anew starts at the server's clock in
//!   microseconds, a number no earlier counter of that name held.
//! - No stale sets: a load takes the entry's lease (set if absent) before running
//!   the body, a key invalidation deletes entry and lease together, and the
//!   store is a script that writes only while the lease still holds the
//!   loader's token. Tag and version invalidations are caught by the counters
//!   when the entry is read.
//! - Every call is bounded by a timeout, and failures open a circuit breaker;
//!   callers then run the function body instead.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, RedisResult, Script, ServerErrorKind};

/// Settings of the Redis backend.
#[derive(Debug, Clone)]
pub(crate) struct RedisSettings {
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) lease: Duration,
    pub(crate) lease_wait: Duration,
    pub(crate) max_value_bytes: usize,
    pub(crate) breaker_threshold: u32,
    pub(crate) breaker_cooldown: Duration,
    pub(crate) invalidation_attempts: u32,
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
            invalidation_attempts: 5,
        }
    }
}

/// Why the cache could not do what was asked; callers of `#[cached]` never see it
/// (the function body runs instead), but [`Cache`](crate::Cache) methods return it.
#[derive(Debug, Clone)]
pub enum CacheError {
    /// The circuit breaker is open: Redis was not asked.
    BreakerOpen,
    /// No answer within the configured timeout.
    Timeout,
    /// The connection failed.
    Connection(RedisError),
    /// Redis answered with an error (a key of another type, for example).
    Server(RedisError),
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BreakerOpen => f.write_str("Redis skipped: circuit breaker open"),
            Self::Timeout => f.write_str("Redis did not answer in time"),
            Self::Connection(error) => write!(f, "Redis connection failed: {error}"),
            Self::Server(error) => write!(f, "Redis answered with an error: {error}"),
        }
    }
}

impl std::error::Error for CacheError {}

/// Opens after `threshold` consecutive failures; after `cooldown` lets one probe
/// through (half-open); closes on the first success.
struct Breaker {
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which calls are skipped; 0 when closed.
    open_until_ms: AtomicU64,
    probing: AtomicBool,
    epoch: Instant,
    threshold: u32,
    cooldown: Duration,
}

impl Breaker {
    fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            epoch: Instant::now(),
            threshold: threshold.max(1),
            cooldown,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn allow(&self) -> bool {
        let open_until = self.open_until_ms.load(Ordering::Acquire);
        if open_until == 0 {
            return true;
        }
        if self.now_ms() < open_until {
            return false;
        }
        // Half-open: one probe at a time.
        self.probing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Called after every answer, so it only writes when something changes:
    /// shared cache lines stay unmodified on the hot path.
    fn succeeded(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.open_until_ms.load(Ordering::Acquire) != 0
            && self.open_until_ms.swap(0, Ordering::AcqRel) != 0
        {
            tracing::info!("Redis answers again: circuit breaker closed");
        }
        if self.probing.load(Ordering::Acquire) {
            self.probing.store(false, Ordering::Release);
        }
    }

    fn failed(&self) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.threshold {
            let until = self.now_ms() + u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX);
            if self.open_until_ms.swap(until.max(1), Ordering::AcqRel) == 0 {
                tracing::warn!(failures, "Redis keeps failing: circuit breaker open");
                metrics::counter!("cache_breaker_opened_total").increment(1);
            }
        }
        self.probing.store(false, Ordering::Release);
    }

    fn is_open(&self) -> bool {
        self.open_until_ms.load(Ordering::Acquire) != 0
    }
}

const OBSERVE: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then
  local t = redis.call('TIME')
  v = string.format('%.0f', t[1] * 1000000 + t[2])
  redis.call('SET', KEYS[1], v, 'PX', ARGV[1])
elseif redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return v
";

const BUMP: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  local v = redis.call('INCR', KEYS[1])
  local t = redis.call('TIME')
  local now = t[1] * 1000000 + t[2]
  if v < now then
    redis.call('SET', KEYS[1], string.format('%.0f', now), 'KEEPTTL')
  end
end
return 1
";

const ACQUIRE: &str = r"
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  return 1
end
return 0
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 1
";

const STORE: &str = r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
";

/// The Redis side of a [`Cache`](crate::Cache).
pub(crate) struct RedisStore {
    client: redis::Client,
    connection: OnceLock<ConnectionManager>,
    pub(crate) settings: RedisSettings,
    breaker: Breaker,
    observe: Script,
    bump: Script,
    store: Script,
    acquire: Script,
    release: Script,
}

/// How a load may store its value.
pub(crate) enum Lease {
    /// This caller holds the lease: store with this token.
    Held(String),
    /// Another process is loading the entry.
    Busy,
}

impl RedisStore {
    pub(crate) fn new(client: redis::Client, settings: RedisSettings) -> Self {
        let breaker = Breaker::new(settings.breaker_threshold, settings.breaker_cooldown);
        Self {
            client,
            connection: OnceLock::new(),
            settings,
            breaker,
            observe: Script::new(OBSERVE),
            bump: Script::new(BUMP),
            store: Script::new(STORE),
            acquire: Script::new(ACQUIRE),
            release: Script::new(RELEASE),
        }
    }

    fn connection(&self) -> RedisResult<ConnectionManager> {
        if let Some(connection) = self.connection.get() {
            return Ok(connection.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.settings.timeout))
            .set_response_timeout(Some(self.settings.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        Ok(self.connection.get_or_init(|| connection).clone())
    }

    /// Runs one Redis exchange under the breaker.
    async fn call<T, F, Fut>(&self, exchange: F) -> Result<T, CacheError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.breaker.allow() {
            return Err(CacheError::BreakerOpen);
        }
        let connection = match self.connection() {
            Ok(connection) => connection,
            Err(error) => {
                self.breaker.failed();
                return Err(CacheError::Connection(error));
            }
        };
        // The connection enforces `timeout` on connecting and on every response
        // (a timer of our own per call would cost a sixth of the hit throughput).
        match exchange(connection).await {
            Ok(value) => {
                self.breaker.succeeded();
                Ok(value)
            }
            // Redis answered, with an error (a key of another type, say): it is up.
            Err(error) if error.clone().into_server_errors().is_some() => {
                self.breaker.succeeded();
                Err(CacheError::Server(error))
            }
            Err(error) => {
                self.breaker.failed();
                Err(if error.is_timeout() { CacheError::Timeout } else { CacheError::Connection(error) })
            }
        }
    }

    /// Whether the breaker currently skips Redis.
    pub(crate) fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }

    pub(crate) fn entry_key(&self, key: &[u8]) -> Vec<u8> {
        let prefix = self.settings.prefix.as_bytes();
        let mut full = Vec::with_capacity(prefix.len() + key.len() + 3);
        full.extend_from_slice(prefix);
        full.extend_from_slice(b":{");
        full.extend_from_slice(key);
        full.push(b'}');
        full
    }

    pub(crate) fn lease_key(entry_key: &[u8]) -> Vec<u8> {
        let mut lease = Vec::with_capacity(entry_key.len() + 6);
        lease.extend_from_slice(entry_key);
        lease.extend_from_slice(b":lease");
        lease
    }

    pub(crate) fn counter_key(&self, dependency: &str) -> String {
        format!("{}:gen:{dependency}", self.settings.prefix)
    }

    /// The entry's bytes and its counters' current values (`None` when missing),
    /// in one round trip.
    pub(crate) async fn read(
        &self,
        entry_key: &[u8],
        counter_keys: &[String],
    ) -> Result<(Option<Vec<u8>>, Vec<Option<u64>>), CacheError> {
        if counter_keys.is_empty() {
            let bytes: Option<Vec<u8>> = self
                .call(|mut connection| async move {
                    redis::cmd("GET").arg(entry_key).query_async(&mut connection).await
                })
                .await?;
            return Ok((bytes, Vec::new()));
        }
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(entry_key);
        for counter in counter_keys {
            pipe.cmd("GET").arg(counter);
        }
        let values: Vec<redis::Value> =
            self.call(|mut connection| async move { pipe.query_async(&mut connection).await }).await?;
        let mut values = values.into_iter();
        let bytes = match values.next() {
            Some(redis::Value::BulkString(bytes)) => Some(bytes),
            _ => None,
        };
        let counters =
            values.map(|value| redis::from_redis_value::<Option<u64>>(value).ok().flatten()).collect();
        Ok((bytes, counters))
    }

    /// Takes the entry's lease and reads (creating when missing) its counters,
    /// extending their expiry to at least `lifetime`; one round trip.
    pub(crate) async fn begin_load(
        &self,
        entry_key: &[u8],
        counter_keys: &[String],
        lifetime: Duration,
    ) -> Result<(Lease, Vec<u64>), CacheError> {
        let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let lease_ms = duration_ms(self.settings.lease);
        let counter_ms = duration_ms(lifetime + self.settings.lease);
        let lease_key = Self::lease_key(entry_key);
        let mut pipe = redis::pipe();
        // A script, not `SET NX`, so that resending the pipeline after Redis lost
        // its scripts (NOSCRIPT) finds the lease already ours.
        pipe.cmd("EVALSHA").arg(self.acquire.get_hash()).arg(1).arg(&lease_key).arg(&token).arg(lease_ms);
        for counter in counter_keys {
            pipe.cmd("EVALSHA").arg(self.observe.get_hash()).arg(1).arg(counter).arg(counter_ms);
        }
        let values: Vec<redis::Value> = self.with_scripts(&pipe).await?;
        let mut values = values.into_iter();
        let lease = match values.next() {
            Some(redis::Value::Int(1)) => Lease::Held(token),
            _ => Lease::Busy,
        };
        let generations = values.map(|value| redis::from_redis_value::<u64>(value).unwrap_or(0)).collect();
        Ok((lease, generations))
    }

    /// Stores `bytes` for `lifetime` if the lease still holds `token`.
    pub(crate) async fn store(
        &self,
        entry_key: &[u8],
        token: &str,
        bytes: &[u8],
        lifetime: Duration,
    ) -> Result<bool, CacheError> {
        let lease_key = Self::lease_key(entry_key);
        let mut pipe = redis::pipe();
        pipe.cmd("EVALSHA")
            .arg(self.store.get_hash())
            .arg(2)
            .arg(entry_key)
            .arg(&lease_key)
            .arg(token)
            .arg(bytes)
            .arg(duration_ms(lifetime).max(1));
        let values: Vec<i64> = self.with_scripts(&pipe).await?;
        Ok(values.first() == Some(&1))
    }

    /// Gives the lease back when the load produced nothing to store.
    pub(crate) async fn release(&self, entry_key: &[u8], token: &str) -> Result<(), CacheError> {
        let mut pipe = redis::pipe();
        pipe.cmd("EVALSHA")
            .arg(self.release.get_hash())
            .arg(1)
            .arg(Self::lease_key(entry_key))
            .arg(token)
            .ignore();
        self.with_scripts::<()>(&pipe).await
    }

    /// Deletes entries (and their leases) and bumps counters, in one round trip.
    pub(crate) async fn invalidate(
        &self,
        entry_keys: &[Vec<u8>],
        counter_keys: &[String],
    ) -> Result<(), CacheError> {
        let mut pipe = redis::pipe();
        for entry_key in entry_keys {
            pipe.cmd("DEL").arg(entry_key).arg(Self::lease_key(entry_key)).ignore();
        }
        for counter in counter_keys {
            pipe.cmd("EVALSHA").arg(self.bump.get_hash()).arg(1).arg(counter).ignore();
        }
        self.with_scripts::<()>(&pipe).await
    }

    /// Sends a pipeline that uses scripts, loading them once if Redis lost them.
    async fn with_scripts<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, CacheError> {
        let first = self.call(|mut connection| async move { pipe.query_async(&mut connection).await }).await;
        match first {
            Err(CacheError::Server(error))
                if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
            {
                self.call(|mut connection| async move {
                    for script in [&self.observe, &self.bump, &self.store, &self.acquire, &self.release] {
                        script.load_async(&mut connection).await?;
                    }
                    pipe.query_async(&mut connection).await
                })
                .await
            }
            other => other,
        }
    }

    /// Runs a raw command (for tests and tools).
    pub(crate) async fn raw<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Result<T, CacheError> {
        self.call(|mut connection| async move { command.query_async(&mut connection).await }).await
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, duration_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_threshold_and_half_opens_after_cooldown() {
        let breaker = Breaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            assert!(breaker.allow());
            breaker.failed();
        }
        assert!(breaker.allow());
        breaker.failed();
        assert!(!breaker.allow(), "open after 3 failures");
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allow(), "one probe after the cooldown");
        assert!(!breaker.allow(), "only one probe at a time");
        breaker.failed();
        assert!(!breaker.allow(), "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(40));
        assert!(breaker.allow());
        breaker.succeeded();
        assert!(breaker.allow() && breaker.allow(), "closed after a successful probe");
    }

    #[test]
    fn keys_share_the_entry_hash_slot() {
        let store = RedisStore::new(
            redis::Client::open("redis://127.0.0.1:1").unwrap(),
            RedisSettings { prefix: "app:prod".into(), ..RedisSettings::default() },
        );
        let entry = store.entry_key(b"user:42");
        assert_eq!(entry, b"app:prod:{user:42}");
        assert_eq!(RedisStore::lease_key(&entry), b"app:prod:{user:42}:lease");
        assert_eq!(store.counter_key("t:org:7"), "app:prod:gen:t:org:7");
    }
}
