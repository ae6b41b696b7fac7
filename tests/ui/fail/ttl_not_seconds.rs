#[cache_runtime::cached(key = "user:<id>", ttl = "300")]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
