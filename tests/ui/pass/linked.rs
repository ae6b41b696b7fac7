//! Every way to name a reader's entry.
use cache_runtime::{Cache, cache_put, cached, get, invalidate, invalidates, put};

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct User {
    id: u64,
}

mod users {
    use super::User;
    use cache_runtime::cached;

    #[cached(ttl = 60)]
    pub async fn get_user(id: u64, org: u64) -> Result<User, String> {
        let _ = org;
        Ok(User { id })
    }

    #[cached(key = "by_name:<name>", ttl = 60)]
    pub async fn by_name(name: &str) -> Option<u64> {
        Some(name.len() as u64)
    }

    #[cached(key = "list:<ids>", ttl = 60)]
    pub async fn generic<T: cache_runtime::KeyPart + Sync>(ids: Vec<T>) -> usize {
        ids.len()
    }
}

struct Repo {
    cache: Cache,
    tenant: String,
}

impl Repo {
    #[cached(key = "item:<self.tenant>:<id>", ttl = 60, cache = self.cache)]
    pub async fn item(&self, id: u64) -> Option<User> {
        Some(User { id })
    }

    #[cached(ttl = 60, cache = self.cache, skip = [self], linked = true)]
    async fn count(&self, org: u64) -> u64 {
        org
    }

    #[cached(ttl = 60)]
    pub async fn load(id: u64) -> Option<User> {
        Some(User { id })
    }

    #[invalidates(self.item(id), self.count(org), Self::load(id), cache = self.cache)]
    async fn touch(&self, id: u64, org: u64) {}

    #[cache_put(self.item(user.id), cache = self.cache)]
    async fn save(&self, user: User) -> Result<User, String> {
        Ok(user)
    }
}

trait Greeter {
    async fn greeting(&self, id: u64) -> String;
}

impl Greeter for Repo {
    // A method of a trait impl gets no companion: it cannot be named.
    #[cached(ttl = 60, skip = [self])]
    async fn greeting(&self, id: u64) -> String {
        format!("hello {id}")
    }
}

#[invalidates(users::get_user(id, org), users::by_name(name), users::generic::<u8>(vec![1]))]
async fn rename(id: u64, org: u64, name: &str) -> Result<(), String> {
    Ok(())
}

#[cache_put(users::get_user(user.id, org))]
async fn save(user: User, org: u64) -> Result<User, String> {
    Ok(user)
}

async fn manual(repo: &Repo, name: String) -> Result<(), cache_runtime::CacheError> {
    invalidate!(users::get_user(1, 2), users::by_name(name.as_str())).await?;
    put!(users::get_user(1, 2), User { id: 1 }).await?;
    let _: Option<User> = get!(users::get_user(1, 2)).await;
    let _: Option<User> = get!(repo.item(1), cache = &repo.cache).await;
    put!(repo.item(1), &User { id: 1 }, cache = repo.cache.clone()).await
}

fn main() {
    let repo = Repo { cache: Cache::in_memory(), tenant: "t".into() };
    let _ = (repo.touch(1, 2), repo.save(User { id: 1 }), repo.greeting(1), rename(1, 2, "a"));
    let _ = (save(User { id: 1 }, 2), manual(&repo, String::new()), repo.tenant.len());
}
