//! The page cache: a tower layer that caches whole responses through the
//! cache's one read path.
//!
//! A request's page is looked up under its key ([`policy`]); on a miss the
//! origin runs once for all concurrent callers of the key (in process: one
//! flight; across processes: the entry's lease), and its response is stored
//! if it may be ([`stored::storable`]), its body is within the limit
//! ([`body::read_within`]) and no invalidation overtook it. A response that
//! varies on request headers the policy does not name is stored under a
//! second key with their values, and the first key records their names.

mod body;
mod policy;
mod stored;
mod vary;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, IF_MODIFIED_SINCE, IF_NONE_MATCH};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, request};
use http_body::Body;

pub use body::PageBody;
pub use policy::{
    CREDENTIAL_HEADERS, DEFAULT_FAIL_SAFE_THROTTLE, DEFAULT_MAX_BODY_BYTES, PROXY_HEADERS, PageCacheBuilder,
    ProxyHeaders, TRACKING_PARAMS,
};
use policy::{Policy, variant_key};
use stored::{Delivery, PageEntry, StoredPage, X_CACHE};

use crate::cache::Cache;
use crate::codec::Postcard;
use crate::engine::{self, Loaded, Served, Start};
use crate::key::KeyWriter;
use crate::store::{Found, Request as StoreRequest, Store as _};
use crate::value::{OpsOf, SharedValue};

/// A [`tower_layer::Layer`] caching whole responses of the service under it,
/// through the cache's one read path: concurrent misses of a page run the
/// handler once, across processes too; pages live in the cache's store (in
/// memory or Redis) and go when a tag they were stored under is invalidated.
///
/// Whatever of a request can reach the handler is in the page's key, or is
/// removed before the handler sees it, or the request passes through
/// uncached (`x-cache: BYPASS`), so that no request can leave a page that
/// another is served:
///
/// - Keyed: the host (`Host`, or the target's authority without one), the
///   scheme of an absolute target, the path, the query parameters sorted by
///   name, the values of the request headers the policy and the response's
///   `Vary` name, and proxy headers with [`ProxyHeaders::Key`].
/// - Removed: query parameters left out of the key ([`TRACKING_PARAMS`] and
///   those the policy ignores), and proxy headers with
///   [`ProxyHeaders::Strip`].
/// - Passed through: methods other than `GET` and `HEAD` (answered from the
///   `GET` page); an absolute target whose authority is not the `Host`, or
///   two `Host`s; a body (`Content-Length` above zero, `Transfer-Encoding`,
///   or a body not known to be empty); `Range`; `Authorization` or `Cookie`
///   unless the policy allows them, and the other
///   [`credential_headers`](PageCacheBuilder::credential_headers)
///   (`Proxy-Authorization`, `X-Api-Key`); proxy headers ([`PROXY_HEADERS`]:
///   `Forwarded`, `X-Forwarded-*`, ...) by default.
///
/// Responses with `Set-Cookie`, `Cache-Control: no-store`, `private` or
/// `no-cache`, a freshness of zero (`s-maxage=0`, else `max-age=0`, else an
/// `Expires` not after `Date`), `Vary: *`, a status the policy does not list
/// (404 included, by default), trailers, or a body over the limit or of
/// unknown length pass through (`x-cache: BYPASS`), unbuffered. A stored
/// page lives for the policy's TTL: a positive `max-age` from the handler
/// does not shorten it.
///
/// Pages carry `x-cache: HIT` or `MISS`, `ETag` (the origin's, or a digest
/// of the body), `Last-Modified`, `Age` when served from the cache, and the
/// policy's `Cache-Control` ([`Downstream`](super::Downstream), `no-cache`
/// by default), which replaces the origin's `Cache-Control` and `Expires`;
/// `If-None-Match` and `If-Modified-Since` get `304 Not Modified`.
///
/// With [`stale`](PageCacheBuilder::stale), a page past its TTL is served at
/// once (`x-cache: STALE`, its own `Age` and validators, `Cache-Control:
/// no-cache`) while one origin call refreshes it in a task of its own; with
/// [`fail_safe`](PageCacheBuilder::fail_safe), it stands in for an origin
/// that fails (an error or a `5xx`), which is asked again at most once per
/// [`fail_safe_throttle`](PageCacheBuilder::fail_safe_throttle).
///
/// Every part of a key is escaped, so two different requests never share
/// one. Values of `Accept-Encoding`, `Accept-Charset`, `Accept-Language` and
/// `Accept` are normalized first (case, whitespace, weights; the order of
/// the first two, and of elements of different weights in the others), so
/// requests asking for the same representation share its page. Client
/// `Cache-Control: no-cache` does not bypass the cache: invalidate instead.
///
/// Put the layer inside a compression layer (nearer the handler): a body
/// compressed on the fly has no length and would pass through.
///
/// ```
/// # #[cfg(feature = "axum")] fn main() -> Result<(), cache_runtime::ConfigError> {
/// use std::time::Duration;
/// use axum::{Router, extract::Path, routing::get};
/// use cache_runtime::http::PageCache;
///
/// async fn user(Path(id): Path<u64>) -> String {
///     format!("user {id}") // the real query goes here
/// }
///
/// // `#[invalidates(tags = ["user:<id>"])]` on the update drops the page.
/// let users = PageCache::builder(Duration::from_secs(60)).route("/users/{id}").tag("user:<id>").build()?;
/// let app: Router = Router::new().route("/users/{id}", get(user).layer(users));
/// # Ok(()) }
/// # #[cfg(not(feature = "axum"))] fn main() {}
/// ```
#[derive(Debug, Clone)]
pub struct PageCache {
    policy: Arc<Policy>,
}

