//! A page cache's policy: which requests and responses it caches, under
//! which key, with which tags.

use std::time::Duration;

use http::header::{
    AUTHORIZATION, CONTENT_LENGTH, COOKIE, HOST, PROXY_AUTHORIZATION, RANGE, TRANSFER_ENCODING,
};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, request};
use smallvec::SmallVec;

use super::PageCache;
use crate::cache::{Cache, ConfigError};
use crate::call::{TAG, dependency_name};
use crate::http::headers::Downstream;
use crate::key::KeyWriter;
use crate::site::Site;

/// Query parameters left out of keys unless told otherwise: marketing
/// trackers, which never change a page.
pub const TRACKING_PARAMS: [&str; 4] = ["utm_*", "gclid", "fbclid", "msclkid"];

/// Request headers that carry credentials besides `Authorization` and
/// `Cookie`: a request with any of them passes through uncached, unless
/// [`PageCacheBuilder::credential_headers`] says otherwise.
pub const CREDENTIAL_HEADERS: [HeaderName; 2] = [PROXY_AUTHORIZATION, HeaderName::from_static("x-api-key")];

/// Request headers by which proxies tell the server the host, scheme or
/// client a request came with, and which handlers read to build URLs and
/// redirects (`*`: any name with that prefix). What a page cache does with
/// them is its [`ProxyHeaders`].
pub const PROXY_HEADERS: [&str; 6] =
    ["forwarded", "x-forwarded-*", "x-real-ip", "x-host", "x-original-url", "x-rewrite-url"];

/// What a page cache does with a request carrying any of [`PROXY_HEADERS`]
/// (`Forwarded`, `X-Forwarded-Host`, `X-Forwarded-Proto`, ...).
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::http::{PageCache, ProxyHeaders};
///
/// // Behind a proxy that sets `X-Forwarded-Proto` and `X-Forwarded-Host`,
/// // which the handlers read: one page per value.
/// let pages = PageCache::builder(Duration::from_secs(60)).proxy_headers(ProxyHeaders::Key).build();
/// assert!(pages.is_ok());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyHeaders {
    /// The request passes through uncached (the default): a handler may
    /// build a link or a redirect from them, which must not be served to
    /// requests without them.
    #[default]
    Bypass,
    /// Their names and values are part of the key: requests that carry the
    /// same ones share a page. Behind a proxy that sets them on every
    /// request (and drops the client's own), with a page per client when
    /// one of them is the client's address (`X-Forwarded-For`).
    Key,
    /// They are removed from the request before the handler sees it, and
    /// left out of the key: for handlers that never read them.
    Strip,
}

/// The default body limit of a cached page: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 20;

/// Characters that may separate two placeholders of a tag: values escape them.
const SEPARATORS: &[char] = &[':', '/', '|', ',', '=', '&', ';', '#'];

/// Configures a [`PageCache`]; made by [`PageCache::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct PageCacheBuilder {
    ttl: Duration,
    jitter: Duration,
    name: Option<String>,
    cache: Option<Cache>,
    route: Option<String>,
    tags: Vec<String>,
    vary: Vec<HeaderName>,
    statuses: Vec<StatusCode>,
    max_body_bytes: u64,
    ignored_query: Vec<String>,
    allow_authorization: bool,
    allow_cookies: bool,
    credential_headers: Vec<HeaderName>,
    proxy_headers: ProxyHeaders,
    downstream: Downstream,
    stale: Duration,
    fail_safe: Duration,
    fail_safe_throttle: Duration,
}

/// How often an origin that failed is asked again while its stale page is
/// served, unless [`PageCacheBuilder::fail_safe_throttle`] says otherwise.
pub const DEFAULT_FAIL_SAFE_THROTTLE: Duration = Duration::from_secs(5);

