//! The page cache over real HTTP: an axum server on a loopback port, a hyper
//! client, pages in memory and in Redis (a `redis-server` started here), and
//! `http-cache-semantics` judging what a downstream cache would do with the
//! responses.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{
    ACCEPT_ENCODING, ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, SET_COOKIE, VARY,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use cache_runtime::http::{CachedJson, Downstream, PageCache, PageCacheBuilder};
use cache_runtime::{Cache, cached, capture, invalidates};
use cache_tests::redis_server::{RedisServer, require_redis};
use http_body::Frame;
use http_body_util::{BodyExt as _, Empty};
use http_cache_semantics::{AfterResponse, BeforeRequest, CacheOptions, CachePolicy};
use hyper::Method;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{oneshot, watch};

// ---------------------------------------------------------------- the origin

/// What handlers share: the cache, and how often the origin ran.
#[derive(Clone)]
struct App {
    cache: Cache,
    calls: Arc<AtomicUsize>,
    /// Holds back the second half of `/stream` until the test opens it.
    gate: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
    /// While `true`, `/held` handlers wait.
    held: Arc<watch::Sender<bool>>,
    /// While set, `/flaky` answers `503`.
    failing: Arc<AtomicBool>,
}

impl App {
    fn new(cache: Cache) -> Self {
        Self {
            cache,
            calls: Arc::default(),
            gate: Arc::default(),
            held: Arc::new(watch::Sender::new(false)),
            failing: Arc::default(),
        }
    }

    fn call(&self) -> usize {
        self.calls.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn user(State(app): State<App>, Path(id): Path<u64>) -> Response {
    let call = app.call();
    ([(CONTENT_TYPE, "application/json")], format!(r#"{{"id":{id},"call":{call}}}"#)).into_response()
}

async fn slow_user(state: State<App>, id: Path<u64>) -> Response {
    tokio::time::sleep(Duration::from_millis(200)).await;
    user(state, id).await
}

/// `user`, once the test lets it through.
async fn held_user(state: State<App>, id: Path<u64>) -> Response {
    let mut held = state.held.subscribe();
    let _ = held.wait_for(|held| !*held).await;
    user(state, id).await
}

/// `user`, or `503` while the test says the origin is failing.
async fn flaky_user(state: State<App>, id: Path<u64>) -> Response {
    if state.failing.load(Ordering::SeqCst) {
        state.call();
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    user(state, id).await
}

async fn language(State(app): State<App>, headers: HeaderMap) -> String {
    let call = app.call();
    let language = headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("none");
    format!("{language} {call}")
}

/// Varies on `Accept-Encoding` by its own `Vary`. The bytes stand for an
/// encoded body: the client does not decode them.
async fn encoded(State(app): State<App>, headers: HeaderMap) -> Response {
    let call = app.call();
    let gzip = headers.get(ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("gzip"));
    if gzip {
        ([(VARY, "accept-encoding"), (CONTENT_ENCODING, "gzip")], format!("gzip {call}")).into_response()
    } else {
        ([(VARY, "Accept-Encoding")], format!("identity {call}")).into_response()
    }
}

async fn vary_star(State(app): State<App>) -> Response {
    ([(VARY, "*")], format!("star {}", app.call())).into_response()
}

async fn set_cookie(State(app): State<App>) -> Response {
    ([(SET_COOKIE, "session=1")], format!("cookie {}", app.call())).into_response()
}

async fn private(State(app): State<App>) -> Response {
    ([(CACHE_CONTROL, "private, max-age=60")], format!("private {}", app.call())).into_response()
}

async fn no_store(State(app): State<App>) -> Response {
    ([(CACHE_CONTROL, "no-store")], format!("no-store {}", app.call())).into_response()
}

async fn big(State(app): State<App>) -> Vec<u8> {
    app.call();
    vec![b'x'; 4096]
}

/// A body of unknown length whose second half waits for the test.
async fn stream(State(app): State<App>) -> Body {
    app.call();
    let gate = app.gate.lock().unwrap().take();
    Body::new(Gated { first: Some(Bytes::from_static(b"first ")), gate })
}

struct Gated {
    first: Option<Bytes>,
    gate: Option<oneshot::Receiver<()>>,
}

impl http_body::Body for Gated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        let Some(gate) = self.gate.as_mut() else { return Poll::Ready(None) };
        if Pin::new(gate).poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.gate = None;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"second")))))
    }
}

