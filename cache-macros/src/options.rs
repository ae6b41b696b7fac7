//! Parsing the attribute's `name = value` options.
//!
//! Options are parsed generically (`ident = expr`), then read by name; every
//! unknown, duplicate or ill-typed option is reported, each at its own token.

use std::collections::HashSet;

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprArray, Ident, Lit, LitInt, LitStr, Token, UnOp};

use crate::diagnostics::{Errors, closest, list};

/// One `name = value` pair, or a bare `name` (a flag such as `early_refresh`).
pub(crate) struct RawOption {
    name: Ident,
    value: Option<Expr>,
}

impl Parse for RawOption {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let name: Ident = input.parse()?;
        if input.is_empty() || input.peek(Token![,]) {
            return Ok(Self { name, value: None });
        }
        let lookahead = input.lookahead1();
        if !lookahead.peek(Token![=]) {
            return Err(syn::Error::new(
                name.span(),
                format!("expected `{name} = ...`: every option but `early_refresh` takes a value"),
            ));
        }
        input.parse::<Token![=]>()?;
        Ok(Self { name, value: Some(input.parse()?) })
    }
}

/// An item of `#[invalidates(...)]`, `#[cache_put(...)]` and the function-like
/// macros: an option, or an expression (an entry named by its reader, such as
/// `get_user(id)`, or the value of `put!`).
pub(crate) enum RawItem {
    Option(RawOption),
    Expr(Expr),
}

impl Parse for RawItem {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
            return Ok(Self::Option(input.parse()?));
        }
        Ok(Self::Expr(input.parse()?))
    }
}

fn parse_raw(attr: TokenStream) -> syn::Result<Vec<RawOption>> {
    let parsed = Punctuated::<RawOption, Token![,]>::parse_terminated.parse2(attr)?;
    Ok(parsed.into_iter().collect())
}

/// Options and expressions, in order.
pub(crate) fn parse_items(tokens: TokenStream) -> syn::Result<Vec<RawItem>> {
    let parsed = Punctuated::<RawItem, Token![,]>::parse_terminated.parse2(tokens)?;
    Ok(parsed.into_iter().collect())
}

/// Splits items into options and expressions.
fn split(items: Vec<RawItem>) -> (Vec<RawOption>, Vec<Expr>) {
    let mut options = Vec::new();
    let mut exprs = Vec::new();
    for item in items {
        match item {
            RawItem::Option(option) => options.push(option),
            RawItem::Expr(expr) => exprs.push(expr),
        }
    }
    (options, exprs)
}

/// A number of seconds (or of milliseconds, or of loads: the unit is the option's).
pub(crate) enum Seconds {
    /// `300`: checked here, with its literal for error spans.
    Literal { literal: LitInt, value: u64 },
    /// `USER_TTL`, `5 * 60`: a constant expression, checked by the compiler
    /// through the generated code.
    Const(Expr),
    /// Malformed, and already reported.
    Invalid,
}

/// `returns = result | option | value`: what counts as a value to cache (and,
/// for a write, as success) when the return type cannot say it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnsKind {
    Result,
    Option,
    Value,
}

/// A `returns = ...` option, with its value for error spans.
pub(crate) struct Returns {
    pub(crate) kind: ReturnsKind,
    pub(crate) value: Ident,
}

fn returns(expr: &Expr, errors: &mut Errors) -> Option<Returns> {
    if let Expr::Path(path) = expr
        && let Some(ident) = path.path.get_ident()
    {
        let kind = match ident.to_string().as_str() {
            "result" => Some(ReturnsKind::Result),
            "option" => Some(ReturnsKind::Option),
            "value" => Some(ReturnsKind::Value),
            _ => None,
        };
        if let Some(kind) = kind {
            return Some(Returns { kind, value: ident.clone() });
        }
    }
    errors.at(
        expr,
        "expected `returns = result` (only `Ok` counts), `returns = option` (only `Some` counts) or `returns = value` (every value counts)",
    );
    None
}

/// The options of `#[cached(...)]`.
#[derive(Default)]
pub(crate) struct CachedOptions {
    pub(crate) key: Option<LitStr>,
    pub(crate) ttl: Option<Seconds>,
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
    pub(crate) tags: Vec<LitStr>,
    pub(crate) version: Option<LitStr>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) cache: Option<Expr>,
    pub(crate) codec: Option<syn::Path>,
    pub(crate) returns: Option<Returns>,
    pub(crate) schema: Option<LitInt>,
    /// `linked = true|false`: whether a companion naming the entry is generated.
    pub(crate) linked: Option<syn::LitBool>,
}

