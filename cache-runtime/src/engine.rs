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
//! The freshness policies sit on this path: a stale entry is served while one
//! refresh runs in a task of its own (`stale`); a fresh entry may be refreshed
//! that way before it expires ([`xfetch`]); a load that fails, panics or runs
//! past `hard_timeout` is answered by the fail-safe value; a caller with a
//! fail-safe value at hand waits at most `soft_timeout` for a load; and every
//! body runs under the function's and the cache's `max_loads`.
//!
//! Only [`serve`] is generic (over the body's future); everything it calls is
//! compiled once.

use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::Cache;
use crate::entry_info::{self, EntryMeta, deadline_after, duration_ms, unix_ms};
use crate::learned::{self, Learned};
use crate::single_flight::{FlightGuard, Outcome, Role, wait};
use crate::site::Site;
use crate::store::fence::FencedStore;
use crate::store::{CacheError, Commit, Fill, Found, Lease, ReleaseWatch, Request, Store, Ticket, new_token};
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
    /// By a stored value served as is: stale while it is refreshed, the
    /// fail-safe value, or a fresh value due for an early refresh. With
    /// `refresh`, the caller should hand its body to [`spawn_refresh`].
    Stale { value: SharedValue, refresh: Option<Refresh> },
}

/// A load the caller should start in the background with its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refresh {
    /// `filled_at_ms` of the entry it replaces: a refresh that finds a newer one stops.
    pub(crate) replaces: u64,
    /// Zero: a refresh, the caller serves the value at once. Otherwise the
    /// caller's own load (`soft_timeout`): it waits this long for the body's
    /// output before serving the fail-safe value.
    pub(crate) wait: Duration,
}

/// Where [`serve`] starts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Look the entry up first (a call that missed in process memory).
    Lookup,
    /// [`Start::Lookup`] for a body that owns its data: it may be handed to a
    /// task (early refresh, `soft_timeout`).
    LookupOwned,
    /// Refresh in the background: no lookup; stops when another process holds
    /// the lease or the entry was already replaced.
    Refresh { replaces: u64 },
    /// A caller's load continued in the background (`soft_timeout`): no lookup,
    /// the fail-safe rules of the caller.
    Detached,
    /// Load at once, as after a miss, even over a fresh entry ([`crate::refresh`],
    /// a page cache's refresh, which checks for a newer page under the lease).
    Reload,
}

impl Start {
    pub(crate) fn looks_up(self) -> bool {
        matches!(self, Self::Lookup | Self::LookupOwned)
    }
}

/// XFetch (Vattani, Chierichetti and Lowenstein, VLDB 2015): whether a read at
/// `now_us` of an entry fresh until `expiry_us`, whose last load took
/// `delta_us`, refreshes it early: when `now - delta * beta * ln(random) >=
/// expiry`, `random` uniform in (0, 1]. A read at a gap `g` before expiry
/// refreshes with probability `exp(-g / (delta * beta))`: a hot key is
/// refreshed shortly before it expires, a rarely read one almost never, and an
/// entry that loads instantly (`delta` 0) never early.
pub(crate) fn xfetch(now_us: u64, expiry_us: u64, delta_us: u64, beta: f64, random: f64) -> bool {
    if now_us >= expiry_us {
        return true;
    }
    let gap = -(delta_us as f64) * beta * random.ln();
    gap >= (expiry_us - now_us) as f64
}

/// On a fresh hit: the early refresh to start, if XFetch says so and no load
/// of the key runs in this process.
pub(crate) fn early_refresh(
    cache: &Cache,
    site: &'static Site,
    key: &[u8],
    meta: &EntryMeta,
) -> Option<Refresh> {
    let beta = cache.early_refresh(site)?;
    let now_us = unix_ms().saturating_mul(1000);
    let expiry_us = meta.fresh_until_ms.saturating_mul(1000);
    let random = 1.0 - fastrand::f64(); // (0, 1]
    if !xfetch(now_us, expiry_us, meta.load_micros, beta, random)
        || cache.inner.flights.is_loading(key)
        || cache.is_throttled(key)
    {
        return None;
    }
    site.record_early_refresh();
    Some(Refresh { replaces: meta.filled_at_ms, wait: Duration::ZERO })
}

