//! Codecs and the entry envelope, for values that leave the process.
//!
//! An encoded entry is an [`Envelope`] header followed by the codec's bytes.
//! The header carries a format version, the codec's id, a fingerprint of the
//! value type's serde [`Shape`] (so an entry written by a build whose type had
//! other fields is a miss, not a value decoded into the wrong fields), the fill time, the freshness deadlines and the generations of
//! the entry's tags and versions seen when its load began. Anything that does
//! not decode (garbage, another format version, another type, another codec)
//! is a [`DecodeError`], which the cache treats as a miss.
//!
//! Entries are untrusted bytes, so every built-in codec bounds nesting at
//! [`MAX_DEPTH`] levels: an entry nested deeper (corrupt, or crafted to
//! overflow the stack) is a [`DecodeError`], and a value nested deeper is an
//! [`EncodeError`], never written since it could never be read back.

mod depth;
mod heap;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use self::depth::MAX_DEPTH;
pub(crate) use self::heap::heap_weight;
use crate::entry_info::{EntryMeta, generation_fingerprint};
pub use crate::shape::{Shape, shape_of};
use crate::value::{SharedValue, ValueOps};

/// Version of the envelope layout; entries of other versions are misses.
pub const FORMAT_VERSION: u8 = 2;

/// Turns values into bytes and back.
///
/// The default, [`Postcard`], is compact and fast. Postcard is not
/// self-describing: types whose serde attributes skip fields conditionally
/// (`skip_serializing_if`) or are `untagged`/`flatten`ed do not round-trip; use
/// [`Json`] for those (`#[cached(codec = cache_runtime::Json, ...)]`).
///
/// # Nesting
/// The built-in codecs refuse values nested [`MAX_DEPTH`] (128) levels deep:
/// sequences, maps, structs, tuples, enum variants, `Some` and newtype structs
/// may nest up to 127 deep, as serde_json's own limit allows. A value nested
/// deeper is not stored in Redis (its encode fails: the call returns it and
/// counts an `encode` error); an entry nested deeper, corrupt or crafted to
/// overflow the stack, is a miss. A codec of your own decodes untrusted bytes
/// too: bound its nesting as well.
///
/// ```
/// use cache_runtime::{Codec, Postcard};
///
/// let mut bytes = Vec::new();
/// Postcard::encode(&(7_u32, "seven".to_string()), &mut bytes).unwrap();
/// let back: (u32, String) = Postcard::decode(&bytes).unwrap();
/// assert_eq!(back, (7, "seven".to_string()));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a cache codec",
    label = "`codec = ...` names a type implementing `cache_runtime::Codec`",
    note = "use `cache_runtime::Postcard` (the default), `cache_runtime::Json` or, with the `bincode` feature, `cache_runtime::Bincode`; or implement `Codec`"
)]
pub trait Codec: Send + Sync + 'static {
    /// A stable id written into every envelope; entries of another codec are misses.
    const ID: u8;

    /// Appends the encoding of `value` to `out`.
    ///
    /// # Errors
    /// When the value cannot be represented in this format.
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), EncodeError>;

    /// Decodes a value from exactly `bytes`.
    ///
    /// # Errors
    /// When the bytes are not a valid encoding of `T`.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError>;
}

/// The default codec: [postcard](https://docs.rs/postcard), a compact, maintained serde format.
///
/// ```
/// use cache_runtime::{Codec, Postcard};
/// let mut bytes = Vec::new();
/// Postcard::encode(&42_u64, &mut bytes).unwrap();
/// assert_eq!(bytes, [42]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

impl Codec for Postcard {
    const ID: u8 = 1;

    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let taken = std::mem::take(out);
        *out = postcard::to_extend(&depth::limited(value), taken).map_err(|e| EncodeError(e.to_string()))?;
        Ok(())
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
        let mut deserializer = postcard::Deserializer::from_bytes(bytes);
        let value = depth::deserialize(&mut deserializer).map_err(|e| DecodeError::new(e.to_string()))?;
        match deserializer.finalize() {
            Ok([]) => Ok(value),
            Ok(rest) => Err(DecodeError::trailing(rest.len())),
            Err(e) => Err(DecodeError::new(e.to_string())),
        }
    }
}

