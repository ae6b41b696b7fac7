#[cache_runtime::cached(ttl = 60)]
async fn lookup<T: Send + Sync>(id: T) -> u64 {
    let _ = &id;
    1
}

fn main() {}
