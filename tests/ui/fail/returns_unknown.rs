#[cache_runtime::cached(key = "n:<id>", ttl = 60, returns = ok)]
async fn count(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {}
