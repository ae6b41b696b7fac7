//! Cache keys: the [`KeyPart`] trait and the injective key writer.
//!
//! A key is `{prefix}:{rendered template}`. Literal template text is written as
//! is; every value placed into a key is *escaped*: the separator characters
//! `:` `/` `|` `,` `=` `&` `;` `#`, the escape character `%`, the hash-tag braces
//! `{` `}` and every control or whitespace character become `%XX`. Templates
//! may only put a separator between two placeholders (the macro checks this),
//! so two different argument tuples never render to the same key.

use std::borrow::Cow;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use smallvec::SmallVec;

/// Bytes kept inline before a key spills to the heap.
const INLINE_KEY_BYTES: usize = 112;

/// Keys longer than this are shortened: a readable prefix plus a SHA-256 digest.
pub const MAX_KEY_LEN: usize = 200;
/// How much of an over-long key is kept readable in front of its digest.
const SHORTENED_PREFIX_LEN: usize = 120;

/// Rendering of `None`: `%` followed by a non-hex letter, which escaping never produces.
const NONE_MARK: &str = "%none";
/// Prefix of `Some(..)` for nested options, so `Some(None)` differs from `None`.
const SOME_MARK: &str = "%some";

/// Ends the impl's type at the start of a method's key: `%` followed by a
/// character that is not a hex digit, which escaping never produces.
const SCOPE_END: &str = "%:";

/// A value that can be placed into a cache key.
///
/// Implemented for integers, `bool`, `char`, strings, `Option<T>`, and references
/// and smart pointers to those. Implement it for your own identifiers by writing
/// their parts through the [`KeyWriter`], which escapes them:
///
/// ```
/// use cache_runtime::{KeyPart, KeyWriter};
///
/// struct TenantId { region: String, number: u32 }
///
/// impl KeyPart for TenantId {
///     fn write_key(&self, out: &mut KeyWriter) {
///         out.write_str(&self.region);
///         out.write_separator();
///         out.write_u64(u64::from(self.number));
///     }
/// }
///
/// let mut out = KeyWriter::new();
/// TenantId { region: "eu:west".into(), number: 7 }.write_key(&mut out);
/// assert_eq!(out.as_str(), "eu%3Awest,7");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key",
    label = "this value is placed into the cache key",
    note = "implement `cache_runtime::KeyPart` for `{Self}`, use a field that is an integer, string, bool or char (`<param.field>`), or list the parameter in `skip = [...]`"
)]
pub trait KeyPart {
    /// Writes this value into the key, escaped so rendering stays injective.
    fn write_key(&self, out: &mut KeyWriter);

    /// Whether this type renders `None` for some value (only `Option` does);
    /// lets `Option<Option<T>>` keep `Some(None)` apart from `None`.
    #[doc(hidden)]
    const MAY_RENDER_NONE: bool = false;
}

/// Writes the rendered key of a call: literal template text and escaped values.
///
/// It keeps short keys on the stack, so rendering a key for an in-memory hit
/// allocates nothing.
///
/// ```
/// use cache_runtime::KeyWriter;
///
/// let mut key = KeyWriter::new();
/// key.write_literal("user:");
/// key.write_part(&"a:b");
/// assert_eq!(key.as_str(), "user:a%3Ab");
/// ```
#[derive(Clone, Default)]
pub struct KeyWriter {
    buf: SmallVec<[u8; INLINE_KEY_BYTES]>,
}

impl KeyWriter {
    /// An empty key.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends template text verbatim (the macro only passes template literals).
    pub fn write_literal(&mut self, text: &str) {
        self.buf.extend_from_slice(text.as_bytes());
    }

    /// Appends any key part.
    pub fn write_part<T: KeyPart + ?Sized>(&mut self, part: &T) {
        part.write_key(self);
    }

    /// Appends a string value, escaping separators, `%`, braces, whitespace and controls.
    pub fn write_str(&mut self, value: &str) {
        let bytes = value.as_bytes();
        let mut start = 0;
        for (index, &byte) in bytes.iter().enumerate() {
            if needs_escape(byte) {
                self.buf.extend_from_slice(&bytes[start..index]);
                self.push_escaped(byte);
                start = index + 1;
            }
        }
        self.buf.extend_from_slice(&bytes[start..]);
    }

    /// Appends an unsigned integer in decimal.
    pub fn write_u64(&mut self, value: u64) {
        let mut digits = itoa::Buffer::new();
        self.buf.extend_from_slice(digits.format(value).as_bytes());
    }

    /// Appends a signed integer in decimal.
    pub fn write_i64(&mut self, value: i64) {
        let mut digits = itoa::Buffer::new();
        self.buf.extend_from_slice(digits.format(value).as_bytes());
    }

