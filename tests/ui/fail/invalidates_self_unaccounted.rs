struct Client {
    base_url: String,
}

impl Client {
    #[cache_runtime::invalidates(keys = ["get:<path>"])]
    async fn post(&self, path: String) {
        let _ = (&self.base_url, path);
    }
}

fn main() {}
