//! Tags a body learns while it loads: [`add_tag`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::cache::Cache;
use crate::call::{TAG, dependency_name};
use crate::store::Store;

tokio::task_local! {
    /// The load the current body runs for.
    static LEARNING: Learning;
}

/// What a load learns: its cache, and the tags with their generations.
#[derive(Clone)]
pub(crate) struct Learning {
    cache: Cache,
    /// How long the learned counters must outlive the read of their generation.
    keep_for: Duration,
    learned: Arc<Mutex<Learned>>,
}

/// The tags (counter names) a load learned and the generations it read.
#[derive(Default)]
pub(crate) struct Learned {
    pub(crate) names: Vec<String>,
    pub(crate) generations: Vec<u64>,
    /// A generation could not be read: nothing vouches for the value.
    pub(crate) failed: bool,
}

impl Learning {
    pub(crate) fn new(cache: &Cache, keep_for: Duration) -> Self {
        Self { cache: cache.clone(), keep_for, learned: Arc::default() }
    }

    /// Runs `body` so that [`add_tag`] in it adds to this load.
    pub(crate) fn scope<F: Future>(&self, body: F) -> impl Future<Output = F::Output> {
        LEARNING.scope(self.clone(), body)
    }

    /// What the body learned.
    pub(crate) fn take(&self) -> Learned {
        std::mem::take(&mut *self.learned.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Adds `tag` (`"team:3"`, as [`Cache::invalidate_tag`] names it) to the
/// entry the current `#[cached]` body loads, reading the tag's generation
/// now: tags learned from the loaded row, where the attribute's `tags` are
/// rendered from parameters.
///
/// A profile keyed by the user's id depends on the user's team, which the
/// body learns from the row it reads. Rendering `team:<team_id>` from the
/// parameters would need the team first (a second lookup); instead the body
/// declares the tag as soon as it knows it:
///
/// ```
/// use cache_runtime::{add_tag, cached};
///
/// # struct Db;
/// # impl Db {
/// #     async fn user_team(&self, id: u64) -> u64 { id % 10 }
/// #     async fn team_members(&self, team: u64) -> Vec<u64> { vec![team] }
/// # }
/// #[cached(key = "profile:<id>", ttl = 300, skip = [db])]
/// async fn profile(db: &Db, id: u64) -> Vec<u64> {
///     let team = db.user_team(id).await;
///     // Before reading what the tag covers:
///     add_tag(&format!("team:{team}")).await;
///     db.team_members(team).await
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert_eq!(profile(&Db, 13).await, [3]);
/// cache_runtime::Cache::default_cache().invalidate_tag("team:3").await.unwrap(); // drops it
/// # });
/// ```
///
/// The entry is stored under the learned tags with the attribute's:
/// invalidating one drops it, in every process, and an invalidation that
/// comes between `add_tag` and the store keeps the load's value out of the
/// cache, as for any tag. That holds for what the body reads *after*
/// `add_tag`: call it before reading the data the tag covers.
///
/// - On Redis, reading the tag's generation is one round trip, and a hit on
///   such an entry reads the learned tags' counters in a second one.
/// - A two-level cache keeps such entries in Redis only: its in-process
///   layer knows the attribute's tags, not the learned ones.
/// - If the generation cannot be read (Redis is down), the value is returned
///   to its caller but not stored.
/// - Outside a body that stores its value (a hit, a load while the cache is
///   unavailable, plain code), it does nothing.
pub async fn add_tag(tag: &str) {
    let Ok(learning) = LEARNING.try_with(Clone::clone) else { return };
    let name = dependency_name(TAG, tag);
    {
        let learned = learning.learned.lock().unwrap_or_else(PoisonError::into_inner);
        if learned.names.contains(&name) {
            return;
        }
    }
    let observed = learning.cache.inner.store.observe(&name, learning.keep_for).await;
    let mut learned = learning.learned.lock().unwrap_or_else(PoisonError::into_inner);
    match observed {
        Ok(generation) => {
            learned.names.push(name);
            learned.generations.push(generation);
        }
        Err(error) => {
            tracing::debug!(%error, tag, "learned tag not read: the value will not be stored");
            learned.failed = true;
        }
    }
}
