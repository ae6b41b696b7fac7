//! The values of the request headers a page varies on, normalized before they
//! go into its key, so that requests asking for the same thing share a page.
//!
//! Content negotiation headers are lists whose form carries no meaning: the
//! case of tokens (codings, charsets, language tags, media types and
//! parameter names are case-insensitive), whitespace, empty elements, how the
//! list is split across header lines, and how a weight is written (`q=1`,
//! `q=1.000` and none are the same; `q=0.50` is `q=0.5`).
//!
//! Order is kept where it can matter:
//! - `Accept-Encoding` and `Accept-Charset` are sets: `gzip, deflate`,
//!   `deflate,gzip` and `GZIP, Deflate` are the same value. Servers choose a
//!   coding by their own preference among the acceptable ones.
//! - `Accept-Language` and `Accept` are preference lists: elements are put in
//!   order of weight, highest first, and keep their order among equal weights,
//!   since a handler may take the first of those. `fr;q=0.5, en` is
//!   `en, fr;q=0.5`, but `en, fr` is not `fr, en`.
//!
//! Other headers (`Cookie`, `Authorization`, `User-Agent`, custom ones), and a
//! negotiation header that is not a well-formed list (a quoted string, a
//! malformed weight), go into the key as they came.

use http::HeaderName;
use http::header::{ACCEPT, ACCEPT_CHARSET, ACCEPT_ENCODING, ACCEPT_LANGUAGE};
use smallvec::SmallVec;

/// Whether a list's order carries meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// A set: any order is the same value.
    Set,
    /// A preference list: the order of elements of equal weight counts.
    Preference,
}

fn order_of(name: &HeaderName) -> Option<Order> {
    if *name == ACCEPT_ENCODING || *name == ACCEPT_CHARSET {
        Some(Order::Set)
    } else if *name == ACCEPT_LANGUAGE || *name == ACCEPT {
        Some(Order::Preference)
    } else {
        None
    }
}

/// The canonical form of the values (one per header line) of the request
/// header `name`; `None` when its values go into the key as they are: a
/// header that is not normalized, or a list that is not well formed.
///
/// A canonical form is itself a well-formed list, so it never equals a value
/// that goes in as it came.
pub(super) fn normalize(name: &HeaderName, values: &[&str]) -> Option<String> {
    let order = order_of(name)?;
    let mut elements: SmallVec<[Element; 4]> = SmallVec::new();
    for value in values {
        for element in value.split(',') {
            let element = element.trim_matches(OWS);
            if !element.is_empty() {
                elements.push(Element::parse(element)?);
            }
        }
    }
    match order {
        Order::Set => {
            elements.sort_unstable_by(|a, b| a.text.cmp(&b.text));
            elements.dedup_by(|a, b| a.text == b.text);
        }
        // Stable: elements of equal weight keep their order.
        Order::Preference => elements.sort_by_key(|element| std::cmp::Reverse(element.weight)),
    }
    let mut canonical = String::new();
    for (index, element) in elements.iter().enumerate() {
        if index > 0 {
            canonical.push_str(", ");
        }
        canonical.push_str(&element.text);
    }
    Some(canonical)
}

/// Optional whitespace.
const OWS: [char; 2] = [' ', '\t'];

/// One element of a list, in canonical form: the value and parameter names
/// in lower case, parameters as given, and the weight last (left out when 1).
struct Element {
    /// The weight, in thousandths.
    weight: u16,
    text: String,
}