impl PageCacheBuilder {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            jitter: Duration::ZERO,
            name: None,
            cache: None,
            route: None,
            tags: Vec::new(),
            vary: Vec::new(),
            statuses: [200, 203, 204, 301].into_iter().filter_map(|s| StatusCode::from_u16(s).ok()).collect(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            ignored_query: TRACKING_PARAMS.iter().map(|&param| param.to_owned()).collect(),
            allow_authorization: false,
            allow_cookies: false,
            credential_headers: CREDENTIAL_HEADERS.to_vec(),
            proxy_headers: ProxyHeaders::Bypass,
            downstream: Downstream::revalidate(),
            stale: Duration::ZERO,
            fail_safe: Duration::ZERO,
            fail_safe_throttle: DEFAULT_FAIL_SAFE_THROTTLE,
        }
    }

    /// Up to this much (whole seconds) added at random to each page's
    /// lifetime, so pages filled together do not expire together.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// The name of these pages in [`stats`](crate::stats), metrics (label
    /// `function`) and [`CacheBuilder::ttl_override`](crate::CacheBuilder::ttl_override).
    /// Default: `page:` and the route (`page:/users/{id}`), or `page`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// The cache the pages live in; default: [`Cache::default_cache`] when a
    /// request comes.
    pub fn cache(mut self, cache: Cache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The path pattern of the route, in axum's syntax (`/users/{id}`,
    /// `/files/{*path}`), whose parameters tags name. A request whose path
    /// does not match it passes through uncached.
    pub fn route(mut self, pattern: &str) -> Self {
        self.route = Some(pattern.to_owned());
        self
    }

    /// Tags every page with `template`, whose `<name>` placeholders are
    /// parameters of the [`route`](Self::route), percent-decoded and escaped
    /// as `#[cached]` escapes its values: `"user:<id>"` on `/users/7` is the
    /// tag `user:7` that `#[invalidates(tags = ["user:<id>"])]` with `id = 7`
    /// and [`Cache::invalidate_tag`]`("user:7")` invalidate.
    pub fn tag(mut self, template: &str) -> Self {
        self.tags.push(template.to_owned());
        self
    }

    /// Keeps one page per value of the request header `name`
    /// (`Accept-Language`, `Accept`, ...), and says so in the response's
    /// `Vary`. A response's own `Vary` is followed too, without asking.
    pub fn vary(mut self, name: HeaderName) -> Self {
        if !self.vary.contains(&name) {
            self.vary.push(name);
        }
        self
    }

    /// The statuses whose responses are cached (default 200, 203, 204 and
    /// 301); others pass through. A 404 is cached only if listed here: under
    /// a layer on a whole router, every unknown path would fill a page.
    /// `206 Partial Content`, `304 Not Modified` and interim (`1xx`)
    /// statuses cannot be listed.
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        self.statuses = statuses.into_iter().collect();
        self
    }

    /// The largest body cached, in bytes (default [`DEFAULT_MAX_BODY_BYTES`]).
    /// A response whose length is over it, or unknown (streamed without
    /// `Content-Length`), passes through uncached and is never buffered.
    /// At least one byte.
    pub fn max_body_bytes(mut self, limit: u64) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Leaves the query parameter `name` out of keys (`ref`), or every
    /// parameter starting with a prefix (`utm_*`). [`TRACKING_PARAMS`] are
    /// left out already. A parameter left out of the key is removed from
    /// the request before the handler sees it, so it cannot change the page.
    pub fn ignore_query_param(mut self, name: &str) -> Self {
        self.ignored_query.push(name.to_owned());
        self
    }

    /// Caches requests that carry `Authorization` (by default they pass
    /// through). Add `.vary(AUTHORIZATION)` unless the page is the same for
    /// every caller.
    pub fn allow_authorization(mut self) -> Self {
        self.allow_authorization = true;
        self
    }

    /// Caches requests that carry cookies (by default they pass through).
    /// Add `.vary(COOKIE)` unless the page is the same whatever the cookies.
    pub fn allow_cookies(mut self) -> Self {
        self.allow_cookies = true;
        self
    }

    /// The request headers, besides `Authorization` and `Cookie`, that carry
    /// credentials: a request with any of them passes through uncached.
    /// Replaces the default, [`CREDENTIAL_HEADERS`] (`Proxy-Authorization`,
    /// `X-Api-Key`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_runtime::http::{CREDENTIAL_HEADERS, PageCache};
    /// use http::HeaderName;
    ///
    /// let token = HeaderName::from_static("x-auth-token");
    /// let pages = PageCache::builder(Duration::from_secs(60))
    ///     .credential_headers(CREDENTIAL_HEADERS.into_iter().chain([token]))
    ///     .build();
    /// assert!(pages.is_ok());
    /// ```
    pub fn credential_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.credential_headers = names.into_iter().collect();
        self
    }

    /// What to do with requests carrying proxy headers ([`PROXY_HEADERS`]:
    /// `Forwarded`, `X-Forwarded-*`, ...): pass them through uncached (the
    /// default), key them, or strip them. See [`ProxyHeaders`].
    pub fn proxy_headers(mut self, proxy_headers: ProxyHeaders) -> Self {
        self.proxy_headers = proxy_headers;
        self
    }

    /// What browsers and CDNs may do with the pages (default
    /// [`Downstream::revalidate`]: `no-cache`, revalidated with cheap 304s).
    pub fn downstream(mut self, downstream: Downstream) -> Self {
        self.downstream = downstream;
        self
    }

    /// Stale-while-revalidate: for up to `window` (whole seconds) past its
    /// TTL, a page is served at once (`x-cache: STALE`) while one request's
    /// origin call refreshes it in a task of its own, once for all callers
    /// (across processes too, on Redis). Invalidated pages are never served.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_runtime::http::PageCache;
    ///
    /// // Fresh for a minute, then served up to ten more while one refresh runs.
    /// let pages = PageCache::builder(Duration::from_secs(60)).stale(Duration::from_secs(600)).build();
    /// assert!(pages.is_ok());
    /// ```
    pub fn stale(mut self, window: Duration) -> Self {
        self.stale = window;
        self
    }

    /// Fail-safe: when the origin fails (an error, or a `5xx` status) for a
    /// page up to `window` (whole seconds) past its TTL, the stored page is
    /// served (`x-cache: STALE`) instead, and the origin is asked for it again
    /// at most once per [`fail_safe_throttle`](Self::fail_safe_throttle).
    /// Invalidated pages are never served.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cache_runtime::http::PageCache;
    ///
    /// // If the handler fails, keep serving the last page for up to an hour,
    /// // trying again at most every 10 s.
    /// let pages = PageCache::builder(Duration::from_secs(60))
    ///     .fail_safe(Duration::from_secs(3600))
    ///     .fail_safe_throttle(Duration::from_secs(10))
    ///     .build();
    /// assert!(pages.is_ok());
    /// ```
    pub fn fail_safe(mut self, window: Duration) -> Self {
        self.fail_safe = window;
        self
    }

    /// How often (whole seconds) a page whose origin failed is asked for
    /// again while its stale page is served (default
    /// [`DEFAULT_FAIL_SAFE_THROTTLE`]; zero: every request asks). Also
    /// spaces the background refreshes of [`stale`](Self::stale) pages
    /// whose origin fails.
    pub fn fail_safe_throttle(mut self, every: Duration) -> Self {
        self.fail_safe_throttle = every;
        self
    }

    /// The layer. Build it once at start-up: each policy registers its
    /// counters for the life of the process.
    ///
    /// # Errors
    /// A TTL under a second; a `jitter`, `stale`, `fail_safe` or
    /// `fail_safe_throttle` between zero and a second (they count whole
    /// seconds); no `statuses`, or one that cannot be cached (`1xx`, `206`,
    /// `304`, or not a status of RFC 9110); a `max_body_bytes` of zero; an
    /// empty `ignore_query_param`; a route that does not start with `/` or
    /// has a malformed parameter; a tag that names no parameter of the
    /// route, or with two placeholders not separated by one of `:` `/` `|`
    /// `,` `=` `&` `;` `#`.
    pub fn build(self) -> Result<PageCache, ConfigError> {
        let ttl_secs = self.ttl.as_secs();
        if ttl_secs == 0 {
            return Err(ConfigError(format!(
                "a page cache needs a TTL of at least one second, not {:?}",
                self.ttl
            )));
        }
        for (option, value) in [
            ("jitter", self.jitter),
            ("stale", self.stale),
            ("fail_safe", self.fail_safe),
            ("fail_safe_throttle", self.fail_safe_throttle),
        ] {
            if !value.is_zero() && value.as_secs() == 0 {
                return Err(ConfigError(format!(
                    "a page cache's `{option}` counts whole seconds: {value:?} would be none; give at least one second, or zero to turn it off"
                )));
            }
        }
        check_statuses(&self.statuses).map_err(ConfigError)?;
        if self.max_body_bytes == 0 {
            return Err(ConfigError(
                "a page cache's `max_body_bytes` is 0: no page with a body could be cached; give a limit of at least one byte"
                    .to_owned(),
            ));
        }
        if self.ignored_query.iter().any(String::is_empty) {
            return Err(ConfigError(
                "`ignore_query_param(\"\")` names no parameter; give a name (`ref`) or a prefix (`utm_*`)"
                    .to_owned(),
            ));
        }
        let route = self.route.as_deref().map(RoutePattern::parse).transpose().map_err(ConfigError)?;
        let tags = self
            .tags
            .iter()
            .map(|template| Template::parse(template, route.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ConfigError)?;
        let name = self.name.unwrap_or_else(|| match &self.route {
            Some(route) => format!("page:{route}"),
            None => "page".to_owned(),
        });
        // One site per policy, for the life of the process: policies are made
        // at start-up, so this is bounded by the routes of the application.
        let name: &'static str = Box::leak(name.into_boxed_str());
        let site = Site::new(name, ttl_secs, self.jitter.as_secs())
            .with_stale(self.stale.as_secs())
            .with_fail_safe(self.fail_safe.as_secs(), self.fail_safe_throttle.as_secs());
        let site: &'static Site = Box::leak(Box::new(site));
        let policy = Policy {
            cache: self.cache,
            site,
            fingerprint: site.fingerprint::<super::stored::PageEntry>(&[]),
            route,
            tags,
            vary: self.vary,
            statuses: self.statuses,
            max_body_bytes: self.max_body_bytes,
            ignored_query: self.ignored_query.into_iter().map(String::into_boxed_str).collect(),
            allow_authorization: self.allow_authorization,
            allow_cookies: self.allow_cookies,
            credential_headers: self.credential_headers,
            proxy_headers: self.proxy_headers,
            cache_control: self.downstream.cache_control(),
        };
        Ok(PageCache { policy: std::sync::Arc::new(policy) })
    }
}

