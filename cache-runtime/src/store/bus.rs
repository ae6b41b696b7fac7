//! The coherence bus of a two-level cache: every process publishes what it
//! invalidates on one Redis channel per prefix, and each process's subscriber
//! applies what the others published to its in-process layer.
//!
//! The subscriber owns its connection and reconnects by itself. The
//! in-process layer is *vouched for* only while the subscriber is connected
//! and has seen every message:
//! - after a (re)connection the layer is emptied (anything may have been
//!   missed), and used again once every publisher has been heard from: one
//!   [`HEARTBEAT`] and a margin later;
//! - each process publishes a heartbeat every [`HEARTBEAT`] with the sequence
//!   number of its last message, so a lost message is found at that
//!   publisher's next message or heartbeat, and the layer is emptied again;
//! - the subscriber connection is pinged every half of the cache's
//!   `local_max_silence` (100 ms by default): when nothing has answered for
//!   that long, the layer is not vouched for until an answer comes, so a
//!   process whose bus falls silent (Redis paused, a partition) stops serving
//!   its layer within `local_max_silence`; silent for longer than the cache's
//!   timeout (and at least a [`HEARTBEAT`]), it counts as a disconnection.
//!
//! While it is not vouched for, reads go to Redis, which is always consistent.
//!
//! On a Redis Cluster the channel is classic pub/sub, which every node relays
//! to the whole cluster, so the subscriber listens on any one node: the seed
//! nodes in turn, the next one after each failure (a node killed or failed
//! over is left for another).
//!
//! A message is one line `<publisher> <sequence>` and then one line per target:
//! `k<key>`, `d<tag or version counter>`, `c` (the cache was cleared) or `h`
//! (a heartbeat, which does not take a sequence number). Keys and counter
//! names are escaped and contain no line breaks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;

use super::Targets;
use super::memory::MemoryStore;
use super::redis::RedisStore;
use crate::key::KeyWriter;
use crate::observe;

/// How often each process publishes a heartbeat and checks that its subscriber connection answers.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

/// Default longest silence of the bus before the layer stops serving.
pub(crate) const DEFAULT_MAX_SILENCE: Duration = Duration::from_millis(100);

/// How long after (re)connecting the layer waits to hear from every publisher.
const LEARNING: Duration = Duration::from_millis(1_500);

/// What one message asks the other processes to drop.
pub(crate) enum Announcement<'a> {
    Targets(&'a Targets),
    Clear,
    /// The last sequence number, so that others find messages they missed.
    Heartbeat,
}

/// The bus of one cache: its publisher side and its subscriber's state.
pub(crate) struct Bus {
    channel: String,
    publisher: u64,
    /// The last sequence number published; held while publishing, so messages
    /// leave in sequence order.
    sequence: tokio::sync::Mutex<u64>,
    vouched: AtomicBool,
    /// The longest the bus may be silent while the layer serves.
    max_silence: Duration,
    started: std::sync::Once,
    /// The last sequence number seen of each other publisher.
    seen: Mutex<HashMap<u64, u64>>,
    drop_next: AtomicBool,
    pub(crate) messages: AtomicU64,
    pub(crate) gaps: AtomicU64,
    pub(crate) resyncs: AtomicU64,
}

impl Bus {
    pub(crate) fn new(prefix: &str, max_silence: Duration) -> Self {
        Self {
            channel: format!("{prefix}:bus"),
            publisher: fastrand::u64(..),
            sequence: tokio::sync::Mutex::new(0),
            vouched: AtomicBool::new(false),
            max_silence: max_silence.max(Duration::from_millis(2)),
            started: std::sync::Once::new(),
            seen: Mutex::new(HashMap::new()),
            drop_next: AtomicBool::new(false),
            messages: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            resyncs: AtomicU64::new(0),
        }
    }

    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    /// Whether the in-process layer may serve: the subscriber is connected and has missed nothing.
    #[inline]
    pub(crate) fn vouched(&self) -> bool {
        self.vouched.load(Ordering::Acquire)
    }

    /// Starts the subscriber on the current tokio runtime, once; without a
    /// runtime it starts on a later call.
    pub(crate) fn start(self: &Arc<Self>, l2: &RedisStore, l1: &Arc<MemoryStore>) {
        if self.started.is_completed() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.started.call_once(|| {
            let subscriber = Subscriber { bus: Arc::downgrade(self), l2: l2.clone(), l1: Arc::downgrade(l1) };
            runtime.spawn(subscriber.run());
        });
    }

