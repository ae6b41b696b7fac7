//! Entries named by their reader: `#[invalidates(reader(args))]`,
//! `#[cache_put(reader(args))]`, `invalidate!`, `put!` and `get!`, shared by
//! the in-memory and the Redis tests. Each scenario counts body runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{Cache, cache_put, cached, get, invalidate, invalidates, put};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// A row a reader caches and a writer stores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Primary key.
    pub id: u64,
    /// What writes change.
    pub name: String,
}

/// A fake table: names by id, counted reads, and a gate a test can hold a read at.
#[derive(Default)]
pub struct Table {
    names: std::sync::Mutex<std::collections::HashMap<u64, String>>,
    reads: AtomicUsize,
    gate: std::sync::Mutex<Option<Arc<Notify>>>,
    entered: Notify,
}

impl Table {
    /// Reads so far.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    fn name(&self, id: u64) -> String {
        self.names.lock().unwrap().get(&id).cloned().unwrap_or_else(|| format!("user {id}"))
    }

    fn set(&self, id: u64, name: &str) {
        self.names.lock().unwrap().insert(id, name.to_owned());
    }

    async fn read(&self, id: u64) -> String {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let name = self.name(id);
        let gate = self.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            self.entered.notify_one();
            gate.notified().await;
        }
        name
    }
}

/// The reader: no explicit key, so only the linked form can name its entry.
#[cached(ttl = 60, cache = cache, skip = [cache, table])]
pub async fn profile(cache: &Cache, table: &Table, id: u64) -> Result<Profile, String> {
    Ok(Profile { id, name: table.read(id).await })
}

/// A reader whose key needs escaping (`:` and `@` in the address).
#[cached(key = "email:<address>", ttl = 60, cache = cache, skip = [cache, table])]
pub async fn by_email(cache: &Cache, table: &Table, address: String) -> Option<u64> {
    table.read(0).await;
    address.len().try_into().ok()
}

/// Sets the name of row `id`, as a write outside the cache would.
pub fn set_name(table: &Table, id: u64, name: &str) {
    table.set(id, name);
}

/// A reader tagged with its organisation.
#[cached(key = "tagged:<id>", ttl = 60, tags = ["org:<org>"], cache = cache, skip = [cache, table])]
pub async fn tagged(cache: &Cache, table: &Table, id: u64, org: u64) -> String {
    table.read(id).await
}

/// Renames and invalidates both readers' entries, named by their readers.
#[invalidates(profile(id), by_email(address), cache = cache, skip = [cache, table, name])]
pub async fn rename(
    cache: &Cache,
    table: &Table,
    id: u64,
    address: String,
    name: &str,
) -> Result<(), String> {
    table.set(id, name);
    Ok(())
}

/// Renames and stores the new row into the reader's entry.
#[cache_put(profile(id), cache = cache)]
pub async fn save(cache: &Cache, table: &Table, id: u64, name: &str) -> Result<Profile, String> {
    if name.is_empty() {
        return Err("empty name".into());
    }
    table.set(id, name);
    Ok(Profile { id, name: name.to_owned() })
}

/// Where a write waits after changing the table, until a test lets it answer.
#[derive(Default)]
pub struct Hold {
    entered: Notify,
    release: Notify,
}

impl Hold {
    /// Waits until a write has changed the table and is held.
    pub async fn entered(&self) {
        self.entered.notified().await;
    }

    /// Lets the held write answer.
    pub fn release(&self) {
        self.release.notify_one();
    }
}

/// Renames like [`save`], then waits at `hold` before answering.
#[cache_put(profile(id), cache = cache)]
pub async fn save_held(
    cache: &Cache,
    table: &Table,
    id: u64,
    name: &str,
    hold: &Hold,
) -> Result<Profile, String> {
    table.set(id, name);
    hold.entered.notify_one();
    hold.release.notified().await;
    Ok(Profile { id, name: name.to_owned() })
}

/// Starts [`save_held`] of `name` into row `id` in a task, and returns once it
/// has changed the table and is held: its hold and its task.
pub async fn start_held_save(
    cache: &Cache,
    table: &Arc<Table>,
    id: u64,
    name: &'static str,
) -> (Arc<Hold>, tokio::task::JoinHandle<Result<Profile, String>>) {
    let hold = Arc::new(Hold::default());
    let writer = tokio::spawn({
        let (cache, table, hold) = (cache.clone(), Arc::clone(table), Arc::clone(&hold));
        async move { save_held(&cache, &table, id, name, &hold).await }
    });
    hold.entered().await;
    (hold, writer)
}

/// A write that reports no row: deletes the reader's entry.
#[cache_put(profile(id), cache = cache)]
pub async fn archive(cache: &Cache, id: u64) -> Option<Profile> {
    None
}

