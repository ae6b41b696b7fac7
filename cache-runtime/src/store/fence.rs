//! The fence of a pending invalidation: until the store has taken an
//! invalidation, the process that issued it reads nothing it covers.
//!
//! An invalidation of a remote store is raised on the [`Fence`] before its
//! first attempt and lowered when the store took it or it was given up. While
//! it is raised, every read of this process that it covers (its keys; any
//! entry under one of its tags or versions) bypasses the stored entries in
//! every layer, and no load it covers is stored: the writing process never
//! reads the old value, whatever Redis does meanwhile. [`FencedStore`] is
//! where the engine meets the fence, so every entry point has it.
//!
//! When nothing is pending, a read pays one atomic load. The fence holds at
//! most [`MAX_FENCED_BYTES`] of names: past that, a further invalidation
//! fences every read until it is lowered.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::{
    AnyStore, CacheError, Commit, Fill, Found, LayerStatus, MemoryEntry, ReleaseWatch, Request, Store,
    Targets, Ticket, Urgency,
};
use crate::key::KeyWriter;

/// Most bytes of key and counter names the fence holds.
pub(crate) const MAX_FENCED_BYTES: usize = 4 * 1024 * 1024;
/// What a name costs besides its bytes (the map's slot and allocation).
const NAME_OVERHEAD: usize = 64;

/// The pending invalidations of one cache, in this process.
#[derive(Default)]
pub(crate) struct Fence {
    /// Invalidations raised and not lowered.
    raised: AtomicUsize,
    table: Mutex<Table>,
}

/// What the raised invalidations cover, counted (two may cover one name).
#[derive(Default)]
struct Table {
    keys: HashMap<Box<[u8]>, usize>,
    dependencies: HashMap<String, usize>,
    /// Invalidations that did not fit: they cover everything.
    everything: usize,
    bytes: usize,
}

/// A raised invalidation; dropping it lowers it.
pub(crate) struct Raised {
    fence: Arc<Fence>,
    /// `None`: it covers everything.
    names: Option<Names>,
}

/// The keys and dependencies of a raised invalidation.
struct Names {
    keys: Vec<Box<[u8]>>,
    dependencies: Vec<String>,
}

impl Fence {
    /// Raises an invalidation of `targets` until the returned guard is dropped.
    pub(crate) fn raise(self: &Arc<Self>, targets: &Targets) -> Raised {
        let keys: Vec<Box<[u8]>> = targets.keys.iter().map(|key| key.as_bytes().into()).collect();
        let dependencies = targets.dependencies.clone();
        let bytes = keys.iter().map(|key| key.len() + NAME_OVERHEAD).sum::<usize>()
            + dependencies.iter().map(|name| name.len() + NAME_OVERHEAD).sum::<usize>();
        let mut table = self.table();
        let names = if table.bytes + bytes > MAX_FENCED_BYTES {
            table.everything += 1;
            None
        } else {
            table.bytes += bytes;
            for key in &keys {
                *table.keys.entry(key.clone()).or_default() += 1;
            }
            for name in &dependencies {
                *table.dependencies.entry(name.clone()).or_default() += 1;
            }
            Some(Names { keys, dependencies })
        };
        self.raised.fetch_add(1, Ordering::SeqCst);
        drop(table);
        Raised { fence: Arc::clone(self), names }
    }

