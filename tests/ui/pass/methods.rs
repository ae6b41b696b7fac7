use cache_runtime::{Cache, cached, invalidates};

struct Repo {
    tenant: String,
    cache: Cache,
}

impl Repo {
    #[cached(key = "repo:<self.tenant>:<id>", ttl = 60, cache = self.cache)]
    async fn item(&self, id: u64) -> String {
        format!("{}/{id}", self.tenant)
    }

    #[invalidates(keys = ["repo:<self.tenant>:<id>"], cache = &self.cache)]
    async fn touch(&self, id: u64) {}
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let repo = Repo { tenant: "t".into(), cache: Cache::in_memory() };
    assert_eq!(repo.item(1).await, "t/1");
    repo.touch(1).await;
}
