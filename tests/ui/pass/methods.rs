use std::sync::Arc;

use cache_runtime::{Cache, cached, invalidates};

struct Repo {
    tenant: String,
    cache: Cache,
}

impl Repo {
    // `self` in the key, through a field.
    #[cached(key = "repo:<self.tenant>:<id>", ttl = 60, cache = self.cache)]
    async fn item(&self, id: u64) -> String {
        format!("{}/{id}", self.tenant)
    }

    // `self` skipped: the default key still names the impl's type.
    #[cached(ttl = 60, cache = self.cache, skip = [self])]
    async fn doubled(&self, id: u64) -> u64 {
        id * 2
    }

    // `self` in a tag only.
    #[cached(key = "repo:count", ttl = 60, tags = ["tenant:<self.tenant>"], cache = self.cache)]
    async fn count(&self) -> usize {
        self.tenant.len()
    }

    // Other receivers.
    #[cached(key = "repo:owned:<id>", ttl = 60, skip = [self])]
    async fn owned(self, id: u64) -> u64 {
        id
    }

    #[cached(key = "repo:shared:<self.tenant>", ttl = 60)]
    async fn shared(self: Arc<Self>) -> String {
        self.tenant.clone()
    }

    // An associated function: the default key names `Repo` too.
    #[cached(ttl = 60)]
    async fn constant(id: u64) -> u64 {
        id
    }

    #[invalidates(keys = ["repo:<self.tenant>:<id>"], cache = &self.cache)]
    async fn touch(&self, id: u64) {}

    #[invalidates(tags = ["tenant:<tenant>"], skip = [self])]
    async fn touch_tenant(&self, tenant: &str) {}
}

/// A value of a type that is a key part: `self` in the default key.
#[derive(Clone, Copy)]
struct Shard(u32);

impl cache_runtime::KeyPart for Shard {
    fn write_key(&self, out: &mut cache_runtime::KeyWriter) {
        out.write_u64(u64::from(self.0));
    }
}

impl Shard {
    #[cached(ttl = 60)]
    async fn size(&self, id: u64) -> u64 {
        u64::from(self.0) + id
    }
}

trait Named {
    // A trait's default body: entries per implementor.
    #[cached(key = "name:<id>", ttl = 60, skip = [self])]
    async fn name(&self, id: u64) -> String {
        format!("{}:{id}", std::any::type_name::<Self>())
    }
}

impl Named for Repo {}

struct Service<T>(T);

impl<T: Send + Sync> Service<T> {
    // A generic impl: entries per instantiation.
    #[cached(ttl = 60, skip = [self])]
    async fn kind(&self) -> String {
        std::any::type_name::<T>().to_owned()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let repo = Repo { tenant: "t".into(), cache: Cache::in_memory() };
    assert_eq!(repo.item(1).await, "t/1");
    assert_eq!(repo.doubled(2).await, 4);
    assert_eq!(repo.count().await, 1);
    assert_eq!(Repo::constant(3).await, 3);
    assert!(repo.name(4).await.ends_with("::Repo:4"));
    repo.touch(1).await;
    repo.touch_tenant("t").await;
    let repo = Arc::new(repo);
    assert_eq!(repo.clone().shared().await, "t");
    assert_eq!(Shard(1).size(2).await, 3);
    assert_eq!(Service(1_u8).kind().await, "u8");
    assert_eq!(Service(1_u16).kind().await, "u16");
    let owned = Repo { tenant: "o".into(), cache: Cache::in_memory() };
    assert_eq!(owned.owned(5).await, 5);
}
