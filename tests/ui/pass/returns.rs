use cache_runtime::{cached, invalidates};

#[derive(Debug, Clone)]
struct ApiError;

type ApiResult<T> = Result<T, ApiError>;
type Maybe<T> = Option<T>;

// Aliases need no option: the type decides.
#[cached(key = "a:<id>", ttl = 60)]
async fn aliased(id: u64) -> ApiResult<u64> {
    Ok(id)
}

#[cached(key = "m:<id>", ttl = 60)]
async fn maybe(id: u64) -> Maybe<u64> {
    Some(id)
}

// An explicit choice, checked against the return type.
#[cached(key = "r:<id>", ttl = 60, returns = result)]
async fn explicit_result(id: u64) -> ApiResult<u64> {
    Ok(id)
}

#[cached(key = "o:<id>", ttl = 60, returns = option)]
async fn explicit_option(id: u64) -> Maybe<u64> {
    Some(id)
}

// `None` cached too.
#[cached(key = "v:<id>", ttl = 60, returns = value)]
async fn every_value(id: u64) -> Option<u64> {
    Some(id)
}

// A generic return type says how it is cached.
#[cached(key = "g:<id>", ttl = 60, returns = value)]
async fn generic<T: Default + Clone + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static>(
    id: u64,
) -> T {
    let _ = id;
    T::default()
}

#[invalidates(keys = ["a:<id>"])]
async fn update(id: u64) -> ApiResult<()> {
    let _ = id;
    Ok(())
}

#[invalidates(keys = ["a:<id>"], returns = value)]
async fn always(id: u64) -> ApiResult<()> {
    let _ = id;
    Err(ApiError)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(aliased(1).await.unwrap(), 1);
    assert_eq!(maybe(2).await, Some(2));
    assert_eq!(explicit_result(3).await.unwrap(), 3);
    assert_eq!(explicit_option(4).await, Some(4));
    assert_eq!(every_value(5).await, Some(5));
    assert_eq!(generic::<u8>(6).await, 0);
    update(1).await.unwrap();
    always(1).await.unwrap_err();
}
