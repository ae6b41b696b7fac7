//! In-process single flight: concurrent misses of one key run the body once.
//!
//! The first caller to miss a key leads its *flight* and loads; the others wait
//! for the leader's [`Outcome`]. A leader that panics or is cancelled drops its
//! [`FlightGuard`], which tells the waiters to retry, so one of them takes over;
//! a leader whose load failed tells them so, and they all stop waiting at once.
//!
//! An invalidation *dooms* the flights it concerns (by key, or by a tag or
//! version the flight's entry depends on): a caller that arrives afterwards
//! starts a new flight instead of joining the doomed one, so it never gets a
//! value loaded before the invalidation; the doomed leader's waiters are told
//! to retry.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use crate::value::SharedValue;

const SHARDS: usize = 16;

/// What a finished flight tells its waiters.
#[derive(Clone)]
pub(crate) enum Outcome {
    /// The value is in the store: read it from there.
    Stored,
    /// The value is current but could not be stored (too large, store down): take it.
    Unstored(SharedValue),
    /// The load failed (`Err`, `None`), or nothing vouches for its value: do
    /// not wait for another leader, run your own body.
    Failed,
    /// No usable value (cancelled, panicked, invalidated): try again.
    Retry,
}

struct Flight {
    id: u64,
    /// Set when the key, or a tag or version of its entry, is invalidated during the load.
    doomed: bool,
    dependencies: Box<[String]>,
    outcome: watch::Sender<Option<Outcome>>,
}

type Shard = Mutex<HashMap<Box<[u8]>, Flight>>;

/// The registry of loads in progress, one per key.
pub(crate) struct SingleFlight {
    shards: Box<[Shard]>,
    hasher: foldhash::fast::FixedState,
    next_id: AtomicU64,
}

/// Whether the caller leads the load of a key or waits for another's.
pub(crate) enum Role<'a> {
    Leader(FlightGuard<'a>),
    Waiter(watch::Receiver<Option<Outcome>>),
}

impl SingleFlight {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::FixedState::default(),
            next_id: AtomicU64::new(1),
        }
    }

    fn shard(&self, key: &[u8]) -> MutexGuard<'_, HashMap<Box<[u8]>, Flight>> {
        let index = (self.hasher.hash_one(key) as usize) % SHARDS;
        lock(&self.shards[index])
    }

    /// Joins the flight of `key`, leading a new one when there is none or the
    /// current one is doomed. `dependencies` are the entry's counter names.
    pub(crate) fn join(&self, key: &[u8], dependencies: &[String]) -> Role<'_> {
        let mut flights = self.shard(key);
        if let Some(flight) = flights.get(key)
            && !flight.doomed
        {
            return Role::Waiter(flight.outcome.subscribe());
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (outcome, _) = watch::channel(None);
        // A doomed flight replaced here drops its sender: its waiters retry.
        flights.insert(key.into(), Flight { id, doomed: false, dependencies: dependencies.into(), outcome });
        Role::Leader(FlightGuard { registry: self, key: key.into(), id, finished: false })
    }

    /// Whether a load of `key` is in progress.
    pub(crate) fn is_loading(&self, key: &[u8]) -> bool {
        self.shard(key).get(key).is_some_and(|flight| !flight.doomed)
    }

    /// Dooms the flights of `keys`, and those whose entry depends on one of
    /// `dependencies`.
    pub(crate) fn doom(&self, keys: &[&[u8]], dependencies: &[String]) {
        for key in keys {
            if let Some(flight) = self.shard(key).get_mut(*key) {
                flight.doomed = true;
            }
        }
        if dependencies.is_empty() {
            return;
        }
        for shard in &self.shards {
            for flight in lock(shard).values_mut() {
                if flight.dependencies.iter().any(|name| dependencies.contains(name)) {
                    flight.doomed = true;
                }
            }
        }
    }

    /// Dooms every flight in progress (the cache was cleared).
    pub(crate) fn doom_all(&self) {
        for shard in &self.shards {
            for flight in lock(shard).values_mut() {
                flight.doomed = true;
            }
        }
    }

    /// Number of loads in progress.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }
}

