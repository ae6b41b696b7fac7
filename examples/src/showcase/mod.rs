//! The showcase: the seed articles' profile endpoint served by several
//! instances behind a round-robin client, under each caching strategy in
//! turn, measured side by side against the articles' claims.
//!
//! `cargo run --release -p examples --bin showcase -- --help` lists the flags.

pub mod endpoint;
pub mod fleet;
pub mod report;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::db::SEED_USERS;
use fleet::{Blueprint, Instance, Op, Strategy};

/// The seed articles' caching strategies, reproduced across several instances of the example API.
#[derive(Debug, Clone, Parser)]
#[command(name = "showcase")]
pub struct Settings {
    /// Instances of the API, each with its own cache and database connection.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=64))]
    pub instances: u8,
    /// Concurrent clients, sending to the instances in turn.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,
    /// Operations per second offered by all clients together.
    #[arg(long, default_value_t = 600.0)]
    pub rate: f64,
    /// Seconds of load first, from empty caches (the cold hit rate); then
    /// every instance reads every user once (steady state), then the measure.
    #[arg(long, default_value_t = 5.0)]
    pub warmup: f64,
    /// Seconds measured per strategy, after the warm-up (the steady hit rate).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Share of operations that update a user (profiles change rarely).
    #[arg(long, default_value_t = 0.005)]
    pub write_share: f64,
    /// Users read (the active users), Zipf-distributed.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=SEED_USERS))]
    pub keys: u64,
    /// Zipf exponent of the users' popularity.
    #[arg(long, default_value_t = 1.1)]
    pub zipf: f64,
    /// Least time added to every database query, in ms.
    #[arg(long, default_value_t = 50)]
    pub query_min_ms: u64,
    /// Most time added to every database query, in ms (drawn uniformly).
    #[arg(long, default_value_t = 150)]
    pub query_max_ms: u64,
    /// A fast local database: no time added to queries.
    #[arg(long)]
    pub fast_db: bool,
    /// MiB of process memory per instance in front of Redis (two-level).
    #[arg(long, default_value_t = 64)]
    pub local_mb: u64,
    /// Runs only the strategies whose name contains this text (and no cache,
    /// the baseline), e.g. `--only two-level`.
    #[arg(long)]
    pub only: Option<String>,
    /// Where the latency chart (SVG) goes.
    #[arg(long, default_value = "showcase-latency.svg")]
    pub chart: PathBuf,
    /// Where the HTML report (chart and table, self-contained) goes.
    #[arg(long, default_value = "showcase-report.html")]
    pub report: PathBuf,
}

impl Settings {
    /// Checks what clap cannot.
    ///
    /// # Errors
    /// A described bad value.
    pub fn check(&self) -> Result<(), String> {
        let finite_positive = |name: &str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(format!("--{name} must be a positive number, not {value}"))
            }
        };
        finite_positive("rate", self.rate)?;
        finite_positive("duration", self.duration)?;
        if !(self.warmup.is_finite() && self.warmup >= 0.0) {
            return Err(format!("--warmup must be 0 or more seconds, not {}", self.warmup));
        }
        if !(0.0..=1.0).contains(&self.write_share) {
            return Err(format!("--write-share must be from 0 to 1, not {}", self.write_share));
        }
        if !(self.zipf.is_finite() && self.zipf >= 0.0) {
            return Err(format!("--zipf must be 0 or more, not {}", self.zipf));
        }
        if self.query_min_ms > self.query_max_ms {
            return Err(format!(
                "--query-min-ms ({}) must not exceed --query-max-ms ({})",
                self.query_min_ms, self.query_max_ms
            ));
        }
        if self.query_max_ms > 60_000 {
            return Err("--query-max-ms must be at most 60000".into());
        }
        Ok(())
    }

    /// Added to every query: least and spread.
    #[must_use]
    pub fn query_latency(&self) -> (Duration, Duration) {
        if self.fast_db {
            return (Duration::ZERO, Duration::ZERO);
        }
        (
            Duration::from_millis(self.query_min_ms),
            Duration::from_millis(self.query_max_ms - self.query_min_ms),
        )
    }

    /// How the database was modelled, for the output.
    #[must_use]
    pub fn db_profile(&self) -> String {
        if self.fast_db {
            "fast local database (nothing added to queries)".into()
        } else {
            format!(
                "the seed's database: a profile read makes three queries (the user's row, then its team and its \
                 organisation at once), {}–{} ms added to each",
                self.query_min_ms, self.query_max_ms
            )
        }
    }
}

