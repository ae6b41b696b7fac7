//! The in-memory cache end to end: each test counts how often a body runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{Cache, cached, invalidates};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    org: u64,
    name: String,
}

/// A fake database: counts reads, and lets a test hold a read open.
#[derive(Default)]
struct Db {
    reads: AtomicUsize,
    gate: Option<Arc<Notify>>,
    entered: Arc<Notify>,
}

impl Db {
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    async fn read(&self) {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            self.entered.notify_one();
            gate.notified().await;
        }
    }
}

#[cached(key = "user:<id>", ttl = 300, jitter = 10, tags = ["org:<org>"], cache = cache, skip = [cache, db])]
async fn get_user(cache: &Cache, db: &Db, id: u64, org: u64) -> Result<User, String> {
    db.read().await;
    if id == 0 {
        return Err("no user 0".into());
    }
    Ok(User {
        id,
        org,
        name: format!("user {id}"),
    })
}

#[cached(key = "team:<team>:members", version = "team:<team>", ttl = 300, cache = cache, skip = [cache, db])]
async fn team_members(cache: &Cache, db: &Db, team: u64) -> Vec<u64> {
    db.read().await;
    vec![team * 10, team * 10 + 1]
}

#[cached(key = "maybe:<id>", ttl = 300, cache = cache, skip = [cache, db])]
async fn find(cache: &Cache, db: &Db, id: u64) -> Option<u64> {
    db.read().await;
    (id % 2 == 0).then_some(id)
}

#[invalidates(keys = ["user:<id>"], tags = ["org:<org>"], versions = ["team:<team>"], cache = cache, skip = [cache, fail])]
async fn update_user(
    cache: &Cache,
    id: u64,
    org: u64,
    team: u64,
    fail: bool,
) -> Result<(), String> {
    if fail {
        Err("constraint violated".into())
    } else {
        Ok(())
    }
}

#[invalidates(keys = ["user:<id>"], cache = cache, skip = [cache])]
async fn delete_user_key(cache: &Cache, id: u64) {}

#[invalidates(tags = ["org:<org>"], cache = cache, skip = [cache])]
async fn touch_org(cache: &Cache, org: u64) {}

#[invalidates(versions = ["team:<team>"], cache = cache, skip = [cache])]
async fn bump_team(cache: &Cache, team: u64) {}

#[tokio::test]
async fn second_call_is_a_hit() {
    let (cache, db) = (Cache::in_memory(), Db::default());
    let first = get_user(&cache, &db, 1, 7).await.unwrap();
    let second = get_user(&cache, &db, 1, 7).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(db.reads(), 1);
    get_user(&cache, &db, 2, 7).await.unwrap();
    assert_eq!(db.reads(), 2, "another key is another entry");
}

#[tokio::test]
async fn tag_invalidation_removes_exactly_the_tagged_entries() {
    let (cache, db) = (Cache::in_memory(), Db::default());
    for (id, org) in [(1, 7), (2, 7), (3, 8)] {
        get_user(&cache, &db, id, org).await.unwrap();
    }
    assert_eq!(db.reads(), 3);
    touch_org(&cache, 7).await;
    for (id, org) in [(1, 7), (2, 7), (3, 8)] {
        get_user(&cache, &db, id, org).await.unwrap();
    }
    assert_eq!(
        db.reads(),
        5,
        "users 1 and 2 reload, user 3 (org 8) is still cached"
    );
}

#[tokio::test]
async fn key_invalidation_removes_one_entry() {
    let (cache, db) = (Cache::in_memory(), Db::default());
    get_user(&cache, &db, 1, 7).await.unwrap();
    get_user(&cache, &db, 2, 7).await.unwrap();
    delete_user_key(&cache, 1).await;
    get_user(&cache, &db, 1, 7).await.unwrap();
    get_user(&cache, &db, 2, 7).await.unwrap();
    assert_eq!(db.reads(), 3);
}

#[tokio::test]
async fn version_bump_makes_the_namespace_unreachable() {
    let (cache, db) = (Cache::in_memory(), Db::default());
    assert_eq!(team_members(&cache, &db, 4).await, [40, 41]);
    team_members(&cache, &db, 5).await;
    team_members(&cache, &db, 4).await;
    assert_eq!(db.reads(), 2);
    bump_team(&cache, 4).await;
    team_members(&cache, &db, 4).await;
    team_members(&cache, &db, 5).await;
    assert_eq!(db.reads(), 3, "only team 4 reloads");
}

#[tokio::test]
async fn failed_write_invalidates_nothing() {
    let (cache, db) = (Cache::in_memory(), Db::default());
    get_user(&cache, &db, 1, 7).await.unwrap();
    team_members(&cache, &db, 3).await;
    assert!(update_user(&cache, 1, 7, 3, true).await.is_err());
    get_user(&cache, &db, 1, 7).await.unwrap();
    team_members(&cache, &db, 3).await;
    assert_eq!(db.reads(), 2);
    update_user(&cache, 1, 7, 3, false).await.unwrap();
    get_user(&cache, &db, 1, 7).await.unwrap();
    team_members(&cache, &db, 3).await;
    assert_eq!(
        db.reads(),
        4,
        "a successful write invalidates key, tag and version"
    );
}

