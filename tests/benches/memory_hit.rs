//! In-memory hit path: `#[cached]` against the `cached` crate's `#[cached]`,
//! hand-written `quick_cache` and `moka` lookups of the same value, in one run;
//! then a large value (10,000 rows) returned as a `Vec` (a hit clones every
//! row) and as an `Arc<Vec>` (a hit clones the `Arc`).
//!
//! Run: `cargo bench -p cache-tests --bench memory_hit`. Prints the median of
//! each and its ratio to the `cached` crate at the end.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use cache_tests::bench::{Profile, profile};
use criterion::Criterion;

#[cache_runtime::cached(key = "profile:<id>", ttl = 300)]
async fn ours(id: u64) -> Profile {
    profile(id)
}

#[cache_runtime::cached(key = "profile3:<id>", ttl = 300, tags = ["org:<org>", "team:<team>", "all"], skip = [])]
async fn ours_three_tags(id: u64, org: u64, team: u64) -> Profile {
    let _ = (org, team);
    profile(id)
}

const ROWS: u64 = 10_000;

#[cache_runtime::cached(key = "rows:<n>", ttl = 300)]
async fn rows_vec(n: u64) -> Vec<Profile> {
    (0..n).map(profile).collect()
}

#[cache_runtime::cached(key = "rows_arc:<n>", ttl = 300)]
async fn rows_arc(n: u64) -> Arc<Vec<Profile>> {
    Arc::new((0..n).map(profile).collect())
}

#[cached::macros::cached(ttl_secs = 300)]
async fn peer_cached(id: u64) -> Profile {
    profile(id)
}

const MEDIANS: &[(&str, &str)] = &[
    ("cache-runtime #[cached] hit", "ours"),
    ("cache-runtime #[cached] hit, 3 tags", "ours_three_tags"),
    ("cached 4.1 #[cached] hit", "cached_crate"),
    ("quick_cache get + clone", "quick_cache"),
    ("moka sync get + clone", "moka_sync"),
    ("#[cached] hit, 10k rows as Vec", "rows_vec"),
    ("#[cached] hit, 10k rows as Arc<Vec>", "rows_arc"),
];

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut group = c.benchmark_group("memory_hit");
    group.measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));

    runtime.block_on(ours(7));
    group.bench_function("ours", |b| {
        b.to_async(&runtime).iter(|| async { black_box(ours(black_box(7)).await) })
    });

    runtime.block_on(ours_three_tags(7, 1, 2));
    group.bench_function("ours_three_tags", |b| {
        b.to_async(&runtime).iter(|| async { black_box(ours_three_tags(black_box(7), 1, 2).await) })
    });

    runtime.block_on(peer_cached(7));
    group.bench_function("cached_crate", |b| {
        b.to_async(&runtime).iter(|| async { black_box(peer_cached(black_box(7)).await) })
    });

    let quick: quick_cache::sync::Cache<u64, Profile> = quick_cache::sync::Cache::new(10_000);
    quick.insert(7, profile(7));
    group.bench_function("quick_cache", |b| b.iter(|| black_box(quick.get(&black_box(7)))));

    let moka_cache: moka::sync::Cache<u64, Profile> = moka::sync::Cache::new(10_000);
    moka_cache.insert(7, profile(7));
    group.bench_function("moka_sync", |b| b.iter(|| black_box(moka_cache.get(&black_box(7)))));

    runtime.block_on(rows_vec(ROWS));
    group.bench_function("rows_vec", |b| {
        b.to_async(&runtime).iter(|| async { black_box(rows_vec(black_box(ROWS)).await) })
    });
    runtime.block_on(rows_arc(ROWS));
    group.bench_function("rows_arc", |b| {
        b.to_async(&runtime).iter(|| async { black_box(rows_arc(black_box(ROWS)).await) })
    });
    group.finish();
}

/// Reads criterion's median estimate (nanoseconds) of one benchmark.
fn median_ns(id: &str) -> Option<f64> {
    let dir = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/../target", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{dir}/criterion/memory_hit/{id}/new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    let Some(baseline) = median_ns("cached_crate") else {
        return;
    };
    println!("\n{:<40} {:>10} {:>18}", "in-memory hit", "median", "vs cached crate");
    for (label, id) in MEDIANS {
        if let Some(median) = median_ns(id) {
            println!("{label:<40} {median:>8.1}ns {:>17.2}x", median / baseline);
        }
    }
}
