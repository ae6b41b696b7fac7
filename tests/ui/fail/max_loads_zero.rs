#[cache_runtime::cached(key = "user:<id>", ttl = 60, max_loads = 0)]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
