//! Misconfiguration, said loudly once: a Redis answer that means the cache is
//! set up wrong (a permission refused) is logged at WARN with its fix, at
//! most once a minute, and shown in the layer's status for a minute.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::CacheError;
use crate::entry_info::unix_ms;

/// How long a problem is shown, and how often it is logged.
const REMEMBERED_MS: u64 = 60_000;

/// The last misconfiguration met, and when it was last logged.
#[derive(Default)]
pub(super) struct Problem {
    last: Mutex<Option<(String, u64)>>,
    logged_at_ms: AtomicU64,
}

impl Problem {
    /// Remembers `error` if it means a misconfiguration, and logs it (once a minute).
    pub(super) fn note(&self, error: &CacheError) {
        if error.fix().is_none() {
            return;
        }
        let now = unix_ms();
        let text = error.to_string(); // with its fix
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some((text, now));
        let logged = self.logged_at_ms.load(Ordering::Relaxed);
        if (logged == 0 || now.saturating_sub(logged) >= REMEMBERED_MS)
            && self.logged_at_ms.compare_exchange(logged, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(class = error.class(), %error, "the Redis cache is misconfigured: calls run their bodies");
        }
    }

    /// The problem met in the last minute, with its fix.
    pub(super) fn current(&self) -> Option<String> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let (text, at) = last.as_ref()?;
        (unix_ms().saturating_sub(*at) < REMEMBERED_MS).then(|| text.clone())
    }
}