    /// Whether any invalidation is pending: one atomic load.
    #[inline]
    pub(crate) fn raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst) != 0
    }

    /// Whether a pending invalidation covers `request`'s key or one of its dependencies.
    pub(crate) fn covers(&self, request: &Request<'_>) -> bool {
        if !self.raised() {
            return false;
        }
        let table = self.table();
        table.everything > 0
            || table.keys.contains_key(request.key.as_bytes())
            || request.dependencies.iter().any(|name| table.dependencies.contains_key(name))
    }

    /// Whether a pending invalidation may cover an entry stored under
    /// dependencies the reader does not know (tags a body learned).
    pub(crate) fn covers_other_dependencies(&self) -> bool {
        if !self.raised() {
            return false;
        }
        let table = self.table();
        table.everything > 0 || !table.dependencies.is_empty()
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Every update leaves the table consistent before anything can panic.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        let mut table = self.fence.table();
        match self.names.take() {
            None => table.everything -= 1,
            Some(Names { keys, dependencies }) => {
                for key in keys {
                    table.bytes -= key.len() + NAME_OVERHEAD;
                    lower(&mut table.keys, &key);
                }
                for name in dependencies {
                    table.bytes -= name.len() + NAME_OVERHEAD;
                    lower(&mut table.dependencies, &name);
                }
            }
        }
        self.fence.raised.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lower<K: std::hash::Hash + Eq + std::borrow::Borrow<Q>, Q: std::hash::Hash + Eq + ?Sized>(
    counts: &mut HashMap<K, usize>,
    name: &Q,
) {
    if let Some(count) = counts.get_mut(name) {
        *count -= 1;
        if *count == 0 {
            counts.remove(name);
        }
    }
}

/// A cache's store behind its fence: what the engine and every entry point talk to.
pub(crate) struct FencedStore {
    fence: Arc<Fence>,
    store: AnyStore,
}

impl FencedStore {
    pub(crate) fn new(store: AnyStore) -> Self {
        Self { fence: Arc::default(), store }
    }

    pub(crate) fn fence(&self) -> &Arc<Fence> {
        &self.fence
    }

    /// Whether `found` is withheld by the fence: covered, or stored under
    /// dependencies the request does not name while a dependency is fenced.
    fn withholds(&self, found: &Found) -> bool {
        match found {
            Found::Fresh(_, meta) | Found::Stale(_, meta) => {
                meta.other_dependencies && self.fence.covers_other_dependencies()
            }
            Found::Miss | Found::Unavailable => false,
        }
    }
}

impl Deref for FencedStore {
    type Target = AnyStore;

    fn deref(&self) -> &AnyStore {
        &self.store
    }
}

impl Store for FencedStore {
    #[inline]
    fn probe(&self, key: &[u8], fingerprint: u64) -> Option<Arc<MemoryEntry>> {
        // Decided precisely by the lookup, which knows the request's dependencies.
        if self.fence.raised() {
            return None;
        }
        self.store.probe(key, fingerprint)
    }

    async fn lookup(&self, request: &Request<'_>) -> Found {
        if self.fence.covers(request) {
            metrics::counter!(crate::observe::FENCED_READS).increment(1);
            return Found::Unavailable;
        }
        let found = self.store.lookup(request).await;
        if self.withholds(&found) {
            metrics::counter!(crate::observe::FENCED_READS).increment(1);
            return Found::Unavailable;
        }
        found
    }

    async fn begin_load(
        &self,
        request: &Request<'_>,
        lifetime: Duration,
        token: u128,
    ) -> Result<Ticket, CacheError> {
        self.store.begin_load(request, lifetime, token).await
    }

    async fn begin_put(
        &self,
        request: &Request<'_>,
        lifetime: Duration,
        token: u128,
    ) -> Result<Ticket, CacheError> {
        self.store.begin_put(request, lifetime, token).await
    }

    async fn commit(&self, request: &Request<'_>, ticket: &Ticket, fill: Fill<'_>) -> Commit {
        if self.fence.covers(request) {
            // It may have read the data before the write: the entry stays as the invalidation leaves it.
            self.store.abandon(request.key, ticket_token(ticket));
            return Commit::Refused;
        }
        self.store.commit(request, ticket, fill).await
    }

    async fn still_current(
        &self,
        request: &Request<'_>,
        token: u128,
        ticket: &Ticket,
    ) -> Result<bool, CacheError> {
        if self.fence.covers(request) {
            return Ok(false);
        }
        self.store.still_current(request, token, ticket).await
    }

    fn abandon(&self, key: &KeyWriter, token: u128) {
        self.store.abandon(key, token);
    }

    async fn observe(&self, name: &str, keep_for: Duration) -> Result<u64, CacheError> {
        self.store.observe(name, keep_for).await
    }

    async fn invalidate(&self, targets: &Targets, urgency: Urgency) -> Result<(), CacheError> {
        self.store.invalidate(targets, urgency).await
    }

    fn watch_release(&self, key: &KeyWriter) -> Option<ReleaseWatch> {
        self.store.watch_release(key)
    }

    fn is_remote(&self) -> bool {
        self.store.is_remote()
    }

    fn status(&self) -> LayerStatus {
        self.store.status()
    }
}

/// The token a ticket holds its lease with (0, which no lease has, when it holds none).
fn ticket_token(ticket: &Ticket) -> u128 {
    match ticket.lease {
        super::Lease::Held(token) => token,
        super::Lease::Busy => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::Site;
    use crate::value::OpsOf;

    static SITE: Site = Site::new("fence::tests", 60, 0);

    fn targets(keys: &[&str], dependencies: &[&str]) -> Targets {
        Targets {
            keys: keys.iter().map(|key| KeyWriter::from_rendered(key.as_bytes())).collect(),
            dependencies: dependencies.iter().map(|&name| name.to_owned()).collect(),
        }
    }

    fn covers(fence: &Fence, key: &str, dependencies: &[&str]) -> bool {
        let key = KeyWriter::from_rendered(key.as_bytes());
        let dependencies: Vec<String> = dependencies.iter().map(|&name| name.to_owned()).collect();
        let request = Request {
            site: &SITE,
            key: &key,
            dependencies: &dependencies,
            ops: OpsOf::<u64, crate::codec::Postcard>::OPS,
            fingerprint: 0,
            absences: false,
        };
        fence.covers(&request)
    }

    #[test]
    fn a_raised_invalidation_covers_its_keys_and_dependencies_until_lowered() {
        let fence = Arc::new(Fence::default());
        assert!(!fence.raised() && !covers(&fence, "user:1", &[]));
        let raised = fence.raise(&targets(&["user:1"], &["t:org:7"]));
        assert!(fence.raised());
        assert!(covers(&fence, "user:1", &[]), "its key");
        assert!(covers(&fence, "user:2", &["t:org:7"]), "an entry under its tag");
        assert!(!covers(&fence, "user:2", &["t:org:8"]), "nothing else");
        assert!(fence.covers_other_dependencies(), "entries under tags the reader does not name");
        drop(raised);
        assert!(!fence.raised() && !covers(&fence, "user:1", &["t:org:7"]));
        assert!(!fence.covers_other_dependencies());
    }

    #[test]
    fn two_invalidations_of_one_name_are_counted() {
        let fence = Arc::new(Fence::default());
        let first = fence.raise(&targets(&["user:1"], &[]));
        let second = fence.raise(&targets(&["user:1"], &[]));
        drop(first);
        assert!(covers(&fence, "user:1", &[]), "the second is still pending");
        drop(second);
        assert!(!covers(&fence, "user:1", &[]));
        assert_eq!(fence.table().bytes, 0, "every byte given back");
    }

    #[test]
    fn past_its_bound_the_fence_covers_everything_until_lowered() {
        let fence = Arc::new(Fence::default());
        let name = "x".repeat(1024);
        let fitting = MAX_FENCED_BYTES / (name.len() + NAME_OVERHEAD);
        let held: Vec<Raised> = (0..fitting).map(|_| fence.raise(&targets(&[&name], &[]))).collect();
        assert!(!covers(&fence, "anything", &[]), "all fit, each covers its own name");
        let over = fence.raise(&targets(&[&name], &[]));
        assert!(covers(&fence, "anything", &[]), "an invalidation that did not fit covers every read");
        drop(over);
        assert!(!covers(&fence, "anything", &[]));
        drop(held);
        assert_eq!(fence.table().bytes, 0);
        assert!(!fence.raised());
    }
}
