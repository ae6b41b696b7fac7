//! Known faults of the cache engine, reproduced against real `redis-server`
//! processes (and the in-memory cache where the fault is there too).
//!
//! Each test states the behaviour the engine must have and fails while the
//! fault is present (one guard, marked as such, checks what holds already).
//! Every wait is bounded; Redis tests are skipped (with a
//! message) when `redis-server` is not installed, unless
//! `CACHE_REQUIRE_REDIS=1`, when they fail instead.

use std::collections::HashMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, CacheBuilder, cached, invalidates};
use cache_tests::redis_server::{RedisServer, free_port, require_redis};
use cache_tests::scenarios::{Db, get_user, join_all, touch_org};
use tokio::sync::Notify;
use tokio::time::timeout;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// A Redis cache on `url` with the test prefix, a timeout generous enough for a
/// loaded machine, and a small breaker; tests override what they exercise.
fn builder(url: &str) -> CacheBuilder {
    Cache::builder()
        .redis(url)
        .expect("valid url")
        .prefix("test:app")
        .expect("valid prefix")
        .timeout(Duration::from_millis(500))
        .circuit_breaker(3, Duration::from_millis(300))
}

/// Starts a server, or returns from the test when Redis tests are skipped.
macro_rules! server {
    ($($arg:expr),* $(,)?) => {
        if require_redis() {
            RedisServer::start_with_args(&[$($arg),*])
        } else {
            return;
        }
    };
}

/// A database row: what the next load reads, how many loads ran, and an
/// optional hold on the next load (it signals `entered`, then waits for `release`).
#[derive(Default)]
struct Source {
    value: AtomicU64,
    runs: AtomicUsize,
    hold_next: AtomicBool,
    entered: Notify,
    release: Notify,
}

impl Source {
    fn new(value: u64) -> Arc<Self> {
        Arc::new(Self { value: AtomicU64::new(value), ..Self::default() })
    }

    /// A row whose next load reads `value`, then waits for `release`.
    fn held(value: u64) -> Arc<Self> {
        let source = Self::new(value);
        source.hold_next.store(true, Ordering::SeqCst);
        source
    }

    fn set(&self, value: u64) {
        self.value.store(value, Ordering::SeqCst);
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    async fn load(&self) -> u64 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let value = self.value.load(Ordering::SeqCst);
        if self.hold_next.swap(false, Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
        value
    }

    /// Waits until a held load has read its value.
    async fn wait_entered(&self) {
        timeout(Duration::from_secs(10), self.entered.notified())
            .await
            .expect("the held load never started (within 10 s)");
    }
}

/// Key `row:<id>`, tag `tag:<id>`, version `ver:<id>`.
#[cached(key = "row:<id>", ttl = 60, tags = ["tag:<id>"], version = "ver:<id>", cache = cache, skip = [cache, source])]
async fn row(cache: &Cache, source: &Source, id: u64) -> u64 {
    source.load().await
}

#[invalidates(keys = ["row:<id>"], cache = cache, skip = [cache])]
async fn write_row_key(cache: &Cache, id: u64) {}

#[invalidates(tags = ["tag:<id>"], cache = cache, skip = [cache])]
async fn write_row_tag(cache: &Cache, id: u64) {}

#[invalidates(versions = ["ver:<id>"], cache = cache, skip = [cache])]
async fn write_row_version(cache: &Cache, id: u64) {}

/// How a write invalidates `row:<id>`.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Key,
    Tag,
    Version,
}

impl Kind {
    async fn invalidate(self, cache: &Cache, id: u64) {
        match self {
            Self::Key => write_row_key(cache, id).await,
            Self::Tag => write_row_tag(cache, id).await,
            Self::Version => write_row_version(cache, id).await,
        }
    }
}

/// Key `plain:<id>`, nothing else.
#[cached(key = "plain:<id>", ttl = 60, cache = cache, skip = [cache, source])]
async fn plain(cache: &Cache, source: &Source, id: u64) -> u64 {
    source.load().await
}

