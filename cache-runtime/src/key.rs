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
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Ends the impl's type at the start of a method's key. Like every marker
/// below, `%` followed by a character that is not an uppercase hex digit,
/// which escaping never produces.
const SCOPE_END: &str = "%:";

/// Structure inside a value: sequences (slices, arrays, `Vec`) are
/// `%[a%.b%]`, tuples `%(a%.b%)`, and an element that renders to nothing is
/// `%e`, so `[]` and `[""]` differ. Values never contain these markers, so
/// nested values (`Vec<Vec<String>>`, tuples of strings with separators) stay
/// injective, and a sequence is self-delimiting wherever it sits in a template.
const SEQUENCE_START: &str = "%[";
const SEQUENCE_END: &str = "%]";
const TUPLE_START: &str = "%(";
const TUPLE_END: &str = "%)";
const ELEMENT_SEPARATOR: &str = "%.";
const EMPTY_ELEMENT: &str = "%e";

/// A value that can be placed into a cache key.
///
/// Implemented for integers, `bool`, `char`, strings, [`SystemTime`]
/// (nanoseconds since the Unix epoch, negative before it), `Option<T>`,
/// tuples of up to six key parts, slices, arrays and `Vec`s of key parts, and
/// references and smart pointers to those. With cargo features of this crate:
/// `uuid::Uuid` (`uuid`); `chrono`'s `DateTime<Utc>`, `NaiveDateTime` and
/// `NaiveDate` (`chrono`); `time`'s `OffsetDateTime`, `PrimitiveDateTime` and
/// `Date` (`time`). Dates and times render in ISO 8601's basic format, which
/// has no `:`, an instant in UTC: `20240102T030405.5Z`.
///
/// Implement it for your own identifiers by writing their parts through the
/// [`KeyWriter`], which escapes them (for another crate's type, wrap it in a
/// newtype of yours first):
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
///
/// Composite values keep their structure in the key, so different values
/// never render alike:
///
/// ```
/// use cache_runtime::KeyWriter;
///
/// let render = |part: &dyn Fn(&mut KeyWriter)| { let mut out = KeyWriter::new(); part(&mut out); out.to_string() };
/// assert_eq!(render(&|out| out.write_part(&vec!["a", "b:c"])), "%[a%.b%3Ac%]");
/// assert_eq!(render(&|out| out.write_part(&("a", 7_u8))), "%(a%.7%)");
/// assert_ne!(render(&|out| out.write_part(&Vec::<String>::new())), render(&|out| out.write_part(&vec![""])));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key",
    label = "this value is placed into the cache key",
    note = "use a field that is a key part (`<param.field>`), or list the parameter in `skip = [...]` (`skip = [self]` for a method's receiver)",
    note = "key parts are integers, `bool`, `char`, strings and `SystemTime`, and `Option`s, tuples, slices, arrays and `Vec`s of them; `uuid`, `chrono` and `time` types need the cargo feature of that name on `cache-runtime`",
    note = "for a type of your own, implement `cache_runtime::KeyPart` (wrap another crate's type in a newtype first); in a generic function, add the bound `T: cache_runtime::KeyPart`"
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
    /// A key as rendered (and shortened) elsewhere, such as in a bus message.
    pub(crate) fn from_rendered(bytes: &[u8]) -> Self {
        Self { buf: SmallVec::from_slice(bytes) }
    }

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
        let (head, name) = reader_path(path);
        self.write_name(head);
        self.write_name(name);
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

    /// Writes one element of a sequence or tuple: `%.` before all but the
    /// first, and `%e` for an element that renders to nothing.
    fn write_element<T: KeyPart + ?Sized>(&mut self, index: usize, element: &T) {
        if index > 0 {
            self.write_literal(ELEMENT_SEPARATOR);
        }
        let before = self.buf.len();
        element.write_key(self);
        if self.buf.len() == before {
            self.write_literal(EMPTY_ELEMENT);
        }
    }

    /// `value` in decimal, zero-padded to `width` digits.
    fn write_padded(&mut self, value: u64, width: usize) {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(value);
        for _ in digits.len()..width {
            self.buf.push(b'0');
        }
        self.buf.extend_from_slice(digits.as_bytes());
    }

    /// `YYYYMMDD`, ISO 8601's basic format (no `:`, which keys reserve); a year
    /// before 0 has a `-`, one after 9999 a `+`.
    #[cfg_attr(not(any(feature = "chrono", feature = "time")), allow(dead_code))]
    fn write_date(&mut self, year: i32, month: u32, day: u32) {
        if year < 0 {
            self.buf.push(b'-');
        } else if year > 9999 {
            self.buf.push(b'+');
        }
        self.write_padded(u64::from(year.unsigned_abs()), 4);
        self.write_padded(u64::from(month), 2);
        self.write_padded(u64::from(day), 2);
    }

    /// `THHMMSS` and, when not zero, `.` and the fraction of a second without
    /// trailing zeros. `nanos` of a second or more mark a leap second (`60`).
    #[cfg_attr(not(any(feature = "chrono", feature = "time")), allow(dead_code))]
    fn write_time(&mut self, hour: u32, minute: u32, second: u32, nanos: u32) {
        const NANOS_PER_SECOND: u32 = 1_000_000_000;
        let (second, mut nanos) =
            if nanos >= NANOS_PER_SECOND { (second + 1, nanos - NANOS_PER_SECOND) } else { (second, nanos) };
        self.buf.push(b'T');
        self.write_padded(u64::from(hour), 2);
        self.write_padded(u64::from(minute), 2);
        self.write_padded(u64::from(second), 2);
        if nanos > 0 {
            let mut width = 9;
            while nanos % 10 == 0 {
                nanos /= 10;
                width -= 1;
            }
            self.buf.push(b'.');
            self.write_padded(u64::from(nanos), width);
        }
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

/// Prefix of the companion a `#[cached]` function's macro generates beside it.
const COMPANION_PREFIX: &str = "__cached_";

/// A function path seen from a `#[cached]` function's companion, as the
/// function's own: `app::__cached_user` is `("app::", "user")`.
pub(crate) fn reader_path(path: &str) -> (&str, &str) {
    // The last `::` outside generic arguments (`app::Service<app::Pg>::__cached_count`).
    let bytes = path.as_bytes();
    let mut depth = 0_usize;
    let mut name_start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        match byte {
            b'<' => depth += 1,
            b'>' => depth = depth.saturating_sub(1),
            b':' if depth == 0 && index > 0 && bytes[index - 1] == b':' => name_start = index + 1,
            _ => {}
        }
    }
    match path[name_start..].strip_prefix(COMPANION_PREFIX) {
        Some(name) => (&path[..name_start], name),
        None => (path, ""),
    }
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

impl<T: KeyPart> KeyPart for [T] {
    fn write_key(&self, out: &mut KeyWriter) {
        out.write_literal(SEQUENCE_START);
        for (index, element) in self.iter().enumerate() {
            out.write_element(index, element);
        }
        out.write_literal(SEQUENCE_END);
    }
}

impl<T: KeyPart, const N: usize> KeyPart for [T; N] {
    #[inline]
    fn write_key(&self, out: &mut KeyWriter) {
        self.as_slice().write_key(out);
    }
}

impl<T: KeyPart> KeyPart for Vec<T> {
    #[inline]
    fn write_key(&self, out: &mut KeyWriter) {
        self.as_slice().write_key(out);
    }
}

macro_rules! tuple_key_part {
    ($($name:ident $index:tt),+) => {
        impl<$($name: KeyPart),+> KeyPart for ($($name,)+) {
            fn write_key(&self, out: &mut KeyWriter) {
                out.write_literal(TUPLE_START);
                $(out.write_element($index, &self.$index);)+
                out.write_literal(TUPLE_END);
            }
        }
    };
}
tuple_key_part!(A 0);
tuple_key_part!(A 0, B 1);
tuple_key_part!(A 0, B 1, C 2);
tuple_key_part!(A 0, B 1, C 2, D 3);
tuple_key_part!(A 0, B 1, C 2, D 3, E 4);
tuple_key_part!(A 0, B 1, C 2, D 3, E 4, F 5);

/// Nanoseconds since the Unix epoch, negative before it.
impl KeyPart for SystemTime {
    fn write_key(&self, out: &mut KeyWriter) {
        let nanos = match self.duration_since(UNIX_EPOCH) {
            Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
            Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
        };
        out.write_i128(nanos);
    }
}

/// Lower-case and hyphenated: `67e55044-10b1-426f-9247-bb680e5fe0c8`.
#[cfg(feature = "uuid")]
impl KeyPart for uuid::Uuid {
    fn write_key(&self, out: &mut KeyWriter) {
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        out.write_literal(self.hyphenated().encode_lower(&mut text));
    }
}

#[cfg(feature = "chrono")]
mod chrono_parts {
    use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};

    use super::{KeyPart, KeyWriter};

    /// `20240102`.
    impl KeyPart for NaiveDate {
        fn write_key(&self, out: &mut KeyWriter) {
            out.write_date(self.year(), self.month(), self.day());
        }
    }

    /// `20240102T030405.5`.
    impl KeyPart for NaiveDateTime {
        fn write_key(&self, out: &mut KeyWriter) {
            self.date().write_key(out);
            out.write_time(self.hour(), self.minute(), self.second(), self.nanosecond());
        }
    }

    /// `20240102T030405.5Z`.
    impl KeyPart for DateTime<Utc> {
        fn write_key(&self, out: &mut KeyWriter) {
            self.naive_utc().write_key(out);
            out.write_literal("Z");
        }
    }
}

