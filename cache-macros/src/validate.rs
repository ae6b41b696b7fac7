//! Checks the options against the signature and produces what to generate.

use std::collections::HashSet;

use proc_macro2::Span;
use syn::visit::Visit;
use syn::{Expr, Ident, LitStr};

use crate::diagnostics::{Errors, closest, list};
use crate::options::{
    Beta, CachePutOptions, CachedOptions, InvalidatesOptions, Returns, ReturnsKind, Seconds,
};
use crate::signature::Signature;
use crate::template::{self, Template};

/// The key of a `#[cached]` function.
pub(crate) enum KeyPlan {
    /// `key = "..."`.
    Template(Template),
    /// No `key`: the function's path (with its impl's type and generic
    /// arguments) and every parameter not skipped, `self` included, in order.
    Default(Vec<Ident>),
}

/// How the generated code learns what counts as a value to cache (or as a
/// successful write).
pub(crate) enum ModePlan {
    /// From the declared return type, aliases included, when the code is type-checked.
    ByType,
    /// `returns = ...`, checked against the return type.
    Explicit(Returns),
    /// Every value counts: for `impl Trait`, which cannot be named.
    Value,
}

fn mode_plan(returns: Option<Returns>, signature: &Signature) -> ModePlan {
    match returns {
        Some(returns) => ModePlan::Explicit(returns),
        None if !signature.return_type_nameable => ModePlan::Value,
        None => ModePlan::ByType,
    }
}

pub(crate) struct CachedPlan {
    pub(crate) mode: ModePlan,
    pub(crate) key: KeyPlan,
    pub(crate) tags: Vec<Template>,
    pub(crate) versions: Vec<Template>,
    pub(crate) ttl: Seconds,
    pub(crate) jitter: Option<Seconds>,
    pub(crate) negative_ttl: Option<Seconds>,
    pub(crate) stale: Option<Seconds>,
    pub(crate) fail_safe: Option<Seconds>,
    pub(crate) fail_safe_throttle: Option<Seconds>,
    pub(crate) early_refresh: Option<Beta>,
    pub(crate) soft_timeout: Option<Seconds>,
    pub(crate) hard_timeout: Option<Seconds>,
    pub(crate) max_loads: Option<Seconds>,
    pub(crate) group: Option<LitStr>,
    pub(crate) cache: Option<Expr>,
    pub(crate) codec: Option<syn::Path>,
    /// `schema = N`, written into the site.
    pub(crate) schema: Option<syn::LitInt>,
    /// `linked = ...` as given.
    pub(crate) linked: Option<bool>,
    /// The parameters the entry depends on (not skipped), `self` excluded:
    /// what the companion takes, by reference, after `&self` in a method.
    pub(crate) entry_parameters: Vec<Ident>,
}

/// A `#[cache_put]`: the reader's entry, and how the write's output is read.
pub(crate) struct CachePutPlan {
    pub(crate) mode: ModePlan,
    pub(crate) entry: Expr,
    pub(crate) cache: Option<Expr>,
}

pub(crate) struct InvalidatesPlan {
    pub(crate) mode: ModePlan,
    /// Entries named by their reader.
    pub(crate) entries: Vec<Expr>,
    pub(crate) keys: Vec<Template>,
    pub(crate) tags: Vec<Template>,
    pub(crate) versions: Vec<Template>,
    pub(crate) cache: Option<Expr>,
}

struct Context<'a> {
    signature: &'a Signature,
    function: &'a Ident,
}

