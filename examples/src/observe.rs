//! The example's observability: every metric goes through the `metrics`
//! facade and is exported in Prometheus text by `metrics-exporter-prometheus`,
//! covering the checklist of a production cache: hit ratio, evictions, memory,
//! latency quantiles of requests and loads, database queries per request,
//! Redis errors by class, hot keys, entries by namespace and value sizes.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use cache_runtime::Cache;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::db::Db;

/// Installs the Prometheus recorder as the process's `metrics` recorder, once.
/// `None` when another recorder was installed first.
pub fn recorder() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| handle)
        })
        .as_ref()
}

/// Times each request (`http_request_seconds{route}`, a summary with p50, p95
/// and p99) and counts the database queries it made (`db_queries_per_request`).
pub async fn measure(State(db): State<Db>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let (started, queries) = (Instant::now(), db.queries());
    let response = next.run(request).await;
    metrics::histogram!("http_request_seconds", "route" => route.clone()).record(started.elapsed());
    metrics::histogram!("db_queries_per_request", "route" => route)
        .record(db.queries().saturating_sub(queries) as f64);
    response
}

/// The metrics in Prometheus text, after refreshing the gauges read on demand:
/// each function's hit ratio and the hot keys.
#[must_use]
pub fn render() -> String {
    let Some(handle) = recorder() else {
        return "# another metrics recorder is installed\n".to_owned();
    };
    for site in cache_runtime::stats() {
        metrics::gauge!("cache_hit_ratio", "function" => site.function).set(site.hit_ratio());
    }
    for hot in cache_runtime::hot_keys(10) {
        metrics::gauge!("cache_hot_key_calls", "key" => hot.key).set(hot.calls as f64);
    }
    handle.render()
}

/// Counts the cache's entries by namespace every `period` in the background
/// (`cache_keys{namespace}`; on Redis a `SCAN` of at most 100,000 keys), never
/// on the request path. Does nothing outside a tokio runtime.
pub fn count_keys_every(cache: &Cache, period: Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let cache = cache.clone();
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(period);
        loop {
            ticks.tick().await;
            match cache.key_counts(100_000).await {
                Ok(counts) => {
                    for (namespace, count) in counts.namespaces {
                        metrics::gauge!("cache_keys", "namespace" => namespace).set(count as f64);
                    }
                }
                Err(error) => tracing::debug!(%error, "key count skipped"),
            }
        }
    });
}
