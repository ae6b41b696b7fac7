//! Hostile or corrupt entries on a real Redis: whatever bytes sit under a
//! function's key, the call answers from the body and counts the entry as
//! undecodable; it never crashes the process. Each test starts its own
//! `redis-server`, or skips without one unless `CACHE_REQUIRE_REDIS=1`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use cache_runtime::{Cache, Envelope, cached};
use cache_tests::redis_server::{RedisServer, require_redis};
use serde::{Deserialize, Serialize};

/// A recursive type: an entry can nest it as deep as the entry is long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Tree {
    Leaf(u32),
    Node(Vec<Tree>),
}

/// `Tree::Leaf(0)` inside `depth` nodes.
fn nested(depth: usize) -> Tree {
    (0..depth).fold(Tree::Leaf(0), |tree, _| Tree::Node(vec![tree]))
}

/// The body's value for `id`.
fn small(id: u32) -> Tree {
    Tree::Node(vec![Tree::Leaf(id)])
}

#[cached(key = "tree:<id>", ttl = 600, cache = cache, skip = [cache, runs])]
async fn postcard_tree(cache: &Cache, runs: &AtomicUsize, id: u32) -> Tree {
    runs.fetch_add(1, Ordering::SeqCst);
    small(id)
}

#[cached(key = "tree:<id>", ttl = 600, codec = cache_runtime::Bincode, cache = cache, skip = [cache, runs])]
async fn bincode_tree(cache: &Cache, runs: &AtomicUsize, id: u32) -> Tree {
    runs.fetch_add(1, Ordering::SeqCst);
    small(id)
}

#[cached(key = "tree:<id>", ttl = 600, codec = cache_runtime::Json, cache = cache, skip = [cache, runs])]
async fn json_tree(cache: &Cache, runs: &AtomicUsize, id: u32) -> Tree {
    runs.fetch_add(1, Ordering::SeqCst);
    small(id)
}

#[cached(key = "deep:<depth>", ttl = 600, cache = cache, skip = [cache, runs])]
async fn deep_tree(cache: &Cache, runs: &AtomicUsize, depth: usize) -> Tree {
    runs.fetch_add(1, Ordering::SeqCst);
    nested(depth)
}

/// One of the cached functions above, by codec.
#[derive(Debug, Clone, Copy)]
enum Codec {
    Postcard,
    Bincode,
    Json,
}

impl Codec {
    async fn call(self, cache: &Cache, runs: &AtomicUsize, id: u32) -> Tree {
        match self {
            Self::Postcard => postcard_tree(cache, runs, id).await,
            Self::Bincode => bincode_tree(cache, runs, id).await,
            Self::Json => json_tree(cache, runs, id).await,
        }
    }

    fn function(self) -> &'static str {
        match self {
            Self::Postcard => "::postcard_tree",
            Self::Bincode => "::bincode_tree",
            Self::Json => "::json_tree",
        }
    }

    /// A `Tree` payload `depth` nodes deep: two bytes a level in postcard and
    /// bincode (variant 1, one element), `{"Node":[` ... `]}` in JSON.
    fn nested_payload(self, depth: usize) -> Vec<u8> {
        match self {
            Self::Postcard | Self::Bincode => [[1_u8, 1].repeat(depth), vec![0, 0]].concat(),
            Self::Json => {
                [br#"{"Node":["#.repeat(depth), br#"{"Leaf":0}"#.to_vec(), b"]}".repeat(depth)].concat()
            }
        }
    }
}

fn redis_cache(server: &RedisServer) -> Cache {
    Cache::builder()
        .redis(&server.url())
        .expect("valid url")
        .prefix("test:hostile")
        .expect("valid prefix")
        .timeout(Duration::from_secs(5))
        .build()
}

