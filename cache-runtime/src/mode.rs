//! How a function's return type maps to a cached value: `Result` caches `Ok`,
//! `Option` caches `Some`, anything else is cached as is.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A type whose values can be cached.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached",
    label = "the function returns this",
    note = "a cached value must be `Serialize + DeserializeOwned + Clone + Send + Sync + 'static`: derive `serde::Serialize`, `serde::Deserialize` and `Clone` for it, and own its data (no references, `Rc` or `RefCell`)"
)]
pub trait CacheValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T> CacheValue for T where T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

/// How a function's return value maps to a cached value.
pub trait Mode<R> {
    /// The part of `R` that is cached.
    type Value;
    /// The value to cache, if this outcome is cacheable.
    fn cacheable(output: &R) -> Option<&Self::Value>;
    /// Rebuilds the function's return value from a cached value.
    fn from_cached(value: Self::Value) -> R;
    /// Whether a write succeeded (and so must invalidate).
    fn succeeded(output: &R) -> bool;
}

/// `Result<T, E>`: caches `Ok` only; a write succeeded when it returned `Ok`.
pub struct ResultMode;
/// `Option<T>`: caches `Some` only.
pub struct OptionMode;
/// Any other type: cached as is; a write always succeeded.
pub struct PlainMode;

impl<T, E> Mode<Result<T, E>> for ResultMode {
    type Value = T;
    fn cacheable(output: &Result<T, E>) -> Option<&T> {
        output.as_ref().ok()
    }
    fn from_cached(value: T) -> Result<T, E> {
        Ok(value)
    }
    fn succeeded(output: &Result<T, E>) -> bool {
        output.is_ok()
    }
}

impl<T> Mode<Option<T>> for OptionMode {
    type Value = T;
    fn cacheable(output: &Option<T>) -> Option<&T> {
        output.as_ref()
    }
    fn from_cached(value: T) -> Option<T> {
        Some(value)
    }
    fn succeeded(_: &Option<T>) -> bool {
        true
    }
}

impl<T> Mode<T> for PlainMode {
    type Value = T;
    fn cacheable(output: &T) -> Option<&T> {
        Some(output)
    }
    fn from_cached(value: T) -> T {
        value
    }
    fn succeeded(_: &T) -> bool {
        true
    }
}
