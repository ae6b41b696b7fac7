//! Tags a body learns while it loads: [`add_tag`].

use std::cell::RefCell;
use std::pin::Pin;
use std::time::Duration;

use tokio::task::futures::TaskLocalFuture;

use crate::cache::Cache;
use crate::call::{TAG, dependency_name};
use crate::store::Store;

tokio::task_local! {
    /// The load the current body runs for.
    static LEARNING: RefCell<Learning>;
}

/// A load's cache, and what its body learned.
pub(crate) struct Learning {
    cache: Cache,
    /// How long the learned counters must outlive the read of their generation.
    keep_for: Duration,
    learned: Learned,
}

/// The tags (counter names) a load learned and the generations it read.
#[derive(Default)]
pub(crate) struct Learned {
    pub(crate) names: Vec<String>,
    pub(crate) generations: Vec<u64>,
    /// A generation could not be read: nothing vouches for the value.
    pub(crate) failed: bool,
}

/// Runs `body` so that [`add_tag`] in it adds to this load of `cache`; the
/// counters it reads are kept at least `keep_for`.
pub(crate) fn scope<F: Future>(
    cache: &Cache,
    keep_for: Duration,
    body: F,
) -> TaskLocalFuture<RefCell<Learning>, F> {
    let learning = Learning { cache: cache.clone(), keep_for, learned: Learned::default() };
    LEARNING.scope(RefCell::new(learning), body)
}

/// What the body of a [`scope`] learned, once it has run.
pub(crate) fn take<F: Future>(scope: Pin<&mut TaskLocalFuture<RefCell<Learning>, F>>) -> Learned {
    scope.take_value().map(|learning| learning.into_inner().learned).unwrap_or_default()
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
    let name = dependency_name(TAG, tag);
    let Ok((cache, keep_for, known)) = LEARNING.try_with(|learning| {
        let learning = learning.borrow();
        (learning.cache.clone(), learning.keep_for, learning.learned.names.contains(&name))
    }) else {
        return;
    };
    if known {
        return;
    }
    let observed = cache.inner.store.observe(&name, keep_for).await;
    let _ = LEARNING.try_with(|learning| {
        let learned = &mut learning.borrow_mut().learned;
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
    });
}