impl Context<'_> {
    fn parameters(&self) -> String {
        let names: Vec<String> = self.signature.parameter_names().collect();
        list(names.iter().map(String::as_str))
    }

    /// Parses templates and checks that each placeholder names a parameter.
    fn templates(&self, literals: &[LitStr], errors: &mut Errors) -> Vec<Template> {
        let mut parsed = Vec::new();
        for literal in literals {
            let Some(template) = template::parse(literal, errors) else {
                continue;
            };
            let mut known = true;
            for placeholder in template.placeholders() {
                let root = placeholder.root.as_str();
                if self.signature.parameter(root).is_some() {
                    continue;
                }
                known = false;
                let names: Vec<String> = self.signature.parameter_names().collect();
                let hint = match closest(root, names.iter().map(String::as_str)) {
                    Some(near) => format!("did you mean `<{near}>`? "),
                    None => String::new(),
                };
                let message = if root == "self" {
                    format!("unknown placeholder `<self>`: `{}` takes no `self`", self.function)
                } else {
                    format!(
                        "unknown placeholder `{}`: {hint}the parameters of `{}` are {}",
                        placeholder.display(),
                        self.function,
                        self.parameters()
                    )
                };
                errors.at(literal, message);
            }
            if known {
                parsed.push(template);
            }
        }
        parsed
    }

    /// Checks `skip`: every name is a parameter, given once.
    fn skipped(&self, skip: &[Ident], errors: &mut Errors) -> HashSet<String> {
        let mut skipped = HashSet::new();
        for name in skip {
            let text = name.to_string();
            if self.signature.parameter(&text).is_none() {
                let names: Vec<String> = self.signature.parameter_names().collect();
                let hint = match closest(&text, names.iter().map(String::as_str)) {
                    Some(near) => format!("did you mean `{near}`? "),
                    None => String::new(),
                };
                errors.at(
                    name,
                    format!("`skip` names `{text}`, which is not a parameter: {hint}the parameters of `{}` are {}", self.function, self.parameters()),
                );
            } else if !skipped.insert(text.clone()) {
                errors.at(name, format!("`{text}` is listed twice in `skip`"));
            }
        }
        skipped
    }
}

fn roots(templates: &[&Template]) -> HashSet<String> {
    templates.iter().flat_map(|t| t.placeholders()).map(|p| p.root.clone()).collect()
}

/// Finds what a constant `ttl` or `jitter` cannot name: the function's
/// parameters and generics, and `Self`, none of which are in scope where the
/// function's `static` site is built.
struct NotConstant<'a> {
    option: &'static str,
    signature: &'a Signature,
    errors: &'a mut Errors,
}