/// Waits at most `refresh.wait` for the output of a load handed to a task
/// (`soft_timeout`): `None` when it did not come in time, or was a failure
/// (`ok` false): the caller then serves the fail-safe value.
pub(crate) async fn await_load<R>(
    site: &'static Site,
    output: tokio::sync::oneshot::Receiver<(R, bool)>,
    refresh: Refresh,
) -> Option<R> {
    match tokio::time::timeout(refresh.wait, output).await {
        Ok(Ok((output, true))) => return Some(output),
        Ok(_) => {}
        Err(_) => {
            site.record_soft_timeout();
            tracing::debug!(function = site.function(), "soft timeout: serving the fail-safe value");
        }
    }
    site.record_fail_safe();
    None
}

/// Answers a call that missed in process memory: from the store, another
/// caller's load, a stale entry (stale-while-revalidate, fail-safe), or `load`
/// (this call's body, giving the cacheable value). `load` is polled at most
/// once; a value served is of the request's type.
pub(crate) async fn serve<L>(cache: &Cache, request: &Request<'_>, load: L, start: Start) -> Served
where
    L: Future<Output = Option<Loaded>>,
{
    serve_from(cache, request, load, start, None).await
}

/// [`serve`], with the fail-safe value a detached load inherits from its caller.
async fn serve_from<L>(
    cache: &Cache,
    request: &Request<'_>,
    load: L,
    start: Start,
    mut fallback: Option<SharedValue>,
) -> Served
where
    L: Future<Output = Option<Loaded>>,
{
    let load = pin!(load);
    let store = &cache.inner.store;
    let site = request.site;
    // `filled_at_ms` of the fail-safe value, which a detached load replaces.
    let mut fallback_filled = 0;
    if start.looks_up() && (store.is_remote() || !site.keep().is_zero()) {
        match store.lookup(request).await {
            Found::Fresh(value, meta) if request.accepts(&value) => {
                site.record_hit();
                entry_info::record(|| meta.info(request.key, true));
                if start == Start::LookupOwned
                    && let Some(refresh) = early_refresh(cache, site, request.key.as_bytes(), &meta)
                {
                    return Served::Stale { value, refresh: Some(refresh) };
                }
                return Served::Cached(value);
            }
            Found::Stale(value, meta) if request.accepts(&value) => {
                let stale_for = unix_ms().saturating_sub(meta.fresh_until_ms);
                if stale_for < duration_ms(site.stale()) {
                    site.record_stale_served();
                    entry_info::record(|| meta.info(request.key, true));
                    let key = request.key.as_bytes();
                    let refresh = (!cache.inner.flights.is_loading(key) && !cache.is_throttled(key))
                        .then_some(Refresh { replaces: meta.filled_at_ms, wait: Duration::ZERO });
                    return Served::Stale { value, refresh };
                }
                if stale_for < duration_ms(site.fail_safe()) {
                    fallback = Some(value);
                    fallback_filled = meta.filled_at_ms;
                }
            }
            Found::Unavailable => {
                site.record_miss();
                return run_unstored(cache, request, load).await;
            }
            Found::Fresh(..) | Found::Stale(..) | Found::Miss => {}
        }
    }
    if let Some(value) = &fallback
        && cache.is_throttled(request.key.as_bytes())
    {
        site.record_fail_safe();
        return Served::Stale { value: Arc::clone(value), refresh: None };
    }
    let flights = &cache.inner.flights;
    let soft_timeout = fallback.as_ref().and(cache.soft_timeout(site));
    // With a fail-safe value and a soft timeout, an owned body loads in a task
    // of its own, which the caller waits for at most the soft timeout.
    if start == Start::LookupOwned
        && let (Some(value), Some(wait)) = (&fallback, soft_timeout)
        && !flights.is_loading(request.key.as_bytes())
    {
        site.record_miss();
        let refresh = Refresh { replaces: fallback_filled, wait };
        return Served::Stale { value: Arc::clone(value), refresh: Some(refresh) };
    }
    site.record_miss();
    let mut after_failure = false;
    loop {
        let waiter = match flights.join(request.key.as_bytes(), request.dependencies) {
            Role::Leader(flight) => return lead(cache, request, flight, load, fallback, start).await,
            // The last leader failed and another caller leads now: do not queue
            // behind it, run this call's own body at once, without storing.
            Role::Waiter(_) if after_failure => return run_unstored(cache, request, load).await,
            Role::Waiter(waiter) => waiter,
        };
        let outcome = match soft_timeout {
            Some(soft_timeout) => match tokio::time::timeout(soft_timeout, wait(waiter)).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    site.record_soft_timeout();
                    site.record_fail_safe();
                    if let Some(value) = fallback {
                        return Served::Stale { value, refresh: None };
                    }
                    continue;
                }
            },
            None => wait(waiter).await,
        };
        match outcome {
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
                    return Served::Stale { value, refresh: None };
                }
                after_failure = true;
            }
            Outcome::Unstored(_) | Outcome::Retry => {}
        }
    }
}

