//! The Redis store on a Redis Cluster, against `redis-server` processes in
//! cluster mode started here: the shared suites (on one cluster of three
//! masters shared by the tests, each cache under a prefix of its own), and
//! faults under load on clusters of their own: a master killed and replaced by
//! its replica, a slot migrated between masters, a master paused.
//!
//! Skipped (with a message) when `redis-server` is not installed, unless
//! `CACHE_REQUIRE_REDIS=1`, when they fail instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_runtime::Cache;
use cache_tests::redis_server::{RedisCluster, require_redis};

static NEXT_PREFIX: AtomicU64 = AtomicU64::new(0);

/// A prefix no other cache of this process uses.
fn fresh_prefix() -> String {
    format!("test:c{}", NEXT_PREFIX.fetch_add(1, Ordering::Relaxed))
}

/// The tests' settings on a cluster: a short timeout and breaker.
fn cluster_builder(urls: &[String], prefix: &str) -> cache_runtime::CacheBuilder {
    Cache::builder()
        .redis_cluster(urls)
        .expect("valid seeds")
        .prefix(prefix)
        .expect("valid prefix")
        .timeout(Duration::from_millis(200))
        .circuit_breaker(3, Duration::from_millis(300))
}

fn cluster_cache(urls: &[String], prefix: &str) -> Cache {
    cluster_builder(urls, prefix).build()
}

