#[cache_runtime::cached(ttl = 60, jitter = 5)]
async fn add(a: i32, b: i32) -> i32 {
    a + b
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(add(1, 2).await, 3);
    assert_eq!(add(1, 2).await, 3);
}
