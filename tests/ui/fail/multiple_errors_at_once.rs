#[cache_runtime::cached(key = "user:<uid>", tagz = ["org:<org>"], skip = [nope])]
async fn get_user(id: u64, org: u64) -> u64 {
    id + org
}

fn main() {}
