//! Values that leave the process: a change of a cached type's shape, or of its
//! `schema`, is a miss, never a value decoded into the wrong fields; `Arc<T>`
//! values are stored as `T` and shared in memory without a deep clone; the
//! bincode codec. In memory and on real Redis (each test starts its own
//! `redis-server`, or skips without one unless `CACHE_REQUIRE_REDIS=1`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{Cache, Codec, Envelope, Postcard, cached};
use cache_tests::redis_server::{RedisServer, require_redis};
use serde::{Deserialize, Serialize};

/// Counts body runs.
#[derive(Default)]
struct Runs(AtomicUsize);

impl Runs {
    fn add(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn redis_cache(server: &RedisServer) -> Cache {
    Cache::builder()
        .redis(&server.url())
        .expect("valid url")
        .prefix("test:values")
        .expect("valid prefix")
        .timeout(Duration::from_millis(500))
        .build()
}

/// Runs `scenario` on an in-memory cache, then on a Redis of its own (as two
/// processes would see it: one handle writes, another reads).
macro_rules! memory_and_redis {
    ($memory:ident, $redis:ident, $scenario:path) => {
        #[tokio::test]
        async fn $memory() {
            let cache = Cache::in_memory();
            $scenario(&cache, &cache).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $redis() {
            if !require_redis() {
                return;
            }
            let server = RedisServer::start();
            $scenario(&redis_cache(&server), &redis_cache(&server)).await;
        }
    };
}

// ---------------------------------------------------------------------------
// Deploys: one build of `Person` after another, all writing `person:<id>`.

/// A build of the application: a `Person` type of its own shape and the
/// same cached function, keyed `person:<id>` like every other build.
macro_rules! build {
    ($build:ident { $($field:ident: $ty:ty = $value:expr),* $(,)? }) => {
        mod $build {
            use super::*;

            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            pub(crate) struct Person {
                $(pub(crate) $field: $ty),*
            }

            pub(crate) fn ada() -> Person {
                Person { $($field: $value),* }
            }

            #[cached(key = "person:<id>", ttl = 600, cache = cache, skip = [cache, runs])]
            pub(crate) async fn person(cache: &Cache, runs: &Runs, id: u64) -> Person {
                runs.add();
                let _ = id;
                ada()
            }
        }
    };
}

build!(first { first_name: String = "Ada".into(), last_name: String = "Lovelace".into(), balance: i64 = -5 });
// The same shape, declared elsewhere: entries are shared.
build!(first_again {
    first_name: String = "Ada".into(),
    last_name: String = "Lovelace".into(),
    balance: i64 = -5
});
// Each of these would decode the first build's bytes without an error, into
// wrong values: names exchanged, a balance of 9 (postcard's zigzag of -5 read
// as unsigned), or a first name under another field.
build!(swapped {
    last_name: String = "Lovelace".into(),
    first_name: String = "Ada".into(),
    balance: i64 = -5
});
build!(retyped {
    first_name: String = "Ada".into(),
    last_name: String = "Lovelace".into(),
    balance: u64 = 5
});
build!(renamed {
    given_name: String = "Ada".into(),
    last_name: String = "Lovelace".into(),
    balance: i64 = -5
});
build!(added {
    first_name: String = "Ada".into(),
    last_name: String = "Lovelace".into(),
    balance: i64 = -5,
    born: u16 = 1815,
});
build!(removed { first_name: String = "Ada".into(), last_name: String = "Lovelace".into() });

/// Checks one later build against entries of the first.
macro_rules! deploy {
    ($old:expr, $new:expr, $build:ident, $first_runs:expr) => {{
        let (first_runs, runs) = ($first_runs, Runs::default());
        first::person($old, first_runs, 1).await;
        assert_eq!(
            $build::person($new, &runs, 1).await,
            $build::ada(),
            concat!(stringify!($build), " read another shape")
        );
        assert_eq!(runs.get(), 1, concat!(stringify!($build), " must miss the first build's entry"));
        let before = first_runs.get();
        assert_eq!(first::person($old, first_runs, 1).await, first::ada());
        assert_eq!(
            first_runs.get(),
            before + 1,
            concat!("the first build must miss ", stringify!($build), "'s entry")
        );
    }};
}

async fn deploys(old: &Cache, new: &Cache) {
    let first_runs = Runs::default();
    assert_eq!(first::person(old, &first_runs, 1).await, first::ada());
    assert_eq!(first::person(new, &first_runs, 1).await, first::ada());
    let again = Runs::default();
    assert_eq!(first_again::person(new, &again, 1).await, first_again::ada());
    assert_eq!(first_runs.get(), 1);
    // Encoded, the same shape declared elsewhere reads the entry; in memory
    // values stay typed, and another Rust type is another entry.
    let encoded = new.redis_key("").is_some();
    assert_eq!(again.get(), usize::from(!encoded), "the same shape shares encoded entries");

    deploy!(old, new, swapped, &first_runs);
    deploy!(old, new, retyped, &first_runs);
    deploy!(old, new, renamed, &first_runs);
    deploy!(old, new, added, &first_runs);
    deploy!(old, new, removed, &first_runs);
}

memory_and_redis!(a_changed_shape_is_a_miss_in_memory, a_changed_shape_is_a_miss_on_redis, deploys);

// The builds are modules here, so their Rust paths differ: `first_again`
// reading `first`'s entries shows the path is no part of the fingerprint, so
// what makes the others miss is their shape alone, as it is for one path
// across two deploys.

#[test]
fn swapped_fields_would_decode_silently_without_the_fingerprint() {
    // What the fingerprint protects against: postcard is positional.
    let mut bytes = Vec::new();
    Postcard::encode(&first::ada(), &mut bytes).unwrap();
    let swapped: swapped::Person = Postcard::decode(&bytes).unwrap();
    assert_eq!((swapped.first_name.as_str(), swapped.last_name.as_str()), ("Lovelace", "Ada"));
    let retyped: retyped::Person = Postcard::decode(&bytes).unwrap();
    assert_eq!(retyped.balance, 9);
}

/// Types whose `Deserialize` refuses arbitrary input are traced whole.
#[test]
fn dates_and_uuids_are_traced_whole() {
    use cache_runtime::codec::shape_of;

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Event {
        id: uuid::Uuid,
        at: chrono::DateTime<chrono::Utc>,
        day: chrono::NaiveDate,
        local: chrono::NaiveDateTime,
        stamp: time::OffsetDateTime,
        date: time::Date,
    }

    let shape = shape_of::<Event>();
    assert!(shape.is_complete(), "{shape}");
    assert_eq!(
        shape.description(),
        concat!(
            r#"#0=struct "Event"{"id":bytes,"at":str,"day":str,"local":str,"#,
            r#""stamp":tuple(i32,u16,u8,u8,u8,u32,i8,i8,i8),"date":tuple(i32,u16)}"#
        )
    );
}

// ---------------------------------------------------------------------------
// `schema = N`: the same shape, another meaning.

#[cached(key = "price:<id>", ttl = 600, cache = cache, skip = [cache, runs])]
async fn price_in_cents(cache: &Cache, runs: &Runs, id: u64) -> u64 {
    runs.add();
    id * 100
}

/// Prices became euros: the type is unchanged, so the meaning is versioned.
#[cached(key = "price:<id>", ttl = 600, schema = 2, cache = cache, skip = [cache, runs])]
async fn price_in_euros(cache: &Cache, runs: &Runs, id: u64) -> u64 {
    runs.add();
    id
}

async fn schemas(old: &Cache, new: &Cache) {
    let (cents, euros) = (Runs::default(), Runs::default());
    assert_eq!(price_in_cents(old, &cents, 7).await, 700);
    assert_eq!(price_in_cents(new, &cents, 7).await, 700);
    assert_eq!(cents.get(), 1);
    assert_eq!(price_in_euros(new, &euros, 7).await, 7, "an entry of schema 0 read as schema 2");
    assert_eq!(price_in_euros(new, &euros, 7).await, 7);
    assert_eq!(euros.get(), 1);
    assert_eq!(price_in_cents(old, &cents, 7).await, 700, "an entry of schema 2 read as schema 0");
    assert_eq!(cents.get(), 2);
}

memory_and_redis!(a_changed_schema_is_a_miss_in_memory, a_changed_schema_is_a_miss_on_redis, schemas);

// ---------------------------------------------------------------------------
// `Arc<T>`

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    rows: Vec<u64>,
}

fn report_of(id: u64) -> Report {
    Report { rows: (0..100).map(|row| row * id).collect() }
}

#[cached(key = "report:<id>", ttl = 600, cache = cache, skip = [cache, runs])]
async fn shared_report(cache: &Cache, runs: &Runs, id: u64) -> Arc<Report> {
    runs.add();
    Arc::new(report_of(id))
}

#[cached(key = "report:<id>", ttl = 600, cache = cache, skip = [cache, runs])]
async fn owned_report(cache: &Cache, runs: &Runs, id: u64) -> Report {
    runs.add();
    report_of(id)
}

#[cached(key = "checked:<id>", ttl = 600, cache = cache, skip = [cache, runs])]
async fn checked_report(cache: &Cache, runs: &Runs, id: u64) -> Result<Arc<Report>, String> {
    runs.add();
    if id == 0 { Err("no report 0".into()) } else { Ok(Arc::new(report_of(id))) }
}

#[cached(key = "maybe:<id>", ttl = 600, cache = cache, skip = [cache, runs])]
async fn maybe_report(cache: &Cache, runs: &Runs, id: u64) -> Option<Arc<Report>> {
    runs.add();
    (id != 0).then(|| Arc::new(report_of(id)))
}

/// Not `Clone`: shared through `Arc`, it need not be.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Unclonable(Vec<String>);

#[cached(key = "unclonable:<id>", ttl = 600, cache = cache, skip = [cache, runs])]
async fn unclonable(cache: &Cache, runs: &Runs, id: u64) -> Arc<Unclonable> {
    runs.add();
    Arc::new(Unclonable(vec![id.to_string()]))
}

#[tokio::test]
async fn an_arc_hit_in_memory_shares_the_value_without_cloning_it() {
    let (cache, runs) = (Cache::in_memory(), Runs::default());
    let first = shared_report(&cache, &runs, 3).await;
    let second = shared_report(&cache, &runs, 3).await;
    assert!(Arc::ptr_eq(&first, &second), "a hit returns the Arc the body returned");
    assert_eq!(runs.get(), 1);

    let first = checked_report(&cache, &runs, 3).await.unwrap();
    assert!(Arc::ptr_eq(&first, &checked_report(&cache, &runs, 3).await.unwrap()));
    assert!(checked_report(&cache, &runs, 0).await.is_err());
    assert!(checked_report(&cache, &runs, 0).await.is_err());
    assert_eq!(runs.get(), 4, "`Ok(Arc)` is cached, `Err` is not");

    let first = maybe_report(&cache, &runs, 3).await.unwrap();
    assert!(Arc::ptr_eq(&first, &maybe_report(&cache, &runs, 3).await.unwrap()));
    assert!(maybe_report(&cache, &runs, 0).await.is_none());
    assert!(maybe_report(&cache, &runs, 0).await.is_none());
    assert_eq!(runs.get(), 7, "`Some(Arc)` is cached, `None` is not");

    let first = unclonable(&cache, &runs, 1).await;
    assert!(Arc::ptr_eq(&first, &unclonable(&cache, &runs, 1).await));
    assert_eq!(runs.get(), 8);
}

/// `Arc<Report>` and `Report` are the same entry: stored as `Report`.
async fn arc_is_stored_as_its_value(writer: &Cache, reader: &Cache) {
    let (shared_runs, owned_runs) = (Runs::default(), Runs::default());
    let shared = shared_report(writer, &shared_runs, 5).await;
    assert_eq!(owned_report(reader, &owned_runs, 5).await, *shared);
    assert_eq!(owned_runs.get(), 0, "a `Report` function reads the `Arc<Report>` function's entry");
    owned_report(writer, &owned_runs, 6).await;
    assert_eq!(*shared_report(reader, &shared_runs, 6).await, report_of(6));
    assert_eq!((shared_runs.get(), owned_runs.get()), (1, 1));
}

memory_and_redis!(
    arc_and_value_share_entries_in_memory,
    arc_and_value_share_entries_on_redis,
    arc_is_stored_as_its_value
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arc_value_is_encoded_as_the_value_itself_on_redis() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start();
    let cache = redis_cache(&server);
    let runs = Runs::default();
    shared_report(&cache, &runs, 9).await;
    let key = cache.redis_key("report:9").expect("a Redis cache");
    let bytes: Vec<u8> = cache
        .redis_command(cache_runtime::redis::cmd("GET").arg(key).clone())
        .await
        .expect("Redis")
        .expect("an entry");
    let (envelope, payload) = Envelope::decode_header(&bytes).unwrap();
    assert_eq!(envelope.codec, Postcard::ID);
    assert_eq!(Postcard::decode::<Report>(payload).unwrap(), report_of(9));
    let hit = shared_report(&cache, &runs, 9).await;
    assert_eq!((runs.get(), &*hit), (1, &report_of(9)));
}

// ---------------------------------------------------------------------------
// bincode

#[cached(key = "binary:<id>", ttl = 600, codec = cache_runtime::Bincode, cache = cache, skip = [cache, runs])]
async fn bincoded(cache: &Cache, runs: &Runs, id: u64) -> Report {
    runs.add();
    report_of(id)
}

#[cached(key = "binary:<id>", ttl = 600, cache = cache, skip = [cache, runs])]
async fn postcarded(cache: &Cache, runs: &Runs, id: u64) -> Report {
    runs.add();
    report_of(id + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bincode_round_trips_through_redis_and_other_codecs_miss() {
    if !require_redis() {
        return;
    }
    let server = RedisServer::start();
    let (writer, reader) = (redis_cache(&server), redis_cache(&server));
    let (runs, other) = (Runs::default(), Runs::default());
    assert_eq!(bincoded(&writer, &runs, 2).await, report_of(2));
    assert_eq!(bincoded(&reader, &runs, 2).await, report_of(2));
    assert_eq!(runs.get(), 1, "decoded by bincode from Redis");
    let bytes: Vec<u8> = reader
        .redis_command(cache_runtime::redis::cmd("GET").arg(reader.redis_key("binary:2").unwrap()).clone())
        .await
        .expect("Redis")
        .expect("an entry");
    assert_eq!(Envelope::decode_header(&bytes).unwrap().0.codec, cache_runtime::Bincode::ID);
    assert_eq!(postcarded(&reader, &other, 2).await, report_of(3), "a bincode entry read as postcard");
    assert_eq!(other.get(), 1);
    assert_eq!(bincoded(&reader, &runs, 2).await, report_of(2), "a postcard entry read as bincode");
    assert_eq!(runs.get(), 2);
}