/// Runs `load` in a task of its own, which survives the caller: one flight in
/// process, the lease across processes, the usual commit rules. A refresh
/// (`fallback` `None`) stops when another process holds the lease or the
/// entry was replaced meanwhile; a caller's load handed over at its soft
/// timeout keeps the caller's fail-safe value for its own failures.
pub(crate) fn spawn_refresh<L>(
    cache: &Cache,
    request: &Request<'_>,
    load: L,
    refresh: Refresh,
    fallback: Option<SharedValue>,
) where
    L: Future<Output = Option<Loaded>> + Send + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return; // no runtime to refresh on: the entry is loaded when it expires
    };
    let start = match fallback {
        Some(_) => Start::Detached,
        None => {
            request.site.record_refresh();
            Start::Refresh { replaces: refresh.replaces }
        }
    };
    let cache = cache.clone();
    let (site, key, dependencies) = (request.site, request.key.clone(), request.dependencies.to_vec());
    let (ops, fingerprint, absences) = (request.ops, request.fingerprint, request.absences);
    runtime.spawn(async move {
        let request = Request { site, key: &key, dependencies: &dependencies, ops, fingerprint, absences };
        serve_from(&cache, &request, load, start, fallback).await;
    });
}

/// Takes the entry's lease over for a put whose value comes later: from now
/// on, a load that began earlier is refused, and so is this put's
/// [`commit_put`] if another put, a load or an invalidation of the entry
/// comes in between.
pub(crate) async fn begin_put(cache: &Cache, request: &Request<'_>) -> Result<Ticket, CacheError> {
    let lifetime = cache.entry_lifetime(request.site);
    cache.inner.store.begin_put(request, lifetime, new_token()).await
}

/// Stores `value` under a put's `ticket`; [`CacheError::NotStored`] when the
/// ticket no longer holds the lease or the value could not be stored.
pub(crate) async fn commit_put(
    cache: &Cache,
    request: &Request<'_>,
    ticket: &Ticket,
    value: &SharedValue,
) -> Result<(), CacheError> {
    let lifetime = cache.entry_lifetime(request.site);
    let fill = Fill { value, lifetime, keep: request.site.keep(), load_time: Duration::ZERO };
    match cache.inner.store.commit(request, ticket, fill).await {
        Commit::Stored(meta) => {
            entry_info::record(|| meta.info(request.key, false));
            Ok(())
        }
        Commit::Refused | Commit::NotStored => Err(CacheError::NotStored),
    }
}