/// A built policy.
pub(super) struct Policy {
    cache: Option<Cache>,
    pub(super) site: &'static Site,
    /// Of [`PageEntry`](super::stored::PageEntry), the one value type of pages.
    pub(super) fingerprint: u64,
    route: Option<RoutePattern>,
    tags: Vec<Template>,
    pub(super) vary: Vec<HeaderName>,
    statuses: Vec<StatusCode>,
    pub(super) max_body_bytes: u64,
    ignored_query: Vec<Box<str>>,
    allow_authorization: bool,
    allow_cookies: bool,
    credential_headers: Vec<HeaderName>,
    proxy_headers: ProxyHeaders,
    pub(super) cache_control: HeaderValue,
}

/// Why `statuses` cannot be cached, if they cannot.
fn check_statuses(statuses: &[StatusCode]) -> Result<(), String> {
    if statuses.is_empty() {
        return Err(
            "a page cache's `statuses` is empty: nothing would be cached; list at least one, as `statuses([StatusCode::OK])`"
                .to_owned(),
        );
    }
    for status in statuses {
        let why = match status.as_u16() {
            100..=199 => "an interim response is not a page",
            206 => {
                "a 206 is part of a page, which would be served for the whole (requests with `Range` pass through)"
            }
            304 => "a 304 has no page to serve; the layer answers validators itself",
            200..=599 => continue,
            _ => "RFC 9110 defines no such status",
        };
        return Err(format!(
            "a page cache cannot cache the status {status}: {why}; remove it from `statuses`"
        ));
    }
    Ok(())
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy").field("name", &self.site.function()).finish_non_exhaustive()
    }
}

impl Policy {
    pub(super) fn cache(&self) -> &Cache {
        self.cache.as_ref().unwrap_or_else(|| Cache::default_cache())
    }

    pub(super) fn caches_status(&self, status: StatusCode) -> bool {
        self.statuses.contains(&status)
    }

