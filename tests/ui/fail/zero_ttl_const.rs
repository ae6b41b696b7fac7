const NO_TTL: u64 = 0;

#[cache_runtime::cached(key = "user:<id>", ttl = NO_TTL)]
async fn get_user(id: u64) -> u64 {
    id
}

fn main() {}
