#[cache_runtime::cached(key = "user:<id>", ttl = 60, early_refresh = 0.0)]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
