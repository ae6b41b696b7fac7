use std::time::Duration;

use cache_runtime::cached;

const USER_TTL: u64 = 300;
const JITTER: u64 = 30;
const PAGE_TTL: Duration = Duration::from_secs(60);

mod config {
    pub const TTL: u64 = 10;
}

#[cached(key = "user:<id>", ttl = USER_TTL, jitter = JITTER)]
async fn user(id: u64) -> u64 {
    id
}

#[cached(key = "team:<id>", ttl = 5 * 60, jitter = USER_TTL / 10)]
async fn team(id: u64) -> u64 {
    id
}

#[cached(key = "page:<id>", ttl = PAGE_TTL.as_secs())]
async fn page(id: u64) -> u64 {
    id
}

#[cached(key = "config:<id>", ttl = config::TTL)]
async fn configured(id: u64) -> u64 {
    id
}

struct Repo;

impl Repo {
    #[cached(key = "repo:<id>", ttl = USER_TTL, skip = [self])]
    async fn item(&self, id: u64) -> u64 {
        id
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(user(1).await, 1);
    assert_eq!(team(2).await, 2);
    assert_eq!(page(3).await, 3);
    assert_eq!(configured(4).await, 4);
    assert_eq!(Repo.item(5).await, 5);
}
