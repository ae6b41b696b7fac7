//! The two-level cache (an in-process layer in front of Redis, kept coherent
//! by the bus) end to end, against `redis-server` processes started here.
//! Two caches on one Redis stand for two processes: each has its own layer,
//! bus subscriber and connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_runtime::{Cache, LayerKind, invalidate};
use cache_tests::linked::{PATIENCE, Table, profile, until_served, until_vouched};
use cache_tests::redis_server::{RedisServer, require_redis};

/// A server of its own and a two-level cache on it.
struct Fixture {
    server: RedisServer,
    cache: Cache,
}

impl Fixture {
    fn start() -> Option<Self> {
        if !require_redis() {
            return None;
        }
        let server = RedisServer::start();
        let cache = two_level(&server.url(), Duration::from_secs(60));
        Some(Self { server, cache })
    }

    fn cache(&self) -> Cache {
        self.cache.clone()
    }

    /// Another process's cache on the same Redis.
    fn other_process(&self) -> Cache {
        two_level(&self.server.url(), Duration::from_secs(60))
    }

    /// This process's cache and another's, each with its bus vouching for its layer.
    async fn two_processes(&self) -> (Cache, Cache) {
        let (here, there) = (self.cache(), self.other_process());
        until_vouched(&here).await;
        until_vouched(&there).await;
        (here, there)
    }
}

fn two_level(url: &str, max_age: Duration) -> Cache {
    Cache::builder()
        .redis(url)
        .expect("valid url")
        .prefix("test:app")
        .expect("valid prefix")
        .timeout(Duration::from_millis(200))
        .circuit_breaker(3, Duration::from_millis(300))
        .local_cache(16 << 20)
        .local_max_age(max_age)
        .build()
}