    /// The key of a request's page before the response's `Vary` is known, or
    /// `None` when the request is not cached:
    /// `page:GET:{scheme}:{host}:{path}:{query}:{vary}[:{proxy headers}]`,
    /// every value escaped, the scheme that of an absolute target (else
    /// empty), query parameters sorted by name (their order kept among equal
    /// names), ignored ones left out, proxy headers only when keyed. `HEAD`
    /// shares `GET`'s key.
    ///
    /// Whatever of the request reaches the handler is keyed, or removed
    /// before ([`strip_unkeyed`](Self::strip_unkeyed)), or the request passes
    /// through ([`passes_through`](Self::passes_through)).
    pub(super) fn primary_key(&self, request: &request::Parts) -> Option<KeyWriter> {
        if request.method != Method::GET && request.method != Method::HEAD {
            return None;
        }
        let headers = &request.headers;
        if self.passes_through(headers) {
            return None;
        }
        let host = request_host(request)?;
        let mut key = KeyWriter::new();
        key.write_literal("page:GET:");
        key.write_str(request.uri.scheme_str().unwrap_or_default());
        key.write_literal(":");
        key.write_str(host);
        key.write_literal(":");
        for (index, segment) in request.uri.path().split('/').enumerate() {
            if index > 0 {
                key.write_literal("/");
            }
            key.write_str(segment);
        }
        key.write_literal(":");
        self.write_query(&mut key, request.uri.query().unwrap_or_default());
        key.write_literal(":");
        write_vary(&mut key, &self.vary, headers)?;
        if self.proxy_headers == ProxyHeaders::Key {
            let mut names: SmallVec<[HeaderName; 2]> =
                headers.keys().filter(|name| is_proxy_header(name)).cloned().collect();
            names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
            key.write_literal(":");
            write_vary(&mut key, &names, headers)?;
        }
        Some(key)
    }

    /// Whether a request passes through uncached whatever its path: it
    /// carries credentials, a body or a `Range` (none of them keyed), or
    /// proxy headers the policy neither keys nor strips.
    fn passes_through(&self, headers: &HeaderMap) -> bool {
        let credentials = (!self.allow_authorization && headers.contains_key(AUTHORIZATION))
            || (!self.allow_cookies && headers.contains_key(COOKIE))
            || self.credential_headers.iter().any(|name| headers.contains_key(name));
        let body = headers.contains_key(TRANSFER_ENCODING)
            || headers
                .get_all(CONTENT_LENGTH)
                .iter()
                .any(|length| length.as_bytes().iter().any(|&b| b != b'0'));
        let proxied = self.proxy_headers == ProxyHeaders::Bypass && headers.keys().any(is_proxy_header);
        credentials || body || headers.contains_key(RANGE) || proxied
    }

    /// Removes from a request the parts its key leaves out, before the
    /// handler sees them: ignored query parameters, and proxy headers when
    /// the policy strips them. `false` if the target could not be rewritten
    /// (the request must then pass through).
    pub(super) fn strip_unkeyed(&self, request: &mut request::Parts) -> bool {
        if self.proxy_headers == ProxyHeaders::Strip {
            let names: SmallVec<[HeaderName; 2]> =
                request.headers.keys().filter(|name| is_proxy_header(name)).cloned().collect();
            for name in names {
                request.headers.remove(name);
            }
        }
        let Some(query) = request.uri.query() else { return true };
        fn name(param: &str) -> &str {
            param.split_once('=').map_or(param, |(name, _)| name)
        }
        if !query.split('&').any(|param| self.ignores(name(param))) {
            return true;
        }
        let kept: Vec<&str> =
            query.split('&').filter(|param| !param.is_empty() && !self.ignores(name(param))).collect();
        let path_and_query = if kept.is_empty() {
            request.uri.path().to_owned()
        } else {
            format!("{}?{}", request.uri.path(), kept.join("&"))
        };
        let mut parts = request.uri.clone().into_parts();
        parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
        match Uri::from_parts(parts) {
            Ok(uri) => {
                request.uri = uri;
                true
            }
            Err(_) => false,
        }
    }

    fn write_query(&self, key: &mut KeyWriter, query: &str) {
        let mut params: SmallVec<[(&str, &str); 8]> = query
            .split('&')
            .filter(|param| !param.is_empty())
            .map(|param| param.split_once('=').unwrap_or((param, "")))
            .filter(|(name, _)| !self.ignores(name))
            .collect();
        params.sort_by(|a, b| a.0.cmp(b.0)); // stable: `a=1&a=2` keeps its order
        for (index, (name, value)) in params.iter().enumerate() {
            if index > 0 {
                key.write_literal("&");
            }
            key.write_str(name);
            key.write_literal("=");
            key.write_str(value);
        }
    }

    fn ignores(&self, param: &str) -> bool {
        self.ignored_query.iter().any(|ignored| match ignored.strip_suffix('*') {
            Some(prefix) => param.starts_with(prefix),
            None => **ignored == *param,
        })
    }

    /// The counter names of the page's tags for a request path; `None` when
    /// the path does not match the route or a parameter does not decode.
    pub(super) fn dependencies(&self, path: &str) -> Option<Vec<String>> {
        if self.tags.is_empty() && self.route.is_none() {
            return Some(Vec::new());
        }
        let captures = match &self.route {
            Some(route) => route.capture(path)?,
            None => SmallVec::new(),
        };
        let mut decoded: SmallVec<[String; 4]> = SmallVec::new();
        for (_, raw) in &captures {
            decoded.push(percent_decode(raw)?);
        }
        let mut names = Vec::with_capacity(self.tags.len());
        for tag in &self.tags {
            let mut rendered = KeyWriter::new();
            for part in &tag.parts {
                match part {
                    Part::Literal(text) => rendered.write_literal(text),
                    Part::Param(index) => rendered.write_str(&decoded[*index]),
                }
            }
            names.push(dependency_name(TAG, rendered.as_str()));
        }
        Some(names)
    }
}

