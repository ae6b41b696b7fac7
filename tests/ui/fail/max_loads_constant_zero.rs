const LIMIT: u64 = 0;

#[cache_runtime::cached(key = "user:<id>", ttl = 60, max_loads = LIMIT)]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
