struct Db;

#[cache_runtime::cached(key = "user:<id>", ttl = 60, early_refresh, skip = [db])]
async fn get_user(db: &Db, id: u64) -> u64 {
    let _ = db;
    id
}

fn main() {}
