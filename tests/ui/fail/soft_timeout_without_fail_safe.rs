#[cache_runtime::cached(key = "user:<id>", ttl = 60, soft_timeout = 200)]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
