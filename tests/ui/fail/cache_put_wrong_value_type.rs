use cache_runtime::{cache_put, cached};

#[cached(key = "user:<id>", ttl = 60)]
async fn get_user(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

#[cache_put(get_user(id))]
async fn rename(id: u64, name: String) -> Result<u64, String> {
    let _ = name;
    Ok(id)
}

fn main() {}
