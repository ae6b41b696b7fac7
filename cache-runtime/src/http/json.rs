//! [`CachedJson`]: a handler's JSON with the validators of the cache entry
//! behind it.

use std::time::UNIX_EPOCH;

use axum::Json;
use axum::http::header::{AGE, CACHE_CONTROL, ETAG, LAST_MODIFIED};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::headers::{self, Downstream};
use crate::EntryInfo;

/// A JSON response with validators taken from a cache entry: `ETag` (from the
/// entry's key, generations and fill time), `Last-Modified` (when the entry
/// was filled), `Age` (time since then, when the value came from the cache)
/// and `Cache-Control` ([`Downstream`], `no-cache` by default); `304 Not
/// Modified` without a body when the request's `If-None-Match` names that
/// `ETag`, or, without `If-None-Match`, its `If-Modified-Since` is not older
/// than the fill.
///
/// ```
/// use axum::http::HeaderMap;
/// use cache_runtime::http::CachedJson;
///
/// #[cache_runtime::cached(key = "greeting:<name>", ttl = 60)]
/// async fn greeting(name: String) -> String {
///     format!("hello {name}")
/// }
///
/// async fn handler(headers: HeaderMap) -> CachedJson<String> {
///     let (value, entry) = cache_runtime::capture(greeting("ada".into())).await;
///     CachedJson::new(value, entry, &headers)
/// }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CachedJson<T> {
    value: T,
    entry: Option<EntryInfo>,
    not_modified: bool,
    downstream: Downstream,
}

impl<T> CachedJson<T> {
    /// The value, the entry [`capture`](crate::capture) reported for it (`None`:
    /// sent without validators, `Cache-Control: no-cache`), and the request's
    /// headers, read for `If-None-Match` and `If-Modified-Since`.
    pub fn new(value: T, entry: Option<EntryInfo>, request: &HeaderMap) -> Self {
        let not_modified = entry.as_ref().is_some_and(|entry| {
            let tag = header(&etag(entry));
            tag.is_some() && headers::not_modified(request, tag.as_ref(), Some(entry.filled_at))
        });
        Self { value, entry, not_modified, downstream: Downstream::revalidate() }
    }

    /// Lets browsers and CDNs keep the response without asking (see
    /// [`Downstream`] for what that costs after an invalidation).
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum::http::HeaderMap;
    /// use axum::response::IntoResponse;
    /// use cache_runtime::http::{CachedJson, Downstream};
    ///
    /// let cdn = Downstream::revalidate().s_maxage(Duration::from_secs(30));
    /// let response = CachedJson::new(1, None, &HeaderMap::new()).downstream(cdn).into_response();
    /// assert_eq!(response.headers()["cache-control"], "no-cache"); // no entry: nothing to vouch for
    /// ```
    pub fn downstream(mut self, downstream: Downstream) -> Self {
        self.downstream = downstream;
        self
    }
}

/// The strong validator of an entry: a digest of its key, generations and fill time.
#[must_use]
pub fn etag(entry: &EntryInfo) -> String {
    let filled_ms = entry.filled_at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let digest =
        crate::codec::type_fingerprint(&[&entry.key, &entry.generation.to_string(), &filled_ms.to_string()]);
    format!("\"{digest:016x}\"")
}

fn header(text: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(text).ok()
}

