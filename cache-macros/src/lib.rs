//! Attribute macros `#[cached]` and `#[invalidates]`.
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
