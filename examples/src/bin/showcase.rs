//! The showcase: a read-heavy workload over the example database, run with
//! each caching strategy in turn, measured side by side.
//!
//! `cargo run --release -p examples --bin showcase -- --help` lists the flags.
//! SQLite and the in-memory cache by default; the Redis strategies run on
//! `REDIS_URL`, or on a `redis-server` started here when one is installed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::{Cache, cached, invalidates};
use examples::api::{ApiError, UserInput, get_user, update_user, user_home};
use examples::db::{Db, SEED_USERS, User};
use examples::setup;

/// Command-line settings.
#[derive(Debug, Clone)]
struct Settings {
    duration: Duration,
    warmup: Duration,
    clients: usize,
    rate: f64,
    write_share: f64,
    keys: u64,
    db_delay: Duration,
    zipf_exponent: f64,
    chart: std::path::PathBuf,
}

const HELP: &str = "showcase: the example API's reads under each caching strategy

flags:
  --duration SECS     measured per strategy (default 5)
  --warmup SECS       unmeasured run first, to fill the cache (default 2)
  --clients N         concurrent clients (default 16)
  --rate N            operations per second offered by all clients together (default 4000)
  --write-share F     share of operations that update a user (default 0.02)
  --keys N            users read, Zipf-distributed (default 100000)
  --db-delay-ms MS    added to every query, modelling a remote database (default 1)
  --zipf S            Zipf exponent (default 1.1)
  --chart PATH        where the latency chart goes (default showcase-latency.svg)
env: REDIS_URL, DATABASE_URL, SQLITE_PATH";

fn parse_settings() -> Result<Settings, String> {
    let mut settings = Settings {
        duration: Duration::from_secs(5),
        warmup: Duration::from_secs(2),
        clients: 16,
        rate: 4000.0,
        write_share: 0.02,
        keys: SEED_USERS,
        db_delay: Duration::from_millis(1),
        zipf_exponent: 1.1,
        chart: "showcase-latency.svg".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(HELP.to_owned());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value\n\n{HELP}"))?;
        let number = || value.parse::<f64>().map_err(|_| format!("{flag}: {value:?} is not a number"));
        match flag.as_str() {
            "--duration" => settings.duration = Duration::from_secs_f64(number()?.max(0.5)),
            "--warmup" => settings.warmup = Duration::from_secs_f64(number()?.max(0.0)),
            "--clients" => settings.clients = (number()? as usize).max(1),
            "--rate" => settings.rate = number()?.max(1.0),
            "--write-share" => settings.write_share = number()?.clamp(0.0, 1.0),
            "--keys" => settings.keys = (number()? as u64).clamp(1, SEED_USERS),
            "--db-delay-ms" => settings.db_delay = Duration::from_secs_f64(number()?.max(0.0) / 1e3),
            "--zipf" => settings.zipf_exponent = number()?.max(0.0),
            "--chart" => settings.chart = value.into(),
            _ => return Err(format!("unknown flag {flag}\n\n{HELP}")),
        }
    }
    Ok(settings)
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

/// Reads in a namespace versioned per organisation: a write bumps the version.
#[cached(key = "vuser:<id>", version = "org:<org_id>", ttl = 300, jitter = 30, cache = cache, skip = [cache, db])]
async fn get_user_versioned(cache: &Cache, db: &Db, id: u64, org_id: u64) -> Result<User, ApiError> {
    db.user(id).await?.ok_or_else(|| ApiError::NotFound(format!("no user {id}")))
}

/// Writes that bump the organisation's version.
#[invalidates(versions = ["org:<org_id>"], cache = cache, skip = [cache, db, id, input])]
async fn update_user_versioned(
    cache: &Cache,
    db: &Db,
    id: u64,
    org_id: u64,
    input: UserInput,
) -> Result<Option<User>, ApiError> {
    Ok(db.update_user(id, input.name, input.email).await?)
}

/// How reads and writes go through the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Strategy {
    NoCache,
    InMemory,
    RedisTtlOnly,
    RedisEvents,
    RedisVersioned,
}

impl Strategy {
    fn label(self) -> &'static str {
        match self {
            Self::NoCache => "no cache",
            Self::InMemory => "in-memory, invalidation",
            Self::RedisTtlOnly => "Redis, TTL only",
            Self::RedisEvents => "Redis, event invalidation",
            Self::RedisVersioned => "Redis, versioned namespaces",
        }
    }

    fn color(self) -> &'static str {
        match self {
            Self::NoCache => "#d62728",
            Self::InMemory => "#2ca02c",
            Self::RedisTtlOnly => "#ff7f0e",
            Self::RedisEvents => "#1f77b4",
            Self::RedisVersioned => "#9467bd",
        }
    }
}

