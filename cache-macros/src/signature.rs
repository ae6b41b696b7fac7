//! What the macros need to know about the annotated function's signature.

use syn::visit::Visit;
use syn::{FnArg, Ident, ItemFn, Pat, ReceiverKind, ReturnType, Type};

use crate::diagnostics::Errors;

/// A named parameter.
pub(crate) struct Parameter {
    pub(crate) ident: Ident,
}

/// How the return value maps to what is cached (see `cache_runtime::__private::Mode`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnMode {
    Result,
    Option,
    Plain,
}

pub(crate) struct Signature {
    pub(crate) parameters: Vec<Parameter>,
    pub(crate) has_receiver: bool,
    /// The declared return type, `()` when there is none.
    pub(crate) return_type: Type,
    pub(crate) mode: ReturnMode,
    /// Whether `let __ret: <return type>` is valid (not for `impl Trait`).
    pub(crate) return_type_nameable: bool,
    pub(crate) type_parameters: Vec<Ident>,
}

impl Signature {
    pub(crate) fn parameter_names(&self) -> impl Iterator<Item = String> + '_ {
        self.parameters.iter().map(|p| p.ident.to_string())
    }

    pub(crate) fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.ident == name)
    }
}

/// Finds what a cached return type may not contain: borrows and `impl Trait`.
#[derive(Default)]
struct BorrowFinder {
    problem: Option<(proc_macro2::TokenStream, &'static str)>,
}

impl<'ast> Visit<'ast> for BorrowFinder {
    fn visit_type_reference(&mut self, reference: &'ast syn::TypeReference) {
        self.problem.get_or_insert((
            quote::ToTokens::to_token_stream(reference),
            "a cached function must return an owned value, not a borrow: the value outlives the call in the cache; return an owned type (`String`, `Vec<T>`, `Arc<T>`)",
        ));
    }

    fn visit_type_impl_trait(&mut self, impl_trait: &'ast syn::TypeImplTrait) {
        self.problem.get_or_insert((
            quote::ToTokens::to_token_stream(impl_trait),
            "a cached function cannot return `impl Trait`: the cache must name the type to store it; return a concrete type",
        ));
    }

    fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
        if lifetime.ident != "static" {
            self.problem.get_or_insert((
                quote::ToTokens::to_token_stream(lifetime),
                "a cached function must return an owned value: a lifetime in the return type means it borrows; return an owned type",
            ));
        }
    }
}

fn return_mode(ty: &Type) -> ReturnMode {
    let Type::Path(path) = ty else {
        return ReturnMode::Plain;
    };
    match path.path.segments.last() {
        Some(last) if last.ident == "Result" => ReturnMode::Result,
        Some(last) if last.ident == "Option" => ReturnMode::Option,
        _ => ReturnMode::Plain,
    }
}

/// Reads the signature; `for_cache` adds the checks that only a cached read needs.
pub(crate) fn analyze(
    function: &ItemFn,
    macro_name: &str,
    for_cache: bool,
    errors: &mut Errors,
) -> Signature {
    let sig = &function.sig;
    if sig.asyncness.is_none() {
        errors
            .at(sig.fn_token, format!("`#[{macro_name}]` works on `async fn` only: add `async` before `fn`"));
    }
    let mut parameters = Vec::new();
    let mut has_receiver = false;
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                has_receiver = true;
                if let ReceiverKind::Reference(_, _, Some(mutability)) = &receiver.kind
                    && for_cache
                {
                    errors.at(
                        mutability,
                        "a cached method cannot take `&mut self`: on a hit the body does not run, so its changes to `self` would be skipped; take `&self`",
                    );
                }
            }
            FnArg::Typed(typed) => {
                if let Type::Reference(reference) = &*typed.ty
                    && let Some(mutability) = &reference.mutability
                    && for_cache
                {
                    errors.at(
                        mutability,
                        "a cached function cannot take a `&mut` parameter: on a hit the body does not run, so its changes would be skipped; take `&` or a value",
                    );
                }
                match &*typed.pat {
                    Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                        parameters.push(Parameter { ident: pat.ident.clone() });
                    }
                    other => errors.at(
                        other,
                        format!("`#[{macro_name}]` needs a plain parameter name here, to refer to it in templates; destructure inside the body"),
                    ),
                }
            }
        }
    }
    let (return_type, mode, return_type_nameable) = match &sig.output {
        ReturnType::Default => (syn::parse_quote!(()), ReturnMode::Plain, true),
        ReturnType::Type(_, ty) => {
            let mut finder = BorrowFinder::default();
            finder.visit_type(ty);
            let nameable = !matches!(finder.problem, Some((_, message)) if message.contains("impl Trait"));
            if let (true, Some((tokens, message))) = (for_cache, finder.problem) {
                errors.at(tokens, message);
            }
            ((**ty).clone(), return_mode(ty), nameable)
        }
    };
    let type_parameters = sig.generics.type_params().map(|param| param.ident.clone()).collect();
    Signature { parameters, has_receiver, return_type, mode, return_type_nameable, type_parameters }
}
