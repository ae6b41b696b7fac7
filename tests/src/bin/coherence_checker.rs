//! One process of the two-level cache's randomized coherence check.
//!
//! `coherence_checker <redis-url> <seconds> <keys>` runs, on a two-level cache
//! of its own, one writer and four readers over a small key space for the
//! given time. The "database" is a counter per key on the same Redis, outside
//! the cache (`db:<k>`): a write increments it, invalidates the reader's entry
//! (`invalidate!`), then records when the invalidation returned and in which
//! process (`db:<k>:at:<version>`). Each read first reads the database's
//! version directly, then the cached one, and checks:
//! - a read that began after an invalidation *returned in this process* never
//!   returns the version that invalidation removed (or an older one);
//! - a read older than the database (a stale read) began less than `BOUND`
//!   after the invalidation that removed its version returned, in whichever
//!   process: that is the bus's propagation.
//!
//! Prints `reads=<n> stale=<n> max_lag_us=<n> writes=<n> violations=<n>`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cache_runtime::redis::AsyncCommands;
use cache_runtime::redis::aio::ConnectionManager;
use cache_runtime::{Cache, cached, invalidate};

/// The longest a stale read may lag behind the invalidation that removed its version.
const BOUND: Duration = Duration::from_millis(100);

/// The database: a version counter per key, outside the cache.
#[derive(Clone)]
struct Db(ConnectionManager);

impl Db {
    async fn version(&self, key: u64) -> u64 {
        let version: Option<u64> = self.0.clone().get(format!("db:{key}")).await.expect("database read");
        version.unwrap_or(0)
    }
}

#[cached(key = "version:<key>", ttl = 60, cache = cache, skip = [cache, db])]
async fn cached_version(cache: &Cache, db: &Db, key: u64) -> u64 {
    db.version(key).await
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_micros() as u64)
}

#[derive(Default)]
struct Tally {
    reads: AtomicU64,
    stale: AtomicU64,
    max_lag_us: AtomicU64,
    writes: AtomicU64,
    violations: AtomicU64,
}

struct Run {
    cache: Cache,
    db: Db,
    keys: u64,
    process: u32,
    /// The version each key had when this process's last invalidation of it returned.
    invalidated: Vec<AtomicU64>,
    tally: Tally,
}

impl Run {
    async fn write(&self) {
        let key = fastrand::u64(..self.keys);
        let version: u64 = self.db.0.clone().incr(format!("db:{key}"), 1).await.expect("database write");
        while invalidate!(cached_version(key), cache = &self.cache).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let returned = now_us();
        self.invalidated[key as usize].fetch_max(version, Ordering::SeqCst);
        let at = format!("{}:{returned}", self.process);
        let _: () =
            self.db.0.clone().set(format!("db:{key}:at:{version}"), at).await.expect("database write");
        self.tally.writes.fetch_add(1, Ordering::Relaxed);
    }

    async fn read(&self) {
        let key = fastrand::u64(..self.keys);
        let started = now_us();
        let invalidated_here = self.invalidated[key as usize].load(Ordering::SeqCst);
        let truth = self.db.version(key).await;
        let seen = cached_version(&self.cache, &self.db, key).await;
        self.tally.reads.fetch_add(1, Ordering::Relaxed);
        if seen < invalidated_here {
            eprintln!(
                "violation: key {key} read version {seen} after this process invalidated up to {invalidated_here}"
            );
            self.tally.violations.fetch_add(1, Ordering::Relaxed);
        }
        if seen >= truth {
            return;
        }
        self.tally.stale.fetch_add(1, Ordering::Relaxed);
        let at: Option<String> =
            self.db.0.clone().get(format!("db:{key}:at:{}", seen + 1)).await.expect("database read");
        let Some((process, returned)) = at.as_deref().and_then(|at| at.split_once(':')) else {
            return; // the write that replaced it has not returned yet
        };
        let returned: u64 = returned.parse().unwrap_or(u64::MAX);
        if returned >= started {
            return;
        }
        let lag = started - returned;
        self.tally.max_lag_us.fetch_max(lag, Ordering::Relaxed);
        if process == self.process.to_string() || lag > BOUND.as_micros() as u64 {
            eprintln!(
                "violation: key {key} read version {seen}, replaced {lag} µs before the read began (by process {process})"
            );
            self.tally.violations.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(seconds), Some(keys)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: coherence_checker <redis-url> <seconds> <keys>");
        std::process::exit(2);
    };
    let (Ok(seconds), Ok(keys)) = (seconds.parse::<f64>(), keys.parse::<u64>()) else {
        eprintln!("<seconds> and <keys> are numbers");
        std::process::exit(2);
    };
    let cache = Cache::builder()
        .redis(url)
        .and_then(|builder| builder.prefix("check"))
        .map(|builder| builder.timeout(Duration::from_secs(1)).local_cache(16 << 20).build())
        .unwrap_or_else(|error| {
            eprintln!("{error}");
            std::process::exit(2);
        });
    let client = cache_runtime::redis::Client::open(url.as_str()).expect("valid url");
    let db = Db(client.get_connection_manager().await.expect("database connection"));
    let run = Arc::new(Run {
        cache,
        db,
        keys: keys.max(1),
        process: std::process::id(),
        invalidated: (0..keys.max(1)).map(|_| AtomicU64::new(0)).collect(),
        tally: Tally::default(),
    });
    // The layer is used once the bus vouches for it.
    let ready = Instant::now();
    while !run.cache.status().bus.is_some_and(|bus| bus.vouched) && ready.elapsed() < Duration::from_secs(10)
    {
        cached_version(&run.cache, &run.db, 0).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for task in 0..5 {
        let run = Arc::clone(&run);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                if task == 0 {
                    run.write().await;
                    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..2_000))).await;
                } else {
                    run.read().await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a task panicked");
    }
    let tally = &run.tally;
    println!(
        "reads={} stale={} max_lag_us={} writes={} violations={}",
        tally.reads.load(Ordering::Relaxed),
        tally.stale.load(Ordering::Relaxed),
        tally.max_lag_us.load(Ordering::Relaxed),
        tally.writes.load(Ordering::Relaxed),
        tally.violations.load(Ordering::Relaxed),
    );
}
