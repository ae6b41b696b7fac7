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
    let path = dir.join("app.sqlite3");
    let db = tokio::task::spawn_blocking(move || Db::sqlite(&path)).await.unwrap().unwrap();
    let app = router(Arc::new(App { db, cache: cache_runtime::Cache::in_memory() })).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { base, client: Client::builder(TokioExecutor::new()).build_http(), _dir: TempDir(dir) }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_hits_in_prometheus_text() {
    let server = start().await;
    for _ in 0..3 {
        assert_eq!(server.get("/orgs/5/users?page=2&limit=3", &[]).await.status, StatusCode::OK);
    }
    let metrics = server.get("/metrics", &[]).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics.header("content-type").starts_with("text/plain"));
    let hits: f64 = metrics
        .body
        .lines()
        .find_map(|line| line.strip_prefix("cache_hits_total{function=\"examples::api::org_users\"} "))
        .expect("org_users hits")
        .parse()
        .unwrap();
    assert!(hits >= 2.0, "{}", metrics.body);
    assert!(metrics.body.contains("# TYPE cache_hit_ratio gauge"));
    assert!(metrics.body.contains("cache_load_seconds_sum{function=\"examples::api::org_users\"}"));
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
