//! The circuit breaker: after consecutive failures, calls skip Redis without
//! waiting; after a cooldown one probe goes through (half-open) and the first
//! success closes it.
//!
//! A call holds a [`Permit`] while it talks to Redis. A permit dropped without
//! an outcome (its caller's future was cancelled) gives the probe back, so a
//! cancelled probe never leaves the breaker half-open for good.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The state of a circuit breaker, as [`Cache::status`](crate::Cache::status) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go to Redis.
    Closed,
    /// Calls skip Redis until the cooldown ends.
    Open,
    /// The cooldown ended: the next call probes Redis.
    HalfOpen,
}

pub(crate) struct Breaker {
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which calls are skipped; 0 when closed.
    open_until_ms: AtomicU64,
    probing: AtomicBool,
    epoch: Instant,
    threshold: u32,
    cooldown_ms: u64,
    /// Woken when the breaker closes again (pending invalidations retry then).
    recovered: Arc<Notify>,
}

/// Leave to talk to Redis once. Report the outcome with [`Permit::succeeded`]
/// or [`Permit::failed`]; dropping it unreported releases a probe.
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration, recovered: Arc<Notify>) -> Self {
        Self {
            failures: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            epoch: Instant::now(),
            threshold: threshold.max(1),
            cooldown_ms: u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX),
            recovered,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A permit, or `None` while the breaker is open (or another call probes).
    pub(crate) fn permit(&self) -> Option<Permit<'_>> {
        let open_until = self.open_until_ms.load(Ordering::Acquire);
        if open_until == 0 {
            return Some(Permit { breaker: self, probe: false });
        }
        if self.now_ms() < open_until {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            .then_some(Permit { breaker: self, probe: true })
    }

    /// A permit that ignores the breaker's state (for invalidation retries); its
    /// outcome still counts.
    pub(crate) fn force_permit(&self) -> Permit<'_> {
        Permit { breaker: self, probe: false }
    }

    /// Only writes when something changes: shared cache lines stay unmodified
    /// on the hot path.
    fn record_success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.open_until_ms.load(Ordering::Acquire) != 0
            && self.open_until_ms.swap(0, Ordering::AcqRel) != 0
        {
            tracing::info!("Redis answers again: circuit breaker closed");
            self.recovered.notify_waiters();
        }
    }

    fn record_failure(&self, cause: &dyn std::fmt::Display) {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        if failures >= self.threshold {
            let until = self.now_ms().saturating_add(self.cooldown_ms).max(1);
            if self.open_until_ms.swap(until, Ordering::AcqRel) == 0 {
                tracing::warn!(failures, %cause, "Redis keeps failing: circuit breaker open, calls run their bodies until it answers");
                metrics::counter!(crate::observe::BREAKER_OPENED).increment(1);
            }
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        match self.open_until_ms.load(Ordering::Acquire) {
            0 => BreakerState::Closed,
            until if self.now_ms() < until => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }
}

impl Permit<'_> {
    pub(crate) fn succeeded(self) {
        self.breaker.record_success();
    }

    /// Reports a failure; `cause` is said when it opens the breaker.
    pub(crate) fn failed(self, cause: &dyn std::fmt::Display) {
        self.breaker.record_failure(cause);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.breaker.probing.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_half_opens_after_cooldown() {
        let breaker = Breaker::new(3, Duration::from_millis(30), Arc::default());
        for _ in 0..3 {
            breaker.permit().expect("closed").failed(&"test");
        }
        assert!(breaker.permit().is_none(), "open after 3 failures");
        assert_eq!(breaker.state(), BreakerState::Open);
        std::thread::sleep(Duration::from_millis(40));
        let probe = breaker.permit().expect("one probe after the cooldown");
        assert!(breaker.permit().is_none(), "only one probe at a time");
        probe.failed(&"test");
        assert!(breaker.permit().is_none(), "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(40));
        breaker.permit().expect("probe").succeeded();
        assert!(breaker.permit().is_some() && breaker.permit().is_some(), "closed after a successful probe");
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn a_dropped_probe_lets_the_next_call_probe() {
        let breaker = Breaker::new(1, Duration::from_millis(1), Arc::default());
        breaker.permit().expect("closed").failed(&"test");
        std::thread::sleep(Duration::from_millis(5));
        let probe = breaker.permit().expect("half-open");
        assert!(breaker.permit().is_none());
        drop(probe); // its caller was cancelled
        breaker.permit().expect("the probe was given back").succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn huge_cooldowns_do_not_overflow() {
        let breaker = Breaker::new(1, Duration::MAX, Arc::default());
        breaker.permit().expect("closed").failed(&"test");
        assert!(breaker.permit().is_none());
        assert_eq!(breaker.state(), BreakerState::Open);
    }
}
