//! Code generation.
//!
//! ```text
//! #[cached(key = "user:<id>", ttl = 300, tags = ["org:<org>"], skip = [db])]
//! async fn get_user(db: &Db, id: u64, org: u64) -> Result<User, E> { BODY }
//! ```
//! becomes (paths shortened; `P` is `::cache_runtime::__private`)
//! ```text
//! async fn get_user(db: &Db, id: u64, org: u64) -> Result<User, E> {
//!     static __CACHE_SITE: P::Site = P::Site::new(concat!(module_path!(), "::get_user"), 300, 0);
//!     let key = { let mut w = P::KeyWriter::new(); w.write_literal("user:"); w.write_part(&id); w };
//!     let dependencies = P::Dependencies { tags: [/* "org:" + org */], versions: [] };
//!     let mode = { use P::Returns as _; (&&&P::Probe::<Result<User, E>>::new()).mode() };
//!     let storage = { use P::Stores as _; (&&P::StorageProbe::of::<Result<User, E>, _>(&mode)).storage() };
//!     P::cached_as::<_, Result<User, E>, P::Postcard, _, _, _, 1, 0>(
//!         mode, storage, &__CACHE_SITE, P::default_cache(), key, dependencies, &[],
//!         async move { let ret: Result<User, E> = { BODY }; ret },
//!     ).await
//! }
//! ```
//! The mode (`ResultMode`: cache `Ok` only) comes from the return type when the
//! code is type-checked, so an alias of `Result` is a `Result`; `returns = ...`
//! names it instead. The storage comes from the cached value's type the same
//! way: `Shared` for an `Arc<T>` (stored as `T`, a hit clones the `Arc`),
//! `Cloned` otherwise. `schema = N` adds `.schema(N)` to the site.
//! In a method, the key starts with `w.write_impl_scope(P::type_name::<Self>())`
//! so two impls never share an entry; a default key starts with
//! `w.write_function_path(P::function_path(&|| {}))`, the type name of a
//! closure in the body, which names the impl's type and every generic argument.
//! `#[invalidates]` renders its keys, tags and versions the same way (in a
//! method, each key both as written and scoped to `Self`), then calls
//! `P::invalidating_as`, which runs the body and invalidates when it succeeded.
//! Locals use mixed-site hygiene, so parameters named like them are untouched.
//! The full expansions of typical uses are committed in `snapshots/` and
//! checked by the tests below (`UPDATE_SNAPSHOTS=1` rewrites them).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{Expr, Ident, ItemFn};

use crate::diagnostics::Errors;
use crate::options::{CachedOptions, InvalidatesOptions, Returns, ReturnsKind, Seconds};
use crate::signature::{self, Signature};
use crate::template::{Segment, Template};
use crate::validate::{self, CachedPlan, InvalidatesPlan, KeyPlan, ModePlan};

fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// Parses the item as a function, or reports that the macro needs one.
fn parse_function(item: &TokenStream, macro_name: &str) -> Result<ItemFn, TokenStream> {
    syn::parse2::<ItemFn>(item.clone()).map_err(|_| {
        let error = syn::Error::new(
            Span::call_site(),
            format!("`#[{macro_name}]` goes on an `async fn` (a free function or a method)"),
        )
        .into_compile_error();
        quote!(#error #item)
    })
}

/// The original function plus every error: the IDE keeps seeing the function.
fn with_errors(function: &ItemFn, errors: Errors) -> TokenStream {
    let errors = errors.into_compile_errors();
    quote!(#errors #function)
}

pub(crate) fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = match parse_function(&item, "cached") {
        Ok(function) => function,
        Err(tokens) => return tokens,
    };
    let mut errors = Errors::default();
    let options = CachedOptions::parse(attr, &mut errors);
    let signature = signature::analyze(&function, "cached", true, &mut errors);
    match validate::cached(options, &signature, &function.sig.ident, &mut errors) {
        Some(plan) if errors.is_empty() => generate_cached(&function, &signature, &plan),
        _ => with_errors(&function, errors),
    }
}

pub(crate) fn invalidates(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = match parse_function(&item, "invalidates") {
        Ok(function) => function,
        Err(tokens) => return tokens,
    };
    let mut errors = Errors::default();
    let options = InvalidatesOptions::parse(attr, &mut errors);
    let signature = signature::analyze(&function, "invalidates", false, &mut errors);
    match validate::invalidates(options, &signature, &function.sig.ident, &mut errors) {
        Some(plan) if errors.is_empty() => generate_invalidates(&function, &signature, &plan),
        _ => with_errors(&function, errors),
    }
}

/// `&param.field.field`, spanned at the parameter so a type that cannot be a key
/// part is reported at its declaration.
fn placeholder_value(
    root: &str,
    fields: &[String],
    signature: &Signature,
    literal_span: Span,
) -> TokenStream {
    let ident = signature.parameter(root).map_or_else(|| format_ident!("{}", root), |p| p.ident.clone());
    let span = if fields.is_empty() { ident.span() } else { literal_span };
    let fields = fields.iter().map(|field| match field.parse::<u32>() {
        Ok(index) => {
            let index = syn::Index { index, span };
            quote!(.#index)
        }
        Err(_) => {
            let field = Ident::new(field, span);
            quote!(.#field)
        }
    });
    quote_spanned!(span=> &#ident #(#fields)*)
}

/// Whose key it is: a method's keys start with its impl's type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// As written: a free function's, or a raw key a method invalidates as given.
    Unscoped,
    /// After `Self`'s type name, so two impls never share an entry.
    ImplType,
}

/// A block that renders `template` into a fresh `KeyWriter`.
fn render(template: &Template, signature: &Signature, scope: Scope) -> TokenStream {
    let writer = local("__cache_writer");
    let span = template.literal.span();
    let scope = (scope == Scope::ImplType)
        .then(|| quote!(#writer.write_impl_scope(::cache_runtime::__private::type_name::<Self>());));
    let steps = template.segments.iter().map(|segment| match segment {
        Segment::Literal(text) => quote!(#writer.write_literal(#text);),
        Segment::Placeholder(placeholder) => {
            let value = placeholder_value(&placeholder.root, &placeholder.fields, signature, span);
            quote_spanned!(span=> #writer.write_part(#value);)
        }
    });
    quote!({
        let mut #writer = ::cache_runtime::__private::KeyWriter::new();
        #scope
        #(#steps)*
        #writer
    })
}

/// The default key: the function's path, then `:` and each parameter not
/// skipped. The path comes from the type name of a closure in the body, so it
/// names the impl's type and every generic argument, even in a trait's default
/// body or an associated function without `self`.
fn render_default(parameters: &[Ident]) -> TokenStream {
    let writer = local("__cache_writer");
    let parts = parameters.iter().map(|parameter| {
        let span = parameter.span();
        quote_spanned!(span=> #writer.write_literal(":"); #writer.write_part(&#parameter);)
    });
    quote!({
        let mut #writer = ::cache_runtime::__private::KeyWriter::new();
        #writer.write_function_path(::cache_runtime::__private::function_path(&|| {}));
        #(#parts)*
        #writer
    })
}

/// An expression whose type is the mode: `ResultMode`, `OptionMode` or `PlainMode`.
fn mode_value(mode: &ModePlan, return_type: &syn::Type) -> TokenStream {
    match mode {
        ModePlan::ByType => quote!({
            use ::cache_runtime::__private::Returns as _;
            (&&&::cache_runtime::__private::Probe::<#return_type>::new()).mode()
        }),
        ModePlan::Explicit(Returns { kind: ReturnsKind::Result, value }) => {
            quote_spanned!(value.span()=> ::cache_runtime::__private::result_mode::<#return_type>())
        }
        ModePlan::Explicit(Returns { kind: ReturnsKind::Option, value }) => {
            quote_spanned!(value.span()=> ::cache_runtime::__private::option_mode::<#return_type>())
        }
        ModePlan::Explicit(Returns { kind: ReturnsKind::Value, .. }) | ModePlan::Value => {
            quote!(::cache_runtime::__private::PlainMode)
        }
    }
}

fn cache_handle(cache: Option<&Expr>) -> TokenStream {
    match cache {
        None => quote!(::cache_runtime::__private::default_cache()),
        Some(expr) => {
            let span = syn::spanned::Spanned::span(expr);
            quote_spanned!(span=> ::cache_runtime::__private::cache_of(&(#expr)))
        }
    }
}

/// The user's body as an `async move` block. Its output type comes from the
/// runtime function's `F: Future<Output = R>` bound with `R` spelled out, so
/// `?` and `return` inside it infer as they did in the function, and no lint
/// is silenced around the user's code.
fn body(function: &ItemFn) -> TokenStream {
    let block = &function.block;
    quote!(async move #block)
}

/// A number of seconds for `Site::new`, and the items that check a constant
/// one: its type is pinned to `u64`, and a `ttl` must not be zero, both
/// reported at the user's expression.
fn seconds(seconds: &Seconds, name: &str, positive: bool) -> (TokenStream, TokenStream) {
    match seconds {
        Seconds::Literal { value, .. } => (TokenStream::new(), quote!(#value)),
        Seconds::Const(expr) => {
            let span = syn::spanned::Spanned::span(expr);
            let item = local(name);
            let check = positive.then(|| {
                quote_spanned! {span=>
                    const _: () = ::cache_runtime::__private::assert!(
                        #item != 0,
                        "`ttl` is 0, which would never serve a cached value: give a positive number of seconds",
                    );
                }
            });
            let items = quote_spanned! {span=>
                const #item: ::cache_runtime::__private::u64 = #expr;
                #check
            };
            (items, quote!(#item))
        }
        Seconds::Invalid => (TokenStream::new(), quote!(0u64)),
    }
}

fn generate_cached(function: &ItemFn, signature: &Signature, plan: &CachedPlan) -> TokenStream {
    let ItemFn { attrs, vis, sig, .. } = function;
    let name = sig.ident.to_string();
    let (ttl_items, ttl) = seconds(&plan.ttl, "__CACHE_TTL", true);
    let (jitter_items, jitter) = match &plan.jitter {
        Some(jitter) => seconds(jitter, "__CACHE_JITTER", false),
        None => (TokenStream::new(), quote!(0u64)),
    };
    let (negative_items, negative) = match &plan.negative_ttl {
        Some(negative_ttl) => {
            let (items, seconds) = seconds(negative_ttl, "__CACHE_NEGATIVE_TTL", false);
            (items, quote!(.with_negative_ttl(#seconds)))
        }
        None => (TokenStream::new(), TokenStream::new()),
    };
    let group = plan.group.as_ref().map(|group| quote!(.in_group(#group)));
    let (stale_items, stale) = match &plan.stale {
        Some(stale) => {
            let (items, seconds) = seconds(stale, "__CACHE_STALE", false);
            (items, quote!(.with_stale(#seconds)))
        }
        None => (TokenStream::new(), TokenStream::new()),
    };
    let (fail_safe_items, fail_safe) = match &plan.fail_safe {
        Some(fail_safe) => {
            let (throttle_items, throttle) = match &plan.fail_safe_throttle {
                Some(throttle) => seconds(throttle, "__CACHE_FAIL_SAFE_THROTTLE", false),
                None => (TokenStream::new(), quote!(5u64)),
            };
            let (items, fail_safe) = seconds(fail_safe, "__CACHE_FAIL_SAFE", false);
            (quote!(#items #throttle_items), quote!(.with_fail_safe(#fail_safe, #throttle)))
        }
        None => (TokenStream::new(), TokenStream::new()),
    };
    // Spanned at the return type, like the whole call below.
    let entry_point = {
        let span = syn::spanned::Spanned::span(&signature.return_type);
        if plan.stale.is_some() {
            quote_spanned!(span=> ::cache_runtime::__private::cached_refreshing_as)
        } else {
            quote_spanned!(span=> ::cache_runtime::__private::cached_as)
        }
    };
    let scope = if signature.in_impl { Scope::ImplType } else { Scope::Unscoped };
    // A method's site is named after its impl's type, for `stats()` and metrics.
    let qualify = signature.in_impl.then(|| {
        let site = local("__CACHE_SITE");
        quote!(#site.qualify(::cache_runtime::__private::function_path(&|| {}));)
    });
    let key = match &plan.key {
        KeyPlan::Template(template) => render(template, signature, scope),
        KeyPlan::Default(parameters) => render_default(parameters),
    };
    // Tags and versions group entries across functions: never scoped.
    let tags = plan.tags.iter().map(|tag| render(tag, signature, Scope::Unscoped));
    let versions = plan.versions.iter().map(|version| render(version, signature, Scope::Unscoped));
    let (tag_count, version_count) = (plan.tags.len(), plan.versions.len());
    let type_parameters = &signature.type_parameters;
    let ret = &signature.return_type;
    let mode = mode_value(&plan.mode, ret);
    let handle = cache_handle(plan.cache.as_ref());
    let codec = match &plan.codec {
        Some(path) => quote!(#path),
        None => quote!(::cache_runtime::__private::Postcard),
    };
    let body = body(function);
    // Spanned at the option's value: that is what does not fit the return type.
    let negative_check = plan.negative_ttl.as_ref().map(|negative_ttl| {
        let span = match negative_ttl {
            Seconds::Literal { literal, .. } => literal.span(),
            Seconds::Const(expr) => syn::spanned::Spanned::span(expr),
            Seconds::Invalid => Span::call_site(),
        };
        quote_spanned!(span=> ::cache_runtime::__private::negative_caching::<#ret>();)
    });
    let (site, key_local, dependencies, mode_local, storage_local) = (
        local("__CACHE_SITE"),
        local("__cache_key"),
        local("__cache_dependencies"),
        local("__cache_mode"),
        local("__cache_storage"),
    );
    let schema = plan.schema.as_ref().map(|schema| {
        let value = schema.base10_parse::<u32>().unwrap_or_default();
        quote_spanned!(schema.span()=> .schema(#value))
    });
    let call_span = syn::spanned::Spanned::span(ret);
    // Spanned at the return type, so a value type that cannot be cached is reported there.
    let call = quote_spanned! {call_span=>
        #entry_point::<_, #ret, #codec, _, _, _, #tag_count, #version_count>(
            #mode_local,
            #storage_local,
            &#site,
            #handle,
            #key_local,
            #dependencies,
            &[#(::cache_runtime::__private::type_name::<#type_parameters>()),*],
            #body,
        )
        .await
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #ttl_items
            #jitter_items
            #negative_items
            #stale_items
            #fail_safe_items
            static #site: ::cache_runtime::__private::Site = ::cache_runtime::__private::Site::new(
                ::cache_runtime::__private::concat!(::cache_runtime::__private::module_path!(), "::", #name),
                #ttl,
                #jitter,
            )#schema #negative #group #stale #fail_safe;
            #qualify
            let #key_local = #key;
            let #dependencies = ::cache_runtime::__private::Dependencies {
                tags: [#(#tags),*],
                versions: [#(#versions),*],
            };
            let #mode_local = #mode;
            let #storage_local = {
                use ::cache_runtime::__private::Stores as _;
                (&&::cache_runtime::__private::StorageProbe::of::<#ret, _>(&#mode_local)).storage()
            };
            #negative_check
            #call
        }
    }
}

fn generate_invalidates(function: &ItemFn, signature: &Signature, plan: &InvalidatesPlan) -> TokenStream {
    let ItemFn { attrs, vis, sig, .. } = function;
    // In a method, each key is removed as written (a free function's entry) and
    // scoped to `Self` (an entry of a method of the same impl).
    let scopes: &[Scope] =
        if signature.in_impl { &[Scope::Unscoped, Scope::ImplType] } else { &[Scope::Unscoped] };
    let keys: Vec<TokenStream> = scopes
        .iter()
        .flat_map(|&scope| plan.keys.iter().map(move |key| render(key, signature, scope)))
        .collect();
    let tags = plan.tags.iter().map(|tag| render(tag, signature, Scope::Unscoped));
    let versions = plan.versions.iter().map(|version| render(version, signature, Scope::Unscoped));
    let counts = [keys.len(), plan.tags.len(), plan.versions.len()];
    let mode = mode_value(&plan.mode, &signature.return_type);
    let handle = cache_handle(plan.cache.as_ref());
    let body = body(function);
    let (invalidation, mode_local) = (local("__cache_invalidation"), local("__cache_mode"));
    quote! {
        #(#attrs)*
        #vis #sig {
            let #invalidation = ::cache_runtime::__private::Invalidation {
                keys: [#(#keys),*],
                tags: [#(#tags),*],
                versions: [#(#versions),*],
            };
            let #mode_local = #mode;
            ::cache_runtime::__private::invalidating_as::<_, _, _, _, #(#counts),*>(
                #mode_local,
                #handle,
                #invalidation,
                #body,
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    /// Formats generated tokens as Rust source.
    fn pretty(tokens: &proc_macro2::TokenStream) -> String {
        let file: syn2::File = syn2::parse2(tokens.clone()).expect("generated code parses");
        prettyplease::unparse(&file)
    }

    /// Compares with the committed snapshot; `UPDATE_SNAPSHOTS=1` rewrites it.
    fn check_snapshot(name: &str, expanded: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots").join(name);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, expanded).expect("write snapshot");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed, expanded,
            "expansion changed: review it, then UPDATE_SNAPSHOTS=1 cargo test -p cache-macros"
        );
    }

    #[test]
    fn cached_expansion_matches_the_snapshot() {
        let expanded = super::cached(
            quote!(key = "user:<id>", ttl = 300, jitter = 45, tags = ["org:<org_id>"], skip = [db]),
            quote! {
                /// Reads a user.
                pub async fn get_user(db: &Db, id: u64, org_id: u64) -> Result<User, DbError> {
                    db.user(id).await
                }
            },
        );
        check_snapshot("cached_get_user.rs", &pretty(&expanded));
    }

    #[test]
    fn method_expansions_match_the_snapshot() {
        let explicit = super::cached(
            quote!(key = "user:<self.tenant>:<id>", ttl = 60, schema = 2),
            quote! {
                async fn user(&self, id: u64) -> Option<User> {
                    self.db.user(id).await
                }
            },
        );
        let default = super::cached(
            quote!(ttl = COUNT_TTL, jitter = COUNT_TTL / 10, skip = [self]),
            quote! {
                async fn count(&self, org_id: u64) -> u64 {
                    self.db.count(org_id).await
                }
            },
        );
        let write = super::invalidates(
            quote!(keys = ["user:<self.tenant>:<id>"], tags = ["org:<org_id>"], skip = [name]),
            quote! {
                async fn rename(&self, id: u64, org_id: u64, name: String) -> Result<(), DbError> {
                    self.db.rename(id, name).await
                }
            },
        );
        let expanded = quote!(impl Users { #explicit #default #write });
        check_snapshot("methods_users.rs", &pretty(&expanded));
    }

    #[test]
    fn invalidates_expansion_matches_the_snapshot() {
        let expanded = super::invalidates(
            quote!(
                keys = ["user:<id>"],
                tags = ["org:<org_id>"],
                versions = ["team:<team_id>"],
                skip = [db, input]
            ),
            quote! {
                pub async fn update_user(db: &Db, id: u64, org_id: u64, team_id: u64, input: UpdateUser) -> Result<User, DbError> {
                    db.update(id, input).await
                }
            },
        );
        check_snapshot("invalidates_update_user.rs", &pretty(&expanded));
    }
}
