//! A method's entries belong to its impl: same-named methods of two types, two
//! instantiations of a generic impl and a trait's default body for two
//! implementors never share an entry, with or without an explicit key. Every
//! case counts body runs: a shared entry would show as a missing run and a
//! value from the other impl.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{Cache, cached, invalidates};

/// Fields every repository below has: its cache and how often a body ran.
struct Handle {
    cache: Cache,
    runs: AtomicUsize,
}

impl Handle {
    fn new(cache: &Cache) -> Self {
        Self { cache: cache.clone(), runs: AtomicUsize::new(0) }
    }

    fn ran(&self) -> u64 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        0
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

struct Users(Handle);
struct Orders(Handle);

impl Users {
    #[cached(ttl = 60, cache = self.0.cache, skip = [self])]
    async fn count(&self, id: u64) -> u64 {
        self.0.ran() + id * 10
    }

    #[cached(key = "total:<id>", ttl = 60, cache = self.0.cache, skip = [self])]
    async fn total(&self, id: u64) -> u64 {
        self.0.ran() + id * 10
    }

    #[invalidates(keys = ["total:<id>"], cache = self.0.cache, skip = [self])]
    async fn change(&self, id: u64) {}
}

impl Orders {
    #[cached(ttl = 60, cache = self.0.cache, skip = [self])]
    async fn count(&self, id: u64) -> u64 {
        self.0.ran() + id * 100
    }

    #[cached(key = "total:<id>", ttl = 60, cache = self.0.cache, skip = [self])]
    async fn total(&self, id: u64) -> u64 {
        self.0.ran() + id * 100
    }
}

#[tokio::test]
async fn same_named_methods_of_two_types_never_share_default_keys() {
    let cache = Cache::in_memory();
    let (users, orders) = (Users(Handle::new(&cache)), Orders(Handle::new(&cache)));
    assert_eq!(users.count(7).await, 70);
    assert_eq!(orders.count(7).await, 700);
    assert_eq!(users.count(7).await, 70);
    assert_eq!(orders.count(7).await, 700);
    assert_eq!((users.0.runs(), orders.0.runs()), (1, 1));
}

#[tokio::test]
async fn same_named_methods_of_two_types_never_share_explicit_keys() {
    let cache = Cache::in_memory();
    let (users, orders) = (Users(Handle::new(&cache)), Orders(Handle::new(&cache)));
    assert_eq!(users.total(7).await, 70);
    assert_eq!(orders.total(7).await, 700);
    assert_eq!(users.total(7).await, 70);
    assert_eq!(orders.total(7).await, 700);
    assert_eq!((users.0.runs(), orders.0.runs()), (1, 1));
}

/// A free function with the key template `Users::total` also uses.
#[cached(key = "total:<id>", ttl = 60, cache = cache, skip = [cache, runs])]
async fn free_total(cache: &Cache, runs: &AtomicUsize, id: u64) -> u64 {
    runs.fetch_add(1, Ordering::SeqCst);
    id
}

#[tokio::test]
async fn a_method_invalidates_its_own_impl_and_free_functions_not_other_impls() {
    let cache = Cache::in_memory();
    let (users, orders) = (Users(Handle::new(&cache)), Orders(Handle::new(&cache)));
    let free_runs = AtomicUsize::new(0);
    users.total(7).await;
    orders.total(7).await;
    assert_eq!(free_total(&cache, &free_runs, 7).await, 7, "a free function shares no entry with methods");
    users.change(7).await;
    users.total(7).await;
    orders.total(7).await;
    free_total(&cache, &free_runs, 7).await;
    assert_eq!(users.0.runs(), 2, "the method's entry was invalidated");
    assert_eq!(orders.0.runs(), 1, "another impl's entry is not");
    assert_eq!(free_runs.load(Ordering::SeqCst), 2, "the key as written was invalidated too");
}

trait Backend {
    const NAME: &'static str;
}
struct Postgres;
struct Mock;
impl Backend for Postgres {
    const NAME: &'static str = "postgres";
}
impl Backend for Mock {
    const NAME: &'static str = "mock";
}

struct Service<B> {
    handle: Handle,
    backend: std::marker::PhantomData<B>,
}

impl<B: Backend> Service<B> {
    fn new(cache: &Cache) -> Self {
        Self { handle: Handle::new(cache), backend: std::marker::PhantomData }
    }

    #[cached(ttl = 60, cache = self.handle.cache, skip = [self])]
    async fn answer(&self, id: u64) -> String {
        self.handle.ran();
        format!("{}:{id}", B::NAME)
    }

    #[cached(key = "answer:<id>", ttl = 60, cache = self.handle.cache, skip = [self])]
    async fn keyed_answer(&self, id: u64) -> String {
        self.handle.ran();
        format!("{}:{id}", B::NAME)
    }
}

#[tokio::test]
async fn two_instantiations_of_a_generic_impl_never_share_entries() {
    let cache = Cache::in_memory();
    let (postgres, mock) = (Service::<Postgres>::new(&cache), Service::<Mock>::new(&cache));
    for _ in 0..2 {
        assert_eq!(postgres.answer(1).await, "postgres:1");
        assert_eq!(mock.answer(1).await, "mock:1");
        assert_eq!(postgres.keyed_answer(1).await, "postgres:1");
        assert_eq!(mock.keyed_answer(1).await, "mock:1");
    }
    assert_eq!((postgres.handle.runs(), mock.handle.runs()), (2, 2));
}

trait Greeter {
    fn handle(&self) -> &Handle;

