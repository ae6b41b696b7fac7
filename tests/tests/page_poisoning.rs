//! Cache poisoning of the page cache, played over real HTTP/1.1: an attacker's
//! request first, then a victim's, both written byte for byte on a
//! `TcpStream` to an axum server, with pages in memory and in Redis (a
//! `redis-server` started here). Each scenario checks that what the attacker
//! sent never reaches the victim: the attacker's request is not cached, or is
//! cached under a key of its own, or its unkeyed part never reaches the
//! handler.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, HOST, LOCATION, RANGE, REFERER};
use axum::http::{HeaderMap, HeaderName, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cache_runtime::Cache;
use cache_runtime::http::{PageCache, PageCacheBuilder, ProxyHeaders};
use cache_tests::redis_server::{RedisServer, require_redis};

// ---------------------------------------------------------------- the origin

/// What handlers share: how often the origin ran, and whether `/draft` exists yet.
#[derive(Clone, Default)]
struct App {
    calls: Arc<AtomicUsize>,
    published: Arc<AtomicBool>,
}

impl App {
    fn call(&self) -> usize {
        self.calls.fetch_add(1, Ordering::SeqCst) + 1
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The host the request names, as a handler reads it.
async fn whoami(State(app): State<App>, headers: HeaderMap) -> String {
    app.call();
    format!("host {}", header(&headers, HOST.as_str()).unwrap_or("none"))
}

/// A redirect to the canonical page, built as frameworks build absolute URLs
/// behind a proxy: from `X-Forwarded-Proto` / `X-Forwarded-Host`, or
/// `Forwarded`, else `Host`.
async fn redirect(State(app): State<App>, headers: HeaderMap) -> Response {
    app.call();
    let forwarded = |key: &str| {
        header(&headers, "forwarded")?
            .split(';')
            .find_map(|pair| pair.trim().strip_prefix(key)?.strip_prefix('='))
    };
    let proto = header(&headers, "x-forwarded-proto").or_else(|| forwarded("proto")).unwrap_or("http");
    let host = header(&headers, "x-forwarded-host")
        .or_else(|| forwarded("host"))
        .or_else(|| header(&headers, HOST.as_str()))
        .unwrap_or("none");
    (StatusCode::MOVED_PERMANENTLY, [(LOCATION, format!("{proto}://{host}/home"))]).into_response()
}

/// Echoes the request body.
async fn echo(State(app): State<App>, body: String) -> String {
    app.call();
    format!("body {body:?}")
}

/// Echoes the query the handler got.
async fn search(State(app): State<App>, uri: Uri) -> String {
    app.call();
    format!("query {}", uri.query().unwrap_or_default())
}

/// A list that honours `Range: items=first-last`, as some APIs page.
async fn items(State(app): State<App>, headers: HeaderMap) -> String {
    app.call();
    let all = ["a", "b", "c", "d"];
    let range = header(&headers, RANGE.as_str())
        .and_then(|range| range.strip_prefix("items="))
        .and_then(|range| range.split_once('-'))
        .and_then(|(first, last)| Some(first.parse::<usize>().ok()?..=last.parse::<usize>().ok()?));
    match range {
        Some(range) => all.get(range).unwrap_or_default().join(","),
        None => all.join(","),
    }
}

/// The caller's own account, found from an API key or proxy credentials.
async fn account(State(app): State<App>, headers: HeaderMap) -> String {
    app.call();
    let who = header(&headers, "x-api-key").or_else(|| header(&headers, "proxy-authorization"));
    format!("account of {}", who.unwrap_or("nobody"))
}

/// Echoes the `Referer`, and says how it may be cached: `/from/no-cache`,
/// `/from/max-age=0`, `/from/s-maxage=0`.
async fn referer(State(app): State<App>, Path(cache_control): Path<String>, headers: HeaderMap) -> Response {
    app.call();
    let referer = header(&headers, REFERER.as_str()).unwrap_or("none").to_owned();
    ([(CACHE_CONTROL, cache_control)], format!("from {referer}")).into_response()
}

/// Every path under a layer on the whole router: `/draft` once published,
/// anything else a 404.
async fn fallback(State(app): State<App>, uri: Uri) -> Response {
    app.call();
    if uri.path() == "/draft" && app.published.load(Ordering::SeqCst) {
        return "the draft, published".into_response();
    }
    (StatusCode::NOT_FOUND, "no such page").into_response()
}

fn page(cache: &Cache, route: &str) -> PageCacheBuilder {
    PageCache::builder(Duration::from_secs(60)).cache(cache.clone()).route(route)
}

fn build(builder: PageCacheBuilder) -> PageCache {
    builder.build().expect("a valid policy")
}

fn router(app: App, cache: &Cache) -> Router {
    let routes = Router::new()
        .route("/whoami", get(whoami).layer(build(page(cache, "/whoami"))))
        .route("/go", get(redirect).layer(build(page(cache, "/go"))))
        .route(
            "/go-keyed",
            get(redirect).layer(build(page(cache, "/go-keyed").proxy_headers(ProxyHeaders::Key))),
        )
        .route(
            "/go-stripped",
            get(redirect).layer(build(page(cache, "/go-stripped").proxy_headers(ProxyHeaders::Strip))),
        )
        .route(
            "/missing",
            get(fallback)
                .layer(build(page(cache, "/missing").statuses([StatusCode::OK, StatusCode::NOT_FOUND]))),
        )
        .route("/echo", get(echo).layer(build(page(cache, "/echo"))))
        .route("/search", get(search).layer(build(page(cache, "/search"))))
        .route("/items", get(items).layer(build(page(cache, "/items"))))
        .route("/account", get(account).layer(build(page(cache, "/account"))))
        .route("/from/{cache_control}", get(referer).layer(build(page(cache, "/from/{cache_control}"))));
    // A layer on a whole router sees its fallback's 404s too.
    let site = Router::new()
        .fallback(fallback)
        .layer(build(PageCache::builder(Duration::from_secs(60)).cache(cache.clone())));
    routes.merge(site).with_state(app)
}

// ---------------------------------------------------------------- a raw HTTP/1.1 client

struct Server {
    addr: SocketAddr,
    app: App,
}

async fn start(cache: &Cache) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = App::default();
    let routes = router(app.clone(), cache);
    tokio::spawn(async move { axum::serve(listener, routes).await.unwrap() });
    Server { addr, app }
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        header(&self.headers, name).unwrap_or_default()
    }

    fn x_cache(&self) -> &str {
        self.header("x-cache")
    }
}

impl Server {
    /// Sends `head` (the request line and header lines, without the blank
    /// line), `Connection: close`, and `body` as they are; reads the answer
    /// to the end.
    async fn send(&self, head: &str, body: &[u8]) -> Answer {
        let mut request = format!("{head}\r\nConnection: close\r\n\r\n").into_bytes();
        request.extend_from_slice(body);
        let addr = self.addr;
        let exchange = move || -> std::io::Result<Vec<u8>> {
            let mut stream = TcpStream::connect(addr)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            stream.write_all(&request)?;
            let mut bytes = Vec::new();
            stream.read_to_end(&mut bytes)?;
            Ok(bytes)
        };
        let bytes = tokio::task::spawn_blocking(exchange).await.unwrap().expect("the server answers");
        parse(&bytes)
    }

    /// `GET target` with `Host: victim.example` and `headers`.
    async fn get(&self, target: &str, headers: &[(&str, &str)]) -> Answer {
        let mut head = format!("GET {target} HTTP/1.1\r\nHost: victim.example");
        for (name, value) in headers {
            head.push_str(&format!("\r\n{name}: {value}"));
        }
        self.send(&head, b"").await
    }
}

fn parse(bytes: &[u8]) -> Answer {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = std::str::from_utf8(&bytes[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse::<u16>().unwrap();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value.trim().parse().unwrap());
    }
    let mut body = bytes[split + 4..].to_vec();
    if header(&headers, "transfer-encoding") == Some("chunked") {
        body = dechunk(&body);
    }
    Answer { status: StatusCode::from_u16(status).unwrap(), headers, body: String::from_utf8(body).unwrap() }
}

fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line = bytes.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&bytes[..line]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&bytes[line + 2..line + 2 + size]);
        bytes = &bytes[line + 4 + size..];
    }
}

