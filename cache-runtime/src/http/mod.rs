//! HTTP caching: whole pages cached by a tower layer ([`PageCache`]), JSON
//! answers of cached functions with their entry's validators
//! ([`CachedJson`], feature `axum`), and what both tell the caches after
//! this server ([`Downstream`]).
//!
//! Both send `ETag`, `Last-Modified` and, for a value served from the cache,
//! `Age`, and answer `If-None-Match` and `If-Modified-Since` with `304 Not
//! Modified`, as the seed article asks: "Always return cache-related headers
//! (Cache-Control, ETag, Last-Modified) so clients and CDNs know how to
//! cache."
//!
//! Their `Cache-Control` is `no-cache` unless told otherwise. The article
//! weighs the two ways to keep a cache current: "TTL-based caching is
//! simplest; accept brief staleness in exchange for consistency. Event-based
//! caching requires discipline but gives you control." `#[invalidates]` is
//! that control on the server, and a `max-age` sent downstream gives it up
//! again: a browser or CDN keeps showing its copy of a page an invalidation
//! has just removed until its own TTL expires. With `no-cache` it asks each
//! time, which costs a round trip and a `304` without a body while the page
//! is unchanged, and brings the new page as soon as it is not.
//! [`Downstream`] opts into `max-age`, `s-maxage` and
//! `stale-while-revalidate` for pages whose staleness downstream is
//! acceptable, bounded by the time they give.

mod headers;
#[cfg(feature = "axum")]
mod json;
mod page;

pub use headers::Downstream;
#[cfg(feature = "axum")]
pub use json::{CachedJson, etag};
pub use page::{
    CREDENTIAL_HEADERS, DEFAULT_FAIL_SAFE_THROTTLE, DEFAULT_MAX_BODY_BYTES, PROXY_HEADERS, PageBody,
    PageCache, PageCacheBuilder, PageCacheService, PageFuture, ProxyHeaders, TRACKING_PARAMS,
};