    /// The next message announcing `what`, and the lock that keeps messages in
    /// sequence order until it is published.
    pub(crate) async fn message(
        &self,
        what: Announcement<'_>,
    ) -> (Vec<u8>, tokio::sync::MutexGuard<'_, u64>) {
        let mut sequence = self.sequence.lock().await;
        if !matches!(what, Announcement::Heartbeat) {
            *sequence += 1;
        }
        let mut message = format!("{:016x} {}", self.publisher, *sequence).into_bytes();
        match what {
            Announcement::Targets(targets) => {
                for key in &targets.keys {
                    message.extend_from_slice(b"\nk");
                    message.extend_from_slice(key.as_bytes());
                }
                for name in &targets.dependencies {
                    message.extend_from_slice(b"\nd");
                    message.extend_from_slice(name.as_bytes());
                }
            }
            Announcement::Clear => message.extend_from_slice(b"\nc"),
            Announcement::Heartbeat => message.extend_from_slice(b"\nh"),
        }
        (message, sequence)
    }

    /// The bus fell silent: the layer stops serving until it speaks again.
    fn falls_silent(&self) {
        self.vouched.store(false, Ordering::Release);
        tracing::warn!(silence = ?self.max_silence, "cache bus silent: the local cache is not used until Redis answers");
    }

    /// The bus answers again after a silence: the layer serves again. Nothing
    /// was missed meanwhile: the connection stayed up, and what was published
    /// on it arrives in order, before the answer.
    fn speaks(&self) {
        self.vouched.store(true, Ordering::Release);
        tracing::info!("cache bus answers again: the local cache is used again");
    }

    /// Drops the next message received, as if Redis lost it (for tests).
    pub(crate) fn drop_next_message(&self) {
        self.drop_next.store(true, Ordering::Relaxed);
    }

    /// Empties the in-process layer and forgets what was heard, to listen
    /// again for [`LEARNING`] before the layer is used.
    fn resync(&self, l1: &MemoryStore) {
        self.vouched.store(false, Ordering::Release);
        l1.clear();
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.resyncs.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(observe::BUS_RESYNCS).increment(1);
    }

    /// Applies one message to the in-process layer.
    async fn receive(&self, payload: &[u8], l1: &MemoryStore) {
        if self.drop_next.swap(false, Ordering::Relaxed) {
            return;
        }
        self.messages.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(observe::BUS_MESSAGES).increment(1);
        let mut lines = payload.split(|&byte| byte == b'\n');
        let Some((publisher, sequence)) = lines.next().and_then(header) else {
            tracing::warn!("unreadable cache bus message: emptying the local cache");
            self.gap(l1);
            return;
        };
        if publisher == self.publisher {
            return;
        }
        let heartbeat = payload.ends_with(b"\nh");
        if !self.in_sequence(publisher, sequence, heartbeat) {
            tracing::warn!(publisher, sequence, "cache bus messages were missed: emptying the local cache");
            self.gap(l1);
            return;
        }
        let mut targets = Targets::default();
        for line in lines {
            match line.split_first() {
                Some((b'k', key)) => targets.keys.push(KeyWriter::from_rendered(key)),
                Some((b'd', name)) => targets.dependencies.push(String::from_utf8_lossy(name).into_owned()),
                Some((b'c', _)) => {
                    l1.clear();
                    return;
                }
                _ => {}
            }
        }
        let _ = super::Store::invalidate(l1, &targets, super::Urgency::Normal).await;
    }

    /// Whether a message (or heartbeat) of `publisher` numbered `sequence`
    /// follows all of its messages: records it either way.
    fn in_sequence(&self, publisher: u64, sequence: u64, heartbeat: bool) -> bool {
        let learning = !self.vouched();
        let previous = self.seen.lock().unwrap_or_else(PoisonError::into_inner).insert(publisher, sequence);
        match (previous, heartbeat) {
            (Some(previous), false) => sequence == previous + 1,
            (Some(previous), true) => sequence == previous,
            // A publisher first heard after the learning period started after it:
            // nothing of it was missed if this is its first message.
            (None, _) if learning => true,
            (None, false) => sequence == 1,
            (None, true) => sequence == 0,
        }
    }

    /// Messages were missed: empties the layer, whose entries they may have concerned.
    fn gap(&self, l1: &MemoryStore) {
        self.gaps.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(observe::BUS_GAPS).increment(1);
        self.resyncs.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(observe::BUS_RESYNCS).increment(1);
        l1.clear();
    }
}

/// `<publisher> <sequence>`.
fn header(line: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(line).ok()?;
    let (publisher, sequence) = text.split_once(' ')?;
    Some((u64::from_str_radix(publisher, 16).ok()?, sequence.parse().ok()?))
}