impl PageCache {
    /// A policy whose pages are served for `ttl` (required; whole seconds, at
    /// least one).
    pub fn builder(ttl: std::time::Duration) -> PageCacheBuilder {
        PageCacheBuilder::new(ttl)
    }
}

impl<S> tower_layer::Layer<S> for PageCache {
    type Service = PageCacheService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PageCacheService { inner, policy: Arc::clone(&self.policy) }
    }
}

/// The service of a [`PageCache`] layer.
#[derive(Debug, Clone)]
pub struct PageCacheService<S> {
    inner: S,
    policy: Arc<Policy>,
}

/// The future of a [`PageCacheService`] call.
pub type PageFuture<B, E> = Pin<Box<dyn Future<Output = Result<Response<PageBody<B>>, E>> + Send>>;

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for PageCacheService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Body + Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Send + 'static,
{
    type Response = Response<PageBody<ResBody>>;
    type Error = S::Error;
    type Future = PageFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        // A body is not keyed: a request that may have one passes through.
        let empty = body.is_end_stream() || body.size_hint().exact() == Some(0);
        let primary = self.policy.primary_key(&parts).filter(|_| empty);
        if let Some(primary) = &primary
            && let Some(page) = memory_hit(&self.policy, primary, &parts)
        {
            return Box::pin(std::future::ready(Ok(page)));
        }
        let primary = primary.filter(|_| self.policy.strip_unkeyed(&mut parts));
        // The service polled ready serves this request; the clone, the next.
        let ready = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(serve(Arc::clone(&self.policy), inner, parts, body, primary))
    }
}

/// A page in process memory, answered without a task or the origin.
fn memory_hit<B: Body>(
    policy: &Policy,
    primary: &KeyWriter,
    request: &request::Parts,
) -> Option<Response<PageBody<B>>> {
    let store = &policy.cache().inner.store;
    let probe = |key: &KeyWriter| {
        let entry = store.probe(key.as_bytes(), policy.fingerprint)?;
        Arc::clone(&entry.value).downcast::<PageEntry>().ok()
    };
    let mut key = primary.clone();
    key.shorten();
    let mut entry = probe(&key)?;
    if let PageEntry::Variants(names) = &*entry {
        let names: Vec<HeaderName> =
            names.iter().filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok()).collect();
        let mut variant = variant_key(primary, &names, &request.headers)?;
        variant.shorten();
        entry = probe(&variant)?;
    }
    let PageEntry::Page(page) = &*entry else { return None };
    policy.site.record_hit();
    let head = request.method == Method::HEAD;
    Some(full(page.respond(policy, &request.headers, head, Delivery::Hit)))
}

/// The origin, called at most once per request.
struct Origin<S, B> {
    inner: S,
    /// The request as the origin gets it (`GET`, without validators), kept
    /// for the keys of the response's `Vary`.
    request: request::Parts,
    /// Its body, until it is sent.
    body: Option<B>,
}

/// What the origin answered, as this request will send it.
type Answer<B, E> = Result<Response<PageBody<B>>, E>;

/// What the origin answered.
enum Fetched<B: Body, E> {
    /// A page that may be stored, and the request headers it varies on
    /// besides the policy's.
    Page(StoredPage, Vec<HeaderName>),
    /// Anything else, passed through.
    Other(Answer<B, E>),
}

impl<B: Body, E> Fetched<B, E> {
    /// Whether the origin failed (an error, or a `5xx` status): what the
    /// fail-safe stands in for.
    fn failed(&self) -> bool {
        match self {
            Self::Page(..) => false,
            Self::Other(Ok(response)) => response.status().is_server_error(),
            Self::Other(Err(_)) => true,
        }
    }
}

