//! `Arc<T>` values (plain, in `Result`, in `Option`, behind an alias), a type
//! that is not `Clone` shared through `Arc`, `schema = N`, and the bincode codec.

use std::sync::Arc;

use cache_runtime::cached;

#[derive(serde::Serialize, serde::Deserialize)]
struct Rows(Vec<String>);

type Shared<T> = Arc<T>;

#[cached(key = "rows:<id>", ttl = 60)]
async fn rows(id: u64) -> Arc<Rows> {
    Arc::new(Rows(vec![id.to_string()]))
}

#[cached(key = "checked:<id>", ttl = 60)]
async fn checked(id: u64) -> Result<Arc<Rows>, String> {
    if id == 0 { Err("none".into()) } else { Ok(Arc::new(Rows(Vec::new()))) }
}

#[cached(key = "maybe:<id>", ttl = 60, schema = 3)]
async fn maybe(id: u64) -> Option<Shared<Rows>> {
    (id != 0).then(|| Arc::new(Rows(Vec::new())))
}

#[cached(key = "price:<id>", ttl = 60, schema = 0, codec = cache_runtime::Bincode)]
async fn price(id: u64) -> u64 {
    id * 100
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert!(Arc::ptr_eq(&rows(1).await, &rows(1).await));
    assert!(checked(0).await.is_err());
    assert!(checked(1).await.is_ok());
    assert!(maybe(0).await.is_none());
    assert_eq!(price(2).await, 200);
}
