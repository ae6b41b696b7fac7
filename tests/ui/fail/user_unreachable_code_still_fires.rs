#![deny(unreachable_code)]

#[cache_runtime::cached(key = "user:<id>", ttl = 60)]
async fn get_user(id: u64) -> u64 {
    return id;
    id + 1
}

fn main() {}