#[cfg(feature = "time")]
mod time_parts {
    use time::{Date, OffsetDateTime, PrimitiveDateTime};

    use super::{KeyPart, KeyWriter};

    /// `20240102`.
    impl KeyPart for Date {
        fn write_key(&self, out: &mut KeyWriter) {
            out.write_date(self.year(), u32::from(u8::from(self.month())), u32::from(self.day()));
        }
    }

    /// `20240102T030405.5`.
    impl KeyPart for PrimitiveDateTime {
        fn write_key(&self, out: &mut KeyWriter) {
            self.date().write_key(out);
            let time = self.time();
            out.write_time(
                u32::from(time.hour()),
                u32::from(time.minute()),
                u32::from(time.second()),
                time.nanosecond(),
            );
        }
    }

    /// The instant, in UTC: `20240102T030405.5Z` whatever the offset, as two
    /// values that compare equal render alike. An instant whose UTC date is
    /// out of `time`'s range renders as nanoseconds since the Unix epoch.
    impl KeyPart for OffsetDateTime {
        fn write_key(&self, out: &mut KeyWriter) {
            match self.checked_to_offset(time::UtcOffset::UTC) {
                Some(utc) => {
                    PrimitiveDateTime::new(utc.date(), utc.time()).write_key(out);
                    out.write_literal("Z");
                }
                None => out.write_i128(self.unix_timestamp_nanos()),
            }
        }
    }
}

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
    fn companion_paths_are_their_readers_paths() {
        assert_eq!(reader_path("app::__cached_user"), ("app::", "user"));
        assert_eq!(
            reader_path("app::Service<app::Pg>::__cached_count"),
            ("app::Service<app::Pg>::", "count")
        );
        assert_eq!(reader_path("app::get<app::__cached_x>"), ("app::get<app::__cached_x>", ""));
        assert_eq!(reader_path("app::user"), ("app::user", ""));
    }

    #[test]
    fn impl_scopes_are_readable_and_end_unambiguously() {
        let mut key = KeyWriter::new();
        key.write_impl_scope("app::Pair<u8, app::{{closure}}>");
        key.write_literal("count:");
        key.write_part(&7_u8);
        assert_eq!(key.as_str(), "app::Pair<u8,%20app::%7B%7Bclosure%7D%7D>%:count:7");
    }

    #[test]
    fn sequences_and_tuples_keep_their_structure() {
        assert_eq!(render(&[&|w| w.write_part(&vec![1_u8, 2])]), "%[1%.2%]");
        assert_eq!(render(&[&|w| w.write_part(&[["a"], [""]])]), "%[%[a%]%.%[%e%]%]");
        assert_eq!(render(&[&|w| w.write_part(&Vec::<u8>::new())]), "%[%]");
        assert_eq!(render(&[&|w| w.write_part(&vec![""])]), "%[%e%]");
        assert_eq!(render(&[&|w| w.write_part(&("a,b", Some(1_u8), vec!['x']))]), "%(a%2Cb%.1%.%[x%]%)");
        assert_eq!(
            render(&[&|w| w.write_part(&(1_u8, 2_u8, 3_u8, 4_u8, 5_u8, 6_u8))]),
            "%(1%.2%.3%.4%.5%.6%)"
        );
        let slice: &[u8] = &[7];
        assert_eq!(render(&[&|w| w.write_part(slice)]), "%[7%]");
        assert_eq!(render(&[&|w| w.write_part(&None::<Vec<u8>>)]), "%none");
    }

    #[test]
    fn system_times_are_nanoseconds_since_the_epoch() {
        use std::time::Duration;
        let at = |time: SystemTime| render(&[&|w| w.write_part(&time)]);
        assert_eq!(at(UNIX_EPOCH), "0");
        assert_eq!(at(UNIX_EPOCH + Duration::new(1, 5)), "1000000005");
        assert_eq!(at(UNIX_EPOCH - Duration::new(1, 5)), "-1000000005");
    }

    #[cfg(feature = "uuid")]
    #[test]
    fn uuids_are_lower_case_and_hyphenated() {
        let id = uuid::Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e0c8);
        assert_eq!(render(&[&|w| w.write_part(&id)]), "67e55044-10b1-426f-9247-bb680e5fe0c8");
    }

    #[cfg(feature = "chrono")]
    #[test]
    fn chrono_values_render_in_iso_basic_format() {
        use chrono::{NaiveDate, TimeZone, Utc};
        let date = NaiveDate::from_ymd_opt(2024, 1, 2).expect("valid");
        assert_eq!(render(&[&|w| w.write_part(&date)]), "20240102");
        let time = date.and_hms_nano_opt(3, 4, 5, 500_000_000).expect("valid");
        assert_eq!(render(&[&|w| w.write_part(&time)]), "20240102T030405.5");
        let instant = Utc.from_utc_datetime(&time);
        assert_eq!(render(&[&|w| w.write_part(&instant)]), "20240102T030405.5Z");
        let leap = date.and_hms_nano_opt(23, 59, 59, 1_000_000_001).expect("a leap second");
        assert_eq!(render(&[&|w| w.write_part(&leap)]), "20240102T235960.000000001");
        let ancient = NaiveDate::from_ymd_opt(-44, 3, 15).expect("valid");
        assert_eq!(render(&[&|w| w.write_part(&ancient)]), "-00440315");
        let far = NaiveDate::from_ymd_opt(12_345, 1, 1).expect("valid");
        assert_eq!(render(&[&|w| w.write_part(&far)]), "+123450101");
    }

    #[cfg(feature = "time")]
    #[test]
    fn time_values_render_in_iso_basic_format_and_instants_in_utc() {
        use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
        let date = Date::from_calendar_date(2024, Month::January, 2).expect("valid");
        assert_eq!(render(&[&|w| w.write_part(&date)]), "20240102");
        let time = PrimitiveDateTime::new(date, Time::from_hms_nano(3, 4, 5, 120).expect("valid"));
        assert_eq!(render(&[&|w| w.write_part(&time)]), "20240102T030405.00000012");
        let utc = time.assume_utc();
        let paris = utc.to_offset(UtcOffset::from_hms(1, 0, 0).expect("valid"));
        assert_eq!(utc, paris);
        assert_eq!(render(&[&|w| w.write_part(&paris)]), "20240102T030405.00000012Z");
        assert_eq!(render(&[&|w| w.write_part(&utc)]), render(&[&|w| w.write_part(&paris)]));
        assert_eq!(render(&[&|w| w.write_part(&OffsetDateTime::UNIX_EPOCH)]), "19700101T000000Z");
    }

    /// A value decoded from its rendering: the test's proof that rendering is
    /// injective is that it can be undone.
    #[derive(Debug, Clone, PartialEq)]
    enum Node {
        Atom(String),
        None,
        Sequence(Vec<Node>),
        Tuple(Vec<Node>),
    }

    fn atom(text: &str) -> Node {
        Node::Atom(text.to_owned())
    }

    fn sequence(items: impl IntoIterator<Item = Node>) -> Node {
        Node::Sequence(items.into_iter().collect())
    }

    fn optional(value: Option<&String>) -> Node {
        value.map_or(Node::None, |text| atom(text))
    }

    /// Decodes one rendered value, all of `text`.
    fn decode(text: &str) -> Node {
        let mut rest = text.as_bytes();
        let node = decode_value(&mut rest);
        assert!(rest.is_empty(), "trailing {:?} in {text:?}", String::from_utf8_lossy(rest));
        node
    }

    fn is_marker(rest: &[u8]) -> bool {
        rest.len() >= 2 && rest[0] == b'%' && !matches!(rest[1], b'0'..=b'9' | b'A'..=b'F')
    }

    fn decode_value(rest: &mut &[u8]) -> Node {
        for (marker, end, tuple) in [(SEQUENCE_START, SEQUENCE_END, false), (TUPLE_START, TUPLE_END, true)] {
            if let Some(after) = rest.strip_prefix(marker.as_bytes()) {
                *rest = after;
                let elements = decode_elements(rest, end);
                return if tuple { Node::Tuple(elements) } else { Node::Sequence(elements) };
            }
        }
        for (marker, node) in [(NONE_MARK, Node::None), (EMPTY_ELEMENT, atom(""))] {
            if let Some(after) = rest.strip_prefix(marker.as_bytes()) {
                *rest = after;
                return node;
            }
        }
        let mut bytes = Vec::new();
        while !rest.is_empty() && !is_marker(rest) {
            if rest[0] == b'%' {
                let hex = std::str::from_utf8(&rest[1..3]).expect("ascii");
                bytes.push(u8::from_str_radix(hex, 16).expect("hex"));
                *rest = &rest[3..];
            } else {
                assert!(!needs_escape(rest[0]), "unescaped {:?}", rest[0] as char);
                bytes.push(rest[0]);
                *rest = &rest[1..];
            }
        }
        Node::Atom(String::from_utf8(bytes).expect("utf-8"))
    }

    fn decode_elements(rest: &mut &[u8], end: &str) -> Vec<Node> {
        let mut elements = Vec::new();
        if let Some(after) = rest.strip_prefix(end.as_bytes()) {
            *rest = after;
            return elements;
        }
        loop {
            elements.push(decode_value(rest));
            if let Some(after) = rest.strip_prefix(ELEMENT_SEPARATOR.as_bytes()) {
                *rest = after;
            } else if let Some(after) = rest.strip_prefix(end.as_bytes()) {
                *rest = after;
                return elements;
            } else {
                panic!("expected `%.` or `{end}` at {:?}", String::from_utf8_lossy(rest));
            }
        }
    }

    fn rendered<T: KeyPart + ?Sized>(value: &T) -> String {
        let mut out = KeyWriter::new();
        out.write_part(value);
        out.as_str().to_owned()
    }

    #[test]
    fn nested_values_over_a_small_domain_never_collide() {
        let atoms = ["", "a", ",", "%e", "%.", "%]", "]", "%none"];
        let mut inner: Vec<Vec<&str>> = vec![Vec::new()];
        inner.extend(atoms.iter().map(|a| vec![*a]));
        inner.extend(atoms.iter().flat_map(|a| atoms.iter().map(move |b| vec![*a, *b])));
        let mut seen = std::collections::HashMap::new();
        let mut check = |key: String, value: String| {
            if let Some(previous) = seen.insert(key.clone(), value.clone()) {
                panic!("{previous} and {value} both render {key}");
            }
        };
        check(rendered(&Vec::<Vec<&str>>::new()), "[]".into());
        for a in &inner {
            check(rendered(&vec![a.clone()]), format!("[{a:?}]"));
            for b in &inner {
                check(rendered(&vec![a.clone(), b.clone()]), format!("[{a:?}, {b:?}]"));
            }
        }
        let mut tuples = std::collections::HashSet::new();
        for a in &inner {
            for b in atoms {
                for c in [None, Some(""), Some("%none"), Some("a")] {
                    assert!(tuples.insert(rendered(&(a, b, c))), "({a:?}, {b:?}, {c:?})");
                }
            }
        }
    }

    /// Renders the template `t:<a>:<b>|<c>/<d>` the way generated code does.
    fn render_tuple(a: &str, b: &Option<String>, c: i64, d: &[(String, Vec<String>)]) -> Vec<u8> {
        let mut out = KeyWriter::new();
        out.write_literal("t:");
        out.write_part(a);
        out.write_literal(":");
        out.write_part(b);
        out.write_literal("|");
        out.write_part(&c);
        out.write_literal("/");
        out.write_part(d);
        out.shorten();
        out.as_bytes().to_vec()
    }

    /// Strings drawn mostly from separators, escapes and markers.
    fn tricky() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::string::string_regex(
            r"([:/|,=&;#%{} ]|%3A|%25|%none|%some|%e|%\.|%\[|%\]|%\(|%\)|[a-c0-9]|é){0,12}",
        )
        .expect("valid regex")
    }

    /// Small lists of tricky strings.
    fn tricky_list() -> impl proptest::strategy::Strategy<Value = Vec<String>> {
        proptest::collection::vec(tricky(), 0..3)
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4096))]

        #[test]
        fn different_tuples_never_share_a_key(
            a1 in tricky(), b1 in proptest::option::of(tricky()), c1 in -3_i64..3,
            d1 in proptest::collection::vec((tricky(), tricky_list()), 0..2),
            a2 in tricky(), b2 in proptest::option::of(tricky()), c2 in -3_i64..3,
            d2 in proptest::collection::vec((tricky(), tricky_list()), 0..2),
        ) {
            let same_tuple = (&a1, &b1, c1, &d1) == (&a2, &b2, c2, &d2);
            let same_key = render_tuple(&a1, &b1, c1, &d1) == render_tuple(&a2, &b2, c2, &d2);
            proptest::prop_assert_eq!(same_tuple, same_key);
        }

        #[test]
        fn nested_sequences_decode_to_what_was_rendered(value in proptest::collection::vec(tricky_list(), 0..4)) {
            let expected = sequence(value.iter().map(|inner| sequence(inner.iter().map(|s| atom(s)))));
            proptest::prop_assert_eq!(decode(&rendered(&value)), expected);
        }

        #[test]
        fn tuples_and_arrays_decode_to_what_was_rendered(
            first in tricky(), list in tricky_list(), maybe in proptest::option::of(tricky()),
            pair in (tricky(), tricky()),
        ) {
            let value = (first.clone(), list.clone(), maybe.clone(), [pair.0.clone(), pair.1.clone()]);
            let expected = Node::Tuple(vec![
                atom(&first),
                sequence(list.iter().map(|s| atom(s))),
                optional(maybe.as_ref()),
                sequence([atom(&pair.0), atom(&pair.1)]),
            ]);
            proptest::prop_assert_eq!(decode(&rendered(&value)), expected);
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
