//! What a `#[cached]` call served: for HTTP caching headers and diagnostics.
//!
//! Wrap calls in [`capture`] to learn the key, fill time and freshness of the
//! entry the last `#[cached]` call inside it served or stored. Outside
//! `capture` nothing is recorded and nothing is paid.

use std::cell::RefCell;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

/// The entry behind a `#[cached]` call's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// The rendered key, without the Redis prefix (`user:42`).
    pub key: String,
    /// When the value was loaded and stored.
    pub filled_at: SystemTime,
    /// Until when the value is fresh.
    pub fresh_until: SystemTime,
    /// Fingerprint of the tag and version generations the entry depends on:
    /// it changes whenever one of them is invalidated.
    pub generation: u64,
    /// Whether the answer came from the cache (`false`: the body ran).
    pub hit: bool,
}

impl EntryInfo {
    /// Time since the value was filled (zero if the clock went backwards).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    ///
    /// let now = SystemTime::now();
    /// let entry = cache_runtime::EntryInfo {
    ///     key: "user:1".into(),
    ///     filled_at: now - Duration::from_secs(30),
    ///     fresh_until: now + Duration::from_secs(270),
    ///     generation: 0,
    ///     hit: true,
    /// };
    /// assert!(entry.age() >= Duration::from_secs(30));
    /// assert!(entry.remaining() <= Duration::from_secs(270));
    /// ```
    #[must_use]
    pub fn age(&self) -> Duration {
        SystemTime::now().duration_since(self.filled_at).unwrap_or_default()
    }

    /// Freshness left (zero once stale).
    #[must_use]
    pub fn remaining(&self) -> Duration {
        self.fresh_until.duration_since(SystemTime::now()).unwrap_or_default()
    }
}

tokio::task_local! {
    static CAPTURED: RefCell<Option<EntryInfo>>;
}

/// Runs `future`, returning its output and the entry of the last `#[cached]`
/// call inside it that served a value (`None` if none did, or if the value
/// could not be stored).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// #[cache_runtime::cached(key = "answer", ttl = 60)]
/// async fn answer() -> u32 { 42 }
///
/// let (_, first) = cache_runtime::capture(answer()).await;
/// let (_, second) = cache_runtime::capture(answer()).await;
/// let (first, second) = (first.unwrap(), second.unwrap());
/// assert!(!first.hit && second.hit);
/// assert_eq!(first.filled_at, second.filled_at);
/// # });
/// ```
pub async fn capture<F: Future>(future: F) -> (F::Output, Option<EntryInfo>) {
    CAPTURED
        .scope(RefCell::new(None), async move {
            let output = future.await;
            let info = CAPTURED.with(|captured| captured.borrow_mut().take());
            (output, info)
        })
        .await
}

/// Records `info()` when inside [`capture`]; free otherwise.
#[inline]
pub(crate) fn record(info: impl FnOnce() -> EntryInfo) {
    let _ = CAPTURED.try_with(|captured| *captured.borrow_mut() = Some(info()));
}

/// When an entry was filled and how long it stays fresh: the part of an
/// entry every store keeps, and the one place an [`EntryInfo`] is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryMeta {
    pub(crate) filled_at_ms: u64,
    pub(crate) fresh_until_ms: u64,
    pub(crate) stale_until_ms: u64,
    pub(crate) load_micros: u64,
    /// [`generation_fingerprint`] of the generations it was stored under.
    pub(crate) generations: u64,
    /// Stored under other dependencies than the caller's (tags its body
    /// learned, or a tag outside the key): a two-level cache keeps it out of
    /// its in-process layer, whose generations are the caller's.
    pub(crate) other_dependencies: bool,
}

impl EntryMeta {
    /// The times of an entry filled now: fresh for `fill.lifetime`, then kept
    /// `fill.keep` longer to be served stale (stale-while-revalidate, fail-safe).
    pub(crate) fn filled_now(fill: &crate::store::Fill<'_>, generations: &[u64]) -> Self {
        let filled_at_ms = unix_ms();
        let fresh_until_ms = filled_at_ms.saturating_add(duration_ms(fill.lifetime));
        Self {
            filled_at_ms,
            fresh_until_ms,
            stale_until_ms: fresh_until_ms.saturating_add(duration_ms(fill.keep)),
            load_micros: u64::try_from(fill.load_time.as_micros()).unwrap_or(u64::MAX),
            generations: generation_fingerprint(generations.iter().copied()),
            other_dependencies: false,
        }
    }

    /// What [`capture`] reports for this entry under `key`.
    pub(crate) fn info(&self, key: &crate::KeyWriter, hit: bool) -> EntryInfo {
        EntryInfo {
            key: key.as_str().to_owned(),
            filled_at: from_unix_ms(self.filled_at_ms),
            fresh_until: from_unix_ms(self.fresh_until_ms),
            generation: self.generations,
            hit,
        }
    }
}

/// Milliseconds since the Unix epoch as a time (saturating far in the future).
pub(crate) fn from_unix_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 64))
}

/// `now + duration`, or far in the future when that does not fit.
pub(crate) fn deadline_after(duration: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(duration)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Whole milliseconds of a duration, saturating.
pub(crate) fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, duration_ms)
}

/// A fingerprint of generations (FNV-1a).
pub(crate) fn generation_fingerprint(generations: impl IntoIterator<Item = u64>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for generation in generations {
        for byte in generation.to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}
