//! The in-memory cache end to end.

use std::time::Duration;

use cache_runtime::{Cache, cached};
use cache_tests::scenarios::{self, Read, bump_team, delete_user_key, get_user, touch_org};

struct Memory(Cache);

impl Memory {
    fn cache(&self) -> Cache {
        self.0.clone()
    }
}

cache_tests::scenario_tests!(Memory(Cache::in_memory()));

#[tokio::test]
async fn no_stale_set_after_key_invalidation() {
    let cache = Cache::in_memory();
    scenarios::no_stale_set(Read::User, &cache, &cache, async |c| delete_user_key(c, 1).await).await;
}

#[tokio::test]
async fn no_stale_set_after_tag_invalidation() {
    let cache = Cache::in_memory();
    scenarios::no_stale_set(Read::User, &cache, &cache, async |c| touch_org(c, 7).await).await;
}

#[tokio::test]
async fn no_stale_set_after_version_bump() {
    let cache = Cache::in_memory();
    scenarios::no_stale_set(Read::Team, &cache, &cache, async |c| bump_team(c, 3).await).await;
}

#[tokio::test]
async fn weight_stays_within_max_bytes() {
    let cache = Cache::builder().max_bytes(64 * 1024).estimated_entries(100).build();
    let db = scenarios::Db::default();
    for id in 1..2_000 {
        get_user(&cache, &db, id, 1).await.unwrap();
    }
    assert!(cache.status().weight_bytes() <= 64 * 1024, "{}", cache.status().weight_bytes());
    assert!(cache.status().entries() < 1_999);
}

#[cached(ttl = 60)]
async fn default_key(a: u64, b: &str) -> String {
    format!("{a}{b}")
}

