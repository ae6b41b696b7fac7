struct Client {
    base_url: String,
}

impl Client {
    #[cache_runtime::cached(key = "get:<path>", ttl = 60)]
    async fn get(&self, path: String) -> String {
        format!("{}/{path}", self.base_url)
    }
}

fn main() {}
