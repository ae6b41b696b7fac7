//! What a page cache stores, which responses it may store, and the responses
//! it answers with.

use std::time::Duration;

use bytes::Bytes;
use http::header::{
    AGE, CACHE_CONTROL, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_LOCATION, CONTENT_TYPE, DATE,
    ETAG, EXPIRES, LAST_MODIFIED, SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, response};
use serde::{Deserialize, Serialize};

use super::policy::Policy;
use crate::entry_info::{from_unix_ms, unix_ms};
use crate::http::headers;

/// `x-cache`: `HIT`, `MISS`, `STALE` or `BYPASS`.
pub(super) const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Where a page sent comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// The origin, just now.
    Miss,
    /// The cache, fresh.
    Hit,
    /// The cache, past its freshness (stale-while-revalidate, fail-safe).
    Stale,
}

/// An entry of a page cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum PageEntry {
    /// The page.
    Page(StoredPage),
    /// The response under this key varies on these request headers (besides
    /// the policy's own): the page is under the key with their values too.
    Variants(Vec<String>),
}

/// A response, ready to be sent again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredPage {
    status: u16,
    /// The origin's headers less hop-by-hop ones, with `ETag`,
    /// `Last-Modified`, `Vary` and `Content-Length` set.
    #[serde(with = "header_map")]
    headers: HeaderMap,
    body: Bytes,
    /// When the origin answered, in milliseconds since the Unix epoch.
    filled_at_ms: u64,
    /// `Last-Modified`, for `If-Modified-Since`.
    last_modified_secs: u64,
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unstorable {
    Status,
    SetCookie,
    /// `Cache-Control: no-store`, `private` or `no-cache`.
    CacheControl,
    /// Stale as it comes: `s-maxage` (or, without it, `max-age`) zero or
    /// malformed, or, without either, an `Expires` not after `Date`.
    Expired,
    /// `Vary: *`, or a `Vary` that names no header.
    VaryAll,
}

