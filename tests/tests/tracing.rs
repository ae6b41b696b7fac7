//! `#[tracing::instrument]` with `#[cached]`: the order of the two attributes
//! decides whether hits show up in traces.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{Cache, cached};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Counts the spans opened for each function name.
#[derive(Default)]
struct SpanCounter {
    traced_every_call: AtomicUsize,
    traced_loads_only: AtomicUsize,
    next_id: AtomicUsize,
}

impl Subscriber for SpanCounter {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        match span.metadata().name() {
            "traced_every_call" => self.traced_every_call.fetch_add(1, Ordering::SeqCst),
            "traced_loads_only" => self.traced_loads_only.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
        Id::from_u64(self.next_id.fetch_add(1, Ordering::SeqCst) as u64 + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// `#[cached]` above `#[tracing::instrument]`: the span wraps the cached call,
/// so every call is traced, hits included.
#[cached(key = "every:<id>", ttl = 60, cache = cache, skip = [cache])]
#[tracing::instrument(skip(cache))]
async fn traced_every_call(cache: &Cache, id: u64) -> u64 {
    id
}

/// `#[tracing::instrument]` above `#[cached]`: the span is inside the cached
/// body, so only loads are traced.
#[tracing::instrument(skip(cache))]
#[cached(key = "loads:<id>", ttl = 60, cache = cache, skip = [cache])]
async fn traced_loads_only(cache: &Cache, id: u64) -> u64 {
    id
}

#[test]
fn the_attribute_order_decides_whether_hits_are_traced() {
    let counter = Arc::new(SpanCounter::default());
    let _guard = tracing::subscriber::set_default(Arc::clone(&counter));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let cache = Cache::in_memory();
    runtime.block_on(async {
        for _ in 0..3 {
            assert_eq!(traced_every_call(&cache, 1).await, 1);
            assert_eq!(traced_loads_only(&cache, 1).await, 1);
        }
    });
    assert_eq!(counter.traced_every_call.load(Ordering::SeqCst), 3, "one span per call, hits included");
    assert_eq!(counter.traced_loads_only.load(Ordering::SeqCst), 1, "one span for the one load");
}
