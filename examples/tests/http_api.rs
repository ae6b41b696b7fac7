//! The REST API over real HTTP: a server on a free port, SQLite in a
//! temporary file, the in-memory cache.

use std::sync::Arc;

use examples::api::{App, router};
use examples::db::Db;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

struct Server {
    base: String,
    cache: cache_runtime::Cache,
    client: Client<HttpConnector, Full<Bytes>>,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start() -> Server {
    let dir =
        std::env::temp_dir().join(format!("examples-http-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let server = serve(&dir, cache_runtime::Cache::in_memory()).await;
    Server { _dir: TempDir(dir), ..server }
}

/// An instance of the API on the SQLite database in `dir`, with `cache`.
async fn serve(dir: &std::path::Path, cache: cache_runtime::Cache) -> Server {
    let path = dir.join("app.sqlite3");
    let db = tokio::task::spawn_blocking(move || Db::sqlite(&path)).await.unwrap().unwrap();
    let app = router(Arc::new(App { db, cache: cache.clone() })).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base,
        cache,
        client: Client::builder(TokioExecutor::new()).build_http(),
        _dir: TempDir(dir.join("none")),
    }
}

struct Answer {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl Server {
    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
        let response = self.client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(Method::GET, path, headers, "").await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_get_is_304_with_the_same_etag() {
    let server = start().await;
    let first = server.get("/users/42", &[]).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json()["id"], 42);
    let etag = first.header("etag").to_owned();
    assert!(etag.starts_with('"'), "{etag:?}");
    assert_eq!(first.header("cache-control"), "no-cache", "browsers revalidate: invalidations reach them");
    assert!(first.header("last-modified").ends_with("GMT"));

    let again = server.get("/users/42", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(again.header("etag"), etag);
    assert!(again.header("age").parse::<u64>().is_ok(), "served from the cache: an Age");
    assert!(again.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_changes_the_etag_and_the_body() {
    let server = start().await;
    let before = server.get("/users/7", &[]).await;
    let etag = before.header("etag").to_owned();
    let members_before = server.get("/teams/8/members", &[]).await.json();
    assert!(members_before.as_array().unwrap().iter().any(|m| m["name"] == "User 7"));

    let put = server
        .send(
            Method::PUT,
            "/users/7",
            &[("content-type", "application/json")],
            r#"{"name":"Ada Lovelace","email":"ada@example.com"}"#,
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);

    let after = server.get("/users/7", &[("if-none-match", &etag)]).await;
    assert_eq!(after.status, StatusCode::OK, "the old ETag no longer matches");
    assert_ne!(after.header("etag"), etag);
    assert_eq!(after.json()["name"], "Ada Lovelace");
    assert_eq!(after.json()["version"], 2);
    let members_after = server.get("/teams/8/members", &[]).await.json();
    assert!(
        members_after.as_array().unwrap().iter().any(|m| m["name"] == "Ada Lovelace"),
        "team version bumped"
    );
    let page = server.get("/orgs/8/users?page=1&limit=5", &[]).await.json();
    assert_eq!(page[0]["name"], "Ada Lovelace", "org tag invalidated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_json_400_and_unknown_ids_a_404() {
    let server = start().await;
    for path in [
        "/users/abc",
        "/users/0",
        "/users/-1",
        "/orgs/x/users",
        "/orgs/1/users?page=0",
        "/orgs/1/users?limit=101",
        "/orgs/1/users?limit=ten",
        "/teams/1.5/members",
    ] {
        let answer = server.get(path, &[]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}: {}", answer.body);
        assert!(answer.json()["error"].is_string(), "{path}");
    }
    let bad_json =
        server.send(Method::PUT, "/users/1", &[("content-type", "application/json")], "{nope").await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);
    assert!(bad_json.json()["error"].is_string());
    let bad_email = server
        .send(Method::PUT, "/users/1", &[("content-type", "application/json")], r#"{"name":"x","email":"x"}"#)
        .await;
    assert_eq!(bad_email.status, StatusCode::BAD_REQUEST);

    for path in ["/users/100001", "/teams/99999/members"] {
        let answer = server.get(path, &[]).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert!(answer.json()["error"].as_str().unwrap().starts_with("no "));
    }
    let put = server
        .send(
            Method::PUT,
            "/users/100001",
            &[("content-type", "application/json")],
            r#"{"name":"x","email":"x@y"}"#,
        )
        .await;
    assert_eq!(put.status, StatusCode::NOT_FOUND);
}

/// The value of the first sample of `metric` whose labels contain `labels`.
fn sample(body: &str, metric: &str, labels: &str) -> Option<f64> {
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| line.starts_with(&format!("{metric}{{")) && line.contains(labels) || *line == metric)
        .or_else(|| body.lines().find(|line| line.starts_with(&format!("{metric} "))))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

/// A metric, labels one of its samples contains, and what a sane value is.
type Check = (&'static str, &'static str, fn(f64) -> bool);

/// Every item of a production cache's checklist is exported, with sane values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_cover_the_checklist() {
    let server = start().await;
    examples::observe::count_keys_every(&server.cache, std::time::Duration::from_millis(20));
    for _ in 0..3 {
        assert_eq!(server.get("/orgs/5/users?page=2&limit=3", &[]).await.status, StatusCode::OK);
    }
    for id in 1..=40 {
        assert_eq!(server.get(&format!("/users/{id}"), &[]).await.status, StatusCode::OK);
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let metrics = server.get("/metrics", &[]).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.header("content-type").starts_with("text/plain"));
    let body = &metrics.body;
    let org_users = "function=\"examples::api::org_users\"";
    let checks: [Check; 12] = [
        ("cache_hits_total", org_users, |v| v >= 2.0),
        ("cache_misses_total", org_users, |v| v >= 1.0),
        ("cache_hit_ratio", org_users, |v| (0.5..=1.0).contains(&v)),
        ("cache_loads_total", org_users, |v| v >= 1.0),
        ("cache_load_seconds", "quantile=\"0.99\"", |v| v >= 0.0),
        ("cache_value_bytes", "quantile=\"0.5\"", |v| v > 0.0),
        ("cache_memory_bytes", "", |v| v > 0.0),
        ("cache_evictions_total", "", |v| v >= 0.0),
        ("http_request_seconds", "quantile=\"0.99\"", |v| v > 0.0 && v < 10.0),
        ("db_queries_per_request", "quantile=\"0.5\"", |v| (0.0..10.0).contains(&v)),
        ("cache_hot_key_calls", "key=", |v| v > 0.0),
        ("cache_keys", "namespace=", |v| v >= 1.0),
    ];
    for (metric, labels, sane) in checks {
        let value =
            sample(body, metric, labels).unwrap_or_else(|| panic!("{metric}{{{labels}}} missing:\n{body}"));
        assert!(sane(value), "{metric}{{{labels}}} = {value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_page_is_cached_whole_and_dropped_by_the_user_update() {
    let server = start().await;
    let first = server.get("/orgs/4/directory", &[]).await;
    assert_eq!((first.status, first.header("x-cache")), (StatusCode::OK, "MISS"));
    assert!(first.header("content-type").starts_with("text/html"));
    assert!(first.body.contains("<li>User 3 "), "{}", first.body);
    let etag = first.header("etag").to_owned();
    let again = server.get("/orgs/4/directory", &[]).await;
    assert_eq!((again.header("x-cache"), again.body.as_str()), ("HIT", first.body.as_str()));
    let revalidated = server.get("/orgs/4/directory", &[("if-none-match", &etag)]).await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert_eq!(server.get("/orgs/4/directory?utm_campaign=x", &[]).await.header("x-cache"), "HIT");
    assert_eq!(server.get("/orgs/4/directory?page=2", &[]).await.header("x-cache"), "MISS");

    let put = server
        .send(
            Method::PUT,
            "/users/3",
            &[("content-type", "application/json")],
            r#"{"name":"Grace <Hopper>","email":"grace@example.com"}"#,
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let after = server.get("/orgs/4/directory", &[("if-none-match", &etag)]).await;
    assert_eq!(
        (after.status, after.header("x-cache")),
        (StatusCode::OK, "MISS"),
        "the org tag dropped the page"
    );
    assert!(after.body.contains("<li>Grace &lt;Hopper&gt; "), "{}", after.body);
    assert_eq!(
        server.get("/orgs/4/directory?page=2", &[]).await.header("x-cache"),
        "MISS",
        "every page of the org"
    );

    let bad = server.get("/orgs/x/directory", &[]).await;
    assert_eq!((bad.status, bad.header("x-cache")), (StatusCode::BAD_REQUEST, "BYPASS"), "400 is not cached");
}

/// Two instances of the API on one database and one Redis, each with a
/// two-level cache: a write on one is seen by the next reads on the other
/// (after the bus message), although both serve reads from process memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_with_two_level_caches_see_each_others_writes() {
    if !cache_tests::redis_server::require_redis() {
        return;
    }
    let redis = cache_tests::redis_server::RedisServer::start();
    let dir =
        std::env::temp_dir().join(format!("examples-http-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let _dir = TempDir(dir.clone());
    let two_level = || {
        cache_runtime::Cache::builder()
            .redis(&redis.url())
            .unwrap()
            .prefix("api")
            .unwrap()
            .local_cache(16 << 20)
            .build()
    };
    let (a, b) = (serve(&dir, two_level()).await, serve(&dir, two_level()).await);
    assert_eq!(b.get("/users/7", &[]).await.json()["name"], "User 7");
    assert_eq!(a.get("/users/7", &[]).await.json()["name"], "User 7");
    let started = std::time::Instant::now();
    let put = a
        .send(
            Method::PUT,
            "/users/7",
            &[("content-type", "application/json")],
            r#"{"name":"Ada","email":"ada@example.com"}"#,
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(a.get("/users/7", &[]).await.json()["name"], "Ada", "the writing instance at once");
    while b.get("/users/7", &[]).await.json()["name"] != "Ada" {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the other instance never saw the write"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}
