#[cache_runtime::cached(key = "user:<id>", ttl = 60, skip = [seen])]
async fn get_user(id: u64, seen: &mut Vec<u64>) -> u64 {
    seen.push(id);
    id
}

fn main() {}