impl<T: Serialize> IntoResponse for CachedJson<T> {
    fn into_response(self) -> Response {
        let mut response = if self.not_modified {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            Json(self.value).into_response()
        };
        let headers = response.headers_mut();
        let Some(entry) = self.entry else {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            return response;
        };
        if let Some(tag) = header(&etag(&entry)) {
            headers.insert(ETAG, tag);
        }
        headers.insert(LAST_MODIFIED, headers::http_date(entry.filled_at));
        headers.insert(CACHE_CONTROL, self.downstream.cache_control());
        if entry.hit {
            // With `max-age`, downstream caches subtract this: the value is as
            // old as its entry, not as this response.
            headers.insert(AGE, headers::seconds(entry.age()));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use axum::http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};

    use super::*;

    fn entry(filled_secs_ago: u64, fresh_for: u64) -> EntryInfo {
        let now = SystemTime::now();
        EntryInfo {
            key: "user:1".into(),
            filled_at: now - Duration::from_secs(filled_secs_ago),
            fresh_until: now + Duration::from_secs(fresh_for),
            generation: 3,
            hit: true,
        }
    }

    #[test]
    fn headers_come_from_the_entry() {
        let response = CachedJson::new(1, Some(entry(10, 50)), &HeaderMap::new()).into_response();
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[CACHE_CONTROL], "no-cache", "revalidated by default");
        let age: u64 = headers[AGE].to_str().unwrap().parse().unwrap();
        assert!((10..=11).contains(&age), "{age}");
        assert!(headers[ETAG].to_str().unwrap().starts_with('"'));
        assert!(headers[LAST_MODIFIED].to_str().unwrap().ends_with("GMT"));
    }

    #[test]
    fn max_age_is_counted_from_the_fill_once() {
        let downstream = Downstream::revalidate().max_age(Duration::from_secs(60));
        let response =
            CachedJson::new(1, Some(entry(10, 50)), &HeaderMap::new()).downstream(downstream).into_response();
        assert_eq!(response.headers()[CACHE_CONTROL], "max-age=60");
        let age: u64 = response.headers()[AGE].to_str().unwrap().parse().unwrap();
        assert!((10..=11).contains(&age), "downstream: fresh for 60 - {age} s more, not 50 - {age}");
    }

    #[test]
    fn a_value_loaded_now_has_no_age() {
        let loaded = EntryInfo { hit: false, ..entry(0, 60) };
        let response = CachedJson::new(1, Some(loaded), &HeaderMap::new()).into_response();
        assert!(response.headers().get(AGE).is_none());
    }

    #[test]
    fn if_modified_since_the_fill_is_not_modified() {
        let info = entry(30, 60);
        let mut request = HeaderMap::new();
        request.insert(IF_MODIFIED_SINCE, headers::http_date(info.filled_at));
        assert_eq!(
            CachedJson::new(1, Some(info.clone()), &request).into_response().status(),
            StatusCode::NOT_MODIFIED
        );
        request.insert(IF_MODIFIED_SINCE, headers::http_date(info.filled_at - Duration::from_secs(1)));
        assert_eq!(CachedJson::new(1, Some(info), &request).into_response().status(), StatusCode::OK);
    }

    #[test]
    fn matching_if_none_match_is_not_modified() {
        let info = entry(1, 60);
        let mut request = HeaderMap::new();
        request
            .insert(IF_NONE_MATCH, HeaderValue::from_str(&format!("\"other\", W/{}", etag(&info))).unwrap());
        let response = CachedJson::new(1, Some(info.clone()), &request).into_response();
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(response.headers()[ETAG].to_str().unwrap(), etag(&info));

        request.insert(IF_NONE_MATCH, HeaderValue::from_static("\"stale\""));
        assert_eq!(CachedJson::new(1, Some(info), &request).into_response().status(), StatusCode::OK);
    }

    #[test]
    fn another_fill_or_generation_is_another_etag() {
        let info = entry(1, 60);
        let refilled = EntryInfo { filled_at: info.filled_at + Duration::from_millis(1), ..info.clone() };
        let invalidated = EntryInfo { generation: 4, ..info.clone() };
        assert_ne!(etag(&info), etag(&refilled));
        assert_ne!(etag(&info), etag(&invalidated));
    }

    #[test]
    fn without_an_entry_there_are_no_validators() {
        let response = CachedJson::new(1, None, &HeaderMap::new()).into_response();
        assert_eq!(response.headers()[CACHE_CONTROL], "no-cache");
        assert!(response.headers().get(ETAG).is_none());
    }
}
