#[cache_runtime::cached(key = "user:<1d>", ttl = 60, skip = [id])]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
