#[cache_runtime::cached(key = "user:<id>", ttl = 60, fail_safe = 600, soft_timeout = 500, hard_timeout = 500)]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
