//! The read path: one cache-aside algorithm for every store.
//!
//! A call that missed joins its key's flight. The leader takes the entry's
//! lease and the generations of its tags and versions ([`Store::begin_load`]),
//! runs the body, and commits the value, which the store refuses if an
//! invalidation overtook the load. Waiters take the leader's value; when the
//! leader fails they stop waiting together; when it vanishes (cancelled,
//! panicked) one of them takes over. Another process's lease is waited for at
//! most `lease_wait`.
//!
//! Only [`serve`] is generic (over the body's future); everything it calls is
//! compiled once.

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::Cache;
use crate::entry_info::{self, deadline_after, duration_ms, unix_ms};
use crate::single_flight::{FlightGuard, Outcome, Role, wait};
use crate::store::{AnyStore, CacheError, Commit, Fill, Found, Lease, Request, Store, Ticket, new_token};
use crate::value::SharedValue;

/// What a body's run gives the cache: its cacheable value, and whether that
/// value is an absence (`None`, cached for `negative_ttl`).
pub(crate) struct Loaded {
    pub(crate) value: SharedValue,
    pub(crate) negative: bool,
}

/// How a call was answered.
pub(crate) enum Served {
    /// From the cache, or from a flight this call waited for.
    Cached(SharedValue),
    /// By this call's own body, whose output the caller holds.
    Loaded,
    /// By a stale entry: past its freshness while it is refreshed (`refresh`:
    /// the caller should start the refresh), or because the load failed (fail-safe).
    Stale { value: SharedValue, refresh: bool },
}

/// Where [`serve`] starts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Look the entry up first (a call that missed in process memory).
    Lookup,
    /// Load at once (a background refresh of a stale entry).
    Refresh,
}

/// Answers a call that missed in process memory: from the store, another
/// caller's load, a stale entry (stale-while-revalidate, fail-safe), or `load`
/// (this call's body, giving the cacheable value). `load` is polled at most
/// once; a value served is of the request's type.
pub(crate) async fn serve<L>(cache: &Cache, request: &Request<'_>, load: L, start: Start) -> Served
where
    L: Future<Output = Option<Loaded>>,
{
    let load = pin!(load);
    let store = &cache.inner.store;
    let site = request.site;
    // A stale entry the fail-safe may serve if the load fails.
    let mut fallback = None;
    if start == Start::Lookup && (store.is_remote() || !site.keep().is_zero()) {
        match store.lookup(request).await {
            Found::Fresh(value, meta) if request.accepts(&value) => {
                site.record_hit();
                entry_info::record(|| meta.info(request.key, true));
                return Served::Cached(value);
            }
            Found::Stale(value, meta) if request.accepts(&value) => {
                let stale_for = unix_ms().saturating_sub(meta.fresh_until_ms);
                if stale_for < duration_ms(site.stale()) {
                    site.record_stale_served();
                    entry_info::record(|| meta.info(request.key, true));
                    let refresh = !cache.inner.flights.is_loading(request.key.as_bytes());
                    return Served::Stale { value, refresh };
                }
                if stale_for < duration_ms(site.fail_safe()) {
                    fallback = Some(value);
                }
            }
            Found::Unavailable => {
                site.record_miss();
                return run_unstored(request, load).await;
            }
            Found::Fresh(..) | Found::Stale(..) | Found::Miss => {}
        }
    }
    if let Some(value) = &fallback
        && cache.is_throttled(request.key.as_bytes())
    {
        site.record_fail_safe();
        return Served::Stale { value: Arc::clone(value), refresh: false };
    }
    site.record_miss();
    let flights = &cache.inner.flights;
    let mut after_failure = false;
    loop {
        let waiter = match flights.join(request.key.as_bytes(), request.dependencies) {
            Role::Leader(flight) => return lead(cache, request, flight, load, fallback).await,
            // The last leader failed and another caller leads now: do not queue
            // behind it, run this call's own body at once, without storing.
            Role::Waiter(_) if after_failure => return run_unstored(request, load).await,
            Role::Waiter(waiter) => waiter,
        };
        match wait(waiter).await {
            Outcome::Stored => {
                if let Found::Fresh(value, meta) = cache.inner.store.lookup(request).await
                    && request.accepts(&value)
                {
                    entry_info::record(|| meta.info(request.key, true));
                    return Served::Cached(value);
                }
            }
            Outcome::Unstored(value) if request.accepts(&value) => return Served::Cached(value),
            Outcome::Failed => {
                if let Some(value) = fallback {
                    site.record_fail_safe();
                    return Served::Stale { value, refresh: false };
                }
                after_failure = true;
            }
            Outcome::Unstored(_) | Outcome::Retry => {}
        }
    }
}

/// Refreshes a stale entry in a task of its own, which survives the caller:
/// one flight in process, the lease across processes, the usual commit rules.
pub(crate) fn spawn_refresh<L>(cache: &Cache, request: &Request<'_>, load: L)
where
    L: Future<Output = Option<Loaded>> + Send + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return; // no runtime to refresh on: the entry is loaded when it expires
    };
    request.site.record_refresh();
    let cache = cache.clone();
    let (site, key, dependencies) = (request.site, request.key.clone(), request.dependencies.to_vec());
    let (ops, fingerprint, absences) = (request.ops, request.fingerprint, request.absences);
    runtime.spawn(async move {
        let request = Request { site, key: &key, dependencies: &dependencies, ops, fingerprint, absences };
        serve(&cache, &request, load, Start::Refresh).await;
    });
}

