use cache_runtime::{cached, invalidates};

#[cached(key = "user:<id>", ttl = 60)]
async fn get_user(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

#[invalidates(get_usr(id))]
async fn rename(id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

fn main() {}
