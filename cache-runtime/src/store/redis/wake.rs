//! Prompt wake-ups for callers waiting on another process's lease.
//!
//! A caller that finds an entry's lease held marks the entry as waited for
//! (the acquire script sets `P:{K}:wait`, in the entry's slot). The holder's
//! store or release script then publishes the entry key on `P:wake`, only for
//! entries someone waits for. Each store owns one subscriber connection,
//! started on the first wait, reconnecting with backoff, pinged when quiet, and
//! every step bounded by the store's timeout; it wakes the local waiters of
//! the published key. Waiters keep polling as a fallback (at a longer interval
//! while the subscription is live), so a lost message or a dead subscriber
//! only makes a wait slower, never a call fail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

/// How long a live subscription may stay silent before it is pinged.
const QUIET: Duration = Duration::from_secs(5);
/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The local waiters, by entry key, and the subscription that wakes them.
pub(crate) struct Wakeups {
    client: redis::Client,
    channel: String,
    timeout: Duration,
    waiters: Mutex<HashMap<Box<[u8]>, Waiting>>,
    /// Whether the subscription is up: waiters rely on it and poll less.
    live: AtomicBool,
    started: AtomicBool,
}

struct Waiting {
    wake: watch::Sender<u64>,
    count: usize,
}

impl Wakeups {
    pub(crate) fn new(client: redis::Client, channel: String, timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            client,
            channel,
            timeout,
            waiters: Mutex::new(HashMap::new()),
            live: AtomicBool::new(false),
            started: AtomicBool::new(false),
        })
    }

    fn waiters(&self) -> MutexGuard<'_, HashMap<Box<[u8]>, Waiting>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Interest in the release of the lease of `entry_key`, taken before the
    /// lease is asked for, so a release right after is not missed. Starts the
    /// subscriber on first use (needs a Tokio runtime; without one, `None`).
    pub(crate) fn watch(self: &Arc<Self>, entry_key: &[u8]) -> Option<ReleaseWatch> {
        if !self.started.swap(true, Ordering::AcqRel) {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                self.started.store(false, Ordering::Release);
                return None;
            };
            runtime.spawn(subscribe(Arc::downgrade(self)));
        }
        let receiver = {
            let mut waiters = self.waiters();
            let waiting = waiters
                .entry(entry_key.into())
                .or_insert_with(|| Waiting { wake: watch::channel(0).0, count: 0 });
            waiting.count += 1;
            waiting.wake.subscribe()
        };
        Some(ReleaseWatch { wakeups: Arc::clone(self), key: entry_key.into(), receiver })
    }

    fn wake(&self, entry_key: &[u8]) {
        if let Some(waiting) = self.waiters().get(entry_key) {
            waiting.wake.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes every waiter: the subscription went down, so they poll again.
    fn wake_all(&self) {
        for waiting in self.waiters().values() {
            waiting.wake.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// A caller's interest in one lease's release; dropping it forgets the caller.
pub(crate) struct ReleaseWatch {
    wakeups: Arc<Wakeups>,
    key: Box<[u8]>,
    receiver: watch::Receiver<u64>,
}

impl ReleaseWatch {
    /// Whether the subscription is up, so a release wakes [`ReleaseWatch::wait`].
    pub(crate) fn live(&self) -> bool {
        self.wakeups.live.load(Ordering::Acquire)
    }

    /// Waits until the lease was released (or the subscription went down)
    /// since the watch began or the last wait, at most `max`.
    pub(crate) async fn wait(&mut self, max: Duration) {
        let _ = tokio::time::timeout(max, self.receiver.changed()).await;
    }
}

impl Drop for ReleaseWatch {
    fn drop(&mut self) {
        let mut waiters = self.wakeups.waiters();
        if let Some(waiting) = waiters.get_mut(&self.key) {
            waiting.count = waiting.count.saturating_sub(1);
            if waiting.count == 0 {
                waiters.remove(&self.key);
            }
        }
    }
}

/// The subscriber: connects, subscribes, wakes waiters, reconnects after
/// failures; ends when the store is gone.
async fn subscribe(wakeups: Weak<Wakeups>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(strong) = wakeups.upgrade() else { return };
        let (client, channel, timeout) = (strong.client.clone(), strong.channel.clone(), strong.timeout);
        drop(strong);
        let connected = tokio::time::timeout(timeout, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        match connected {
            Ok(Ok(pubsub)) => {
                backoff = Duration::from_millis(50);
                if !listen(&wakeups, pubsub, timeout).await {
                    return;
                }
            }
            Ok(Err(error)) => tracing::debug!(%error, "lease wake-ups: cannot subscribe; waiters poll"),
            Err(_) => tracing::debug!("lease wake-ups: subscribing timed out; waiters poll"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Wakes the waiters of each published key until the connection fails
/// (`true`: reconnect) or the store is gone (`false`).
async fn listen(wakeups: &Weak<Wakeups>, pubsub: redis::aio::PubSub, timeout: Duration) -> bool {
    let (mut sink, mut messages) = pubsub.split();
    if let Some(strong) = wakeups.upgrade() {
        strong.live.store(true, Ordering::Release);
    }
    let reconnect = loop {
        match tokio::time::timeout(QUIET, messages.next()).await {
            Ok(Some(message)) => match wakeups.upgrade() {
                Some(strong) => strong.wake(message.get_payload_bytes()),
                None => break false,
            },
            Ok(None) => break true, // the connection closed
            Err(_) => {
                if wakeups.strong_count() == 0 {
                    break false;
                }
                let pong = tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    break true;
                }
            }
        }
    };
    if let Some(strong) = wakeups.upgrade() {
        strong.live.store(false, Ordering::Release);
        strong.wake_all();
    }
    reconnect
}
