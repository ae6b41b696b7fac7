#![deny(unused_variables)]

#[cache_runtime::cached(key = "user:<id>", ttl = 60)]
async fn get_user(id: u64) -> u64 {
    let forgotten = 1;
    id
}

fn main() {}