/// Connects `cache` to the cluster (a fresh cluster connection learns the
/// topology first), so that the scenarios' timings start from a connected cache.
async fn warm(cache: &Cache) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut get = cache_runtime::redis::cmd("GET");
    get.arg("test:warm-up");
    while cache.redis_command::<Option<Vec<u8>>>(get.clone()).await.is_some_and(|answer| answer.is_err()) {
        assert!(std::time::Instant::now() < deadline, "the cluster never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A cache of its own (by prefix) on the shared cluster.
struct Fixture {
    cache: Cache,
}

impl Fixture {
    async fn start() -> Option<Self> {
        Self::start_with(cluster_cache).await
    }

    /// A cache made by `make` (from the seeds and a fresh prefix), connected.
    async fn start_with(make: fn(&[String], &str) -> Cache) -> Option<Self> {
        if !require_redis() {
            return None;
        }
        let cluster = RedisCluster::shared();
        let cache = make(&cluster.urls(), &fresh_prefix());
        warm(&cache).await;
        Some(Self { cache })
    }

    fn cache(&self) -> Cache {
        self.cache.clone()
    }
}

macro_rules! fixture {
    () => {
        match Fixture::start().await {
            Some(fixture) => fixture,
            None => return,
        }
    };
}

mod shared {
    use super::*;
    cache_tests::scenario_tests!(fixture!());
}

cache_tests::linked_tests!(fixture!());

#[cache_runtime::cached(key = "counted:<id>", ttl = 60, cache = cache, skip = [cache])]
async fn counted(cache: &Cache, id: u64) -> u64 {
    id
}

/// Key counts scan every master: the entries are spread over all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_counts_cover_every_master() {
    let fixture = fixture!();
    let cache = fixture.cache();
    for id in 0..90 {
        counted(&cache, id).await;
    }
    let counts = cache.key_counts(100_000).await.expect("the cluster answers");
    eprintln!("key counts: {counts:?}");
    assert_eq!(counts.namespaces.get("counted"), Some(&90), "{counts:?}");
    assert!(counts.complete);
}

/// The two-level cache on the cluster: its bus on classic pub/sub, which the
/// cluster relays to every node.
mod two_level {
    use super::*;

    pub(super) fn two_level_cache(urls: &[String], prefix: &str) -> Cache {
        cluster_builder(urls, prefix).local_cache(16 << 20).build()
    }

    macro_rules! fixture {
        () => {
            match Fixture::start_with(two_level_cache).await {
                Some(fixture) => fixture,
                None => return,
            }
        };
    }

    mod shared {
        use super::*;
        cache_tests::scenario_tests!(fixture!());
    }

    cache_tests::linked_tests!(fixture!());

    use std::time::Instant;

    use cache_runtime::invalidate;
    use cache_tests::linked::{PATIENCE, Table, profile, set_name, until_served, until_vouched};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bus_survives_the_death_of_the_node_it_listens_on() {
        if !require_redis() {
            return;
        }
        let mut cluster =
            tokio::task::spawn_blocking(|| RedisCluster::start_with(1, 1000)).await.expect("harness");
        // Each subscriber starts on the first seed: the node killed below.
        let (here, there) =
            (two_level_cache(&cluster.urls(), "test:bus"), two_level_cache(&cluster.urls(), "test:bus"));
        until_vouched(&here).await;
        until_vouched(&there).await;
        let table = Table::default();
        profile(&there, &table, 1).await.unwrap();
        set_name(&table, 1, "Ada");
        invalidate!(cache_tests::linked::profile(1), cache = &here).await.unwrap();
        let before = until_served(&there, &table, "Ada").await;
        let resyncs = there.status().bus.map_or(0, |bus| bus.resyncs);
        let cluster = tokio::task::spawn_blocking(move || {
            cluster.nodes_mut()[0].kill();
            cluster.wait_ok(Duration::from_secs(30));
            cluster
        })
        .await
        .expect("harness");
        // Back on another node: vouched again after a resync.
        let deadline = Instant::now() + PATIENCE;
        while there.status().bus.is_none_or(|bus| !bus.vouched || bus.resyncs <= resyncs) {
            assert!(Instant::now() < deadline, "the bus never came back: {:?}", there.status());
            profile(&there, &table, 1).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        profile(&there, &table, 1).await.unwrap();
        set_name(&table, 1, "Grace");
        let deadline = Instant::now() + PATIENCE;
        while invalidate!(cache_tests::linked::profile(1), cache = &here).await.is_err() {
            assert!(Instant::now() < deadline, "the cluster never took the invalidation");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(profile(&here, &table, 1).await.unwrap().name, "Grace");
        let after = until_served(&there, &table, "Grace").await;
        eprintln!(
            "bus: an invalidation reached the other process in {before:?}; after the node it listened on died, in {after:?} ({:?})",
            there.status().bus
        );
        drop(cluster);
    }
}

#[tokio::test]
async fn seeds_are_checked_at_build_time() {
    let none: [&str; 0] = [];
    let error = Cache::builder().redis_cluster(&none).unwrap_err();
    assert!(error.to_string().contains("at least one seed"), "{error}");
    let error = Cache::builder().redis_cluster(&["redis://127.0.0.1:1", "http://nope"]).unwrap_err();
    assert!(error.to_string().contains("invalid Redis URL"), "{error}");
    let error =
        Cache::builder().redis_cluster(&["redis://:a@127.0.0.1:1", "redis://:b@127.0.0.1:2"]).unwrap_err();
    assert!(error.to_string().contains("seed nodes"), "{error}");
    // Builds without a cluster up: connections are made on first use.
    let _ =
        Cache::builder().redis_cluster(&["redis://127.0.0.1:1"]).unwrap().read_from_replicas(true).build();
}

/// Faults under load: readers and writers over keys spread over every slot.
mod faults {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, Instant};

    use cache_runtime::{Cache, cached, invalidate};
    use cache_tests::redis_server::{RedisCluster, require_redis};

    /// Keys the load reads, each in a tag group.
    const KEYS: u64 = 256;
    const GROUPS: u64 = 16;
    /// Concurrent readers and writers.
    const READERS: usize = 96;
    const WRITERS: usize = 4;
    /// The fault tests load both cores: one at a time, so that each measures its fault.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// The longest a call may take: a lookup, a lease, a wait for another
    /// loader and a store, each bounded, with room for a loaded machine.
    const CALL_BOUND: Duration = Duration::from_secs(2);

    fn fault_cache(cluster: &RedisCluster, prefix: &str) -> Cache {
        super::cluster_builder(&cluster.urls(), prefix).lease_wait(Duration::from_millis(200)).build()
    }

    /// The origin: a version per key, bumped by writes; reads are counted.
    struct Db {
        versions: Vec<AtomicU64>,
        reads: AtomicU64,
    }

    impl Db {
        fn read(&self, id: u64) -> u64 {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.versions[usize::try_from(id).unwrap()].load(Ordering::SeqCst)
        }
    }

    #[cached(key = "load:<id>", ttl = 60, tags = ["grp:<group>"], cache = cache, skip = [cache, db])]
    async fn load_read(cache: &Cache, db: &Db, id: u64, group: u64) -> Result<u64, String> {
        Ok(db.read(id))
    }

    /// What the load saw.
    #[derive(Default)]
    struct Tally {
        calls: AtomicU64,
        caller_errors: AtomicU64,
        stale: AtomicU64,
        max_latency_us: AtomicU64,
        invalidations: AtomicU64,
        invalidations_refused: AtomicU64,
    }

    struct Load {
        cache: Cache,
        db: Db,
        /// Per key, the version every read that starts now must see at least:
        /// written, and its invalidation returned (taken by Redis or not).
        committed: Vec<AtomicU64>,
        tally: Tally,
        stop: AtomicBool,
    }

    impl Load {
        fn start(cache: Cache) -> (Arc<Self>, Vec<tokio::task::JoinHandle<()>>) {
            let load = Arc::new(Self {
                cache,
                db: Db { versions: (0..KEYS).map(|_| AtomicU64::new(0)).collect(), reads: AtomicU64::new(0) },
                committed: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
                tally: Tally::default(),
                stop: AtomicBool::new(false),
            });
            let mut tasks = Vec::new();
            for _ in 0..READERS {
                let load = Arc::clone(&load);
                tasks.push(tokio::spawn(async move { load.read_loop().await }));
            }
            for writer in 0..WRITERS {
                let load = Arc::clone(&load);
                tasks.push(tokio::spawn(async move { load.write_loop(writer).await }));
            }
            (load, tasks)
        }

        async fn read_loop(&self) {
            while !self.stop.load(Ordering::Relaxed) {
                let id = fastrand::u64(..KEYS);
                let floor = self.committed[usize::try_from(id).unwrap()].load(Ordering::SeqCst);
                let started = Instant::now();
                let outcome = load_read(&self.cache, &self.db, id, id % GROUPS).await;
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.tally.max_latency_us.fetch_max(micros, Ordering::Relaxed);
                self.tally.calls.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok(version) if version < floor => {
                        if self.tally.stale.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!(
                                "STALE: key {id} read version {version} after version {floor} was invalidated"
                            );
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        self.tally.caller_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // A call answered without waiting (a body run while the breaker is
                // open) does not yield: let the other tasks and timers run.
                tokio::task::yield_now().await;
            }
        }

        async fn write_loop(&self, writer: usize) {
            let mut round = 0_u64;
            while !self.stop.load(Ordering::Relaxed) {
                round += 1;
                let id = fastrand::u64(..KEYS);
                let index = usize::try_from(id).unwrap();
                let version = self.db.versions[index].fetch_add(1, Ordering::SeqCst) + 1;
                let outcome = if (round + writer as u64).is_multiple_of(4) {
                    self.cache.invalidate_tag(&format!("grp:{}", id % GROUPS)).await
                } else {
                    invalidate!(load_read(id, id % GROUPS), cache = &self.cache).await
                };
                self.tally.invalidations.fetch_add(1, Ordering::Relaxed);
                // The write returned: every read that starts now must see it,
                // whether Redis took the invalidation at once or it is retried.
                self.committed[index].fetch_max(version, Ordering::SeqCst);
                if outcome.is_err() {
                    self.tally.invalidations_refused.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }

        /// Calls and origin reads so far.
        fn counts(&self) -> (u64, u64) {
            (self.tally.calls.load(Ordering::Relaxed), self.db.reads.load(Ordering::Relaxed))
        }

        async fn stop(&self, tasks: Vec<tokio::task::JoinHandle<()>>) {
            self.stop.store(true, Ordering::Relaxed);
            for task in tasks {
                task.await.expect("a load task panicked");
            }
        }

        /// The common verdict: no caller error, no stale read, every call bounded.
        fn check(&self, what: &str) {
            let tally = &self.tally;
            let max = Duration::from_micros(tally.max_latency_us.load(Ordering::Relaxed));
            eprintln!(
                "{what}: {} calls, {} caller errors, {} stale reads, slowest call {max:?}; {} invalidations ({} refused at first, retried); status {:?}",
                tally.calls.load(Ordering::Relaxed),
                tally.caller_errors.load(Ordering::Relaxed),
                tally.stale.load(Ordering::Relaxed),
                tally.invalidations.load(Ordering::Relaxed),
                tally.invalidations_refused.load(Ordering::Relaxed),
                self.cache.status(),
            );
            assert_eq!(tally.caller_errors.load(Ordering::Relaxed), 0, "{what}: a caller failed");
            assert_eq!(tally.stale.load(Ordering::Relaxed), 0, "{what}: a stale read");
            assert!(max < CALL_BOUND, "{what}: a call took {max:?}");
            assert!(tally.calls.load(Ordering::Relaxed) > 1000, "{what}: the load hardly ran");
        }
    }

    /// Runs the load for `duration`; the share of its calls that were hits.
    async fn hit_ratio_over(load: &Load, duration: Duration) -> f64 {
        let (calls, reads) = load.counts();
        tokio::time::sleep(duration).await;
        let (calls_after, reads_after) = load.counts();
        let calls = calls_after.saturating_sub(calls).max(1);
        let loads = reads_after.saturating_sub(reads);
        #[allow(clippy::cast_precision_loss)]
        let ratio = 1.0 - loads as f64 / calls as f64;
        ratio
    }

    /// Runs the load until a half second of it has at least half the hit ratio
    /// it had before the fault (writers keep invalidating, so it is never 1);
    /// how long that took and that half second's ratio. Panics after 15 s.
    async fn until_hits(load: &Load, what: &str, before: f64) -> (Duration, f64) {
        let started = Instant::now();
        loop {
            let ratio = hit_ratio_over(load, Duration::from_millis(500)).await;
            if ratio > before / 2.0 {
                return (started.elapsed(), ratio);
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "{what}: no hits again within 15 s ({ratio:.2})"
            );
        }
    }

    async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
        tokio::task::spawn_blocking(work).await.expect("harness call")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_master_is_replaced_with_no_caller_error_and_no_stale_read() {
        if !require_redis() {
            return;
        }
        let _alone = ONE_AT_A_TIME.lock().await;
        let cluster = Arc::new(std::sync::Mutex::new(blocking(|| RedisCluster::start_with(1, 1000)).await));
        let cache = fault_cache(&cluster.lock().unwrap(), "test:failover");
        let (load, tasks) = Load::start(cache);
        let before = hit_ratio_over(&load, Duration::from_secs(1)).await;
        let started = Instant::now();
        let victim = {
            let guard = cluster.lock().unwrap();
            let victim = guard.master_of(guard.slot_of("test:failover:{load:1}"));
            drop(guard);
            victim
        };
        let waiting = Arc::clone(&cluster);
        blocking(move || {
            let mut cluster = waiting.lock().unwrap();
            let slot = cluster.slot_of("test:failover:{load:1}");
            cluster.nodes_mut()[victim].kill();
            let deadline = Instant::now() + Duration::from_secs(30);
            while cluster.try_master_of(slot).is_none_or(|master| master == victim) {
                assert!(Instant::now() < deadline, "the replica was never promoted");
                std::thread::sleep(Duration::from_millis(50));
            }
            cluster.wait_ok(Duration::from_secs(30));
        })
        .await;
        let failover = started.elapsed();
        // The client finds the promoted replica by itself.
        let (recovered, after) = until_hits(&load, "failover", before).await;
        load.stop(tasks).await;
        eprintln!(
            "master {victim} killed: replaced in {failover:?}; hit ratio {before:.2} before, {after:.2} {recovered:?} after the promotion"
        );
        load.check("failover");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_migrated_slot_loses_no_call_and_serves_nothing_stale() {
        if !require_redis() {
            return;
        }
        let _alone = ONE_AT_A_TIME.lock().await;
        let cluster = Arc::new(blocking(|| RedisCluster::start_with(0, 2000)).await);
        let cache = fault_cache(&cluster, "test:migrate");
        let (load, tasks) = Load::start(cache.clone());
        let before = hit_ratio_over(&load, Duration::from_millis(1000)).await;
        // The entries of a few keys and the counters of a few tags change masters.
        let mut keys: Vec<String> = (0..8).map(|id| format!("test:migrate:{{load:{id}}}")).collect();
        keys.extend((0..4).map(|group| format!("test:migrate:{{}}t:grp:{group}")));
        let moving = Arc::clone(&cluster);
        let moved = blocking(move || {
            let mut moved = Vec::new();
            for key in &keys {
                let slot = moving.slot_of(key);
                let from = moving.master_of(slot);
                let to = (from + 1) % 3;
                moving.migrate_slot(slot, from, to, || std::thread::sleep(Duration::from_millis(40)));
                moved.push((slot, from, to));
            }
            moved
        })
        .await;
        let (recovered, after) = until_hits(&load, "migration", before).await;
        load.stop(tasks).await;
        for (slot, _, to) in &moved {
            assert_eq!(cluster.master_of(*slot), *to, "slot {slot} moved");
        }
        eprintln!(
            "{} slots migrated while under load; hit ratio {before:.2} before, {after:.2} {recovered:?} afterwards",
            moved.len()
        );
        load.check("migration");
    }

    /// Ids whose body ran (the calls that were not hits).
    static LOADED: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

    #[cached(key = "pause:<id>", ttl = 60, cache = cache, skip = [cache])]
    async fn untagged(cache: &Cache, id: u64) -> Result<u64, String> {
        LOADED.lock().unwrap().push(id);
        Ok(id)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_paused_master_delays_only_its_own_slots_and_boundedly() {
        if !require_redis() {
            return;
        }
        let _alone = ONE_AT_A_TIME.lock().await;
        // A long node timeout: the cluster does not declare the paused master failed.
        let cluster = Arc::new(blocking(|| RedisCluster::start_with(0, 10_000)).await);
        let cache = fault_cache(&cluster, "test:pause");
        let paused = cluster.master_of(cluster.slot_of("test:pause:{pause:0}"));
        let placement = Arc::clone(&cluster);
        let on_paused: Vec<bool> = blocking(move || {
            (0..KEYS)
                .map(|id| {
                    placement.master_of(placement.slot_of(&format!("test:pause:{{pause:{id}}}"))) == paused
                })
                .collect()
        })
        .await;
        for id in 0..KEYS {
            untagged(&cache, id).await.unwrap();
        }
        LOADED.lock().unwrap().clear();
        cluster.nodes()[paused].pause();
        let started = Instant::now();
        let (mut paused_max, mut other_max, mut calls) = (Duration::ZERO, Duration::ZERO, 0_u64);
        let (mut other_calls, mut paused_calls) = (0_u64, 0_u64);
        while started.elapsed() < Duration::from_millis(1500) {
            let ids: Vec<u64> = (0..64).map(|_| fastrand::u64(..KEYS)).collect();
            let tasks: Vec<_> = ids
                .iter()
                .map(|&id| {
                    let cache = cache.clone();
                    tokio::spawn(async move {
                        let at = Instant::now();
                        let value = untagged(&cache, id).await;
                        (id, value, at.elapsed())
                    })
                })
                .collect();
            let mut timed = Vec::new();
            for task in tasks {
                timed.push(task.await.expect("a call panicked"));
            }
            for (id, value, took) in timed {
                assert_eq!(value, Ok(id), "no caller fails");
                calls += 1;
                if on_paused[usize::try_from(id).unwrap()] {
                    paused_calls += 1;
                    paused_max = paused_max.max(took);
                } else {
                    other_calls += 1;
                    other_max = other_max.max(took);
                }
            }
        }
        cluster.nodes()[paused].resume();
        let other_loads =
            LOADED.lock().unwrap().iter().filter(|&&id| !on_paused[usize::try_from(id).unwrap()]).count();
        #[allow(clippy::cast_precision_loss)]
        let other_hits = 1.0 - other_loads as f64 / other_calls.max(1) as f64;
        eprintln!(
            "master {paused} paused 1.5 s: {calls} calls; its slots: {paused_calls} calls, slowest {paused_max:?}; other slots: {other_calls} calls, slowest {other_max:?}, hit ratio {other_hits:.3}"
        );
        assert!(other_hits > 0.95, "other slots keep their hits: {other_hits:.3}");
        assert!(paused_calls > 0 && other_calls > 0);
        assert!(paused_max < CALL_BOUND, "calls on the paused master's slots are bounded: {paused_max:?}");
        assert!(
            other_max < Duration::from_millis(200),
            "other slots never wait for the paused master: {other_max:?}"
        );
    }
}
