//! Pre-warming: loading entries before callers ask for them.
//!
//! [`refresh`] runs a `#[cached]` call so that it loads and stores its value
//! even when a fresh entry exists (the seed's "pre-warm critical keys in
//! background jobs"), with the call's own single flight, lease and no-stale-set
//! rules; [`Warmer`] runs such refreshes on an interval in the background.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

tokio::task_local! {
    /// Set while a future runs under [`refresh`], until its first `#[cached]` call takes it.
    static REFRESHING: Cell<bool>;
}

/// Runs `call`, whose first `#[cached]` call loads its value (runs the body)
/// even when a fresh entry exists, stores it, and returns it. Calls made by
/// that body are served as usual.
///
/// ```
/// use cache_runtime::{cached, refresh};
///
/// #[cached(key = "rates:<currency>", ttl = 300)]
/// async fn rates(currency: String) -> Vec<u32> { vec![1, 2, 3] } // the slow query
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let fresh = refresh(rates("EUR".into())).await; // loads and stores, whatever is cached
/// assert_eq!(rates("EUR".into()).await, fresh);   // a hit
/// # });
/// ```
pub async fn refresh<F: Future>(call: F) -> F::Output {
    REFRESHING.scope(Cell::new(true), call).await
}

/// Whether this `#[cached]` call must load (it runs under [`refresh`] and is its first).
pub(crate) fn take_refresh() -> bool {
    REFRESHING.try_with(|flag| flag.replace(false)).unwrap_or(false)
}

/// Runs a warming job on an interval in the background until dropped.
///
/// Each run is a task of its own: one that panics is logged and the next runs
/// on time; one that takes longer than the period delays the next.
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::{Warmer, cached, refresh};
///
/// #[cached(key = "top_products", ttl = 60)]
/// async fn top_products() -> Vec<u64> { vec![7, 3, 9] } // the slow query
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// // Reloads the entry every 50 seconds, so callers never wait for the query.
/// let warmer = Warmer::every(Duration::from_secs(50), || async {
///     refresh(top_products()).await;
/// })
/// .expect("inside a tokio runtime");
/// drop(warmer); // stops it
/// # });
/// ```
#[must_use = "the job stops when the `Warmer` is dropped"]
pub struct Warmer {
    task: tokio::task::JoinHandle<()>,
}

impl Warmer {
    /// Runs `job` now, then every `period` (at least a millisecond).
    ///
    /// # Errors
    /// When called outside a tokio runtime.
    pub fn every<J, F>(period: Duration, mut job: J) -> Result<Self, tokio::runtime::TryCurrentError>
    where
        J: FnMut() -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current()?;
        let spawner = runtime.clone();
        let task = runtime.spawn(async move {
            let mut ticks = tokio::time::interval(period.max(Duration::from_millis(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(error) = spawner.spawn(job()).await {
                    tracing::error!(%error, "a cache warming job failed");
                }
            }
        });
        Ok(Self { task })
    }
}

impl Drop for Warmer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