/// The options of `#[invalidates(...)]`.
#[derive(Default)]
pub(crate) struct InvalidatesOptions {
    /// Entries named by their reader: `get_user(id)`, `self.count(org)`.
    pub(crate) entries: Vec<Expr>,
    pub(crate) keys: Vec<LitStr>,
    pub(crate) tags: Vec<LitStr>,
    pub(crate) versions: Vec<LitStr>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) cache: Option<Expr>,
    pub(crate) returns: Option<Returns>,
}

const CACHED_OPTIONS: &[&str] = &[
    "key",
    "ttl",
    "jitter",
    "negative_ttl",
    "stale",
    "fail_safe",
    "fail_safe_throttle",
    "early_refresh",
    "soft_timeout",
    "hard_timeout",
    "max_loads",
    "group",
    "tags",
    "version",
    "skip",
    "cache",
    "codec",
    "returns",
    "schema",
    "linked",
];
const INVALIDATES_OPTIONS: &[&str] = &["keys", "tags", "versions", "skip", "cache", "returns"];
const CACHE_PUT_OPTIONS: &[&str] = &["cache", "returns"];
const MACRO_OPTIONS: &[&str] = &["cache"];

/// The options of `#[cache_put(...)]`.
#[derive(Default)]
pub(crate) struct CachePutOptions {
    /// The reader's entry, such as `get_user(id)`.
    pub(crate) entries: Vec<Expr>,
    pub(crate) cache: Option<Expr>,
    pub(crate) returns: Option<Returns>,
}

/// The items of `invalidate!`, `put!` and `get!`: expressions, then `cache = ...`.
pub(crate) struct MacroItems {
    pub(crate) exprs: Vec<Expr>,
    pub(crate) cache: Option<Expr>,
}

/// Reads options one by one, catching unknown and duplicate names in one place.
struct OptionReader<'e> {
    macro_name: &'static str,
    known: &'static [&'static str],
    seen: HashSet<String>,
    errors: &'e mut Errors,
}

impl OptionReader<'_> {
    /// The option's name if it is known and not a duplicate; reports otherwise.
    fn accept(&mut self, option: &RawOption) -> Option<String> {
        let name = option.name.to_string();
        if !self.known.contains(&name.as_str()) {
            let hint = match closest(&name, self.known.iter().copied()) {
                Some(near) => format!("did you mean `{near}`?"),
                None => format!("the options are {}", list(self.known.iter().copied())),
            };
            let shown = if self.macro_name.ends_with('!') {
                self.macro_name.to_owned()
            } else {
                format!("#[{}]", self.macro_name)
            };
            self.errors.at(&option.name, format!("unknown option `{name}` for `{shown}`: {hint}"));
            return None;
        }
        if !self.seen.insert(name.clone()) {
            self.errors.at(&option.name, format!("duplicate option `{name}`: give it once"));
            return None;
        }
        Some(name)
    }
}

fn string(expr: &Expr, what: &str, errors: &mut Errors) -> Option<LitStr> {
    if let Expr::Lit(lit) = expr
        && let Lit::Str(text) = &lit.lit
    {
        return Some(text.clone());
    }
    errors.at(expr, format!("expected {what}, a string such as \"user:<id>\""));
    None
}

fn strings(expr: &Expr, what: &str, errors: &mut Errors) -> Vec<LitStr> {
    match expr {
        Expr::Array(ExprArray { elems, .. }) => {
            elems.iter().filter_map(|element| string(element, what, errors)).collect()
        }
        single => string(single, what, errors).into_iter().collect(),
    }
}

fn idents(expr: &Expr, errors: &mut Errors) -> Vec<Ident> {
    let Expr::Array(array) = expr else {
        errors.at(expr, "expected a list of parameter names, such as `[db, request]`");
        return Vec::new();
    };
    let mut names = Vec::new();
    for element in &array.elems {
        match element {
            Expr::Path(path) if path.qself.is_none() => match path.path.get_ident() {
                Some(ident) => names.push(ident.clone()),
                None => errors.at(element, "expected a parameter name"),
            },
            _ => errors.at(element, "expected a parameter name"),
        }
    }
    names
}

/// What a number option counts.
#[derive(Clone, Copy)]
enum Unit {
    Seconds,
    Milliseconds,
    Loads,
}

fn seconds(expr: &Expr, name: &str, errors: &mut Errors) -> Seconds {
    number(expr, name, Unit::Seconds, errors)
}