// ---------------------------------------------------------------- stores

/// A cache to test on, and what keeps it alive.
struct Store {
    cache: Cache,
    _redis: Option<RedisServer>,
}

impl Store {
    fn memory() -> Option<Self> {
        Some(Self { cache: Cache::in_memory(), _redis: None })
    }

    fn redis() -> Option<Self> {
        if !require_redis() {
            return None;
        }
        let server = RedisServer::start();
        let cache = Cache::builder()
            .redis(&server.url())
            .expect("valid url")
            .prefix("test:poisoning")
            .expect("valid prefix")
            .timeout(Duration::from_millis(500))
            .build();
        Some(Self { cache, _redis: Some(server) })
    }
}

cache_tests::on_every_store!(
    an_absolute_target_naming_another_host_than_host_is_not_cached,
    requests_with_forwarded_headers_are_not_cached,
    a_get_with_a_body_is_not_cached,
    ignored_query_parameters_never_reach_the_handler,
    range_requests_are_not_cached,
    requests_with_other_credentials_are_not_cached,
    the_handlers_no_cache_and_zero_max_age_are_honoured,
    a_404_is_not_cached_unless_asked_for,
    proxy_headers_can_be_keyed_or_stripped,
);

// ---------------------------------------------------------------- attacker, then victim