/// The request headers a response varies on besides the policy's, sorted,
/// if the response may be stored.
///
/// These are the rules of RFC 9111 (§3, §4.2.1, §5.2.2) by which a shared
/// cache may store a response and reuse it without asking the origin again
/// (`no-store`, `private`, `no-cache`, a freshness of zero), not a full
/// implementation such as `http-cache-semantics`: a page's lifetime is the
/// policy's TTL and its invalidations rather than one computed from the
/// response (so a positive `max-age` does not shorten it), which statuses
/// are kept is the policy's choice, and requests were screened before
/// ([`Policy::primary_key`]); what is left is this short list, without a
/// dependency.
pub(super) fn storable(policy: &Policy, response: &response::Parts) -> Result<Vec<HeaderName>, Unstorable> {
    if !policy.caches_status(response.status) {
        return Err(Unstorable::Status);
    }
    if response.headers.contains_key(SET_COOKIE) {
        return Err(Unstorable::SetCookie);
    }
    let directives = response.headers.get_all(CACHE_CONTROL).iter().flat_map(|value| {
        value.to_str().unwrap_or("no-store").split(',').map(|directive| {
            let (name, argument) = directive.split_once('=').unwrap_or((directive, ""));
            (name.trim().to_ascii_lowercase(), argument.trim().trim_matches('"').to_owned())
        })
    });
    // Seconds of freshness a shared cache may give: `s-maxage` over
    // `max-age`; `None` for a malformed value (stale, RFC 9111 §4.2.1).
    let (mut max_age, mut s_maxage) = (None, None);
    for (name, argument) in directives {
        match name.as_str() {
            "no-store" | "private" | "no-cache" => return Err(Unstorable::CacheControl),
            "max-age" => max_age = max_age.or(Some(argument.parse::<u64>().ok())),
            "s-maxage" => s_maxage = s_maxage.or(Some(argument.parse::<u64>().ok())),
            _ => {}
        }
    }
    match s_maxage.or(max_age) {
        Some(None | Some(0)) => return Err(Unstorable::Expired),
        Some(Some(_)) => {}
        None => {
            if let Some(expires) = response.headers.get(EXPIRES) {
                let date =
                    |value: Option<&HeaderValue>| httpdate::parse_http_date(value?.to_str().ok()?).ok();
                let now = date(response.headers.get(DATE)).unwrap_or_else(std::time::SystemTime::now);
                if date(Some(expires)).is_none_or(|expires| expires <= now) {
                    return Err(Unstorable::Expired);
                }
            }
        }
    }
    let mut names = Vec::new();
    for value in response.headers.get_all(VARY) {
        let Ok(value) = value.to_str() else { return Err(Unstorable::VaryAll) };
        for name in value.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            if name == "*" {
                return Err(Unstorable::VaryAll);
            }
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else { return Err(Unstorable::VaryAll) };
            if !policy.vary.contains(&name) && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(names)
}

/// Headers a cache never stores: hop-by-hop ones, and those it sets itself.
fn dropped(name: &HeaderName) -> bool {
    [CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE, AGE, DATE, CACHE_CONTROL, EXPIRES, X_CACHE]
        .contains(name)
        || matches!(name.as_str(), "keep-alive" | "proxy-connection")
}

impl StoredPage {
    /// A response to store: `extra_vary` are the names [`storable`] returned.
    pub(super) fn new(
        policy: &Policy,
        response: response::Parts,
        body: Bytes,
        extra_vary: &[HeaderName],
    ) -> Self {
        let filled_at_ms = unix_ms();
        let mut headers = response.headers;
        let listed_by_connection: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        let names: Vec<HeaderName> = headers.keys().cloned().collect();
        for name in names.iter().chain(&listed_by_connection) {
            if dropped(name) || listed_by_connection.contains(name) {
                headers.remove(name);
            }
        }
        if !headers.contains_key(ETAG) {
            headers.insert(ETAG, body_etag(response.status, &headers, &body));
        }
        let last_modified_secs = match headers.get(LAST_MODIFIED).and_then(|value| value.to_str().ok()) {
            Some(text) => match httpdate::parse_http_date(text) {
                Ok(date) => headers::unix_secs(date),
                Err(_) => filled_at_ms / 1000,
            },
            None => {
                headers.insert(LAST_MODIFIED, headers::http_date(from_unix_ms(filled_at_ms)));
                filled_at_ms / 1000
            }
        };
        let vary: Vec<&str> = policy.vary.iter().chain(extra_vary).map(HeaderName::as_str).collect();
        headers.remove(VARY);
        if let Ok(vary) = HeaderValue::from_str(&vary.join(", "))
            && !vary.is_empty()
        {
            headers.insert(VARY, vary);
        }
        if response.status == StatusCode::NO_CONTENT {
            headers.remove(CONTENT_LENGTH); // never sent with a 204
        } else {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        Self { status: response.status.as_u16(), headers, body, filled_at_ms, last_modified_secs }
    }

    /// The response to a request with `conditions` (`If-None-Match`,
    /// `If-Modified-Since`): the page (without its body for `HEAD`), or `304`.
    /// From the cache, it has an `Age`; stale, a `Cache-Control: no-cache`
    /// whatever the policy's, so that no cache downstream takes it for fresh.
    pub(super) fn respond(
        &self,
        policy: &Policy,
        conditions: &HeaderMap,
        head: bool,
        delivery: Delivery,
    ) -> http::Response<Bytes> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let last_modified = from_unix_ms(self.last_modified_secs.saturating_mul(1000));
        let mut response = if status.is_success()
            && headers::not_modified(conditions, self.headers.get(ETAG), Some(last_modified))
        {
            let mut response = http::Response::new(Bytes::new());
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            let headers = response.headers_mut();
            // `Content-Length`: the page's, as RFC 9110 allows, so that no
            // server below sets a wrong `0`.
            for name in [ETAG, LAST_MODIFIED, VARY, CONTENT_LOCATION, CONTENT_LENGTH] {
                if let Some(value) = self.headers.get(&name) {
                    headers.insert(name, value.clone());
                }
            }
            response
        } else {
            let mut response = http::Response::new(if head { Bytes::new() } else { self.body.clone() });
            *response.status_mut() = status;
            *response.headers_mut() = self.headers.clone();
            response
        };
        let headers = response.headers_mut();
        let (cache_control, x_cache) = match delivery {
            Delivery::Miss => (policy.cache_control.clone(), "MISS"),
            Delivery::Hit => (policy.cache_control.clone(), "HIT"),
            Delivery::Stale => (HeaderValue::from_static("no-cache"), "STALE"),
        };
        headers.insert(CACHE_CONTROL, cache_control);
        if delivery != Delivery::Miss {
            let age = Duration::from_millis(unix_ms().saturating_sub(self.filled_at_ms));
            headers.insert(AGE, headers::seconds(age));
        }
        headers.insert(X_CACHE, HeaderValue::from_static(x_cache));
        response
    }

    /// When the origin answered.
    #[cfg(test)]
    pub(super) fn filled_at(&self) -> std::time::SystemTime {
        from_unix_ms(self.filled_at_ms)
    }
}

/// A strong `ETag` from a digest of the status, the representation's
/// `Content-Type` and `Content-Encoding`, and the body: the same page gives
/// the same tag in every process and after every refill.
fn body_etag(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> HeaderValue {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    digest.update(status.as_u16().to_be_bytes());
    for name in [CONTENT_TYPE, CONTENT_ENCODING] {
        for value in headers.get_all(name) {
            digest.update((value.len() as u64).to_be_bytes());
            digest.update(value.as_bytes());
        }
        digest.update([0xff]);
    }
    digest.update(body);
    let digest = digest.finalize();
    let mut tag = String::with_capacity(34);
    tag.push('"');
    for byte in &digest[..16] {
        tag.push_str(&format!("{byte:02x}"));
    }
    tag.push('"');
    HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\""))
}

