//! `stale` with owned parameters, `fail_safe` with borrowed ones, from
//! literals or constants.

use std::sync::Arc;

struct Db;

const GRACE: u64 = 3600;

#[cache_runtime::cached(key = "user:<id>", ttl = 60, stale = 30, skip = [db])]
async fn get_user(db: Arc<Db>, id: u64) -> Result<u64, String> {
    drop(db);
    Ok(id)
}

#[cache_runtime::cached(key = "team:<id>", ttl = 60, fail_safe = GRACE, fail_safe_throttle = 10, skip = [db])]
async fn get_team(db: &Db, id: u64) -> Option<u64> {
    let _ = db;
    Some(id)
}

#[cache_runtime::cached(key = "org:<id>", ttl = 60, stale = 30, fail_safe = GRACE)]
async fn get_org(id: String) -> String {
    id
}

fn main() {
    drop((get_user(Arc::new(Db), 1), get_team(&Db, 1), get_org(String::new())));
}