/// What a probe of the subscriber connection changed.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    /// It answers again after a silence.
    Spoke,
    /// Nothing answered for the longest silence allowed.
    FellSilent,
    /// Nothing answered for so long that the connection counts as lost.
    Gone,
    Unchanged,
}

/// When the subscriber connection last answered, and whether it is silent now.
struct Silence {
    last_answer: tokio::time::Instant,
    quiet: bool,
    max_silence: Duration,
    lost_after: Duration,
}

impl Silence {
    fn new(max_silence: Duration, lost_after: Duration) -> Self {
        Self { last_answer: tokio::time::Instant::now(), quiet: false, max_silence, lost_after }
    }

    fn heard(&mut self, answered: bool) -> Heard {
        if answered {
            self.last_answer = tokio::time::Instant::now();
            return if std::mem::take(&mut self.quiet) { Heard::Spoke } else { Heard::Unchanged };
        }
        match self.last_answer.elapsed() {
            silent if silent >= self.lost_after => Heard::Gone,
            silent if silent >= self.max_silence && !self.quiet => {
                self.quiet = true;
                Heard::FellSilent
            }
            _ => Heard::Unchanged,
        }
    }
}

/// The subscriber task; it ends when the cache is dropped.
struct Subscriber {
    bus: Weak<Bus>,
    /// Publishes the heartbeats.
    l2: RedisStore,
    l1: Weak<MemoryStore>,
}

impl Subscriber {
    async fn run(self) {
        let mut backoff = Duration::from_millis(50);
        // On a cluster, which seed node to subscribe on: the next one after a failure.
        let mut attempt = 0_usize;
        loop {
            let Some(channel) = self.bus.upgrade().map(|bus| bus.channel.clone()) else {
                return;
            };
            match self.connect(&channel, attempt).await {
                Ok(pubsub) => {
                    backoff = Duration::from_millis(50);
                    if !self.listen(pubsub).await {
                        return;
                    }
                }
                Err(error) => {
                    let error = super::CacheError::classify(error);
                    self.l2.note_problem(&error);
                    tracing::debug!(%error, "cache bus: cannot subscribe yet");
                }
            }
            attempt = attempt.wrapping_add(1);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn connect(&self, channel: &str, attempt: usize) -> redis::RedisResult<redis::aio::PubSub> {
        let subscribe = async {
            let mut pubsub = self.l2.node_client(attempt).get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok(pubsub)
        };
        tokio::time::timeout(self.l2.timeout(), subscribe)
            .await
            .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Io, "subscribe timed out"))))
    }

    /// Serves one connection until it fails; `false` when the cache is gone.
    async fn listen(&self, pubsub: redis::aio::PubSub) -> bool {
        let (Some(bus), Some(l1)) = (self.bus.upgrade(), self.l1.upgrade()) else {
            return false;
        };
        bus.resync(&l1);
        let learned_at = tokio::time::Instant::now() + LEARNING;
        let (mut sink, mut stream) = pubsub.split();
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut probe = tokio::time::interval(bus.max_silence / 2);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut silence = Silence::new(bus.max_silence, self.l2.timeout().max(HEARTBEAT));
        let mut learned = false;
        let alive = loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => bus.receive(message.get_payload_bytes(), &l1).await,
                    None => break true,
                },
                () = tokio::time::sleep_until(learned_at), if !learned => {
                    learned = true;
                    if !silence.quiet {
                        bus.vouched.store(true, Ordering::Release);
                    }
                }
                _ = probe.tick() => {
                    let ping = tokio::time::timeout(bus.max_silence / 2, sink.ping::<redis::Value>()).await;
                    match silence.heard(matches!(ping, Ok(Ok(_)))) {
                        Heard::Spoke if learned => bus.speaks(),
                        Heard::FellSilent => bus.falls_silent(),
                        Heard::Gone => break true,
                        Heard::Spoke | Heard::Unchanged => {}
                    }
                }
                _ = heartbeat.tick() => {
                    if Arc::strong_count(&bus) == 1 {
                        break false; // only this task holds the bus: the cache is gone
                    }
                    let l1_bytes = super::Store::status(&*l1).weight_bytes.unwrap_or(0);
                    metrics::gauge!(observe::L1_BYTES).set(l1_bytes as f64);
                    let (message, sequence) = bus.message(Announcement::Heartbeat).await;
                    let _ = self.l2.publish(bus.channel(), &message).await;
                    drop(sequence);
                }
            }
        };
        bus.vouched.store(false, Ordering::Release);
        if alive {
            tracing::warn!("cache bus disconnected: the local cache is not used until it is back");
        }
        alive
    }
}
