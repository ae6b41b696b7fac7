//! Scenarios shared by the in-memory and the Redis integration tests. Each takes
//! the cache to run on (fresh and empty) and counts how often bodies run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, cached, invalidates};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// A cached row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Primary key.
    pub id: u64,
    /// Organisation, the tag of the entry.
    pub org: u64,
    /// Display name.
    pub name: String,
}

/// A fake database: counts reads, and lets a test hold a read open.
#[derive(Default)]
pub struct Db {
    reads: AtomicUsize,
    gate: Option<Arc<Notify>>,
    entered: Arc<Notify>,
}

impl Db {
    /// A database whose reads wait for `gate` after signalling [`Db::entered`].
    #[must_use]
    pub fn gated(gate: Arc<Notify>) -> Self {
        Self { gate: Some(gate), ..Self::default() }
    }

    /// Reads so far.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// Notified when a gated read has started.
    pub fn entered(&self) -> &Notify {
        &self.entered
    }

    async fn read(&self) {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            self.entered.notify_one();
            gate.notified().await;
        }
    }
}

/// `user:<id>`, tagged `org:<org>`; errors for id 0.
///
/// # Errors
/// For id 0.
#[cached(key = "user:<id>", ttl = 300, jitter = 10, tags = ["org:<org>"], cache = cache, skip = [cache, db])]
pub async fn get_user(cache: &Cache, db: &Db, id: u64, org: u64) -> Result<User, String> {
    db.read().await;
    if id == 0 {
        return Err("no user 0".into());
    }
    Ok(User { id, org, name: format!("user {id}") })
}

/// In the versioned namespace `team:<team>`.
#[cached(key = "team:<team>:members", version = "team:<team>", ttl = 300, cache = cache, skip = [cache, db])]
pub async fn team_members(cache: &Cache, db: &Db, team: u64) -> Vec<u64> {
    db.read().await;
    vec![team * 10, team * 10 + 1]
}

#[cached(key = "maybe:<id>", ttl = 300, cache = cache, skip = [cache, db])]
async fn find(cache: &Cache, db: &Db, id: u64) -> Option<u64> {
    db.read().await;
    id.is_multiple_of(2).then_some(id)
}

#[invalidates(keys = ["user:<id>"], tags = ["org:<org>"], versions = ["team:<team>"], cache = cache, skip = [cache, fail])]
async fn update_user(cache: &Cache, id: u64, org: u64, team: u64, fail: bool) -> Result<(), String> {
    if fail { Err("constraint violated".into()) } else { Ok(()) }
}

/// Deletes `user:<id>`.
#[invalidates(keys = ["user:<id>"], cache = cache, skip = [cache])]
pub async fn delete_user_key(cache: &Cache, id: u64) {}

/// Invalidates the tag `org:<org>`.
#[invalidates(tags = ["org:<org>"], cache = cache, skip = [cache])]
pub async fn touch_org(cache: &Cache, org: u64) {}

/// Bumps the version `team:<team>`.
#[invalidates(versions = ["team:<team>"], cache = cache, skip = [cache])]
pub async fn bump_team(cache: &Cache, team: u64) {}

/// Hit after miss; another key is another entry.
pub async fn second_call_is_a_hit(cache: &Cache) {
    let db = Db::default();
    let first = get_user(cache, &db, 1, 7).await.unwrap();
    let second = get_user(cache, &db, 1, 7).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(db.reads(), 1);
    get_user(cache, &db, 2, 7).await.unwrap();
    assert_eq!(db.reads(), 2, "another key is another entry");
}

/// Invalidating a tag reloads its entries and only those.
pub async fn tag_invalidation_removes_exactly_the_tagged_entries(cache: &Cache) {
    let db = Db::default();
    for (id, org) in [(1, 7), (2, 7), (3, 8)] {
        get_user(cache, &db, id, org).await.unwrap();
    }
    assert_eq!(db.reads(), 3);
    touch_org(cache, 7).await;
    for (id, org) in [(1, 7), (2, 7), (3, 8)] {
        get_user(cache, &db, id, org).await.unwrap();
    }
    assert_eq!(db.reads(), 5, "users 1 and 2 reload, user 3 (org 8) is still cached");
}