#[cached(key = "json:<id>", ttl = 60, cache = cache, skip = [cache])]
async fn json_value(cache: &Cache, id: u64) -> String {
    format!("value {id}")
}

async fn json(State(app): State<App>, Path(id): Path<u64>, headers: HeaderMap) -> CachedJson<String> {
    let (value, entry) = capture(json_value(&app.cache, id)).await;
    CachedJson::new(value, entry, &headers)
}

async fn json_for_a_minute(state: State<App>, id: Path<u64>, headers: HeaderMap) -> CachedJson<String> {
    json(state, id, headers).await.downstream(Downstream::revalidate().max_age(Duration::from_secs(60)))
}

/// A write: drops the pages tagged `user:<id>`.
#[invalidates(tags = ["user:<id>"], cache = cache, skip = [cache])]
async fn user_changed(cache: &Cache, id: u64) -> Result<(), String> {
    Ok(())
}

fn router(app: App) -> Router {
    let page = |route: &str| -> PageCacheBuilder {
        PageCache::builder(Duration::from_secs(60)).cache(app.cache.clone()).route(route)
    };
    let build = |builder: PageCacheBuilder| builder.build().expect("a valid policy");
    Router::new()
        .route("/users/{id}", get(user).layer(build(page("/users/{id}").tag("user:<id>"))))
        .route("/slow/{id}", get(slow_user).layer(build(page("/slow/{id}").tag("user:<id>"))))
        .route("/lang", get(language).layer(build(page("/lang").vary(ACCEPT_LANGUAGE))))
        .route("/encoded", get(encoded).layer(build(page("/encoded"))))
        .route(
            "/encoded-stale",
            get(encoded).layer(build(
                PageCache::builder(Duration::from_secs(1))
                    .cache(app.cache.clone())
                    .route("/encoded-stale")
                    .stale(Duration::from_secs(60)),
            )),
        )
        .route("/star", get(vary_star).layer(build(page("/star"))))
        .route("/cookie", get(set_cookie).layer(build(page("/cookie"))))
        .route("/private", get(private).layer(build(page("/private"))))
        .route("/no-store", get(no_store).layer(build(page("/no-store"))))
        .route("/big", get(big).layer(build(page("/big").max_body_bytes(1024))))
        .route("/stream", get(stream).layer(build(page("/stream"))))
        .route(
            "/minute/{id}",
            get(user).layer(build(
                page("/minute/{id}").downstream(Downstream::revalidate().max_age(Duration::from_secs(60))),
            )),
        )
        .route(
            "/cdn/{id}",
            get(user).layer(build(
                page("/cdn/{id}").downstream(Downstream::revalidate().s_maxage(Duration::from_secs(30))),
            )),
        )
        .route(
            "/held/{id}",
            get(held_user).layer(build(
                PageCache::builder(Duration::from_secs(1))
                    .cache(app.cache.clone())
                    .route("/held/{id}")
                    .tag("user:<id>")
                    .stale(Duration::from_secs(60))
                    .downstream(Downstream::revalidate().max_age(Duration::from_secs(60))),
            )),
        )
        .route(
            "/flaky/{id}",
            get(flaky_user).layer(build(
                PageCache::builder(Duration::from_secs(1))
                    .cache(app.cache.clone())
                    .route("/flaky/{id}")
                    .fail_safe(Duration::from_secs(60))
                    .fail_safe_throttle(Duration::from_secs(2)),
            )),
        )
        .route("/json/{id}", get(json))
        .route("/json-minute/{id}", get(json_for_a_minute))
        .with_state(app)
}

// ---------------------------------------------------------------- client side

struct Server {
    base: String,
    client: Client<HttpConnector, Empty<Bytes>>,
    app: App,
}

