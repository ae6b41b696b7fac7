//! Support for the integration tests: shared scenarios and a Redis harness.

pub mod bench;
pub mod certs;
pub mod linked;
pub mod redis_server;
pub mod scenarios;

/// Each scenario, once in memory and once on Redis: a test module `memory`
/// and one `redis`, each scenario an `async fn(Store)` of the calling file,
/// where `Store::memory()` and `Store::redis()` give its fixture (or `None`
/// to skip).
#[macro_export]
macro_rules! on_every_store {
    ($($scenario:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(store) = super::Store::memory() {
                        super::$scenario(store).await;
                    }
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(store) = super::Store::redis() {
                        super::$scenario(store).await;
                    }
                }
            )*
        }
    };
}
