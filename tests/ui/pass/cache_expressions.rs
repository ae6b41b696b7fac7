use std::sync::{Arc, LazyLock};

use cache_runtime::{Cache, cached};

static CACHE: LazyLock<Cache> = LazyLock::new(Cache::in_memory);

#[cached(key = "a:<id>", ttl = 60, cache = CACHE.clone())]
async fn from_static(id: u64) -> u64 {
    id
}

#[cached(key = "b:<id>", ttl = 60, cache = handle, skip = [handle])]
async fn from_parameter(handle: &Cache, id: u64) -> u64 {
    id
}

#[cached(key = "c:<id>", ttl = 60, cache = &*shared, skip = [shared])]
async fn from_arc(shared: Arc<Cache>, id: u64) -> u64 {
    id
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(from_static(1).await, 1);
    assert_eq!(from_parameter(&Cache::in_memory(), 2).await, 2);
    assert_eq!(from_arc(Arc::new(Cache::in_memory()), 3).await, 3);
}