/// Deleting a key reloads that entry only.
pub async fn key_invalidation_removes_one_entry(cache: &Cache) {
    let db = Db::default();
    get_user(cache, &db, 1, 7).await.unwrap();
    get_user(cache, &db, 2, 7).await.unwrap();
    delete_user_key(cache, 1).await;
    get_user(cache, &db, 1, 7).await.unwrap();
    get_user(cache, &db, 2, 7).await.unwrap();
    assert_eq!(db.reads(), 3);
}

/// Bumping a version reloads that namespace only.
pub async fn version_bump_makes_the_namespace_unreachable(cache: &Cache) {
    let db = Db::default();
    assert_eq!(team_members(cache, &db, 4).await, [40, 41]);
    team_members(cache, &db, 5).await;
    team_members(cache, &db, 4).await;
    assert_eq!(db.reads(), 2);
    bump_team(cache, 4).await;
    team_members(cache, &db, 4).await;
    team_members(cache, &db, 5).await;
    assert_eq!(db.reads(), 3, "only team 4 reloads");
}

/// A write that returns `Err` invalidates nothing; one that returns `Ok` everything.
pub async fn failed_write_invalidates_nothing(cache: &Cache) {
    let db = Db::default();
    get_user(cache, &db, 1, 7).await.unwrap();
    team_members(cache, &db, 3).await;
    assert!(update_user(cache, 1, 7, 3, true).await.is_err());
    get_user(cache, &db, 1, 7).await.unwrap();
    team_members(cache, &db, 3).await;
    assert_eq!(db.reads(), 2);
    update_user(cache, 1, 7, 3, false).await.unwrap();
    get_user(cache, &db, 1, 7).await.unwrap();
    team_members(cache, &db, 3).await;
    assert_eq!(db.reads(), 4, "a successful write invalidates key, tag and version");
}

/// `Err` and `None` run the body every time; `Some` is cached.
pub async fn errors_and_none_are_not_cached(cache: &Cache) {
    let db = Db::default();
    assert!(get_user(cache, &db, 0, 7).await.is_err());
    assert!(get_user(cache, &db, 0, 7).await.is_err());
    assert_eq!(db.reads(), 2);
    assert_eq!(find(cache, &db, 3).await, None);
    assert_eq!(find(cache, &db, 3).await, None);
    assert_eq!(find(cache, &db, 4).await, Some(4));
    assert_eq!(find(cache, &db, 4).await, Some(4));
    assert_eq!(db.reads(), 5);
}

#[cached(key = "pair:<a>:<b>", ttl = 300, cache = cache, skip = [cache, runs])]
async fn pair(cache: &Cache, runs: &AtomicUsize, a: &str, b: &str) -> String {
    runs.fetch_add(1, Ordering::SeqCst);
    format!("{a}|{b}")
}

/// Argument tuples that would collide without escaping get their own entries.
pub async fn keys_are_injective(cache: &Cache) {
    let runs = AtomicUsize::new(0);
    let tuples =
        [("1:2", "3"), ("1", "2:3"), ("1%3A2", "3"), ("", ":"), (":", ""), ("a b", "c"), ("{x}", "y")];
    for (a, b) in tuples {
        assert_eq!(pair(cache, &runs, a, b).await, format!("{a}|{b}"));
    }
    for (a, b) in tuples {
        assert_eq!(pair(cache, &runs, a, b).await, format!("{a}|{b}"), "cached value of ({a:?}, {b:?})");
    }
    assert_eq!(runs.load(Ordering::SeqCst), tuples.len(), "each tuple loaded once");
}

/// Sleeps 50 ms in its body.
#[cached(key = "slow:<id>", ttl = 300, cache = cache, skip = [cache, runs])]
pub async fn slow(cache: &Cache, runs: &AtomicUsize, id: u64) -> u64 {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    id * 2
}

/// Awaits every task, failing on a panicked one.
pub async fn join_all<T: Send + 'static>(
    handles: impl IntoIterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.into_iter().collect::<Vec<_>>() {
        out.push(handle.await.expect("task failed"));
    }
    out
}

