//! `#[cached]` against its peers, in one run: the `cached` crate's `#[cached]`
//! in memory and its async Redis store, and hand-written redis-rs cache-aside. Starts its own `redis-server` on a free port.
//!
//! Run: `cargo bench -p examples --bench peers`. Figures are medians of three
//! rounds of 2 s, 64 tasks on 2 worker threads; ratios compare within the run.

use std::sync::Arc;
use std::time::Duration;

use cache_runtime::redis::{self, AsyncCommands};
use cache_tests::bench::{Profile, profile};

const TASKS: u64 = 64;
const ROUNDS: u64 = 3;
const ROUND: Duration = Duration::from_secs(2);
const HOT_KEYS: u64 = 1_000;

#[cache_runtime::cached(key = "mem:<id>", ttl = 3600)]
async fn ours_memory(id: u64) -> Profile {
    profile(id)
}

#[cached::macros::cached(ttl_secs = 3600, max_size = 1_000_000)]
async fn theirs_memory(id: u64) -> Profile {
    profile(id)
}

#[cache_runtime::cached(key = "redis:<id>", ttl = 3600, cache = cache, skip = [cache])]
async fn ours_redis(cache: &cache_runtime::Cache, id: u64) -> Profile {
    profile(id)
}

/// The `cached` crate's async Redis store, used cache-aside.
async fn theirs_redis(store: &cached::AsyncRedisCache<u64, Profile>, id: u64) -> Profile {
    use cached::ConcurrentCachedAsync as _;
    if let Ok(Some(value)) = store.async_cache_get(&id).await {
        return value;
    }
    let value = profile(id);
    let _ = store.async_cache_set(id, value.clone()).await;
    value
}

/// Hand-written cache-aside: `GET`, on a miss compute and `SET EX`.
async fn hand_written(connection: &mut redis::aio::ConnectionManager, id: u64) -> Profile {
    let key = format!("hand:{id}");
    if let Ok(Some(bytes)) = connection.get::<_, Option<Vec<u8>>>(&key).await
        && let Ok(value) = postcard::from_bytes(&bytes)
    {
        return value;
    }
    let value = profile(id);
    if let Ok(bytes) = postcard::to_stdvec(&value) {
        let _: Result<(), _> = connection.set_ex(&key, bytes, 3600).await;
    }
    value
}

async fn throughput<F, Fut>(op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    cache_tests::bench::throughput(TASKS, ROUNDS, ROUND, op).await
}

fn row(label: &str, ops: f64, baseline: f64) {
    println!("{label:<56} {ops:>12.0} {:>8.2}", ops / baseline);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("{TASKS} tasks, {ROUNDS} rounds of {ROUND:?}, median ops/s; ratio against the `cached` crate\n");
    for id in 0..HOT_KEYS {
        ours_memory(id).await;
        theirs_memory(id).await;
    }
    let theirs = throughput(|i| async move {
        std::hint::black_box(theirs_memory(i % HOT_KEYS).await);
    })
    .await;
    let ours = throughput(|i| async move {
        std::hint::black_box(ours_memory(i % HOT_KEYS).await);
    })
    .await;
    println!("{:<56} {:>12} {:>8}", "in memory, hits over 1,000 keys", "ops/s", "ratio");
    row("cached 4.1 #[cached]", theirs, theirs);
    row("cache-runtime #[cached]", ours, theirs);

    let theirs = throughput(|i| async move {
        std::hint::black_box(theirs_memory(i).await);
    })
    .await;
    let ours = throughput(|i| async move {
        std::hint::black_box(ours_memory(i).await);
    })
    .await;
    println!("\n{:<56} {:>12} {:>8}", "in memory, misses of distinct keys", "ops/s", "ratio");
    row("cached 4.1 #[cached]", theirs, theirs);
    row("cache-runtime #[cached] (single flight, weighed store)", ours, theirs);

    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
    let Ok(port) = port else { return };
    let Ok(mut server) = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
    else {
        println!("\nredis-server not installed: Redis comparisons skipped");
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let Ok(store) = cached::AsyncRedisCache::<u64, Profile>::builder("peers-cached")
        .connection_string(&url)
        .ttl_secs(3600)
        .connection_manager(true)
        .build()
        .await
    else {
        println!("cannot connect the cached crate's store: Redis comparisons skipped");
        return;
    };
    let store = Arc::new(store);
    let cache =
        cache_runtime::Cache::builder().redis(&url).expect("url").prefix("peers").expect("prefix").build();
    let client = redis::Client::open(url.as_str()).expect("url");
    let connection = client.get_connection_manager().await.expect("connect");
    for id in 0..HOT_KEYS {
        ours_redis(&cache, id).await;
        theirs_redis(&store, id).await;
        hand_written(&mut connection.clone(), id).await;
    }
    let theirs = {
        let store = Arc::clone(&store);
        throughput(move |i| {
            let store = Arc::clone(&store);
            async move {
                std::hint::black_box(theirs_redis(&store, i % HOT_KEYS).await);
            }
        })
        .await
    };
    let hand = {
        let connection = connection.clone();
        throughput(move |i| {
            let mut connection = connection.clone();
            async move {
                std::hint::black_box(hand_written(&mut connection, i % HOT_KEYS).await);
            }
        })
        .await
    };
    let ours = {
        let cache = cache.clone();
        throughput(move |i| {
            let cache = cache.clone();
            async move {
                std::hint::black_box(ours_redis(&cache, i % HOT_KEYS).await);
            }
        })
        .await
    };
    println!("\n{:<56} {:>12} {:>8}", "Redis, hits over 1,000 keys", "ops/s", "ratio");
    row("cached 4.1 AsyncRedisCache get (set on a miss)", theirs, theirs);
    row("hand-written redis-rs GET + postcard decode", hand, theirs);
    row("cache-runtime #[cached] on Redis", ours, theirs);
    let _ = server.kill();
    let _ = server.wait();
}
