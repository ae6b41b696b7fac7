//! In-process single flight: concurrent misses of one key run the body once.
//!
//! The first caller to miss a key becomes its *leader* and loads; the others
//! wait for the leader's [`FlightOutcome`]. A leader that panics or is cancelled
//! drops its [`LeaderGuard`], which tells the waiters to retry, so one of them
//! takes over. The registry is sharded by key hash; a shard's lock also makes a
//! leader's store atomic with invalidation of the same key (see [`LeaderGuard::finish`]).

use std::any::Any;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

const SHARDS: usize = 16;

/// A loaded value, shared with waiting callers.
pub(crate) type SharedValue = Arc<dyn Any + Send + Sync>;

/// What a finished flight tells its waiters.
#[derive(Clone)]
pub(crate) enum FlightOutcome {
    /// The value is in the cache: read it from there.
    Stored,
    /// The value is current but could not be stored (too large, cache down): take it.
    Unstored(SharedValue),
    /// No usable value (the load failed, was cancelled or was invalidated): try again.
    Retry,
}

struct Flight {
    /// Set under the shard lock when the key is invalidated during the load.
    doomed: bool,
    outcome: watch::Sender<Option<FlightOutcome>>,
}

type Shard = Mutex<HashMap<Box<[u8]>, Flight>>;

/// The registry of loads in progress, one per key.
pub(crate) struct SingleFlight {
    shards: Box<[Shard]>,
    hasher: foldhash::fast::FixedState,
}

/// Whether the caller leads the load of a key or waits for another's.
pub(crate) enum Role<'a> {
    Leader(LeaderGuard<'a>),
    Waiter(watch::Receiver<Option<FlightOutcome>>),
}

impl SingleFlight {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, HashMap<Box<[u8]>, Flight>> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        // A panic while holding the lock cannot leave the map inconsistent.
        self.shards[index].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the flight of `key`, leading it when there is none.
    pub(crate) fn join(&self, key: &[u8]) -> Role<'_> {
        let mut flights = self.shard(key);
        if let Some(flight) = flights.get(key) {
            return Role::Waiter(flight.outcome.subscribe());
        }
        let (outcome, _) = watch::channel(None);
        flights.insert(key.into(), Flight { doomed: false, outcome });
        Role::Leader(LeaderGuard { registry: self, key: key.into(), finished: false })
    }

    /// Marks a load in progress of `key` as stale, then runs `invalidate`, both
    /// under the key's shard lock, so the leader's store cannot slip between.
    pub(crate) fn doom(&self, key: &[u8], invalidate: impl FnOnce()) {
        let mut flights = self.shard(key);
        if let Some(flight) = flights.get_mut(key) {
            flight.doomed = true;
        }
        invalidate();
    }

    /// Number of loads in progress (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len()).sum()
    }
}

/// Held by the caller that loads a key; dropping it unfinished releases the waiters.
pub(crate) struct LeaderGuard<'a> {
    registry: &'a SingleFlight,
    key: Box<[u8]>,
    finished: bool,
}

impl LeaderGuard<'_> {
    /// Ends the flight. Under the key's shard lock, `store` is told whether the
    /// key was invalidated during the load and returns the outcome for waiters.
    pub(crate) fn finish(mut self, store: impl FnOnce(bool) -> FlightOutcome) {
        self.finished = true;
        let mut flights = self.registry.shard(&self.key);
        if let Some(flight) = flights.remove(&self.key) {
            let outcome = store(flight.doomed);
            flight.outcome.send_replace(Some(outcome));
        }
    }
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let flight = self.registry.shard(&self.key).remove(&self.key);
        if let Some(flight) = flight {
            flight.outcome.send_replace(Some(FlightOutcome::Retry));
        }
    }
}

/// Waits for the leader's outcome; a vanished leader means [`FlightOutcome::Retry`].
pub(crate) async fn wait(mut waiter: watch::Receiver<Option<FlightOutcome>>) -> FlightOutcome {
    match waiter.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone().unwrap_or(FlightOutcome::Retry),
        Err(_) => FlightOutcome::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_caller_waits_for_the_first() {
        let flights = SingleFlight::new();
        let Role::Leader(leader) = flights.join(b"k") else { panic!("first caller must lead") };
        let Role::Waiter(waiter) = flights.join(b"k") else { panic!("second caller must wait") };
        leader.finish(|doomed| {
            assert!(!doomed);
            FlightOutcome::Stored
        });
        assert!(matches!(wait(waiter).await, FlightOutcome::Stored));
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn dropped_leader_releases_waiters() {
        let flights = SingleFlight::new();
        let leader = flights.join(b"k");
        let Role::Waiter(waiter) = flights.join(b"k") else { panic!("must wait") };
        drop(leader);
        assert!(matches!(wait(waiter).await, FlightOutcome::Retry));
        assert!(matches!(flights.join(b"k"), Role::Leader(_)));
    }

    #[tokio::test]
    async fn doom_is_seen_by_the_leader() {
        let flights = SingleFlight::new();
        let Role::Leader(leader) = flights.join(b"k") else { panic!("must lead") };
        let mut ran = false;
        flights.doom(b"k", || ran = true);
        assert!(ran);
        leader.finish(|doomed| {
            assert!(doomed);
            FlightOutcome::Retry
        });
    }
}
