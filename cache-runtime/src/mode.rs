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
    /// Whether an output is an absence (`None`, `Ok(None)`): not a value, but
    /// cached with `negative_ttl`, for that long.
    fn is_absent(_output: &R) -> bool {
        false
    }
    /// The output a cached absence stands for; `None` when this mode has none.
    fn absent() -> Option<R> {
        None
    }
}

/// A return type whose absences may be cached: `negative_ttl` is accepted.
#[diagnostic::on_unimplemented(
    message = "`negative_ttl` caches `None`: the function must return `Option<T>` or `Result<Option<T>, E>`",
    label = "`{Self}` has no `None` to cache",
    note = "remove `negative_ttl`, or return an `Option`"
)]
pub trait NegativeCaching {}

impl<T> NegativeCaching for Option<T> {}
impl<T, E> NegativeCaching for Result<Option<T>, E> {}

/// Checks at compile time that `negative_ttl` fits the return type `R`.
pub fn negative_caching<R: NegativeCaching>() {}

/// `Result<T, E>`: caches `Ok` only; a write succeeded when it returned `Ok`.
pub struct ResultMode;
/// `Option<T>`: caches `Some`, and `None` only with `negative_ttl`.
pub struct OptionMode;
/// `Result<Option<T>, E>`: like [`OptionMode`] inside `Ok`; `Err` is never cached.
pub struct ResultOptionMode;
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
    fn is_absent(output: &Option<T>) -> bool {
        output.is_none()
    }
    fn absent() -> Option<Option<T>> {
        Some(None)
    }
}

impl<T, E> Mode<Result<Option<T>, E>> for ResultOptionMode {
    type Value = T;
    fn cacheable(output: &Result<Option<T>, E>) -> Option<&T> {
        output.as_ref().ok().and_then(Option::as_ref)
    }
    fn from_cached(value: T) -> Result<Option<T>, E> {
        Ok(Some(value))
    }
    fn succeeded(output: &Result<Option<T>, E>) -> bool {
        output.is_ok()
    }
    fn is_absent(output: &Result<Option<T>, E>) -> bool {
        matches!(output, Ok(None))
    }
    fn absent() -> Option<Result<Option<T>, E>> {
        Some(Ok(None))
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