    /// Appends an unsigned 128-bit integer in decimal.
    pub fn write_u128(&mut self, value: u128) {
        let mut digits = itoa::Buffer::new();
        self.buf.extend_from_slice(digits.format(value).as_bytes());
    }

    /// Appends a signed 128-bit integer in decimal.
    pub fn write_i128(&mut self, value: i128) {
        let mut digits = itoa::Buffer::new();
        self.buf.extend_from_slice(digits.format(value).as_bytes());
    }

    /// Appends `,`, which values always escape: use it between the fields of a
    /// composite [`KeyPart`] so their rendering stays injective.
    ///
    /// ```
    /// let mut key = cache_runtime::KeyWriter::new();
    /// key.write_str("a,b");
    /// key.write_separator();
    /// key.write_u64(7);
    /// assert_eq!(key.as_str(), "a%2Cb,7");
    /// ```
    pub fn write_separator(&mut self) {
        self.buf.push(b',');
    }

    /// Starts a method's key with its impl's type (`type_name::<Self>()`), so
    /// that two impls never share an entry: `app::Users%:count:7`.
    #[doc(hidden)]
    pub fn write_impl_scope(&mut self, type_name: &str) {
        self.write_name(type_name);
        self.write_literal(SCOPE_END);
    }

    /// Starts a default key with the function's path (see [`function_path`]).
    #[doc(hidden)]
    pub fn write_function_path(&mut self, path: &str) {
        self.write_name(path);
    }

    /// Writes a Rust path or type name readably: only `%`, braces, whitespace
    /// and control characters are escaped, which is enough to keep the
    /// hash-tag braces balanced and to find where the name ends.
    fn write_name(&mut self, name: &str) {
        let bytes = name.as_bytes();
        let mut start = 0;
        for (index, &byte) in bytes.iter().enumerate() {
            if matches!(byte, b'%' | b'{' | b'}' | b' ' | 0x7f) || byte < 0x20 {
                self.buf.extend_from_slice(&bytes[start..index]);
                self.push_escaped(byte);
                start = index + 1;
            }
        }
        self.buf.extend_from_slice(&bytes[start..]);
    }

    fn push_escaped(&mut self, byte: u8) {
        self.buf.push(b'%');
        self.push_hex(byte);
    }

    /// The key's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The key as text (keys are always valid UTF-8).
    #[must_use]
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf).unwrap_or("<invalid key>")
    }

    /// Length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Shortens an over-long key to a readable prefix plus a SHA-256 digest of the
    /// whole key; keys of at most [`MAX_KEY_LEN`] bytes are left unchanged.
    ///
    /// ```
    /// use cache_runtime::{KeyWriter, MAX_KEY_LEN};
    ///
    /// let mut key = KeyWriter::new();
    /// key.write_literal("search:");
    /// key.write_str(&"rust ".repeat(100));
    /// key.shorten();
    /// assert!(key.len() <= MAX_KEY_LEN);
    /// assert!(key.as_str().starts_with("search:rust%20rust"));
    /// ```
    pub fn shorten(&mut self) {
        if self.buf.len() <= MAX_KEY_LEN {
            return;
        }
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&self.buf);
        let mut keep = SHORTENED_PREFIX_LEN;
        // Escaping only emits ASCII, but literal template text may not be ASCII.
        while keep > 0 && !self.as_str().is_char_boundary(keep) {
            keep -= 1;
        }
        self.buf.truncate(keep);
        self.buf.extend_from_slice(b"%sha256:");
        for byte in digest {
            self.push_hex(byte);
        }
    }

    fn push_hex(&mut self, byte: u8) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        self.buf.extend_from_slice(&[HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]]);
    }
}

impl fmt::Debug for KeyWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for KeyWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The path of the function whose body creates `marker` (a closure), with its
/// impl's type and every generic argument: `app::Service<app::Mock>::count`,
/// `<app::Pg as app::Store>::user` (a trait's default body names its
/// implementor), `app::parse_as<u8>`. It is the start of a default key.
///
/// The text is [`core::any::type_name`]'s, which may change with the compiler:
/// then default keys change too, and old entries are misses.
#[doc(hidden)]
#[must_use]
pub fn function_path<F: ?Sized>(_marker: &F) -> &'static str {
    let mut path = core::any::type_name::<F>();
    // `::{{closure}}` for the marker, and once more for an `async fn`'s body.
    while path.ends_with('}') {
        match path.rsplit_once("::") {
            Some((head, last)) if last.starts_with('{') => path = head,
            _ => break,
        }
    }
    path
}