/// Leads a flight: takes the lease, runs the body, commits its value. A body
/// that fails, panics or outruns `hard_timeout` while a fail-safe value exists
/// is answered with that value, and the key is not loaded again for
/// `fail_safe_throttle`.
async fn lead<L>(
    cache: &Cache,
    request: &Request<'_>,
    flight: FlightGuard<'_>,
    load: Pin<&mut L>,
    fallback: Option<SharedValue>,
    start: Start,
) -> Served
where
    L: Future<Output = Option<Loaded>>,
{
    let site = request.site;
    let lifetime = cache.entry_lifetime(site);
    let lease = match claim(cache, request, lifetime, start).await {
        Claim::Served(value) => {
            flight.finish(Outcome::Stored);
            return Served::Cached(value);
        }
        Claim::Stop(outcome) => {
            flight.finish(outcome);
            return Served::Loaded;
        }
        Claim::Load(lease) => lease,
    };
    let permits = match &fallback {
        None => LoadPermits::take(cache, site).await,
        Some(value) => match LoadPermits::try_take(cache, site) {
            Some(permits) => permits,
            None => {
                // No turn free under `max_loads`, and a stale value at hand.
                drop(lease); // gives the lease back
                flight.finish(Outcome::Failed);
                site.record_fail_safe();
                return Served::Stale { value: Arc::clone(value), refresh: None };
            }
        },
    };
    let started = Instant::now();
    let refreshing = matches!(start, Start::Refresh { .. });
    // Tags the body learns (`add_tag`) live as long as the entry, and a little more.
    let keep_learned_for = lifetime.saturating_add(site.keep()).saturating_add(LEARNED_SLACK);
    let mut load = pin!(learned::scope(cache, keep_learned_for, load));
    let value = match &fallback {
        // A background refresh's panic is a failure like an `Err`: the stale
        // entry stays, and the retry waits (below).
        None if refreshing => permits.run(CatchUnwind(load.as_mut())).await.unwrap_or_else(|panic| {
            drop(panic);
            tracing::warn!(function = site.function(), key = %request.key, "the body panicked in a background refresh");
            None
        }),
        Some(_) => match permits.run(guarded(CatchUnwind(load.as_mut()), cache.hard_timeout(site))).await {
            Ok(value) => value,
            Err(Abandoned::Panicked) => {
                tracing::warn!(function = site.function(), key = %request.key, "the body panicked: serving the fail-safe value");
                None
            }
            Err(Abandoned::TimedOut) => {
                site.record_hard_timeout();
                tracing::warn!(function = site.function(), key = %request.key, "hard timeout: the load is abandoned, serving the fail-safe value");
                None
            }
        },
        None => permits.run(load.as_mut()).await,
    };
    let learned = learned::take(load);
    let load_time = started.elapsed();
    site.record_load(load_time);
    if value.is_none() && refreshing {
        // The entry is still served; the next background refresh waits.
        cache.throttle(request.key.as_bytes(), refresh_retry(site));
        tracing::debug!(function = site.function(), key = %request.key, "background refresh failed: retried later");
    }
    if value.is_none()
        && let Some(value) = fallback
    {
        drop(lease); // gives the lease back
        flight.finish(Outcome::Failed);
        cache.throttle(request.key.as_bytes(), site.fail_safe_throttle());
        site.record_fail_safe();
        tracing::warn!(function = site.function(), key = %request.key, "load failed: serving the fail-safe value");
        return Served::Stale { value, refresh: None };
    }
    let fill = value.as_ref().map(|loaded| Fill {
        value: &loaded.value,
        lifetime: if loaded.negative { site.negative_lifetime() } else { lifetime },
        keep: site.keep(),
        load_time,
    });
    finish(request, flight, lease, fill, learned).await;
    Served::Loaded
}

/// How much longer than their entries the counters of learned tags are kept.
const LEARNED_SLACK: Duration = Duration::from_secs(60);

/// How long after a failed background refresh (stale-while-revalidate, early
/// refresh) the next one may start: `fail_safe_throttle` when set, else 5 s.
fn refresh_retry(site: &Site) -> Duration {
    match site.fail_safe_throttle() {
        Duration::ZERO => Duration::from_secs(5),
        throttle => throttle,
    }
}

/// Why a body guarded by the fail-safe gave no value.
enum Abandoned {
    Panicked,
    TimedOut,
}

/// Runs a body under the fail-safe: a panic or the hard timeout ends it.
async fn guarded<L: Future>(
    body: CatchUnwind<'_, L>,
    hard_timeout: Option<Duration>,
) -> Result<L::Output, Abandoned> {
    let outcome = match hard_timeout {
        Some(hard_timeout) => {
            tokio::time::timeout(hard_timeout, body).await.map_err(|_| Abandoned::TimedOut)?
        }
        None => body.await,
    };
    outcome.map_err(|panic| {
        drop(panic);
        Abandoned::Panicked
    })
}

tokio::task_local! {
    /// The cache whose `max_loads` turn the current body holds: a cached call
    /// inside the body does not wait for a second turn of the same cache.
    static HOLDS_TURN_OF: usize;
}

/// Turns to run a body under the function's and the cache's `max_loads`.
struct LoadPermits<'a> {
    _site: Option<tokio::sync::SemaphorePermit<'a>>,
    cache: Option<tokio::sync::SemaphorePermit<'a>>,
    cache_id: usize,
}

