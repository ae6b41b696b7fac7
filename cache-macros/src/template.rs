//! Key, tag and version templates: literal text with `<placeholder>`s.
//!
//! A placeholder names a parameter (`<id>`) or a field path on one
//! (`<input.org_id>`, `<self.tenant>`). Two placeholders must be separated by
//! one of the characters values escape, so rendering stays injective; literal
//! text may not contain `%`, braces or whitespace, which the runtime reserves.

use syn::LitStr;

use crate::diagnostics::Errors;

/// Characters that may separate placeholders; the runtime escapes them in values.
const SEPARATORS: &[char] = &[':', '/', '|', ',', '=', '&', ';', '#'];

pub(crate) enum Segment {
    Literal(String),
    Placeholder(Placeholder),
}

/// `<root.field.field>`.
pub(crate) struct Placeholder {
    pub(crate) root: String,
    pub(crate) fields: Vec<String>,
}

impl Placeholder {
    pub(crate) fn display(&self) -> String {
        let mut text = format!("<{}", self.root);
        for field in &self.fields {
            text.push('.');
            text.push_str(field);
        }
        text.push('>');
        text
    }
}

/// A parsed template and the literal it came from (for error spans).
pub(crate) struct Template {
    pub(crate) literal: LitStr,
    pub(crate) segments: Vec<Segment>,
}

impl Template {
    pub(crate) fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Placeholder(placeholder) => Some(placeholder),
            Segment::Literal(_) => None,
        })
    }
}

fn is_identifier(text: &str, allow_index: bool) -> bool {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphabetic() || first == '_' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && text != "_"
        }
        Some(first) if allow_index && first.is_ascii_digit() => text.chars().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

fn check_literal(text: &str, literal: &LitStr, errors: &mut Errors) {
    if let Some(bad) =
        text.chars().find(|c| matches!(c, '%' | '{' | '}') || c.is_whitespace() || c.is_control())
    {
        errors.at(
            literal,
            format!(
                "{bad:?} cannot appear in a template's text: `%`, braces and whitespace are reserved for escaping values"
            ),
        );
    }
}

/// Parses `literal`, reporting every problem found; `None` when it is malformed.
pub(crate) fn parse(literal: &LitStr, errors: &mut Errors) -> Option<Template> {
    let text = literal.value();
    let before = errors.is_empty();
    let mut failed = false;
    let mut segments = Vec::new();
    if text.is_empty() {
        errors.at(literal, "empty template: write the key text, such as \"user:<id>\"");
        return None;
    }
    let mut rest = text.as_str();
    while !rest.is_empty() {
        match rest.find(['<', '>']) {
            Some(at) if rest[at..].starts_with('>') => {
                errors.at(
                    literal,
                    format!("unmatched `>` in template {text:?}: placeholders look like `<id>`"),
                );
                failed = true;
                rest = &rest[at + 1..];
            }
            Some(at) => {
                if at > 0 {
                    segments.push(Segment::Literal(rest[..at].to_owned()));
                }
                let after = &rest[at + 1..];
                let Some(close) = after.find('>') else {
                    errors.at(
                        literal,
                        format!("unclosed `<` in template {text:?}: close the placeholder with `>`"),
                    );
                    failed = true;
                    break;
                };
                let inner = &after[..close];
                if inner.is_empty() {
                    errors.at(literal, "empty placeholder `<>`: name a parameter, as in `<id>`");
                    failed = true;
                } else if inner.contains('<') {
                    errors.at(
                        literal,
                        format!("unclosed `<` in template {text:?}: close the placeholder with `>`"),
                    );
                    failed = true;
                } else {
                    let mut parts = inner.split('.');
                    let root = parts.next().unwrap_or_default().trim().to_owned();
                    let fields: Vec<String> = parts.map(|p| p.trim().to_owned()).collect();
                    if !is_identifier(&root, false) || !fields.iter().all(|f| is_identifier(f, true)) {
                        errors.at(
                            literal,
                            format!(
                                "`<{inner}>` is not a parameter name or field path: use `<name>` or `<name.field>`"
                            ),
                        );
                        failed = true;
                    } else {
                        segments.push(Segment::Placeholder(Placeholder { root, fields }));
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                segments.push(Segment::Literal(rest.to_owned()));
                rest = "";
            }
        }
    }
    for segment in &segments {
        if let Segment::Literal(text) = segment {
            check_literal(text, literal, errors);
        }
    }
    let mut previous: Option<&Placeholder> = None;
    let mut separated = true;
    for segment in &segments {
        match segment {
            Segment::Literal(text) => separated |= text.contains(SEPARATORS),
            Segment::Placeholder(placeholder) => {
                if let (Some(before), false) = (previous, separated) {
                    errors.at(
                        literal,
                        format!(
                            "`{}` and `{}` must be separated by one of `:` `/` `|` `,` `=` `&` `;` `#`, so that different values never render to the same key",
                            before.display(),
                            placeholder.display()
                        ),
                    );
                    failed = true;
                }
                previous = Some(placeholder);
                separated = false;
            }
        }
    }
    if failed || (before && !errors.is_empty()) {
        return None;
    }
    Some(Template { literal: literal.clone(), segments })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Vec<String>, String> {
        let literal = LitStr::new(text, proc_macro2::Span::call_site());
        let mut errors = Errors::default();
        match parse(&literal, &mut errors) {
            Some(template) => Ok(template
                .segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(text) => text.clone(),
                    Segment::Placeholder(p) => p.display(),
                })
                .collect()),
            None => Err(errors.into_compile_errors().to_string()),
        }
    }

    #[test]
    fn parses_literals_and_placeholders() {
        assert_eq!(parse_str("user:<id>").unwrap(), ["user:", "<id>"]);
        assert_eq!(
            parse_str("org:<input.org_id>:p<page>").unwrap(),
            ["org:", "<input.org_id>", ":p", "<page>"]
        );
        assert_eq!(parse_str("<self.tenant>/<pair.0>").unwrap(), ["<self.tenant>", "/", "<pair.0>"]);
    }

    #[test]
    fn rejects_malformed_templates() {
        for (template, expected) in [
            ("user:<id", "unclosed"),
            ("user:<>", "empty placeholder"),
            ("user:<1d>", "not a parameter name"),
            ("user:id>", "unmatched"),
            ("<a><b>", "must be separated"),
            ("<a>-<b>", "must be separated"),
            ("user <id>", "reserved"),
            ("50%:<id>", "reserved"),
            ("", "empty template"),
        ] {
            let error = parse_str(template).unwrap_err();
            assert!(error.contains(expected), "{template}: {error}");
        }
    }
}