/// Named invalidation removes exactly the named entries, keys escaped as the reader escapes them.
pub async fn named_invalidation_removes_the_readers_entries(cache: &Cache) {
    let table = Table::default();
    let address = "a:b@x.io".to_owned();
    profile(cache, &table, 1).await.unwrap();
    profile(cache, &table, 2).await.unwrap();
    by_email(cache, &table, address.clone()).await;
    assert_eq!(table.reads(), 3);
    rename(cache, &table, 1, address.clone(), "Ada").await.unwrap();
    assert_eq!(profile(cache, &table, 1).await.unwrap().name, "Ada");
    assert_eq!(table.reads(), 4, "the renamed profile is read again");
    by_email(cache, &table, address).await;
    assert_eq!(table.reads(), 5, "the escaped email entry was removed");
    profile(cache, &table, 2).await.unwrap();
    assert_eq!(table.reads(), 5, "the other profile is still cached");
}

/// A put stores the written row: the next read is a hit with it.
pub async fn cache_put_stores_the_written_value(cache: &Cache) {
    let table = Table::default();
    assert_eq!(profile(cache, &table, 1).await.unwrap().name, "user 1");
    save(cache, &table, 1, "Ada").await.unwrap();
    assert_eq!(profile(cache, &table, 1).await.unwrap().name, "Ada");
    assert_eq!(table.reads(), 1, "served from the put, without a read");
    assert!(save(cache, &table, 1, "").await.is_err());
    assert_eq!(profile(cache, &table, 1).await.unwrap().name, "Ada", "a failed write stores nothing");
    archive(cache, 1).await;
    assert_eq!(profile(cache, &table, 1).await.unwrap().name, "Ada");
    assert_eq!(table.reads(), 2, "a write without a value deleted the entry");
    let puts = cache_runtime::stats()
        .into_iter()
        .find(|site| site.function.ends_with("linked::profile"))
        .map_or(0, |site| site.puts);
    assert!(puts >= 1, "puts are counted on the reader");
}

/// Two writes of one row overlap, and the one that changed the table first
/// answers last: its older value is not left in the cache.
pub async fn overlapping_puts_leave_the_last_written_value(cache: &Cache) {
    let table = Arc::new(Table::default());
    profile(cache, &table, 1).await.unwrap();
    // "first" is in the table, its answer held.
    let (hold, first) = start_held_save(cache, &table, 1, "first").await;
    save(cache, &table, 1, "second").await.unwrap();
    hold.release();
    assert_eq!(first.await.unwrap().unwrap().name, "first");
    assert_eq!(table.name(1), "second", "the table's last write");
    assert_eq!(
        profile(cache, &table, 1).await.unwrap().name,
        "second",
        "the write that answered last held an older value: it must not be stored"
    );
}