/// JSON through `serde_json`: self-describing, larger and slower than [`Postcard`].
///
/// ```
/// use cache_runtime::{Codec, Json};
/// let mut bytes = Vec::new();
/// Json::encode(&vec![1, 2], &mut bytes).unwrap();
/// assert_eq!(bytes, b"[1,2]");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    const ID: u8 = 2;

    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        serde_json::to_writer(out, &depth::limited(value)).map_err(|e| EncodeError(e.to_string()))
    }

    /// serde_json stops at 128 levels of arrays and objects by itself; the
    /// depth limit also bounds what takes no bracket (`Some`, newtype structs).
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value = depth::deserialize(&mut deserializer).map_err(|e| DecodeError::new(e.to_string()))?;
        deserializer.end().map_err(|e| DecodeError::new(e.to_string()))?;
        Ok(value)
    }
}

/// [bincode](https://docs.rs/bincode/2.0.1) 2.0.1 with its standard
/// configuration (little-endian, variable-length integers), behind the
/// `bincode` cargo feature.
///
/// Opt-in and pinned: bincode 2.0.1 is the crate's last working release (3.0.0
/// is a compile error by design) and the crate is unmaintained
/// ([RUSTSEC-2025-0141](https://rustsec.org/advisories/RUSTSEC-2025-0141)).
/// It is here for applications that already use it; [`Postcard`], the default,
/// is as compact and maintained. Like postcard it is not self-describing. A
/// decode refuses a value that would claim more than 256 MiB of memory, so a
/// corrupt length cannot make it allocate without bound.
///
/// ```
/// use cache_runtime::{Bincode, Codec};
///
/// let mut bytes = Vec::new();
/// Bincode::encode(&(7_u32, "seven".to_string()), &mut bytes).unwrap();
/// let back: (u32, String) = Bincode::decode(&bytes).unwrap();
/// assert_eq!(back, (7, "seven".to_string()));
/// ```
#[cfg(feature = "bincode")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

#[cfg(feature = "bincode")]
mod bincode_codec {
    use bincode::de::read::Reader;
    use bincode::serde::OwnedSerdeDecoder;

    use super::{Bincode, Codec, DecodeError, DeserializeOwned, EncodeError, Serialize, depth};

    /// Most memory a decode may claim (lengths times element sizes).
    const LIMIT: usize = 256 * 1024 * 1024;

    const fn config() -> bincode::config::Configuration<
        bincode::config::LittleEndian,
        bincode::config::Varint,
        bincode::config::Limit<LIMIT>,
    > {
        bincode::config::standard().with_limit::<LIMIT>()
    }

    /// Appends to the entry's bytes.
    struct Append<'a>(&'a mut Vec<u8>);

    impl bincode::enc::write::Writer for Append<'_> {
        fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
            self.0.extend_from_slice(bytes);
            Ok(())
        }
    }

    /// The bytes of an entry not read yet.
    struct Unread<'a>(&'a [u8]);

    impl Reader for Unread<'_> {
        fn read(&mut self, bytes: &mut [u8]) -> Result<(), bincode::error::DecodeError> {
            let Some((read, rest)) = self.0.split_at_checked(bytes.len()) else {
                return Err(bincode::error::DecodeError::UnexpectedEnd {
                    additional: bytes.len() - self.0.len(),
                });
            };
            bytes.copy_from_slice(read);
            self.0 = rest;
            Ok(())
        }

        fn peek_read(&mut self, n: usize) -> Option<&[u8]> {
            self.0.get(..n)
        }

        fn consume(&mut self, n: usize) {
            self.0 = self.0.get(n..).unwrap_or_default();
        }
    }

    impl Codec for Bincode {
        const ID: u8 = 3;

        fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), EncodeError> {
            bincode::serde::encode_into_writer(depth::limited(value), Append(out), config())
                .map_err(|e| EncodeError::new(e.to_string()))
        }

        /// bincode has no nesting limit of its own: its deserializer goes
        /// through the depth limit.
        fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
            let mut unread = Unread(bytes);
            let mut decoder = OwnedSerdeDecoder::from_reader(&mut unread, config());
            let value =
                depth::deserialize(decoder.as_deserializer()).map_err(|e| DecodeError::new(e.to_string()))?;
            match unread.0.len() {
                0 => Ok(value),
                rest => Err(DecodeError::trailing(rest)),
            }
        }
    }
}

