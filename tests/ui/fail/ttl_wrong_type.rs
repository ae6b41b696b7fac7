const USER_TTL: std::time::Duration = std::time::Duration::from_secs(300);

#[cache_runtime::cached(key = "user:<id>", ttl = USER_TTL)]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
