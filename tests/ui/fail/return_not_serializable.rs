#[derive(Clone)]
struct Row {
    id: u64,
}

#[cache_runtime::cached(key = "row:<id>", ttl = 60)]
async fn get_row(id: u64) -> Row {
    Row { id }
}

fn main() {}