/// Runs `call` in a task of its own: its value, or a test failure naming the panic.
async fn without_panic<T: Send + 'static>(what: &str, call: impl Future<Output = T> + Send + 'static) -> T {
    match timeout(Duration::from_secs(10), tokio::spawn(call)).await {
        Err(_) => panic!("{what}: no answer within 10 s"),
        Ok(Ok(value)) => value,
        Ok(Err(error)) if error.is_panic() => {
            let payload = error.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            panic!("{what} panicked: {message}")
        }
        Ok(Err(error)) => panic!("{what}: {error}"),
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

// ---------------------------------------------------------------------------
// 1. A cancelled half-open probe must not leave the breaker open for good.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_half_open_probe_does_not_leave_the_breaker_open() {
    let server = server!();
    let a = builder(&server.url())
        .timeout(Duration::from_millis(100))
        .circuit_breaker(1, Duration::from_millis(100))
        .build();
    let b = builder(&server.url()).build();
    let source = Source::new(1);
    assert_eq!(row(&b, &source, 1).await, 1);
    assert_eq!(row(&a, &source, 1).await, 1, "a hit: handle A is connected");
    assert_eq!(source.runs(), 1);

    server.pause();
    assert_eq!(row(&a, &source, 1).await, 1, "the body answers while Redis is paused");
    assert!(a.status().degraded(), "one timeout opens a breaker of threshold 1");
    tokio::time::sleep(Duration::from_millis(250)).await; // past the 100 ms cooldown
    // The next call is the half-open probe; Redis does not answer and the caller gives up.
    let probe = timeout(Duration::from_millis(20), row(&a, &source, 1)).await;
    println!(
        "the call after the cooldown was {}",
        if probe.is_err() { "cancelled" } else { "answered within 20 ms" }
    );
    server.resume();

    // Redis answers again. A write on A invalidates the row; B must see it.
    source.set(2);
    write_row_tag(&a, 1).await;
    let started = Instant::now();
    let (mut closed, mut applied) = (None, None);
    while started.elapsed() < Duration::from_secs(4) && (closed.is_none() || applied.is_none()) {
        // Drives probes on A without running a body.
        let _ = a.redis_command::<String>(cache_runtime::redis::cmd("PING")).await;
        if closed.is_none() && !a.status().degraded() {
            closed = Some(started.elapsed());
        }
        if applied.is_none() && row(&b, &source, 1).await == 2 {
            applied = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "after Redis answered again: breaker closed after {closed:?}, invalidation seen by B after {applied:?}"
    );
    assert!(
        closed.is_some() && applied.is_some(),
        "4 s after Redis answered again, handle A's breaker closed: {}; the tag invalidation written on A \
         during that time reached handle B: {} (a cancelled half-open probe left the breaker half-open for good)",
        closed.map_or("NO, still degraded".to_owned(), ms),
        applied.map_or("NO, B still serves the old value".to_owned(), ms),
    );
}

/// A guard: this holds today (the background retries outlast a 300 ms outage)
/// and must keep holding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_a_redis_outage_is_applied_once_redis_answers() {
    let server = server!();
    let a = builder(&server.url())
        .timeout(Duration::from_millis(100))
        .circuit_breaker(1, Duration::from_millis(100))
        .build();
    let b = builder(&server.url()).build();
    let source = Source::new(1);
    assert_eq!(row(&b, &source, 2).await, 1);
    assert_eq!(row(&a, &source, 2).await, 1, "a hit: handle A is connected");

    server.pause();
    source.set(2);
    let started = Instant::now();
    write_row_key(&a, 2).await;
    let write_took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.resume();

    let resumed = Instant::now();
    let mut applied = None;
    while resumed.elapsed() < Duration::from_secs(4) {
        if row(&b, &source, 2).await == 2 {
            applied = Some(resumed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("the write took {}; B saw it {applied:?} after Redis answered again", ms(write_took));
    assert!(
        write_took < Duration::from_millis(500),
        "a write is bounded by the timeout (100 ms), took {}",
        ms(write_took)
    );
    assert!(
        applied.is_some(),
        "a key invalidation written on A during a 300 ms outage never reached B (4 s after Redis answered again)"
    );
}

// ---------------------------------------------------------------------------
// 2. A cancelled load gives its Redis lease back.
// ---------------------------------------------------------------------------

#[cached(key = "leased:<id>", ttl = 60, cache = cache, skip = [cache, source])]
async fn leased(cache: &Cache, source: &Source, id: u64) -> u64 {
    source.load().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_load_gives_its_lease_back() {
    let server = server!();
    let a = builder(&server.url()).lease_wait(Duration::from_secs(1)).build();
    let b = builder(&server.url()).lease_wait(Duration::from_secs(1)).build();
    let held = Source::held(1);
    let load = {
        let (a, held) = (a.clone(), Arc::clone(&held));
        tokio::spawn(async move { leased(&a, &held, 1).await })
    };
    held.wait_entered().await;
    let lease_key = format!("{}:lease", a.redis_key("leased:1").unwrap());
    assert_eq!(server.cli(&["EXISTS", &lease_key]), "1", "setup: the running load holds the lease");
    load.abort();
    assert!(load.await.unwrap_err().is_cancelled(), "setup: the load was cancelled");

    let source = Source::new(2);
    let started = Instant::now();
    let value =
        timeout(Duration::from_secs(10), leased(&b, &source, 1)).await.expect("no answer within 10 s");
    let took = started.elapsed();
    let lease_left = server.cli(&["PTTL", &lease_key]);
    println!("after the cancellation, handle B's call took {}; lease PTTL then: {lease_left}", ms(took));
    assert_eq!(value, 2);
    assert!(
        took < Duration::from_millis(400),
        "after the load holding the lease was cancelled, a call on another handle took {} (lease_wait 1 s, \
         body instant): the cancelled load kept its lease (PTTL {lease_left} ms)",
        ms(took)
    );
    leased(&b, &source, 1).await;
    assert_eq!(source.runs(), 1, "the reload was stored: the next call is a hit");
}

/// Lines of a child process's standard output, read on a thread of their own.
struct ChildLines {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl ChildLines {
    fn spawn(program: &str, args: &[&str]) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the child process");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    async fn expect(&mut self, wanted: &str) {
        let line = timeout(Duration::from_secs(10), self.lines.recv()).await;
        assert_eq!(
            line,
            Ok(Some(wanted.to_owned())),
            "the child process did not print {wanted:?} within 10 s"
        );
    }

    fn send_line(&mut self) {
        writeln!(self.child.stdin.as_mut().unwrap()).expect("write to the child process");
    }
}

impl Drop for ChildLines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_cancelled_in_another_process_gives_its_lease_back() {
    let server = server!();
    let url = server.url();
    let mut loader = ChildLines::spawn(env!("CARGO_BIN_EXE_cancelled_loader"), &[&url]);
    loader.expect("LOADED").await;
    let cache = builder(&url).lease_wait(Duration::from_secs(1)).build();
    let lease_key = format!("{}:lease", cache.redis_key("user:1").unwrap());
    assert_eq!(server.cli(&["EXISTS", &lease_key]), "1", "setup: the other process's load holds the lease");
    loader.send_line();
    loader.expect("CANCELLED").await; // that process is still running

    let db = Db::default();
    let started = Instant::now();
    let user =
        timeout(Duration::from_secs(10), get_user(&cache, &db, 1, 7)).await.expect("no answer within 10 s");
    let took = started.elapsed();
    let lease_left = server.cli(&["PTTL", &lease_key]);
    println!(
        "after the other process cancelled its load, this call took {}; lease PTTL: {lease_left}",
        ms(took)
    );
    assert_eq!(user.unwrap().id, 1);
    assert!(
        took < Duration::from_millis(400),
        "after another process cancelled its load of user:1, a call here took {} (lease_wait 1 s, body \
         instant): that load kept its lease (PTTL {lease_left} ms)",
        ms(took)
    );
    get_user(&cache, &db, 1, 7).await.unwrap();
    assert_eq!(db.reads(), 1, "the reload was stored: the next call is a hit");
}

// ---------------------------------------------------------------------------
// 3. A call that starts after an invalidation returned never returns older data.
// ---------------------------------------------------------------------------

/// Call 1 loads (reads 1) and is held; the row becomes 2 and `writer`
/// invalidates it; call 2 starts on `reader` after that returned. Returns what
/// call 2 got: 2 is right, 1 is the value loaded before the write.
async fn read_after_an_invalidation(reader: &Cache, writer: &Cache, kind: Kind, id: u64) -> u64 {
    let source = Source::held(1);
    let first = {
        let (reader, source) = (reader.clone(), Arc::clone(&source));
        tokio::spawn(async move { row(&reader, &source, id).await })
    };
    source.wait_entered().await;
    source.set(2);
    kind.invalidate(writer, id).await;
    // The invalidation returned: every call starting now must see 2.
    let mut second = {
        let (reader, source) = (reader.clone(), Arc::clone(&source));
        tokio::spawn(async move { row(&reader, &source, id).await })
    };
    // Let call 2 reach the flight of call 1 (or finish on its own), then let call 1 finish.
    let early = timeout(Duration::from_millis(200), &mut second).await;
    source.release.notify_one();
    let second = match early {
        Ok(done) => done.expect("call 2 failed"),
        Err(_) => timeout(Duration::from_secs(10), second).await.expect("call 2 never finished").unwrap(),
    };
    timeout(Duration::from_secs(10), first).await.expect("call 1 never finished").unwrap();
    second
}

/// The same race in memory and on Redis: writes on the reading handle or on
/// another one, with values stored or not stored (larger than `max_value_bytes`).
async fn reads_after_an_invalidation_see_the_write(kind: Kind, first_id: u64) {
    let memory = Cache::in_memory();
    let mut seen = vec![("in memory", read_after_an_invalidation(&memory, &memory, kind, first_id).await)];
    if require_redis() {
        let server = RedisServer::start();
        let stored = builder(&server.url()).build();
        let other = builder(&server.url()).build();
        let unstored = builder(&server.url()).max_value_bytes(1).build();
        let cases = [
            ("on Redis", &stored, &stored),
            ("on Redis, written on another handle", &stored, &other),
            ("on Redis, values not stored", &unstored, &unstored),
            ("on Redis, values not stored, written on another handle", &unstored, &other),
        ];
        for (id, (case, reader, writer)) in (first_id + 1..).zip(cases) {
            seen.push((case, read_after_an_invalidation(reader, writer, kind, id).await));
        }
    }
    println!("{kind:?} invalidation, value of the call that started after it: {seen:?}");
    let stale: Vec<&str> = seen.iter().filter(|(_, value)| *value != 2).map(|(case, _)| *case).collect();
    assert!(
        stale.is_empty(),
        "{kind:?} invalidation: a call that started after the invalidation returned got the value loaded \
         before it (1, not 2) {stale:?}; all cases (case, value): {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_starts_after_a_key_invalidation_sees_the_write() {
    reads_after_an_invalidation_see_the_write(Kind::Key, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_starts_after_a_tag_invalidation_sees_the_write() {
    reads_after_an_invalidation_see_the_write(Kind::Tag, 310).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_starts_after_a_version_bump_sees_the_write() {
    reads_after_an_invalidation_see_the_write(Kind::Version, 320).await;
}

// ---------------------------------------------------------------------------
// 4. Invalidations are not lost when Redis is at maxmemory.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidations_are_not_lost_at_maxmemory() {
    let server = server!("--maxmemory-policy", "noeviction");
    let cache = builder(&server.url()).build();
    let source = Source::new(1);
    row(&cache, &source, 41).await;
    row(&cache, &source, 42).await;
    row(&cache, &source, 41).await;
    assert_eq!(source.runs(), 2, "setup: both rows are cached");

    // Redis refuses writes that need memory from now on.
    assert_eq!(server.cli(&["CONFIG", "SET", "maxmemory", "1"]), "OK");
    assert!(server.cli(&["SET", "filler", "x"]).starts_with("OOM"), "setup: Redis is out of memory");
    source.set(2);
    write_row_tag(&cache, 41).await;
    write_row_version(&cache, 42).await;
    // Longer than the background retries of an invalidation (about 1.5 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(server.cli(&["CONFIG", "SET", "maxmemory", "0"]), "OK");

    let after_tag = row(&cache, &source, 41).await;
    let after_version = row(&cache, &source, 42).await;
    assert!(
        after_tag == 2 && after_version == 2,
        "rows invalidated while Redis was at maxmemory, read once memory was free again: after the tag \
         invalidation {after_tag}, after the version bump {after_version} (1 is the value from before the write)"
    );
}

// ---------------------------------------------------------------------------
// 5. A failing body does not make concurrent callers queue.
// ---------------------------------------------------------------------------

#[cached(key = "failing:<id>", ttl = 60, cache = cache, skip = [cache, runs])]
async fn failing(cache: &Cache, runs: &AtomicUsize, id: u64) -> Result<u64, String> {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Err(format!("row {id} is locked"))
}

async fn ten_callers_of_a_failing_body_finish_together(cache: &Cache, backend: &str) {
    let runs = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let (cache, runs) = (cache.clone(), Arc::clone(&runs));
            tokio::spawn(async move { failing(&cache, &runs, 5).await })
        })
        .collect();
    let results = timeout(Duration::from_secs(10), join_all(calls)).await.expect("no answer within 10 s");
    let took = started.elapsed();
    let runs = runs.load(Ordering::SeqCst);
    println!("{backend}: 10 callers of a body failing after 100 ms: {} in all, {runs} body runs", ms(took));
    assert!(results.iter().all(Result::is_err), "every caller gets an error");
    assert!(
        took < Duration::from_millis(350),
        "{backend}: 10 concurrent callers of a body that fails after 100 ms took {} in all ({runs} body \
         runs): the callers retried the load one after another",
        ms(took)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_failures_do_not_queue_concurrent_callers() {
    ten_callers_of_a_failing_body_finish_together(&Cache::in_memory(), "in memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_failures_do_not_queue_concurrent_callers() {
    let server = server!();
    ten_callers_of_a_failing_body_finish_together(&builder(&server.url()).build(), "on Redis").await;
}

// ---------------------------------------------------------------------------
// 6. Connecting is bounded by the timeout.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_an_unreachable_redis_is_bounded_by_the_timeout() {
    // Nothing listens on this port.
    let cache = builder(&format!("redis://127.0.0.1:{}", free_port()))
        .timeout(Duration::from_millis(50))
        .circuit_breaker(5, Duration::from_secs(30))
        .build();
    let source = Source::new(7);
    let mut took = Vec::new();
    for id in 0..3 {
        let started = Instant::now();
        let value =
            timeout(Duration::from_secs(10), plain(&cache, &source, id)).await.expect("no answer in 10 s");
        took.push(started.elapsed());
        assert_eq!(value, 7);
    }
    let shown: Vec<String> = took.iter().copied().map(ms).collect();
    println!("first calls against a closed port with timeout 50 ms: {shown:?}");
    assert!(
        took.iter().all(|&t| t < Duration::from_millis(200)),
        "with timeout 50 ms and nothing listening, the first calls took {shown:?} (bound: 200 ms each)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_redis_that_does_not_answer_is_bounded_by_the_timeout() {
    let server = server!();
    // It accepts connections (the kernel does) but never answers: a hung host.
    server.pause();
    let cache = builder(&server.url())
        .timeout(Duration::from_millis(50))
        .circuit_breaker(5, Duration::from_secs(30))
        .build();
    let source = Source::new(8);
    let mut took = Vec::new();
    for id in 0..3 {
        let started = Instant::now();
        let value =
            timeout(Duration::from_secs(10), plain(&cache, &source, id)).await.expect("no answer in 10 s");
        took.push(started.elapsed());
        assert_eq!(value, 8);
    }
    server.resume();
    let shown: Vec<String> = took.iter().copied().map(ms).collect();
    println!("first calls against a paused Redis with timeout 50 ms: {shown:?}");
    assert!(
        took.iter().all(|&t| t < Duration::from_millis(200)),
        "with timeout 50 ms and a Redis that accepts connections but never answers, the first calls took \
         {shown:?} (bound: 200 ms each)"
    );
}

// ---------------------------------------------------------------------------
// 7. Error answers are classified: unavailability is no undecodable entry.
// ---------------------------------------------------------------------------

/// A metrics recorder that keeps counter totals by name.
#[derive(Clone, Default)]
struct Counters(Arc<Mutex<HashMap<String, u64>>>);

impl Counters {
    fn get(&self, name: &str) -> u64 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(name).copied().unwrap_or(0)
    }
}

struct NamedCounter {
    name: String,
    counters: Counters,
}

impl metrics::CounterFn for NamedCounter {
    fn increment(&self, value: u64) {
        *self
            .counters
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(self.name.clone())
            .or_default() += value;
    }

    fn absolute(&self, value: u64) {
        let mut counters = self.counters.0.lock().unwrap_or_else(PoisonError::into_inner);
        let total = counters.entry(self.name.clone()).or_default();
        *total = (*total).max(value);
    }
}

impl metrics::Recorder for Counters {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(Arc::new(NamedCounter {
            name: key.name().to_owned(),
            counters: self.clone(),
        }))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// Runs `test` on a current-thread runtime with `counters` recording every metric it emits.
fn with_counters(counters: &Counters, test: impl Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    metrics::with_local_recorder(counters, || runtime.block_on(test));
}

/// Calls `plain` once for each id (distinct keys); whether the breaker is open afterwards.
async fn calls_during(cache: &Cache, ids: std::ops::Range<u64>) -> bool {
    let source = Source::new(9);
    for id in ids {
        let value =
            timeout(Duration::from_secs(10), plain(cache, &source, id)).await.expect("no answer in 10 s");
        assert_eq!(value, 9, "the body answers");
    }
    cache.status().degraded()
}

fn assert_classified(class: &str, breaker_opened: bool, counters: &Counters) {
    let undecodable = counters.get("cache_undecodable_total");
    println!("{class}: breaker opened: {breaker_opened}; cache_undecodable_total: {undecodable}");
    assert!(
        breaker_opened && undecodable == 0,
        "6 calls while Redis answered {class} to them: breaker opened: {breaker_opened} (threshold 3: it \
         must), entries counted as undecodable: {undecodable} (must be 0: Redis answered no entry)"
    );
}

fn redis_cli(port: u16, args: &[&str]) -> std::process::Child {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run redis-cli")
}

/// Polls `PING` until its answer starts with `prefix`.
fn wait_for_answer(server: &RedisServer, prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.cli(&["PING"]).starts_with(prefix) {
        assert!(Instant::now() < deadline, "setup: Redis never answered {prefix} within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn readonly_answers_open_the_breaker_and_are_no_undecodable_entries() {
    if !require_redis() {
        return;
    }
    let primary = RedisServer::start();
    let replica = RedisServer::start_with_args(&["--replicaof", "127.0.0.1", &primary.port().to_string()]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !replica.cli(&["INFO", "replication"]).contains("master_link_status:up") {
        assert!(Instant::now() < deadline, "setup: the replica never synced");
        std::thread::sleep(Duration::from_millis(20));
    }
    let counters = Counters::default();
    with_counters(&counters, async {
        let cache = builder(&replica.url()).circuit_breaker(3, Duration::from_secs(30)).build();
        calls_during(&cache, 700..701).await; // connected; reads work on a replica
        // Writes only (a key invalidation always writes): every answer is READONLY.
        for id in 701..707 {
            timeout(Duration::from_secs(10), write_row_key(&cache, id)).await.expect("no answer in 10 s");
        }
        assert_classified("READONLY", cache.status().degraded(), &counters);
    });
}

#[test]
fn loading_answers_open_the_breaker_and_are_no_undecodable_entries() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start_with_args(&["--enable-debug-command", "yes"]);
    let counters = Counters::default();
    with_counters(&counters, async {
        let cache = builder(&server.url()).circuit_breaker(3, Duration::from_secs(30)).build();
        calls_during(&cache, 710..711).await; // connected
        assert_eq!(server.cli(&["DEBUG", "POPULATE", "3000", "filler", "10"]), "OK");
        assert_eq!(server.cli(&["CONFIG", "SET", "key-load-delay", "500"]), "OK"); // µs a key: 1.5 s
        assert_eq!(server.cli(&["CONFIG", "SET", "loading-process-events-interval-bytes", "1024"]), "OK");
        let mut reload = redis_cli(server.port(), &["DEBUG", "RELOAD"]);
        wait_for_answer(&server, "LOADING");
        let opened = calls_during(&cache, 711..717).await;
        let still_loading = server.cli(&["PING"]).starts_with("LOADING");
        reload.wait().expect("DEBUG RELOAD finishes");
        assert!(still_loading, "setup: Redis finished loading during the calls; make loading longer");
        assert_classified("LOADING", opened, &counters);
    });
}

#[test]
fn busy_answers_open_the_breaker_and_are_no_undecodable_entries() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start_with_args(&["--busy-reply-threshold", "10"]);
    let counters = Counters::default();
    with_counters(&counters, async {
        let cache = builder(&server.url()).circuit_breaker(3, Duration::from_secs(30)).build();
        calls_during(&cache, 720..721).await; // connected
        let mut script = redis_cli(server.port(), &["EVAL", "while true do end", "0"]);
        wait_for_answer(&server, "BUSY");
        let opened = calls_during(&cache, 721..727).await;
        let still_busy = server.cli(&["PING"]).starts_with("BUSY");
        let _ = server.cli(&["SCRIPT", "KILL"]);
        script.wait().expect("the script ends");
        assert!(still_busy, "setup: the script ended during the calls");
        assert_classified("BUSY", opened, &counters);
    });
}

// ---------------------------------------------------------------------------
// 8. Both backends check an entry against the tags it was stored under.
// ---------------------------------------------------------------------------

async fn an_entry_is_checked_against_its_own_tags(cache: &Cache, backend: &str) {
    let db = Db::default();
    get_user(cache, &db, 1, 7).await.unwrap();
    get_user(cache, &db, 1, 8).await.unwrap();
    assert_eq!(
        db.reads(),
        1,
        "{backend}: user:1 stored under org:7 is valid while org:7 is current, whatever tag the caller names: \
         the call with org 8 must be a hit"
    );
    touch_org(cache, 7).await;
    get_user(cache, &db, 1, 8).await.unwrap();
    assert_eq!(db.reads(), 2, "{backend}: invalidating org:7 removes the entry stored under org:7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_check_an_entry_against_the_tags_it_was_stored_under() {
    an_entry_is_checked_against_its_own_tags(&Cache::in_memory(), "in memory").await;
    let server = server!();
    an_entry_is_checked_against_its_own_tags(&builder(&server.url()).build(), "on Redis").await;
}

// ---------------------------------------------------------------------------
// 9. Extreme settings do not panic.
// ---------------------------------------------------------------------------

#[cached(key = "forever:<id>", ttl = 18446744073709551615, cache = cache, skip = [cache])]
async fn forever(cache: &Cache, id: u64) -> u64 {
    id + 1
}

async fn forever_twice(cache: Cache, backend: &str) {
    for attempt in ["first", "second"] {
        let cache = cache.clone();
        let value = without_panic(
            &format!("{backend}: the {attempt} call of a function with ttl = u64::MAX"),
            async move { forever(&cache, 90).await },
        )
        .await;
        assert_eq!(value, 91);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_a_ttl_of_u64_max_seconds_does_not_panic() {
    forever_twice(Cache::in_memory(), "in memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_ttl_of_u64_max_seconds_does_not_panic() {
    let server = server!();
    forever_twice(builder(&server.url()).build(), "on Redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_of_duration_max_does_not_panic() {
    let server = server!();
    let cache = builder(&server.url()).lease(Duration::MAX).build();
    let source = Source::new(3);
    for attempt in ["first", "second"] {
        let (cache, source) = (cache.clone(), Arc::clone(&source));
        let value = without_panic(&format!("the {attempt} call with lease = Duration::MAX"), async move {
            plain(&cache, &source, 91).await
        })
        .await;
        assert_eq!(value, 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_wait_of_duration_max_does_not_panic() {
    let server = server!();
    let cache = builder(&server.url()).lease_wait(Duration::MAX).build();
    // Another process's load holds the lease for 300 ms more.
    let lease_key = format!("{}:lease", cache.redis_key("plain:92").unwrap());
    assert_eq!(server.cli(&["SET", &lease_key, "another-process", "PX", "300"]), "OK");
    let source = Source::new(4);
    let value = without_panic("a call waiting for a lease with lease_wait = Duration::MAX", {
        let source = Arc::clone(&source);
        async move { plain(&cache, &source, 92).await }
    })
    .await;
    assert_eq!(value, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_cooldown_of_duration_max_does_not_panic() {
    // Nothing listens on this port: the first call fails and opens the breaker.
    let cache = builder(&format!("redis://127.0.0.1:{}", free_port()))
        .timeout(Duration::from_millis(50))
        .circuit_breaker(1, Duration::MAX)
        .build();
    let source = Source::new(5);
    for attempt in ["first", "second"] {
        let (cache, source) = (cache.clone(), Arc::clone(&source));
        let value = without_panic(
            &format!("the {attempt} call with circuit_breaker(1, Duration::MAX) and Redis unreachable"),
            async move { plain(&cache, &source, 93).await },
        )
        .await;
        assert_eq!(value, 5);
    }
    assert!(cache.status().degraded(), "the failure opened the breaker");
}