    #[cached(ttl = 60, cache = self.handle().cache, skip = [self])]
    async fn greeting(&self, id: u64) -> String {
        self.handle().ran();
        format!("{}:{id}", std::any::type_name::<Self>().rsplit("::").next().unwrap_or_default())
    }

    #[cached(key = "greeting:<id>", ttl = 60, cache = self.handle().cache, skip = [self])]
    async fn keyed_greeting(&self, id: u64) -> String {
        self.handle().ran();
        format!("{}:{id}", std::any::type_name::<Self>().rsplit("::").next().unwrap_or_default())
    }
}

impl Greeter for Users {
    fn handle(&self) -> &Handle {
        &self.0
    }
}

impl Greeter for Orders {
    fn handle(&self) -> &Handle {
        &self.0
    }
}

#[tokio::test]
async fn a_trait_default_body_has_entries_per_implementor() {
    let cache = Cache::in_memory();
    let (users, orders) = (Users(Handle::new(&cache)), Orders(Handle::new(&cache)));
    for _ in 0..2 {
        assert_eq!(users.greeting(1).await, "Users:1");
        assert_eq!(orders.greeting(1).await, "Orders:1");
        assert_eq!(users.keyed_greeting(1).await, "Users:1");
        assert_eq!(orders.keyed_greeting(1).await, "Orders:1");
    }
    assert_eq!((users.0.runs(), orders.0.runs()), (2, 2));
}

static ASSOCIATED_RUNS: AtomicUsize = AtomicUsize::new(0);

impl Users {
    /// No `self` and no `Self`: the default key still names the impl's type.
    #[cached(ttl = 60, cache = cache, skip = [cache])]
    async fn limit(cache: &Cache, id: u64) -> u64 {
        ASSOCIATED_RUNS.fetch_add(1, Ordering::SeqCst);
        id + 1
    }

    const SCALE: u64 = 10;

    /// Names `Self`: its explicit key is scoped to the impl.
    #[cached(key = "scaled:<id>", ttl = 60, cache = cache, skip = [cache])]
    async fn scaled(cache: &Cache, id: u64) -> u64 {
        ASSOCIATED_RUNS.fetch_add(1, Ordering::SeqCst);
        id * Self::SCALE
    }
}

impl Orders {
    #[cached(ttl = 60, cache = cache, skip = [cache])]
    async fn limit(cache: &Cache, id: u64) -> u64 {
        ASSOCIATED_RUNS.fetch_add(1, Ordering::SeqCst);
        id + 2
    }

    const SCALE: u64 = 100;

    #[cached(key = "scaled:<id>", ttl = 60, cache = cache, skip = [cache])]
    async fn scaled(cache: &Cache, id: u64) -> u64 {
        ASSOCIATED_RUNS.fetch_add(1, Ordering::SeqCst);
        id * Self::SCALE
    }
}

#[tokio::test]
async fn associated_functions_without_self_have_entries_per_impl() {
    let cache = Cache::in_memory();
    for _ in 0..2 {
        assert_eq!(Users::limit(&cache, 1).await, 2);
        assert_eq!(Orders::limit(&cache, 1).await, 3);
        assert_eq!(Users::scaled(&cache, 1).await, 10);
        assert_eq!(Orders::scaled(&cache, 1).await, 100);
    }
    assert_eq!(ASSOCIATED_RUNS.load(Ordering::SeqCst), 4);
}

/// A client whose answer depends on its own state.
struct Client {
    base_url: String,
    handle: Handle,
}

impl Client {
    #[cached(key = "get:<self.base_url>:<path>", ttl = 60, cache = self.handle.cache)]
    async fn get(&self, path: &str) -> String {
        self.handle.ran();
        format!("{}/{path}", self.base_url)
    }
}

#[tokio::test]
async fn state_of_self_in_the_key_keeps_two_clients_apart() {
    let cache = Cache::in_memory();
    let eu = Client { base_url: "https://eu".into(), handle: Handle::new(&cache) };
    let us = Client { base_url: "https://us".into(), handle: Handle::new(&cache) };
    for _ in 0..2 {
        assert_eq!(eu.get("a").await, "https://eu/a");
        assert_eq!(us.get("a").await, "https://us/a");
    }
    assert_eq!((eu.handle.runs(), us.handle.runs()), (1, 1));
}

#[tokio::test]
async fn stats_name_each_method_after_its_impl() {
    let cache = Cache::in_memory();
    let (users, orders) = (Users(Handle::new(&cache)), Orders(Handle::new(&cache)));
    users.count(1).await;
    orders.count(1).await;
    let names: Vec<&str> = cache_runtime::stats().iter().map(|s| s.function).collect();
    assert!(names.contains(&"identity::Users::count"), "{names:?}");
    assert!(names.contains(&"identity::Orders::count"), "{names:?}");
}
