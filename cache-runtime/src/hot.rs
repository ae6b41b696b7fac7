//! Hot keys: the keys this process serves most, estimated with a bounded
//! Space-Saving sketch over a sample of the calls (one in [`SAMPLE`]), so the
//! hit path pays a random number and, rarely, a short lock.

use std::sync::{Mutex, PoisonError};

/// One call in this many is counted.
pub(crate) const SAMPLE: u32 = 16;
/// Keys tracked; the top ones are accurate when their share is above 1 / `CAPACITY`.
const CAPACITY: usize = 128;

/// A key's estimated calls, and the most that estimate may overcount.
struct Counter {
    key: Box<str>,
    count: u64,
    error: u64,
}

static SKETCH: Mutex<Vec<Counter>> = Mutex::new(Vec::new());

/// Counts a call of `key` (if it is sampled).
#[inline]
pub(crate) fn record(key: &str) {
    if fastrand::u32(..SAMPLE) == 0 {
        record_sampled(key);
    }
}

#[cold]
fn record_sampled(key: &str) {
    // Never waits: a sample that finds the sketch busy is dropped.
    let mut counters = match SKETCH.try_lock() {
        Ok(counters) => counters,
        Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    if let Some(counter) = counters.iter_mut().find(|counter| &*counter.key == key) {
        counter.count += 1;
        return;
    }
    if counters.len() < CAPACITY {
        counters.push(Counter { key: key.into(), count: 1, error: 0 });
        return;
    }
    // Space-Saving: the new key replaces the smallest, inheriting its count.
    if let Some(smallest) = counters.iter_mut().min_by_key(|counter| counter.count) {
        let floor = smallest.count;
        *smallest = Counter { key: key.into(), count: floor + 1, error: floor };
    }
}

/// A key this process serves often, with its estimated number of calls.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HotKey {
    /// The rendered key.
    pub key: String,
    /// Estimated calls since the process started (sampled, scaled back up).
    pub calls: u64,
}

/// The `n` keys this process's `#[cached]` calls asked for most, most asked first.
///
/// ```
/// use cache_runtime::cached;
///
/// #[cached(key = "user:<id>", ttl = 60)]
/// async fn user(id: u64) -> u64 { id }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// for _ in 0..1_000 {
///     user(7).await;
/// }
/// let hot = cache_runtime::hot_keys(1);
/// assert_eq!(hot[0].key, "user:7");
/// # });
/// ```
#[must_use]
pub fn hot_keys(n: usize) -> Vec<HotKey> {
    let counters = SKETCH.lock().unwrap_or_else(PoisonError::into_inner);
    let mut top: Vec<&Counter> = counters.iter().collect();
    top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    top.into_iter()
        .take(n)
        .map(|counter| HotKey {
            key: counter.key.to_string(),
            calls: (counter.count - counter.error / 2) * u64::from(SAMPLE),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_frequent_keys_come_first_among_many_rare_ones() {
        for round in 0..200_000_u64 {
            let key = match round % 10 {
                0..=3 => "hot:a".to_owned(),
                4..=5 => "hot:b".to_owned(),
                _ => format!("rare:{round}"),
            };
            record_sampled(&key);
        }
        let top: Vec<String> = hot_keys(2).into_iter().map(|hot| hot.key).collect();
        assert_eq!(top, ["hot:a", "hot:b"]);
    }
}
