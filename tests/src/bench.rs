//! What the benchmarks share: a typical row, the `#[cached]` functions that
//! serve it, their settings and a throughput meter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, cached};
use serde::{Deserialize, Serialize};

/// Tasks calling at once.
pub const TASKS: u64 = 64;
/// How long one round lasts.
pub const ROUND: Duration = Duration::from_secs(2);
/// Rounds per figure (the median is reported).
pub const ROUNDS: u64 = 3;

/// A typical row: 148 bytes of data (ids, three short strings, a timestamp),
/// so every clone allocates.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Profile {
    /// Primary key.
    pub id: u64,
    /// Organisation.
    pub org_id: u64,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// Free text.
    pub bio: String,
    /// Creation time.
    pub created_ms: u64,
    /// A number.
    pub score: u32,
}

/// The row of user `id`.
#[must_use]
pub fn profile(id: u64) -> Profile {
    Profile {
        id,
        org_id: id % 100,
        name: format!("User Number {id:08}"),
        email: format!("user.number.{id:08}@example.com"),
        bio: "Likes caches, benchmarks and well-kept crates; writes Rust daily.".to_owned(),
        created_ms: 1_700_000_000_000 + id,
        score: 42,
    }
}

/// The median of `values` (0 for none).
#[must_use]
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Median operations per second of `op(i)` run by `tasks` tasks for `rounds`
/// rounds of `round`; each task counts `i` up from its own start.
///
/// # Panics
/// When a task panics.
pub async fn throughput<F, Fut>(tasks: u64, rounds: u64, round: Duration, op: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut per_round = Vec::new();
    for round_index in 0..rounds {
        let done = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + round;
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let (op, done) = (op.clone(), Arc::clone(&done));
                tokio::spawn(async move {
                    let mut i = (round_index * tasks + task) << 32;
                    while Instant::now() < deadline {
                        op(i).await;
                        i += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("benchmark task");
        }
        per_round.push(done.load(Ordering::Relaxed) as f64 / round.as_secs_f64());
    }
    median(per_round)
}

/// The row of `id`, cached without tags.
#[cached(key = "profile:<id>", ttl = 3600, cache = cache, skip = [cache])]
pub async fn plain(cache: &Cache, id: u64) -> Profile {
    profile(id)
}

/// The row of `id`, cached with three tags.
#[cached(key = "tagged:<id>", ttl = 3600, tags = ["org:<org>", "team:<team>", "all"], cache = cache, skip = [cache])]
pub async fn three_tags(cache: &Cache, id: u64, org: u64, team: u64) -> Profile {
    let _ = (org, team);
    profile(id)
}

/// The row of `id` under keys the benchmarks never repeat: every call misses.
#[cached(key = "fresh:<id>", ttl = 3600, cache = cache, skip = [cache])]
pub async fn always_missing(cache: &Cache, id: u64) -> Profile {
    profile(id)
}
