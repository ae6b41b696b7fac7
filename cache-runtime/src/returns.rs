//! What a function returns decides what is cached, by type rather than by name.
//!
//! Generated code asks a [`Probe`] of the declared return type for its mode,
//! with method-call syntax: `(&&&Probe::<R>::new()).mode()`. The impl for
//! `Result<Option<T>, E>` takes `&&&Probe`, those for `Result` and `Option`
//! take `&&Probe`, the catch-all takes `&Probe`, and method resolution tries
//! the outer reference first, so a `Result<Option<T>, E>` picks
//! [`ResultOptionMode`], another `Result` — under its own name or an alias such
//! as `type ApiResult<T> = Result<T, ApiError>` — picks [`ResultMode`], an
//! `Option` picks [`OptionMode`], anything else [`PlainMode`]. A return type that is a generic parameter cannot be told
//! apart in the generic body, so it is cached whole (the macro asks for
//! `returns = value` when it can see the parameter).
//!
//! The mode is a value; [`cached_as`] and [`invalidating_as`] take its type and
//! forward to the read path and to [`invalidating`].

use std::future::Future;
use std::marker::PhantomData;

use crate::call::{AsCache, Invalidation, cached, cached_refreshing, invalidating};
use crate::codec::Codec;
use crate::linked::Entry;
use crate::mode::{Mode, OptionMode, PlainMode, ResultMode, ResultOptionMode};
use crate::value::Cacheable;

/// Stands for a return type `R` while its mode is looked up.
pub struct Probe<R: ?Sized>(PhantomData<fn() -> Box<R>>);

impl<R: ?Sized> Probe<R> {
    /// A probe of `R`.
    #[must_use]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<R: ?Sized> Default for Probe<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// The mode of a return type; see the module's documentation for how it is picked.
pub trait Returns {
    /// [`ResultMode`], [`OptionMode`] or [`PlainMode`].
    type Mode;
    /// The mode, as a value whose type the wrappers read.
    fn mode(self) -> Self::Mode;
}

impl<T, E> Returns for &&&Probe<Result<Option<T>, E>> {
    type Mode = ResultOptionMode;
    fn mode(self) -> ResultOptionMode {
        ResultOptionMode
    }
}

impl<T, E> Returns for &&Probe<Result<T, E>> {
    type Mode = ResultMode;
    fn mode(self) -> ResultMode {
        ResultMode
    }
}

impl<T> Returns for &&Probe<Option<T>> {
    type Mode = OptionMode;
    fn mode(self) -> OptionMode {
        OptionMode
    }
}

impl<R: ?Sized> Returns for &Probe<R> {
    type Mode = PlainMode;
    fn mode(self) -> PlainMode {
        PlainMode
    }
}

/// A return type that `returns = result` accepts.
#[diagnostic::on_unimplemented(
    message = "`returns = result` needs a function that returns a `Result`, not `{Self}`",
    label = "this is not a `Result`",
    note = "remove `returns = ...` to let the return type decide, or use `returns = value` to cache every value"
)]
pub trait IsResult {
    /// [`ResultMode`].
    type Mode;
    /// The mode.
    fn mode() -> Self::Mode;
}

impl<T, E> IsResult for Result<T, E> {
    type Mode = ResultMode;
    fn mode() -> ResultMode {
        ResultMode
    }
}

/// A return type that `returns = option` accepts.
#[diagnostic::on_unimplemented(
    message = "`returns = option` needs a function that returns an `Option`, not `{Self}`",
    label = "this is not an `Option`",
    note = "remove `returns = ...` to let the return type decide, or use `returns = value` to cache every value"
)]
pub trait IsOption {
    /// [`OptionMode`].
    type Mode;
    /// The mode.
    fn mode() -> Self::Mode;
}

impl<T> IsOption for Option<T> {
    type Mode = OptionMode;
    fn mode() -> OptionMode {
        OptionMode
    }
}

/// The mode `returns = result` names, once the return type is checked (a
/// projection, so that a wrong return type is reported once, here).
#[must_use]
pub fn result_mode<R: IsResult>() -> R::Mode {
    R::mode()
}

/// The mode `returns = option` names, once the return type is checked.
#[must_use]
pub fn option_mode<R: IsOption>() -> R::Mode {
    R::mode()
}

/// [`cached`](crate::__private::cached) with the mode and the storage given as values.
pub fn cached_as<M, R, K, S, C, F, const TAGS: usize, const VERSIONS: usize>(
    _mode: M,
    _storage: S,
    entry: Entry<R, K, TAGS, VERSIONS>,
    cache: C,
    body: F,
) -> impl Future<Output = R>
where
    M: Mode<R>,
    M::Value: Cacheable<S>,
    K: Codec,
    C: AsCache,
    F: Future<Output = R>,
{
    cached::<M, R, K, S, C, F, TAGS, VERSIONS>(entry, cache, body)
}

/// [`cached_refreshing`] with the mode given as a value.
pub fn cached_refreshing_as<M, R, K, S, C, F, const TAGS: usize, const VERSIONS: usize>(
    _mode: M,
    _storage: S,
    entry: Entry<R, K, TAGS, VERSIONS>,
    cache: C,
    body: F,
) -> impl Future<Output = R>
where
    M: Mode<R> + 'static,
    M::Value: Cacheable<S>,
    S: 'static,
    K: Codec,
    C: AsCache,
    F: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    cached_refreshing::<M, R, K, S, C, F, TAGS, VERSIONS>(entry, cache, body)
}

/// [`invalidating`] with the mode given as a value.
pub fn invalidating_as<M, R, C, F, const KEYS: usize, const TAGS: usize, const VERSIONS: usize>(
    _mode: M,
    cache: C,
    invalidation: Invalidation<KEYS, TAGS, VERSIONS>,
    body: F,
) -> impl Future<Output = R>
where
    M: Mode<R>,
    C: AsCache,
    F: Future<Output = R>,
{
    invalidating::<M, R, C, F, KEYS, TAGS, VERSIONS>(cache, invalidation, body)
}

#[cfg(test)]
// The triple borrow is the dispatch: a `Result` stops at `&&Probe`.
#[allow(clippy::needless_borrow)]
mod tests {
    use super::*;

    type ApiResult<T> = Result<T, String>;
    type Maybe<T> = Option<T>;

    fn mode_name<M>(_: M) -> &'static str {
        let name = std::any::type_name::<M>();
        name.rsplit("::").next().unwrap_or(name)
    }

    #[test]
    fn aliases_pick_the_mode_of_the_type_they_name() {
        assert_eq!(mode_name((&&&Probe::<Result<u8, ()>>::new()).mode()), "ResultMode");
        assert_eq!(mode_name((&&&Probe::<Result<Option<u8>, ()>>::new()).mode()), "ResultOptionMode");
        assert_eq!(mode_name((&&&Probe::<ApiResult<u8>>::new()).mode()), "ResultMode");
        assert_eq!(mode_name((&&&Probe::<Option<u8>>::new()).mode()), "OptionMode");
        assert_eq!(mode_name((&&&Probe::<Maybe<u8>>::new()).mode()), "OptionMode");
        assert_eq!(mode_name((&&&Probe::<Vec<u8>>::new()).mode()), "PlainMode");
        assert_eq!(mode_name((&&&Probe::<()>::new()).mode()), "PlainMode");
    }

    #[test]
    fn a_generic_return_type_is_cached_whole() {
        fn mode_of<T>() -> &'static str {
            mode_name((&&&Probe::<T>::new()).mode())
        }
        assert_eq!(mode_of::<Result<u8, ()>>(), "PlainMode");
    }
}
