//! Several instances of the example API, each with its own cache and its own
//! database connection, all on one database (and, for the Redis strategies,
//! one Redis), answering reads and writes sent to them by the clients.
//!
//! Each instance is a thread running its own single-threaded tokio runtime,
//! not an OS process. What makes instances separate for a cache is that they
//! share nothing but the database and Redis: each has its own `Cache` value
//! (its own in-memory store, single flight, Redis connections and bus
//! subscriber), its own database connections and its own executor, and a
//! request to one never runs on another's threads. Keeping them in one
//! process lets the clients check staleness exactly: "a write had completed
//! on A before the read on B began" is an ordering of two atomic operations
//! in one address space, with no clock skew and no IPC in the measured path.
//! The one thing shared that separate processes would not share is the
//! runtime's process-wide counters (`cache_runtime::stats`), which the
//! showcase wants summed over instances anyway.

use std::time::Duration;

use axum::Router;
use cache_runtime::Cache;
use tokio::sync::{mpsc, oneshot};

use super::endpoint;
use crate::api::ApiError;
use crate::db::Db;

/// How reads and writes go through the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Every read loads from the database.
    NoCache,
    /// A cache in each instance's memory; writes do not invalidate.
    InMemoryTtl,
    /// A cache in each instance's memory; a write invalidates the writing instance's cache only.
    InMemoryInvalidation,
    /// The page cache in each instance's memory, invalidated by the writing instance.
    PageCache,
    /// One Redis; writes do not invalidate.
    RedisTtl,
    /// One Redis; writes drop the profile.
    RedisEvents,
    /// One Redis; writes bump the profile's namespace version.
    RedisVersioned,
    /// Redis under an in-process layer in each instance, kept coherent by the bus.
    TwoLevel,
    /// One Redis, events, a 5 s TTL and stale-while-revalidate.
    StaleWhileRevalidate,
    /// The two-level cache, and writes that store the new profile (write-through).
    WriteThrough,
}

impl Strategy {
    /// Every strategy, in the order they run.
    pub const ALL: [Self; 10] = [
        Self::NoCache,
        Self::InMemoryTtl,
        Self::InMemoryInvalidation,
        Self::PageCache,
        Self::RedisTtl,
        Self::RedisEvents,
        Self::RedisVersioned,
        Self::TwoLevel,
        Self::StaleWhileRevalidate,
        Self::WriteThrough,
    ];

    /// For tables.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::NoCache => "no cache",
            Self::InMemoryTtl => "in-memory, TTL only",
            Self::InMemoryInvalidation => "in-memory, local invalidation",
            Self::PageCache => "in-memory full-page, local inval.",
            Self::RedisTtl => "Redis, TTL only",
            Self::RedisEvents => "Redis, event invalidation",
            Self::RedisVersioned => "Redis, versioned namespaces",
            Self::TwoLevel => "two-level (local + Redis + bus)",
            Self::StaleWhileRevalidate => "Redis, events + SWR (ttl 5 s)",
            Self::WriteThrough => "two-level + write-through",
        }
    }

    /// For the chart.
    #[must_use]
    pub fn color(self) -> &'static str {
        match self {
            Self::NoCache => "#d62728",
            Self::InMemoryTtl => "#bcbd22",
            Self::InMemoryInvalidation => "#2ca02c",
            Self::PageCache => "#8c564b",
            Self::RedisTtl => "#ff7f0e",
            Self::RedisEvents => "#1f77b4",
            Self::RedisVersioned => "#9467bd",
            Self::TwoLevel => "#17becf",
            Self::StaleWhileRevalidate => "#e377c2",
            Self::WriteThrough => "#7f7f7f",
        }
    }

    /// Whether the strategy needs Redis.
    #[must_use]
    pub fn needs_redis(self) -> bool {
        matches!(
            self,
            Self::RedisTtl
                | Self::RedisEvents
                | Self::RedisVersioned
                | Self::TwoLevel
                | Self::StaleWhileRevalidate
                | Self::WriteThrough
        )
    }
}

/// What a client asks an instance.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// Read the user's profile.
    Read(u64),
    /// Update the user (`round` makes the new name).
    Write(u64, u64),
    /// How many queries the instance's database connection has run.
    Queries,
}

/// What an instance answers: the version of the user it read or wrote.
pub type Answer = Result<u64, String>;

struct Job {
    op: Op,
    reply: oneshot::Sender<Answer>,
}

