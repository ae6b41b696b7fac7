use cache_runtime::{cached, put};

#[cached(key = "user:<id>", ttl = 60)]
async fn get_user(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

async fn wrong() {
    let _ = put!(get_user(1));
    let _ = put!(get_user(1), 7_u64);
}

fn main() {}