impl Element {
    fn parse(element: &str) -> Option<Self> {
        if element.contains('"') {
            return None; // a quoted string may hold `,` or `;`: not split here
        }
        let mut parts = element.split(';');
        let value = parts.next()?.trim_matches(OWS);
        if value.is_empty() || !value.bytes().all(|byte| is_tchar(byte) || byte == b'/') {
            return None;
        }
        let mut text = value.to_ascii_lowercase();
        let mut weight = None;
        for param in parts {
            let (name, value) = param.split_once('=')?;
            let (name, value) = (name.trim_matches(OWS), value.trim_matches(OWS));
            if !is_token(name) || !is_token(value) {
                return None;
            }
            if name.eq_ignore_ascii_case("q") {
                if weight.is_some() {
                    return None; // two weights: which one counts is unclear
                }
                weight = Some(qvalue(value)?);
                continue;
            }
            text.push(';');
            text.push_str(&name.to_ascii_lowercase());
            text.push('=');
            text.push_str(value);
        }
        let weight = weight.unwrap_or(1000);
        if weight < 1000 {
            text.push_str(";q=0");
            if weight > 0 {
                let digits = format!(".{weight:03}");
                text.push_str(digits.trim_end_matches('0'));
            }
        }
        Some(Self { weight, text })
    }
}

/// A weight (`0`, `0.5`, `1.000`...) in thousandths; `None` if malformed.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0_u16, |sum, digit| sum * 10 + u16::from(digit - b'0'));
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_tchar)
}

