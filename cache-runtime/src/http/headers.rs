//! What responses tell the caches after this server: `Cache-Control`, the
//! validators (`ETag`, `Last-Modified`), and the answer to a conditional
//! request (`304 Not Modified`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{IF_MODIFIED_SINCE, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue};

/// What caches after this server — browsers, CDNs, proxies — may do with a
/// response: the `Cache-Control` it is sent with.
///
/// The default, [`Downstream::revalidate`], is `Cache-Control: no-cache`: a
/// downstream cache may keep the response but must ask again before each
/// use, sending the validators it got (`If-None-Match`, `If-Modified-Since`).
/// The answer is a `304 Not Modified` without a body while the entry on the
/// server is unchanged, and the new response as soon as an invalidation has
/// removed it. That keeps the promise of `#[invalidates]` all the way to the
/// browser, for one round trip per use.
///
/// [`max_age`](Self::max_age), [`s_maxage`](Self::s_maxage) and
/// [`stale_while_revalidate`](Self::stale_while_revalidate) trade that
/// promise for fewer requests: for the time they give, a browser or CDN
/// shows its copy without asking, even after the server invalidated it.
/// Downstream caches count that time from when the page was rendered (the
/// `Age` header says how long ago): a page served from the cache 40 s after
/// it was filled, with `max_age(60 s)`, stays fresh downstream for 20 s more.
///
/// ```
/// use std::time::Duration;
/// use cache_runtime::http::Downstream;
///
/// assert_eq!(Downstream::revalidate().cache_control(), "no-cache");
/// let cdn = Downstream::revalidate().s_maxage(Duration::from_secs(30));
/// assert_eq!(cdn.cache_control(), "max-age=0, s-maxage=30"); // browsers revalidate, CDNs keep 30 s
/// let both = Downstream::revalidate()
///     .max_age(Duration::from_secs(10))
///     .stale_while_revalidate(Duration::from_secs(50));
/// assert_eq!(both.cache_control(), "max-age=10, stale-while-revalidate=50");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Downstream {
    max_age: Option<Duration>,
    s_maxage: Option<Duration>,
    stale_while_revalidate: Option<Duration>,
}

impl Downstream {
    /// `Cache-Control: no-cache`: every downstream cache revalidates before
    /// each use (the default).
    #[must_use]
    pub const fn revalidate() -> Self {
        Self { max_age: None, s_maxage: None, stale_while_revalidate: None }
    }

    /// Every downstream cache, the browser's included, may use the response
    /// without asking for `fresh_for` (whole seconds) after it was rendered.
    #[must_use]
    pub const fn max_age(mut self, fresh_for: Duration) -> Self {
        self.max_age = Some(fresh_for);
        self
    }

    /// Shared caches (CDNs, proxies) may use the response without asking for
    /// `fresh_for` after it was rendered. Without [`max_age`](Self::max_age),
    /// browsers get `max-age=0` and revalidate.
    #[must_use]
    pub const fn s_maxage(mut self, fresh_for: Duration) -> Self {
        self.s_maxage = Some(fresh_for);
        self
    }

    /// Once stale, a downstream cache may still answer with its copy for
    /// `stale_for` while it revalidates in the background. Sent only with
    /// [`max_age`](Self::max_age) or [`s_maxage`](Self::s_maxage).
    #[must_use]
    pub const fn stale_while_revalidate(mut self, stale_for: Duration) -> Self {
        self.stale_while_revalidate = Some(stale_for);
        self
    }

    /// The `Cache-Control` value.
    #[must_use]
    pub fn cache_control(&self) -> HeaderValue {
        if self.max_age.is_none() && self.s_maxage.is_none() {
            return HeaderValue::from_static("no-cache");
        }
        let seconds = |directive: &str, duration: Duration| format!("{directive}={}", duration.as_secs());
        let mut directives = vec![seconds("max-age", self.max_age.unwrap_or_default())];
        directives.extend(self.s_maxage.map(|fresh| seconds("s-maxage", fresh)));
        directives.extend(self.stale_while_revalidate.map(|stale| seconds("stale-while-revalidate", stale)));
        HeaderValue::from_str(&directives.join(", ")).unwrap_or(HeaderValue::from_static("no-cache"))
    }
}

/// Whether a `GET` or `HEAD` with these headers gets `304 Not Modified` from
/// a response with these validators (RFC 9110, 13.2.2): `If-None-Match` when
/// present (weak comparison), else `If-Modified-Since`, which must be one
/// valid date. Second resolution: a response filled again within the second
/// a client's `If-Modified-Since` names still matches it; `If-None-Match`,
/// which browsers send when they have an `ETag`, has no such blind spot.
pub(crate) fn not_modified(
    request: &HeaderMap,
    etag: Option<&HeaderValue>,
    last_modified: Option<SystemTime>,
) -> bool {
    let mut if_none_match = request.get_all(IF_NONE_MATCH).iter().peekable();
    if if_none_match.peek().is_some() {
        return if_none_match.any(|list| lists_etag(list.as_bytes(), etag.map(HeaderValue::as_bytes)));
    }
    let Some(last_modified) = last_modified else { return false };
    let mut since = request.get_all(IF_MODIFIED_SINCE).iter();
    let (Some(since), None) = (since.next(), since.next()) else { return false };
    let Some(since) = since.to_str().ok().and_then(|text| httpdate::parse_http_date(text).ok()) else {
        return false;
    };
    unix_secs(last_modified) <= unix_secs(since)
}

