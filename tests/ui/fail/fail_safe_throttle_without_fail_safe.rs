#[cache_runtime::cached(key = "user:<id>", ttl = 60, fail_safe_throttle = 5)]
async fn get_user(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {}
