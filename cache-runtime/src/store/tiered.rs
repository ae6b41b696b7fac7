//! The two-level store: an in-process layer (L1, the in-memory store) in front
//! of Redis (L2), kept coherent across processes by the [bus](super::bus).
//!
//! - An L1 hit costs no network. An L1 miss reads L2 and fills L1 with what
//!   remains of the L2 entry's freshness, at most `max_age`.
//! - Loads, leases and the no-stale-set rules are L2's; a value stored in L2
//!   is put in L1 too.
//! - An invalidation (and a put) is applied to this process's L1, then to L2
//!   and published on the bus in the same round trip, then to L1 again, so
//!   that a fill that read L2 before the invalidation is refused: the process
//!   that invalidates never reads the old entry afterwards. Other processes
//!   apply the message to their L1 when it arrives.
//! - L1 is used only while the bus vouches for it (see [`super::bus`]); its
//!   fills take its lease and its own generations, so a message that arrives
//!   while a fill reads L2 refuses that fill.

use std::sync::Arc;
use std::time::Duration;

use super::bus::{Announcement, Bus};
use super::memory::{MemoryEntry, MemoryStore};
use super::redis::RedisStore;
use super::{
    CacheError, Commit, Fill, Found, LayerStatus, Lease, Request, Store, Targets, Ticket, Urgency, new_token,
};
use crate::entry_info::unix_ms;
use crate::key::KeyWriter;

pub(crate) struct TieredStore {
    l1: Arc<MemoryStore>,
    l2: RedisStore,
    bus: Arc<Bus>,
    /// Longest an entry stays in L1.
    max_age: Duration,
    l1_hits: metrics::Counter,
    l2_hits: metrics::Counter,
}

impl TieredStore {
    pub(crate) fn new(l1: MemoryStore, l2: RedisStore, max_age: Duration, max_silence: Duration) -> Self {
        let bus = Arc::new(Bus::new(l2.prefix(), max_silence));
        Self {
            l1: Arc::new(l1),
            l2,
            bus,
            max_age: max_age.max(Duration::from_millis(1)),
            l1_hits: metrics::counter!(crate::observe::L1_HITS),
            l2_hits: metrics::counter!(crate::observe::L2_HITS),
        }
    }

    pub(crate) fn bus(&self) -> &Bus {
        &self.bus
    }

    pub(crate) fn l1(&self) -> &MemoryStore {
        &self.l1
    }

    pub(crate) fn l2(&self) -> &RedisStore {
        &self.l2
    }

    /// Whether L1 may serve; starts the bus's subscriber on first use.
    #[inline]
    fn l1_usable(&self) -> bool {
        if self.bus.vouched() {
            return true;
        }
        self.bus.start(&self.l2, &self.l1);
        false
    }

    /// What L1 keeps of an entry fresh for `lifetime`: at most `max_age`, nothing stale.
    fn l1_fill<'a>(&self, fill: &Fill<'a>) -> Fill<'a> {
        Fill {
            value: fill.value,
            lifetime: fill.lifetime.min(self.max_age),
            keep: Duration::ZERO,
            load_time: fill.load_time,
        }
    }

    /// Applies `targets` to L1, L2 and the bus, as the module says.
    async fn announce(
        &self,
        what: Announcement<'_>,
        targets: &Targets,
        urgency: Urgency,
    ) -> Result<(), CacheError> {
        let _ = self.l1.invalidate(targets, urgency).await;
        let (message, sequence) = self.bus.message(what).await;
        let outcome =
            self.l2.invalidate_announcing(targets, urgency, Some((self.bus.channel(), &message))).await;
        drop(sequence);
        let _ = self.l1.invalidate(targets, urgency).await;
        outcome
    }

    /// Empties L1 and L2 and tells the other processes to empty their L1.
    pub(crate) async fn clear(&self) -> Result<u64, CacheError> {
        self.l1.clear();
        let deleted = self.l2.clear().await?;
        let (message, sequence) = self.bus.message(Announcement::Clear).await;
        let published = self.l2.publish(self.bus.channel(), &message).await;
        drop(sequence);
        self.l1.clear();
        published.map(|()| deleted)
    }
}

/// Gives an L1 lease back when dropped (a commit has removed it already).
struct AbandonOnDrop<'a> {
    l1: &'a MemoryStore,
    key: &'a KeyWriter,
    token: u128,
}

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        self.l1.abandon(self.key, self.token);
    }
}

impl Store for TieredStore {
    #[inline]
    fn probe(&self, key: &[u8], fingerprint: u64) -> Option<Arc<MemoryEntry>> {
        if !self.l1_usable() {
            return None;
        }
        let entry = self.l1.probe(key, fingerprint)?;
        self.l1_hits.increment(1);
        Some(entry)
    }