/// Whether an `If-None-Match` list names `etag` (weakly) or is `*`.
fn lists_etag(list: &[u8], etag: Option<&[u8]>) -> bool {
    let ours = etag.map(opaque_tag);
    let mut rest = list;
    loop {
        while let [b' ' | b'\t' | b',', tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            return false;
        }
        if rest[0] == b'*' {
            return true;
        }
        let tag = opaque_tag(rest);
        let Some(quoted) = tag.strip_prefix(b"\"") else { return false };
        let Some(end) = quoted.iter().position(|&byte| byte == b'"') else { return false };
        if ours == Some(&tag[..end + 2]) {
            return true;
        }
        rest = &quoted[end + 1..];
    }
}

/// An entity tag without its weakness mark `W/`.
fn opaque_tag(tag: &[u8]) -> &[u8] {
    tag.strip_prefix(b"W/").unwrap_or(tag)
}

/// Whole seconds since the Unix epoch (0 before it).
pub(crate) fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn http_date(time: SystemTime) -> HeaderValue {
    HeaderValue::from_str(&httpdate::fmt_http_date(time)).unwrap_or(HeaderValue::from_static(""))
}

/// A whole number of seconds as a header value (`Age`).
pub(crate) fn seconds(duration: Duration) -> HeaderValue {
    HeaderValue::from(duration.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: http::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn if_none_match_compares_weakly_and_parses_lists() {
        let etag = HeaderValue::from_static("\"abc\"");
        let matches = |list: &str| not_modified(&request(IF_NONE_MATCH, list), Some(&etag), None);
        assert!(matches("\"abc\""));
        assert!(matches("W/\"abc\""));
        assert!(matches("\"x,y\", \"abc\""), "a comma inside a tag does not split it");
        assert!(matches("*"));
        assert!(!matches("\"abcd\""));
        assert!(!matches("abc"), "unquoted is malformed");
        assert!(!matches("\"abc"), "unterminated is malformed");
        assert!(!matches(""));
        let weak = HeaderValue::from_static("W/\"abc\"");
        assert!(not_modified(&request(IF_NONE_MATCH, "\"abc\""), Some(&weak), None));
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let etag = HeaderValue::from_static("\"abc\"");
        let mut headers = request(IF_NONE_MATCH, "\"other\"");
        headers.insert(IF_MODIFIED_SINCE, http_date(SystemTime::now()));
        assert!(!not_modified(&headers, Some(&etag), Some(SystemTime::now() - Duration::from_secs(60))));
    }

    #[test]
    fn if_modified_since_compares_seconds_and_ignores_bad_dates() {
        let modified = UNIX_EPOCH + Duration::from_millis(1_700_000_000_700);
        let at = |time: SystemTime| request(IF_MODIFIED_SINCE, &httpdate::fmt_http_date(time));
        assert!(not_modified(&at(modified), None, Some(modified)), "the same second");
        assert!(not_modified(&at(modified + Duration::from_secs(5)), None, Some(modified)));
        assert!(!not_modified(&at(modified - Duration::from_secs(1)), None, Some(modified)));
        assert!(!not_modified(&request(IF_MODIFIED_SINCE, "yesterday"), None, Some(modified)));
        assert!(!not_modified(&at(modified), None, None));
        let mut twice = at(modified);
        twice.append(IF_MODIFIED_SINCE, http_date(modified));
        assert!(!not_modified(&twice, None, Some(modified)), "more than one date is ignored");
    }

    proptest::proptest! {
        #[test]
        fn any_validator_header_is_answered_without_panicking(
            list in proptest::collection::vec(proptest::num::u8::ANY, 0..48),
            date in "[ -~]{0,40}",
        ) {
            let _ = lists_etag(&list, Some(b"\"abc\""));
            let _ = lists_etag(&list, None);
            if let Ok(date) = HeaderValue::from_str(&date) {
                let mut headers = HeaderMap::new();
                headers.insert(IF_MODIFIED_SINCE, date);
                let _ = not_modified(&headers, None, Some(SystemTime::now()));
            }
        }
    }

    #[test]
    fn cache_control_renders_the_opt_ins() {
        let secs = Duration::from_secs;
        assert_eq!(Downstream::default().cache_control(), "no-cache");
        assert_eq!(Downstream::revalidate().stale_while_revalidate(secs(5)).cache_control(), "no-cache");
        assert_eq!(Downstream::revalidate().max_age(secs(60)).cache_control(), "max-age=60");
        assert_eq!(
            Downstream::revalidate()
                .max_age(secs(1))
                .s_maxage(secs(2))
                .stale_while_revalidate(secs(3))
                .cache_control(),
            "max-age=1, s-maxage=2, stale-while-revalidate=3"
        );
    }
}
