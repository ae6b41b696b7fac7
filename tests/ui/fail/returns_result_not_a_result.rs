#[cache_runtime::cached(key = "n:<id>", ttl = 60, returns = result)]
async fn count(id: u64) -> u64 {
    id
}

fn main() {}
