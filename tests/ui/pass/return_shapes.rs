use cache_runtime::{cached, invalidates};

#[derive(Debug)]
struct NotFound;

#[cached(key = "r:<id>", ttl = 60)]
async fn result(id: u64) -> Result<u64, NotFound> {
    let parsed: u64 = id.to_string().parse().map_err(|_| NotFound)?;
    if parsed == 0 {
        return Err(NotFound);
    }
    Ok(parsed)
}

#[cached(key = "o:<id>", ttl = 60)]
async fn option(id: u64) -> Option<u64> {
    if id == 0 {
        return None;
    }
    Some(id)
}

#[cached(key = "u:<id>", ttl = 60)]
async fn unit(id: u64) {
    let _ = id;
}

#[invalidates(keys = ["r:<id>"])]
async fn display(id: u64) -> impl std::fmt::Display {
    id
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert!(result(0).await.is_err());
    assert_eq!(result(2).await.unwrap(), 2);
    assert_eq!(option(0).await, None);
    unit(1).await;
    assert_eq!(display(3).await.to_string(), "3");
}
