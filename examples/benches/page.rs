//! A page-cache hit against a handler-level `#[cached]` hit and no cache, in
//! one run, through the same axum server over loopback: one handler reading
//! a user from SQLite and answering JSON, mounted five ways (no cache; each
//! cache in process memory and on Redis). The load comes from keep-alive
//! hyper clients in the same process.
//!
//! Run: `cargo bench -p examples --bench page`. Figures are medians of three
//! rounds of 2 s, 32 client tasks on 2 worker threads shared with the server
//! (and `redis-server`); ratios compare within the run. The Redis rows run on
//! a `redis-server` started here on a free port; without one they are skipped,
//! saying so (`CACHE_REQUIRE_REDIS=1` makes that an error).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, http::StatusCode};
use cache_runtime::Cache;
use cache_runtime::http::PageCache;
use cache_tests::redis_server::{RedisServer, require_redis};
use examples::db::{Db, User};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const TASKS: u64 = 32;
const ROUNDS: u64 = 3;
const ROUND: Duration = Duration::from_secs(2);
const HOT_USERS: u64 = 100;

#[derive(Clone)]
struct App {
    db: Arc<Db>,
    cache: Cache,
}

async fn read_user(db: &Db, id: u64) -> Result<User, StatusCode> {
    db.user(id).await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?.ok_or(StatusCode::NOT_FOUND)
}

/// Tagged like the pages (`user:<id>`), so that both read the same from Redis:
/// the entry and its tag's generation, in one round trip.
#[cache_runtime::cached(key = "bench-user:<id>", ttl = 3600, tags = ["user:<id>"], cache = cache, skip = [cache, db])]
async fn cached_user(cache: &Cache, db: &Db, id: u64) -> Result<User, StatusCode> {
    read_user(db, id).await
}

/// No cache: the database on every request (also the origin of the page cache).
async fn uncached(State(app): State<App>, Path(id): Path<u64>) -> Result<Json<User>, StatusCode> {
    read_user(&app.db, id).await.map(Json)
}

/// `#[cached]` in the handler: the value is cached, the response is built each time.
async fn handler_cached(State(app): State<App>, Path(id): Path<u64>) -> Result<Json<User>, StatusCode> {
    cached_user(&app.cache, &app.db, id).await.map(Json)
}

/// The routes of one cache: `{prefix}/cached/{id}` and `{prefix}/page/{id}`.
fn cached_routes(prefix: &str, app: App) -> Router {
    let route = format!("{prefix}/page/{{id}}");
    let pages = PageCache::builder(Duration::from_secs(3600))
        .name(&format!("page:{prefix}"))
        .cache(app.cache.clone())
        .route(&route)
        .tag("user:<id>")
        .build()
        .expect("a valid policy");
    Router::new()
        .route(&format!("{prefix}/cached/{{id}}"), get(handler_cached))
        .route(&route, get(uncached).layer(pages))
        .with_state(app)
}

async fn throughput(base: &str, route: &str) -> f64 {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let prefix: Arc<str> = format!("{base}{route}").into();
    cache_tests::bench::throughput(TASKS, ROUNDS, ROUND, move |i| {
        let (client, prefix) = (client.clone(), Arc::clone(&prefix));
        async move {
            let uri = format!("{prefix}{}", i % HOT_USERS + 1);
            if let Ok(response) = client.get(uri.parse().expect("a valid uri")).await {
                std::hint::black_box(
                    response.into_body().collect().await.map(|body| body.to_bytes().len()).ok(),
                );
            }
        }
    })
    .await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = std::env::temp_dir().join(format!("page-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let path = dir.join("bench.sqlite3");
    let db = tokio::task::spawn_blocking(move || Db::sqlite(&path)).await.expect("seeded").expect("SQLite");
    let db = Arc::new(db);
    let memory = App { db: Arc::clone(&db), cache: Cache::in_memory() };
    let redis = require_redis().then(RedisServer::start);
    let mut routes = Router::new()
        .route("/none/{id}", get(uncached))
        .with_state(memory.clone())
        .merge(cached_routes("/memory", memory));
    let mut rows = vec![("/none/", "no cache (a SQLite read per request)")];
    rows.push(("/memory/cached/", "#[cached] in the handler, in memory (hit)"));
    rows.push(("/memory/page/", "PageCache layer, in memory (hit)"));
    if let Some(server) = &redis {
        let cache = Cache::builder()
            .redis(&server.url())
            .expect("a valid url")
            .prefix("bench:pages")
            .expect("a valid prefix")
            .build();
        routes = routes.merge(cached_routes("/redis", App { db, cache }));
        rows.push(("/redis/cached/", "#[cached] in the handler, Redis (hit)"));
        rows.push(("/redis/page/", "PageCache layer, Redis (hit)"));
    } else {
        eprintln!("SKIPPED: the Redis rows (no redis-server on PATH)");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, routes).await });

    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    for (route, _) in &rows[1..] {
        for id in 1..=HOT_USERS {
            let uri = format!("{base}{route}{id}").parse().expect("a valid uri");
            let response = client.get(uri).await.expect("the server answers");
            assert_eq!(response.status(), StatusCode::OK);
            let _ = response.into_body().collect().await;
        }
    }

    println!(
        "{TASKS} client tasks, {ROUNDS} rounds of {ROUND:?}, median requests/s over {HOT_USERS} users\n"
    );
    let mut measured = Vec::with_capacity(rows.len());
    for (route, label) in &rows {
        measured.push((*label, throughput(&base, route).await));
    }
    let none = measured[0].1;
    println!("{:<48} {:>12} {:>8}", "GET /users/{id} as JSON, SQLite behind it", "requests/s", "ratio");
    for (label, value) in measured {
        println!("{label:<48} {value:>12.0} {:>8.2}", value / none);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
