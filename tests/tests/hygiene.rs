//! Generated code names only absolute paths: local items named like the
//! runtime's, `core` and the crate itself do not disturb it.
// The shadowing items exist only to be ignored: that they stay unused is the point.
#![allow(dead_code, unused_macros, unreachable_pub)]

mod shadowing {
    use std::sync::atomic::{AtomicUsize, Ordering};

    // Items a sloppy expansion might pick up instead of the runtime's.
    mod core {}
    mod cache_runtime {}
    mod serde {}
    struct KeyWriter;
    struct Site;
    struct Cache;
    struct Dependencies;
    struct Invalidation;
    type Result<T> = ::core::result::Result<T, ()>;
    enum Option {
        Nothing,
    }
    macro_rules! concat {
        ($($t:tt)*) => {
            compile_error!("the local concat! was used")
        };
    }
    macro_rules! module_path {
        () => {
            compile_error!("the local module_path! was used")
        };
    }
    macro_rules! assert {
        ($($t:tt)*) => {
            compile_error!("the local assert! was used")
        };
    }
    const TTL: u64 = 60;
    fn default_cache() {}
    fn cached() {}

    pub static RUNS: AtomicUsize = AtomicUsize::new(0);

    #[::cache_runtime::cached(key = "hygiene:<id>", ttl = 60, tags = ["hygiene"], version = "hygiene:<id>")]
    pub async fn read(id: u64) -> ::core::option::Option<u64> {
        RUNS.fetch_add(1, Ordering::SeqCst);
        ::core::option::Option::Some(id)
    }

    #[::cache_runtime::cached(ttl = TTL, jitter = TTL / 10)]
    pub async fn without_key(id: u64) -> u64 {
        RUNS.fetch_add(1, Ordering::SeqCst);
        id
    }

    #[::cache_runtime::invalidates(keys = ["hygiene:<id>"], tags = ["hygiene"], versions = ["hygiene:<id>"])]
    pub async fn write(id: u64) -> ::core::result::Result<(), ()> {
        Ok(())
    }

    fn type_name() {}
    fn function_path() {}

    pub static METHOD_RUNS: AtomicUsize = AtomicUsize::new(0);

    pub struct Methods;

    impl Methods {
        #[::cache_runtime::cached(key = "hygiene:<id>", ttl = 60, skip = [self])]
        pub async fn read(&self, id: u64) -> u64 {
            METHOD_RUNS.fetch_add(1, Ordering::SeqCst);
            id
        }

        #[::cache_runtime::cached(ttl = 60, skip = [self])]
        pub async fn without_key(&self, id: u64) -> u64 {
            METHOD_RUNS.fetch_add(1, Ordering::SeqCst);
            id
        }

        #[::cache_runtime::invalidates(keys = ["hygiene:<id>"], skip = [self])]
        pub async fn write(&self, id: u64) {}
    }
}

#[tokio::test]
async fn generated_code_ignores_local_items() {
    use std::sync::atomic::Ordering;
    assert_eq!(shadowing::read(1).await, Some(1));
    assert_eq!(shadowing::read(1).await, Some(1));
    assert_eq!(shadowing::without_key(2).await, 2);
    assert_eq!(shadowing::without_key(2).await, 2);
    assert_eq!(shadowing::RUNS.load(Ordering::SeqCst), 2);
    shadowing::write(1).await.unwrap();
    assert_eq!(shadowing::read(1).await, Some(1));
    assert_eq!(shadowing::RUNS.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn generated_code_in_methods_ignores_local_items() {
    use std::sync::atomic::Ordering;
    let methods = shadowing::Methods;
    assert_eq!(methods.read(10).await, 10);
    assert_eq!(methods.read(10).await, 10);
    assert_eq!(methods.without_key(11).await, 11);
    assert_eq!(methods.without_key(11).await, 11);
    methods.write(10).await;
    assert_eq!(methods.read(10).await, 10);
    assert_eq!(shadowing::METHOD_RUNS.load(Ordering::SeqCst), 3);
}
