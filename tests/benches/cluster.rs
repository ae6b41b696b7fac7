//! Redis Cluster against standalone Redis, in one run: hits, tagged hits,
//! misses and tag invalidations of `#[cached]` on a `redis-server` and on a
//! cluster of three masters started here, then one hot key on the cluster with
//! and without the two-level cache. A hand-written redis-rs `GET` on each
//! (the connection manager, the cluster client) is the baseline.
//!
//! Run: `cargo bench -p cache-tests --bench cluster`. Each figure is the median
//! of three rounds; ratios compare figures of the same run. Every server runs
//! on this machine, so the cluster cannot show what more machines add: this
//! measures what the cluster client costs.

use std::time::{Duration, Instant};

use cache_runtime::Cache;
use cache_runtime::redis::aio::ConnectionLike;
use cache_runtime::redis::{self, AsyncCommands};
use cache_tests::bench::{Profile, ROUND, ROUNDS, TASKS, always_missing, median, plain, profile, three_tags};
use cache_tests::redis_server::{RedisCluster, RedisServer};

const KEYS: u64 = 1_000;

async fn throughput<F, Fut>(op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    cache_tests::bench::throughput(TASKS, ROUNDS, ROUND, op).await
}

/// Hits over `KEYS` keys, without tags.
async fn hits(cache: &Cache) -> f64 {
    let cache = cache.clone();
    throughput(move |i| {
        let cache = cache.clone();
        async move {
            std::hint::black_box(plain(&cache, i % KEYS).await);
        }
    })
    .await
}

/// The baseline of a hit: hand-written redis-rs `GET` and postcard decode of
/// the same row over `KEYS` keys, on `connection` (the connection manager of
/// one server, or the cluster client).
async fn raw_hits<C>(connection: C) -> f64
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    for id in 0..KEYS {
        let bytes = postcard::to_stdvec(&profile(id)).unwrap();
        let _: () = connection.clone().set(format!("raw:profile:{id}"), bytes).await.unwrap();
    }
    throughput(move |i| {
        let mut connection = connection.clone();
        async move {
            let bytes: Vec<u8> = connection.get(format!("raw:profile:{}", i % KEYS)).await.unwrap();
            std::hint::black_box(postcard::from_bytes::<Profile>(&bytes).unwrap());
        }
    })
    .await
}

/// Hits over `KEYS` keys, with 3 tags.
async fn tagged_hits(cache: &Cache) -> f64 {
    let cache = cache.clone();
    throughput(move |i| {
        let cache = cache.clone();
        async move {
            let id = i % KEYS;
            std::hint::black_box(three_tags(&cache, id, id % 10, id % 7).await);
        }
    })
    .await
}

/// Misses: every call loads, takes the lease and stores.
async fn misses(cache: &Cache, round: u64) -> f64 {
    let cache = cache.clone();
    throughput(move |i| {
        let cache = cache.clone();
        async move {
            std::hint::black_box(always_missing(&cache, (round << 40) + i).await);
        }
    })
    .await
}

/// Median latency of a tag invalidation.
async fn invalidation(cache: &Cache) -> f64 {
    let mut times = Vec::new();
    for _ in 0..500 {
        let started = Instant::now();
        cache.invalidate_tag("org:3").await.unwrap();
        times.push(started.elapsed().as_secs_f64());
    }
    median(times)
}

/// Hits on one key: `TASKS` tasks read the same entry.
async fn hot_key(cache: &Cache) -> f64 {
    plain(cache, 7).await;
    let cache = cache.clone();
    throughput(move |_| {
        let cache = cache.clone();
        async move {
            std::hint::black_box(plain(&cache, 7).await);
        }
    })
    .await
}

fn builder() -> cache_runtime::CacheBuilder {
    Cache::builder()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !cache_tests::redis_server::require_redis() {
        return;
    }
    let server = RedisServer::start();
    let cluster = RedisCluster::start();
    let standalone = builder().redis(&server.url()).unwrap().prefix("bench").unwrap().build();
    let on_cluster = builder().redis_cluster(&cluster.urls()).unwrap().prefix("bench").unwrap().build();
    println!(
        "redis-server on {}; cluster of 3 masters on {:?}; {TASKS} tasks, {ROUNDS} rounds of {ROUND:?}, medians\n",
        server.url(),
        cluster.urls()
    );
    for cache in [&standalone, &on_cluster] {
        for id in 0..KEYS {
            plain(cache, id).await;
            three_tags(cache, id, id % 10, id % 7).await;
        }
    }
    let raw_standalone = redis::Client::open(server.url()).unwrap().get_connection_manager().await.unwrap();
    let raw_cluster =
        redis::cluster::ClusterClient::new(cluster.urls()).unwrap().get_async_connection().await.unwrap();
    // Each figure measured on both, one after the other, so that drift in the
    // machine's load hits both alike.
    let rows = [
        (
            "baseline: hand-written redis-rs GET + decode (ops/s)",
            raw_hits(raw_standalone).await,
            raw_hits(raw_cluster).await,
        ),
        ("hit, no tags (ops/s)", hits(&standalone).await, hits(&on_cluster).await),
        ("hit, 3 tags (ops/s)", tagged_hits(&standalone).await, tagged_hits(&on_cluster).await),
        (
            "miss: load, lease, conditional store (ops/s)",
            misses(&standalone, 1).await,
            misses(&on_cluster, 2).await,
        ),
    ];
    println!("{:<52} {:>12} {:>12} {:>8}", "", "standalone", "cluster", "ratio");
    for (what, a, b) in rows {
        println!("{what:<52} {a:>12.0} {b:>12.0} {:>8.2}", b / a);
    }
    let (baseline, hit) = (rows[0], rows[1]);
    println!(
        "{:<52} {:>12.2} {:>12.2}",
        "hit, no tags, against the baseline of its topology",
        hit.1 / baseline.1,
        hit.2 / baseline.2
    );
    let (a, b) = (invalidation(&standalone).await, invalidation(&on_cluster).await);
    println!(
        "{:<52} {:>10.1}µs {:>10.1}µs {:>8.2}",
        "tag invalidation, median of 500 (latency)",
        a * 1e6,
        b * 1e6,
        b / a
    );

    let two_level = builder()
        .redis_cluster(&cluster.urls())
        .unwrap()
        .prefix("bench:hot")
        .unwrap()
        .local_cache(64 << 20)
        .build();
    // The bus starts on first use and vouches for the layer once it has listened a moment.
    plain(&two_level, 7).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hot_standalone = hot_key(&standalone).await;
    let hot_cluster = hot_key(&on_cluster).await;
    let hot_two_level = hot_key(&two_level).await;
    println!(
        "\n{:<52} {:>12}\n{:<52} {:>12.0}\n{:<52} {:>12.0} {:>8.2}\n{:<52} {:>12.0} {:>8.2}",
        "one hot key, 64 tasks (ops/s)",
        "",
        "standalone",
        hot_standalone,
        "cluster (every read on the key's one master)",
        hot_cluster,
        hot_cluster / hot_standalone,
        "two-level on the cluster (reads in process memory)",
        hot_two_level,
        hot_two_level / hot_standalone,
    );
}
