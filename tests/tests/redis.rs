//! The Redis backend end to end, against `redis-server` processes started here.
//!
//! Skipped (with a message) when `redis-server` is not installed, unless
//! `CACHE_REQUIRE_REDIS=1`, when they fail instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, cached};
use cache_tests::redis_server::{RedisServer, require_redis};
use cache_tests::scenarios::{self, Read, bump_team, delete_user_key, get_user, join_all, touch_org};

/// A server of its own and a cache on it.
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
        let cache = cache_on(&server.url());
        Some(Self { server, cache })
    }

    fn cache(&self) -> Cache {
        self.cache.clone()
    }

    /// Another handle on the same Redis: what a second process would have.
    fn second_handle(&self) -> Cache {
        cache_on(&self.server.url())
    }
}

fn cache_on(url: &str) -> Cache {
    builder_on(url).build()
}

fn builder_on(url: &str) -> cache_runtime::CacheBuilder {
    Cache::builder()
        .redis(url)
        .expect("valid url")
        .prefix("test:app")
        .expect("valid prefix")
        .timeout(Duration::from_millis(200))
        .circuit_breaker(3, Duration::from_millis(300))
}

macro_rules! fixture {
    () => {
        match Fixture::start() {
            Some(fixture) => fixture,
            None => return,
        }
    };
}

