use cache_runtime::{Cache, cached, invalidates};
use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct User {
    id: u64,
    name: String,
}

struct Db;

#[cached(key = "user:<id>", ttl = 300, jitter = 5, tags = ["org:<org_id>"], skip = [db])]
async fn get_user(db: &Db, id: u64, org_id: u64) -> Result<User, String> {
    let _ = db;
    RUNS.fetch_add(1, Ordering::SeqCst);
    if id == 0 {
        return Err("zero".into());
    }
    Ok(User {
        id,
        name: format!("u{id}"),
    })
}

#[invalidates(keys = ["user:<id>"], tags = ["org:<org_id>"], skip = [db])]
async fn update(db: &Db, id: u64, org_id: u64) -> Result<(), String> {
    let _ = db;
    Ok(())
}

#[tokio::test]
async fn smoke() {
    let db = Db;
    assert_eq!(get_user(&db, 1, 7).await.unwrap().id, 1);
    assert_eq!(get_user(&db, 1, 7).await.unwrap().id, 1);
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    update(&db, 1, 7).await.unwrap();
    get_user(&db, 1, 7).await.unwrap();
    assert_eq!(RUNS.load(Ordering::SeqCst), 2);
    let _ = Cache::default_cache();
}