impl<'ast> Visit<'ast> for NotConstant<'_> {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let option = self.option;
        if let Some(first) = path.segments.first() {
            let name = first.ident.to_string();
            if path.leading_colon.is_none()
                && path.segments.len() == 1
                && self.signature.parameter(&name).is_some()
            {
                self.errors.at(
                    path,
                    format!("`{option}` must be known at compile time, but `{name}` is a parameter: give a number or a `const`, such as `{option} = USER_TTL`"),
                );
            } else if name == "Self" || self.signature.type_parameters.contains(&first.ident) {
                self.errors.at(
                    &first.ident,
                    format!("`{option}` cannot name `{name}`: it is read by a `static` inside the function, where `Self` and generic parameters are not in scope; use a `const` outside the impl, such as `{option} = USER_TTL`"),
                );
            }
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

fn check_constant(expr: &Expr, option: &'static str, signature: &Signature, errors: &mut Errors) {
    NotConstant { option, signature, errors }.visit_expr(expr);
}

pub(crate) fn cached(
    options: CachedOptions,
    signature: &Signature,
    function: &Ident,
    errors: &mut Errors,
) -> Option<CachedPlan> {
    let context = Context { signature, function };
    match &options.ttl {
        None => errors.at_span(
            Span::call_site(),
            "`#[cached]` needs `ttl = <seconds>`: how long a value may be served is a product decision, so there is no default",
        ),
        Some(Seconds::Literal { literal, value: 0 }) => errors.at(
            literal,
            "`ttl = 0` would never serve a cached value: give a positive number of seconds",
        ),
        Some(Seconds::Const(expr)) => check_constant(expr, "ttl", signature, errors),
        Some(Seconds::Literal { .. } | Seconds::Invalid) => {}
    }
    if let Some(Seconds::Const(expr)) = &options.jitter {
        check_constant(expr, "jitter", signature, errors);
    }
    if let Some(group) = &options.group
        && group.value().trim().is_empty()
    {
        errors.at(
            group,
            "an empty `group` names nothing: give a name such as `group = \"users\"`, or remove it",
        );
    }
    check_freshness(&options, signature, errors);
    match &options.negative_ttl {
        Some(Seconds::Literal { literal, value: 0 }) => errors.at(
            literal,
            "`negative_ttl = 0` would never serve a cached `None`: give a positive number of seconds, or remove it to leave `None` uncached",
        ),
        Some(Seconds::Const(expr)) => check_constant(expr, "negative_ttl", signature, errors),
        _ => {}
    }
    if signature.returns_type_parameter && options.returns.is_none() {
        let ty = &signature.return_type;
        let name = quote::ToTokens::to_token_stream(ty);
        errors.at(
            ty,
            format!(
                "`{name}` is a type parameter, so `#[cached]` cannot tell whether it is a `Result` (cache `Ok` only), an `Option` (cache `Some` only) or a value to cache whole: add `returns = value` to cache every value, or return `Result<..>` or `Option<..>`"
            ),
        );
    }
    if let Some(Returns { kind: ReturnsKind::Result | ReturnsKind::Option, value }) = &options.returns
        && signature.returns_type_parameter
    {
        errors.at(
            value,
            "a type parameter is not known to be a `Result` or an `Option`: use `returns = value`, or return `Result<..>` or `Option<..>`",
        );
    }
    let skipped = context.skipped(&options.skip, errors);
    let tags = context.templates(&options.tags, errors);
    let versions = context.templates(options.version.as_slice(), errors);

    let key = match &options.key {
        Some(literal) => {
            let mut key_templates = context.templates(std::slice::from_ref(literal), errors);
            let template = key_templates.pop();
            if let Some(template) = &template {
                // A parameter that names the entry's tag or version was not forgotten.
                let mut accounted: Vec<&Template> = vec![template];
                accounted.extend(tags.iter().chain(&versions));
                let accounted = roots(&accounted);
                let used = roots(&[template]);
                for parameter in &signature.parameters {
                    let name = parameter.ident.to_string();
                    if accounted.contains(&name) || skipped.contains(&name) {
                        continue;
                    }
                    let message = if parameter.is_receiver() {
                        "`self` is not part of the cache key, so calls on two different values would share one entry: add the fields the result depends on to the key (as in `<self.tenant>`), or list `self` in `skip = [...]` if the result does not depend on it".to_owned()
                    } else {
                        format!(
                            "parameter `{name}` is not part of the cache key, so calls that differ only in `{name}` would share one entry: add `<{name}>` to the key or list `{name}` in `skip = [...]`"
                        )
                    };
                    errors.at(&parameter.ident, message);
                }
                for name in &options.skip {
                    if used.contains(&name.to_string()) {
                        errors.at(
                            name,
                            format!(
                                "`{name}` is used in the key, so it cannot be skipped: remove it from `skip`"
                            ),
                        );
                    }
                }
            }
            template.map(KeyPlan::Template)
        }
        None => Some(KeyPlan::Default(
            signature
                .parameters
                .iter()
                .filter(|p| !skipped.contains(&p.ident.to_string()))
                .map(|p| p.ident.clone())
                .collect(),
        )),
    };
    if !errors.is_empty() {
        return None;
    }
    Some(CachedPlan {
        mode: mode_plan(options.returns, signature),
        key: key?,
        tags,
        versions,
        ttl: options.ttl?,
        jitter: options.jitter,
        negative_ttl: options.negative_ttl,
        stale: options.stale,
        fail_safe: options.fail_safe,
        fail_safe_throttle: options.fail_safe_throttle,
        early_refresh: options.early_refresh,
        soft_timeout: options.soft_timeout,
        hard_timeout: options.hard_timeout,
        max_loads: options.max_loads,
        group: options.group,
        cache: options.cache,
        codec: options.codec,
        schema: options.schema,
        linked: options.linked.map(|linked| linked.value),
        entry_parameters: signature
            .parameters
            .iter()
            .filter(|p| !p.is_receiver() && !skipped.contains(&p.ident.to_string()))
            .map(|p| p.ident.clone())
            .collect(),
    })
}

pub(crate) fn invalidates(
    options: InvalidatesOptions,
    signature: &Signature,
    function: &Ident,
    errors: &mut Errors,
) -> Option<InvalidatesPlan> {
    let context = Context { signature, function };
    if options.entries.is_empty()
        && options.keys.is_empty()
        && options.tags.is_empty()
        && options.versions.is_empty()
    {
        errors.at_span(
            Span::call_site(),
            "`#[invalidates]` has nothing to invalidate: name the cached functions whose entries this write changes, as in `#[invalidates(get_user(id))]`, or give `keys = [...]`, `tags = [...]` or `versions = [...]`",
        );
    }
    options.entries.iter().for_each(|entry| check_entry(entry, errors));
    if let Some(Returns { kind: ReturnsKind::Result | ReturnsKind::Option, value }) = &options.returns
        && !signature.return_type_nameable
    {
        errors.at(
            value,
            "`returns = result` and `returns = option` need a return type they can check, not `impl Trait`: return the concrete type",
        );
    }
    let skipped = context.skipped(&options.skip, errors);
    let keys = context.templates(&options.keys, errors);
    let tags = context.templates(&options.tags, errors);
    let versions = context.templates(&options.versions, errors);
    let all: Vec<&Template> = keys.iter().chain(&tags).chain(&versions).collect();
    let mut used = roots(&all);
    used.extend(options.entries.iter().flat_map(names_in));
    for parameter in &signature.parameters {
        let name = parameter.ident.to_string();
        if used.contains(&name) || skipped.contains(&name) {
            continue;
        }
        let message = if parameter.is_receiver() {
            "`self` is in no key, tag or version, so it does not say what this write changes: use the fields that do in a template (as in `<self.tenant>`), or list `self` in `skip = [...]`".to_owned()
        } else {
            format!(
                "parameter `{name}` is in no key, tag or version, so it does not say what this write changes: use `<{name}>` in a template or list `{name}` in `skip = [...]`"
            )
        };
        errors.at(&parameter.ident, message);
    }
    if !errors.is_empty() {
        return None;
    }
    Some(InvalidatesPlan {
        mode: mode_plan(options.returns, signature),
        entries: options.entries,
        keys,
        tags,
        versions,
        cache: options.cache,
    })
}

pub(crate) fn cache_put(
    options: CachePutOptions,
    signature: &Signature,
    errors: &mut Errors,
) -> Option<CachePutPlan> {
    let mut entries = options.entries.into_iter();
    let entry = entries.next();
    if entry.is_none() {
        errors.at_span(
            Span::call_site(),
            "`#[cache_put]` needs the cached function whose entry this write stores, as in `#[cache_put(get_user(id))]`",
        );
    }
    for extra in entries {
        errors.at(
            &extra,
            "`#[cache_put]` stores one value into one entry: name one cached function, and use `#[invalidates(...)]` for the others",
        );
    }
    if let Some(entry) = &entry {
        check_entry(entry, errors);
    }
    if !errors.is_empty() {
        return None;
    }
    Some(CachePutPlan { mode: mode_plan(options.returns, signature), entry: entry?, cache: options.cache })
}

/// An entry named by its reader must be a call of it: `get_user(id)`,
/// `users::get_user(id)`, `Self::load(id)` or `self.count(org)`.
pub(crate) fn check_entry(entry: &Expr, errors: &mut Errors) {
    let is_call = match entry {
        Expr::Call(call) => matches!(&*call.func, Expr::Path(path) if path.qself.is_none()),
        Expr::MethodCall(_) => true,
        _ => false,
    };
    if !is_call {
        errors.at(
            entry,
            "expected a call of a `#[cached]` function with the arguments of the entry, such as `get_user(id)` or `self.count(org)`, or an option such as `keys = [...]`",
        );
    }
}

/// The single-segment names an expression mentions, `self` included.
fn names_in(expr: &Expr) -> Vec<String> {
    #[derive(Default)]
    struct Names(Vec<String>);
    impl<'ast> Visit<'ast> for Names {
        fn visit_path(&mut self, path: &'ast syn::Path) {
            if let Some(first) = path.segments.first()
                && path.leading_colon.is_none()
            {
                self.0.push(first.ident.to_string());
            }
            syn::visit::visit_path(self, path);
        }
    }
    let mut names = Names::default();
    names.visit_expr(expr);
    names.0
}

/// `stale`, `fail_safe` and `fail_safe_throttle`: constants that name no
/// parameter, a throttle only with a fail-safe, and a body that owns its data
/// when a stale entry is refreshed after the call returned.
/// Where an option's value is, for error spans.
fn value_span(seconds: &Seconds) -> Option<proc_macro2::TokenStream> {
    match seconds {
        Seconds::Literal { literal, .. } => Some(quote::ToTokens::to_token_stream(literal)),
        Seconds::Const(expr) => Some(quote::ToTokens::to_token_stream(expr)),
        Seconds::Invalid => None,
    }
}

/// The freshness options: constants that name no parameter, a throttle and
/// timeouts only with a fail-safe, timeouts and `max_loads` not zero, and a
/// body that owns its data when it may run after the call returned (`stale`,
/// `early_refresh`, `soft_timeout`).
fn check_freshness(options: &CachedOptions, signature: &Signature, errors: &mut Errors) {
    for (seconds, name) in [
        (&options.stale, "stale"),
        (&options.fail_safe, "fail_safe"),
        (&options.fail_safe_throttle, "fail_safe_throttle"),
        (&options.soft_timeout, "soft_timeout"),
        (&options.hard_timeout, "hard_timeout"),
        (&options.max_loads, "max_loads"),
    ] {
        if let Some(Seconds::Const(expr)) = seconds {
            check_constant(expr, name, signature, errors);
        }
    }
    if options.fail_safe.is_none() {
        const MESSAGE: &str =
            "`fail_safe_throttle` only applies with `fail_safe = <seconds>`: add it, or remove the throttle";
        match &options.fail_safe_throttle {
            Some(Seconds::Literal { literal, .. }) => errors.at(literal, MESSAGE),
            Some(Seconds::Const(expr)) => errors.at(expr, MESSAGE),
            _ => {}
        }
        for (timeout, name) in
            [(&options.soft_timeout, "soft_timeout"), (&options.hard_timeout, "hard_timeout")]
        {
            if let Some(span) = timeout.as_ref().and_then(value_span) {
                errors.at(
                    span,
                    format!("`{name}` serves the fail-safe value when the body is slow, so it needs one: add `fail_safe = <seconds>`, or remove `{name}`"),
                );
            }
        }
    }
    for (number, name, what) in [
        (&options.soft_timeout, "soft_timeout", "milliseconds"),
        (&options.hard_timeout, "hard_timeout", "milliseconds"),
        (&options.max_loads, "max_loads", "loads that may run at once"),
    ] {
        if let Some(Seconds::Literal { literal, value: 0 }) = number {
            errors.at(
                literal,
                format!("`{name} = 0` is not a limit: give a positive number of {what}, or remove `{name}`"),
            );
        }
    }
    if let (Some(Seconds::Literal { literal, value: soft }), Some(Seconds::Literal { value: hard, .. })) =
        (&options.soft_timeout, &options.hard_timeout)
        && soft >= hard
    {
        errors.at(
            literal,
            "`soft_timeout` must be shorter than `hard_timeout`: past the soft timeout the caller gets the fail-safe value while the load goes on, until the hard timeout abandons it",
        );
    }
    let background = if options.stale.is_some() {
        "`stale` refreshes the entry in the background after the call returned"
    } else if options.early_refresh.is_some() {
        "`early_refresh` refreshes the entry in the background after the call returned"
    } else if options.soft_timeout.is_some() {
        "`soft_timeout` lets the load go on in the background after the call returned"
    } else {
        return;
    };
    let option = background.split('`').nth(1).unwrap_or_default();
    for parameter in &signature.parameters {
        if let Some(borrow) = &parameter.borrow {
            errors.at(
                borrow,
                format!(
                    "{background}, so the body must own its data: take `{}` by value (an `Arc<..>`, a `String`, a clone), or remove `{option}`",
                    parameter.ident
                ),
            );
        }
    }
}