fn number(expr: &Expr, name: &str, unit: Unit, errors: &mut Errors) -> Seconds {
    let (whole, example) = match unit {
        Unit::Seconds => ("in whole seconds", format!("`{name} = 300`")),
        Unit::Milliseconds => ("in milliseconds", format!("`{name} = 200`")),
        Unit::Loads => ("as a number of loads", format!("`{name} = 8`")),
    };
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(int) => match int.base10_parse::<u64>() {
                Ok(value) => Seconds::Literal { literal: int.clone(), value },
                Err(error) => {
                    errors.push(error);
                    Seconds::Invalid
                }
            },
            other => {
                let constant = match unit {
                    Unit::Seconds => format!("`{name} = USER_TTL` or `{name} = 5 * 60`"),
                    Unit::Milliseconds | Unit::Loads => format!("`{name} = LIMIT`"),
                };
                errors.at(
                    other,
                    format!("expected `{name}` {whole}: a number such as {example}, or a constant such as {constant}"),
                );
                Seconds::Invalid
            }
        },
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => {
            let what = match unit {
                Unit::Seconds => "a whole number of seconds",
                Unit::Milliseconds => "a whole number of milliseconds",
                Unit::Loads => "a positive number",
            };
            errors.at(expr, format!("`{name}` cannot be negative: give {what}"));
            Seconds::Invalid
        }
        _ => Seconds::Const(expr.clone()),
    }
}

/// `early_refresh` or `early_refresh = <beta>`: XFetch's beta, a positive number.
pub(crate) struct Beta {
    pub(crate) value: f64,
}

fn beta(expr: Option<&Expr>, errors: &mut Errors) -> Option<Beta> {
    let Some(expr) = expr else { return Some(Beta { value: 1.0 }) };
    if let Expr::Lit(lit) = expr {
        let value = match &lit.lit {
            Lit::Float(float) => float.base10_parse::<f64>().ok(),
            Lit::Int(int) => int.base10_parse::<f64>().ok(),
            _ => None,
        };
        if let Some(value) = value.filter(|value| value.is_finite() && *value > 0.0) {
            return Some(Beta { value });
        }
    }
    errors.at(
        expr,
        "expected `early_refresh`, or `early_refresh = <beta>` with a positive number such as `early_refresh = 1.0` (the default; larger refreshes earlier)",
    );
    None
}

impl CachedOptions {
    pub(crate) fn parse(attr: TokenStream, errors: &mut Errors) -> Self {
        let mut options = Self::default();
        let raw = match parse_raw(attr) {
            Ok(raw) => raw,
            Err(error) => {
                errors.push(error);
                return options;
            }
        };
        let mut reader =
            OptionReader { macro_name: "cached", known: CACHED_OPTIONS, seen: HashSet::new(), errors };
        for option in &raw {
            let Some(name) = reader.accept(option) else {
                continue;
            };
            let errors = &mut *reader.errors;
            if name == "early_refresh" {
                options.early_refresh = beta(option.value.as_ref(), errors);
                continue;
            }
            let Some(value) = &option.value else {
                errors.at(
                    &option.name,
                    format!("expected `{name} = ...`: every option but `early_refresh` takes a value"),
                );
                continue;
            };
            match name.as_str() {
                "key" => options.key = string(value, "a key template", errors),
                "ttl" => options.ttl = Some(seconds(value, "ttl", errors)),
                "jitter" => options.jitter = Some(seconds(value, "jitter", errors)),
                "negative_ttl" => options.negative_ttl = Some(seconds(value, "negative_ttl", errors)),
                "group" => options.group = string(value, "a group name", errors),
                "stale" => options.stale = Some(seconds(value, "stale", errors)),
                "fail_safe" => options.fail_safe = Some(seconds(value, "fail_safe", errors)),
                "fail_safe_throttle" => {
                    options.fail_safe_throttle = Some(seconds(value, "fail_safe_throttle", errors));
                }
                "soft_timeout" => {
                    options.soft_timeout = Some(number(value, "soft_timeout", Unit::Milliseconds, errors));
                }
                "hard_timeout" => {
                    options.hard_timeout = Some(number(value, "hard_timeout", Unit::Milliseconds, errors));
                }
                "max_loads" => options.max_loads = Some(number(value, "max_loads", Unit::Loads, errors)),
                "tags" => options.tags = strings(value, "a tag template", errors),
                "version" => options.version = string(value, "a version template", errors),
                "skip" => options.skip = idents(value, errors),
                "cache" => options.cache = Some(value.clone()),
                "codec" => options.codec = codec(value, errors),
                "returns" => options.returns = returns(value, errors),
                "schema" => options.schema = schema(value, errors),
                "linked" => options.linked = boolean(value, "linked", errors),
                _ => {}
            }
        }
        options
    }
}

