#[cache_runtime::cached(ttl = 60, jitter = 5)]
async fn add(a: i32, b: i32) -> i32 {
    a + b
}

#[cache_runtime::cached(ttl = 60, codec = cache_runtime::Json)]
async fn with_json(a: i32) -> Vec<i32> {
    vec![a]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(add(1, 2).await, 3);
    assert_eq!(add(1, 2).await, 3);
    assert_eq!(with_json(4).await, [4]);
}
