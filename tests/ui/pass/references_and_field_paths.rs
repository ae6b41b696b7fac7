use cache_runtime::cached;

#[derive(Clone)]
struct Query {
    org_id: u64,
    filter: Option<String>,
}

#[cached(key = "search:<query.org_id>:<query.filter>:<term>", ttl = 60)]
async fn search(query: &Query, term: &str) -> Vec<String> {
    vec![format!("{}:{term}", query.org_id)]
}

#[cached(key = "pair:<pair.0>/<pair.1>", ttl = 60)]
async fn first(pair: (u32, char)) -> u32 {
    pair.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let query = Query { org_id: 3, filter: None };
    assert_eq!(search(&query, "ada").await, ["3:ada"]);
    assert_eq!(first((1, 'x')).await, 1);
}