impl<'a> LoadPermits<'a> {
    /// Waits for a turn, first come, first served.
    async fn take(cache: &'a Cache, site: &'static Site) -> Self {
        let (site_permits, cache_permits, cache_id) = Self::semaphores(cache, site);
        let mut waited = false;
        let mut permits = [None, None];
        for (slot, semaphore) in permits.iter_mut().zip([site_permits, cache_permits]) {
            let Some(semaphore) = semaphore else { continue };
            *slot = match semaphore.try_acquire() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    waited = true;
                    semaphore.acquire().await.ok() // never closed
                }
            };
        }
        if waited {
            site.record_throttled_load();
        }
        let [site_permit, cache_permit] = permits;
        Self { _site: site_permit, cache: cache_permit, cache_id }
    }

    /// A turn if one is free at once (a stale value is at hand otherwise).
    fn try_take(cache: &'a Cache, site: &'static Site) -> Option<Self> {
        let (site_permits, cache_permits, cache_id) = Self::semaphores(cache, site);
        let take = |semaphore: Option<&'a tokio::sync::Semaphore>| match semaphore {
            None => Ok(None),
            Some(semaphore) => semaphore.try_acquire().map(Some),
        };
        match (take(site_permits), take(cache_permits)) {
            (Ok(site_permit), Ok(cache_permit)) => {
                Some(Self { _site: site_permit, cache: cache_permit, cache_id })
            }
            _ => {
                site.record_throttled_load();
                None
            }
        }
    }

    /// The function's and the cache's semaphores; not the cache's for a call
    /// inside a body that holds a turn of it already.
    fn semaphores(
        cache: &'a Cache,
        site: &'static Site,
    ) -> (Option<&'a tokio::sync::Semaphore>, Option<&'a tokio::sync::Semaphore>, usize) {
        let cache_id = Arc::as_ptr(&cache.inner) as usize;
        let nested = HOLDS_TURN_OF.try_with(|held| *held == cache_id).unwrap_or(false);
        (site.load_permits(), if nested { None } else { cache.load_permits() }, cache_id)
    }

    /// Runs `body` holding the turns.
    async fn run<F: Future>(self, body: F) -> F::Output {
        if self.cache.is_some() { HOLDS_TURN_OF.scope(self.cache_id, body).await } else { body.await }
    }
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
    cache: &Cache,
    request: &Request<'_>,
    load: Pin<&mut L>,
) -> Served {
    let permits = LoadPermits::take(cache, request.site).await;
    let started = Instant::now();
    permits.run(load).await;
    request.site.record_load(started.elapsed());
    Served::Loaded
}

/// What the leader of a flight may do.
enum Claim<'s, 'r> {
    /// Another process stored the value meanwhile.
    Served(SharedValue),
    /// A refresh that is not needed: another process refreshes, or did.
    Stop(Outcome),
    /// Load, and store under this lease (without one, the store is unavailable: do not store).
    Load(LeaseGuard<'s, 'r>),
}

/// How often a caller waiting for another process's lease looks anyway when
/// the release is announced (a lost announcement costs at most this).
const ANNOUNCED_POLL: Duration = Duration::from_millis(100);