/// The host a request names: its `Host`, or the authority of its target
/// (absolute-form, or HTTP/2's `:authority`) when it has no `Host`. `None`
/// when both are there and differ, `Host` is repeated, or it is not text:
/// the handler could read a host the key does not hold.
fn request_host(request: &request::Parts) -> Option<&str> {
    let mut hosts = request.headers.get_all(HOST).iter();
    let host = hosts.next().map(HeaderValue::to_str).transpose().ok()?;
    if hosts.next().is_some() {
        return None;
    }
    match (request.uri.authority(), host) {
        (Some(authority), Some(host)) => (authority.as_str() == host).then_some(host),
        (Some(authority), None) => Some(authority.as_str()),
        (None, host) => Some(host.unwrap_or_default()),
    }
}

/// Whether `name` is one of [`PROXY_HEADERS`].
fn is_proxy_header(name: &HeaderName) -> bool {
    PROXY_HEADERS.iter().any(|proxy| match proxy.strip_suffix('*') {
        Some(prefix) => name.as_str().starts_with(prefix),
        None => name.as_str() == *proxy,
    })
}

/// The key of a page under the response's `Vary` too: the primary key, `|`,
/// and the values of the request headers `names`.
pub(super) fn variant_key(
    primary: &KeyWriter,
    names: &[HeaderName],
    request: &HeaderMap,
) -> Option<KeyWriter> {
    let mut key = primary.clone();
    key.write_literal("|");
    write_vary(&mut key, names, request)?;
    Some(key)
}

/// `name=%[value%.value%]&...`, negotiation headers normalized
/// ([`super::vary`]): one value, canonical, when the header is present;
/// `None` when a value is not visible ASCII.
fn write_vary(key: &mut KeyWriter, names: &[HeaderName], request: &HeaderMap) -> Option<()> {
    for (index, name) in names.iter().enumerate() {
        if index > 0 {
            key.write_literal("&");
        }
        key.write_str(name.as_str());
        key.write_literal("=");
        let values: SmallVec<[&str; 2]> =
            request.get_all(name).iter().map(|value| value.to_str().ok()).collect::<Option<_>>()?;
        match super::vary::normalize(name, &values).filter(|_| !values.is_empty()) {
            Some(canonical) => key.write_part(&[canonical.as_str()][..]),
            None => key.write_part(&values[..]),
        }
    }
    Some(())
}

/// `%XX` sequences decoded (others kept as they are); `None` if the result is not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|&byte| char::from(byte).to_digit(16));
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).ok()?);
                index += 3;
            }
            (byte, ..) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A route's path pattern: `/users/{id}`, `/files/{*path}`.
#[derive(Debug)]
struct RoutePattern {
    segments: Vec<Segment>,
}

#[derive(Debug)]
enum Segment {
    Literal(Box<str>),
    Param(Box<str>),
    /// `{*name}`: the rest of the path.
    Rest(Box<str>),
}

impl RoutePattern {
    fn parse(pattern: &str) -> Result<Self, String> {
        let Some(rest) = pattern.strip_prefix('/') else {
            return Err(format!("the route {pattern:?} must start with `/`"));
        };
        let pieces: Vec<&str> = rest.split('/').collect();
        let mut segments: Vec<Segment> = Vec::with_capacity(pieces.len());
        for (index, piece) in pieces.iter().enumerate() {
            let segment = if let Some(name) = piece.strip_prefix("{*").and_then(|p| p.strip_suffix('}')) {
                if index + 1 != pieces.len() {
                    return Err(format!("in the route {pattern:?}, `{piece}` must be the last segment"));
                }
                Segment::Rest(param_name(pattern, name)?)
            } else if let Some(name) = piece.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Segment::Param(param_name(pattern, name)?)
            } else if piece.contains(['{', '}']) {
                return Err(format!(
                    "in the route {pattern:?}, the segment {piece:?} must be a whole `{{name}}` or plain text"
                ));
            } else {
                Segment::Literal((*piece).into())
            };
            segments.push(segment);
        }
        let pattern = Self { segments };
        let names: Vec<&str> = pattern.params().collect();
        if let Some(twice) = names.iter().enumerate().find(|(i, name)| names[..*i].contains(name)) {
            return Err(format!("the route names the parameter `{}` twice", twice.1));
        }
        Ok(pattern)
    }

    /// The parameters' names, in order.
    fn params(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Param(name) | Segment::Rest(name) => Some(&**name),
            Segment::Literal(_) => None,
        })
    }

    /// The raw (percent-encoded) values of the parameters, in order, when
    /// `path` matches.
    fn capture<'p>(&self, path: &'p str) -> Option<SmallVec<[(&str, &'p str); 4]>> {
        let mut rest = path.strip_prefix('/')?;
        let mut captures = SmallVec::new();
        let mut consumed = false;
        for segment in &self.segments {
            if let Segment::Rest(name) = segment {
                captures.push((&**name, rest));
                return (!rest.is_empty()).then_some(captures);
            }
            if consumed {
                return None;
            }
            let (head, tail) = rest.split_once('/').unwrap_or_else(|| {
                consumed = true;
                (rest, "")
            });
            match segment {
                Segment::Literal(text) if **text == *head => {}
                Segment::Param(name) if !head.is_empty() => captures.push((&**name, head)),
                _ => return None,
            }
            rest = tail;
        }
        consumed.then_some(captures)
    }
}

fn param_name(pattern: &str, name: &str) -> Result<Box<str>, String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "in the route {pattern:?}, the parameter name {name:?} must be letters, digits and `_`"
        ));
    }
    Ok(name.into())
}

/// A tag template: literal text and `<param>` placeholders.
#[derive(Debug)]
struct Template {
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Literal(Box<str>),
    /// The index of a route parameter.
    Param(usize),
}

