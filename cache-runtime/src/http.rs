//! HTTP caching for axum handlers, derived from the cache entry behind a value.
//!
//! [`CachedJson`] answers with the value as JSON plus `ETag` (from the entry's
//! key, generations and fill time), `Last-Modified` (when the entry was filled),
//! `Cache-Control: max-age` (its remaining freshness) and `Age` (time since the
//! fill), and with `304 Not Modified` when the request's `If-None-Match` names
//! that `ETag`.
//!
//! ```
//! use axum::http::HeaderMap;
//! use cache_runtime::http::CachedJson;
//!
//! #[cache_runtime::cached(key = "greeting:<name>", ttl = 60)]
//! async fn greeting(name: String) -> String {
//!     format!("hello {name}")
//! }
//!
//! async fn handler(headers: HeaderMap) -> CachedJson<String> {
//!     let (value, entry) = cache_runtime::capture(greeting("ada".into())).await;
//!     CachedJson::new(value, entry, &headers)
//! }
//! ```

use std::time::UNIX_EPOCH;

use axum::Json;
use axum::http::header::{AGE, CACHE_CONTROL, ETAG, IF_NONE_MATCH, LAST_MODIFIED};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::EntryInfo;

/// A JSON response with validators and freshness taken from a cache entry.
#[derive(Debug, Clone)]
#[must_use]
pub struct CachedJson<T> {
    value: T,
    entry: Option<EntryInfo>,
    not_modified: bool,
}

impl<T> CachedJson<T> {
    /// The value, the entry [`capture`](crate::capture) reported for it (`None`:
    /// sent without validators, `Cache-Control: no-cache`), and the request's
    /// headers, read for `If-None-Match`.
    pub fn new(value: T, entry: Option<EntryInfo>, request: &HeaderMap) -> Self {
        let not_modified = entry.as_ref().is_some_and(|entry| {
            let tag = etag(entry);
            request.get_all(IF_NONE_MATCH).iter().any(|header| matches_etag(header, &tag))
        });
        Self { value, entry, not_modified }
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

/// Whether an `If-None-Match` header value lists `tag` (or is `*`).
fn matches_etag(header: &HeaderValue, tag: &str) -> bool {
    let Ok(text) = header.to_str() else { return false };
    text.split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag)
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
        let fields = [
            (ETAG, header(&etag(&entry))),
            (LAST_MODIFIED, header(&httpdate::fmt_http_date(entry.filled_at))),
            (CACHE_CONTROL, header(&format!("max-age={}", entry.remaining().as_secs()))),
            (AGE, header(&entry.age().as_secs().to_string())),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                headers.insert(name, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

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
        let max_age: u64 =
            headers[CACHE_CONTROL].to_str().unwrap().trim_start_matches("max-age=").parse().unwrap();
        assert!((48..=50).contains(&max_age), "{max_age}");
        let age: u64 = headers[AGE].to_str().unwrap().parse().unwrap();
        assert!((10..=11).contains(&age), "{age}");
        assert!(headers[ETAG].to_str().unwrap().starts_with('"'));
        assert!(headers[LAST_MODIFIED].to_str().unwrap().ends_with("GMT"));
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