/// Draws user ids with Zipf-distributed popularity (id 1 the hottest).
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(keys: u64, exponent: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=keys)
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(exponent);
                total
            })
            .collect();
        Self { cumulative }
    }

    fn sample(&self, rng: &mut fastrand::Rng) -> u64 {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let target = rng.f64() * total;
        self.cumulative.partition_point(|&c| c < target) as u64 + 1
    }
}

/// What one phase (warm-up or measured) of one strategy saw.
#[derive(Debug, Default, Clone)]
pub struct Phase {
    /// Reads answered.
    pub reads: u64,
    /// Writes answered.
    pub writes: u64,
    /// Failed operations.
    pub errors: u64,
    /// Reads older than a write that had completed before they began.
    pub stale: u64,
    /// Of those, reads on another instance than the write's.
    pub stale_across: u64,
    /// Queries all instances ran.
    pub db_queries: u64,
    /// Cache lookups answered from the cache (stale-while-revalidate included).
    pub hits: u64,
    /// Cache lookups that loaded.
    pub misses: u64,
    /// How long it ran.
    pub elapsed: Duration,
    /// Read latencies in microseconds, sorted.
    pub latencies: Vec<u32>,
}

impl Phase {
    /// Hits over lookups, or `None` without lookups.
    #[must_use]
    pub fn hit_rate(&self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }

    /// The `p` quantile of read latency.
    #[must_use]
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        Duration::from_micros(u64::from(self.latencies[index]))
    }

    /// Database queries per operation.
    #[must_use]
    pub fn queries_per_op(&self) -> f64 {
        let ops = self.reads + self.writes + self.errors;
        if ops == 0 { 0.0 } else { self.db_queries as f64 / ops as f64 }
    }
}

/// One strategy's run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The strategy.
    pub strategy: Strategy,
    /// From an empty cache.
    pub cold: Phase,
    /// After the warm-up: what the table shows.
    pub steady: Phase,
}

/// Hits and misses so far of the lookups a read makes.
fn read_counters() -> (u64, u64) {
    cache_runtime::stats()
        .iter()
        .filter(|s| endpoint::READ_FUNCTIONS.iter().any(|f| s.function.ends_with(f)))
        .fold((0, 0), |(hits, misses), s| (hits + s.hits + s.stale_served, misses + s.misses))
}

async fn db_queries(instances: &[Instance]) -> u64 {
    let mut total = 0;
    for instance in instances {
        total += instance.call(Op::Queries).await.unwrap_or(0);
    }
    total
}

fn progress_bar(label: String, length: Duration) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(length.as_millis().try_into().unwrap_or(u64::MAX)),
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template("  {msg:<48} [{bar:30}] {elapsed:>4}") {
        bar.set_style(style.progress_chars("#>-"));
    }
    bar.set_message(label);
    bar
}