/// How the cache answered a key.
enum Lookup {
    /// With a fresh entry.
    Hit(Arc<PageEntry>),
    /// With an entry past its freshness (stale-while-revalidate, or the
    /// fail-safe after a failed load); `true`: this request should refresh it.
    Stale(Arc<PageEntry>, bool),
    /// Without an entry: the load ran, or the page cannot be stored.
    Loaded,
}

/// The key a background refresh renews.
enum Refresh {
    /// The first key (and the variant of the request, if the page varies).
    Primary,
    /// A variant's key, whose page varies on these request headers.
    Variant(KeyWriter, Vec<HeaderName>),
}

/// Answers a request that was not found in process memory; `primary` is its
/// key (`None`: not cached).
async fn serve<S, ReqBody, ResBody>(
    policy: Arc<Policy>,
    mut inner: S,
    mut parts: request::Parts,
    body: ReqBody,
    primary: Option<KeyWriter>,
) -> Answer<ResBody, S::Error>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Send + 'static,
{
    let Some(primary) = primary else {
        let answer = inner.call(Request::from_parts(parts, body)).await;
        return pass_through(answer.map(|response| response.map(PageBody::origin)), false);
    };
    let head = parts.method == Method::HEAD;
    // The origin is asked for the whole page; validators are the cache's business.
    parts.method = Method::GET;
    let mut conditions = HeaderMap::new();
    for name in [IF_NONE_MATCH, IF_MODIFIED_SINCE] {
        for value in parts.headers.get_all(&name) {
            conditions.append(name.clone(), value.clone());
        }
        parts.headers.remove(&name);
    }
    let uri = parts.uri.clone();
    let path = uri.path();
    let mut origin = Some(Origin { inner, request: parts, body: Some(body) });
    let mut answer = None;
    let cache = policy.cache();
    let mut dependencies = None;

    let mut key = primary.clone();
    key.shorten();
    let found = lookup(cache, &policy, &key, path, &mut dependencies, async {
        let fetched = fetch(&policy, &mut origin).await?;
        let entry = match (&fetched, &origin) {
            (Fetched::Page(page, vary), Some(origin)) => {
                first_entry(cache, &policy, &primary, path, &origin.request.headers, page, vary).await
            }
            _ => None,
        };
        answer = Some(fetched);
        entry
    })
    .await;
    let (first, first_stale) = match found {
        Lookup::Hit(entry) => (entry, None),
        Lookup::Stale(entry, refresh) => (entry, Some(refresh)),
        Lookup::Loaded => return finish(&policy, answer, origin, conditions, head).await,
    };
    let names = match &*first {
        PageEntry::Page(page) => {
            let Some(refresh) = first_stale else {
                return Ok(full(page.respond(&policy, &conditions, head, Delivery::Hit)));
            };
            if let Some(answer) = answered(&policy, &mut answer, &conditions, head) {
                return answer;
            }
            if refresh {
                spawn_refresh(&policy, &primary, path, origin, Refresh::Primary);
            }
            return Ok(full(page.respond(&policy, &conditions, head, Delivery::Stale)));
        }
        PageEntry::Variants(names) => names,
    };
    let names: Vec<HeaderName> =
        names.iter().filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok()).collect();
    let variant = origin.as_ref().and_then(|origin| variant_key(&primary, &names, &origin.request.headers));
    let Some(mut variant) = variant else {
        return finish(&policy, answer, origin, conditions, head).await;
    };
    variant.shorten();
    let found = lookup(cache, &policy, &variant, path, &mut dependencies, async {
        let fetched = fetch(&policy, &mut origin).await?;
        // Stored here only if it still varies as the first key says.
        let entry = match &fetched {
            Fetched::Page(page, vary) if *vary == names => Some(PageEntry::Page(page.clone())),
            Fetched::Page(..) | Fetched::Other(_) => None,
        };
        answer = Some(fetched);
        entry
    })
    .await;
    let (entry, stale) = match found {
        Lookup::Hit(entry) => (entry, None),
        Lookup::Stale(entry, refresh) => (entry, Some(refresh)),
        Lookup::Loaded => return finish(&policy, answer, origin, conditions, head).await,
    };
    let PageEntry::Page(page) = &*entry else {
        return finish(&policy, answer, origin, conditions, head).await;
    };
    let delivery = match stale {
        None => Delivery::Hit,
        Some(_) => match answered(&policy, &mut answer, &conditions, head) {
            Some(answer) => return answer,
            None => Delivery::Stale,
        },
    };
    // One refresh at most: the first key's renews this variant too.
    if first_stale == Some(true) {
        spawn_refresh(&policy, &primary, path, origin, Refresh::Primary);
    } else if stale == Some(true) {
        spawn_refresh(&policy, &primary, path, origin, Refresh::Variant(variant, names));
    }
    Ok(full(page.respond(&policy, &conditions, head, delivery)))
}

