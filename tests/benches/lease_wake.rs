//! How long a caller waiting for another process's load of the same entry
//! takes to see its value, polling against woken by the lease release
//! announcement: two handles on separate connections to one `redis-server`
//! started here, as two processes would have.
//!
//! Run: `cargo bench -p cache-tests --bench lease_wake`. For each of 400
//! entries, handle A loads (a body of 10 to 30 ms) and handle B asks for the
//! same entry 3 ms later, so it waits on A's lease; the figure is the time
//! from A's call returning (its value stored) to B's call returning.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, cached};
use cache_tests::redis_server::RedisServer;

const ENTRIES: u64 = 400;

#[cached(key = "wake:<round>:<id>", ttl = 60, cache = cache, skip = [cache, runs, body_ms])]
async fn slow(cache: &Cache, runs: &AtomicUsize, round: u64, id: u64, body_ms: u64) -> u64 {
    runs.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(body_ms)).await;
    id
}

fn handle(url: &str, notifications: bool) -> Cache {
    Cache::builder()
        .redis(url)
        .expect("valid url")
        .prefix("bench:wake")
        .expect("valid prefix")
        .lease_wait(Duration::from_secs(2))
        .lease_notifications(notifications)
        .build()
}

fn slow_stats() -> cache_runtime::SiteStats {
    cache_runtime::stats().into_iter().find(|s| s.function.ends_with("::slow")).unwrap_or_default()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Waiter latencies (ms, sorted) and how many waiters ran the body themselves.
async fn measure(url: &str, round: u64, notifications: bool) -> (Vec<f64>, usize) {
    let (loader, waiter) = (handle(url, notifications), handle(url, notifications));
    let (loader_runs, waiter_runs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut rng = fastrand::Rng::with_seed(round);
    // Warm up both connections (and, with notifications, the subscription).
    for id in 0..20 {
        slow(&loader, &loader_runs, round + 100, id, 1).await;
        let first = slow(&loader, &loader_runs, round + 200, id, 20);
        let second = async {
            tokio::time::sleep(Duration::from_millis(3)).await;
            slow(&waiter, &waiter_runs, round + 200, id, 20).await
        };
        tokio::join!(first, second);
    }
    waiter_runs.store(0, Ordering::SeqCst);
    let mut latencies = Vec::new();
    for id in 0..ENTRIES {
        let body_ms = rng.u64(10..=30);
        let a = {
            let (loader, runs) = (loader.clone(), Arc::clone(&loader_runs));
            tokio::spawn(async move {
                slow(&loader, &runs, round, id, body_ms).await;
                Instant::now()
            })
        };
        let b = {
            let (waiter, runs) = (waiter.clone(), Arc::clone(&waiter_runs));
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(3)).await;
                slow(&waiter, &runs, round, id, body_ms).await;
                Instant::now()
            })
        };
        let (stored, seen) = (a.await.expect("loader"), b.await.expect("waiter"));
        latencies.push(seen.saturating_duration_since(stored).as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    (latencies, waiter_runs.load(Ordering::SeqCst))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !cache_tests::redis_server::require_redis() {
        return;
    }
    let server = RedisServer::start();
    println!("redis-server on {}; {ENTRIES} contended entries per mode\n", server.url());
    println!("| waiter wake-up | p50 | p90 | p99 | max | waiters that loaded |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (round, (name, notifications)) in
        [("release announced (PUBLISH)", true), ("polling (2-50 ms backoff)", false)].into_iter().enumerate()
    {
        let before = slow_stats();
        let (latencies, loaded) = measure(&server.url(), round as u64 * 1_000, notifications).await;
        let after = slow_stats();
        eprintln!(
            "{name}: cache errors {}, refused stores {}",
            after.errors - before.errors,
            after.refused_stores - before.refused_stores
        );
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {loaded} |",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or_default(),
        );
    }
}