/// One phase: the clients send to the instances in turn for `length`.
async fn phase(
    instances: &Arc<Vec<Instance>>,
    settings: &Settings,
    zipf: &Arc<Zipf>,
    floors: &Arc<Vec<AtomicU64>>,
    length: Duration,
    bar: &ProgressBar,
) -> Phase {
    let (hits_before, misses_before) = read_counters();
    let queries_before = db_queries(instances).await;
    let turn = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + length;
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                bar.set_position(started.elapsed().as_millis().try_into().unwrap_or(u64::MAX));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let clients: Vec<_> = (0..settings.clients)
        .map(|_| {
            let (instances, zipf, floors, turn) =
                (Arc::clone(instances), Arc::clone(zipf), Arc::clone(floors), Arc::clone(&turn));
            let write_share = settings.write_share;
            // Open loop: each client offers its share of the rate, whatever the answers take.
            let interval = Duration::from_secs_f64(f64::from(settings.clients) / settings.rate);
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::new();
                let mut next = tokio::time::Instant::now() + interval.mul_f64(rng.f64());
                let mut seen = Phase::default();
                loop {
                    tokio::time::sleep_until(next).await;
                    if Instant::now() >= deadline {
                        break;
                    }
                    next += interval;
                    let id = zipf.sample(&mut rng);
                    let number = turn.fetch_add(1, Ordering::Relaxed) % instances.len();
                    let instance = &instances[number];
                    // The newest completed write of this user: version << 8 | instance.
                    let floor = &floors[usize::try_from(id).unwrap_or(0)];
                    if rng.f64() < write_share {
                        match instance.call(Op::Write(id, rng.u64(..))).await {
                            Ok(version) => {
                                floor.fetch_max(version << 8 | number as u64, Ordering::SeqCst);
                                seen.writes += 1;
                            }
                            Err(_) => seen.errors += 1,
                        }
                        continue;
                    }
                    let newest = floor.load(Ordering::SeqCst);
                    let call = Instant::now();
                    match instance.call(Op::Read(id)).await {
                        Ok(version) => {
                            seen.latencies
                                .push(u32::try_from(call.elapsed().as_micros()).unwrap_or(u32::MAX));
                            seen.reads += 1;
                            if version < newest >> 8 {
                                seen.stale += 1;
                                if newest & 0xff != number as u64 {
                                    seen.stale_across += 1;
                                }
                            }
                        }
                        Err(_) => seen.errors += 1,
                    }
                }
                seen
            })
        })
        .collect();
    let mut total = Phase::default();
    for client in clients {
        if let Ok(seen) = client.await {
            total.reads += seen.reads;
            total.writes += seen.writes;
            total.errors += seen.errors;
            total.stale += seen.stale;
            total.stale_across += seen.stale_across;
            total.latencies.extend(seen.latencies);
        }
    }
    total.elapsed = started.elapsed();
    ticker.abort();
    total.latencies.sort_unstable();
    total.db_queries = db_queries(instances).await.saturating_sub(queries_before);
    let (hits, misses) = read_counters();
    (total.hits, total.misses) = (hits - hits_before, misses - misses_before);
    total
}

/// Steady state: every instance reads every user once, `concurrency` at a time.
async fn fill(instances: &Arc<Vec<Instance>>, keys: u64, concurrency: u32, bar: &ProgressBar) {
    let total = keys * instances.len() as u64;
    bar.set_length(total);
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (instances, next, bar) = (Arc::clone(instances), Arc::clone(&next), bar.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        break;
                    }
                    let count = instances.len() as u64;
                    let instance = &instances[usize::try_from(n % count).unwrap_or(0)];
                    let _ = instance.call(Op::Read(n / count + 1)).await;
                    bar.inc(1);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
}

/// Starts the instances of `strategy`, warms them up, measures, stops them.
async fn run_strategy(
    strategy: Strategy,
    settings: &Settings,
    redis_url: Option<&str>,
    zipf: &Arc<Zipf>,
) -> Result<Outcome, String> {
    let (query_min, query_spread) = settings.query_latency();
    let blueprint = Blueprint {
        strategy,
        redis_url: redis_url.map(str::to_owned),
        prefix: format!("showcase:{}:{strategy:?}:{}", std::process::id(), fastrand::u32(..)),
        query_min,
        query_spread,
        local_bytes: settings.local_mb.saturating_mul(1 << 20),
    };
    let mut instances = Vec::new();
    for number in 0..usize::from(settings.instances) {
        instances.push(Instance::start(blueprint.clone(), number).await?);
    }
    let instances = Arc::new(instances);
    let floors: Arc<Vec<AtomicU64>> = Arc::new((0..=settings.keys).map(|_| AtomicU64::new(0)).collect());
    let warmup = Duration::from_secs_f64(settings.warmup);
    let measured = Duration::from_secs_f64(settings.duration);
    let bar = progress_bar(format!("{} — warming up", strategy.label()), warmup);
    let cold = phase(&instances, settings, zipf, &floors, warmup, &bar).await;
    bar.finish_and_clear();
    if strategy != Strategy::NoCache {
        let bar = progress_bar(format!("{} — every user read on every instance", strategy.label()), warmup);
        fill(&instances, settings.keys, settings.clients.min(128), &bar).await;
        bar.finish_and_clear();
    }
    let bar = progress_bar(format!("{} — measuring", strategy.label()), measured);
    let steady = phase(&instances, settings, zipf, &floors, measured, &bar).await;
    bar.finish_and_clear();
    // Stopping joins the instances' threads: off the async workers.
    tokio::task::spawn_blocking(move || drop(instances)).await.map_err(|e| e.to_string())?;
    Ok(Outcome { strategy, cold, steady })
}

