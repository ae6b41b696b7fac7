//! What the macros need to know about the annotated function's signature.

use syn::visit::Visit;
use syn::{FnArg, Ident, ItemFn, Pat, ReceiverKind, ReturnType, Type};

use crate::diagnostics::Errors;

/// A named parameter; a method's receiver is one too, named `self`.
#[derive(Clone)]
pub(crate) struct Parameter {
    pub(crate) ident: Ident,
    /// The tokens of a borrowed type (`&Db`, `&self`): the data is not the body's own.
    pub(crate) borrow: Option<proc_macro2::TokenStream>,
}

impl Parameter {
    pub(crate) fn is_receiver(&self) -> bool {
        self.ident == "self"
    }
}

#[derive(Clone)]
pub(crate) struct Signature {
    /// Every parameter in order, the receiver (`self`) first when there is one.
    pub(crate) parameters: Vec<Parameter>,
    /// Whether the function is certainly an associated function, so `Self`
    /// names its impl's type: it takes `self`, or names `Self` in its signature
    /// or body. An associated function that does neither looks exactly like a
    /// free function to an attribute macro.
    pub(crate) in_impl: bool,
    /// The declared return type, `()` when there is none.
    pub(crate) return_type: Type,
    /// The return type is one of the function's own type parameters (`-> T`),
    /// which the generic body cannot tell to be a `Result`, an `Option` or neither.
    pub(crate) returns_type_parameter: bool,
    /// Whether `let __ret: <return type>` is valid (not for `impl Trait`).
    pub(crate) return_type_nameable: bool,
    pub(crate) type_parameters: Vec<Ident>,
    /// Whether the parameters are references to the function's (in its
    /// companion), so a placeholder reborrows rather than borrows them.
    pub(crate) borrowed: bool,
}

impl Signature {
    /// The names a template may use: `self` only as the root of a field path.
    pub(crate) fn parameter_names(&self) -> impl Iterator<Item = String> + '_ {
        self.parameters.iter().filter(|p| !p.is_receiver()).map(|p| p.ident.to_string())
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

/// Finds `Self` in a signature or body, outside nested items (whose `Self` is
/// their own) and macro invocations (whose tokens are not parsed).
#[derive(Default)]
struct SelfFinder {
    found: bool,
}

impl<'ast> Visit<'ast> for SelfFinder {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.segments.first().is_some_and(|segment| segment.ident == "Self") {
            self.found = true;
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}

    fn visit_macro(&mut self, _: &'ast syn::Macro) {}
}

fn names_self(function: &ItemFn) -> bool {
    let mut finder = SelfFinder::default();
    finder.visit_signature(&function.sig);
    finder.visit_block(&function.block);
    finder.found
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
                let borrow = matches!(receiver.kind, ReceiverKind::Reference(..))
                    .then(|| quote::ToTokens::to_token_stream(receiver));
                parameters.push(Parameter { ident: Ident::new("self", receiver.self_token.span), borrow });
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
                        let borrow = matches!(&*typed.ty, Type::Reference(_))
                            .then(|| quote::ToTokens::to_token_stream(&typed.ty));
                        parameters.push(Parameter { ident: pat.ident.clone(), borrow });
                    }
                    other => errors.at(
                        other,
                        format!("`#[{macro_name}]` needs a plain parameter name here, to refer to it in templates; destructure inside the body"),
                    ),
                }
            }
        }
    }
    let (return_type, return_type_nameable) = match &sig.output {
        ReturnType::Default => (syn::parse_quote!(()), true),
        ReturnType::Type(_, ty) => {
            let mut finder = BorrowFinder::default();
            finder.visit_type(ty);
            let nameable = !matches!(finder.problem, Some((_, message)) if message.contains("impl Trait"));
            if let (true, Some((tokens, message))) = (for_cache, finder.problem) {
                errors.at(tokens, message);
            }
            ((**ty).clone(), nameable)
        }
    };
    let type_parameters: Vec<Ident> = sig.generics.type_params().map(|param| param.ident.clone()).collect();
    let returns_type_parameter = matches!(&return_type, Type::Path(path)
        if path.qself.is_none() && path.path.get_ident().is_some_and(|ident| type_parameters.contains(ident)));
    let in_impl = has_receiver || names_self(function);
    Signature {
        parameters,
        in_impl,
        return_type,
        returns_type_parameter,
        return_type_nameable,
        type_parameters,
        borrowed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_impl(function: proc_macro2::TokenStream) -> bool {
        let function: ItemFn = syn::parse2(function).expect("a function");
        analyze(&function, "cached", true, &mut Errors::default()).in_impl
    }

    #[test]
    fn a_receiver_or_self_makes_a_method() {
        assert!(in_impl(quote::quote!(
            async fn f(&self) {}
        )));
        assert!(in_impl(quote::quote!(
            async fn f(self: Arc<Self>) {}
        )));
        assert!(in_impl(quote::quote!(
            async fn f() -> Option<Self> {
                None
            }
        )));
        assert!(in_impl(quote::quote!(
            async fn f(id: u64) -> u64 {
                id * Self::SCALE
            }
        )));
        assert!(in_impl(quote::quote!(
            async fn f() -> u64 {
                let x = Self { a: 1 };
                x.a
            }
        )));
    }

    #[test]
    fn nested_items_and_macros_do_not_make_a_method() {
        assert!(!in_impl(quote::quote!(
            async fn f(id: u64) -> u64 {
                id
            }
        )));
        assert!(!in_impl(quote::quote!(
            async fn f() {
                struct Local;
                impl Local {
                    fn new() -> Self {
                        Local
                    }
                }
            }
        )));
        assert!(!in_impl(quote::quote!(
            async fn f() {
                local_impl!(Self);
            }
        )));
    }
}
