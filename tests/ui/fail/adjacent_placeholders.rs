#[cache_runtime::cached(key = "page:<org><page>", ttl = 60)]
async fn page(org: u64, page: u64) -> Vec<u64> {
    vec![org, page]
}

fn main() {}