/// Takes the lease, waiting at most `lease_wait` for another process's load:
/// woken when its release is announced, else polling every 2 to 50 ms. A
/// refresh does not wait: another process refreshes already.
async fn claim<'s, 'r>(
    cache: &'s Cache,
    request: &'s Request<'r>,
    lifetime: Duration,
    start: Start,
) -> Claim<'s, 'r> {
    let store = &cache.inner.store;
    match LeaseGuard::take(store, request, lifetime).await {
        Ok(Some(lease)) => {
            if let Start::Refresh { replaces } = start
                && let Found::Fresh(_, meta) = store.lookup(request).await
                && meta.filled_at_ms > replaces
            {
                return Claim::Stop(Outcome::Stored); // refreshed meanwhile; the lease is given back
            }
            return Claim::Load(lease);
        }
        Ok(None) if matches!(start, Start::Refresh { .. }) => return Claim::Stop(Outcome::Retry),
        Ok(None) => {}
        Err(error) => return Claim::Load(unavailable(store, request, &error)),
    }
    let deadline = deadline_after(cache.lease_wait());
    // Another process loads: wake when it announces its release. A release
    // before the watch began is caught by looking once at once.
    let mut release = store.watch_release(request.key);
    let mut look_now = release.as_ref().is_some_and(ReleaseWatch::live);
    let mut pause = Duration::from_millis(2);
    while let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|left| !left.is_zero()) {
        match &mut release {
            _ if std::mem::take(&mut look_now) => {}
            // The release is announced: wake on it, polling seldom in case it is lost.
            Some(release) if release.live() => release.wait(left.min(ANNOUNCED_POLL)).await,
            _ => {
                tokio::time::sleep(pause.min(left)).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
        match store.lookup(request).await {
            Found::Fresh(value, meta) if request.accepts(&value) => {
                entry_info::record(|| meta.info(request.key, true));
                return Claim::Served(value);
            }
            Found::Unavailable => return Claim::Load(LeaseGuard::none(store, request)),
            Found::Fresh(..) | Found::Stale(..) | Found::Miss => {}
        }
        match LeaseGuard::take(store, request, lifetime).await {
            // The holder may have stored between the look and the take: look
            // again (the lease is given back if so).
            Ok(Some(lease)) => match store.lookup(request).await {
                Found::Fresh(value, meta) if request.accepts(&value) => {
                    entry_info::record(|| meta.info(request.key, true));
                    return Claim::Served(value);
                }
                _ => return Claim::Load(lease),
            },
            Ok(None) => {}
            Err(error) => return Claim::Load(unavailable(store, request, &error)),
        }
    }
    tracing::debug!(function = request.site.function(), key = %request.key, "lease wait over: loading without storing");
    Claim::Load(LeaseGuard::none(store, request))
}

fn unavailable<'s, 'r>(
    store: &'s FencedStore,
    request: &'s Request<'r>,
    error: &CacheError,
) -> LeaseGuard<'s, 'r> {
    request.site.record_error(error.class());
    tracing::debug!(function = request.site.function(), %error, "cache unavailable: running the function body");
    LeaseGuard::none(store, request)
}

/// Commits the leader's value, under the tags its body learned too, and
/// tells the waiters.
async fn finish(
    request: &Request<'_>,
    flight: FlightGuard<'_>,
    lease: LeaseGuard<'_, '_>,
    fill: Option<Fill<'_>>,
    learned: Learned,
) {
    let Some(fill) = fill else {
        drop(lease); // gives the lease back
        flight.finish(Outcome::Failed);
        return;
    };
    let value = fill.value.clone();
    let Some((token, ticket)) = lease.held.as_ref().filter(|_| !learned.failed) else {
        // Loaded without a lease (or a learned tag's generation is unknown):
        // nothing vouches for the value to callers that joined later, so they
        // run their own bodies.
        flight.finish(Outcome::Failed);
        return;
    };
    let learned = (!learned.names.is_empty()).then(|| with_learned(request, ticket, learned));
    let extended;
    let (request, ticket) = match &learned {
        Some((names, ticket)) => {
            extended = Request { dependencies: names, ..*request };
            (&extended, ticket)
        }
        None => (request, ticket),
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

/// The request's dependencies and the ticket, with the tags a body learned
/// appended. An entry with learned tags skips a two-level cache's in-process
/// layer, whose generations cover the attribute's tags only.
fn with_learned(request: &Request<'_>, ticket: &Ticket, learned: Learned) -> (Vec<String>, Ticket) {
    let mut ticket = ticket.clone();
    let mut names = request.dependencies.to_vec();
    names.extend(learned.names);
    ticket.generations.extend(learned.generations);
    ticket.local = None;
    (names, ticket)
}

/// A load's lease token and ticket. Armed from before the lease is asked for
/// until the value is stored: dropped armed (load failed, cancelled, panicked,
/// not stored, or cut off while the lease was being taken), it gives the lease
/// back at once, without waiting.
struct LeaseGuard<'s, 'r> {
    store: &'s FencedStore,
    request: &'s Request<'r>,
    token: Option<u128>,
    held: Option<(u128, Ticket)>,
}

impl<'s, 'r> LeaseGuard<'s, 'r> {
    /// No lease: the value will not be stored.
    fn none(store: &'s FencedStore, request: &'s Request<'r>) -> Self {
        Self { store, request, token: None, held: None }
    }

    /// Asks for the lease; `Ok(None)` when another process holds it.
    async fn take(
        store: &'s FencedStore,
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

#[cfg(test)]
mod tests {
    use super::xfetch;

    const MS: u64 = 1_000; // microseconds
    const DELTA: u64 = 100 * MS;
    const EXPIRY: u64 = 10_000 * MS;

    /// Whether a read at `gap` before expiry refreshes, with a uniform draw from `rng`.
    fn draw(rng: &mut fastrand::Rng, gap: u64) -> bool {
        xfetch(EXPIRY - gap, EXPIRY, DELTA, 1.0, 1.0 - rng.f64())
    }

    /// `observed` within five standard deviations (plus a little slack) of `p` over `n` trials.
    fn close(observed: f64, p: f64, n: usize) -> bool {
        let sigma = (p * (1.0 - p) / n as f64).sqrt();
        (observed - p).abs() <= 5.0 * sigma + 0.002
    }

    #[test]
    fn one_read_refreshes_with_probability_exp_of_minus_gap_over_delta_beta() {
        let mut rng = fastrand::Rng::with_seed(7);
        let n = 20_000;
        for gap_ms in [10, 50, 100, 200, 500] {
            let refreshed = (0..n).filter(|_| draw(&mut rng, gap_ms * MS)).count();
            let observed = refreshed as f64 / n as f64;
            let predicted = (-(gap_ms as f64) / 100.0).exp();
            assert!(close(observed, predicted, n), "gap {gap_ms} ms: {observed} against {predicted}");
        }
    }

    #[test]
    fn a_hot_key_is_refreshed_shortly_before_expiry_as_predicted() {
        // Entries read every millisecond from 1 s before expiry: where does the
        // first refresh happen?
        let mut rng = fastrand::Rng::with_seed(11);
        let n = 5_000;
        let gaps: Vec<u64> = (1..=1_000).rev().map(|ms| ms * MS).collect();
        let refreshed_at: Vec<u64> =
            (0..n).map(|_| gaps.iter().copied().find(|&gap| draw(&mut rng, gap)).unwrap_or(0)).collect();
        assert!(refreshed_at.iter().all(|&gap| gap > 0), "every hot entry is refreshed before it expires");
        for x_ms in [100, 200, 300, 500] {
            // Refreshed more than x before expiry unless every read up to then declined.
            let declined: f64 = gaps
                .iter()
                .filter(|&&gap| gap > x_ms * MS)
                .map(|&gap| 1.0 - (-(gap as f64) / DELTA as f64).exp())
                .product();
            let predicted = 1.0 - declined;
            let observed = refreshed_at.iter().filter(|&&gap| gap > x_ms * MS).count() as f64 / n as f64;
            assert!(close(observed, predicted, n), "earlier than {x_ms} ms: {observed} against {predicted}");
        }
    }

    #[test]
    fn a_rarely_read_key_is_almost_never_refreshed_early() {
        // Reads every 5 s (50 times the load time), at a random phase.
        let mut rng = fastrand::Rng::with_seed(13);
        let n = 20_000;
        let refreshed = (0..n)
            .filter(|_| {
                let phase = rng.u64(1..5_000 * MS);
                [phase, phase + 5_000 * MS].iter().any(|&gap| draw(&mut rng, gap))
            })
            .count();
        let observed = refreshed as f64 / n as f64;
        // E[exp(-U / delta)] for U uniform over 5 s: delta / 5 s = 0.02.
        assert!(close(observed, 0.02, n), "{observed}");
    }

    #[test]
    fn edges() {
        assert!(xfetch(EXPIRY, EXPIRY, DELTA, 1.0, 0.5), "expired");
        assert!(!xfetch(0, EXPIRY, 0, 1.0, 1e-300), "an instant load is never refreshed early");
        assert!(!xfetch(0, EXPIRY, DELTA, 1.0, 1.0), "a draw of 1 never refreshes a fresh entry");
        assert!(xfetch(EXPIRY - 1, EXPIRY, DELTA, 1.0, 0.0), "a draw of 0 always does");
        // Extreme values neither panic nor refresh a far expiry with an instant load.
        let _ = xfetch(0, u64::MAX, u64::MAX, f64::MAX, 0.5);
        assert!(!xfetch(0, u64::MAX, 0, f64::MAX, f64::MIN_POSITIVE));
    }
}