/// A `redis-server` of our own, killed on drop.
struct OwnRedis(std::process::Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `REDIS_URL`, or a `redis-server` started on a free port.
async fn redis_url() -> Option<(String, Option<OwnRedis>)> {
    if let Ok(url) = std::env::var("REDIS_URL")
        && !url.is_empty()
    {
        return Some((url, None));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let own = OwnRedis(child);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Some((format!("redis://127.0.0.1:{port}"), Some(own)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Runs every strategy and prints, then writes the chart and the report.
///
/// # Errors
/// Bad settings, or a database that cannot be opened, described.
pub async fn run(settings: Settings) -> Result<Vec<Outcome>, String> {
    settings.check()?;
    let setup_started = Instant::now();
    // Opened (and seeded on first use) once here; each instance opens its own connections.
    let db = crate::setup::database().await.map_err(|e| e.to_string())?;
    let redis = redis_url().await;
    println!(
        "{} database with {} users (ready in {:.1} s); {} instances behind a round-robin client; {} clients \
         offering {:.0} operations/s; {:.1} % writes; reads Zipf(s = {}) over {} users",
        db.kind(),
        SEED_USERS,
        setup_started.elapsed().as_secs_f64(),
        settings.instances,
        settings.clients,
        settings.rate,
        settings.write_share * 100.0,
        settings.zipf,
        settings.keys,
    );
    drop(db);
    println!("{}", settings.db_profile());
    match &redis {
        Some((url, own)) => {
            println!("Redis at {url}{}", if own.is_some() { " (started for this run)" } else { "" })
        }
        None => println!("no Redis (set REDIS_URL or install redis-server): Redis strategies skipped"),
    }
    println!(
        "each strategy starts with empty caches: {} s of load (cold hit rate), then every instance reads every user \
         once (steady state), then {} s measured (steady hit rate and the rest)\n",
        settings.warmup, settings.duration
    );
    let zipf = Arc::new(Zipf::new(settings.keys, settings.zipf));
    let redis_url = redis.as_ref().map(|(url, _)| url.as_str());
    let mut outcomes = Vec::new();
    for strategy in Strategy::ALL {
        if strategy.needs_redis() && redis_url.is_none() {
            continue;
        }
        if let Some(only) = &settings.only
            && strategy != Strategy::NoCache
            && !strategy.label().contains(only.as_str())
        {
            continue;
        }
        match run_strategy(strategy, &settings, redis_url, &zipf).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => eprintln!("{}: skipped: {error}", strategy.label()),
        }
    }
    let table = report::table(&outcomes);
    println!("{table}");
    println!("{}", report::LEGEND);
    let headline = report::headline(&outcomes);
    println!("\n{headline}");
    match std::fs::write(&settings.chart, report::chart(&outcomes, &settings)) {
        Ok(()) => println!("latency chart: {}", settings.chart.display()),
        Err(error) => eprintln!("cannot write {}: {error}", settings.chart.display()),
    }
    match std::fs::write(&settings.report, report::html(&outcomes, &settings, &headline)) {
        Ok(()) => println!("report: {}", settings.report.display()),
        Err(error) => eprintln!("cannot write {}: {error}", settings.report.display()),
    }
    drop(redis);
    Ok(outcomes)
}
