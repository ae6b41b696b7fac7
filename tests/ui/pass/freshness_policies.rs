//! `early_refresh` (bare or with a beta), the loader timeouts and `max_loads`,
//! from literals or constants.

use std::sync::Arc;

struct Db;

const HARD_MS: u64 = 2_000;
const LOADS: u64 = 16;

#[cache_runtime::cached(key = "user:<id>", ttl = 60, early_refresh, skip = [db])]
async fn get_user(db: Arc<Db>, id: u64) -> Result<u64, String> {
    drop(db);
    Ok(id)
}

#[cache_runtime::cached(key = "team:<id>", ttl = 60, stale = 30, early_refresh = 2.5, skip = [db])]
async fn get_team(db: Arc<Db>, id: u64) -> Option<u64> {
    drop(db);
    Some(id)
}

#[cache_runtime::cached(key = "org:<id>", ttl = 60, fail_safe = 3600, soft_timeout = 150, hard_timeout = HARD_MS)]
async fn get_org(id: String) -> Result<String, String> {
    Ok(id)
}

// A hard timeout and a load limit need no owned parameters.
#[cache_runtime::cached(key = "page:<id>", ttl = 60, fail_safe = 60, hard_timeout = 500, max_loads = LOADS, skip = [db])]
async fn get_page(db: &Db, id: u64) -> u64 {
    let _ = db;
    id
}

#[cache_runtime::cached(key = "report:<id>", ttl = 60, max_loads = 2, early_refresh = 1)]
async fn get_report(id: u64) -> u64 {
    id
}

fn main() {
    drop((get_user(Arc::new(Db), 1), get_team(Arc::new(Db), 1), get_org(String::new())));
    drop((get_page(&Db, 1), get_report(1)));
}
