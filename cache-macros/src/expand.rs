//! Code generation.
//!
//! ```text
//! #[cached(key = "user:<id>", ttl = 300, tags = ["org:<org>"], skip = [db])]
//! async fn get_user(db: &Db, id: u64, org: u64) -> Result<User, E> { BODY }
//! ```
//! becomes (paths shortened; `P` is `::cache_runtime::__private`)
//! ```text
//! async fn get_user(db: &Db, id: u64, org: u64) -> Result<User, E> {
//!     let entry = ENTRY; // see below
//!     let mode = { use P::Returns as _; (&&&P::Probe::<Result<User, E>>::new()).mode() };
//!     let storage = { use P::Stores as _; (&&P::StorageProbe::of::<Result<User, E>, _>(&mode)).storage() };
//!     P::cached_as::<_, Result<User, E>, P::Postcard, _, _, _, 1, 0>(
//!         mode, storage, entry, P::default_cache(), async move { BODY },
//!     ).await
//! }
//! /// The cache entry of `get_user` for these arguments.
//! #[doc(hidden)]
//! fn __cached_get_user(id: &u64, org: &u64) -> P::Entry<Result<User, E>, P::Postcard, 1, 0> { ENTRY }
//! ```
//! where `ENTRY` is one block, generated once for both: the `static` site
//! (`P::Site::new(concat!(module_path!(), "::get_user"), 300, 0)`), the key
//! rendered into a `KeyWriter` (`write_literal("user:"); write_part(&id)`), the
//! tags and version likewise, and the type names of generic arguments. The
//! companion (`__cached_<name>`, beside the function; `&self` first in a
//! method) is what `#[invalidates(get_user(id, org))]`, `#[cache_put]` and the
//! function-like macros call, so they render exactly the reader's entry.
//! `#[cache_put(get_user(id, org))]` becomes
//! `P::putting(writer_mode, reader_mode, storage, __cached_get_user(&(id), &(org)), cache, BODY)`,
//! the reader's mode and storage picked from the entry's type by the same probes.
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
use crate::options::{
    CachePutOptions, CachedOptions, InvalidatesOptions, MacroItems, Returns, ReturnsKind, Seconds,
};
use crate::signature::{self, Parameter, Signature};
use crate::template::{Segment, Template};
use crate::validate::{self, CachePutPlan, CachedPlan, InvalidatesPlan, KeyPlan, ModePlan};

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
    if signature.borrowed && root != "self" && fields.is_empty() {
        // The same type as `&param` in the function, so an error is reported once.
        return quote_spanned!(span=> &*#ident);
    }
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
fn render_default(parameters: &[Ident], borrowed: bool) -> TokenStream {
    let writer = local("__cache_writer");
    let parts = parameters.iter().map(|parameter| {
        let span = parameter.span();
        if borrowed && *parameter != "self" {
            quote_spanned!(span=> #writer.write_literal(":"); #writer.write_part(&*#parameter);)
        } else {
            quote_spanned!(span=> #writer.write_literal(":"); #writer.write_part(&#parameter);)
        }
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
    let zero = positive
        .then_some("`ttl` is 0, which would never serve a cached value: give a positive number of seconds");
    number(seconds, name, zero)
}

/// [`seconds`] for any number: `zero`, if given, is the error of a constant that is 0.
fn number(seconds: &Seconds, name: &str, zero: Option<&str>) -> (TokenStream, TokenStream) {
    match seconds {
        Seconds::Literal { value, .. } => (TokenStream::new(), quote!(#value)),
        Seconds::Const(expr) => {
            let span = syn::spanned::Spanned::span(expr);
            let item = local(name);
            let check = zero.map(|message| {
                quote_spanned! {span=>
                    const _: () = ::cache_runtime::__private::assert!(#item != 0, #message,);
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

/// Items and `.with_*` calls for one optional number of seconds of the site.
fn site_option(
    seconds_option: Option<&Seconds>,
    name: &str,
    call: impl FnOnce(TokenStream) -> TokenStream,
) -> (TokenStream, TokenStream) {
    match seconds_option {
        Some(value) => {
            let (items, value) = seconds(value, name, false);
            (items, call(value))
        }
        None => (TokenStream::new(), TokenStream::new()),
    }
}

/// The `static` site of a `#[cached]` function, with the items that check its constants.
fn site(function: &ItemFn, signature: &Signature, plan: &CachedPlan) -> TokenStream {
    let name = function.sig.ident.to_string();
    // The companion's copy of a constant is checked by the function's.
    let (ttl_items, ttl) = seconds(&plan.ttl, "__CACHE_TTL", !signature.borrowed);
    let (jitter_items, jitter) = match &plan.jitter {
        Some(jitter) => seconds(jitter, "__CACHE_JITTER", false),
        None => (TokenStream::new(), quote!(0u64)),
    };
    let (negative_items, negative) = site_option(
        plan.negative_ttl.as_ref(),
        "__CACHE_NEGATIVE_TTL",
        |secs| quote!(.with_negative_ttl(#secs)),
    );
    let group = plan.group.as_ref().map(|group| quote!(.in_group(#group)));
    let (stale_items, stale) =
        site_option(plan.stale.as_ref(), "__CACHE_STALE", |secs| quote!(.with_stale(#secs)));
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
    let early_refresh = plan.early_refresh.as_ref().map(|beta| {
        let beta = beta.value;
        quote!(.with_early_refresh(#beta))
    });
    let (timeout_items, timeouts) = if plan.soft_timeout.is_some() || plan.hard_timeout.is_some() {
        // The companion's copy of a constant is checked by the function's.
        let zero = (!signature.borrowed)
            .then_some("a timeout of 0 ms is not a limit: give a positive number of milliseconds");
        let (soft_items, soft) = match &plan.soft_timeout {
            Some(soft) => number(soft, "__CACHE_SOFT_TIMEOUT", zero),
            None => (TokenStream::new(), quote!(0u64)),
        };
        let (hard_items, hard) = match &plan.hard_timeout {
            Some(hard) => number(hard, "__CACHE_HARD_TIMEOUT", zero),
            None => (TokenStream::new(), quote!(0u64)),
        };
        (quote!(#soft_items #hard_items), quote!(.with_timeouts(#soft, #hard)))
    } else {
        (TokenStream::new(), TokenStream::new())
    };
    let (max_loads_items, max_loads) = match &plan.max_loads {
        Some(max_loads) => {
            let zero = (!signature.borrowed)
                .then_some("`max_loads` is 0, which would never run the body: give a positive number");
            let (items, loads) = number(max_loads, "__CACHE_MAX_LOADS", zero);
            (items, quote!(.with_max_loads(#loads)))
        }
        None => (TokenStream::new(), TokenStream::new()),
    };
    let schema = plan.schema.as_ref().map(|schema| {
        let value = schema.base10_parse::<u32>().unwrap_or_default();
        quote_spanned!(schema.span()=> .schema(#value))
    });
    let site = local("__CACHE_SITE");
    // A method's site is named after its impl's type, for `stats()` and metrics.
    let qualify =
        signature.in_impl.then(|| quote!(#site.qualify(::cache_runtime::__private::function_path(&|| {}));));
    quote! {
        #ttl_items
        #jitter_items
        #negative_items
        #stale_items
        #fail_safe_items
        #timeout_items
        #max_loads_items
        static #site: ::cache_runtime::__private::Site = ::cache_runtime::__private::Site::new(
            ::cache_runtime::__private::concat!(::cache_runtime::__private::module_path!(), "::", #name),
            #ttl,
            #jitter,
        )#schema #negative #group #stale #fail_safe #early_refresh #timeouts #max_loads;
        #qualify
    }
}

/// The codec type of a `#[cached]` function.
fn codec_type(plan: &CachedPlan) -> TokenStream {
    match &plan.codec {
        Some(path) => quote!(#path),
        None => quote!(::cache_runtime::__private::Postcard),
    }
}

/// The type of a `#[cached]` function's `Entry`.
fn entry_type(signature: &Signature, plan: &CachedPlan) -> TokenStream {
    let ret = &signature.return_type;
    let codec = codec_type(plan);
    let (tags, versions) = (plan.tags.len(), plan.versions.len());
    quote!(::cache_runtime::__private::Entry<#ret, #codec, #tags, #versions>)
}

/// A block giving the function's `Entry` for its arguments: its site, key,
/// tags and version. The function and its companion both use it, so the
/// companion renders exactly the function's entry.
fn entry_block(function: &ItemFn, signature: &Signature, plan: &CachedPlan) -> TokenStream {
    let site_items = site(function, signature, plan);
    let scope = if signature.in_impl { Scope::ImplType } else { Scope::Unscoped };
    let key = match &plan.key {
        KeyPlan::Template(template) => render(template, signature, scope),
        KeyPlan::Default(parameters) => render_default(parameters, signature.borrowed),
    };
    // Tags and versions group entries across functions: never scoped.
    let tags = plan.tags.iter().map(|tag| render(tag, signature, Scope::Unscoped));
    let versions = plan.versions.iter().map(|version| render(version, signature, Scope::Unscoped));
    let type_parameters = &signature.type_parameters;
    let entry = entry_type(signature, plan);
    let site = local("__CACHE_SITE");
    quote!({
        #site_items
        <#entry>::new(
            &#site,
            #key,
            ::cache_runtime::__private::Dependencies { tags: [#(#tags),*], versions: [#(#versions),*] },
            ::cache_runtime::__private::vec![#(::cache_runtime::__private::type_name::<#type_parameters>()),*],
        )
    })
}

/// The name of a `#[cached]` function's companion, spanned at the function's
/// name (where a caller naming an unknown function is told so).
fn companion_name(name: &Ident) -> Ident {
    Ident::new(&format!("__cached_{name}"), name.span())
}

/// Whether the function gets a companion. A method in a trait impl cannot
/// (the trait does not declare it) and an attribute cannot see the impl, so a
/// private method gets one only with `linked = true`; a free function or a
/// `pub` method always does (unless `linked = false`).
fn has_companion(function: &ItemFn, signature: &Signature, plan: &CachedPlan) -> bool {
    plan.linked.unwrap_or(!signature.in_impl || !matches!(function.vis, syn::Visibility::Inherited))
}

/// The companion: renders the function's entry for the arguments it depends
/// on (taken by reference; `&self` first in a method), for
/// `#[invalidates(get_user(id))]`, `#[cache_put]`, `invalidate!`, `put!` and `get!`.
fn companion(function: &ItemFn, signature: &Signature, plan: &CachedPlan) -> TokenStream {
    let sig = &function.sig;
    let vis = &function.vis;
    let name = companion_name(&sig.ident);
    let receiver = signature.parameters.iter().any(Parameter::is_receiver).then(|| quote!(&self,));
    let parameters = plan.entry_parameters.iter().filter_map(|ident| {
        sig.inputs.iter().find_map(|input| match input {
            syn::FnArg::Typed(typed) if matches!(&*typed.pat, syn::Pat::Ident(pat) if pat.ident == *ident) => {
                let ty = &typed.ty;
                Some(quote!(#ident: &#ty))
            }
            _ => None,
        })
    });
    let (generics, _, where_clause) = sig.generics.split_for_impl();
    let entry = entry_type(signature, plan);
    let borrowed = Signature { borrowed: true, ..signature.clone() };
    let block = entry_block(function, &borrowed, plan);
    let doc = format!("The cache entry of `{}` for these arguments.", sig.ident);
    quote! {
        #[doc = #doc]
        #[doc(hidden)]
        #[allow(clippy::trivially_copy_pass_by_ref, clippy::ref_option, clippy::unused_self)]
        #vis fn #name #generics (#receiver #(#parameters),*) -> #entry #where_clause #block
    }
}

/// A call of the companion of the `#[cached]` function that `entry` calls:
/// `get_user(id)` becomes `__cached_get_user(&(id))`, `self.count(org)`
/// becomes `self.__cached_count(&(org))`.
fn linked_call(entry: &Expr) -> TokenStream {
    let reference = |argument: &Expr| {
        let span = syn::spanned::Spanned::span(argument);
        quote_spanned!(span=> &(#argument))
    };
    match entry {
        Expr::Call(call) => {
            let Expr::Path(path) = &*call.func else {
                return quote!(#entry);
            };
            let mut path = path.clone();
            if let Some(last) = path.path.segments.last_mut() {
                last.ident = companion_name(&last.ident);
            }
            let arguments = call.args.iter().map(reference);
            quote!(#path(#(#arguments),*))
        }
        Expr::MethodCall(call) => {
            let receiver = &call.receiver;
            let method = companion_name(&call.method);
            let turbofish = &call.turbofish;
            let arguments = call.args.iter().map(reference);
            quote!(#receiver.#method #turbofish(#(#arguments),*))
        }
        _ => quote!(#entry),
    }
}

fn generate_cached(function: &ItemFn, signature: &Signature, plan: &CachedPlan) -> TokenStream {
    let ItemFn { attrs, vis, sig, .. } = function;
    // Spanned at the return type, like the whole call below.
    let entry_point = {
        let span = syn::spanned::Spanned::span(&signature.return_type);
        // A body that may run after the call returned.
        if plan.stale.is_some() || plan.early_refresh.is_some() || plan.soft_timeout.is_some() {
            quote_spanned!(span=> ::cache_runtime::__private::cached_refreshing_as)
        } else {
            quote_spanned!(span=> ::cache_runtime::__private::cached_as)
        }
    };
    let (tag_count, version_count) = (plan.tags.len(), plan.versions.len());
    let ret = &signature.return_type;
    let mode = mode_value(&plan.mode, ret);
    let handle = cache_handle(plan.cache.as_ref());
    let codec = codec_type(plan);
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
    let (entry_local, mode_local, storage_local) =
        (local("__cache_entry"), local("__cache_mode"), local("__cache_storage"));
    let entry = entry_block(function, signature, plan);
    let call_span = syn::spanned::Spanned::span(ret);
    // Spanned at the return type, so a value type that cannot be cached is reported there.
    let call = quote_spanned! {call_span=>
        #entry_point::<_, #ret, #codec, _, _, _, #tag_count, #version_count>(
            #mode_local,
            #storage_local,
            #entry_local,
            #handle,
            #body,
        )
        .await
    };
    let companion = has_companion(function, signature, plan).then(|| companion(function, signature, plan));
    quote! {
        #(#attrs)*
        #vis #sig {
            let #entry_local = #entry;
            let #mode_local = #mode;
            let #storage_local = {
                use ::cache_runtime::__private::Stores as _;
                (&&::cache_runtime::__private::StorageProbe::of::<#ret, _>(&#mode_local)).storage()
            };
            #negative_check
            #call
        }
        #companion
    }
}

fn generate_invalidates(function: &ItemFn, signature: &Signature, plan: &InvalidatesPlan) -> TokenStream {
    let ItemFn { attrs, vis, sig, .. } = function;
    // In a method, each key is removed as written (a free function's entry) and
    // scoped to `Self` (an entry of a method of the same impl).
    let scopes: &[Scope] =
        if signature.in_impl { &[Scope::Unscoped, Scope::ImplType] } else { &[Scope::Unscoped] };
    let mut keys: Vec<TokenStream> = scopes
        .iter()
        .flat_map(|&scope| plan.keys.iter().map(move |key| render(key, signature, scope)))
        .collect();
    keys.extend(plan.entries.iter().map(|entry| {
        let call = linked_call(entry);
        quote!(#call.into_key())
    }));
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

pub(crate) fn cache_put(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = match parse_function(&item, "cache_put") {
        Ok(function) => function,
        Err(tokens) => return tokens,
    };
    let mut errors = Errors::default();
    let options = CachePutOptions::parse(attr, &mut errors);
    let signature = signature::analyze(&function, "cache_put", false, &mut errors);
    match validate::cache_put(options, &signature, &mut errors) {
        Some(plan) if errors.is_empty() => generate_cache_put(&function, &signature, &plan),
        _ => with_errors(&function, errors),
    }
}

/// The mode and storage of the reader whose entry is in `entry_local`.
fn reader_mode_and_storage(entry_local: &Ident, mode_local: &Ident, storage_local: &Ident) -> TokenStream {
    quote! {
        let #mode_local = {
            use ::cache_runtime::__private::Returns as _;
            (&&&#entry_local.probe()).mode()
        };
        let #storage_local = {
            use ::cache_runtime::__private::Stores as _;
            (&&#entry_local.storage_probe(&#mode_local)).storage()
        };
    }
}

fn generate_cache_put(function: &ItemFn, signature: &Signature, plan: &CachePutPlan) -> TokenStream {
    let ItemFn { attrs, vis, sig, .. } = function;
    let (entry_local, reader_local, storage_local, writer_local) =
        (local("__cache_entry"), local("__cache_reader"), local("__cache_storage"), local("__cache_mode"));
    let call = linked_call(&plan.entry);
    let reader = reader_mode_and_storage(&entry_local, &reader_local, &storage_local);
    let writer = mode_value(&plan.mode, &signature.return_type);
    let handle = cache_handle(plan.cache.as_ref());
    let body = body(function);
    let ret = &signature.return_type;
    let body = if signature.return_type_nameable {
        quote!(::cache_runtime::__private::returning::<#ret, _>(#body))
    } else {
        body
    };
    // Spanned at the entry: a writer whose value is not the reader's is reported there.
    let span = syn::spanned::Spanned::span(&plan.entry);
    let put = quote_spanned! {span=>
        ::cache_runtime::__private::putting(
            #writer_local,
            #reader_local,
            #storage_local,
            #entry_local,
            #handle,
            ::cache_runtime::__private::value_for,
            #body,
        ).await
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            let #entry_local = #call;
            #reader
            let #writer_local = #writer;
            #put
        }
    }
}

/// `invalidate!(get_user(id), self.count(org), cache = ...)`: a future that
/// deletes the entries.
pub(crate) fn invalidate_macro(input: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let items = MacroItems::parse(input, "invalidate!", &mut errors);
    if items.exprs.is_empty() && errors.is_empty() {
        errors.at_span(
            Span::call_site(),
            "`invalidate!` needs the entries to delete, named by their reader: `invalidate!(get_user(id))`",
        );
    }
    items.exprs.iter().for_each(|entry| validate::check_entry(entry, &mut errors));
    if !errors.is_empty() {
        return errors.into_compile_errors();
    }
    let keys = items.exprs.iter().map(|entry| {
        let call = linked_call(entry);
        quote!(#call.into_key())
    });
    let handle = cache_handle(items.cache.as_ref());
    quote!(::cache_runtime::__private::invalidate_keys(#handle, [#(#keys),*]))
}

/// `put!(get_user(id), value, cache = ...)` and `get!(get_user(id), cache = ...)`:
/// a future that stores `value` into the entry, or reads it.
pub(crate) fn entry_macro(input: TokenStream, put: bool) -> TokenStream {
    let name = if put { "put!" } else { "get!" };
    let mut errors = Errors::default();
    let items = MacroItems::parse(input, name, &mut errors);
    let expected = if put { 2 } else { 1 };
    if items.exprs.len() != expected && errors.is_empty() {
        let usage = if put { "`put!(get_user(id), value)`" } else { "`get!(get_user(id))`" };
        errors
            .at_span(Span::call_site(), format!("expected {usage}, with `cache = ...` optionally after it"));
    }
    if let Some(entry) = items.exprs.first() {
        validate::check_entry(entry, &mut errors);
    }
    if !errors.is_empty() {
        return errors.into_compile_errors();
    }
    let (entry_local, reader_local, storage_local) =
        (local("__cache_entry"), local("__cache_reader"), local("__cache_storage"));
    let call = linked_call(&items.exprs[0]);
    let reader = reader_mode_and_storage(&entry_local, &reader_local, &storage_local);
    let handle = cache_handle(items.cache.as_ref());
    let operation = if put {
        let value = &items.exprs[1];
        let span = syn::spanned::Spanned::span(value);
        quote_spanned!(span=> ::cache_runtime::__private::put_value(#reader_local, #storage_local, #entry_local, #handle, #value))
    } else {
        quote!(::cache_runtime::__private::get_value(#reader_local, #storage_local, #entry_local, #handle))
    };
    quote!({
        let #entry_local = #call;
        #reader
        #operation
    })
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
    fn freshness_expansion_matches_the_snapshot() {
        let expanded = super::cached(
            quote!(
                key = "team:<id>",
                ttl = 60,
                stale = 30,
                early_refresh,
                fail_safe = 3600,
                soft_timeout = 150,
                hard_timeout = HARD_MS,
                max_loads = 8,
                skip = [db]
            ),
            quote! {
                pub async fn team(db: Arc<Db>, id: u64) -> Result<Team, DbError> {
                    db.team(id).await
                }
            },
        );
        check_snapshot("cached_freshness.rs", &pretty(&expanded));
    }

    #[test]
    fn invalidates_expansion_matches_the_snapshot() {
        let expanded = super::invalidates(
            quote!(
                get_user(id, org_id),
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

    #[test]
    fn cache_put_expansion_matches_the_snapshot() {
        let expanded = super::cache_put(
            quote!(users::get_user(id, org_id), cache = db.cache),
            quote! {
                pub async fn rename(db: &Db, id: u64, org_id: u64, name: String) -> Result<User, DbError> {
                    db.rename(id, name).await
                }
            },
        );
        check_snapshot("cache_put_rename.rs", &pretty(&expanded));
    }
}