/// One user update, through the strategy's write path.
async fn write(strategy: Strategy, cache: &Cache, db: &Db, id: u64, round: u64) -> Result<u64, ApiError> {
    let input =
        UserInput { name: format!("User {id} rev {round}"), email: format!("user{id}.{round}@example.com") };
    let updated = match strategy {
        Strategy::NoCache | Strategy::RedisTtlOnly => db.update_user(id, input.name, input.email).await?,
        Strategy::InMemory | Strategy::RedisEvents => {
            let home = user_home(cache, db, id).await?;
            Some(update_user(cache, db, id, home.org_id, home.team_id, input).await?)
        }
        Strategy::RedisVersioned => {
            let home = user_home(cache, db, id).await?;
            update_user_versioned(cache, db, id, home.org_id, input).await?
        }
    };
    updated.map(|user| user.version).ok_or_else(|| ApiError::NotFound(format!("no user {id}")))
}

/// One user read, through the strategy's read path.
async fn read(strategy: Strategy, cache: &Cache, db: &Db, id: u64) -> Result<User, ApiError> {
    match strategy {
        Strategy::NoCache => db.user(id).await?.ok_or_else(|| ApiError::NotFound(format!("no user {id}"))),
        Strategy::InMemory | Strategy::RedisTtlOnly | Strategy::RedisEvents => {
            let home = user_home(cache, db, id).await?;
            get_user(cache, db, id, home.org_id).await
        }
        Strategy::RedisVersioned => {
            let home = user_home(cache, db, id).await?;
            get_user_versioned(cache, db, id, home.org_id).await
        }
    }
}

/// What one strategy's run measured.
struct Outcome {
    strategy: Strategy,
    reads: u64,
    writes: u64,
    errors: u64,
    stale: u64,
    db_queries: u64,
    hits: u64,
    misses: u64,
    elapsed: Duration,
    /// Read latencies in microseconds, sorted.
    latencies: Vec<u32>,
}

impl Outcome {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        Duration::from_micros(u64::from(self.latencies[index]))
    }

    fn per_second(&self, count: u64) -> f64 {
        count as f64 / self.elapsed.as_secs_f64()
    }
}

/// Hits and misses of every cached lookup a read makes (the user's home and the user).
fn read_counters() -> (u64, u64) {
    cache_runtime::stats()
        .iter()
        .filter(|s| {
            ["::get_user", "::get_user_versioned", "::user_home"].iter().any(|f| s.function.ends_with(f))
        })
        .fold((0, 0), |(hits, misses), s| (hits + s.hits, misses + s.misses))
}

/// Warms the cache up (unmeasured), then measures.
async fn run(strategy: Strategy, cache: Cache, db: &Db, settings: &Settings, zipf: &Arc<Zipf>) -> Outcome {
    if !settings.warmup.is_zero() {
        let warmup = Settings { duration: settings.warmup, ..settings.clone() };
        measure(strategy, cache.clone(), db, &warmup, zipf, "warming up").await;
    }
    measure(strategy, cache, db, settings, zipf, "").await
}