/// 64 concurrent misses of one key run the body once.
pub async fn single_flight_runs_the_body_once_for_64_callers(cache: &Cache) {
    let runs = Arc::new(AtomicUsize::new(0));
    let calls = (0..64).map(|_| {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        tokio::spawn(async move { slow(&cache, &runs, 21).await })
    });
    let results = join_all(calls).await;
    assert!(results.iter().all(|&value| value == 42));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[cached(key = "flaky:<id>", ttl = 300, cache = cache, skip = [cache, runs])]
async fn panics_first(cache: &Cache, runs: &AtomicUsize, id: u64) -> u64 {
    let run = runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(run != 0, "the first load panics");
    id
}

/// A loader that panics hands over to one waiter; the others share its value.
pub async fn a_panicking_loader_does_not_wedge_waiters(cache: &Cache) {
    let runs = Arc::new(AtomicUsize::new(0));
    let leader = {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        tokio::spawn(async move { panics_first(&cache, &runs, 9).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let waiters = (0..8).map(|_| {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        tokio::spawn(async move { panics_first(&cache, &runs, 9).await })
    });
    let values =
        tokio::time::timeout(Duration::from_secs(10), join_all(waiters)).await.expect("waiters wedged");
    assert!(leader.await.is_err(), "the leader panicked");
    assert!(values.iter().all(|&v| v == 9));
    assert_eq!(runs.load(Ordering::SeqCst), 2, "one waiter took over, the others shared its value");
}

/// A cancelled loader hands over to a waiter.
pub async fn a_cancelled_loader_does_not_wedge_waiters(cache: &Cache) {
    let runs = Arc::new(AtomicUsize::new(0));
    let leader = {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        tokio::spawn(async move { slow(&cache, &runs, 5).await })
    };
    // The leader is in its body (a remote store may take a round trip or two first).
    let started = std::time::Instant::now();
    while runs.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the leader never ran its body");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let waiter = {
        let (cache, runs) = (cache.clone(), Arc::clone(&runs));
        tokio::spawn(async move { slow(&cache, &runs, 5).await })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    leader.abort();
    let value = tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("waiter wedged").unwrap();
    assert_eq!(value, 10);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[cached(key = "short:<id>", ttl = 1, cache = cache, skip = [cache, db])]
async fn short_lived(cache: &Cache, db: &Db, id: u64) -> u64 {
    db.read().await;
    id
}

/// An entry is served for its TTL, then loaded again.
pub async fn entries_expire_after_their_ttl(cache: &Cache) {
    let db = Db::default();
    short_lived(cache, &db, 1).await;
    short_lived(cache, &db, 1).await;
    assert_eq!(db.reads(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    short_lived(cache, &db, 1).await;
    assert_eq!(db.reads(), 2);
}

/// Which cached read a race drives.
#[derive(Clone, Copy, Debug)]
pub enum Read {
    /// `get_user(1, 7)`: key `user:1`, tag `org:7`.
    User,
    /// `team_members(3)`: version `team:3`.
    Team,
}

/// Runs one cached read.
pub async fn read(read: Read, cache: &Cache, db: &Db) -> String {
    match read {
        Read::User => get_user(cache, db, 1, 7).await.unwrap().name,
        Read::Team => format!("{:?}", team_members(cache, db, 3).await),
    }
}

/// A read on `reader` that loaded before a write on `writer` and stores after
/// the write's invalidation must not be served afterwards: the next read loads.
pub async fn no_stale_set(which: Read, reader: &Cache, writer: &Cache, invalidate: impl AsyncFnOnce(&Cache)) {
    let gate = Arc::new(Notify::new());
    let db = Arc::new(Db::gated(Arc::clone(&gate)));
    let task = {
        let (cache, db) = (reader.clone(), Arc::clone(&db));
        tokio::spawn(async move { read(which, &cache, &db).await })
    };
    db.entered().notified().await; // the reader is inside the body: it read old data
    invalidate(writer).await; // the writer commits and invalidates
    gate.notify_one(); // the reader finishes and tries to store what it read
    task.await.unwrap();

    let later = Db::default();
    read(which, reader, &later).await;
    assert_eq!(later.reads(), 1, "a store that raced an invalidation was kept");
    read(which, reader, &later).await;
    read(which, writer, &later).await;
    assert_eq!(later.reads(), 1, "the reload is stored and shared");
}

/// Holds a tenant and a cache.
pub struct Repo {
    /// Part of every key.
    pub tenant: String,
    /// Where entries go.
    pub cache: Cache,
    /// Body runs.
    pub runs: AtomicUsize,
}

impl Repo {
    /// Keyed on `self.tenant`.
    #[cached(key = "repo:<self.tenant>:<id>", ttl = 60, cache = self.cache)]
    pub async fn item(&self, id: u64) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("{}/{id}", self.tenant)
    }
}

/// Methods key on fields of `self`.
pub async fn methods_key_on_self_fields(cache: &Cache) {
    let a = Repo { tenant: "a".into(), cache: cache.clone(), runs: AtomicUsize::new(0) };
    let b = Repo { tenant: "b".into(), cache: cache.clone(), runs: AtomicUsize::new(0) };
    assert_eq!(a.item(1).await, "a/1");
    assert_eq!(a.item(1).await, "a/1");
    assert_eq!(b.item(1).await, "b/1");
    assert_eq!(a.runs.load(Ordering::SeqCst) + b.runs.load(Ordering::SeqCst), 2);
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
    size_of::<T>() + usize::try_from(id).unwrap_or(0)
}

/// Two instantiations of a generic function never read each other's values.
pub async fn generic_instantiations_never_share_values(cache: &Cache) {
    assert_eq!(parse_as::<u8>(cache, "7").await, Some(7));
    assert_eq!(parse_as::<String>(cache, "7").await, Some("7".to_string()));
    assert_eq!(parse_as::<u8>(cache, "7").await, Some(7));
    // The same key and the same value type: only the type argument differs.
    assert_eq!(type_size::<u8>(cache, 0).await, 1);
    assert_eq!(type_size::<u64>(cache, 0).await, 8);
    assert_eq!(type_size::<u8>(cache, 0).await, 1);
}

/// Defines one `#[tokio::test]` per shared scenario, each on a fresh cache from `$fresh`.
#[macro_export]
macro_rules! scenario_tests {
    ($fresh:expr) => {
        $crate::scenario_tests!(@each $fresh;
            second_call_is_a_hit,
            tag_invalidation_removes_exactly_the_tagged_entries,
            key_invalidation_removes_one_entry,
            version_bump_makes_the_namespace_unreachable,
            failed_write_invalidates_nothing,
            errors_and_none_are_not_cached,
            keys_are_injective,
            single_flight_runs_the_body_once_for_64_callers,
            a_panicking_loader_does_not_wedge_waiters,
            a_cancelled_loader_does_not_wedge_waiters,
            entries_expire_after_their_ttl,
            methods_key_on_self_fields,
            generic_instantiations_never_share_values,
            shared_key_templates_are_reported,
            absences_are_cached_only_with_negative_ttl,
            stale_entries_are_served_while_one_refresh_runs,
            fail_safe_serves_the_last_value_while_the_origin_fails,
            learned_tags_invalidate_their_entries,
            a_learned_tag_invalidated_during_the_load_refuses_its_value,
        );
    };
    (@each $fresh:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let fixture = $fresh;
                $crate::scenarios::$name(&fixture.cache()).await;
            }
        )*
    };
}

/// A member's team, learned from the row (the team is `id % 2`, as a row
/// would say): the entry is keyed by the id alone and tagged `team:<team>`
/// by the body. It reads `version` after learning the tag, then the
/// database (which a test can hold).
#[cached(key = "member:<id>", ttl = 300, cache = cache, skip = [cache, db, version])]
pub async fn member(cache: &Cache, db: &Db, id: u64, version: &std::sync::atomic::AtomicU64) -> (u64, u64) {
    let team = id % 2;
    cache_runtime::add_tag(&format!("team:{team}")).await;
    let read = version.load(Ordering::SeqCst);
    db.read().await;
    (team, read)
}

/// Invalidating a tag a body learned reloads the entries that learned it, and only those.
pub async fn learned_tags_invalidate_their_entries(cache: &Cache) {
    let (db, version) = (Db::default(), std::sync::atomic::AtomicU64::new(1));
    for id in [1, 2, 3] {
        member(cache, &db, id, &version).await;
    }
    for id in [1, 2, 3] {
        member(cache, &db, id, &version).await;
    }
    assert_eq!(db.reads(), 3, "hits");
    cache.invalidate_tag("team:1").await.unwrap();
    for id in [1, 2, 3] {
        member(cache, &db, id, &version).await;
    }
    assert_eq!(db.reads(), 5, "members 1 and 3 (team 1) reload, member 2 (team 0) is still cached");
}

/// A tag invalidated after the body learned it and before its value was
/// stored: the value read before the invalidation is not served afterwards.
pub async fn a_learned_tag_invalidated_during_the_load_refuses_its_value(cache: &Cache) {
    let gate = Arc::new(Notify::new());
    let db = Arc::new(Db::gated(Arc::clone(&gate)));
    let version = Arc::new(std::sync::atomic::AtomicU64::new(1));
    let load = tokio::spawn({
        let (cache, db, version) = (cache.clone(), Arc::clone(&db), Arc::clone(&version));
        async move {
            // Reads version 1 after learning the tag, then waits at the gate.
            member(&cache, &db, 1, &version).await
        }
    });
    db.entered().notified().await;
    version.store(2, Ordering::SeqCst);
    cache.invalidate_tag("team:1").await.unwrap();
    gate.notify_one();
    assert_eq!(load.await.unwrap(), (1, 1), "the load returns what it read");
    let ungated = Db::default();
    assert_eq!(
        member(cache, &ungated, 1, &version).await,
        (1, 2),
        "the value read before the invalidation was not stored"
    );
}

#[cached(key = "shared:<id>", ttl = 60, cache = cache, skip = [cache])]
async fn shared_number(cache: &Cache, id: u64) -> u64 {
    id
}

#[cached(key = "shared:<id>", ttl = 60, cache = cache, skip = [cache])]
async fn shared_text(cache: &Cache, id: u64) -> String {
    id.to_string()
}

#[cached(key = "tagged:<id>", ttl = 60, tags = ["a:<id>"], cache = cache, skip = [cache])]
async fn tagged_a(cache: &Cache, id: u64) -> u64 {
    id
}

#[cached(key = "tagged:<id>", ttl = 60, tags = ["b:<id>"], cache = cache, skip = [cache])]
async fn tagged_b(cache: &Cache, id: u64) -> u64 {
    id
}

/// Key collisions counted so far for the function whose path ends with `name`.
fn collisions(name: &str) -> u64 {
    cache_runtime::stats().iter().find(|s| s.function.ends_with(name)).map_or(0, |s| s.key_collisions)
}

/// Two functions whose templates render the same key with another value type,
/// or with other tags, are reported; one function called with other tag
/// values (a tag from a parameter that is not in the key) is not.
pub async fn shared_key_templates_are_reported(cache: &Cache) {
    let before = (collisions("::shared_text"), collisions("::tagged_b"), collisions("::get_user"));
    assert_eq!(shared_number(cache, 1).await, 1);
    assert_eq!(shared_text(cache, 1).await, "1", "another value type is a miss, never a wrong value");
    assert!(collisions("::shared_text") > before.0, "another value type under the same key is reported");
    tagged_a(cache, 2).await;
    tagged_b(cache, 2).await;
    assert!(collisions("::tagged_b") > before.1, "other tags under the same key are reported");
    let db = Db::default();
    get_user(cache, &db, 3, 7).await.unwrap();
    get_user(cache, &db, 3, 8).await.unwrap();
    assert_eq!(collisions("::get_user"), before.2, "one function with other tag values is no collision");
}

#[cached(key = "maybe:<id>", ttl = 60, negative_ttl = 1, cache = cache, skip = [cache, runs])]
async fn maybe_with_negative(cache: &Cache, runs: &AtomicUsize, id: u64) -> Option<u64> {
    runs.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then_some(id)
}

#[cached(key = "lookup:<id>", ttl = 60, cache = cache, skip = [cache, runs])]
async fn lookup_without_negative(cache: &Cache, runs: &AtomicUsize, id: u64) -> Result<Option<u64>, String> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok(id.is_multiple_of(2).then_some(id))
}

#[cached(key = "lookup-neg:<id>", ttl = 60, negative_ttl = 1, cache = cache, skip = [cache, runs])]
async fn lookup_with_negative(cache: &Cache, runs: &AtomicUsize, id: u64) -> Result<Option<u64>, String> {
    runs.fetch_add(1, Ordering::SeqCst);
    Ok(id.is_multiple_of(2).then_some(id))
}

/// `None` and `Ok(None)` are cached only with `negative_ttl`, and only that long;
/// `Result<Option<T>, E>` follows the rule of `Option<T>`.
pub async fn absences_are_cached_only_with_negative_ttl(cache: &Cache) {
    let runs = AtomicUsize::new(0);
    assert_eq!(maybe_with_negative(cache, &runs, 1).await, None);
    assert_eq!(maybe_with_negative(cache, &runs, 1).await, None);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the absence was cached");
    assert_eq!(maybe_with_negative(cache, &runs, 2).await, Some(2));
    assert_eq!(maybe_with_negative(cache, &runs, 2).await, Some(2));
    assert_eq!(runs.load(Ordering::SeqCst), 2);

    let runs = AtomicUsize::new(0);
    assert_eq!(lookup_without_negative(cache, &runs, 1).await, Ok(None));
    assert_eq!(lookup_without_negative(cache, &runs, 1).await, Ok(None));
    assert_eq!(runs.load(Ordering::SeqCst), 2, "Ok(None) is not cached without negative_ttl");
    assert_eq!(lookup_without_negative(cache, &runs, 2).await, Ok(Some(2)));
    assert_eq!(lookup_without_negative(cache, &runs, 2).await, Ok(Some(2)));
    assert_eq!(runs.load(Ordering::SeqCst), 3, "Ok(Some) is cached");

    let runs = AtomicUsize::new(0);
    assert_eq!(lookup_with_negative(cache, &runs, 1).await, Ok(None));
    assert_eq!(lookup_with_negative(cache, &runs, 1).await, Ok(None));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "Ok(None) is cached with negative_ttl");

    // The absences expire after negative_ttl; the value lives its full ttl.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let runs = AtomicUsize::new(0);
    assert_eq!(maybe_with_negative(cache, &runs, 1).await, None);
    assert_eq!(maybe_with_negative(cache, &runs, 2).await, Some(2));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "only the absence was loaded again");
}

/// A source whose reads take 100 ms, count, and can fail or panic.
#[derive(Default)]
pub struct Origin {
    version: std::sync::atomic::AtomicU64,
    runs: AtomicUsize,
    /// 0: answers; 1: returns an error; 2: panics.
    outage: std::sync::atomic::AtomicU8,
}

impl Origin {
    async fn read(&self) -> Result<u64, String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(100)).await;
        match self.outage.load(Ordering::SeqCst) {
            0 => Ok(self.version.load(Ordering::SeqCst)),
            1 => Err("the database is down".to_owned()),
            _ => panic!("the driver panicked"),
        }
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

#[cached(key = "swr:<id>", ttl = 1, stale = 30, cache = cache, skip = [cache, origin])]
async fn refreshed_in_background(cache: Cache, origin: Arc<Origin>, id: u64) -> Result<u64, String> {
    origin.read().await
}

/// With `stale`, callers past the TTL get the stale value at once while one
/// refresh runs in the background; then the refreshed value is served.
pub async fn stale_entries_are_served_while_one_refresh_runs(cache: &Cache) {
    let origin = Arc::new(Origin::default());
    origin.version.store(1, Ordering::SeqCst);
    assert_eq!(refreshed_in_background(cache.clone(), Arc::clone(&origin), 1).await, Ok(1));
    origin.version.store(2, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_100)).await; // past the ttl
    let started = Instant::now();
    let calls = (0..20).map(|_| {
        let (cache, origin) = (cache.clone(), Arc::clone(&origin));
        tokio::spawn(async move { refreshed_in_background(cache, origin, 1).await })
    });
    let answers: Vec<Result<u64, String>> = join_all(calls).await;
    let waited = started.elapsed();
    assert!(answers.iter().all(|answer| *answer == Ok(1)), "the stale value, at once: {answers:?}");
    assert!(waited < Duration::from_millis(90), "no caller waited for the 100 ms body: {waited:?}");
    let deadline = Instant::now() + Duration::from_secs(3);
    while refreshed_in_background(cache.clone(), Arc::clone(&origin), 1).await != Ok(2) {
        assert!(Instant::now() < deadline, "the refreshed value never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(origin.runs(), 2, "one load, then exactly one refresh");
}

#[cached(key = "safe:<id>", ttl = 1, fail_safe = 60, fail_safe_throttle = 1, cache = cache, skip = [cache, origin])]
async fn fail_safe_read(cache: &Cache, origin: &Origin, id: u64) -> Result<u64, String> {
    origin.read().await
}

/// With `fail_safe`, a failing or panicking origin is invisible to readers of a
/// cached key: they get the last value, the origin is asked at most once per
/// throttle window, and fresh values return once it recovers.
pub async fn fail_safe_serves_the_last_value_while_the_origin_fails(cache: &Cache) {
    let origin = Arc::new(Origin::default());
    origin.version.store(1, Ordering::SeqCst);
    assert_eq!(fail_safe_read(cache, &origin, 1).await, Ok(1));
    tokio::time::sleep(Duration::from_millis(1_100)).await; // past the ttl
    for outage in [1, 2] {
        origin.outage.store(outage, Ordering::SeqCst);
        let before = origin.runs();
        let calls = (0..10).map(|_| {
            let (cache, origin) = (cache.clone(), Arc::clone(&origin));
            tokio::spawn(async move { fail_safe_read(&cache, &origin, 1).await })
        });
        let answers: Vec<Result<u64, String>> = join_all(calls).await;
        assert!(answers.iter().all(|answer| *answer == Ok(1)), "outage {outage}: {answers:?}");
        assert_eq!(fail_safe_read(cache, &origin, 1).await, Ok(1), "throttled: served without a load");
        assert_eq!(origin.runs() - before, 1, "outage {outage}: one load per throttle window");
        tokio::time::sleep(Duration::from_millis(1_050)).await; // the throttle window ends
    }
    origin.outage.store(0, Ordering::SeqCst);
    origin.version.store(2, Ordering::SeqCst);
    assert_eq!(fail_safe_read(cache, &origin, 1).await, Ok(2), "fresh again once the origin answers");
}

/// A versioned "database": each row's version, bumped by every write.
#[derive(Default)]
pub struct VersionDb {
    versions: std::sync::Mutex<std::collections::HashMap<u64, u64>>,
}

impl VersionDb {
    fn version(&self, id: u64) -> u64 {
        self.versions.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    fn write(&self, id: u64) -> u64 {
        let mut versions = self.versions.lock().unwrap();
        let version = versions.entry(id).or_default();
        *version += 1;
        *version
    }
}

/// Reads a row's version, then takes a little longer, as a real query would.
#[cached(key = "row:<id>", ttl = 60, tags = ["rows:<org>"], version = "rows:<team>", cache = cache, skip = [cache, db, pause_us])]
pub async fn read_row(cache: &Cache, db: &VersionDb, id: u64, org: u64, team: u64, pause_us: u64) -> u64 {
    let version = db.version(id);
    tokio::time::sleep(Duration::from_micros(pause_us)).await;
    version
}

#[invalidates(keys = ["row:<id>"], cache = cache, skip = [cache])]
async fn invalidate_row_key(cache: &Cache, id: u64) {}

#[invalidates(tags = ["rows:<org>"], cache = cache, skip = [cache])]
async fn invalidate_row_tag(cache: &Cache, org: u64) {}

#[invalidates(versions = ["rows:<team>"], cache = cache, skip = [cache])]
async fn invalidate_row_version(cache: &Cache, team: u64) {}

/// Readers and writers over a few rows on `caches` (handles of one backend) for
/// `duration`: every read that starts after an invalidation completed must
/// return a version at least as new as the write before it. Returns the number
/// of reads checked.
pub async fn randomized_reads_never_return_data_older_than_a_completed_invalidation(
    caches: &[Cache],
    duration: Duration,
) -> usize {
    const ROWS: u64 = 6;
    let db = Arc::new(VersionDb::default());
    // Per row: the newest version whose invalidation has completed.
    let floors: Arc<Vec<std::sync::atomic::AtomicU64>> =
        Arc::new((0..ROWS).map(|_| std::sync::atomic::AtomicU64::new(0)).collect());
    let checked = Arc::new(AtomicUsize::new(0));
    let deadline = tokio::time::Instant::now() + duration;
    let mut tasks = Vec::new();
    for worker in 0..10_u64 {
        let caches = caches.to_vec();
        let (db, floors, checked) = (Arc::clone(&db), Arc::clone(&floors), Arc::clone(&checked));
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(worker);
            while tokio::time::Instant::now() < deadline {
                let cache = &caches[rng.usize(..caches.len())];
                let id = rng.u64(..ROWS);
                let (org, team) = (id % 2, id % 3);
                if worker < 2 {
                    let version = db.write(id);
                    match rng.u8(..3) {
                        0 => invalidate_row_key(cache, id).await,
                        1 => invalidate_row_tag(cache, org).await,
                        _ => invalidate_row_version(cache, team).await,
                    }
                    floors[usize::try_from(id).unwrap()].fetch_max(version, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_micros(rng.u64(200..2_000))).await;
                } else {
                    let floor = floors[usize::try_from(id).unwrap()].load(Ordering::SeqCst);
                    let read = read_row(cache, &db, id, org, team, rng.u64(0..1_500)).await;
                    assert!(
                        read >= floor,
                        "row {id}: read version {read} after the invalidation of version {floor}"
                    );
                    checked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    join_all(tasks).await;
    checked.load(Ordering::Relaxed)
}

/// What [`randomized_cancellation`] did and checked.
#[derive(Debug, Default)]
pub struct CancellationReport {
    /// Reads started.
    pub reads: usize,
    /// Reads cancelled at a random point by a short timeout.
    pub cancelled_reads: usize,
    /// Reads that completed and were checked against the completed writes.
    pub checked_reads: usize,
    /// Writes (each followed by an invalidation).
    pub writes: usize,
    /// Invalidations cancelled at a random point.
    pub cancelled_invalidations: usize,
    /// The slowest read that was not cancelled.
    pub slowest_read: Duration,
}

/// Readers and writers over a few rows on `caches` for `duration`, with calls
/// cancelled at random points (timeouts of random length around the call):
/// - a read that starts after an invalidation returned never returns an older version;
/// - a read that is not cancelled returns within `bound`;
/// - afterwards every row reads its newest version: no cancelled load or
///   invalidation left anything stale behind.
///
/// # Panics
/// When one of these fails.
pub async fn randomized_cancellation(
    caches: &[Cache],
    duration: Duration,
    bound: Duration,
) -> CancellationReport {
    const ROWS: u64 = 6;
    let db = Arc::new(VersionDb::default());
    let floors: Arc<Vec<std::sync::atomic::AtomicU64>> =
        Arc::new((0..ROWS).map(|_| std::sync::atomic::AtomicU64::new(0)).collect());
    let report = Arc::new(std::sync::Mutex::new(CancellationReport::default()));
    let deadline = tokio::time::Instant::now() + duration;
    let mut tasks = Vec::new();
    for worker in 0..10_u64 {
        let caches = caches.to_vec();
        let (db, floors, report) = (Arc::clone(&db), Arc::clone(&floors), Arc::clone(&report));
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(1000 + worker);
            while tokio::time::Instant::now() < deadline {
                let cache = &caches[rng.usize(..caches.len())];
                let id = rng.u64(..ROWS);
                let (org, team) = (id % 2, id % 3);
                let row = usize::try_from(id).unwrap();
                // Half the calls get a budget of a few milliseconds: cancelled
                // before, during or after the body, or at a Redis round trip.
                let budget = if rng.bool() { Duration::from_micros(rng.u64(0..3_000)) } else { bound };
                if worker < 2 {
                    let version = db.write(id);
                    let invalidation = async {
                        match rng.u8(..3) {
                            0 => invalidate_row_key(cache, id).await,
                            1 => invalidate_row_tag(cache, org).await,
                            _ => invalidate_row_version(cache, team).await,
                        }
                    };
                    let completed = tokio::time::timeout(budget, invalidation).await.is_ok();
                    if completed {
                        floors[row].fetch_max(version, Ordering::SeqCst);
                    }
                    {
                        let mut report = report.lock().unwrap();
                        report.writes += 1;
                        report.cancelled_invalidations += usize::from(!completed);
                    }
                    tokio::time::sleep(Duration::from_micros(rng.u64(200..2_000))).await;
                } else {
                    let floor = floors[row].load(Ordering::SeqCst);
                    let started = Instant::now();
                    let read =
                        tokio::time::timeout(budget, read_row(cache, &db, id, org, team, rng.u64(0..1_500)))
                            .await;
                    let took = started.elapsed();
                    let mut report = report.lock().unwrap();
                    let report = &mut *report;
                    report.reads += 1;
                    match read {
                        Ok(read) => {
                            assert!(
                                read >= floor,
                                "row {id}: read version {read} after the invalidation of version {floor}"
                            );
                            report.checked_reads += 1;
                            report.slowest_read = report.slowest_read.max(took);
                        }
                        Err(_) if budget == bound => {
                            panic!("row {id}: a read waited past its bound of {bound:?}")
                        }
                        Err(_) => report.cancelled_reads += 1,
                    }
                }
                // In-memory hits never wait: let the writers and timers run.
                tokio::task::yield_now().await;
            }
        }));
    }
    join_all(tasks).await;
    // Invalidations that were cancelled after they started still land (they run
    // in a task of their own): once they have, every row reads its newest version.
    let settle = Instant::now() + Duration::from_secs(2);
    for id in 0..ROWS {
        let newest = db.version(id);
        loop {
            let read = read_row(&caches[0], &db, id, id % 2, id % 3, 0).await;
            if read == newest {
                break;
            }
            assert!(Instant::now() < settle, "row {id} still reads version {read}, newest is {newest}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Arc::try_unwrap(report).map(|report| report.into_inner().unwrap()).unwrap_or_default()
}