/// The entry of a page under the first key: the page, or, when it varies on
/// request headers the policy does not name, their names, once the page is
/// under its variant's key (so callers waiting for this load find both).
async fn first_entry(
    cache: &Cache,
    policy: &Policy,
    primary: &KeyWriter,
    path: &str,
    request: &HeaderMap,
    page: &StoredPage,
    vary: &[HeaderName],
) -> Option<PageEntry> {
    if vary.is_empty() {
        return Some(PageEntry::Page(page.clone()));
    }
    let mut variant = variant_key(primary, vary, request)?;
    variant.shorten();
    let dependencies = policy.dependencies(path)?;
    let request = store_request(policy, &variant, &dependencies);
    let entry = PageEntry::Page(page.clone());
    engine::serve(cache, &request, async { Some(loaded(entry)) }, Start::Reload).await;
    Some(PageEntry::Variants(vary.iter().map(|name| name.as_str().to_owned()).collect()))
}

/// The origin's answer to this request when its load ran (and failed to give
/// a page to store) but did not fail: a page that could not be stored, or a
/// response that is not a page, rather than a stale page.
fn answered<B: Body<Data = Bytes>, E>(
    policy: &Policy,
    answer: &mut Option<Fetched<B, E>>,
    conditions: &HeaderMap,
    head: bool,
) -> Option<Answer<B, E>> {
    match answer.take()? {
        fetched if fetched.failed() => None,
        Fetched::Page(page, _) => Some(Ok(full(page.respond(policy, conditions, head, Delivery::Miss)))),
        Fetched::Other(answer) => Some(pass_through(answer, head)),
    }
}

/// Renews a stale page in a task of its own, which survives the request,
/// with the origin call this request did not make: one flight in process,
/// the entry's lease across processes, the usual commit rules. Not while the
/// key is throttled after a failure; a failure throttles it.
fn spawn_refresh<S, ReqBody, ResBody>(
    policy: &Arc<Policy>,
    primary: &KeyWriter,
    path: &str,
    origin: Option<Origin<S, ReqBody>>,
    refresh: Refresh,
) where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Send + 'static,
{
    let Some(origin) = origin.filter(|origin| origin.body.is_some()) else { return };
    let cache = policy.cache();
    let key = match &refresh {
        Refresh::Primary => {
            let mut key = primary.clone();
            key.shorten();
            key
        }
        Refresh::Variant(key, _) => key.clone(),
    };
    if cache.is_throttled(key.as_bytes()) {
        return;
    }
    let Some(dependencies) = policy.dependencies(path) else { return };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    policy.site.record_refresh();
    let (policy, cache, primary, path) =
        (Arc::clone(policy), cache.clone(), primary.clone(), path.to_owned());
    runtime.spawn(async move {
        let request = store_request(&policy, &key, &dependencies);
        let mut origin = Some(origin);
        let load = async {
            // Under the lease: a refresh that finished since this one was
            // asked for has renewed the page already.
            if let Found::Fresh(..) = cache.inner.store.lookup(&request).await {
                return None;
            }
            let fetched = fetch(&policy, &mut origin).await?;
            let headers = &origin.as_ref()?.request.headers;
            let entry = match (&fetched, &refresh) {
                (Fetched::Page(page, vary), Refresh::Primary) => {
                    first_entry(&cache, &policy, &primary, &path, headers, page, vary).await
                }
                (Fetched::Page(page, vary), Refresh::Variant(_, names)) if vary == names => {
                    Some(PageEntry::Page(page.clone()))
                }
                _ => {
                    if fetched.failed() {
                        cache.throttle(key.as_bytes(), policy.site.fail_safe_throttle());
                    }
                    None
                }
            };
            entry.map(loaded)
        };
        engine::serve(&cache, &request, load, Start::Reload).await;
    });
}