/// Leads a flight: takes the lease, runs the body, commits its value. A body
/// that fails or panics while a fail-safe value exists is answered with that
/// value, and the key is not loaded again for `fail_safe_throttle`.
async fn lead<L>(
    cache: &Cache,
    request: &Request<'_>,
    flight: FlightGuard<'_>,
    load: Pin<&mut L>,
    fallback: Option<SharedValue>,
) -> Served
where
    L: Future<Output = Option<Loaded>>,
{
    let site = request.site;
    let lifetime = cache.entry_lifetime(site);
    let lease = match claim(cache, request, lifetime).await {
        Claim::Served(value) => {
            flight.finish(Outcome::Stored);
            return Served::Cached(value);
        }
        Claim::Load(lease) => lease,
    };
    let started = Instant::now();
    let value = if fallback.is_some() {
        match CatchUnwind(load).await {
            Ok(value) => value,
            Err(panic) => {
                tracing::warn!(function = site.function(), key = %request.key, "the body panicked: serving the fail-safe value");
                drop(panic);
                None
            }
        }
    } else {
        load.await
    };
    let load_time = started.elapsed();
    site.record_load(load_time);
    if value.is_none()
        && let Some(value) = fallback
    {
        drop(lease); // gives the lease back
        flight.finish(Outcome::Failed);
        cache.throttle(request.key.as_bytes(), site.fail_safe_throttle());
        site.record_fail_safe();
        tracing::warn!(function = site.function(), key = %request.key, "load failed: serving the fail-safe value");
        return Served::Stale { value, refresh: false };
    }
    let fill = value.as_ref().map(|loaded| Fill {
        value: &loaded.value,
        lifetime: if loaded.negative { site.negative_lifetime() } else { lifetime },
        keep: site.keep(),
        load_time,
    });
    finish(request, flight, lease, fill).await;
    Served::Loaded
}

/// Polls a future, turning a panic into an `Err` with its payload.
struct CatchUnwind<'a, L>(Pin<&'a mut L>);

