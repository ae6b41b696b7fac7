//! What a `#[cached]` call served: for HTTP caching headers and diagnostics.
//!
//! Wrap calls in [`capture`] to learn the key, fill time and freshness of the
//! entry the last `#[cached]` call inside it served or stored. Outside
//! `capture` nothing is recorded and nothing is paid.

use std::cell::RefCell;
use std::future::Future;
use std::time::{Duration, SystemTime};

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

/// Milliseconds since the Unix epoch as a time.
pub(crate) fn from_unix_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
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