impl Template {
    fn parse(template: &str, route: Option<&RoutePattern>) -> Result<Self, String> {
        let params: Vec<&str> = route.map(|route| route.params().collect()).unwrap_or_default();
        let mut parts = Vec::new();
        let mut rest = template;
        let mut separated = true;
        while !rest.is_empty() {
            let (literal, after) = match rest.find('<') {
                Some(start) => rest.split_at(start),
                None => (rest, ""),
            };
            if literal.contains(['>', '%', '{', '}']) || literal.chars().any(char::is_whitespace) {
                return Err(format!(
                    "the tag {template:?} has `>`, `%`, a brace or whitespace outside a placeholder"
                ));
            }
            if !literal.is_empty() {
                separated |= literal.contains(SEPARATORS);
                parts.push(Part::Literal(literal.into()));
            }
            rest = after;
            let Some(open) = rest.strip_prefix('<') else { break };
            let Some((name, after)) = open.split_once('>') else {
                return Err(format!("the tag {template:?} has a `<` without its `>`"));
            };
            let Some(index) = params.iter().position(|param| *param == name) else {
                return Err(match route {
                    None => format!(
                        "the tag {template:?} names `<{name}>`: give the route (`.route(\"/users/{{{name}}}\")`) whose parameter it is"
                    ),
                    Some(_) => format!(
                        "the tag {template:?} names `<{name}>`, which is not a parameter of the route; the route has {params:?}"
                    ),
                });
            };
            if !separated {
                return Err(format!(
                    "in the tag {template:?}, placeholders must be separated by one of `:` `/` `|` `,` `=` `&` `;` `#`, so that different values never render to the same tag"
                ));
            }
            parts.push(Part::Param(index));
            separated = false;
            rest = after;
        }
        if parts.is_empty() {
            return Err("a tag cannot be empty".to_owned());
        }
        Ok(Self { parts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(builder: PageCacheBuilder) -> std::sync::Arc<Policy> {
        builder.build().unwrap().policy
    }

    fn parts(method: Method, uri: &str, headers: &[(&str, &str)]) -> request::Parts {
        let mut request = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn key(policy: &Policy, uri: &str, headers: &[(&str, &str)]) -> Option<String> {
        policy.primary_key(&parts(Method::GET, uri, headers)).map(|key| key.as_str().to_owned())
    }

    #[test]
    fn keys_normalise_the_query_and_escape_values() {
        let policy = policy(PageCache::builder(Duration::from_secs(60)).ignore_query_param("ref"));
        let sorted = key(&policy, "/a/b?z=1&a=2&a=1&utm_source=x&ref=y&gclid=3", &[("host", "h")]);
        assert_eq!(sorted.as_deref(), Some("page:GET::h:/a/b:a=2&a=1&z=1:"));
        assert_eq!(key(&policy, "/a/b?a=2&z=1&a=1", &[("host", "h")]), sorted);
        assert_ne!(
            key(&policy, "/a/b?a=1&a=2&z=1", &[("host", "h")]),
            sorted,
            "repeated values keep their order"
        );
        assert_ne!(key(&policy, "/a%2Fb?z=1", &[("host", "h")]), key(&policy, "/a/b?z=1", &[("host", "h")]));
        assert_ne!(key(&policy, "/a?b=c%26d", &[]), key(&policy, "/a?b=c&d", &[]));
        assert_ne!(key(&policy, "/x", &[("host", "one")]), key(&policy, "/x", &[("host", "two")]));
        assert_eq!(key(&policy, "/x?", &[]), key(&policy, "/x", &[]));
    }

    #[test]
    fn the_host_is_keyed_only_when_the_target_and_host_agree() {
        let policy = policy(PageCache::builder(Duration::from_secs(60)));
        let absolute = key(&policy, "http://a.example/x", &[("host", "a.example")]).unwrap();
        assert_eq!(absolute, "page:GET:http:a.example:/x::");
        assert_ne!(Some(absolute), key(&policy, "/x", &[("host", "a.example")]), "the scheme is keyed");
        assert!(key(&policy, "http://a.example/x", &[("host", "b.example")]).is_none());
        assert!(key(&policy, "http://a.example:80/x", &[("host", "a.example")]).is_none());
        assert!(key(&policy, "http://u@a.example/x", &[("host", "a.example")]).is_none());
        assert!(key(&policy, "/x", &[("host", "a.example"), ("host", "b.example")]).is_none());
        assert_eq!(key(&policy, "https://a.example/x", &[]).unwrap(), "page:GET:https:a.example:/x::");
    }

    #[test]
    fn bodies_ranges_and_proxy_headers_pass_through_by_default() {
        let policy = policy(PageCache::builder(Duration::from_secs(60)));
        for header in [
            ("content-length", "1"),
            ("content-length", "10"),
            ("transfer-encoding", "chunked"),
            ("range", "bytes=0-3"),
            ("forwarded", "host=a"),
            ("x-forwarded-host", "a"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-real-ip", "10.0.0.1"),
            ("x-original-url", "/admin"),
        ] {
            assert!(key(&policy, "/x", &[header]).is_none(), "{header:?}");
        }
        assert!(key(&policy, "/x", &[("content-length", "0")]).is_some());
        assert!(key(&policy, "/x", &[("x-forwarder", "a"), ("if-range", "\"a\"")]).is_some());
    }

    #[test]
    fn proxy_headers_can_be_keyed_or_stripped() {
        let keyed = policy(PageCache::builder(Duration::from_secs(60)).proxy_headers(ProxyHeaders::Key));
        let one = key(&keyed, "/x", &[("x-forwarded-proto", "https"), ("x-forwarded-host", "a")]).unwrap();
        assert!(one.ends_with("::x-forwarded-host=%[a%]&x-forwarded-proto=%[https%]"), "{one}");
        assert_ne!(Some(&one), key(&keyed, "/x", &[("x-forwarded-proto", "https")]).as_ref());
        assert_ne!(Some(&one), key(&keyed, "/x", &[]).as_ref());
        assert!(key(&keyed, "/x", &[("range", "bytes=0-3")]).is_none(), "the rest still passes through");

        let stripped = policy(PageCache::builder(Duration::from_secs(60)).proxy_headers(ProxyHeaders::Strip));
        let mut request =
            parts(Method::GET, "/x", &[("forwarded", "host=a"), ("x-forwarded-host", "a"), ("x", "1")]);
        assert_eq!(stripped.primary_key(&request).unwrap().as_str(), key(&stripped, "/x", &[]).unwrap());
        assert!(stripped.strip_unkeyed(&mut request));
        assert_eq!(request.headers.keys().map(HeaderName::as_str).collect::<Vec<_>>(), ["x"]);
    }

    #[test]
    fn ignored_query_parameters_are_removed_before_the_handler() {
        let policy = policy(PageCache::builder(Duration::from_secs(60)).ignore_query_param("ref"));
        let stripped = |uri: &str| {
            let mut request = parts(Method::GET, uri, &[]);
            assert!(policy.strip_unkeyed(&mut request));
            request.uri.to_string()
        };
        assert_eq!(stripped("/a?utm_source=x&k=5&ref=y&k=%3C&gclid=1"), "/a?k=5&k=%3C");
        assert_eq!(stripped("/a?utm_source=x"), "/a");
        assert_eq!(stripped("/a?b=1&&c"), "/a?b=1&&c", "untouched without ignored parameters");
        assert_eq!(stripped("http://h.example/a?ref=1&b"), "http://h.example/a?b");
    }

    #[test]
    fn other_credential_headers_are_configurable() {
        let default = policy(PageCache::builder(Duration::from_secs(60)));
        assert!(key(&default, "/x", &[("x-api-key", "k")]).is_none());
        assert!(key(&default, "/x", &[("proxy-authorization", "Basic a")]).is_none());
        let token = HeaderName::from_static("x-auth-token");
        let custom = policy(PageCache::builder(Duration::from_secs(60)).credential_headers([token]));
        assert!(key(&custom, "/x", &[("x-auth-token", "t")]).is_none());
        assert!(key(&custom, "/x", &[("x-api-key", "k")]).is_some(), "the list replaces the default");
        assert!(key(&custom, "/x", &[("authorization", "Bearer a")]).is_none(), "still governed by allow_*");
    }

    #[test]
    fn head_shares_the_get_key_and_other_methods_have_none() {
        let policy = policy(PageCache::builder(Duration::from_secs(60)));
        let get = policy.primary_key(&parts(Method::GET, "/x", &[])).unwrap();
        let head = policy.primary_key(&parts(Method::HEAD, "/x", &[])).unwrap();
        assert_eq!(get.as_str(), head.as_str());
        assert!(policy.primary_key(&parts(Method::POST, "/x", &[])).is_none());
    }

    #[test]
    fn credentials_pass_through_unless_allowed() {
        let strict = policy(PageCache::builder(Duration::from_secs(60)));
        assert!(key(&strict, "/x", &[("authorization", "Bearer a")]).is_none());
        assert!(key(&strict, "/x", &[("cookie", "a=b")]).is_none());
        let open = policy(PageCache::builder(Duration::from_secs(60)).allow_authorization().allow_cookies());
        assert!(key(&open, "/x", &[("authorization", "Bearer a"), ("cookie", "a=b")]).is_some());
    }

    #[test]
    fn vary_values_are_in_the_key() {
        let policy = policy(PageCache::builder(Duration::from_secs(60)).vary(http::header::ACCEPT_LANGUAGE));
        let fr = key(&policy, "/x", &[("accept-language", "fr")]).unwrap();
        assert!(fr.ends_with(":accept-language=%[fr%]"), "{fr}");
        assert_ne!(Some(fr), key(&policy, "/x", &[("accept-language", "en")]));
        assert_ne!(key(&policy, "/x", &[]), key(&policy, "/x", &[("accept-language", "")]));
        let mut bad = parts(Method::GET, "/x", &[]);
        bad.headers.insert(http::header::ACCEPT_LANGUAGE, HeaderValue::from_bytes(b"\xff").unwrap());
        assert!(policy.primary_key(&bad).is_none(), "opaque bytes pass through");
    }

    #[test]
    fn equivalent_negotiation_headers_share_a_key() {
        let policy = policy(PageCache::builder(Duration::from_secs(60)).vary(http::header::ACCEPT_ENCODING));
        let encoding = |value: &str| key(&policy, "/x", &[("accept-encoding", value)]).unwrap();
        assert_eq!(encoding("gzip, deflate"), encoding("deflate,gzip"));
        assert_eq!(encoding("gzip, deflate"), encoding("GZIP , Deflate;q=1.0"));
        assert_ne!(encoding("gzip, deflate"), encoding("gzip"));
        assert_ne!(encoding("gzip"), encoding("gzip;q=0"));
        assert_ne!(
            key(&policy, "/x", &[]),
            key(&policy, "/x", &[("accept-encoding", "")]),
            "absent is not empty"
        );
        let mut lines = parts(Method::GET, "/x", &[]);
        lines.headers.append(http::header::ACCEPT_ENCODING, HeaderValue::from_static("deflate"));
        lines.headers.append(http::header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(policy.primary_key(&lines).unwrap().as_str(), encoding("gzip, deflate"));

        let policy = super::tests::policy(
            PageCache::builder(Duration::from_secs(60)).vary(http::header::ACCEPT_LANGUAGE),
        );
        let language = |value: &str| key(&policy, "/x", &[("accept-language", value)]).unwrap();
        assert_eq!(language("fr-CH, fr;q=0.9"), language("fr;q=0.90,fr-ch"));
        assert_ne!(language("en, fr"), language("fr, en"));
        assert_ne!(language("a;b"), language("a; b"), "malformed values go in as they came");
    }

    #[test]
    fn tags_render_route_parameters_like_cached_does() {
        let policy = policy(
            PageCache::builder(Duration::from_secs(60))
                .route("/orgs/{org}/files/{*path}")
                .tag("org:<org>")
                .tag("file:<org>/<path>")
                .tag("files"),
        );
        assert_eq!(
            policy.dependencies("/orgs/a%20b/files/x/y.txt").unwrap(),
            ["t:org:a%20b", "t:file:a%20b/x%2Fy.txt", "t:files"]
        );
        assert!(policy.dependencies("/orgs/7/other").is_none());
        assert!(policy.dependencies("/orgs/7/files/").is_none());
        assert!(policy.dependencies("/orgs/%FF/files/x").is_none(), "not UTF-8");
    }

    #[test]
    fn routes_match_whole_paths() {
        let route = RoutePattern::parse("/users/{id}").unwrap();
        assert_eq!(route.capture("/users/7").unwrap()[..], [("id", "7")]);
        assert!(route.capture("/users/7/").is_none());
        assert!(route.capture("/users").is_none());
        assert!(route.capture("/users/").is_none());
        assert!(route.capture("/users/7/x").is_none());
        let root = RoutePattern::parse("/").unwrap();
        assert!(root.capture("/").is_some());
        assert!(root.capture("/x").is_none());
    }

    #[test]
    fn bad_policies_are_errors_that_say_how_to_fix_them() {
        let error = |builder: PageCacheBuilder| builder.build().unwrap_err().to_string();
        let ttl = || PageCache::builder(Duration::from_secs(60));
        assert!(error(PageCache::builder(Duration::from_millis(500))).contains("at least one second"));
        assert!(error(ttl().route("users/{id}")).contains("must start with `/`"));
        assert!(error(ttl().route("/users/{id}x")).contains("whole `{name}`"));
        assert!(error(ttl().route("/{*a}/b")).contains("last segment"));
        assert!(error(ttl().route("/{a}/{a}")).contains("twice"));
        assert!(error(ttl().tag("user:<id>")).contains(".route("));
        assert!(error(ttl().route("/users/{id}").tag("user:<uid>")).contains("[\"id\"]"));
        assert!(error(ttl().route("/{a}/{b}").tag("<a><b>")).contains("separated"));
        assert!(error(ttl().route("/{a}/{b}").tag("<a>-<b>")).contains("separated"));
        assert!(error(ttl().route("/{a}").tag("a <a>")).contains("whitespace"));
        assert!(error(ttl().route("/{a}").tag("<a")).contains("without its `>`"));
        assert!(ttl().route("/{a}/{b}").tag("<a>:<b>").build().is_ok());
        assert!(error(ttl().stale(Duration::from_millis(500))).contains("`stale` counts whole seconds"));
        assert!(error(ttl().fail_safe(Duration::from_millis(1))).contains("`fail_safe`"));
        assert!(error(ttl().fail_safe_throttle(Duration::from_millis(999))).contains("`fail_safe_throttle`"));
        assert!(error(ttl().jitter(Duration::from_millis(10))).contains("`jitter` counts whole seconds"));
        assert!(error(ttl().statuses([])).contains("`statuses` is empty"));
        for status in [101, 206, 304, 600] {
            let status = StatusCode::from_u16(status).unwrap();
            let message = error(ttl().statuses([StatusCode::OK, status]));
            assert!(message.contains(status.as_str()) && message.contains("remove it"), "{message}");
        }
        assert!(ttl().statuses([StatusCode::OK, StatusCode::NOT_FOUND, StatusCode::GONE]).build().is_ok());
        assert!(error(ttl().max_body_bytes(0)).contains("at least one byte"));
        assert!(error(ttl().ignore_query_param("")).contains("names no parameter"));
        let extremes = ttl().stale(Duration::MAX).fail_safe(Duration::MAX).fail_safe_throttle(Duration::ZERO);
        assert!(extremes.build().is_ok(), "any whole number of seconds is fine");
    }

    proptest::proptest! {
        #[test]
        fn any_path_query_or_pattern_is_handled_without_panicking(
            path in "/[a-z0-9%/{}*<>:]{0,24}",
            query in "[a-z0-9%=&_*]{0,24}",
            tag in "[a-z0-9%/{}<>:]{0,16}",
        ) {
            let _ = percent_decode(&path);
            if let Ok(route) = RoutePattern::parse(&path) {
                let _ = route.capture(&path);
                let _ = Template::parse(&tag, Some(&route));
            }
            static POLICY: std::sync::LazyLock<PageCache> = std::sync::LazyLock::new(|| {
                PageCache::builder(Duration::from_secs(1)).route("/{a}/{*b}").tag("t:<a>:<b>").build().unwrap()
            });
            if let Ok(request) = http::Request::get(format!("{path}?{query}")).body(()) {
                let _ = POLICY.policy.primary_key(&request.into_parts().0);
            }
            let _ = POLICY.policy.dependencies(&path);
        }
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%20b%2f%zz%4").as_deref(), Some("a b/%zz%4"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert!(percent_decode("%C3").is_none());
    }
}