/// A value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(String);

impl EncodeError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode the value: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}

/// Bytes that are not a valid entry: treated as a miss and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl DecodeError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }

    fn trailing(bytes: usize) -> Self {
        Self(format!("{bytes} trailing bytes after the value"))
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undecodable cache entry: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// The header of an encoded entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// [`FORMAT_VERSION`] when written.
    pub format: u8,
    /// The [`Codec::ID`] of the payload.
    pub codec: u8,
    /// Fingerprint of the value type's serde [`Shape`], the function's `schema`
    /// and a generic function's type arguments: entries of another are misses.
    pub fingerprint: u64,
    /// Which `#[cached]` function wrote the entry (a hash of its path).
    pub site: u64,
    /// When the value was stored, in milliseconds since the Unix epoch.
    pub filled_at_ms: u64,
    /// Until when the value is fresh, in milliseconds since the Unix epoch.
    pub fresh_until_ms: u64,
    /// Until when the value may be served stale while it is refreshed.
    pub stale_until_ms: u64,
    /// How long the load took, in microseconds.
    pub load_micros: u64,
    /// Whether the entry is a cached absence (`None`, `Ok(None)`): no payload follows.
    pub absent: bool,
    /// The tag and version counters the entry was stored under, with the
    /// generation each had when the load began.
    pub dependencies: Vec<(String, u64)>,
}

impl Envelope {
    /// Writes the header and then the value with codec `C`.
    ///
    /// # Errors
    /// When the value cannot be encoded.
    ///
    /// ```
    /// use cache_runtime::{Envelope, Postcard, codec::FORMAT_VERSION};
    ///
    /// let header = Envelope { format: FORMAT_VERSION, codec: 1, fingerprint: 9, site: 4,
    ///     filled_at_ms: 1, fresh_until_ms: 2, stale_until_ms: 2, load_micros: 5, absent: false,
    ///     dependencies: vec![("t:org:7".into(), 3)] };
    /// let bytes = header.encode::<Postcard, _>(&"hello").unwrap();
    /// let (back, value): (_, String) = Envelope::decode::<Postcard, _>(&bytes, 9).unwrap();
    /// assert_eq!((back, value.as_str()), (header, "hello"));
    /// ```
    pub fn encode<C: Codec, T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, EncodeError> {
        let mut out = self.header_bytes()?;
        C::encode(value, &mut out)?;
        Ok(out)
    }

    fn header_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        postcard::to_extend(self, Vec::with_capacity(64)).map_err(|e| EncodeError(e.to_string()))
    }

    /// Writes the header and then a type-erased value with its own operations.
    pub(crate) fn encode_erased(&self, ops: &ValueOps, value: &SharedValue) -> Result<Vec<u8>, EncodeError> {
        let mut out = self.header_bytes()?;
        if !self.absent {
            (ops.encode)(&**value, &mut out)?;
        }
        Ok(out)
    }

    /// Decodes the payload after this header into a type-erased value, checking codec and type.
    pub(crate) fn decode_payload(
        &self,
        payload: &[u8],
        ops: &ValueOps,
        fingerprint: u64,
    ) -> Result<SharedValue, DecodeError> {
        self.check(ops.codec, fingerprint)?;
        if self.absent {
            return if payload.is_empty() {
                Ok(crate::value::absent())
            } else {
                Err(DecodeError::new("an absence with a payload"))
            };
        }
        (ops.decode)(payload)
    }

    fn check(&self, codec: u8, fingerprint: u64) -> Result<(), DecodeError> {
        if self.codec != codec {
            return Err(DecodeError::new(format!("codec {}, expected {codec}", self.codec)));
        }
        if self.fingerprint != fingerprint {
            return Err(DecodeError::new("entry holds another value type"));
        }
        Ok(())
    }

    /// The entry's times and generations.
    pub(crate) fn meta(&self) -> EntryMeta {
        EntryMeta {
            filled_at_ms: self.filled_at_ms,
            fresh_until_ms: self.fresh_until_ms,
            stale_until_ms: self.stale_until_ms,
            load_micros: self.load_micros,
            generations: generation_fingerprint(self.dependencies.iter().map(|(_, generation)| *generation)),
            other_dependencies: false,
        }
    }

    /// Reads the header only, checking format version.
    ///
    /// # Errors
    /// When the bytes do not start with a header of this format version.
    pub fn decode_header(bytes: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let first = *bytes.first().ok_or_else(|| DecodeError::new("empty entry"))?;
        if first != FORMAT_VERSION {
            return Err(DecodeError::new(format!("format version {first}, expected {FORMAT_VERSION}")));
        }
        postcard::take_from_bytes::<Self>(bytes).map_err(|e| DecodeError::new(e.to_string()))
    }

    /// Reads a whole entry written by [`Envelope::encode`] with the same codec and type.
    ///
    /// # Errors
    /// Another format version, codec or type fingerprint, or undecodable bytes.
    pub fn decode<C: Codec, T: DeserializeOwned>(
        bytes: &[u8],
        fingerprint: u64,
    ) -> Result<(Self, T), DecodeError> {
        let (header, payload) = Self::decode_header(bytes)?;
        header.check(C::ID, fingerprint)?;
        let value = C::decode(payload)?;
        Ok((header, value))
    }
}