/// The entry under `key`, its payload replaced by `payload`: the envelope
/// stays valid (format, codec, type), so only the payload decides.
async fn replace_payload(cache: &Cache, key: &str, payload: &[u8]) {
    let get = cache_runtime::redis::cmd("GET").arg(key).clone();
    let entry = cache
        .redis_command::<Option<Vec<u8>>>(get)
        .await
        .expect("Redis")
        .expect("Redis answers")
        .expect("an entry");
    let (_, old_payload) = Envelope::decode_header(&entry).expect("a valid entry");
    let header = &entry[..entry.len() - old_payload.len()];
    let set = cache_runtime::redis::cmd("SET").arg(key).arg([header, payload].concat()).clone();
    let answer: String = cache.redis_command(set).await.expect("Redis").expect("Redis answers");
    assert_eq!(answer, "OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_nested_a_million_deep_is_a_miss_not_a_crash() {
    if !require_redis() {
        return;
    }
    let errors = ErrorCounts::global();
    let server = RedisServer::start();
    let cache = redis_cache(&server);
    for (id, codec) in [(1, Codec::Postcard), (2, Codec::Bincode), (3, Codec::Json)] {
        let runs = Arc::new(AtomicUsize::new(0));
        assert_eq!(codec.call(&cache, &runs, id).await, small(id));
        let key = cache.redis_key(&format!("tree:{id}")).unwrap();
        replace_payload(&cache, &key, &codec.nested_payload(1_000_000)).await;
        // On a worker thread, with a worker's stack, as a server's calls run.
        let (worker_cache, worker_runs) = (cache.clone(), Arc::clone(&runs));
        let value = tokio::spawn(async move { codec.call(&worker_cache, &worker_runs, id).await }).await;
        assert_eq!(value.expect("the call returns"), small(id), "{codec:?}: the body's value");
        assert_eq!(runs.load(Ordering::SeqCst), 2, "{codec:?}: the hostile entry is a miss");
        assert_eq!(errors.get(codec.function(), "undecodable"), 1, "{codec:?}: counted as undecodable");
        assert_eq!(codec.call(&cache, &runs, id).await, small(id));
        assert_eq!(runs.load(Ordering::SeqCst), 2, "{codec:?}: the store overwrote the hostile entry");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_nested_past_the_limit_is_returned_but_never_stored() {
    if !require_redis() {
        return;
    }
    let errors = ErrorCounts::global();
    let server = RedisServer::start();
    let cache = redis_cache(&server);
    let runs = AtomicUsize::new(0);
    // A node is two levels (the variant, its vector), the leaf one: 63 nodes
    // are 127 levels, the most a value may have.
    for _ in 0..2 {
        assert_eq!(deep_tree(&cache, &runs, 63).await, nested(63));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "63 nodes deep: stored, then a hit");
    for _ in 0..2 {
        assert_eq!(deep_tree(&cache, &runs, 64).await, nested(64));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 3, "64 nodes deep: returned, never stored");
    assert_eq!(errors.get("::deep_tree", "encode"), 2);
    let key = cache.redis_key("deep:64").unwrap();
    let exists: u64 = cache
        .redis_command(cache_runtime::redis::cmd("EXISTS").arg(key).clone())
        .await
        .expect("Redis")
        .expect("Redis answers");
    assert_eq!(exists, 0, "no entry that could never be read back");
}

/// `cache_errors_total` by function and class, recorded from every thread.
#[derive(Clone, Default)]
struct ErrorCounts(Arc<Mutex<HashMap<(String, String), u64>>>);

impl ErrorCounts {
    /// The recorder of this test binary, installed on first use.
    fn global() -> Self {
        static COUNTS: OnceLock<ErrorCounts> = OnceLock::new();
        COUNTS
            .get_or_init(|| {
                let counts = Self::default();
                metrics::set_global_recorder(counts.clone()).expect("the only recorder");
                counts
            })
            .clone()
    }

    /// The count of the function whose path ends with `function`, in `class`.
    fn get(&self, function: &str, class: &str) -> u64 {
        let counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        counts.iter().filter(|((f, c), _)| f.ends_with(function) && c == class).map(|(_, n)| n).sum()
    }
}

/// One labelled counter of [`ErrorCounts`].
struct ErrorCounter {
    labels: (String, String),
    counts: ErrorCounts,
}

impl metrics::CounterFn for ErrorCounter {
    fn increment(&self, value: u64) {
        let mut counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        *counts.entry(self.labels.clone()).or_default() += value;
    }

    fn absolute(&self, _: u64) {}
}

impl metrics::Recorder for ErrorCounts {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        if key.name() != "cache_errors_total" {
            return metrics::Counter::noop();
        }
        let label = |name: &str| key.labels().find(|l| l.key() == name).map(|l| l.value().to_owned());
        let labels = (label("function").unwrap_or_default(), label("class").unwrap_or_default());
        metrics::Counter::from_arc(Arc::new(ErrorCounter { labels, counts: self.clone() }))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}
