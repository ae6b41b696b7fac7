use cache_runtime::{cached, invalidates};

struct Users;

impl Users {
    #[cached(ttl = 60, skip = [self])]
    async fn count(&self, org: u64) -> u64 {
        org
    }

    #[invalidates(self.count(org), skip = [self])]
    async fn add(&self, org: u64) {}
}

fn main() {}