/// One instance: its thread and the queue to it.
pub struct Instance {
    queue: mpsc::UnboundedSender<Job>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What each instance is built with.
#[derive(Clone)]
pub struct Blueprint {
    /// The strategy.
    pub strategy: Strategy,
    /// Redis, for the strategies that need it.
    pub redis_url: Option<String>,
    /// The Redis key prefix all instances of this run share.
    pub prefix: String,
    /// Added to every query.
    pub query_min: Duration,
    /// Up to this much more per query.
    pub query_spread: Duration,
    /// In-process layer of the two-level cache, per instance.
    pub local_bytes: u64,
}

/// What an instance serves with.
struct Server {
    strategy: Strategy,
    cache: Cache,
    db: Db,
    pages: Router,
}

impl Blueprint {
    fn cache(&self) -> Result<Cache, String> {
        if !self.strategy.needs_redis() {
            return Ok(Cache::in_memory());
        }
        let url = self.redis_url.as_deref().ok_or("no Redis")?;
        let builder =
            Cache::builder().redis(url).and_then(|b| b.prefix(&self.prefix)).map_err(|e| e.to_string())?;
        Ok(match self.strategy {
            Strategy::TwoLevel | Strategy::WriteThrough => builder.local_cache(self.local_bytes).build(),
            _ => builder.build(),
        })
    }

    async fn server(&self) -> Result<Server, String> {
        let mut db = crate::setup::database().await.map_err(|e| e.to_string())?;
        db.extra_latency = self.query_min;
        db.extra_latency_spread = self.query_spread;
        let cache = self.cache()?;
        let pages = match self.strategy {
            Strategy::PageCache => endpoint::profile_pages(&cache, &db).map_err(|e| e.to_string())?,
            _ => Router::new(),
        };
        Ok(Server { strategy: self.strategy, cache, db, pages })
    }
}

impl Server {
    async fn answer(&self, op: Op) -> Result<u64, ApiError> {
        let (cache, db) = (&self.cache, &self.db);
        match op {
            Op::Queries => Ok(db.queries()),
            Op::Read(id) => {
                let profile = match self.strategy {
                    Strategy::NoCache => endpoint::load_profile(db, id).await?,
                    Strategy::PageCache => endpoint::read_page(&self.pages, id).await?,
                    Strategy::RedisVersioned => endpoint::profile_versioned(cache, db, id).await?,
                    Strategy::StaleWhileRevalidate => {
                        endpoint::profile_swr(cache.clone(), db.clone(), id).await?
                    }
                    Strategy::WriteThrough => endpoint::profile_written_through(cache, db, id).await?,
                    Strategy::InMemoryTtl
                    | Strategy::InMemoryInvalidation
                    | Strategy::RedisTtl
                    | Strategy::RedisEvents
                    | Strategy::TwoLevel => endpoint::profile(cache, db, id).await?,
                };
                Ok(profile.user.version)
            }
            Op::Write(id, round) => {
                let user = match self.strategy {
                    Strategy::NoCache | Strategy::InMemoryTtl | Strategy::RedisTtl => {
                        endpoint::update_only(db, id, round).await?
                    }
                    Strategy::PageCache => endpoint::update_profile_page(cache, db, id, round).await?,
                    Strategy::RedisVersioned => {
                        endpoint::update_profile_versioned(cache, db, id, round).await?
                    }
                    Strategy::StaleWhileRevalidate => {
                        endpoint::update_profile_swr(cache, db, id, round).await?
                    }
                    Strategy::WriteThrough => {
                        endpoint::update_profile_through(cache, db, id, round).await?.user
                    }
                    Strategy::InMemoryInvalidation | Strategy::RedisEvents | Strategy::TwoLevel => {
                        endpoint::update_profile(cache, db, id, round).await?
                    }
                };
                Ok(user.version)
            }
        }
    }
}

impl Instance {
    /// Starts an instance on a thread of its own; returns once its database
    /// and cache are ready.
    ///
    /// # Errors
    /// When its runtime, database or cache cannot be set up.
    pub async fn start(blueprint: Blueprint, number: usize) -> Result<Self, String> {
        let (queue, mut jobs) = mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready) = oneshot::channel::<Result<(), String>>();
        let thread = std::thread::Builder::new()
            .name(format!("instance-{number}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error.to_string()));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let server = match blueprint.server().await {
                        Ok(server) => std::sync::Arc::new(server),
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    while let Some(Job { op, reply }) = jobs.recv().await {
                        let server = std::sync::Arc::clone(&server);
                        tokio::spawn(async move {
                            let answer = server.answer(op).await.map_err(|e| format!("{e:?}"));
                            let _ = reply.send(answer);
                        });
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        let instance = Self { queue, thread: Some(thread) };
        match ready.await {
            Ok(Ok(())) => Ok(instance),
            Ok(Err(error)) => Err(format!("instance {number}: {error}")),
            Err(_) => Err(format!("instance {number} stopped while starting")),
        }
    }

    /// Sends `op` and waits for the answer.
    pub async fn call(&self, op: Op) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Job { op, reply }).map_err(|_| "instance stopped".to_owned())?;
        answer.await.map_err(|_| "instance dropped the request".to_owned())?
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Closing the queue ends the instance's loop; its runtime drops what
        // is still running.
        let (closed, _) = mpsc::unbounded_channel();
        self.queue = closed;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
