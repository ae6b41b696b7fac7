#[cache_runtime::cached(key = "user:<id>", ttl = 60, linked = yes)]
async fn get_user(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

fn main() {}
