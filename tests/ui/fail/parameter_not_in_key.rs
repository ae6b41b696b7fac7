#[cache_runtime::cached(key = "org:<org>:users", ttl = 60)]
async fn list_users(org: u64, page: u32) -> Vec<u64> {
    vec![org, u64::from(page)]
}

fn main() {}