fn needs_escape(byte: u8) -> bool {
    matches!(byte, b':' | b'/' | b'|' | b',' | b'=' | b'&' | b';' | b'#' | b'%' | b'{' | b'}' | b' ' | 0x7f)
        || byte < 0x20
}

macro_rules! unsigned_key_part {
    ($($ty:ty),*) => {$(
        impl KeyPart for $ty {
            #[inline]
            fn write_key(&self, out: &mut KeyWriter) {
                out.write_u64(u64::from(*self));
            }
        }
    )*};
}
unsigned_key_part!(u8, u16, u32, u64);

macro_rules! signed_key_part {
    ($($ty:ty),*) => {$(
        impl KeyPart for $ty {
            #[inline]
            fn write_key(&self, out: &mut KeyWriter) {
                out.write_i64(i64::from(*self));
            }
        }
    )*};
}
signed_key_part!(i8, i16, i32, i64);

impl KeyPart for usize {
    #[inline]
    fn write_key(&self, out: &mut KeyWriter) {
        out.write_u128(*self as u128);
    }
}

impl KeyPart for isize {
    #[inline]
    fn write_key(&self, out: &mut KeyWriter) {
        out.write_i128(*self as i128);
    }
}

impl KeyPart for u128 {
    #[inline]
    fn write_key(&self, out: &mut KeyWriter) {
        out.write_u128(*self);
    }
}

impl KeyPart for i128 {
    #[inline]
    fn write_key(&self, out: &mut KeyWriter) {
        out.write_i128(*self);
    }
}

impl KeyPart for bool {
    #[inline]
    fn write_key(&self, out: &mut KeyWriter) {
        out.write_literal(if *self { "true" } else { "false" });
    }
}

impl KeyPart for char {
    #[inline]
    fn write_key(&self, out: &mut KeyWriter) {
        out.write_str(self.encode_utf8(&mut [0; 4]));
    }
}

impl KeyPart for str {
    #[inline]
    fn write_key(&self, out: &mut KeyWriter) {
        out.write_str(self);
    }
}

impl KeyPart for String {
    #[inline]
    fn write_key(&self, out: &mut KeyWriter) {
        out.write_str(self);
    }
}

impl KeyPart for Cow<'_, str> {
    #[inline]
    fn write_key(&self, out: &mut KeyWriter) {
        out.write_str(self);
    }
}

impl<T: KeyPart> KeyPart for Option<T> {
    const MAY_RENDER_NONE: bool = true;

    fn write_key(&self, out: &mut KeyWriter) {
        match self {
            None => out.write_literal(NONE_MARK),
            Some(value) => {
                if T::MAY_RENDER_NONE {
                    out.write_literal(SOME_MARK);
                }
                value.write_key(out);
            }
        }
    }
}

macro_rules! forward_key_part {
    ($($ptr:ty),*) => {$(
        impl<T: KeyPart + ?Sized> KeyPart for $ptr {
            const MAY_RENDER_NONE: bool = T::MAY_RENDER_NONE;

            #[inline]
            fn write_key(&self, out: &mut KeyWriter) {
                (**self).write_key(out);
            }
        }
    )*};
}
forward_key_part!(&T, &mut T, Box<T>, Arc<T>, Rc<T>);

#[cfg(test)]
mod tests {
    use super::*;

    fn render(parts: &[&dyn Fn(&mut KeyWriter)]) -> String {
        let mut out = KeyWriter::new();
        for part in parts {
            part(&mut out);
        }
        out.as_str().to_owned()
    }

    #[test]
    fn integers_and_strings_render_readably() {
        assert_eq!(render(&[&|w| w.write_part(&42_u64)]), "42");
        assert_eq!(render(&[&|w| w.write_part(&-7_i32)]), "-7");
        assert_eq!(render(&[&|w| w.write_part("plain-text.v1")]), "plain-text.v1");
        assert_eq!(render(&[&|w| w.write_part(&true)]), "true");
    }

    #[test]
    fn separators_and_escape_char_are_escaped() {
        assert_eq!(render(&[&|w| w.write_part("1:profile")]), "1%3Aprofile");
        assert_eq!(render(&[&|w| w.write_part("50%")]), "50%25");
        assert_eq!(render(&[&|w| w.write_part("{tag} x")]), "%7Btag%7D%20x");
    }

    #[test]
    fn options_are_injective_even_nested() {
        let none: Option<Option<u8>> = None;
        let some_none: Option<Option<u8>> = Some(None);
        let some_some: Option<Option<u8>> = Some(Some(1));
        let rendered: Vec<String> =
            [none, some_none, some_some].iter().map(|v| render(&[&|w| w.write_part(v)])).collect();
        assert_eq!(rendered, ["%none", "%some%none", "%some1"]);
        assert_ne!(render(&[&|w| w.write_part(&Some("%none"))]), "%none");
    }