cache_tests::scenario_tests!(fixture!());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_set_across_two_handles_after_key_invalidation() {
    let fixture = fixture!();
    let (reader, writer) = (fixture.cache(), fixture.second_handle());
    scenarios::no_stale_set(Read::User, &reader, &writer, async |c| delete_user_key(c, 1).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_set_across_two_handles_after_tag_invalidation() {
    let fixture = fixture!();
    let (reader, writer) = (fixture.cache(), fixture.second_handle());
    scenarios::no_stale_set(Read::User, &reader, &writer, async |c| touch_org(c, 7).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_set_across_two_handles_after_version_bump() {
    let fixture = fixture!();
    let (reader, writer) = (fixture.cache(), fixture.second_handle());
    scenarios::no_stale_set(Read::Team, &reader, &writer, async |c| bump_team(c, 3).await).await;
}

#[tokio::test]
async fn a_bad_url_is_a_clear_error_at_build_time() {
    let error = Cache::builder().redis("http://nope").unwrap_err();
    assert!(error.to_string().contains("invalid Redis URL"), "{error}");
    let error = Cache::builder().prefix("a {b}").unwrap_err();
    assert!(error.to_string().contains("invalid key prefix"), "{error}");
}

/// Commands Redis executed since the last `CONFIG RESETSTAT`, by name.
async fn command_counts(cache: &Cache) -> std::collections::BTreeMap<String, u64> {
    let info: String = cache
        .redis_command(cache_runtime::redis::cmd("INFO").arg("commandstats").clone())
        .await
        .expect("redis cache")
        .expect("INFO answers");
    info.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, stats) = rest.split_once(':')?;
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?.parse().ok()?;
            Some((name.to_owned(), calls))
        })
        .filter(|(name, _)| name != "info" && name != "config|resetstat")
        .collect()
}

async fn reset_stats(cache: &Cache) {
    let _: String = cache
        .redis_command(cache_runtime::redis::cmd("CONFIG").arg("RESETSTAT").clone())
        .await
        .expect("redis cache")
        .expect("CONFIG RESETSTAT answers");
}

#[cached(key = "plain:<id>", ttl = 60, cache = cache, skip = [cache])]
async fn plain(cache: &Cache, id: u64) -> String {
    format!("value {id}")
}

#[cached(key = "tagged:<id>", ttl = 60, tags = ["a:<id>", "b", "c"], version = "v:<id>", cache = cache, skip = [cache])]
async fn tagged(cache: &Cache, id: u64) -> String {
    format!("value {id}")
}

#[tokio::test]
async fn a_hit_is_one_get_or_one_pipeline_of_gets() {
    let fixture = fixture!();
    let cache = fixture.cache();
    plain(&cache, 1).await;
    tagged(&cache, 1).await;
    reset_stats(&cache).await;
    plain(&cache, 1).await;
    assert_eq!(command_counts(&cache).await, [("get".to_owned(), 1)].into(), "a plain hit is one GET");
    reset_stats(&cache).await;
    tagged(&cache, 1).await;
    assert_eq!(
        command_counts(&cache).await,
        [("get".to_owned(), 5)].into(),
        "a hit with 3 tags and a version is one pipeline of 5 GETs, no script"
    );
    let site = cache_runtime::stats().into_iter().find(|s| s.function.ends_with("::tagged")).unwrap();
    assert!(site.hits >= 1);
}

#[cached(key = "member:<id>", ttl = 600, tags = ["group"], cache = cache, skip = [cache])]
async fn member(cache: &Cache, id: u64) -> u64 {
    id
}

#[tokio::test]
async fn tag_invalidation_is_one_command_whatever_the_entry_count() {
    let fixture = fixture!();
    let cache = fixture.cache();
    for id in 0..500 {
        member(&cache, id).await;
    }
    reset_stats(&cache).await;
    cache.invalidate_tag("group").await.unwrap();
    let counts = command_counts(&cache).await;
    // The script's own commands (EXISTS, INCR, TIME, SET) are counted too.
    assert_eq!(counts.get("evalsha"), Some(&1), "{counts:?}");
    assert!(
        counts.keys().all(|name| ["evalsha", "exists", "incr", "time", "set"].contains(&name.as_str())),
        "{counts:?}"
    );
    let dbsize: u64 =
        cache.redis_command(cache_runtime::redis::cmd("DBSIZE").clone()).await.unwrap().unwrap();
    assert_eq!(dbsize, 501, "500 entries and one counter: no member sets");
}

#[tokio::test]
async fn garbage_and_foreign_entries_are_misses_then_overwritten() {
    let fixture = fixture!();
    let cache = fixture.cache();
    let db = scenarios::Db::default();
    let key = cache.redis_key("user:1").unwrap();
    for garbage in ["\u{1}garbage", ""] {
        assert_eq!(fixture.server.cli(&["SET", &key, garbage]), "OK");
        get_user(&cache, &db, 1, 7).await.unwrap();
        get_user(&cache, &db, 1, 7).await.unwrap();
    }
    assert_eq!(db.reads(), 2, "each garbage value is one miss, then the store overwrote it");

    assert_eq!(fixture.server.cli(&["DEL", &key]), "1");
    assert_eq!(fixture.server.cli(&["RPUSH", &key, "a", "list"]), "2");
    get_user(&cache, &db, 1, 7).await.unwrap();
    get_user(&cache, &db, 1, 7).await.unwrap();
    assert_eq!(db.reads(), 3, "a key of another type is a miss, then overwritten");

    // The same key written by a function of another value type.
    let other = cache.redis_key("team:3:members").unwrap();
    assert_eq!(fixture.server.cli(&["RENAME", &key, &other]), "OK");
    let members = scenarios::team_members(&cache, &db, 3).await;
    assert_eq!(members, [30, 31]);
    assert_eq!(db.reads(), 4);
    let site = cache_runtime::stats().into_iter().find(|s| s.function.ends_with("::get_user")).unwrap();
    assert!(site.errors >= 3, "undecodable entries are counted: {site:?}");
}

#[cached(key = "big:<n>", ttl = 60, cache = cache, skip = [cache, runs])]
async fn big(cache: &Cache, runs: &AtomicUsize, n: usize) -> Vec<u8> {
    runs.fetch_add(1, Ordering::SeqCst);
    vec![7; n]
}

#[tokio::test]
async fn values_over_max_value_bytes_are_not_stored() {
    let fixture = fixture!();
    let cache = Cache::builder().redis(&fixture.server.url()).unwrap().max_value_bytes(10_000).build();
    let runs = AtomicUsize::new(0);
    big(&cache, &runs, 100).await;
    big(&cache, &runs, 100).await;
    big(&cache, &runs, 20_000).await;
    big(&cache, &runs, 20_000).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[cached(key = "work:<id>", ttl = 60, cache = cache, skip = [cache, runs])]
async fn work(cache: &Cache, runs: &AtomicUsize, id: u64) -> u64 {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    id + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_redis_during_a_load_fails_no_caller() {
    let mut fixture = fixture!();
    let cache = fixture.cache();
    let runs = Arc::new(AtomicUsize::new(0));
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let (cache, runs) = (cache.clone(), Arc::clone(&runs));
            tokio::spawn(async move { (i, work(&cache, &runs, i % 20).await) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    fixture.server.kill();
    for (i, value) in join_all(calls).await {
        assert_eq!(value, i % 20 + 1);
    }
    // With Redis gone every call still answers, from the body.
    for i in 0..20 {
        assert_eq!(work(&cache, &runs, i).await, i + 1);
    }
}

#[cached(key = "paced:<id>", ttl = 60, cache = cache, skip = [cache])]
async fn paced(cache: &Cache, id: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(2)).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_costs_one_timeout_then_the_breaker_skips_it() {
    let fixture = fixture!();
    // A long cooldown keeps probes out of the measured calls.
    let cache = Cache::builder()
        .redis(&fixture.server.url())
        .unwrap()
        .timeout(Duration::from_millis(200))
        .circuit_breaker(3, Duration::from_secs(30))
        .build();
    paced(&cache, 1).await;
    fixture.server.pause();
    let mut slowest_after_open = Duration::ZERO;
    let started = Instant::now();
    for id in 0..20 {
        let open = cache.status().degraded();
        let call = Instant::now();
        assert_eq!(paced(&cache, id).await, id);
        let took = call.elapsed();
        assert!(took < Duration::from_millis(1500), "a call took {took:?}: bounded by the timeout");
        if open {
            slowest_after_open = slowest_after_open.max(took);
        }
    }
    assert!(cache.status().degraded(), "the breaker opened");
    assert!(
        slowest_after_open < Duration::from_millis(150),
        "with the breaker open a call costs the body's own time, took {slowest_after_open:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    fixture.server.resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_return_after_redis_restarts() {
    let mut fixture = fixture!();
    let cache = fixture.cache();
    let runs = AtomicUsize::new(0);
    work(&cache, &runs, 1).await;
    work(&cache, &runs, 1).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    fixture.server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = runs.load(Ordering::SeqCst);
        assert_eq!(work(&cache, &runs, 1).await, 2);
        assert_eq!(work(&cache, &runs, 1).await, 2);
        if runs.load(Ordering::SeqCst) == before + 1 || runs.load(Ordering::SeqCst) == before {
            let again = runs.load(Ordering::SeqCst);
            work(&cache, &runs, 1).await;
            if runs.load(Ordering::SeqCst) == again {
                break; // served from Redis again
            }
        }
        assert!(Instant::now() < deadline, "no hit within 10 s of the restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_built_before_redis_starts_connects_when_it_appears() {
    if !require_redis() {
        return;
    }
    let port = cache_tests::redis_server::free_port();
    let cache = cache_on(&format!("redis://127.0.0.1:{port}"));
    let runs = AtomicUsize::new(0);
    assert_eq!(work(&cache, &runs, 4).await, 5, "no Redis yet: the body answers");
    let _server = RedisServer::start_on(port, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        work(&cache, &runs, 4).await;
        let before = runs.load(Ordering::SeqCst);
        work(&cache, &runs, 4).await;
        if runs.load(Ordering::SeqCst) == before {
            break;
        }
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_reads_never_return_data_older_than_a_completed_invalidation() {
    let fixture = fixture!();
    let handles = [fixture.cache(), fixture.second_handle(), fixture.second_handle()];
    let checked = scenarios::randomized_reads_never_return_data_older_than_a_completed_invalidation(
        &handles,
        Duration::from_secs(3),
    )
    .await;
    println!("checked {checked} reads on three handles");
    assert!(checked > 1_000, "only {checked} reads checked");
}

/// The reader runs in another OS process: it loads, the writer here
/// invalidates, then the reader stores; the next read here must load again.
async fn no_stale_set_across_processes(which: &str, invalidate: impl AsyncFnOnce(&Cache)) {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    let fixture = fixture!();
    let writer = fixture.cache();
    let mut child = Command::new(env!("CARGO_BIN_EXE_race_reader"))
        .args([fixture.server.url().as_str(), which])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the reader process");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let loaded = tokio::task::spawn_blocking(move || {
        let first = lines.next();
        (first, lines)
    });
    let (first, mut lines) = loaded.await.unwrap();
    assert_eq!(first.unwrap().unwrap(), "LOADED");
    invalidate(&writer).await;
    writeln!(child.stdin.take().unwrap()).unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "DONE");
    assert!(child.wait().unwrap().success());

    let later = scenarios::Db::default();
    let read = if which == "team" { Read::Team } else { Read::User };
    scenarios::read(read, &writer, &later).await;
    assert_eq!(later.reads(), 1, "the other process's racing store was kept");
    scenarios::read(read, &writer, &later).await;
    assert_eq!(later.reads(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_set_across_processes_after_key_invalidation() {
    no_stale_set_across_processes("user", async |c| delete_user_key(c, 1).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_set_across_processes_after_tag_invalidation() {
    no_stale_set_across_processes("user", async |c| touch_org(c, 7).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_set_across_processes_after_version_bump() {
    no_stale_set_across_processes("team", async |c| bump_team(c, 3).await).await;
}

/// A type postcard cannot round-trip: a field skipped when `None`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Sparse {
    id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[cached(key = "sparse:postcard:<id>", ttl = 60, cache = cache, skip = [cache, runs])]
async fn sparse_postcard(cache: &Cache, runs: &AtomicUsize, id: u64) -> Sparse {
    runs.fetch_add(1, Ordering::SeqCst);
    Sparse { id, note: None }
}

#[cached(key = "sparse:json:<id>", ttl = 60, codec = cache_runtime::Json, cache = cache, skip = [cache, runs])]
async fn sparse_json(cache: &Cache, runs: &AtomicUsize, id: u64) -> Sparse {
    runs.fetch_add(1, Ordering::SeqCst);
    Sparse { id, note: None }
}

#[tokio::test]
async fn the_json_codec_caches_what_postcard_cannot_round_trip() {
    let fixture = fixture!();
    let cache = fixture.cache();
    let (postcard_runs, json_runs) = (AtomicUsize::new(0), AtomicUsize::new(0));
    for _ in 0..3 {
        assert_eq!(sparse_postcard(&cache, &postcard_runs, 1).await, Sparse { id: 1, note: None });
        assert_eq!(sparse_json(&cache, &json_runs, 1).await, Sparse { id: 1, note: None });
    }
    assert_eq!(postcard_runs.load(Ordering::SeqCst), 3, "undecodable entries are misses, never errors");
    assert_eq!(json_runs.load(Ordering::SeqCst), 1);
    let stored = fixture.server.cli(&["GET", &cache.redis_key("sparse:json:1").unwrap()]);
    assert!(stored.ends_with(r#"{"id":1}"#), "{stored}");
}

#[tokio::test]
async fn auth_and_database_number_come_from_the_url() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start_with_args(&["--requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@127.0.0.1:{}/3", server.port());
    let cache = cache_on(&url);
    let runs = AtomicUsize::new(0);
    work(&cache, &runs, 1).await;
    work(&cache, &runs, 1).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "authenticated: the second call is a hit");
    let in_db3 = server.cli(&[
        "-a",
        "s3cret",
        "--no-auth-warning",
        "-n",
        "3",
        "EXISTS",
        &cache.redis_key("work:1").unwrap(),
    ]);
    assert_eq!(in_db3, "1", "the entry is in database 3");

    let wrong = cache_on(&format!("redis://:wrong@127.0.0.1:{}/3", server.port()));
    let runs = AtomicUsize::new(0);
    assert_eq!(work(&wrong, &runs, 1).await, 2, "a wrong password fails no caller");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Calls cancelled at random points, on three handles, with Redis paused for
/// a while in the middle: no stale read, no read past its bound, no lease left
/// behind, and the breaker closes once Redis answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_cancellation_leaves_nothing_stale_or_wedged() {
    let fixture = fixture!();
    let handles = [fixture.cache(), fixture.second_handle(), fixture.second_handle()];
    let bound = Duration::from_secs(3);
    let report = scenarios::randomized_cancellation(&handles, Duration::from_secs(2), bound).await;
    println!("healthy Redis: {report:?}");
    assert!(report.checked_reads > 300 && report.cancelled_reads > 50, "{report:?}");

    // Redis stops answering mid-run: calls time out, breakers open.
    fixture.server.pause();
    let paused = {
        let handles = handles.clone();
        tokio::spawn(async move {
            let db = scenarios::VersionDb::default();
            let started = Instant::now();
            for handle in &handles {
                let _ = tokio::time::timeout(
                    Duration::from_millis(5),
                    scenarios::read_row(handle, &db, 1, 1, 1, 0),
                )
                .await;
                scenarios::read_row(handle, &db, 2, 0, 2, 0).await;
            }
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    fixture.server.resume();
    let took = paused.await.unwrap();
    assert!(took < bound, "calls during the pause took {took:?}");
    let report = scenarios::randomized_cancellation(&handles, Duration::from_secs(1), bound).await;
    println!("after the pause: {report:?}");

    let settle = Instant::now() + Duration::from_secs(3);
    loop {
        let leases = fixture.server.cli(&["KEYS", "*:lease"]);
        let degraded = handles.iter().any(|handle| handle.status().degraded());
        if leases.trim().is_empty() && !degraded {
            break;
        }
        assert!(Instant::now() < settle, "leases left: {leases:?}, breaker open: {degraded}");
        for handle in &handles {
            let _ = handle.invalidate_tag("nothing").await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

cache_tests::linked_tests!(fixture!());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_wins_over_a_load_in_another_process() {
    let fixture = fixture!();
    let (loader, writer) = (fixture.cache(), fixture.second_handle());
    cache_tests::linked::a_put_wins_over_a_load_in_progress(&loader, &writer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_that_cannot_be_stored_deletes_the_entry() {
    let fixture = fixture!();
    let cache = Cache::builder()
        .redis(&fixture.server.url())
        .expect("valid url")
        .prefix("test:app")
        .expect("valid prefix")
        .max_value_bytes(64 * 1024)
        .build();
    cache_tests::linked::a_put_that_cannot_be_stored_deletes_the_entry(&cache).await;
}

/// `clear()` deletes the key shapes this cache writes under its prefix
/// (entries, leases, wait marks, tag and version counters) and nothing else:
/// not a neighbour cache whose prefix extends it (`test:app:v2`), nor the
/// application's own keys under the same prefix text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_deletes_only_its_own_keys() {
    let fixture = fixture!();
    let neighbour = Cache::builder()
        .redis(&fixture.server.url())
        .expect("valid url")
        .prefix("test:app:v2")
        .expect("valid prefix")
        .build();
    let db = scenarios::Db::default();
    for cache in [fixture.cache(), neighbour.clone()] {
        get_user(&cache, &db, 1, 7).await.unwrap();
        touch_org(&cache, 7).await;
        get_user(&cache, &db, 1, 7).await.unwrap();
        scenarios::team_members(&cache, &db, 3).await;
        bump_team(&cache, 3).await;
    }
    let foreign =
        ["test:app:sessions:42", "test:app:gen", "test:app:lock", "test:app:{x}:y", "test:application"];
    for key in foreign {
        assert_eq!(fixture.server.cli(&["SET", key, "mine"]).trim(), "OK");
    }
    let before = fixture.server.cli(&["--scan", "--pattern", "test:*"]);
    let ours_before = before.lines().filter(|key| !key.starts_with("test:app:v2:") && !foreign.contains(key));
    assert!(ours_before.count() >= 3, "entries and counters of test:app: {before}");
    let neighbours = |keys: &str| keys.lines().filter(|key| key.starts_with("test:app:v2:")).count();
    fixture.cache().clear().await.unwrap();
    let after = fixture.server.cli(&["--scan", "--pattern", "test:*"]);
    let mut left: Vec<&str> = after.lines().filter(|key| !key.starts_with("test:app:v2:")).collect();
    left.sort_unstable();
    let mut expected = foreign.to_vec();
    expected.sort_unstable();
    assert_eq!(left, expected, "only the foreign keys are left of test:app; before: {before}");
    assert_eq!(neighbours(&after), neighbours(&before), "the neighbour cache keeps every key: {after}");
    // The neighbour still hits.
    let runs = db.reads();
    get_user(&neighbour, &db, 1, 7).await.unwrap();
    assert_eq!(db.reads(), runs, "the neighbour's entry survived");
}

/// A writer cancelled while Redis is paused, after its write and before its
/// put reached Redis: the put still ends, as a store or as a delete once Redis
/// is back, never leaving the old value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_put_never_leaves_the_old_value() {
    use cache_tests::linked::{Table, profile, start_held_save};
    let fixture = fixture!();
    let (cache, observer) = (fixture.cache(), fixture.second_handle());
    let table = Arc::new(Table::default());
    assert_eq!(profile(&cache, &table, 1).await.unwrap().name, "user 1");
    let (hold, writer) = start_held_save(&cache, &table, 1, "Ada").await; // the table holds "Ada"
    fixture.server.pause();
    hold.release();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!writer.is_finished(), "the put waits for the paused Redis");
    writer.abort(); // and the caller gives up
    tokio::time::sleep(Duration::from_millis(300)).await;
    fixture.server.resume();
    let deadline = Instant::now() + cache_tests::linked::PATIENCE;
    let mut polls = 0;
    loop {
        polls += 1;
        let key = cache_tests::linked::__cached_profile(&1).key();
        let full_key = observer.redis_key(key.as_str()).expect("a Redis cache");
        let stored: Option<Vec<u8>> = observer
            .redis_command(cache_runtime::redis::cmd("GET").arg(&full_key).clone())
            .await
            .expect("Redis")
            .unwrap_or(None);
        let seen = cache_runtime::get!(cache_tests::linked::profile(1), cache = &observer).await;
        match (stored, seen) {
            (None, _) => {
                eprintln!("after {polls} polls the entry is deleted");
                break;
            }
            (Some(_), Some(row)) if row.name == "Ada" => {
                eprintln!("after {polls} polls the entry holds the new value");
                break;
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "the old value is still stored after {polls} polls");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// While Redis refuses a write's invalidations (an ACL without `DEL` and
/// scripts, as a failover or a migration would refuse them), the writing
/// process reads the written value, not the cached one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_invalidation_fences_the_writing_process() {
    let fixture = fixture!();
    let cache = cache_on(&fixture.server.user_url("app"));
    let server = &fixture.server;
    cache_tests::linked::a_refused_invalidation_fences_the_writing_process(
        &cache,
        || server.acl("app", cache_tests::redis_server::REFUSE_INVALIDATIONS),
        || server.acl("app", &["+@all"]),
    )
    .await;
}

/// A user refused the cache's commands: calls answer from their bodies, and
/// the layer's status names the problem and the ACL line that fixes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_permission_is_shown_with_its_fix() {
    let fixture = fixture!();
    let url = fixture.server.user_url("app");
    fixture.server.acl("app", &["-evalsha", "-eval"]);
    let cache = cache_on(&url);
    let db = scenarios::Db::default();
    for _ in 0..5 {
        assert_eq!(get_user(&cache, &db, 1, 7).await.unwrap().name, "user 1");
    }
    assert_eq!(db.reads(), 5, "every call ran its body");
    let problem = cache.status().layers.iter().find_map(|layer| layer.problem.clone());
    let problem = problem.expect("the status shows the problem");
    assert!(
        problem.to_lowercase().contains("no permissions") && problem.contains("ACL SETUSER"),
        "{problem}"
    );
}

/// The ACL line of the README's Security section is enough: loads, hits,
/// invalidations, `clear()` and the two-level cache's bus all work under it,
/// and nothing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_acl_is_enough() {
    let fixture = fixture!();
    let line = "on >pw resetkeys ~test:app:* resetchannels &test:app:* -@all +@read +@write +@scripting \
                +@pubsub +@connection +time +info +cluster|slots +cluster|shards +cluster|nodes";
    fixture.server.acl("app", &line.split(' ').collect::<Vec<_>>());
    let url = format!("redis://app:pw@127.0.0.1:{}", fixture.server.port());
    for cache in [cache_on(&url), two_level_on(&url)] {
        if cache.status().bus.is_some() {
            cache_tests::linked::until_vouched(&cache).await;
        }
        let db = scenarios::Db::default();
        get_user(&cache, &db, 1, 7).await.unwrap();
        get_user(&cache, &db, 1, 7).await.unwrap();
        assert_eq!(
            db.reads(),
            1,
            "a hit: {:?}; ACL LOG {}",
            cache.status(),
            fixture.server.cli(&["ACL", "LOG"])
        );
        touch_org(&cache, 7).await;
        delete_user_key(&cache, 1).await;
        get_user(&cache, &db, 1, 7).await.unwrap();
        assert_eq!(db.reads(), 2, "invalidated");
        cache.clear().await.expect("clear");
        cache.key_counts(1000).await.expect("key counts");
        let status = cache.status();
        assert!(status.layers.iter().all(|layer| layer.problem.is_none()), "{status:?}");
        assert_eq!(status.pending_invalidations, 0);
    }
}

fn two_level_on(url: &str) -> Cache {
    builder_on(url).local_cache(16 << 20).build()
}
