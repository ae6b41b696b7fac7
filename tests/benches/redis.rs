//! Redis throughput: `#[cached]` against hand-written redis-rs, in one run,
//! on a `redis-server` started here on a free port.
//!
//! Run: `cargo bench -p cache-tests --bench redis`. Each figure is the median of
//! three rounds; ratios compare figures of the same run.

use std::time::{Duration, Instant};

use cache_runtime::redis::{self, AsyncCommands};
use cache_runtime::{Cache, cached};
use cache_tests::bench::{Profile, ROUND, ROUNDS, TASKS, always_missing, median, plain, profile, three_tags};
use cache_tests::redis_server::RedisServer;

#[cached(key = "member:<group>:<id>", ttl = 3600, tags = ["group:<group>"], cache = cache, skip = [cache])]
async fn member(cache: &Cache, group: u64, id: u64) -> u64 {
    id
}

async fn throughput<F, Fut>(op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    cache_tests::bench::throughput(TASKS, ROUNDS, ROUND, op).await
}

/// Median time of `op` over `n` sequential runs.
async fn latency<F, Fut>(n: usize, op: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        op().await;
        times.push(started.elapsed().as_secs_f64());
    }
    Duration::from_secs_f64(median(times))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !cache_tests::redis_server::require_redis() {
        return;
    }
    let server = RedisServer::start();
    let cache = Cache::builder().redis(&server.url()).unwrap().prefix("bench").unwrap().build();
    let client = redis::Client::open(server.url()).unwrap();
    let raw = client.get_connection_manager().await.unwrap();
    println!("redis-server on {}; {TASKS} tasks, {ROUNDS} rounds of {ROUND:?}, medians\n", server.url());

    // Hits over 1,000 keys.
    for id in 0..1_000 {
        plain(&cache, id).await;
        three_tags(&cache, id, id % 10, id % 7).await;
        let bytes = postcard::to_stdvec(&profile(id)).unwrap();
        let _: () = raw.clone().set(format!("raw:profile:{id}"), bytes).await.unwrap();
    }
    let ours = {
        let cache = cache.clone();
        throughput(move |i| {
            let cache = cache.clone();
            async move {
                std::hint::black_box(plain(&cache, i % 1_000).await);
            }
        })
        .await
    };
    let hand_written = {
        let raw = raw.clone();
        throughput(move |i| {
            let mut raw = raw.clone();
            async move {
                let bytes: Vec<u8> = raw.get(format!("raw:profile:{}", i % 1_000)).await.unwrap();
                std::hint::black_box(postcard::from_bytes::<Profile>(&bytes).unwrap());
            }
        })
        .await
    };
    let tagged = {
        let cache = cache.clone();
        throughput(move |i| {
            let cache = cache.clone();
            async move {
                let id = i % 1_000;
                std::hint::black_box(three_tags(&cache, id, id % 10, id % 7).await);
            }
        })
        .await
    };
    println!("{:<58} {:>12} {:>8}", "hit path", "ops/s", "ratio");
    println!("{:<58} {:>12.0} {:>8}", "hand-written redis-rs GET + postcard decode", hand_written, "1.00");
    println!("{:<58} {:>12.0} {:>8.2}", "#[cached] hit, no tags (plain GET)", ours, ours / hand_written);
    println!(
        "{:<58} {:>12.0} {:>8.2}",
        "#[cached] hit, 3 tags (pipeline of 4 GETs)",
        tagged,
        tagged / hand_written
    );

    // Miss path: load + lease + conditional store, against a plain SET.
    let misses = {
        let cache = cache.clone();
        throughput(move |i| {
            let cache = cache.clone();
            async move {
                std::hint::black_box(always_missing(&cache, i).await);
            }
        })
        .await
    };
    let sets = {
        let raw = raw.clone();
        throughput(move |i| {
            let mut raw = raw.clone();
            async move {
                let bytes = postcard::to_stdvec(&profile(i)).unwrap();
                let _: () = raw.set_ex(format!("raw:set:{i}"), bytes, 3600).await.unwrap();
            }
        })
        .await
    };
    println!("\n{:<58} {:>12} {:>8}", "miss path", "ops/s", "ratio");
    println!("{:<58} {:>12.0} {:>8}", "hand-written SET EX of the encoded value", sets, "1.00");
    println!("{:<58} {:>12.0} {:>8.2}", "#[cached] miss: GET, lease + SET via script", misses, misses / sets);

    // Tag invalidation with 1 entry and with 100,000 entries under the tag.
    member(&cache, 1, 0).await;
    let fill = Instant::now();
    let filler: Vec<_> = (0..8_u64)
        .map(|worker| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for id in (worker..100_000).step_by(8) {
                    member(&cache, 2, id).await;
                }
            })
        })
        .collect();
    for task in filler {
        task.await.unwrap();
    }
    // Alternate the two so that drift in the machine's load hits both alike.
    let (mut ones, mut manys) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        ones.push(
            latency(200, || async { cache.invalidate_tag("group:1").await.unwrap() }).await.as_secs_f64(),
        );
        manys.push(
            latency(200, || async { cache.invalidate_tag("group:2").await.unwrap() }).await.as_secs_f64(),
        );
    }
    let (one, many) = (Duration::from_secs_f64(median(ones)), Duration::from_secs_f64(median(manys)));
    println!(
        "\n{:<58} {:>12}\n{:<58} {:>10.1}µs\n{:<58} {:>10.1}µs {:>8.2}\n(filling 100,000 entries took {:?})",
        "tag invalidation (median of 10 alternating medians of 200)",
        "latency",
        "1 entry under the tag",
        one.as_secs_f64() * 1e6,
        "100,000 entries under the tag",
        many.as_secs_f64() * 1e6,
        many.as_secs_f64() / one.as_secs_f64(),
        fill.elapsed(),
    );
}