    #[test]
    fn long_keys_are_shortened_with_a_readable_prefix() {
        let long = "x".repeat(500);
        let mut key = KeyWriter::new();
        key.write_literal("user:");
        key.write_part(long.as_str());
        key.shorten();
        assert!(key.len() <= MAX_KEY_LEN, "{}", key.len());
        assert!(key.as_str().starts_with("user:xxxx"));
        assert!(key.as_str().contains("%sha256:"));

        let mut other = KeyWriter::new();
        other.write_literal("user:");
        other.write_part(format!("{long}y").as_str());
        other.shorten();
        assert_ne!(key.as_str(), other.as_str());
    }

    #[test]
    fn shortening_respects_char_boundaries() {
        let mut key = KeyWriter::new();
        key.write_literal(&"é".repeat(150));
        key.shorten();
        assert!(key.as_str().starts_with('é'));
    }

    #[test]
    fn function_paths_name_the_impl_and_drop_closures() {
        struct Users;
        impl Users {
            fn path() -> &'static str {
                function_path(&|| {})
            }
            async fn async_path() -> &'static str {
                function_path(&|| {})
            }
        }
        let expected = "key::tests::function_paths_name_the_impl_and_drop_closures::Users::";
        assert!(Users::path().ends_with(&format!("{expected}path")), "{}", Users::path());
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let async_path = runtime.block_on(Users::async_path());
        assert!(async_path.ends_with(&format!("{expected}async_path")), "{async_path}");
    }

    #[test]
    fn impl_scopes_are_readable_and_end_unambiguously() {
        let mut key = KeyWriter::new();
        key.write_impl_scope("app::Pair<u8, app::{{closure}}>");
        key.write_literal("count:");
        key.write_part(&7_u8);
        assert_eq!(key.as_str(), "app::Pair<u8,%20app::%7B%7Bclosure%7D%7D>%:count:7");
    }

    /// Renders the template `t:<a>:<b>|<c>` the way generated code does.
    fn render_tuple(a: &str, b: &Option<String>, c: i64) -> Vec<u8> {
        let mut out = KeyWriter::new();
        out.write_literal("t:");
        out.write_part(a);
        out.write_literal(":");
        out.write_part(b);
        out.write_literal("|");
        out.write_part(&c);
        out.shorten();
        out.as_bytes().to_vec()
    }

    /// Strings drawn mostly from separators, escapes and markers.
    fn tricky() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex("([:/|,=&;#%{} ]|%3A|%25|%none|%some|[a-c0-9]|é){0,12}")
            .expect("valid regex")
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4096))]

        #[test]
        fn different_tuples_never_share_a_key(
            a1 in tricky(), b1 in proptest::option::of(tricky()), c1 in -3_i64..3,
            a2 in tricky(), b2 in proptest::option::of(tricky()), c2 in -3_i64..3,
        ) {
            let same_tuple = (&a1, &b1, c1) == (&a2, &b2, c2);
            let same_key = render_tuple(&a1, &b1, c1) == render_tuple(&a2, &b2, c2);
            proptest::prop_assert_eq!(same_tuple, same_key);
        }

        #[test]
        fn impl_scoped_keys_are_injective_and_apart_from_free_functions(
            t1 in tricky(), v1 in tricky(), t2 in tricky(), v2 in tricky(),
        ) {
            let scoped = |scope: &str, value: &str| {
                let mut out = KeyWriter::new();
                out.write_impl_scope(scope);
                out.write_part(value);
                out.as_bytes().to_vec()
            };
            let unscoped = |value: &str| {
                let mut out = KeyWriter::new();
                out.write_part(value);
                out.as_bytes().to_vec()
            };
            proptest::prop_assert_eq!((&t1, &v1) == (&t2, &v2), scoped(&t1, &v1) == scoped(&t2, &v2));
            proptest::prop_assert_ne!(scoped(&t1, &v1), unscoped(&v2));
        }

        #[test]
        fn arbitrary_strings_render_injectively(a in ".{0,40}", b in ".{0,40}") {
            let render = |x: &str, y: &str| {
                let mut out = KeyWriter::new();
                out.write_part(x);
                out.write_literal(":");
                out.write_part(y);
                out.as_bytes().to_vec()
            };
            proptest::prop_assert_eq!(a == b, render(&a, "x") == render(&b, "x"));
            proptest::prop_assert_eq!(a == b, render("x", &a) == render("x", &b));
            proptest::prop_assert!(std::str::from_utf8(&render(&a, &b)).is_ok());
        }
    }
}
