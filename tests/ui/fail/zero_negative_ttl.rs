#[cache_runtime::cached(key = "user:<id>", ttl = 60, negative_ttl = 0)]
async fn find_user(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {}
