struct Repo;

impl Repo {
    const TTL: u64 = 60;

    #[cache_runtime::cached(key = "repo:<id>", ttl = Self::TTL, skip = [self])]
    async fn item(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