macro_rules! fixture {
    () => {
        match Fixture::start() {
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

/// `GET`s Redis executed so far.
async fn gets(cache: &Cache) -> u64 {
    let info: String = cache
        .redis_command(cache_runtime::redis::cmd("INFO").arg("commandstats").clone())
        .await
        .expect("redis cache")
        .expect("INFO answers");
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_get:"))
        .and_then(|stats| stats.split(',').find_map(|kv| kv.strip_prefix("calls=")))
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_hit_costs_no_network() {
    let fixture = fixture!();
    let cache = fixture.cache();
    until_vouched(&cache).await;
    let table = Table::default();
    profile(&cache, &table, 1).await.unwrap();
    let before = gets(&cache).await;
    for _ in 0..100 {
        profile(&cache, &table, 1).await.unwrap();
    }
    assert_eq!(gets(&cache).await, before, "100 hits, no GET");
    assert_eq!(table.reads(), 1);
    let status = cache.status();
    assert_eq!(status.layers[0].kind, LayerKind::Local);
    assert!(status.layers[0].entries.unwrap_or(0) >= 1, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_reaches_the_other_process_within_one_message() {
    let fixture = fixture!();
    let (here, there) = fixture.two_processes().await;
    let table = Table::default();
    let mut delays = Vec::new();
    for round in 0..20 {
        let name = format!("name {round}");
        profile(&here, &table, 1).await.unwrap();
        profile(&there, &table, 1).await.unwrap(); // in both layers now
        cache_tests::linked::set_name(&table, 1, &name);
        invalidate!(cache_tests::linked::profile(1), cache = &here).await.unwrap();
        assert_eq!(
            profile(&here, &table, 1).await.unwrap().name,
            name,
            "the invalidating process reads the new row at once"
        );
        delays.push(until_served(&there, &table, &name).await);
    }
    delays.sort();
    eprintln!(
        "invalidation reached the other process in p50 {:?}, max {:?} (20 rounds)",
        delays[10], delays[19]
    );
    assert!(delays[19] < Duration::from_secs(1), "{delays:?}");
    assert!(
        there.status().bus.is_some_and(|bus| bus.messages >= 20 && bus.gaps == 0),
        "{:?}",
        there.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_invalidation_reaches_the_other_process() {
    let fixture = fixture!();
    let (here, there) = fixture.two_processes().await;
    let table = Table::default();
    assert_eq!(cache_tests::linked::tagged(&there, &table, 1, 7).await, "user 1");
    cache_tests::linked::set_name(&table, 1, "Ada");
    here.invalidate_tag("org:7").await.unwrap();
    let started = Instant::now();
    while cache_tests::linked::tagged(&there, &table, 1, 7).await != "Ada" {
        assert!(started.elapsed() < PATIENCE, "the tag never reached the other process");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_replaces_the_other_processes_copy() {
    let fixture = fixture!();
    let (here, there) = fixture.two_processes().await;
    let table = Table::default();
    profile(&there, &table, 1).await.unwrap();
    cache_tests::linked::save(&here, &table, 1, "Ada").await.unwrap();
    assert_eq!(profile(&here, &table, 1).await.unwrap().name, "Ada");
    until_served(&there, &table, "Ada").await;
}

/// A read in the writing process fills its layer from Redis while a put's
/// write runs: once the write has answered, that process serves the new value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_filled_during_a_put_serves_the_put() {
    let fixture = fixture!();
    let (here, there) = fixture.two_processes().await;
    let table = Arc::new(Table::default());
    profile(&there, &table, 1).await.unwrap(); // in Redis, not in this process's layer
    let (hold, writer) = cache_tests::linked::start_held_save(&here, &table, 1, "Ada").await;
    assert_eq!(profile(&here, &table, 1).await.unwrap().name, "user 1", "read from Redis during the write");
    hold.release();
    writer.await.unwrap().unwrap();
    assert_eq!(profile(&here, &table, 1).await.unwrap().name, "Ada", "the write has answered");
    until_served(&there, &table, "Ada").await;
}

/// An entry tagged by its body (`add_tag`) is served from Redis, not from
/// the layers, whose generations are the attribute's tags: invalidating the
/// learned tag in one process is seen by the other at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_tag_is_invalidated_in_the_other_process_at_once() {
    use cache_tests::scenarios::{Db, member};
    let fixture = fixture!();
    let (here, there) = fixture.two_processes().await;
    let (db, version) = (Db::default(), std::sync::atomic::AtomicU64::new(1));
    assert_eq!(member(&here, &db, 1, &version).await, (1, 1));
    for _ in 0..3 {
        assert_eq!(member(&there, &db, 1, &version).await, (1, 1), "from Redis");
    }
    assert_eq!(db.reads(), 1);
    version.store(2, std::sync::atomic::Ordering::SeqCst);
    here.invalidate_tag("team:1").await.unwrap();
    assert_eq!(member(&there, &db, 1, &version).await, (1, 2), "no copy left that the tag could not reach");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_subscriber_empties_the_layer_and_comes_back() {
    let fixture = fixture!();
    let (here, there) = fixture.two_processes().await;
    let table = Table::default();
    profile(&there, &table, 1).await.unwrap();
    let resyncs = there.status().bus.map_or(0, |bus| bus.resyncs);
    let _ = fixture.server.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    tokio::time::sleep(Duration::from_millis(100)).await; // a closed connection is noticed at once
    cache_tests::linked::set_name(&table, 1, "Ada");
    invalidate!(cache_tests::linked::profile(1), cache = &here).await.unwrap();
    assert_eq!(profile(&there, &table, 1).await.unwrap().name, "Ada", "no stale read while the bus was down");
    let deadline = Instant::now() + PATIENCE;
    while there.status().bus.is_none_or(|bus| !bus.vouched || bus.resyncs <= resyncs) {
        assert!(Instant::now() < deadline, "the bus never came back: {:?}", there.status());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Coherent again: the next invalidation reaches it.
    profile(&there, &table, 1).await.unwrap();
    cache_tests::linked::set_name(&table, 1, "Grace");
    invalidate!(cache_tests::linked::profile(1), cache = &here).await.unwrap();
    until_served(&there, &table, "Grace").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_message_is_found_at_the_next_one() {
    let fixture = fixture!();
    let (here, there) = fixture.two_processes().await;
    let table = Table::default();
    profile(&there, &table, 1).await.unwrap();
    there.drop_next_bus_message();
    cache_tests::linked::set_name(&table, 1, "Ada");
    invalidate!(cache_tests::linked::profile(1), cache = &here).await.unwrap(); // lost on its way to `there`
    invalidate!(cache_tests::linked::profile(2), cache = &here).await.unwrap(); // shows the gap
    let deadline = Instant::now() + PATIENCE;
    while there.status().bus.is_none_or(|bus| bus.gaps == 0) {
        assert!(Instant::now() < deadline, "the gap was never noticed: {:?}", there.status());
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(profile(&there, &table, 1).await.unwrap().name, "Ada", "the layer was emptied at the gap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_leave_the_layer_after_max_age() {
    let fixture = fixture!();
    let cache = two_level(&fixture.server.url(), Duration::from_millis(150));
    until_vouched(&cache).await;
    let table = Table::default();
    profile(&cache, &table, 1).await.unwrap();
    let before = gets(&cache).await;
    profile(&cache, &table, 1).await.unwrap();
    assert_eq!(gets(&cache).await, before, "a local hit");
    tokio::time::sleep(Duration::from_millis(200)).await;
    profile(&cache, &table, 1).await.unwrap();
    assert!(gets(&cache).await > before, "past max_age the entry is read from Redis again");
    assert_eq!(table.reads(), 1, "still an L2 hit, not a load");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_is_followed() {
    let mut fixture = fixture!();
    let (here, there) = fixture.two_processes().await;
    let table = Arc::new(Table::default());
    profile(&there, &table, 1).await.unwrap();
    fixture.server.restart();
    cache_tests::linked::set_name(&table, 1, "Ada");
    let deadline = Instant::now() + PATIENCE;
    while invalidate!(cache_tests::linked::profile(1), cache = &here).await.is_err() {
        assert!(Instant::now() < deadline, "Redis never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_served(&there, &table, "Ada").await;
}

/// Three OS processes, each with its own layer, readers and a writer on 8 keys
/// of a versioned database for 3 s: no read returns a version its own process
/// had invalidated before the read began, and every stale read in another
/// process lags its invalidation by less than the checker's bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_stay_coherent() {
    let fixture = fixture!();
    let children: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_coherence_checker"))
                .args([fixture.server.url().as_str(), "3", "8"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("start a checker process")
        })
        .collect();
    let mut totals = [0_u64; 5];
    for child in children {
        let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
        assert!(output.status.success(), "a checker failed: {output:?}");
        let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        eprintln!("checker: {line}");
        let values: Vec<u64> =
            line.split(' ').filter_map(|pair| pair.split_once('=')?.1.parse().ok()).collect();
        assert_eq!(values.len(), 5, "{line}");
        for (index, value) in values.iter().enumerate() {
            // The lag is a maximum over the processes; the rest are sums.
            totals[index] = if index == 2 { totals[index].max(*value) } else { totals[index] + value };
        }
    }
    let [reads, stale, max_lag_us, writes, violations] = totals;
    eprintln!(
        "3 processes: {reads} reads checked, {writes} writes, {stale} stale reads, max lag {max_lag_us} µs, {violations} violations"
    );
    assert!(reads > 1_000 && writes > 100, "too little was checked");
    assert_eq!(violations, 0);
}

/// Redis paused: an invalidation cannot reach it or the bus, so the other
/// process stops using its layer once its heartbeat goes unanswered (one
/// heartbeat plus the timeout), and reads the database instead; once Redis
/// is back the retried invalidation reaches everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_stops_the_layers_within_a_heartbeat() {
    let fixture = fixture!();
    let (here, there) = fixture.two_processes().await;
    let table = Table::default();
    profile(&there, &table, 1).await.unwrap();
    fixture.server.pause();
    cache_tests::linked::set_name(&table, 1, "Ada");
    assert!(invalidate!(cache_tests::linked::profile(1), cache = &here).await.is_err(), "Redis is paused");
    tokio::time::sleep(Duration::from_secs(1) + Duration::from_millis(200) + Duration::from_millis(300))
        .await;
    let started = Instant::now();
    assert_eq!(profile(&there, &table, 1).await.unwrap().name, "Ada", "the layer is no longer trusted");
    assert!(started.elapsed() < Duration::from_secs(1), "bounded by the timeout: {:?}", started.elapsed());
    assert!(there.status().bus.is_some_and(|bus| !bus.vouched), "{:?}", there.status());
    fixture.server.resume();
    let deadline = Instant::now() + PATIENCE;
    while here.status().pending_invalidations > 0 {
        assert!(Instant::now() < deadline, "the invalidation was never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until_served(&there, &table, "Ada").await;
}

/// While Redis refuses a write's invalidations (an ACL without `DEL` and
/// scripts, as a failover or a migration would refuse them), the writing
/// process reads the written value, not the cached one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_invalidation_fences_the_writing_process() {
    let fixture = fixture!();
    let cache = two_level(&fixture.server.user_url("app"), Duration::from_secs(60));
    let server = &fixture.server;
    cache_tests::linked::a_refused_invalidation_fences_the_writing_process(
        &cache,
        || server.acl("app", cache_tests::redis_server::REFUSE_INVALIDATIONS),
        || server.acl("app", &["+@all"]),
    )
    .await;
}

/// A tag's text cannot forge a line of the bus's messages: a tag holding a
/// line break and a key drops nothing but the tag's entries in the other
/// processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_cannot_forge_bus_messages() {
    let fixture = fixture!();
    let (here, there) = fixture.two_processes().await;
    let table = Table::default();
    profile(&there, &table, 1).await.unwrap();
    profile(&there, &table, 2).await.unwrap();
    let victim = cache_tests::linked::__cached_profile(&1).key();
    here.invalidate_tag(&format!("x\nk{}", victim.as_str())).await.unwrap();
    // A real invalidation after it: once it has reached `there`, so has the tag's.
    invalidate!(cache_tests::linked::profile(2), cache = &here).await.unwrap();
    let reads = table.reads();
    let deadline = Instant::now() + PATIENCE;
    while table.reads() == reads {
        assert!(Instant::now() < deadline, "the marker invalidation never arrived");
        profile(&there, &table, 2).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let before = gets(&there).await;
    profile(&there, &table, 1).await.unwrap();
    assert_eq!(gets(&there).await, before, "profile(1) is still served from the local layer");
}

/// A process whose bus falls silent (Redis paused) stops serving its local
/// layer within `local_max_silence` (100 ms by default), so a write another
/// process makes meanwhile is not hidden by the old local entry; it serves
/// its layer again once Redis answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_bus_stops_the_local_layer_within_its_window() {
    let fixture = fixture!();
    let (here, there) = fixture.two_processes().await;
    let table = Table::default();
    assert_eq!(profile(&there, &table, 1).await.unwrap().name, "user 1");
    fixture.server.pause();
    // The window, plus slack for a loaded machine's timers.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let vouched = there.status().bus.is_some_and(|bus| bus.vouched);
    // A write while Redis is paused: its invalidation waits for Redis.
    cache_tests::linked::rename(&here, &table, 1, "ada@example.com".into(), "Ada").await.unwrap();
    let read = profile(&there, &table, 1).await.unwrap().name;
    fixture.server.resume();
    assert!(!vouched, "the layer still served 250 ms into the silence");
    assert_eq!(read, "Ada", "a read after the write returned got the old value");
    let deadline = Instant::now() + PATIENCE;
    while !there.status().bus.is_some_and(|bus| bus.vouched) {
        assert!(Instant::now() < deadline, "the layer never served again");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An invalidation Redis applied but whose announcement it refused (no
/// permission on the channel) says so: it is not retried as if it had not
/// been applied, and the status names the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_but_unannounced_invalidation_says_so() {
    let fixture = fixture!();
    let url = fixture.server.user_url("app");
    fixture.server.acl("app", &["resetchannels"]);
    let cache = two_level(&url, Duration::from_secs(60));
    let table = Table::default();
    profile(&cache, &table, 1).await.unwrap();
    cache_tests::linked::set_name(&table, 1, "Ada");
    let error = invalidate!(cache_tests::linked::profile(1), cache = &cache).await.unwrap_err();
    assert_eq!(error.class(), "not_announced", "{error}");
    assert_eq!(cache.status().pending_invalidations, 0, "not retried: it was applied");
    assert_eq!(profile(&cache, &table, 1).await.unwrap().name, "Ada");
    let problem = cache.status().layers.iter().find_map(|layer| layer.problem.clone()).expect("a problem");
    assert!(problem.contains("resetchannels &P:*"), "{problem}");
}

/// A two-level cache whose user may not `SUBSCRIBE` never uses its local
/// layer, and says why in its status (and once a minute at WARN).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscription_is_shown_with_its_fix() {
    let fixture = fixture!();
    let url = fixture.server.user_url("app");
    fixture.server.acl("app", &["resetchannels"]);
    let cache = two_level(&url, Duration::from_secs(60));
    let table = Table::default();
    let deadline = Instant::now() + PATIENCE;
    let problem = loop {
        profile(&cache, &table, 1).await.unwrap();
        if let Some(problem) = cache.status().layers.iter().find_map(|layer| layer.problem.clone()) {
            break problem;
        }
        assert!(Instant::now() < deadline, "no problem shown: {:?}", cache.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(problem.to_lowercase().contains("channel") && problem.contains("ACL SETUSER"), "{problem}");
    assert!(!cache.status().bus.is_some_and(|bus| bus.vouched), "the local layer is not used");
}