/// `schema = N`: a whole number that fits a `u32`.
fn schema(expr: &Expr, errors: &mut Errors) -> Option<LitInt> {
    if let Expr::Lit(lit) = expr
        && let Lit::Int(int) = &lit.lit
    {
        return match int.base10_parse::<u32>() {
            Ok(_) => Some(int.clone()),
            Err(_) => {
                errors.at(int, "`schema` is a version number from 0 to 4294967295, such as `schema = 2`");
                None
            }
        };
    }
    errors.at(
        expr,
        "expected `schema = N`, a whole number such as `schema = 2`: raise it when the meaning of the cached value changes but its type does not",
    );
    None
}

fn codec(expr: &Expr, errors: &mut Errors) -> Option<syn::Path> {
    match expr {
        Expr::Path(path) if path.qself.is_none() => Some(path.path.clone()),
        _ => {
            errors.at(expr, "expected a codec type, such as `cache_runtime::Json`");
            None
        }
    }
}

impl InvalidatesOptions {
    pub(crate) fn parse(attr: TokenStream, errors: &mut Errors) -> Self {
        let mut options = Self::default();
        let (raw, entries) = match parse_items(attr) {
            Ok(items) => split(items),
            Err(error) => {
                errors.push(error);
                return options;
            }
        };
        options.entries = entries;
        let mut reader = OptionReader {
            macro_name: "invalidates",
            known: INVALIDATES_OPTIONS,
            seen: HashSet::new(),
            errors,
        };
        for option in &raw {
            let Some(name) = reader.accept(option) else {
                continue;
            };
            let errors = &mut *reader.errors;
            let Some(value) = &option.value else {
                errors.at(&option.name, format!("expected `{name} = ...`: every option takes a value"));
                continue;
            };
            match name.as_str() {
                "keys" => options.keys = strings(value, "a key template", errors),
                "tags" => options.tags = strings(value, "a tag template", errors),
                "versions" => options.versions = strings(value, "a version template", errors),
                "skip" => options.skip = idents(value, errors),
                "cache" => options.cache = Some(value.clone()),
                "returns" => options.returns = returns(value, errors),
                _ => {}
            }
        }
        options
    }
}

impl CachePutOptions {
    pub(crate) fn parse(attr: TokenStream, errors: &mut Errors) -> Self {
        let mut options = Self::default();
        let (raw, entries) = match parse_items(attr) {
            Ok(items) => split(items),
            Err(error) => {
                errors.push(error);
                return options;
            }
        };
        options.entries = entries;
        let mut reader =
            OptionReader { macro_name: "cache_put", known: CACHE_PUT_OPTIONS, seen: HashSet::new(), errors };
        for option in &raw {
            let Some(name) = reader.accept(option) else {
                continue;
            };
            let errors = &mut *reader.errors;
            // An item without `= value` was parsed as an expression.
            let Some(value) = &option.value else { continue };
            match name.as_str() {
                "cache" => options.cache = Some(value.clone()),
                "returns" => options.returns = returns(value, errors),
                _ => {}
            }
        }
        options
    }
}

impl MacroItems {
    /// Parses the items of the function-like macro `macro_name`.
    pub(crate) fn parse(tokens: TokenStream, macro_name: &'static str, errors: &mut Errors) -> Self {
        let (raw, exprs) = match parse_items(tokens) {
            Ok(items) => split(items),
            Err(error) => {
                errors.push(error);
                (Vec::new(), Vec::new())
            }
        };
        let mut items = Self { exprs, cache: None };
        let mut reader = OptionReader { macro_name, known: MACRO_OPTIONS, seen: HashSet::new(), errors };
        for option in &raw {
            if reader.accept(option).is_some() {
                items.cache.clone_from(&option.value);
            }
        }
        items
    }
}

/// `name = true` or `name = false`.
fn boolean(expr: &Expr, name: &str, errors: &mut Errors) -> Option<syn::LitBool> {
    if let Expr::Lit(lit) = expr
        && let Lit::Bool(value) = &lit.lit
    {
        return Some(value.clone());
    }
    errors.at(expr, format!("expected `{name} = true` or `{name} = false`"));
    None
}
