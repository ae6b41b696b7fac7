//! The two-level cache against the in-memory and the Redis-only cache, in one
//! run, on a `redis-server` started here; then how long an invalidation takes
//! to reach another process's in-process layer, under load.
//!
//! Run: `cargo bench -p cache-tests --bench two_level`. Throughputs are the
//! median of three rounds; ratios compare figures of the same run.

use std::time::{Duration, Instant};

use cache_runtime::{Cache, invalidate};
use cache_tests::bench::{ROUND, ROUNDS, TASKS, plain, three_tags};
use cache_tests::redis_server::RedisServer;

const KEYS: u64 = 1_000;

async fn hits(cache: &Cache, tagged: bool) -> f64 {
    for id in 0..KEYS {
        plain(cache, id).await;
        three_tags(cache, id, id % 10, id % 7).await;
    }
    let cache = cache.clone();
    cache_tests::bench::throughput(TASKS, ROUNDS, ROUND, move |i| {
        let cache = cache.clone();
        async move {
            let id = i % KEYS;
            if tagged {
                std::hint::black_box(three_tags(&cache, id, id % 10, id % 7).await);
            } else {
                std::hint::black_box(plain(&cache, id).await);
            }
        }
    })
    .await
}

fn two_level(url: &str) -> Cache {
    Cache::builder().redis(url).unwrap().prefix("bench").unwrap().local_cache(64 << 20).build()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !cache_tests::redis_server::require_redis() {
        return;
    }
    let server = RedisServer::start();
    let memory = Cache::in_memory();
    let redis_only = Cache::builder().redis(&server.url()).unwrap().prefix("bench:redis").unwrap().build();
    let here = two_level(&server.url());
    cache_tests::linked::until_vouched(&here).await;
    println!("redis-server on {}; {TASKS} tasks, {ROUNDS} rounds of {ROUND:?}, medians\n", server.url());

    let memory_hit = hits(&memory, false).await;
    let local_hit = hits(&here, false).await;
    let local_tagged = hits(&here, true).await;
    let redis_hit = hits(&redis_only, false).await;
    println!("{:<48} {:>12} {:>10}", "hits over 1,000 keys", "ops/s", "ratio");
    println!("{:<48} {:>12.0} {:>10}", "in memory", memory_hit, "1.00");
    println!("{:<48} {:>12.0} {:>10.2}", "two-level, in-process layer", local_hit, local_hit / memory_hit);
    println!(
        "{:<48} {:>12.0} {:>10.2}",
        "two-level, in-process layer, 3 tags (vs untagged)",
        local_tagged,
        local_tagged / local_hit
    );
    println!("{:<48} {:>12.0} {:>10.2}", "Redis only", redis_hit, redis_hit / memory_hit);
    println!("\nin-process layer hit: {:.2}x the Redis-only hit's throughput", local_hit / redis_hit);

    // Propagation: `there` holds an entry in its layer while 16 tasks read it;
    // `here` invalidates it; how long until `there` has applied the message.
    let there = two_level(&server.url());
    cache_tests::linked::until_vouched(&there).await;
    let load = {
        let there = there.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let readers: Vec<_> = (0..16)
                .map(|task| {
                    let there = there.clone();
                    tokio::spawn(async move {
                        let mut i = task;
                        while started.elapsed() < Duration::from_secs(30) {
                            std::hint::black_box(plain(&there, i % KEYS).await);
                            i += 16;
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for reader in readers {
                reader.abort();
            }
        })
    };
    let mut delays = Vec::new();
    for round in 0..300 {
        let id = KEYS + round;
        plain(&there, id).await;
        let before = there.status().bus.map_or(0, |bus| bus.messages);
        let started = Instant::now();
        invalidate!(cache_tests::bench::plain(id), cache = &here).await.unwrap();
        while there.status().bus.map_or(0, |bus| bus.messages) == before {
            tokio::task::yield_now().await;
        }
        delays.push(started.elapsed());
    }
    load.abort();
    delays.sort();
    println!(
        "\ninvalidation to another process's layer, under 16 reading tasks, 300 rounds: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays[delays.len() - 1]
    );
}