fn lock(shard: &Shard) -> MutexGuard<'_, HashMap<Box<[u8]>, Flight>> {
    // A panic while holding the lock cannot leave the map inconsistent.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Held by the caller that loads a key; dropping it unfinished releases the waiters.
pub(crate) struct FlightGuard<'a> {
    registry: &'a SingleFlight,
    key: Box<[u8]>,
    id: u64,
    finished: bool,
}

impl FlightGuard<'_> {
    /// Ends the flight with `outcome`, or with [`Outcome::Retry`] if it was
    /// doomed meanwhile and the outcome would hand out its value.
    pub(crate) fn finish(mut self, outcome: Outcome) {
        self.finished = true;
        self.end(outcome);
    }

    fn end(&self, outcome: Outcome) {
        let mut flights = self.registry.shard(&self.key);
        if flights.get(&self.key).is_some_and(|flight| flight.id == self.id)
            && let Some(flight) = flights.remove(&self.key)
        {
            let outcome = match outcome {
                Outcome::Stored | Outcome::Unstored(_) if flight.doomed => Outcome::Retry,
                other => other,
            };
            flight.outcome.send_replace(Some(outcome));
        }
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.end(Outcome::Retry);
        }
    }
}

/// Waits for the leader's outcome; a vanished leader means [`Outcome::Retry`].
pub(crate) async fn wait(mut waiter: watch::Receiver<Option<Outcome>>) -> Outcome {
    match waiter.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone().unwrap_or(Outcome::Retry),
        Err(_) => Outcome::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_caller_waits_for_the_first() {
        let flights = SingleFlight::new();
        let Role::Leader(leader) = flights.join(b"k", &[]) else { panic!("first caller must lead") };
        let Role::Waiter(waiter) = flights.join(b"k", &[]) else { panic!("second caller must wait") };
        leader.finish(Outcome::Stored);
        assert!(matches!(wait(waiter).await, Outcome::Stored));
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn dropped_leader_releases_waiters() {
        let flights = SingleFlight::new();
        let leader = flights.join(b"k", &[]);
        let Role::Waiter(waiter) = flights.join(b"k", &[]) else { panic!("must wait") };
        drop(leader);
        assert!(matches!(wait(waiter).await, Outcome::Retry));
        assert!(matches!(flights.join(b"k", &[]), Role::Leader(_)));
    }

    #[tokio::test]
    async fn a_doomed_flight_is_not_joined_and_hands_out_nothing() {
        let flights = SingleFlight::new();
        let deps = ["t:org:1".to_owned()];
        let Role::Leader(old) = flights.join(b"k", &deps) else { panic!("must lead") };
        let Role::Waiter(early) = flights.join(b"k", &deps) else { panic!("must wait") };
        flights.doom(&[], &["t:org:1".to_owned()]);
        let Role::Leader(new) = flights.join(b"k", &deps) else { panic!("a doomed flight is not joined") };
        assert!(matches!(wait(early).await, Outcome::Retry), "the doomed flight's waiters retry");
        old.finish(Outcome::Stored); // no longer registered: changes nothing
        let Role::Waiter(late) = flights.join(b"k", &deps) else { panic!("the new flight is joined") };
        new.finish(Outcome::Stored);
        assert!(matches!(wait(late).await, Outcome::Stored));
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn doom_by_key_spares_other_keys() {
        let flights = SingleFlight::new();
        let Role::Leader(a) = flights.join(b"a", &[]) else { panic!("must lead") };
        let Role::Leader(_b) = flights.join(b"b", &[]) else { panic!("must lead") };
        flights.doom(&[b"a"], &[]);
        assert!(matches!(flights.join(b"b", &[]), Role::Waiter(_)));
        assert!(matches!(flights.join(b"a", &[]), Role::Leader(_)));
        drop(a);
    }
}