/// A stable 64-bit fingerprint (FNV-1a) of type names: the value type and, for
/// generic functions, the type arguments. Entries of another type are misses.
///
/// ```
/// let a = cache_runtime::codec::type_fingerprint(&["u32"]);
/// let b = cache_runtime::codec::type_fingerprint(&["u64"]);
/// assert_ne!(a, b);
/// ```
#[must_use]
pub fn type_fingerprint(type_names: &[&str]) -> u64 {
    let mut hash = Fnv::default();
    for name in type_names {
        hash.part(name.as_bytes());
    }
    hash.0
}

/// The fingerprint an entry carries: the stored type's [`Shape`], the
/// function's `schema` and, for a generic function, its type arguments.
pub(crate) fn value_fingerprint(shape: u64, schema: u32, generic_types: &[&str]) -> u64 {
    let mut hash = Fnv::default();
    hash.part(&shape.to_le_bytes());
    hash.part(&schema.to_le_bytes());
    for name in generic_types {
        hash.part(name.as_bytes());
    }
    hash.0
}

/// FNV-1a over parts, each followed by `0xff` (which UTF-8 text never holds).
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn part(&mut self, bytes: &[u8]) {
        for &byte in bytes.iter().chain(&[0xff]) {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct User {
        id: u64,
        name: String,
    }

    fn header() -> Envelope {
        Envelope {
            format: FORMAT_VERSION,
            codec: Postcard::ID,
            fingerprint: type_fingerprint(&["User"]),
            site: 4,
            filled_at_ms: 10,
            fresh_until_ms: 20,
            stale_until_ms: 30,
            load_micros: 40,
            absent: false,
            dependencies: vec![("t:a".into(), 1), ("t:b".into(), 2), ("v:c".into(), 3)],
        }
    }

    #[test]
    fn round_trips_header_and_value() {
        let user = User { id: 1, name: "Ada".into() };
        let bytes = header().encode::<Postcard, _>(&user).unwrap();
        let (back, value) = Envelope::decode::<Postcard, User>(&bytes, header().fingerprint).unwrap();
        assert_eq!(back, header());
        assert_eq!(value, user);
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let user = User { id: 1, name: "Ada".into() };
        let bytes = header().encode::<Postcard, _>(&user).unwrap();
        for cut in 0..bytes.len() {
            assert!(Envelope::decode::<Postcard, User>(&bytes[..cut], header().fingerprint).is_err());
        }
        for garbage in [&b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"[..], b"hello", b"\x01"] {
            assert!(Envelope::decode::<Postcard, User>(garbage, 0).is_err());
        }
    }

    #[test]
    fn other_type_codec_or_format_is_an_error() {
        let bytes = header().encode::<Postcard, _>(&User { id: 1, name: "x".into() }).unwrap();
        assert!(Envelope::decode::<Postcard, User>(&bytes, 1).is_err());
        assert!(Envelope::decode::<Json, User>(&bytes, header().fingerprint).is_err());
        let mut old = bytes.clone();
        old[0] = 0;
        assert!(Envelope::decode::<Postcard, User>(&old, header().fingerprint).is_err());
    }

    #[test]
    fn json_codec_round_trips() {
        let user = User { id: 2, name: "Grace".into() };
        let mut h = header();
        h.codec = Json::ID;
        let bytes = h.encode::<Json, _>(&user).unwrap();
        let (_, back) = Envelope::decode::<Json, User>(&bytes, h.fingerprint).unwrap();
        assert_eq!(back, user);
    }

    /// A recursive type: untrusted bytes can nest it as deep as they are long.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Tree {
        Leaf(u32),
        Node(Vec<Tree>),
    }

    /// `Leaf(0)` inside `depth` nodes: two levels a node (the variant, its
    /// vector) and one for the leaf, so 63 nodes are the deepest allowed.
    fn nested(depth: usize) -> Tree {
        (0..depth).fold(Tree::Leaf(0), |tree, _| Tree::Node(vec![tree]))
    }

    /// `nested(depth)` in postcard, as bytes: variant 1 and one element a node, then `Leaf(0)`.
    fn nested_postcard(depth: usize) -> Vec<u8> {
        let mut bytes = [1_u8, 1].repeat(depth);
        bytes.extend([0, 0]);
        bytes
    }

    /// `depth` JSON arrays, one inside another.
    fn nested_json_arrays(depth: usize) -> Vec<u8> {
        [b"[".repeat(depth), b"]".repeat(depth)].concat()
    }

    #[test]
    fn a_deeply_nested_postcard_entry_is_an_error_not_a_stack_overflow() {
        assert_eq!(nested_postcard(2), postcard::to_allocvec(&nested(2)).unwrap());
        assert!(Postcard::decode::<Tree>(&nested_postcard(1_000_000)).is_err());
    }

    #[test]
    fn a_deeply_nested_json_entry_is_an_error_not_a_stack_overflow() {
        let node = br#"{"Node":["#;
        let tree = [node.repeat(1_000_000), br#"{"Leaf":0}"#.to_vec(), b"]}".repeat(1_000_000)].concat();
        assert!(Json::decode::<Tree>(&tree).is_err());
        assert!(Json::decode::<serde_json::Value>(&nested_json_arrays(1_000_000)).is_err());
    }

    #[test]
    fn serde_json_stops_at_128_levels_by_itself() {
        assert!(serde_json::from_slice::<serde_json::Value>(&nested_json_arrays(MAX_DEPTH - 1)).is_ok());
        let error = serde_json::from_slice::<serde_json::Value>(&nested_json_arrays(MAX_DEPTH)).unwrap_err();
        assert!(error.to_string().contains("recursion limit exceeded"), "{error}");
    }

    /// `C` round-trips 127 levels, wide or not, and refuses 128 both ways;
    /// `unlimited` is the format without the limit, for the entry too deep.
    fn holds_the_depth_limit<C: Codec>(unlimited: fn(&Tree) -> Vec<u8>) {
        let wide = Tree::Node(vec![nested(62); 100]);
        for tree in [nested(63), wide] {
            let mut bytes = Vec::new();
            C::encode(&tree, &mut bytes).unwrap();
            assert_eq!(C::decode::<Tree>(&bytes).unwrap(), tree);
        }
        assert!(C::encode(&nested(64), &mut Vec::new()).is_err(), "too deep to encode");
        assert!(C::decode::<Tree>(&unlimited(&nested(64))).is_err(), "too deep to decode");
    }

    #[test]
    fn postcard_and_json_hold_the_depth_limit() {
        holds_the_depth_limit::<Postcard>(|tree| postcard::to_allocvec(tree).unwrap());
        holds_the_depth_limit::<Json>(|tree| serde_json::to_vec(tree).unwrap());
    }

    /// Nests through `Some` and a newtype struct: no bracket, no byte in JSON.
    #[derive(Debug, Serialize, Deserialize)]
    struct List(Option<Box<List>>);

    #[test]
    fn nesting_without_brackets_is_bounded_too() {
        // `1` is no `List`, but serde_json would recurse into `Some` forever to find out.
        assert!(Json::decode::<List>(b"1").is_err());
        assert!(Postcard::decode::<List>(&[1; 1_000_000]).is_err());
        let mut bytes = vec![1; MAX_DEPTH / 2 - 1];
        bytes.push(0);
        assert!(Postcard::decode::<List>(&bytes).is_ok(), "63 lists and their `Some`, then the 127th level");
        bytes.insert(0, 1);
        assert!(Postcard::decode::<List>(&bytes).is_err());
    }

    /// The length a sequence claims, as its visitor is told.
    struct ClaimedLength(Option<usize>);

    impl<'de> Deserialize<'de> for ClaimedLength {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Claim;
            impl<'de> serde::de::Visitor<'de> for Claim {
                type Value = ClaimedLength;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a sequence")
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<ClaimedLength, A::Error> {
                    Ok(ClaimedLength(seq.size_hint()))
                }
            }
            deserializer.deserialize_seq(Claim)
        }
    }

    #[test]
    fn a_crafted_length_allocates_nothing_for_its_claim() {
        // 2^60 elements claimed in a 10-byte entry: 9 bytes of length, one of element.
        let mut claim = postcard::to_allocvec(&(1_u64 << 60)).unwrap();
        claim.push(7);
        assert_eq!(claim.len(), 10);
        // The claim reaches `Vec`'s visitor as no hint at all (postcard hints
        // no more elements than bytes remain; serde would preallocate at most
        // 1 MiB from a hint anyway): the decode fails at the end of the bytes.
        assert_eq!(Postcard::decode::<ClaimedLength>(&claim[..9]).unwrap().0, None);
        assert_eq!(Postcard::decode::<ClaimedLength>(&[0]).unwrap().0, Some(0), "hints pass the limit");
        assert!(Postcard::decode::<Vec<u64>>(&claim).is_err());
        assert!(Postcard::decode::<Vec<u8>>(&claim).is_err());
    }

    #[test]
    fn trailing_bytes_are_errors() {
        assert_eq!(Postcard::decode::<u32>(&[7]), Ok(7));
        assert!(Postcard::decode::<u32>(&[7, 0]).is_err());
        assert_eq!(Json::decode::<u32>(b" 7 \n"), Ok(7));
        assert!(Json::decode::<u32>(b"7 0").is_err());
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn bincode_holds_the_depth_limit() {
        holds_the_depth_limit::<Bincode>(|tree| {
            bincode::serde::encode_to_vec(tree, bincode::config::standard()).unwrap()
        });
        assert!(Bincode::decode::<Tree>(&nested_postcard(1_000_000)).is_err());
        assert!(Bincode::decode::<List>(&[1; 1_000_000]).is_err());
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn bincode_round_trips_and_other_codecs_entries_are_errors() {
        let user = User { id: 3, name: "Barbara".into() };
        let mut h = header();
        h.codec = Bincode::ID;
        let bytes = h.encode::<Bincode, _>(&user).unwrap();
        let (back, value) = Envelope::decode::<Bincode, User>(&bytes, h.fingerprint).unwrap();
        assert_eq!(back, h);
        assert_eq!(value, user);
        // Written by postcard, read as bincode, and the other way round: misses.
        let postcard = header().encode::<Postcard, _>(&user).unwrap();
        assert!(Envelope::decode::<Bincode, User>(&postcard, h.fingerprint).is_err());
        assert!(Envelope::decode::<Postcard, User>(&bytes, h.fingerprint).is_err());
        for cut in 0..bytes.len() {
            assert!(Envelope::decode::<Bincode, User>(&bytes[..cut], h.fingerprint).is_err());
        }
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn bincode_refuses_a_corrupt_length_without_allocating_it() {
        // A string length of 2^62, then nothing.
        let mut bytes = vec![1_u8]; // id
        bytes.push(253); // varint: a u64 follows
        bytes.extend_from_slice(&(1_u64 << 62).to_le_bytes());
        assert!(Bincode::decode::<User>(&bytes).is_err());
        let mut trailing = Vec::new();
        Bincode::encode(&7_u32, &mut trailing).unwrap();
        trailing.push(0);
        assert!(Bincode::decode::<u32>(&trailing).is_err());
    }
}
