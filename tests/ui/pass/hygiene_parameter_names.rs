use cache_runtime::{cached, invalidates};

#[cached(key = "h:<key>:<cache>:<result>:<__cache_key>:<__cache_writer>", ttl = 60)]
async fn clash(key: u64, cache: u64, result: u64, __cache_key: u64, __cache_writer: u64) -> u64 {
    key + cache + result + __cache_key + __cache_writer
}

#[invalidates(keys = ["h:<key>"], skip = [__cache_invalidation])]
async fn clash_write(key: u64, __cache_invalidation: u64) -> u64 {
    key + __cache_invalidation
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(clash(1, 2, 3, 4, 5).await, 15);
    assert_eq!(clash_write(1, 2).await, 3);
}