#[tokio::test]
async fn errors_and_none_are_not_cached() {
    let (cache, db) = (Cache::in_memory(), Db::default());
    assert!(get_user(&cache, &db, 0, 7).await.is_err());
    assert!(get_user(&cache, &db, 0, 7).await.is_err());
    assert_eq!(db.reads(), 2);
    assert_eq!(find(&cache, &db, 3).await, None);
    assert_eq!(find(&cache, &db, 3).await, None);
    assert_eq!(find(&cache, &db, 4).await, Some(4));
    assert_eq!(find(&cache, &db, 4).await, Some(4));
    assert_eq!(db.reads(), 5);
}

#[cached(key = "pair:<a>:<b>", ttl = 300, cache = cache, skip = [cache])]
async fn pair(cache: &Cache, a: &str, b: &str) -> String {
    format!("{a}|{b}")
}

#[tokio::test]
async fn keys_are_injective() {
    let cache = Cache::in_memory();
    let tuples = [
        ("1:2", "3"),
        ("1", "2:3"),
        ("1%3A2", "3"),
        ("", ":"),
        (":", ""),
        ("a b", "c"),
    ];
    for (a, b) in tuples {
        assert_eq!(pair(&cache, a, b).await, format!("{a}|{b}"));
    }
    for (a, b) in tuples {
        assert_eq!(
            pair(&cache, a, b).await,
            format!("{a}|{b}"),
            "cached value of ({a:?}, {b:?})"
        );
    }
    assert_eq!(cache.len(), tuples.len());
}

#[cached(key = "slow:<id>", ttl = 300, cache = cache, skip = [cache, runs])]
async fn slow(cache: &Cache, runs: &AtomicUsize, id: u64) -> u64 {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    id * 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_runs_the_body_once_for_64_callers() {
    let cache = Cache::in_memory();
    let runs = Arc::new(AtomicUsize::new(0));
    let calls = (0..64).map(|_| {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        tokio::spawn(async move { slow(&cache, &runs, 21).await })
    });
    let results = futures_join(calls).await;
    assert!(results.iter().all(|&value| value == 42));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.expect("task failed"));
    }
    out
}