    async fn lookup(&self, request: &Request<'_>) -> Found {
        let usable = self.l1_usable();
        if usable && let Some(entry) = self.probe(request.key.as_bytes(), request.fingerprint) {
            return Found::Fresh(Arc::clone(&entry.value), entry.meta);
        }
        // The fill's lease and generations are taken before L2 is read, so an
        // invalidation that arrives meanwhile refuses it.
        let token = new_token();
        let fill_ticket = match usable {
            true => self.l1.begin_load(request, Duration::ZERO, token).await.ok(),
            false => None,
        };
        // Gives the L1 lease back if this call is cut off while L2 is read.
        let _guard = fill_ticket.is_some().then(|| AbandonOnDrop { l1: &self.l1, key: request.key, token });
        let found = self.l2.lookup(request).await;
        match (&found, fill_ticket) {
            (Found::Fresh(value, meta), Some(ticket)) if !meta.other_dependencies => {
                self.l2_hits.increment(1);
                let remaining = Duration::from_millis(meta.fresh_until_ms.saturating_sub(unix_ms()));
                let fill = Fill {
                    value,
                    lifetime: remaining.min(self.max_age),
                    keep: Duration::ZERO,
                    load_time: Duration::from_micros(meta.load_micros),
                };
                if !fill.lifetime.is_zero() {
                    let _ = self.l1.commit(request, &ticket, fill).await;
                }
            }
            (Found::Fresh(..), _) => self.l2_hits.increment(1),
            _ => {}
        }
        found
    }

    async fn begin_load(
        &self,
        request: &Request<'_>,
        lifetime: Duration,
        token: u128,
    ) -> Result<Ticket, CacheError> {
        let mut ticket = self.l2.begin_load(request, lifetime, token).await?;
        if ticket.lease == Lease::Held(token) && self.l1_usable() {
            ticket.local = Some(self.l1.begin_load(request, lifetime, token).await?.generations);
        }
        Ok(ticket)
    }

    async fn begin_put(
        &self,
        request: &Request<'_>,
        lifetime: Duration,
        token: u128,
    ) -> Result<Ticket, CacheError> {
        let mut ticket = self.l2.begin_put(request, lifetime, token).await?;
        ticket.announce = true;
        if self.l1_usable() {
            ticket.local = Some(self.l1.begin_load(request, lifetime, token).await?.generations);
        }
        Ok(ticket)
    }

    async fn commit(&self, request: &Request<'_>, ticket: &Ticket, fill: Fill<'_>) -> Commit {
        let l1_fill = self.l1_fill(&fill);
        let outcome = self.l2.commit(request, ticket, fill).await;
        if !matches!(outcome, Commit::Stored(_)) {
            if let Lease::Held(token) = ticket.lease {
                self.l1.abandon(request.key, token);
            }
            return outcome;
        }
        let mut lease = ticket.lease;
        if ticket.announce {
            // A put. A fill of this process that read L2 before it (it took
            // L1's lease over, so this put could not replace its copy) is
            // dropped and refused; L1 is then filled under a lease of its own.
            let targets = Targets { keys: vec![request.key.clone()], dependencies: Vec::new() };
            let _ = self.l1.invalidate(&targets, Urgency::Normal).await;
            // Other processes drop their copy; if they cannot be told, the put
            // fails and its entry is deleted (which is announced, with retries).
            let (message, sequence) = self.bus.message(Announcement::Targets(&targets)).await;
            let published = self.l2.publish(self.bus.channel(), &message).await;
            drop(sequence);
            if published.is_err() {
                return Commit::NotStored;
            }
            let token = new_token();
            lease = match self.l1.begin_load(request, Duration::ZERO, token).await {
                Ok(_) => Lease::Held(token),
                Err(_) => Lease::Busy,
            };
        }
        if let Some(local) = &ticket.local {
            let l1_ticket = Ticket::new(lease, local.clone());
            let _ = self.l1.commit(request, &l1_ticket, l1_fill).await;
        }
        outcome
    }

    async fn still_current(
        &self,
        request: &Request<'_>,
        token: u128,
        ticket: &Ticket,
    ) -> Result<bool, CacheError> {
        self.l2.still_current(request, token, ticket).await
    }

    async fn observe(&self, name: &str, keep_for: Duration) -> Result<u64, CacheError> {
        self.l2.observe(name, keep_for).await
    }

    fn abandon(&self, key: &KeyWriter, token: u128) {
        self.l1.abandon(key, token);
        self.l2.abandon(key, token);
    }

    fn watch_release(&self, key: &KeyWriter) -> Option<super::ReleaseWatch> {
        self.l2.watch_release(key)
    }

    async fn invalidate(&self, targets: &Targets, urgency: Urgency) -> Result<(), CacheError> {
        self.announce(Announcement::Targets(targets), targets, urgency).await
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn status(&self) -> LayerStatus {
        self.l2.status()
    }
}
