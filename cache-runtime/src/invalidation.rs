//! Invalidation: keys, tags and versions, in process and in the store.
//!
//! In process, the flights an invalidation concerns are doomed first, so a
//! call that starts after the invalidation returned never joins a load that
//! began before it. Then the store applies it: in memory at once; on Redis in
//! one round trip, sent from a task of its own so that a caller cancelled
//! halfway cannot cut it off. Until Redis has taken it (or it is given up),
//! the invalidation [fences](crate::store::fence) this process: the reads it
//! covers bypass the stored entries and store nothing, so the process that
//! wrote never reads the old value, however long Redis takes. What Redis does not take is retried in the
//! background with backoff (from 5 ms, doubling, at most 5 s apart, and at
//! once when a circuit breaker of the store closes again), ignoring the
//! circuit breaker, [`CacheBuilder::invalidation_attempts`] times in all;
//! pending ones are counted in [`CacheStatus::pending_invalidations`], and one
//! given up is logged at error level and counted in
//! `cache_invalidation_failures_total`.
//!
//! [`CacheBuilder::invalidation_attempts`]: crate::CacheBuilder::invalidation_attempts
//! [`CacheStatus::pending_invalidations`]: crate::CacheStatus::pending_invalidations

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cache::Cache;
use crate::observe;
use crate::store::fence::Raised;
use crate::store::{CacheError, Store, Targets, Urgency};

/// Applies `targets`; `Err` when the store did not take them at once (they
/// are then retried in the background).
pub(crate) async fn invalidate(cache: &Cache, targets: Targets) -> Result<(), CacheError> {
    let keys: Vec<&[u8]> = targets.keys.iter().map(crate::KeyWriter::as_bytes).collect();
    cache.inner.flights.doom(&keys, &targets.dependencies);
    let store = &cache.inner.store;
    if !store.is_remote() {
        return store.invalidate(&targets, Urgency::Normal).await;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        let outcome = store.invalidate(&targets, Urgency::Normal).await;
        if let Err(error) = &outcome {
            tracing::error!(%error, "invalidation lost: Redis did not take it and there is no runtime to retry on");
            metrics::counter!(observe::INVALIDATION_FAILURES).increment(1);
        }
        return outcome;
    };
    let raised = store.fence().raise(&targets);
    let (first_attempt, outcome) = tokio::sync::oneshot::channel();
    runtime.spawn(apply(cache.clone(), targets, raised, first_attempt));
    // The task reports its first attempt, then retries on its own.
    outcome.await.unwrap_or(Err(CacheError::BreakerOpen))
}

/// The wait before the first retry; each next one waits twice as long.
const FIRST_RETRY: Duration = Duration::from_millis(5);
/// The longest wait between two retries.
const LONGEST_RETRY_WAIT: Duration = Duration::from_secs(5);

/// Waits `delay`, or less if the store answers again after an outage meanwhile.
async fn until_retry(recovered: Option<&tokio::sync::Notify>, delay: Duration) {
    let Some(recovered) = recovered else {
        return tokio::time::sleep(delay).await;
    };
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = recovered.notified() => {}
    }
}

/// Whether the store took an invalidation: applied, announced or not (a
/// refused announcement is said as a misconfiguration, not retried).
fn taken(outcome: &Result<(), CacheError>) -> bool {
    outcome.as_ref().map_or_else(CacheError::applied, |()| true)
}

/// Sends `targets` to the store, reports the first attempt, retries until
/// taken; the fence stays `raised` until then.
async fn apply(
    cache: Cache,
    targets: Targets,
    raised: Raised,
    first_attempt: tokio::sync::oneshot::Sender<Result<(), CacheError>>,
) {
    let store = &cache.inner.store;
    let first = store.invalidate(&targets, Urgency::Normal).await;
    if taken(&first) {
        drop(raised);
        let _ = first_attempt.send(first);
        return;
    }
    let _ = first_attempt.send(first);
    let pending = &cache.inner.pending_invalidations;
    pending.fetch_add(1, Ordering::Relaxed);
    metrics::gauge!(observe::INVALIDATIONS_PENDING).increment(1.0);
    let mut delay = FIRST_RETRY;
    let mut applied = false;
    for attempt in 2..=cache.inner.invalidation_attempts {
        until_retry(store.recovered(), delay).await;
        metrics::counter!(observe::INVALIDATION_RETRIES).increment(1);
        let outcome = store.invalidate(&targets, Urgency::Forced).await;
        if taken(&outcome) {
            tracing::info!(attempt, ?outcome, "invalidation applied after a retry");
            applied = true;
            break;
        }
        if let Err(error) = outcome {
            tracing::warn!(attempt, %error, "invalidation attempt failed");
        }
        delay = (delay * 2).min(LONGEST_RETRY_WAIT);
    }
    drop(raised);
    pending.fetch_sub(1, Ordering::Relaxed);
    metrics::gauge!(observe::INVALIDATIONS_PENDING).decrement(1.0);
    if !applied {
        tracing::error!(
            keys = targets.keys.len(),
            dependencies = targets.dependencies.len(),
            "invalidation lost: Redis unreachable after every attempt; the fence is lifted and entries stay until their TTL"
        );
        metrics::counter!(observe::INVALIDATION_FAILURES).increment(1);
    }
}
