#[cache_runtime::cached(key = "price:<id>", ttl = 60, schema = "v2")]
async fn price(id: u64) -> u64 {
    id * 100
}

fn main() {}