impl<L: Future> Future for CatchUnwind<'_, L> {
    type Output = std::thread::Result<L::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Ready(output)) => std::task::Poll::Ready(Ok(output)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

/// Runs the body without storing its value.
async fn run_unstored<L: Future<Output = Option<Loaded>>>(
    request: &Request<'_>,
    load: Pin<&mut L>,
) -> Served {
    let started = Instant::now();
    load.await;
    request.site.record_load(started.elapsed());
    Served::Loaded
}

/// What the leader of a flight may do.
enum Claim<'s, 'r> {
    /// Another process stored the value meanwhile.
    Served(SharedValue),
    /// Load, and store under this lease (without one, the store is unavailable: do not store).
    Load(LeaseGuard<'s, 'r>),
}

/// Takes the lease, waiting at most `lease_wait` for another process's load.
async fn claim<'s, 'r>(cache: &'s Cache, request: &'s Request<'r>, lifetime: Duration) -> Claim<'s, 'r> {
    let store = &cache.inner.store;
    match LeaseGuard::take(store, request, lifetime).await {
        Ok(Some(lease)) => return Claim::Load(lease),
        Ok(None) => {}
        Err(error) => return Claim::Load(unavailable(store, request, &error)),
    }
    let deadline = deadline_after(cache.lease_wait());
    let mut pause = Duration::from_millis(2);
    while Instant::now() < deadline {
        tokio::time::sleep(pause).await;
        match store.lookup(request).await {
            Found::Fresh(value, meta) if request.accepts(&value) => {
                entry_info::record(|| meta.info(request.key, true));
                return Claim::Served(value);
            }
            Found::Unavailable => return Claim::Load(LeaseGuard::none(store, request)),
            Found::Fresh(..) | Found::Stale(..) | Found::Miss => {}
        }
        match LeaseGuard::take(store, request, lifetime).await {
            Ok(Some(lease)) => return Claim::Load(lease),
            Ok(None) => {}
            Err(error) => return Claim::Load(unavailable(store, request, &error)),
        }
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    tracing::debug!(function = request.site.function(), key = %request.key, "lease wait over: loading without storing");
    Claim::Load(LeaseGuard::none(store, request))
}

fn unavailable<'s, 'r>(
    store: &'s AnyStore,
    request: &'s Request<'r>,
    error: &CacheError,
) -> LeaseGuard<'s, 'r> {
    request.site.record_error(error.class());
    tracing::debug!(function = request.site.function(), %error, "cache unavailable: running the function body");
    LeaseGuard::none(store, request)
}

/// Commits the leader's value and tells the waiters.
async fn finish(
    request: &Request<'_>,
    flight: FlightGuard<'_>,
    lease: LeaseGuard<'_, '_>,
    fill: Option<Fill<'_>>,
) {
    let Some(fill) = fill else {
        drop(lease); // gives the lease back
        flight.finish(Outcome::Failed);
        return;
    };
    let value = fill.value.clone();
    let Some((token, ticket)) = lease.held.as_ref() else {
        // Loaded without a lease: nothing vouches for the value to callers
        // that joined later, so they run their own bodies.
        flight.finish(Outcome::Failed);
        return;
    };
    let outcome = match lease.store.commit(request, ticket, fill).await {
        Commit::Stored(meta) => {
            entry_info::record(|| meta.info(request.key, false));
            lease.disarm();
            Outcome::Stored
        }
        Commit::Refused => {
            request.site.record_refused();
            tracing::debug!(function = request.site.function(), key = %request.key, "store refused: invalidated during the load");
            lease.disarm();
            Outcome::Retry
        }
        // Current at the commit, but not stored: share it only if no
        // invalidation, from any process, has overtaken it by now.
        Commit::NotStored => match lease.store.still_current(request, *token, ticket).await {
            Ok(true) => Outcome::Unstored(value),
            Ok(false) => Outcome::Retry,
            Err(_) => Outcome::Failed,
        },
    };
    flight.finish(outcome);
}

/// A load's lease token and ticket. Armed from before the lease is asked for
/// until the value is stored: dropped armed (load failed, cancelled, panicked,
/// not stored, or cut off while the lease was being taken), it gives the lease
/// back at once, without waiting.
struct LeaseGuard<'s, 'r> {
    store: &'s AnyStore,
    request: &'s Request<'r>,
    token: Option<u128>,
    held: Option<(u128, Ticket)>,
}

impl<'s, 'r> LeaseGuard<'s, 'r> {
    /// No lease: the value will not be stored.
    fn none(store: &'s AnyStore, request: &'s Request<'r>) -> Self {
        Self { store, request, token: None, held: None }
    }

    /// Asks for the lease; `Ok(None)` when another process holds it.
    async fn take(
        store: &'s AnyStore,
        request: &'s Request<'r>,
        lifetime: Duration,
    ) -> Result<Option<Self>, CacheError> {
        let mut guard = Self { store, request, token: Some(new_token()), held: None };
        let token = guard.token.unwrap_or_default();
        let ticket = store.begin_load(request, lifetime, token).await?;
        if ticket.lease == Lease::Busy {
            guard.token = None; // not ours: nothing to give back
            return Ok(None);
        }
        guard.held = Some((token, ticket));
        Ok(Some(guard))
    }

    /// The lease is gone already (stored, or taken by an invalidation).
    fn disarm(mut self) {
        self.token = None;
    }
}

impl Drop for LeaseGuard<'_, '_> {
    fn drop(&mut self) {
        if let Some(token) = self.token {
            self.store.abandon(self.request.key, token);
        }
    }
}