/// The answer of a request that was not served from the cache: the origin's
/// answer if it was asked, else the origin's answer to the request as it came.
async fn finish<S, ReqBody, ResBody>(
    policy: &Policy,
    answer: Option<Fetched<ResBody, S::Error>>,
    origin: Option<Origin<S, ReqBody>>,
    conditions: HeaderMap,
    head: bool,
) -> Answer<ResBody, S::Error>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    match answer {
        Some(Fetched::Page(page, _)) => Ok(full(page.respond(policy, &conditions, head, Delivery::Miss))),
        Some(Fetched::Other(answer)) => pass_through(answer, head),
        None => {
            let Some(Origin { mut inner, request: mut parts, body: Some(body) }) = origin else {
                unreachable!("the origin is asked once, and its answer kept")
            };
            if head {
                parts.method = Method::HEAD;
            }
            for (name, value) in &conditions {
                parts.headers.append(name, value.clone());
            }
            let answer = inner.call(Request::from_parts(parts, body)).await;
            pass_through(answer.map(|response| response.map(PageBody::origin)), false)
        }
    }
}

/// The store request of a page's key.
fn store_request<'r>(policy: &Policy, key: &'r KeyWriter, dependencies: &'r [String]) -> StoreRequest<'r> {
    StoreRequest {
        site: policy.site,
        key,
        dependencies,
        ops: OpsOf::<PageEntry, Postcard>::OPS,
        fingerprint: policy.fingerprint,
        absences: false,
    }
}

fn loaded(entry: PageEntry) -> Loaded {
    Loaded { value: Arc::new(entry) as SharedValue, negative: false }
}

/// How the cache answers `key`: the engine's read path, after a probe of
/// process memory; `load` runs on a miss (or past the stale window).
async fn lookup<L>(
    cache: &Cache,
    policy: &Policy,
    key: &KeyWriter,
    path: &str,
    dependencies: &mut Option<Vec<String>>,
    load: L,
) -> Lookup
where
    L: Future<Output = Option<PageEntry>>,
{
    if let Some(entry) = cache.inner.store.probe(key.as_bytes(), policy.fingerprint)
        && let Ok(page) = Arc::clone(&entry.value).downcast::<PageEntry>()
    {
        policy.site.record_hit();
        return Lookup::Hit(page);
    }
    if dependencies.is_none() {
        *dependencies = policy.dependencies(path);
    }
    // A path the route does not match: its tags cannot be rendered, so its
    // page is not stored.
    let Some(dependencies) = dependencies.as_deref() else { return Lookup::Loaded };
    let request = store_request(policy, key, dependencies);
    let load = async { load.await.map(loaded) };
    match engine::serve(cache, &request, load, Start::Lookup).await {
        Served::Cached(value) => value.downcast::<PageEntry>().map_or(Lookup::Loaded, Lookup::Hit),
        Served::Stale { value, refresh } => value
            .downcast::<PageEntry>()
            .map_or(Lookup::Loaded, |entry| Lookup::Stale(entry, refresh.is_some())),
        Served::Loaded => Lookup::Loaded,
    }
}

/// Calls the origin (once: `None` after that) and reads its response.
async fn fetch<S, ReqBody, ResBody>(
    policy: &Policy,
    origin: &mut Option<Origin<S, ReqBody>>,
) -> Option<Fetched<ResBody, S::Error>>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    let Origin { inner, request, body } = origin.as_mut()?;
    let request = Request::from_parts(request.clone(), body.take()?);
    let response = match inner.call(request).await {
        Ok(response) => response,
        Err(error) => return Some(Fetched::Other(Err(error))),
    };
    let (parts, body) = response.into_parts();
    let vary = match stored::storable(policy, &parts) {
        Ok(vary) => vary,
        Err(reason) => {
            tracing::trace!(page = policy.site.function(), ?reason, "response not stored");
            return Some(Fetched::Other(Ok(Response::from_parts(parts, PageBody::origin(body)))));
        }
    };
    match body::read_within(Response::from_parts(parts, body), policy.max_body_bytes).await {
        body::Read::Whole(parts, bytes) => {
            Some(Fetched::Page(StoredPage::new(policy, parts, bytes, &vary), vary))
        }
        body::Read::PassThrough(response) => Some(Fetched::Other(Ok(response))),
    }
}

fn full<B: Body>(response: Response<Bytes>) -> Response<PageBody<B>> {
    response.map(PageBody::full)
}

/// A response that is not a page: `x-cache: BYPASS`, and without its body
/// when it answers a `HEAD` the origin got as a `GET`.
fn pass_through<B: Body<Data = Bytes>, E>(answer: Answer<B, E>, head: bool) -> Answer<B, E> {
    let mut response = answer?;
    response.headers_mut().insert(X_CACHE, HeaderValue::from_static("BYPASS"));
    if head {
        if let Some(length) = response.body().size_hint().exact()
            && !response.headers().contains_key(CONTENT_LENGTH)
        {
            response.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(length));
        }
        *response.body_mut() = PageBody::full(Bytes::new());
    }
    Ok(response)
}