#[tokio::test]
async fn default_key_uses_function_and_every_parameter_and_counts() {
    assert_eq!(default_key(1, "x").await, "1x");
    assert_eq!(default_key(1, "y").await, "1y");
    assert_eq!(default_key(2, "x").await, "2x");
    let site = || {
        cache_runtime::stats()
            .into_iter()
            .find(|s| s.function.ends_with("::default_key"))
            .expect("site registered")
    };
    assert_eq!((site().hits, site().misses, site().loads), (0, 3, 3));
    assert_eq!(default_key(1, "x").await, "1x");
    assert_eq!(site().hits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_reads_never_return_data_older_than_a_completed_invalidation() {
    let cache = Cache::in_memory();
    let checked = scenarios::randomized_reads_never_return_data_older_than_a_completed_invalidation(
        &[cache],
        std::time::Duration::from_secs(2),
    )
    .await;
    println!("checked {checked} reads");
    assert!(checked > 1_000, "only {checked} reads checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_cancellation_leaves_nothing_stale_or_wedged() {
    let cache = Cache::in_memory();
    let report =
        scenarios::randomized_cancellation(&[cache], Duration::from_secs(2), Duration::from_millis(500))
            .await;
    println!("{report:?}");
    assert!(report.checked_reads > 1_000 && report.cancelled_reads > 100, "{report:?}");
}

#[cached(key = "configured:<id>", ttl = 3600, cache = cache, skip = [cache, runs])]
async fn configured(cache: &Cache, runs: &std::sync::atomic::AtomicUsize, id: u64) -> u64 {
    runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    id
}

#[cached(key = "report:<id>", ttl = 3600, group = "reports", cache = cache, skip = [cache, runs])]
async fn report(cache: &Cache, runs: &std::sync::atomic::AtomicUsize, id: u64) -> u64 {
    runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    id
}

#[tokio::test]
async fn ttls_set_at_start_up_override_the_attribute_by_function_or_group() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let short = Duration::from_millis(300);
    let cache = Cache::builder()
        .ttl_override("memory::configured", short, Duration::ZERO)
        .unwrap()
        .ttl_override("reports", short, Duration::ZERO)
        .unwrap()
        .build();
    let (configured_runs, report_runs) = (AtomicUsize::new(0), AtomicUsize::new(0));
    configured(&cache, &configured_runs, 1).await;
    report(&cache, &report_runs, 1).await;
    configured(&cache, &configured_runs, 1).await;
    report(&cache, &report_runs, 1).await;
    assert_eq!((configured_runs.load(Ordering::SeqCst), report_runs.load(Ordering::SeqCst)), (1, 1));
    tokio::time::sleep(short + Duration::from_millis(100)).await;
    configured(&cache, &configured_runs, 1).await;
    report(&cache, &report_runs, 1).await;
    assert_eq!(
        (configured_runs.load(Ordering::SeqCst), report_runs.load(Ordering::SeqCst)),
        (2, 2),
        "both expired after the configured 300 ms, not the attribute's hour"
    );
    let group = cache_runtime::stats().into_iter().find(|s| s.function.ends_with("::report")).unwrap().group;
    assert_eq!(group, Some("reports"));
    assert!(Cache::builder().ttl_override("x", Duration::ZERO, Duration::ZERO).is_err());
    assert!(Cache::builder().ttl_override("", short, Duration::ZERO).is_err());
}

cache_tests::linked_tests!(Memory(Cache::in_memory()));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_wins_over_a_load_in_progress() {
    let cache = Cache::in_memory();
    cache_tests::linked::a_put_wins_over_a_load_in_progress(&cache, &cache).await;
}

#[tokio::test]
async fn a_put_that_cannot_be_stored_deletes_the_entry() {
    let cache = Cache::builder().max_bytes(64 * 1024).build();
    cache_tests::linked::a_put_that_cannot_be_stored_deletes_the_entry(&cache).await;
}

/// 10,000 empty strings: 10 KB encoded, 240 KB in memory.
#[cached(key = "blanks:<id>", ttl = 300, cache = cache, skip = [cache])]
async fn blanks(cache: &Cache, id: u64) -> Vec<String> {
    vec![String::new(); 10_000]
}

/// The bound weighs what a value occupies in memory, not its encoded size:
/// 100 values of 240 KB each do not fit in 4 MiB.
#[tokio::test]
async fn max_bytes_weighs_what_values_occupy() {
    let cache = Cache::builder().max_bytes(4 << 20).build();
    for id in 0..100 {
        blanks(&cache, id).await;
    }
    let layer = &cache.status().layers[0];
    let (entries, weight) = (layer.entries.unwrap(), layer.weight_bytes.unwrap());
    eprintln!("{entries} entries of 240 KB kept, weighing {weight} bytes, under a bound of 4 MiB");
    assert!(weight <= 4 << 20, "{weight}");
    assert!(entries * 240_000 <= 4 << 20, "{entries} entries of 240 KB in 4 MiB");
}

/// Resident memory of this process, in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|field| field.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Learns the tag `<hostile>` while it loads.
#[cached(key = "learner:<id>", ttl = 300, cache = cache, skip = [cache, hostile])]
async fn learner(cache: &Cache, id: u32, hostile: &str) -> u32 {
    cache_runtime::add_tag(hostile).await;
    id
}

/// 5,000 distinct tags of 10 KB each (as a write endpoint rendering user
/// input into a tag could be sent), through `invalidate_tag`, then 5,000
/// more learned by loads (`add_tag`): the counters keep a name shortened to
/// 200 bytes each, weighed, so memory stays bounded (100 MB of names were
/// kept before).
#[tokio::test]
async fn hostile_tag_names_cost_bounded_memory() {
    let cache = Cache::in_memory();
    let before = resident_bytes();
    for round in 0..5_000_u32 {
        let tag = format!("{round}:{}", "x".repeat(10_000));
        cache.invalidate_tag(&tag).await.unwrap();
    }
    for round in 0..5_000_u32 {
        let tag = format!("learned {round}:{}", "y".repeat(10_000));
        assert_eq!(learner(&cache, round, &tag).await, round);
    }
    let grown = resident_bytes().saturating_sub(before);
    eprintln!("10,000 tags of 10 KB invalidated or learned: resident memory grew {} KiB", grown / 1024);
    // About 7 MiB here, 170 MiB when names were kept whole; the margin is
    // for the other tests of this binary, which run alongside.
    assert!(grown < 64 << 20, "resident memory grew {} MiB", grown >> 20);
}