async fn measure(
    strategy: Strategy,
    cache: Cache,
    db: &Db,
    settings: &Settings,
    zipf: &Arc<Zipf>,
    phase: &'static str,
) -> Outcome {
    // Per user: the newest version whose write (and invalidation) has completed.
    let floors: Arc<Vec<AtomicU64>> = Arc::new((0..=settings.keys).map(|_| AtomicU64::new(0)).collect());
    let (hits_before, misses_before) = read_counters();
    let queries_before = db.queries();
    let started = Instant::now();
    let deadline = started + settings.duration;
    let done = Arc::new(AtomicBool::new(false));
    let progress = {
        let done = Arc::clone(&done);
        let total = settings.duration;
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let share = (started.elapsed().as_secs_f64() / total.as_secs_f64()).min(1.0);
                let filled = (share * 30.0) as usize;
                eprint!(
                    "\r  {:<28} {:<11} [{}{}] {:>4.1}s",
                    strategy.label(),
                    phase,
                    "#".repeat(filled),
                    " ".repeat(30 - filled),
                    started.elapsed().as_secs_f64()
                );
                let _ = std::io::stderr().flush();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            eprint!("\r{}\r", " ".repeat(84));
        })
    };
    let clients: Vec<_> = (0..settings.clients)
        .map(|client| {
            let (cache, db, zipf, floors) =
                (cache.clone(), db.clone(), Arc::clone(zipf), Arc::clone(&floors));
            let write_share = settings.write_share;
            // Open loop: each client offers its share of the rate, whatever the answers take.
            let interval = Duration::from_secs_f64(settings.clients as f64 / settings.rate);
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(client as u64 + 1);
                let mut next = tokio::time::Instant::now() + interval.mul_f64(rng.f64());
                let (mut reads, mut writes, mut errors, mut stale) = (0_u64, 0_u64, 0_u64, 0_u64);
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    tokio::time::sleep_until(next).await;
                    next += interval;
                    let id = zipf.sample(&mut rng);
                    let floor = &floors[usize::try_from(id).unwrap_or(0)];
                    if rng.f64() < write_share {
                        match write(strategy, &cache, &db, id, rng.u64(..)).await {
                            Ok(version) => {
                                floor.fetch_max(version, Ordering::SeqCst);
                                writes += 1;
                            }
                            Err(_) => errors += 1,
                        }
                        continue;
                    }
                    let newest_written = floor.load(Ordering::SeqCst);
                    let call = Instant::now();
                    match read(strategy, &cache, &db, id).await {
                        Ok(user) => {
                            latencies.push(u32::try_from(call.elapsed().as_micros()).unwrap_or(u32::MAX));
                            reads += 1;
                            if user.version < newest_written {
                                stale += 1;
                            }
                        }
                        Err(_) => errors += 1,
                    }
                }
                (reads, writes, errors, stale, latencies)
            })
        })
        .collect();
    let mut outcome = Outcome {
        strategy,
        reads: 0,
        writes: 0,
        errors: 0,
        stale: 0,
        db_queries: 0,
        hits: 0,
        misses: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for client in clients {
        if let Ok((reads, writes, errors, stale, latencies)) = client.await {
            outcome.reads += reads;
            outcome.writes += writes;
            outcome.errors += errors;
            outcome.stale += stale;
            outcome.latencies.extend(latencies);
        }
    }
    outcome.elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = progress.await;
    outcome.latencies.sort_unstable();
    outcome.db_queries = db.queries() - queries_before;
    let (hits, misses) = read_counters();
    (outcome.hits, outcome.misses) = (hits - hits_before, misses - misses_before);
    outcome
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

fn table(outcomes: &[Outcome]) -> String {
    let baseline =
        outcomes.iter().find(|o| o.strategy == Strategy::NoCache).map(|o| o.per_second(o.db_queries));
    let mut out = format!(
        "{:<28} {:>8} {:>10} {:>10} {:>10} {:>10} {:>12} {:>9} {:>7} {:>7}\n",
        "strategy", "hit rate", "p50", "p95", "p99", "reads/s", "DB queries/s", "DB load", "stale", "errors"
    );
    for o in outcomes {
        let calls = o.hits + o.misses;
        let hit_rate = if calls == 0 {
            "-".to_owned()
        } else {
            format!("{:.1} %", 100.0 * o.hits as f64 / calls as f64)
        };
        let queries = o.per_second(o.db_queries);
        let load = baseline.map_or("-".to_owned(), |b| format!("{:+.0} %", 100.0 * (queries / b - 1.0)));
        let _ = writeln!(
            out,
            "{:<28} {:>8} {:>10} {:>10} {:>10} {:>10.0} {:>12.0} {:>9} {:>7} {:>7}",
            o.strategy.label(),
            hit_rate,
            millis(o.percentile(0.50)),
            millis(o.percentile(0.95)),
            millis(o.percentile(0.99)),
            o.per_second(o.reads),
            queries,
            load,
            o.stale,
            o.errors
        );
    }
    out
}

/// Latency distributions as cumulative curves on a log scale, as SVG.
fn chart(outcomes: &[Outcome], settings: &Settings) -> String {
    let (width, height, left, right, top, bottom) = (900.0, 480.0, 70.0, 250.0, 40.0, 60.0);
    let (plot_w, plot_h) = (width - left - right, height - top - bottom);
    let slowest = outcomes.iter().filter_map(|o| o.latencies.last()).max().copied().unwrap_or(1).max(10);
    let (lo, hi) = (1.0_f64.log10(), f64::from(slowest).log10().ceil());
    let x = |micros: f64| left + (micros.max(1.0).log10() - lo) / (hi - lo) * plot_w;
    let y = |share: f64| top + (1.0 - share) * plot_h;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{left}" y="22" font-size="15">Read latency, cumulative ({} clients, {:.0} % writes, {} ms added per query)</text>
"#,
        settings.clients,
        settings.write_share * 100.0,
        settings.db_delay.as_secs_f64() * 1e3
    );
    for decade in 0..=(hi as i32) {
        let micros = 10_f64.powi(decade);
        let label =
            if micros >= 1000.0 { format!("{} ms", micros / 1000.0) } else { format!("{micros} µs") };
        let _ = writeln!(
            svg,
            r##"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{1:.1}" stroke="#ddd"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle">{label}</text>"##,
            x(micros),
            top + plot_h,
            top + plot_h + 18.0
        );
    }
    for share in [0.0, 0.5, 0.9, 0.99] {
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#eee"/><text x="{2:.1}" y="{3:.1}" text-anchor="end">p{4}</text>"##,
            y(share),
            left + plot_w,
            left - 6.0,
            y(share) + 4.0,
            share * 100.0
        );
    }
    for (index, o) in outcomes.iter().enumerate() {
        let n = o.latencies.len().max(1) as f64;
        let step = (o.latencies.len() / 400).max(1);
        let points: Vec<String> = o
            .latencies
            .iter()
            .enumerate()
            .filter(|(i, _)| i % step == 0 || *i + 1 == o.latencies.len())
            .map(|(i, &micros)| format!("{:.1},{:.1}", x(f64::from(micros)), y((i + 1) as f64 / n)))
            .collect();
        let legend_y = top + 20.0 + 22.0 * index as f64;
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>
<line x1="{lx:.1}" y1="{legend_y:.1}" x2="{lx2:.1}" y2="{legend_y:.1}" stroke="{color}" stroke-width="3"/><text x="{tx:.1}" y="{ty:.1}">{label}</text>"#,
            color = o.strategy.color(),
            points = points.join(" "),
            lx = left + plot_w + 15.0,
            lx2 = left + plot_w + 40.0,
            tx = left + plot_w + 46.0,
            ty = legend_y + 4.0,
            label = o.strategy.label(),
        );
    }
    svg.push_str("</svg>\n");
    svg
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
    if let Ok(url) = std::env::var("REDIS_URL") {
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

#[tokio::main]
async fn main() {
    let settings = match parse_settings() {
        Ok(settings) => settings,
        Err(message) => {
            println!("{message}");
            return;
        }
    };
    let setup_started = Instant::now();
    let mut db = match setup::database().await {
        Ok(db) => db,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(1);
        }
    };
    db.extra_latency = settings.db_delay;
    let redis = redis_url().await;
    println!(
        "{} database with {} users (ready in {:.1} s); {} clients offering {:.0} operations/s for {:?} per strategy; \
         {:.0} % writes; reads Zipf(s = {}) over {} users; {} ms added to every query to model a remote database",
        db.kind(),
        SEED_USERS,
        setup_started.elapsed().as_secs_f64(),
        settings.clients,
        settings.rate,
        settings.duration,
        settings.write_share * 100.0,
        settings.zipf_exponent,
        settings.keys,
        settings.db_delay.as_secs_f64() * 1e3,
    );
    match &redis {
        Some((url, own)) => {
            println!("Redis at {url}{}", if own.is_some() { " (started for this run)" } else { "" })
        }
        None => println!("no Redis (set REDIS_URL or install redis-server): Redis strategies skipped"),
    }
    println!(
        "each strategy starts with an empty cache, warmed up for {:?} before it is measured\n",
        settings.warmup
    );

    let zipf = Arc::new(Zipf::new(settings.keys, settings.zipf_exponent));
    let mut strategies =
        vec![(Strategy::NoCache, Cache::in_memory()), (Strategy::InMemory, Cache::in_memory())];
    if let Some((url, _)) = &redis {
        for (index, strategy) in
            [Strategy::RedisTtlOnly, Strategy::RedisEvents, Strategy::RedisVersioned].into_iter().enumerate()
        {
            let prefix = format!("showcase:{}:{index}", std::process::id());
            match Cache::builder().redis(url).and_then(|b| b.prefix(&prefix)) {
                Ok(builder) => strategies.push((strategy, builder.build())),
                Err(error) => println!("{error}: Redis strategies skipped"),
            }
        }
    }
    let mut outcomes = Vec::new();
    for (strategy, cache) in strategies {
        outcomes.push(run(strategy, cache, &db, &settings, &zipf).await);
    }
    println!("{}", table(&outcomes));
    println!(
        "hit rate: cache lookups answered from the cache (a read looks up the user's home, then the user); DB load: queries per second against no cache; \
         stale: reads older than a write that had completed before the read began"
    );
    match std::fs::write(&settings.chart, chart(&outcomes, &settings)) {
        Ok(()) => println!("latency chart: {}", settings.chart.display()),
        Err(error) => eprintln!("cannot write {}: {error}", settings.chart.display()),
    }
    drop(redis);
}
