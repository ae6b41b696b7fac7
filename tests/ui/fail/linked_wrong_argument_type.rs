use cache_runtime::{cached, invalidates};

#[cached(key = "user:<id>", ttl = 60)]
async fn get_user(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

#[invalidates(get_user(name))]
async fn rename(name: String) -> Result<(), String> {
    let _ = name;
    Ok(())
}

fn main() {}
