#[cache_runtime::cached(key = "g:<id>", ttl = 60)]
async fn lookup<T: Default + Clone + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static>(
    id: u64,
) -> T {
    let _ = id;
    T::default()
}

fn main() {}
