//! `Result` and `Option` are recognised by type, not by name: aliases behave
//! like the real types for `#[cached]` and `#[invalidates]`, and a type that is
//! merely named `Option` is a value like any other. Every case counts body runs.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{Cache, cached, invalidates};

#[derive(Debug, Clone, PartialEq)]
struct ApiError;

type ApiResult<T> = Result<T, ApiError>;
type Maybe<T> = Option<T>;
use std::result::Result as Outcome;

/// Counts body runs.
#[derive(Default)]
struct Runs(AtomicUsize);

impl Runs {
    fn add(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[cached(key = "api:<id>", ttl = 60, cache = cache, skip = [cache, runs])]
async fn api(cache: &Cache, runs: &Runs, id: u64) -> ApiResult<u64> {
    runs.add();
    if id == 0 { Err(ApiError) } else { Ok(id) }
}

#[cached(key = "maybe:<id>", ttl = 60, cache = cache, skip = [cache, runs])]
async fn maybe(cache: &Cache, runs: &Runs, id: u64) -> Maybe<u64> {
    runs.add();
    (id != 0).then_some(id)
}

#[cached(key = "outcome:<id>", ttl = 60, cache = cache, skip = [cache, runs])]
async fn outcome(cache: &Cache, runs: &Runs, id: u64) -> Outcome<u64, ApiError> {
    runs.add();
    if id == 0 { Err(ApiError) } else { Ok(id) }
}

#[tokio::test]
async fn an_aliased_result_caches_ok_only() {
    let (cache, runs) = (Cache::in_memory(), Runs::default());
    assert_eq!(api(&cache, &runs, 0).await, Err(ApiError));
    assert_eq!(api(&cache, &runs, 0).await, Err(ApiError));
    assert_eq!(runs.get(), 2, "an Err was cached");
    assert_eq!(api(&cache, &runs, 1).await, Ok(1));
    assert_eq!(api(&cache, &runs, 1).await, Ok(1));
    assert_eq!(runs.get(), 3, "an Ok was not cached");

    let runs = Runs::default();
    outcome(&cache, &runs, 0).await.unwrap_err();
    outcome(&cache, &runs, 0).await.unwrap_err();
    assert_eq!(runs.get(), 2, "an Err under a renamed import was cached");
}

#[tokio::test]
async fn an_aliased_option_caches_some_only() {
    let (cache, runs) = (Cache::in_memory(), Runs::default());
    assert_eq!(maybe(&cache, &runs, 0).await, None);
    assert_eq!(maybe(&cache, &runs, 0).await, None);
    assert_eq!(runs.get(), 2, "a None was cached");
    assert_eq!(maybe(&cache, &runs, 1).await, Some(1));
    assert_eq!(maybe(&cache, &runs, 1).await, Some(1));
    assert_eq!(runs.get(), 3, "a Some was not cached");
}

#[invalidates(keys = ["api:<id>"], cache = cache, skip = [cache, fail])]
async fn update(cache: &Cache, id: u64, fail: bool) -> ApiResult<()> {
    if fail { Err(ApiError) } else { Ok(()) }
}

#[tokio::test]
async fn an_aliased_result_invalidates_on_ok_only() {
    let (cache, runs) = (Cache::in_memory(), Runs::default());
    api(&cache, &runs, 1).await.unwrap();
    update(&cache, 1, true).await.unwrap_err();
    api(&cache, &runs, 1).await.unwrap();
    assert_eq!(runs.get(), 1, "a failed write invalidated");
    update(&cache, 1, false).await.unwrap();
    api(&cache, &runs, 1).await.unwrap();
    assert_eq!(runs.get(), 2, "a successful write did not invalidate");
}

mod lookalike {
    /// Named `Option`, but a plain value.
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    pub(crate) struct Option(pub(crate) u64);
}

#[cached(key = "lookalike:<id>", ttl = 60, cache = cache, skip = [cache, runs])]
async fn lookalike(cache: &Cache, runs: &Runs, id: u64) -> lookalike::Option {
    runs.add();
    lookalike::Option(id)
}

#[tokio::test]
async fn a_type_merely_named_option_is_cached_whole() {
    let (cache, runs) = (Cache::in_memory(), Runs::default());
    assert_eq!(lookalike(&cache, &runs, 3).await, lookalike::Option(3));
    assert_eq!(lookalike(&cache, &runs, 3).await, lookalike::Option(3));
    assert_eq!(runs.get(), 1);
}

#[cached(key = "every:<id>", ttl = 60, cache = cache, skip = [cache, runs], returns = value)]
async fn every(cache: &Cache, runs: &Runs, id: u64) -> Option<u64> {
    runs.add();
    (id != 0).then_some(id)
}

#[cached(key = "generic:<id>", ttl = 60, cache = cache, skip = [cache, runs], returns = value)]
async fn generic<
    T: Default + Clone + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
>(
    cache: &Cache,
    runs: &Runs,
    id: u64,
) -> T {
    runs.add();
    let _ = id;
    T::default()
}

#[tokio::test]
async fn returns_value_caches_every_value() {
    let (cache, runs) = (Cache::in_memory(), Runs::default());
    assert_eq!(every(&cache, &runs, 0).await, None);
    assert_eq!(every(&cache, &runs, 0).await, None);
    assert_eq!(runs.get(), 1, "returns = value did not cache a None");

    let runs = Runs::default();
    assert_eq!(generic::<Option<u8>>(&cache, &runs, 1).await, None);
    assert_eq!(generic::<Option<u8>>(&cache, &runs, 1).await, None);
    assert_eq!(runs.get(), 1);
}