#[cached(key = "flaky:<id>", ttl = 300, cache = cache, skip = [cache, runs])]
async fn panics_first(cache: &Cache, runs: &AtomicUsize, id: u64) -> u64 {
    let run = runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(run != 0, "the first load panics");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_loader_does_not_wedge_waiters() {
    let cache = Cache::in_memory();
    let runs = Arc::new(AtomicUsize::new(0));
    let leader = {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        tokio::spawn(async move { panics_first(&cache, &runs, 9).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let waiters = (0..8).map(|_| {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        tokio::spawn(async move { panics_first(&cache, &runs, 9).await })
    });
    let values = tokio::time::timeout(Duration::from_secs(5), futures_join(waiters))
        .await
        .expect("waiters wedged");
    assert!(leader.await.is_err(), "the leader panicked");
    assert!(values.iter().all(|&v| v == 9));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "one waiter took over, the others shared its value"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_loader_does_not_wedge_waiters() {
    let cache = Cache::in_memory();
    let runs = Arc::new(AtomicUsize::new(0));
    let leader = {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        tokio::spawn(async move { slow(&cache, &runs, 5).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let waiter = {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        tokio::spawn(async move { slow(&cache, &runs, 5).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    leader.abort();
    let value = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("waiter wedged")
        .unwrap();
    assert_eq!(value, 10);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[cached(key = "short:<id>", ttl = 1, cache = cache, skip = [cache, db])]
async fn short_lived(cache: &Cache, db: &Db, id: u64) -> u64 {
    db.read().await;
    id
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let (cache, db) = (Cache::in_memory(), Db::default());
    short_lived(&cache, &db, 1).await;
    short_lived(&cache, &db, 1).await;
    assert_eq!(db.reads(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    short_lived(&cache, &db, 1).await;
    assert_eq!(db.reads(), 2);
}

/// Which cached read a race test drives.
#[derive(Clone, Copy)]
enum Read {
    User,
    Team,
}

async fn read(read: Read, cache: &Cache, db: &Db) -> String {
    match read {
        Read::User => get_user(cache, db, 1, 7).await.unwrap().name,
        Read::Team => format!("{:?}", team_members(cache, db, 3).await),
    }
}

/// A read that loaded before a write and stores after the write's invalidation
/// must have its store refused: the next read loads again.
async fn no_stale_set(which: Read, invalidate: impl AsyncFnOnce(&Cache)) {
    let cache = Cache::in_memory();
    let gate = Arc::new(Notify::new());
    let db = Arc::new(Db {
        gate: Some(Arc::clone(&gate)),
        ..Db::default()
    });
    let reader = {
        let (cache, db) = (cache.clone(), Arc::clone(&db));
        tokio::spawn(async move { read(which, &cache, &db).await })
    };
    db.entered.notified().await; // the reader is inside the body: it read old data
    invalidate(&cache).await; // the writer commits and invalidates
    gate.notify_one(); // the reader finishes and tries to store what it read
    reader.await.unwrap();

    let later = Db::default();
    read(which, &cache, &later).await;
    assert_eq!(
        later.reads(),
        1,
        "a store that raced an invalidation was kept"
    );
    read(which, &cache, &later).await;
    assert_eq!(later.reads(), 1, "the reload after it is stored");
}

#[tokio::test]
async fn no_stale_set_after_key_invalidation() {
    no_stale_set(Read::User, async |cache| delete_user_key(cache, 1).await).await;
}

#[tokio::test]
async fn no_stale_set_after_tag_invalidation() {
    no_stale_set(Read::User, async |cache| touch_org(cache, 7).await).await;
}

#[tokio::test]
async fn no_stale_set_after_version_bump() {
    no_stale_set(Read::Team, async |cache| bump_team(cache, 3).await).await;
}

#[tokio::test]
async fn weight_stays_within_max_bytes() {
    let cache = Cache::builder()
        .max_bytes(64 * 1024)
        .estimated_entries(100)
        .build();
    let db = Db::default();
    for id in 1..2_000 {
        get_user(&cache, &db, id, 1).await.unwrap();
    }
    assert!(
        cache.weight_bytes() <= 64 * 1024,
        "{}",
        cache.weight_bytes()
    );
    assert!(cache.len() < 1_999);
}

struct Repo {
    tenant: String,
    cache: Cache,
    runs: AtomicUsize,
}

impl Repo {
    #[cached(key = "repo:<self.tenant>:<id>", ttl = 60, cache = self.cache)]
    async fn item(&self, id: u64) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("{}/{id}", self.tenant)
    }
}

#[tokio::test]
async fn methods_key_on_self_fields() {
    let cache = Cache::in_memory();
    let a = Repo {
        tenant: "a".into(),
        cache: cache.clone(),
        runs: AtomicUsize::new(0),
    };
    let b = Repo {
        tenant: "b".into(),
        cache: cache.clone(),
        runs: AtomicUsize::new(0),
    };
    assert_eq!(a.item(1).await, "a/1");
    assert_eq!(a.item(1).await, "a/1");
    assert_eq!(b.item(1).await, "b/1");
    assert_eq!(
        a.runs.load(Ordering::SeqCst) + b.runs.load(Ordering::SeqCst),
        2
    );
}

#[cached(key = "parsed:<text>", ttl = 60, cache = cache, skip = [cache])]
async fn parse_as<
    T: std::str::FromStr + Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
>(
    cache: &Cache,
    text: &str,
) -> Option<T> {
    text.parse().ok()
}

#[cached(key = "size:<id>", ttl = 60, cache = cache, skip = [cache])]
async fn type_size<T>(cache: &Cache, id: u64) -> usize {
    std::mem::size_of::<T>() + usize::try_from(id).unwrap_or(0)
}

#[tokio::test]
async fn generic_instantiations_never_share_values() {
    let cache = Cache::in_memory();
    assert_eq!(parse_as::<u8>(&cache, "7").await, Some(7));
    assert_eq!(parse_as::<String>(&cache, "7").await, Some("7".to_string()));
    assert_eq!(parse_as::<u8>(&cache, "7").await, Some(7));
    // The same key and the same value type: only the type argument differs.
    assert_eq!(type_size::<u8>(&cache, 0).await, 1);
    assert_eq!(type_size::<u64>(&cache, 0).await, 8);
    assert_eq!(type_size::<u8>(&cache, 0).await, 1);
}

#[cached(ttl = 60)]
async fn default_key(a: u64, b: &str) -> String {
    format!("{a}{b}")
}

#[tokio::test]
async fn default_key_uses_function_and_every_parameter() {
    assert_eq!(default_key(1, "x").await, "1x");
    assert_eq!(default_key(1, "y").await, "1y");
    assert_eq!(default_key(2, "x").await, "2x");
    let stats = cache_runtime::stats();
    let site = stats
        .iter()
        .find(|s| s.function.ends_with("::default_key"))
        .expect("site registered");
    assert_eq!((site.hits, site.misses, site.loads), (0, 3, 3));
    assert_eq!(default_key(1, "x").await, "1x");
    let stats = cache_runtime::stats();
    let site = stats
        .iter()
        .find(|s| s.function.ends_with("::default_key"))
        .expect("site registered");
    assert_eq!(site.hits, 1);
}