/// Headers as a sequence of (name, value bytes).
mod header_map {
    use bytes::Bytes;
    use http::{HeaderMap, HeaderName, HeaderValue};
    use serde::de::Error as _;
    use serde::ser::SerializeSeq as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    struct Value<'a>(&'a [u8]);

    impl Serialize for Value<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    pub(super) fn serialize<S: Serializer>(headers: &HeaderMap, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(headers.len()))?;
        for (name, value) in headers {
            seq.serialize_element(&(name.as_str(), Value(value.as_bytes())))?;
        }
        seq.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HeaderMap, D::Error> {
        let pairs = Vec::<(String, Bytes)>::deserialize(deserializer)?;
        let mut headers = HeaderMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(D::Error::custom)?;
            let value = HeaderValue::from_maybe_shared(value).map_err(D::Error::custom)?;
            headers.append(name, value);
        }
        Ok(headers)
    }
}

#[cfg(test)]
mod tests {
    use http::header::ACCEPT_LANGUAGE;

    use super::*;
    use crate::codec::Codec;
    use crate::http::page::PageCache;

    fn policy() -> std::sync::Arc<Policy> {
        PageCache::builder(Duration::from_secs(60)).vary(ACCEPT_LANGUAGE).build().unwrap().policy
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> response::Parts {
        let mut response = http::Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, *value);
        }
        response.body(()).unwrap().into_parts().0
    }

    #[test]
    fn what_may_be_stored() {
        let policy = policy();
        assert_eq!(storable(&policy, &response(200, &[])), Ok(vec![]));
        assert_eq!(storable(&policy, &response(500, &[])), Err(Unstorable::Status));
        assert_eq!(storable(&policy, &response(404, &[])), Err(Unstorable::Status), "unless listed");
        assert_eq!(storable(&policy, &response(200, &[("set-cookie", "a=b")])), Err(Unstorable::SetCookie));
        for value in ["no-store", "Private", "public, max-age=3, private=\"x\"", "max-age=1,NO-STORE"] {
            assert_eq!(
                storable(&policy, &response(200, &[("cache-control", value)])),
                Err(Unstorable::CacheControl),
                "{value}"
            );
        }
        assert_eq!(storable(&policy, &response(200, &[("cache-control", "public, max-age=60")])), Ok(vec![]));
        for value in ["no-cache", "no-cache=\"set-cookie\"", "public, No-Cache"] {
            let stored = storable(&policy, &response(200, &[("cache-control", value)]));
            assert_eq!(stored, Err(Unstorable::CacheControl), "{value}");
        }
        for value in
            ["max-age=0", "s-maxage=0", "max-age=60, s-maxage=0", "max-age=x", "max-age=0, max-age=60"]
        {
            let stored = storable(&policy, &response(200, &[("cache-control", value)]));
            assert_eq!(stored, Err(Unstorable::Expired), "{value}");
        }
        for value in ["max-age=0, s-maxage=30", "max-age=\"60\"", "s-maxage=1"] {
            assert_eq!(storable(&policy, &response(200, &[("cache-control", value)])), Ok(vec![]), "{value}");
        }
        let past = "Thu, 01 Jan 1970 00:00:01 GMT";
        for headers in [&[("expires", "0")][..], &[("expires", past)], &[("expires", past), ("date", past)]] {
            assert_eq!(storable(&policy, &response(200, headers)), Err(Unstorable::Expired), "{headers:?}");
        }
        let later = "Thu, 01 Jan 1970 00:01:00 GMT";
        assert_eq!(storable(&policy, &response(200, &[("expires", later), ("date", past)])), Ok(vec![]));
        let overridden = [("expires", "0"), ("cache-control", "max-age=60")];
        assert_eq!(storable(&policy, &response(200, &overridden)), Ok(vec![]), "max-age wins over Expires");
        assert_eq!(storable(&policy, &response(200, &[("vary", "*")])), Err(Unstorable::VaryAll));
        assert_eq!(storable(&policy, &response(200, &[("vary", "Accept, *")])), Err(Unstorable::VaryAll));
        assert_eq!(
            storable(&policy, &response(200, &[("vary", "Accept-Language, User-Agent"), ("vary", "accept")])),
            Ok(vec![http::header::ACCEPT, http::header::USER_AGENT]),
            "the policy's own names are left out, the rest sorted"
        );
    }

    #[test]
    fn stored_pages_drop_hop_by_hop_headers_and_get_validators() {
        let policy = policy();
        let parts = response(
            200,
            &[
                ("connection", "x-private"),
                ("x-private", "1"),
                ("transfer-encoding", "chunked"),
                ("cache-control", "public"),
                ("x-kept", "yes"),
                ("vary", "accept-encoding"),
            ],
        );
        let page =
            StoredPage::new(&policy, parts, Bytes::from_static(b"hello"), &[http::header::ACCEPT_ENCODING]);
        let sent = page.respond(&policy, &HeaderMap::new(), false, Delivery::Miss);
        let headers = sent.headers();
        for gone in ["connection", "x-private", "transfer-encoding", "age"] {
            assert!(!headers.contains_key(gone), "{gone}");
        }
        assert_eq!(headers["x-kept"], "yes");
        assert_eq!(headers["cache-control"], "no-cache");
        assert_eq!(headers["vary"], "accept-language, accept-encoding");
        assert_eq!(headers["content-length"], "5");
        assert_eq!(headers["x-cache"], "MISS");
        assert_eq!(headers["etag"].len(), 34);
        assert!(headers["last-modified"].to_str().unwrap().ends_with("GMT"));
        assert_eq!(sent.body(), "hello");
    }

    #[test]
    fn same_body_same_etag_other_body_other_etag() {
        let policy = policy();
        let etag = |body: &'static [u8], content_type: &str| {
            let page = StoredPage::new(
                &policy,
                response(200, &[("content-type", content_type)]),
                Bytes::from_static(body),
                &[],
            );
            page.headers[ETAG].clone()
        };
        assert_eq!(etag(b"a", "text/plain"), etag(b"a", "text/plain"));
        assert_ne!(etag(b"a", "text/plain"), etag(b"b", "text/plain"));
        assert_ne!(etag(b"a", "text/plain"), etag(b"a", "text/html"));
        let origin = StoredPage::new(&policy, response(200, &[("etag", "W/\"v1\"")]), Bytes::new(), &[]);
        assert_eq!(origin.headers[ETAG], "W/\"v1\"", "the origin's own ETag is kept");
    }

    #[test]
    fn conditional_requests_get_304_and_head_gets_no_body() {
        let policy = policy();
        let page = StoredPage::new(&policy, response(200, &[]), Bytes::from_static(b"hello"), &[]);
        let mut conditions = HeaderMap::new();
        conditions.insert(http::header::IF_NONE_MATCH, page.headers[ETAG].clone());
        let not_modified = page.respond(&policy, &conditions, false, Delivery::Hit);
        assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
        assert!(not_modified.body().is_empty());
        assert_eq!(not_modified.headers()[CONTENT_LENGTH], "5", "the page's length, not the 304's");
        assert_eq!(not_modified.headers()["x-cache"], "HIT");
        assert_eq!(not_modified.headers()["age"], "0");

        let head = page.respond(&policy, &HeaderMap::new(), true, Delivery::Hit);
        assert_eq!(head.status(), StatusCode::OK);
        assert!(head.body().is_empty());
        assert_eq!(head.headers()["content-length"], "5");

        let no_content =
            StoredPage::new(&policy, response(204, &[("content-length", "0")]), Bytes::new(), &[]);
        assert!(
            !no_content
                .respond(&policy, &HeaderMap::new(), false, Delivery::Hit)
                .headers()
                .contains_key(CONTENT_LENGTH)
        );

        let not_found = StoredPage::new(&policy, response(404, &[]), Bytes::new(), &[]);
        conditions.insert(http::header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert_eq!(
            not_found.respond(&policy, &conditions, false, Delivery::Hit).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn stale_pages_have_an_age_and_promise_no_freshness() {
        let policy = PageCache::builder(Duration::from_secs(60))
            .downstream(crate::http::Downstream::revalidate().max_age(Duration::from_secs(60)))
            .build()
            .unwrap()
            .policy;
        let mut page = StoredPage::new(&policy, response(200, &[]), Bytes::from_static(b"hello"), &[]);
        page.filled_at_ms -= 90_000;
        let hit = page.respond(&policy, &HeaderMap::new(), false, Delivery::Hit);
        assert_eq!(hit.headers()["cache-control"], "max-age=60");
        let stale = page.respond(&policy, &HeaderMap::new(), false, Delivery::Stale);
        assert_eq!(stale.headers()["x-cache"], "STALE");
        assert_eq!(stale.headers()["age"], "90");
        assert_eq!(stale.headers()["cache-control"], "no-cache", "not the policy's max-age");
        assert_eq!(stale.headers()[ETAG], page.headers[ETAG]);
        assert_eq!(stale.body(), "hello");
    }

    #[test]
    fn entries_survive_the_default_codec() {
        let policy = policy();
        let page = StoredPage::new(
            &policy,
            response(203, &[("x-two", "a"), ("x-two", "b"), ("content-type", "text/plain")]),
            Bytes::from_static(b"\x00\xffbinary"),
            &[],
        );
        let mut bytes = Vec::new();
        crate::Postcard::encode(&PageEntry::Page(page.clone()), &mut bytes).unwrap();
        let PageEntry::Page(decoded) = crate::Postcard::decode::<PageEntry>(&bytes).unwrap() else {
            panic!("a page decodes as a page")
        };
        assert_eq!(decoded.status, 203);
        assert_eq!(decoded.body, page.body);
        assert_eq!(decoded.headers, page.headers);
        assert_eq!(decoded.filled_at(), page.filled_at());
        assert!(bytes.len() < page.body.len() + 200, "bytes are stored as bytes: {}", bytes.len());
    }
}
