#[cache_runtime::cached(key = "user:<id>", ttl = seconds, skip = [seconds])]
async fn get_user(id: u64, seconds: u64) -> u64 {
    id + seconds
}

fn main() {}
