//! Attribute macros `#[cached]`, `#[invalidates]` and `#[cache_put]`, and the
//! function-like `invalidate!`, `put!` and `get!`.
//!
//! Use them through the `cache-runtime` crate, which re-exports them and
//! documents them; the code they generate calls only `::cache_runtime::__private`.
//!
//! Each macro runs in three steps, one module each: `options` parses the
//! attribute, `validate` checks it against the function's signature
//! (collecting every error), and `expand` generates the wrapper. On any
//! error the function is emitted unchanged beside the errors, so the IDE keeps
//! seeing it.

mod diagnostics;
mod expand;
mod options;
mod signature;
mod template;
mod validate;

use proc_macro::TokenStream;

/// The attribute behind `cache_runtime::cached`, documented there.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached(attr.into(), item.into()).into()
}

/// The attribute behind `cache_runtime::invalidates`, documented there.
#[proc_macro_attribute]
pub fn invalidates(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::invalidates(attr.into(), item.into()).into()
}

/// The attribute behind `cache_runtime::cache_put`, documented there.
#[proc_macro_attribute]
pub fn cache_put(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::cache_put(attr.into(), item.into()).into()
}

/// The macro behind `cache_runtime::invalidate!`, documented there.
#[proc_macro]
pub fn invalidate(input: TokenStream) -> TokenStream {
    expand::invalidate_macro(input.into()).into()
}

/// The macro behind `cache_runtime::put!`, documented there.
#[proc_macro]
pub fn put(input: TokenStream) -> TokenStream {
    expand::entry_macro(input.into(), true).into()
}

/// The macro behind `cache_runtime::get!`, documented there.
#[proc_macro]
pub fn get(input: TokenStream) -> TokenStream {
    expand::entry_macro(input.into(), false).into()
}