async fn start(app: App) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let routes = router(app.clone());
    tokio::spawn(async move { axum::serve(listener, routes).await.unwrap() });
    Server { base, client: Client::builder(TokioExecutor::new()).build_http(), app }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn x_cache(&self) -> &str {
        self.header("x-cache")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Server {
    fn request(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> http::Request<Empty<Bytes>> {
        let mut request = http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(Empty::new()).unwrap()
    }

    async fn send(&self, request: http::Request<Empty<Bytes>>) -> Answer {
        let response = self.client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Answer { status: parts.status, headers: parts.headers, body }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(self.request(Method::GET, path, headers)).await
    }

    async fn head(&self, path: &str) -> Answer {
        self.send(self.request(Method::HEAD, path, &[])).await
    }
}

// ---------------------------------------------------------------- stores

/// A cache to test on, and what keeps it alive.
struct Store {
    cache: Cache,
    redis: Option<RedisServer>,
}

impl Store {
    fn memory() -> Option<Self> {
        Some(Self { cache: Cache::in_memory(), redis: None })
    }

    fn redis() -> Option<Self> {
        if !require_redis() {
            return None;
        }
        let server = RedisServer::start();
        Some(Self { cache: redis_cache(&server), redis: Some(server) })
    }
}

fn redis_cache(server: &RedisServer) -> Cache {
    Cache::builder()
        .redis(&server.url())
        .expect("valid url")
        .prefix("test:pages")
        .expect("valid prefix")
        .timeout(Duration::from_millis(500))
        .build()
}

cache_tests::on_every_store!(
    a_second_get_is_a_hit,
    concurrent_misses_call_the_origin_once,
    head_is_answered_from_the_get_page,
    a_tag_invalidation_drops_the_page,
    matching_validators_get_304,
    vary_keeps_one_page_per_header_value,
    uncacheable_responses_pass_through,
    past_the_ttl_stale_pages_are_served_while_one_refresh_runs,
    a_failing_origin_is_stood_in_for_and_asked_once_per_throttle,
    stale_pages_that_vary_are_refreshed_once_per_variant,
);

// ---------------------------------------------------------------- scenarios

async fn a_second_get_is_a_hit(store: Store) {
    let server = start(App::new(store.cache)).await;
    let first = server.get("/users/1", &[]).await;
    assert_eq!((first.status, first.x_cache()), (StatusCode::OK, "MISS"));
    assert_eq!(first.text(), r#"{"id":1,"call":1}"#);
    assert_eq!(first.header("content-type"), "application/json");
    assert!(first.header("age").is_empty(), "a page just rendered has no age");
    let second = server.get("/users/1", &[]).await;
    assert_eq!((second.status, second.x_cache()), (StatusCode::OK, "HIT"));
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("etag"), first.header("etag"));
    assert!(second.header("age").parse::<u64>().is_ok(), "a hit has an Age");
    assert_eq!(server.app.calls(), 1);
    assert_eq!(server.get("/users/2", &[]).await.x_cache(), "MISS");
    let tracked = server.get("/users/1?utm_source=mail", &[]).await;
    assert_eq!(tracked.x_cache(), "HIT", "tracking parameters are not in the key");
    assert_eq!(server.app.calls(), 2);
}

async fn concurrent_misses_call_the_origin_once(store: Store) {
    let server = Arc::new(start(App::new(store.cache)).await);
    let answers = futures_join(16, |_| {
        let server = Arc::clone(&server);
        async move { server.get("/slow/1", &[]).await }
    })
    .await;
    assert_eq!(server.app.calls(), 1, "one origin call for 16 concurrent misses");
    assert!(answers.iter().all(|answer| answer.status == StatusCode::OK && answer.body == answers[0].body));
    let misses = answers.iter().filter(|answer| answer.x_cache() == "MISS").count();
    assert_eq!(
        misses,
        1,
        "the others waited for it: {:?}",
        answers.iter().map(Answer::x_cache).collect::<Vec<_>>()
    );
}

async fn head_is_answered_from_the_get_page(store: Store) {
    let server = start(App::new(store.cache)).await;
    let head = server.head("/users/2").await;
    assert_eq!((head.status, head.x_cache()), (StatusCode::OK, "MISS"));
    assert!(head.body.is_empty());
    let get = server.get("/users/2", &[]).await;
    assert_eq!(get.x_cache(), "HIT", "the HEAD stored the GET page");
    assert_eq!(head.header("content-length"), get.body.len().to_string());
    assert_eq!(head.header("etag"), get.header("etag"));
    let again = server.head("/users/2").await;
    assert_eq!(again.x_cache(), "HIT");
    assert!(again.body.is_empty());
    assert_eq!(server.app.calls(), 1);
}

async fn a_tag_invalidation_drops_the_page(store: Store) {
    let cache = store.cache.clone();
    let server = start(App::new(store.cache)).await;
    let before = server.get("/users/3", &[]).await;
    server.get("/users/4", &[]).await;
    assert_eq!(server.get("/users/3", &[]).await.x_cache(), "HIT");

    user_changed(&cache, 3).await.unwrap();
    let after = server.get("/users/3", &[]).await;
    assert_eq!(after.x_cache(), "MISS", "#[invalidates(tags = [\"user:<id>\"])] dropped the page");
    assert_eq!(after.text(), r#"{"id":3,"call":3}"#);
    assert_ne!(after.header("etag"), before.header("etag"));
    assert_eq!(server.get("/users/4", &[]).await.x_cache(), "HIT", "other pages stay");

    cache.invalidate_tag("user:4").await.unwrap();
    assert_eq!(server.get("/users/4", &[]).await.x_cache(), "MISS");
    assert_eq!(server.app.calls(), 4);
}

async fn matching_validators_get_304(store: Store) {
    let cache = store.cache.clone();
    let server = start(App::new(store.cache)).await;
    let first = server.get("/users/5", &[]).await;
    let (etag, last_modified) = (first.header("etag").to_owned(), first.header("last-modified").to_owned());
    assert!(etag.starts_with('"') && etag.len() == 34, "a strong ETag: {etag}");
    assert!(last_modified.ends_with("GMT"), "{last_modified}");
    assert_eq!(first.header("cache-control"), "no-cache");

    let not_modified = server.get("/users/5", &[("if-none-match", &etag)]).await;
    assert_eq!((not_modified.status, not_modified.x_cache()), (StatusCode::NOT_MODIFIED, "HIT"));
    assert!(not_modified.body.is_empty());
    let length = not_modified.header("content-length");
    assert!(
        length.is_empty() || length == first.body.len().to_string(),
        "the page's length or none, not {length}"
    );
    assert_eq!(not_modified.header("etag"), etag);
    assert_eq!(not_modified.header("cache-control"), "no-cache");
    let since = server.get("/users/5", &[("if-modified-since", &last_modified)]).await;
    assert_eq!(since.status, StatusCode::NOT_MODIFIED);
    let earlier =
        httpdate::fmt_http_date(httpdate::parse_http_date(&last_modified).unwrap() - Duration::from_secs(10));
    assert_eq!(server.get("/users/5", &[("if-modified-since", &earlier)]).await.status, StatusCode::OK);
    let other = server.get("/users/5", &[("if-none-match", "\"other\"")]).await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(server.app.calls(), 1);

    cache.invalidate_tag("user:5").await.unwrap();
    let changed = server.get("/users/5", &[("if-none-match", &etag)]).await;
    assert_eq!(changed.status, StatusCode::OK, "the old ETag does not match the new page");
    assert_ne!(changed.header("etag"), etag);
}

async fn vary_keeps_one_page_per_header_value(store: Store) {
    let server = start(App::new(store.cache)).await;
    let fr = server.get("/lang", &[("accept-language", "fr")]).await;
    let en = server.get("/lang", &[("accept-language", "en")]).await;
    assert_eq!((fr.text(), fr.x_cache()), ("fr 1".to_owned(), "MISS"));
    assert_eq!((en.text(), en.x_cache()), ("en 2".to_owned(), "MISS"));
    assert_eq!(fr.header("vary"), "accept-language", "the policy's Vary is announced");
    let fr = server.get("/lang", &[("accept-language", "fr")]).await;
    let en = server.get("/lang", &[("accept-language", "en")]).await;
    assert_eq!((fr.text(), fr.x_cache()), ("fr 1".to_owned(), "HIT"));
    assert_eq!((en.text(), en.x_cache()), ("en 2".to_owned(), "HIT"));

    // The response's own `Vary: Accept-Encoding`, not named by the policy.
    let gzip = server.get("/encoded", &[("accept-encoding", "gzip")]).await;
    let identity = server.get("/encoded", &[("accept-encoding", "identity")]).await;
    assert_eq!((gzip.text(), gzip.x_cache()), ("gzip 3".to_owned(), "MISS"));
    assert_eq!(gzip.header("content-encoding"), "gzip");
    assert_eq!((identity.text(), identity.x_cache()), ("identity 4".to_owned(), "MISS"));
    assert_ne!(gzip.header("etag"), identity.header("etag"));
    for _ in 0..2 {
        let gzip = server.get("/encoded", &[("accept-encoding", "gzip")]).await;
        let identity = server.get("/encoded", &[("accept-encoding", "identity")]).await;
        assert_eq!((gzip.text(), gzip.x_cache()), ("gzip 3".to_owned(), "HIT"));
        assert_eq!(gzip.header("vary"), "accept-encoding");
        assert_eq!((identity.text(), identity.x_cache()), ("identity 4".to_owned(), "HIT"));
        assert!(identity.header("content-encoding").is_empty());
    }
    // Values are normalized: case, whitespace and the order of a set do not count.
    for (value, x_cache) in
        [("gzip, deflate", "MISS"), ("Deflate,GZIP", "HIT"), ("deflate ,gzip;q=1.0", "HIT")]
    {
        let answer = server.get("/encoded", &[("accept-encoding", value)]).await;
        assert_eq!((answer.text(), answer.x_cache()), ("gzip 5".to_owned(), x_cache), "{value}");
    }
    for value in ["GZIP", " gzip"] {
        let answer = server.get("/encoded", &[("accept-encoding", value)]).await;
        assert_eq!((answer.text(), answer.x_cache()), ("gzip 3".to_owned(), "HIT"), "{value}");
    }
    let none = server.get("/encoded", &[]).await;
    assert_eq!((none.text(), none.x_cache()), ("identity 6".to_owned(), "MISS"), "no header is a value too");
    assert_eq!(server.app.calls(), 6);
}

async fn uncacheable_responses_pass_through(store: Store) {
    let server = start(App::new(store.cache)).await;
    for path in ["/star", "/cookie", "/private", "/no-store"] {
        let before = server.app.calls();
        for _ in 0..2 {
            let answer = server.get(path, &[]).await;
            assert_eq!((answer.status, answer.x_cache()), (StatusCode::OK, "BYPASS"), "{path}");
            assert!(answer.header("etag").is_empty(), "{path}: the origin's headers, untouched");
        }
        assert_eq!(server.app.calls(), before + 2, "{path} is never cached");
    }
    let cookie = server.get("/cookie", &[]).await;
    assert_eq!(cookie.header("set-cookie"), "session=1");
    assert_eq!(server.get("/private", &[]).await.header("cache-control"), "private, max-age=60");

    let before = server.app.calls();
    for credentials in [("authorization", "Bearer secret"), ("cookie", "session=1")] {
        for _ in 0..2 {
            assert_eq!(server.get("/users/9", &[credentials]).await.x_cache(), "BYPASS", "{credentials:?}");
        }
    }
    assert_eq!(server.app.calls(), before + 4);
    assert_eq!(server.get("/users/9", &[]).await.x_cache(), "MISS", "nothing was stored for them");
}

/// Sends `GET path` until its page is fresh again (`HIT`), for at most 5 s.
async fn until_hit(server: &Server, path: &str, headers: &[(&str, &str)]) -> Answer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let answer = server.get(path, headers).await;
        if answer.x_cache() == "HIT" || tokio::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn past_the_ttl_stale_pages_are_served_while_one_refresh_runs(store: Store) {
    let cache = store.cache.clone();
    let server = Arc::new(start(App::new(store.cache)).await);
    let first = server.get("/held/1", &[]).await;
    assert_eq!((first.x_cache(), first.text()), ("MISS", r#"{"id":1,"call":1}"#.to_owned()));
    tokio::time::sleep(Duration::from_millis(1_100)).await; // past the TTL

    // The origin holds every request now: only a page from the cache answers.
    server.app.held.send_replace(true);
    let answers = futures_join(16, |_| {
        let server = Arc::clone(&server);
        async move {
            let answer = tokio::time::timeout(Duration::from_secs(5), server.get("/held/1", &[])).await;
            answer.expect("a stale page is answered without waiting for the origin")
        }
    })
    .await;
    for answer in &answers {
        assert_eq!((answer.status, answer.x_cache()), (StatusCode::OK, "STALE"));
        assert_eq!(answer.body, first.body);
        assert_eq!(answer.header("etag"), first.header("etag"), "the stored page's validators");
        assert_eq!(answer.header("last-modified"), first.header("last-modified"));
        let age: u64 = answer.header("age").parse().expect("a stale page has an Age");
        assert!(age >= 1, "{age}");
        assert_eq!(answer.header("cache-control"), "no-cache", "not the policy's max-age");
    }
    // Past its TTL, no cache downstream may take it for fresh.
    let request = server.request(Method::GET, "/held/1", &[]);
    for shared in [true, false] {
        let downstream = downstream(&request, &answers[0], shared);
        assert_eq!(downstream.time_to_live(SystemTime::now()), Duration::ZERO);
    }
    let revalidated = server.get("/held/1", &[("if-none-match", first.header("etag"))]).await;
    assert_eq!((revalidated.status, revalidated.x_cache()), (StatusCode::NOT_MODIFIED, "STALE"));
    assert_eq!(server.app.calls(), 1, "the refresh waits in the origin");

    server.app.held.send_replace(false);
    let fresh = until_hit(&server, "/held/1", &[]).await;
    assert_eq!((fresh.x_cache(), fresh.text()), ("HIT", r#"{"id":1,"call":2}"#.to_owned()));
    assert_ne!(fresh.header("etag"), first.header("etag"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.app.calls(), 2, "one refresh for every request past the TTL");

    // An invalidated page is never served, stale or not.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    cache.invalidate_tag("user:1").await.unwrap();
    let after = server.get("/held/1", &[]).await;
    assert_eq!((after.x_cache(), after.text()), ("MISS", r#"{"id":1,"call":3}"#.to_owned()));
}

async fn a_failing_origin_is_stood_in_for_and_asked_once_per_throttle(store: Store) {
    let server = start(App::new(store.cache)).await;
    let first = server.get("/flaky/1", &[]).await;
    assert_eq!(first.x_cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(1_100)).await; // past the TTL

    server.app.failing.store(true, Ordering::SeqCst);
    for _ in 0..10 {
        let answer = server.get("/flaky/1", &[]).await;
        assert_eq!((answer.status, answer.x_cache()), (StatusCode::OK, "STALE"), "the 503 is not sent");
        assert_eq!(answer.body, first.body);
        assert_eq!(answer.header("etag"), first.header("etag"));
        assert!(answer.header("age").parse::<u64>().is_ok_and(|age| age >= 1), "{}", answer.header("age"));
        assert_eq!(answer.header("cache-control"), "no-cache");
    }
    assert_eq!(server.app.calls(), 2, "the failing origin is asked once per throttle window");

    // Up again: past the throttle, the next request gets a fresh page.
    server.app.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let fresh = server.get("/flaky/1", &[]).await;
    assert_eq!((fresh.x_cache(), fresh.text()), ("MISS", r#"{"id":1,"call":3}"#.to_owned()));
    assert_eq!(server.get("/flaky/1", &[]).await.x_cache(), "HIT");
    assert_eq!(server.app.calls(), 3);
}

async fn stale_pages_that_vary_are_refreshed_once_per_variant(store: Store) {
    let server = start(App::new(store.cache)).await;
    let (gzip, identity) = ([("accept-encoding", "gzip")], [("accept-encoding", "identity")]);
    assert_eq!(server.get("/encoded-stale", &gzip).await.text(), "gzip 1");
    assert_eq!(server.get("/encoded-stale", &identity).await.text(), "identity 2");
    tokio::time::sleep(Duration::from_millis(1_100)).await; // past the TTL
    let stale = server.get("/encoded-stale", &gzip).await;
    assert_eq!((stale.x_cache(), stale.text()), ("STALE", "gzip 1".to_owned()));
    assert_eq!(stale.header("content-encoding"), "gzip");
    let stale = server.get("/encoded-stale", &identity).await;
    assert_eq!((stale.x_cache(), stale.text()), ("STALE", "identity 2".to_owned()));
    let fresh = until_hit(&server, "/encoded-stale", &gzip).await;
    assert_eq!(fresh.x_cache(), "HIT");
    assert!(fresh.text().starts_with("gzip "), "{}", fresh.text());
    let fresh = until_hit(&server, "/encoded-stale", &identity).await;
    assert_eq!(fresh.x_cache(), "HIT");
    assert!(fresh.text().starts_with("identity "), "{}", fresh.text());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.app.calls(), 4, "one refresh per variant");
}

/// Runs `count` futures made by `make` at once.
async fn futures_join<F: Future<Output = Answer> + Send + 'static>(
    count: usize,
    make: impl Fn(usize) -> F,
) -> Vec<Answer> {
    let tasks: Vec<_> = (0..count).map(|index| tokio::spawn(make(index))).collect();
    let mut answers = Vec::with_capacity(count);
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

// ---------------------------------------------------------------- Redis only

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_redis_call_the_origin_once() {
    let Some(store) = Store::redis() else { return };
    let app = App::new(store.cache.clone());
    let other_process = App { cache: redis_cache(store.redis.as_ref().unwrap()), ..app.clone() };
    let servers = Arc::new([start(app).await, start(other_process).await]);
    // The same public host, as behind a load balancer.
    let answers = futures_join(12, |index| {
        let servers = Arc::clone(&servers);
        async move { servers[index % 2].get("/slow/7", &[("host", "app.example")]).await }
    })
    .await;
    assert_eq!(servers[0].app.calls(), 1, "the entry's lease made the other process wait");
    assert!(answers.iter().all(|answer| answer.body == answers[0].body));
    user_changed(&servers[1].app.cache, 7).await.unwrap();
    let after = servers[0].get("/slow/7", &[("host", "app.example")]).await;
    assert_eq!(after.x_cache(), "MISS", "an invalidation from the other process drops the page");
}

// ---------------------------------------------------------------- bodies

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_passes_through_uncached() {
    let server = start(App::new(Cache::in_memory())).await;
    for call in 1..=2 {
        let big = server.get("/big", &[]).await;
        assert_eq!((big.status, big.x_cache(), big.body.len()), (StatusCode::OK, "BYPASS", 4096));
        assert_eq!(server.app.calls(), call);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_unknown_length_streams_through_unbuffered() {
    let server = start(App::new(Cache::in_memory())).await;
    for call in 1..=2 {
        let (open, gate) = oneshot::channel();
        *server.app.gate.lock().unwrap() = Some(gate);
        let response = server.client.request(server.request(Method::GET, "/stream", &[])).await.unwrap();
        assert_eq!(response.headers()["x-cache"], "BYPASS");
        let mut body = response.into_body();
        // The first half arrives while the origin still holds the second:
        // nothing waits for the whole body.
        let first = tokio::time::timeout(Duration::from_secs(5), body.frame()).await;
        let first = first.expect("the first half is not held back").unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "first ");
        open.send(()).unwrap();
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest, "second");
        assert_eq!(server.app.calls(), call, "never cached");
    }
}

// ---------------------------------------------------------------- downstream caches

/// What a downstream cache (shared: a CDN or proxy; private: a browser) makes
/// of an answer to `request`, received now.
fn downstream(request: &http::Request<Empty<Bytes>>, answer: &Answer, shared: bool) -> CachePolicy {
    let mut response = http::Response::builder().status(answer.status).body(()).unwrap();
    *response.headers_mut() = answer.headers.clone();
    let options = CacheOptions { shared, ..CacheOptions::default() };
    CachePolicy::new_options(request, &response, SystemTime::now(), options)
}

/// By default (`no-cache`), downstream caches may store a page but must
/// revalidate it before every use; the revalidation they send gets a 304.
async fn assert_revalidated_by_default(server: &Server, path: &str) {
    let request = server.request(Method::GET, path, &[]);
    let answer = server.send(server.request(Method::GET, path, &[])).await;
    assert_eq!(answer.header("cache-control"), "no-cache", "{path}");
    for shared in [true, false] {
        let policy = downstream(&request, &answer, shared);
        assert!(policy.is_storable(), "{path}");
        assert_eq!(policy.time_to_live(SystemTime::now()), Duration::ZERO, "{path}: never fresh downstream");
        let BeforeRequest::Stale { request: revalidation, matches: true } =
            policy.before_request(&request, SystemTime::now())
        else {
            panic!("{path}: a downstream cache must revalidate before using its copy")
        };
        assert_eq!(revalidation.headers["if-none-match"], answer.headers["etag"], "{path}");
        let mut again = server.request(Method::GET, path, &[]);
        *again.headers_mut() = revalidation.headers.clone();
        let checked = server.send(again).await;
        assert_eq!(checked.status, StatusCode::NOT_MODIFIED, "{path}");
        let after = policy.after_response(
            &request,
            &http::Response::from_parts(response_parts(&checked), ()),
            SystemTime::now(),
        );
        assert!(matches!(after, AfterResponse::NotModified(..)), "{path}: the copy is still good");
    }
}

fn response_parts(answer: &Answer) -> http::response::Parts {
    let mut response = http::Response::builder().status(answer.status).body(()).unwrap();
    *response.headers_mut() = answer.headers.clone();
    response.into_parts().0
}

/// With `max-age`, a downstream cache keeps a page for `max-age - Age`: the
/// age is counted once.
async fn assert_fresh_for_max_age_less_age(server: &Server, path: &str) {
    let request = server.request(Method::GET, path, &[]);
    let first = server.get(path, &[]).await;
    assert_eq!(first.header("cache-control"), "max-age=60", "{path}");
    let ttl = downstream(&request, &first, false).time_to_live(SystemTime::now());
    assert!(ttl > Duration::from_secs(58) && ttl <= Duration::from_secs(60), "{path}: {ttl:?}");

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let later = server.get(path, &[]).await;
    let age: u64 = later.header("age").parse().unwrap_or_else(|_| panic!("{path}: Age on a hit"));
    assert!(age >= 1, "{path}: {age}");
    for shared in [true, false] {
        let ttl = downstream(&request, &later, shared).time_to_live(SystemTime::now()).as_secs();
        assert!(ttl + age <= 60 && ttl + age >= 59, "{path}: fresh {ttl} s more after {age} s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_caches_revalidate_pages_and_json_by_default() {
    let server = start(App::new(Cache::in_memory())).await;
    assert_revalidated_by_default(&server, "/users/1").await;
    assert_revalidated_by_default(&server, "/json/1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_minus_age_is_what_downstream_caches_keep() {
    let server = start(App::new(Cache::in_memory())).await;
    assert_fresh_for_max_age_less_age(&server, "/minute/1").await;
    assert_fresh_for_max_age_less_age(&server, "/json-minute/1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s_maxage_is_for_shared_caches_only() {
    let server = start(App::new(Cache::in_memory())).await;
    let request = server.request(Method::GET, "/cdn/1", &[]);
    let answer = server.get("/cdn/1", &[]).await;
    assert_eq!(answer.header("cache-control"), "max-age=0, s-maxage=30");
    let cdn = downstream(&request, &answer, true).time_to_live(SystemTime::now());
    assert!(cdn > Duration::from_secs(28) && cdn <= Duration::from_secs(30), "{cdn:?}");
    assert_eq!(
        downstream(&request, &answer, false).time_to_live(SystemTime::now()),
        Duration::ZERO,
        "browsers revalidate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_the_layer_passes_through_are_judged_as_the_origin_sent_them() {
    let server = start(App::new(Cache::in_memory())).await;
    let request = server.request(Method::GET, "/private", &[]);
    let answer = server.get("/private", &[]).await;
    assert!(!downstream(&request, &answer, true).is_storable(), "private: not for shared caches");
    assert!(downstream(&request, &answer, false).time_to_live(SystemTime::now()) > Duration::from_secs(58));
}