/// `GET http://victim.example/whoami` with `Host: evil.example`: the handler
/// reads `Host`, so the page must not be stored under `victim.example`.
async fn an_absolute_target_naming_another_host_than_host_is_not_cached(store: Store) {
    let server = start(&store.cache).await;
    let attacker = server.send("GET http://victim.example/whoami HTTP/1.1\r\nHost: evil.example", b"").await;
    assert_eq!((attacker.status, attacker.body.as_str()), (StatusCode::OK, "host evil.example"));
    let victim = server.get("/whoami", &[]).await;
    assert_eq!((victim.body.as_str(), victim.x_cache()), ("host victim.example", "MISS"));
    assert_eq!(attacker.x_cache(), "BYPASS", "the target and Host disagree");
    let agreeing = "GET http://victim.example/whoami HTTP/1.1\r\nHost: victim.example";
    for x_cache in ["MISS", "HIT"] {
        let answer = server.send(agreeing, b"").await;
        assert_eq!((answer.body.as_str(), answer.x_cache()), ("host victim.example", x_cache), "keyed");
    }
}

/// A `301` whose `Location` the handler builds from `X-Forwarded-Host`,
/// `X-Forwarded-Proto` or `Forwarded`: by default such requests bypass the
/// cache.
async fn requests_with_forwarded_headers_are_not_cached(store: Store) {
    let server = start(&store.cache).await;
    let attacks = [
        ("x-forwarded-host", "evil.example", "http://evil.example/home"),
        ("x-forwarded-proto", "javascript", "javascript://victim.example/home"),
        ("forwarded", "host=evil.example;proto=https", "https://evil.example/home"),
    ];
    for (case, (name, value, location)) in attacks.into_iter().enumerate() {
        let target = format!("/go?case={case}");
        let attacker = server.get(&target, &[(name, value)]).await;
        assert_eq!((attacker.status, attacker.header("location")), (StatusCode::MOVED_PERMANENTLY, location));
        let victim = server.get(&target, &[]).await;
        assert_eq!(
            (victim.header("location"), victim.x_cache()),
            ("http://victim.example/home", "MISS"),
            "{name}"
        );
        assert_eq!(attacker.x_cache(), "BYPASS", "{name}");
    }
}

/// A `GET` whose body the handler reads, with `Content-Length` or chunked.
async fn a_get_with_a_body_is_not_cached(store: Store) {
    let server = start(&store.cache).await;
    let length = "GET /echo?case=length HTTP/1.1\r\nHost: victim.example\r\nContent-Length: 8";
    let chunked = "GET /echo?case=chunked HTTP/1.1\r\nHost: victim.example\r\nTransfer-Encoding: chunked";
    for (head, body, target) in [
        (length, &b"<script>"[..], "/echo?case=length"),
        (chunked, &b"8\r\n<script>\r\n0\r\n\r\n"[..], "/echo?case=chunked"),
    ] {
        let attacker = server.send(head, body).await;
        assert_eq!(attacker.body, "body \"<script>\"", "{target}");
        let victim = server.get(target, &[]).await;
        assert_eq!((victim.body.as_str(), victim.x_cache()), ("body \"\"", "MISS"), "{target}");
        assert_eq!(attacker.x_cache(), "BYPASS", "{target}");
    }
    let empty =
        server.send("GET /echo?case=empty HTTP/1.1\r\nHost: victim.example\r\nContent-Length: 0", b"").await;
    assert_eq!(empty.x_cache(), "MISS", "an empty body is no body");
}

/// `utm_*` parameters are left out of the key, so they must not reach the
/// handler either.
async fn ignored_query_parameters_never_reach_the_handler(store: Store) {
    let server = start(&store.cache).await;
    let attacker = server.get("/search?k=5&utm_source=%3Cscript%3E&gclid=x", &[]).await;
    let victim = server.get("/search?k=5", &[]).await;
    assert_eq!((victim.body.as_str(), victim.x_cache()), ("query k=5", "HIT"));
    assert_eq!((attacker.body.as_str(), attacker.x_cache()), ("query k=5", "MISS"));
    let kept = server.get("/search?utm=1&k=6&utm_medium=x&k=7", &[]).await;
    assert_eq!(kept.body, "query utm=1&k=6&k=7", "the other parameters as they came, in order");
}

/// `Range` is not in the key: a request for part of a page must not store
/// that part as the page.
async fn range_requests_are_not_cached(store: Store) {
    let server = start(&store.cache).await;
    let attacker = server.get("/items", &[("range", "items=0-0")]).await;
    assert_eq!(attacker.body, "a");
    let victim = server.get("/items", &[]).await;
    assert_eq!((victim.body.as_str(), victim.x_cache()), ("a,b,c,d", "MISS"));
    assert_eq!(attacker.x_cache(), "BYPASS");
}

