struct Db {
    name: String,
}

#[cache_runtime::cached(key = "name:<id>", ttl = 60, skip = [db])]
async fn name<'a>(db: &'a Db, id: u64) -> &'a str {
    let _ = id;
    &db.name
}

fn main() {}
