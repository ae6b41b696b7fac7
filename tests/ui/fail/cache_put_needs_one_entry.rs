use cache_runtime::{cache_put, cached};

#[cached(key = "user:<id>", ttl = 60)]
async fn get_user(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

#[cache_put(cache = cache_runtime::Cache::in_memory())]
async fn rename(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

#[cache_put(get_user(id), get_user(id + 1))]
async fn rename_two(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

fn main() {}