/// A page found by an API key or proxy credentials belongs to their owner.
async fn requests_with_other_credentials_are_not_cached(store: Store) {
    let server = start(&store.cache).await;
    for (case, name) in ["x-api-key", "proxy-authorization"].into_iter().enumerate() {
        let target = format!("/account?case={case}");
        let owner = server.get(&target, &[(name, "alice")]).await;
        assert_eq!(owner.body, "account of alice", "{name}");
        let other = server.get(&target, &[]).await;
        assert_eq!((other.body.as_str(), other.x_cache()), ("account of nobody", "MISS"), "{name}");
        assert_eq!(owner.x_cache(), "BYPASS", "{name}");
    }
}

/// A handler that says its response must not be reused (it reflects the
/// `Referer`, which is not keyed) is not stored.
async fn the_handlers_no_cache_and_zero_max_age_are_honoured(store: Store) {
    let server = start(&store.cache).await;
    for directive in ["no-cache", "max-age=0", "s-maxage=0", "public,%20max-age=60,%20s-maxage=0"] {
        let target = format!("/from/{directive}");
        let attacker = server.get(&target, &[("referer", "<script>")]).await;
        assert_eq!(attacker.body, "from <script>", "{directive}");
        let victim = server.get(&target, &[("referer", "/home")]).await;
        assert_eq!((victim.body.as_str(), victim.x_cache()), ("from /home", "BYPASS"), "{directive}");
        assert_eq!(attacker.x_cache(), "BYPASS", "{directive}");
    }
    let fresh = server.get("/from/max-age=60", &[("referer", "/home")]).await;
    assert_eq!(fresh.x_cache(), "MISS", "a positive max-age is stored");
}

/// Under a layer on a whole router, a page requested before it exists: its
/// 404 is not kept, so the page is served as soon as it is published.
async fn a_404_is_not_cached_unless_asked_for(store: Store) {
    let server = start(&store.cache).await;
    let attacker = server.get("/draft", &[]).await;
    assert_eq!(attacker.status, StatusCode::NOT_FOUND);
    server.app.published.store(true, Ordering::SeqCst);
    let victim = server.get("/draft", &[]).await;
    assert_eq!((victim.status, victim.body.as_str()), (StatusCode::OK, "the draft, published"));
    assert_eq!(attacker.x_cache(), "BYPASS");
    let before = server.app.calls.load(Ordering::SeqCst);
    for n in 0..3 {
        assert_eq!(server.get(&format!("/nothing?{n}"), &[]).await.x_cache(), "BYPASS");
    }
    assert_eq!(server.app.calls.load(Ordering::SeqCst), before + 3, "unknown paths fill nothing");
    let listed = server.get("/missing", &[]).await;
    assert_eq!((listed.status, listed.x_cache()), (StatusCode::NOT_FOUND, "MISS"), "404 when listed");
    assert_eq!(server.get("/missing", &[]).await.x_cache(), "HIT");
}

/// Behind a proxy that sets them, `ProxyHeaders::Key` keeps one page per
/// value, and `ProxyHeaders::Strip` hides them from the handler.
async fn proxy_headers_can_be_keyed_or_stripped(store: Store) {
    let server = start(&store.cache).await;
    let evil = [("x-forwarded-host", "evil.example")];
    for x_cache in ["MISS", "HIT"] {
        let attacker = server.get("/go-keyed", &evil).await;
        assert_eq!((attacker.header("location"), attacker.x_cache()), ("http://evil.example/home", x_cache));
        let victim = server.get("/go-keyed", &[]).await;
        assert_eq!((victim.header("location"), victim.x_cache()), ("http://victim.example/home", x_cache));
    }
    let attacker = server.get("/go-stripped", &evil).await;
    assert_eq!((attacker.header("location"), attacker.x_cache()), ("http://victim.example/home", "MISS"));
    let victim = server.get("/go-stripped", &[]).await;
    assert_eq!((victim.header("location"), victim.x_cache()), ("http://victim.example/home", "HIT"));
}

// ---------------------------------------------------------------- settings

#[test]
fn settings_that_cannot_work_are_config_errors() {
    let ttl = || PageCache::builder(Duration::from_secs(60));
    let error = |builder: PageCacheBuilder| match builder.build() {
        Ok(_) => panic!("built"),
        Err(error) => error.to_string(),
    };
    assert!(error(ttl().statuses([StatusCode::OK, StatusCode::PARTIAL_CONTENT])).contains("206"));
    assert!(error(ttl().statuses([])).contains("statuses"));
    assert!(error(ttl().max_body_bytes(0)).contains("max_body_bytes"));
}