/// A write-through whose caller is cancelled after it changed the table but
/// before it answered deletes the entry: what the table holds is unknown to
/// it, so the old value must not stay.
pub async fn a_put_cancelled_during_its_write_deletes_the_entry(cache: &Cache) {
    let table = Arc::new(Table::default());
    profile(cache, &table, 1).await.unwrap();
    let (_hold, writer) = start_held_save(cache, &table, 1, "Ada").await;
    writer.abort();
    assert!(writer.await.unwrap_err().is_cancelled());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut reads = 0;
    loop {
        reads += 1;
        if profile(cache, &table, 1).await.unwrap().name == "Ada" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the old value stayed ({reads} reads)");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A load that began before a put and ends after it is not stored: the put wins.
pub async fn a_put_wins_over_a_load_in_progress(loader: &Cache, writer: &Cache) {
    let table = Arc::new(Table::default());
    let gate = Arc::new(Notify::new());
    *table.gate.lock().unwrap() = Some(Arc::clone(&gate));
    let load = tokio::spawn({
        let (cache, table) = (loader.clone(), Arc::clone(&table));
        async move { profile(&cache, &table, 1).await }
    });
    table.entered.notified().await; // the load read "user 1" and waits
    *table.gate.lock().unwrap() = None;
    save(writer, &table, 1, "Ada").await.unwrap();
    gate.notify_one();
    assert_eq!(load.await.unwrap().unwrap().name, "user 1", "the load returns what it read");
    for cache in [loader, writer] {
        assert_eq!(profile(cache, &table, 1).await.unwrap().name, "Ada", "the load's value was not stored");
    }
    assert_eq!(table.reads(), 1);
}

/// `put!`, `get!` and `invalidate!` in ordinary code, by the reader's typed arguments.
pub async fn manual_api_uses_the_readers_entries(cache: &Cache) {
    let table = Table::default();
    assert_eq!(get!(profile(1), cache = cache).await, None);
    let row = Profile { id: 1, name: "Ada".into() };
    put!(profile(1), &row, cache = cache).await.unwrap();
    assert_eq!(get!(profile(1), cache = cache).await, Some(row.clone()));
    assert_eq!(profile(cache, &table, 1).await.unwrap(), row);
    assert_eq!(table.reads(), 0);
    invalidate!(profile(1), by_email("a:b@x.io".to_owned()), cache = cache).await.unwrap();
    assert_eq!(get!(profile(1), cache = cache).await, None);
    assert_eq!(profile(cache, &table, 1).await.unwrap().name, "user 1");
    assert_eq!(table.reads(), 1);
}

/// A put whose value the store cannot take deletes the entry: the old value is never left.
/// `cache` takes no value over 64 KiB.
pub async fn a_put_that_cannot_be_stored_deletes_the_entry(cache: &Cache) {
    let table = Table::default();
    profile(cache, &table, 1).await.unwrap();
    let huge = "x".repeat(256 * 1024);
    put!(profile(1), Profile { id: 1, name: huge }, cache = cache).await.unwrap_err();
    assert_eq!(profile(cache, &table, 1).await.unwrap().name, "user 1");
    assert_eq!(table.reads(), 2, "the old entry was deleted, not left");
}

/// `clear()` empties the cache: every entry is loaded again.
pub async fn clear_empties_the_cache(cache: &Cache) {
    let table = Table::default();
    for id in 1..=20 {
        profile(cache, &table, id).await.unwrap();
    }
    cache.clear().await.unwrap();
    for id in 1..=20 {
        profile(cache, &table, id).await.unwrap();
    }
    assert_eq!(table.reads(), 40);
    profile(cache, &table, 1).await.unwrap();
    assert_eq!(table.reads(), 40, "filled again after the clear");
}

/// While the store refuses invalidations (after `refuse`, until `accept`), a
/// read in the writing process that begins after a write returned gets the
/// written value, by key and by tag; once the store took them the entries are
/// cached again.
pub async fn a_refused_invalidation_fences_the_writing_process(
    cache: &Cache,
    refuse: impl FnOnce(),
    accept: impl FnOnce(),
) {
    let table = Table::default();
    assert_eq!(profile(cache, &table, 1).await.unwrap().name, "user 1");
    assert_eq!(tagged(cache, &table, 2, 7).await, "user 2");
    assert_eq!(profile(cache, &table, 1).await.unwrap().name, "user 1");
    assert_eq!(table.reads(), 2, "both entries are cached");
    refuse();
    rename(cache, &table, 1, "ada@example.com".into(), "Ada").await.unwrap();
    set_name(&table, 2, "Bea");
    let refused = cache.invalidate_tag("org:7").await;
    for read in 0..5 {
        assert_eq!(
            profile(cache, &table, 1).await.unwrap().name,
            "Ada",
            "read {read} after the key invalidation"
        );
        assert_eq!(
            tagged(cache, &table, 2, 7).await,
            "Bea",
            "read {read} after the tag invalidation ({refused:?})"
        );
    }
    accept();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while cache.status().pending_invalidations > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the invalidations were never taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(profile(cache, &table, 1).await.unwrap().name, "Ada");
    let reads = table.reads();
    assert_eq!(profile(cache, &table, 1).await.unwrap().name, "Ada");
    assert_eq!(table.reads(), reads, "cached again once the invalidation was taken");
}

/// `refresh` loads and stores even over a fresh entry; a `Warmer` does it on an interval.
pub async fn refresh_and_warmers_load_ahead_of_callers(cache: &Cache) {
    let table = Arc::new(Table::default());
    assert_eq!(profile(cache, &table, 1).await.unwrap().name, "user 1");
    table.set(1, "Ada");
    assert_eq!(profile(cache, &table, 1).await.unwrap().name, "user 1", "fresh: served from the cache");
    assert_eq!(cache_runtime::refresh(profile(cache, &table, 1)).await.unwrap().name, "Ada");
    assert_eq!(profile(cache, &table, 1).await.unwrap().name, "Ada", "the refresh stored its value");
    assert_eq!(table.reads(), 2);

    let warmer = cache_runtime::Warmer::every(Duration::from_millis(20), {
        let (cache, table) = (cache.clone(), Arc::clone(&table));
        move || {
            let (cache, table) = (cache.clone(), Arc::clone(&table));
            async move {
                cache_runtime::refresh(profile(&cache, &table, 1)).await.ok();
            }
        }
    })
    .expect("a runtime");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while table.reads() < 5 {
        assert!(tokio::time::Instant::now() < deadline, "the warmer ran {} times", table.reads() - 2);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    table.set(1, "Grace");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while profile(cache, &table, 1).await.unwrap().name != "Grace" {
        assert!(tokio::time::Instant::now() < deadline, "the warmer never stored the new row");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(warmer);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let reads = table.reads();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(table.reads(), reads, "a dropped warmer stops");
}

/// Methods: named with a method call, scoped to their impl (generic arguments included).
pub trait Backend: Send + Sync + 'static {
    /// What the backend answers.
    const NAME: &'static str;
}

/// One backend.
pub struct Pg;
/// Another.
pub struct Mock;

impl Backend for Pg {
    const NAME: &'static str = "pg";
}

impl Backend for Mock {
    const NAME: &'static str = "mock";
}

/// A service generic over its backend, with a tenant in its state.
pub struct Service<B> {
    cache: Cache,
    tenant: String,
    runs: AtomicUsize,
    backend: std::marker::PhantomData<B>,
}

impl<B: Backend> Service<B> {
    /// A service of `tenant` on `cache`.
    pub fn new(cache: &Cache, tenant: &str) -> Self {
        Self {
            cache: cache.clone(),
            tenant: tenant.into(),
            runs: AtomicUsize::new(0),
            backend: std::marker::PhantomData,
        }
    }

    /// Body runs so far.
    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// Keyed on `self`'s tenant.
    #[cached(key = "item:<self.tenant>:<id>", ttl = 60, cache = self.cache)]
    pub async fn item(&self, id: u64) -> String {
        self.runs.fetch_add(1, Ordering::SeqCst);
        format!("{}:{}:{id}", B::NAME, self.tenant)
    }

    /// A default key; `self` skipped; private, so linked explicitly.
    #[cached(ttl = 60, cache = self.cache, skip = [self], linked = true)]
    async fn count(&self, org: u64) -> u64 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        org * 10
    }

    /// Reads both.
    pub async fn read(&self, id: u64, org: u64) -> (String, u64) {
        (self.item(id).await, self.count(org).await)
    }

    /// Invalidates both, named by method calls.
    #[invalidates(self.item(id), self.count(org), cache = self.cache)]
    pub async fn touch(&self, id: u64, org: u64) {}
}

/// Methods are named by method calls, and only their own impl's entries go.
pub async fn methods_are_named_by_method_calls(cache: &Cache) {
    let (pg, mock) = (Service::<Pg>::new(cache, "t1"), Service::<Mock>::new(cache, "t1"));
    for service_reads in [pg.read(1, 7).await, mock.read(1, 7).await] {
        assert_eq!(service_reads.1, 70);
    }
    assert_eq!((pg.runs(), mock.runs()), (2, 2));
    pg.touch(1, 7).await;
    assert_eq!(pg.read(1, 7).await.0, "pg:t1:1");
    assert_eq!(mock.read(1, 7).await.0, "mock:t1:1");
    assert_eq!((pg.runs(), mock.runs()), (4, 2), "only `Service<Pg>`'s entries were removed");
}

/// Defines one `#[tokio::test]` per single-cache linked scenario, on a fresh cache from `$fresh`.
#[macro_export]
macro_rules! linked_tests {
    ($fresh:expr) => {
        $crate::linked_tests!(@each $fresh;
            named_invalidation_removes_the_readers_entries,
            cache_put_stores_the_written_value,
            overlapping_puts_leave_the_last_written_value,
            a_put_cancelled_during_its_write_deletes_the_entry,
            manual_api_uses_the_readers_entries,
            methods_are_named_by_method_calls,
            clear_empties_the_cache,
            refresh_and_warmers_load_ahead_of_callers,
        );
    };
    (@each $fresh:expr; $($name:ident),* $(,)?) => {
        mod linked {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fixture = $fresh;
                    cache_tests::linked::$name(&fixture.cache()).await;
                }
            )*
        }
    };
}

/// How long a test waits for something that happens in the background.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Waits until a two-level cache's bus vouches for its layer (it starts on
/// first use, so this reads).
///
/// # Panics
/// When the bus has not vouched within [`PATIENCE`].
pub async fn until_vouched(cache: &Cache) {
    let table = Table::default();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        profile(cache, &table, u64::MAX).await.unwrap();
        if cache.status().bus.is_some_and(|bus| bus.vouched) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "the bus never connected: {:?}", cache.status());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads profile 1 on `cache` until it serves `name`; how long that took.
///
/// # Panics
/// When it has not within [`PATIENCE`].
pub async fn until_served(cache: &Cache, table: &Table, name: &str) -> Duration {
    let started = tokio::time::Instant::now();
    while profile(cache, table, 1).await.unwrap().name != name {
        assert!(started.elapsed() < PATIENCE, "never served {name:?}");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    started.elapsed()
}