/// RFC 9110's `tchar`.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn canonical(name: &HeaderName, values: &[&str]) -> Option<String> {
        normalize(name, values)
    }

    #[test]
    fn sets_ignore_case_whitespace_order_and_lines() {
        let encoding = |values: &[&str]| canonical(&ACCEPT_ENCODING, values);
        let expected = Some("deflate, gzip".to_owned());
        assert_eq!(encoding(&["gzip, deflate"]), expected);
        assert_eq!(encoding(&["deflate,gzip"]), expected);
        assert_eq!(encoding(&["GZIP ,\tDeflate"]), expected);
        assert_eq!(encoding(&["gzip", "deflate"]), expected);
        assert_eq!(encoding(&["gzip, , deflate, gzip"]), expected);
        assert_eq!(encoding(&["gzip;q=1.000, deflate; Q=1"]), expected);
        assert_eq!(encoding(&["GZIP"]), Some("gzip".to_owned()));
        assert_ne!(encoding(&["gzip"]), expected);
        assert_eq!(encoding(&["br;q=0.50, gzip;q=0"]), Some("br;q=0.5, gzip;q=0".to_owned()));
        assert_ne!(encoding(&["gzip;q=0"]), encoding(&["gzip"]), "q=0 refuses gzip");
        assert_eq!(encoding(&[""]), Some(String::new()), "present and empty: identity only");
    }

    #[test]
    fn preference_lists_keep_the_order_of_equal_weights() {
        let language = |values: &[&str]| canonical(&ACCEPT_LANGUAGE, values);
        assert_eq!(language(&["fr-CH, fr;q=0.9, en;q=0.8"]), Some("fr-ch, fr;q=0.9, en;q=0.8".to_owned()));
        assert_eq!(language(&["en;q=0.8,fr;q=0.9, FR-ch"]), language(&["fr-CH, fr;q=0.9, en;q=0.8"]));
        assert_eq!(language(&["fr;q=0.5, en"]), language(&["en, fr;q=0.5"]));
        assert_ne!(language(&["en, fr"]), language(&["fr, en"]), "the first of equal weights may win");
        assert_eq!(language(&["en", "fr"]), language(&["en, fr"]));
        let accept = |values: &[&str]| canonical(&ACCEPT, values);
        assert_eq!(
            accept(&["Text/HTML;Level=1, application/json;q=0.5"]),
            Some("text/html;level=1, application/json;q=0.5".to_owned())
        );
        assert_ne!(accept(&["text/html;level=1"]), accept(&["text/html;level=2"]));
    }

    #[test]
    fn other_headers_and_malformed_lists_go_in_as_they_came() {
        assert_eq!(canonical(&http::header::USER_AGENT, &["A, B"]), None);
        assert_eq!(canonical(&http::header::COOKIE, &["a=1; b=2"]), None);
        for malformed in
            ["gzip;q=2", "gzip;q=0.1234", "gzip;q", "gzip;q=0.5;q=0.4", "a b", "x;p=\"a,b\"", ";q=1"]
        {
            assert_eq!(canonical(&ACCEPT_ENCODING, &[malformed]), None, "{malformed}");
        }
    }

    /// What a list means, worked out independently of [`normalize`]: for a
    /// set, its elements; for a preference list, its elements by weight,
    /// highest first, in their order among equal weights.
    fn meaning(order: Order, elements: &[(String, u16)]) -> Vec<(String, u16)> {
        let mut meant: Vec<(String, u16)> =
            elements.iter().map(|(token, weight)| (token.to_ascii_lowercase(), *weight)).collect();
        match order {
            Order::Set => meant = meant.into_iter().collect::<BTreeSet<_>>().into_iter().collect(),
            Order::Preference => meant.sort_by_key(|element| std::cmp::Reverse(element.1)),
        }
        meant
    }

    /// One way of writing a list of (token, weight): case, whitespace, how
    /// weights are spelled and how the list is split into lines vary with `style`.
    fn write(elements: &[(String, u16)], style: &[u8]) -> Vec<String> {
        let mut lines = vec![String::new()];
        for (index, (token, weight)) in elements.iter().enumerate() {
            let bits = style.get(index).copied().unwrap_or(0);
            let line = lines.last_mut().expect("one line at least");
            if !line.is_empty() {
                line.push_str([",", ", ", " ,\t", ",,"][usize::from(bits & 3)]);
            }
            line.push_str(&if bits & 4 == 0 { token.clone() } else { token.to_ascii_uppercase() });
            match (*weight, bits & 8 == 0) {
                (1000, true) => {}
                (1000, false) => line.push_str("; q=1.000"),
                (weight, short) => {
                    let spelled = format!("0.{weight:03}");
                    let spelled =
                        if short { spelled.trim_end_matches('0').trim_end_matches('.') } else { &spelled };
                    line.push_str(&format!(";{}={spelled}", if bits & 16 == 0 { "q" } else { "Q" }));
                }
            }
            if bits & 32 != 0 {
                lines.push(String::new());
            }
        }
        lines
    }

    fn list() -> impl Strategy<Value = Vec<(String, u16)>> {
        let weight = prop_oneof![Just(1000_u16), Just(500), Just(0), 1_u16..1000];
        proptest::collection::vec(("[a-c]{1,2}", weight), 0..5)
    }

    proptest! {
        #[test]
        fn equal_meanings_share_a_value_and_different_ones_do_not(
            a in list(),
            b in list(),
            style_a in proptest::collection::vec(any::<u8>(), 5),
            style_b in proptest::collection::vec(any::<u8>(), 5),
            shuffle in any::<u64>(),
        ) {
            for (name, order) in [(ACCEPT_ENCODING, Order::Set), (ACCEPT_LANGUAGE, Order::Preference)] {
                let key = |list: &[(String, u16)], style: &[u8]| {
                    let lines = write(list, style);
                    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
                    normalize(&name, &lines)
                };
                let (ka, kb) = (key(&a, &style_a), key(&b, &style_b));
                prop_assert!(ka.is_some() && kb.is_some());
                prop_assert_eq!(ka == kb, meaning(order, &a) == meaning(order, &b), "{:?} / {:?}", a, b);

                // The same list, reordered as its meaning allows, in another style.
                let mut reordered = a.clone();
                match order {
                    Order::Set => fastrand::Rng::with_seed(shuffle).shuffle(&mut reordered),
                    Order::Preference => reordered.sort_by_key(|element| std::cmp::Reverse(element.1)),
                }
                prop_assert_eq!(key(&reordered, &style_b), key(&a, &style_a));
                if order == Order::Set {
                    let twice: Vec<_> = a.iter().chain(&a).cloned().collect();
                    prop_assert_eq!(key(&twice, &style_b), key(&a, &style_a), "a set holds each element once");
                }
            }
        }
    }
}
