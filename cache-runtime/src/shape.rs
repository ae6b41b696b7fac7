//! The serde shape of a value type, and the fingerprint every entry carries.
//!
//! Entries leave the process in positional formats (postcard, bincode): an
//! entry written by one build of a type decodes without error into a build
//! whose `String` fields were swapped, and often into one whose fields were
//! added, removed or retyped. So an entry's envelope carries a fingerprint of
//! its type's *shape* — what the type's `Deserialize` asks for — and an entry
//! of another shape is a miss.
//!
//! # How the shape is found
//! [`shape_of`] drives the type's own `Deserialize` with a deserializer that
//! records every request (struct and field names in order, enum names with
//! each variant's payload, options, sequences, maps, tuples and primitive
//! kinds) and answers it with a small sample value:
//! - a sequence or map gives one element, an option `Some`, so the element
//!   type is traced too;
//! - an enum gives one variant per encounter, so the type is deserialized
//!   again until every variant is traced;
//! - recursion stops at a container already being traced: there it is named by
//!   reference and its value is made as small as possible (`None`, empty
//!   sequences, a variant not in progress);
//! - a value the type refuses (a date that must parse, a non-zero integer, a
//!   16-byte UUID) is tried again with the next sample of that kind, such as
//!   `"1970-01-01T00:00:00Z"`, `1` or 16 zero bytes.
//!
//! The description names nothing the compiler chooses (no Rust paths), so it
//! is the same in every build of the same shape. Where tracing cannot see the
//! whole shape — `deserialize_any` (untagged or flattened types), a variant no
//! sample satisfies — the description is *partial* and the fingerprint also
//! covers the type's Rust name: never weaker than the type name alone. Tracing
//! never panics on its own account; a panic in a type's `Deserialize` is caught
//! and counts as a failed trace.
//!
//! A fingerprint is computed once per type and process, then read from a table.

use std::any::{TypeId, type_name};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::sync::{OnceLock, PoisonError, RwLock};

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

/// Deserializations of one type at most: one per enum variant, plus retries.
const MAX_RUNS: usize = 512;
/// Nesting depth at most, a safeguard: recursion is cut well before.
const MAX_DEPTH: usize = 256;

/// The traced serde shape of a type.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct User { first_name: String, last_name: String, age: Option<u8> }
///
/// let shape = cache_runtime::codec::shape_of::<User>();
/// assert!(shape.is_complete());
/// assert_eq!(
///     shape.description(),
///     r#"#0=struct "User"{"first_name":str,"last_name":str,"age":option<u8>}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    description: String,
    complete: bool,
    fingerprint: u64,
}

impl Shape {
    /// A canonical text of the shape: containers are numbered in order of first
    /// appearance (`#0=...`) and referred to by number afterwards (`#0`).
    #[must_use]
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether the whole shape was traced. When it was not, the fingerprint also
    /// covers the type's Rust name.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The 64-bit fingerprint written into every entry of this type.
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// Traces the serde shape of `T`: drives its `Deserialize` with a recording
/// deserializer that answers with small samples, once per enum variant, and
/// stops recursion at containers already being traced. Never panics; a shape
/// it cannot see whole is [partial](Shape::is_complete).
///
/// ```
/// #[derive(serde::Deserialize)]
/// enum Tree { Leaf(u32), Node(Vec<Tree>) }
///
/// let shape = cache_runtime::codec::shape_of::<Tree>();
/// assert_eq!(shape.description(), r#"#0=enum "Tree"{"Leaf"<u32>,"Node"<seq<#0>>}"#);
/// ```
#[must_use]
pub fn shape_of<T: DeserializeOwned>() -> Shape {
    shape_with(type_name::<T>(), deserialize_traced::<T>)
}

/// [`Shape::fingerprint`] of `T`, traced once per process.
pub(crate) fn fingerprint_of<T: DeserializeOwned + 'static>() -> u64 {
    fingerprint_with(TypeId::of::<T>(), type_name::<T>(), deserialize_traced::<T>)
}

/// The only part of a trace compiled for each traced type: one deserialization
/// of `T` from a [`Tracer`]. All the rest is compiled once.
fn deserialize_traced<T: DeserializeOwned>(tracer: Tracer<'_, '_>) -> Result<()> {
    T::deserialize(tracer).map(drop)
}

/// A type's [`deserialize_traced`].
type DeserializeTraced = for<'a, 'c> fn(Tracer<'a, 'c>) -> Result<()>;

/// [`shape_of`] the type named `type_name`, deserialized by `deserialize`.
#[inline(never)]
fn shape_with(type_name: &str, deserialize: DeserializeTraced) -> Shape {
    let traced = std::panic::catch_unwind(move || trace(deserialize)).ok().flatten();
    let (description, complete) = match traced {
        Some(Traced { registry, root }) => {
            let mut writer = Describe {
                registry: &registry,
                numbers: HashMap::new(),
                text: String::new(),
                complete: true,
            };
            writer.format(&root);
            (writer.text, writer.complete)
        }
        None => (String::new(), false),
    };
    let fingerprint = if complete {
        digest(description.as_bytes())
    } else {
        // Partial: the type's name covers what tracing could not see.
        let mut text = format!("partial {type_name} ");
        text.push_str(&description);
        digest(text.as_bytes())
    };
    Shape { description, complete, fingerprint }
}

/// [`fingerprint_of`] the type of `id`, named `type_name`, deserialized by `deserialize`.
#[inline(never)]
fn fingerprint_with(id: TypeId, type_name: &'static str, deserialize: DeserializeTraced) -> u64 {
    static FINGERPRINTS: OnceLock<RwLock<HashMap<TypeId, u64>>> = OnceLock::new();
    let table = FINGERPRINTS.get_or_init(RwLock::default);
    if let Some(&fingerprint) = table.read().unwrap_or_else(PoisonError::into_inner).get(&id) {
        return fingerprint;
    }
    let shape = shape_with(type_name, deserialize);
    if !shape.complete {
        tracing::debug!(
            value_type = type_name,
            "value type traced partially: its entries are also told apart by its Rust name"
        );
    }
    *table.write().unwrap_or_else(PoisonError::into_inner).entry(id).or_insert(shape.fingerprint)
}

fn digest(bytes: &[u8]) -> u64 {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(bytes);
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

// ---------------------------------------------------------------------------
// What is recorded

/// Identifies a named container within one trace: its visitor's Rust type
/// (distinct for two types of the same serde name) and its serde name. The
/// Rust name never reaches the description.
type Key = (&'static str, &'static str);

#[derive(Debug, Clone, PartialEq)]
enum Format {
    /// Not traced: the sample given had no element, or no `Some`.
    Unknown,
    Primitive(&'static str),
    Option(Box<Format>),
    Seq(Box<Format>),
    Map(Box<Format>, Box<Format>),
    Tuple(Vec<Format>),
    UnitStruct(&'static str),
    /// A struct or enum of the registry.
    Named(usize),
    /// `deserialize_any`: the type decides by what it is given, so its shape is not seen.
    Any,
}

#[derive(Debug, Clone)]
enum Body {
    Unit,
    Newtype(Format),
    Tuple(Vec<Format>),
    Struct(&'static [&'static str], Vec<Format>),
}

#[derive(Debug, Clone)]
enum Container {
    /// A newtype, tuple or named-field struct; `None` while being traced.
    Struct {
        name: &'static str,
        body: Option<Body>,
    },
    Enum {
        name: &'static str,
        variants: &'static [&'static str],
        traced: BTreeMap<u32, Body>,
    },
}

#[derive(Debug, Clone, Default)]
struct Registry {
    containers: Vec<Container>,
    index: HashMap<Key, usize>,
}

impl Registry {
    fn add(&mut self, key: Key, container: Container) -> usize {
        let index = self.containers.len();
        self.containers.push(container);
        self.index.insert(key, index);
        index
    }

    fn traced_variants(&self) -> usize {
        self.containers
            .iter()
            .map(|container| match container {
                Container::Enum { traced, .. } => traced.len(),
                Container::Struct { .. } => 0,
            })
            .sum()
    }

    /// Whether some enum has a variant neither traced nor given up on.
    fn has_untraced(&self, failed: &HashSet<(Key, u32)>) -> bool {
        self.index.iter().any(|(key, &index)| match &self.containers[index] {
            Container::Enum { variants, traced, .. } => (0..variants.len())
                .filter_map(|variant| u32::try_from(variant).ok())
                .any(|variant| !traced.contains_key(&variant) && !failed.contains(&(*key, variant))),
            Container::Struct { .. } => false,
        })
    }
}

// ---------------------------------------------------------------------------
// The driver

struct Traced {
    registry: Registry,
    root: Format,
}

/// Deserializes with `deserialize` until every variant is traced, or nothing more can be.
fn trace(deserialize: DeserializeTraced) -> Option<Traced> {
    let mut registry = Registry::default();
    let mut failed: HashSet<(Key, u32)> = HashSet::new();
    let mut choices: Vec<usize> = Vec::new();
    let mut root: Option<Format> = None;
    for _ in 0..MAX_RUNS {
        let mut run = Run {
            registry: registry.clone(),
            failed: &failed,
            choices: &choices,
            sites: Vec::new(),
            structs_open: Vec::new(),
            variants_open: Vec::new(),
            blamed: None,
            untraceable: Vec::new(),
        };
        let mut format = Format::Unknown;
        let result = deserialize(Tracer { run: &mut run, out: &mut format, minimal: false, depth: 0 });
        let Run { registry: traced, sites, blamed, untraceable, .. } = run;
        match result {
            Ok(_) => {
                let progress = traced.traced_variants() > registry.traced_variants() || root.is_none();
                registry = traced;
                failed.extend(untraceable);
                root.get_or_insert(format);
                choices.clear();
                if !progress || !registry.has_untraced(&failed) {
                    break;
                }
            }
            Err(_) => {
                // Try the next sample at the latest site that has one (within
                // the variant being traced, if any); else give that variant up.
                let floor = blamed.map_or(0, |(_, _, first_site)| first_site);
                match next_choices(&choices, &sites, floor) {
                    Some(next) => choices = next,
                    None => match blamed {
                        Some((key, variant, _)) => {
                            failed.insert((key, variant));
                            choices.clear();
                        }
                        None => break,
                    },
                }
            }
        }
    }
    root.map(|root| Traced { registry, root })
}

/// The choices of the next run: the latest site at or after `floor` with an
/// untried sample moves to it, and the sites after it start over.
fn next_choices(choices: &[usize], sites: &[usize], floor: usize) -> Option<Vec<usize>> {
    (floor..sites.len()).rev().find_map(|site| {
        let current = choices.get(site).copied().unwrap_or(0);
        (current + 1 < sites[site]).then(|| {
            let mut next: Vec<usize> = choices.iter().copied().take(site).collect();
            next.resize(site, 0);
            next.push(current + 1);
            next
        })
    })
}

/// The state of one deserialization of the traced type.
struct Run<'c> {
    registry: Registry,
    failed: &'c HashSet<(Key, u32)>,
    /// Which sample each site takes, by order of the sites in the run (0 when absent).
    choices: &'c [usize],
    /// How many samples each site visited so far has.
    sites: Vec<usize>,
    structs_open: Vec<usize>,
    variants_open: Vec<(usize, u32)>,
    /// The innermost variant traced for the first time whose payload failed,
    /// with the first site of that payload.
    blamed: Option<(Key, u32, usize)>,
    /// Variants whose deserialization succeeded without reading a payload.
    untraceable: Vec<(Key, u32)>,
}

impl Run<'_> {
    /// Which of `samples` alternatives to take at the next site.
    fn choose(&mut self, samples: usize) -> usize {
        let site = self.sites.len();
        self.sites.push(samples);
        self.choices.get(site).copied().unwrap_or(0).min(samples.saturating_sub(1))
    }
}

// ---------------------------------------------------------------------------
// Samples

const INTEGERS: [u8; 2] = [1, 0];
const STRINGS: &[&str] = &[
    "",
    "0",
    "1970-01-01T00:00:00Z",
    "1970-01-01T00:00:00",
    "1970-01-01",
    "00:00:00",
    "00000000-0000-0000-0000-000000000000",
    "a",
    "127.0.0.1",
    "127.0.0.1:1",
    "http://localhost/",
];
const BYTES: &[&[u8]] = &[&[], &[0; 16], &[0; 4], &[0; 8], &[0; 32]];

/// An error of the traced type, or of the trace.
#[derive(Debug)]
struct TraceError(String);

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self(message.to_string())
    }
}

type Result<T> = std::result::Result<T, TraceError>;

// ---------------------------------------------------------------------------
// The tracing deserializer
//
// The `Deserializer`, `SeqAccess`, `MapAccess`, `EnumAccess` and
// `VariantAccess` methods below are compiled once per visitor or seed type, so
// each only hands the visitor or seed what it asks for: what is recorded, and
// which sample answers, is decided by the non-generic functions they call. The
// element, key, value and payload methods are not inlined: what a seed
// deserializes (a `String`, a `Vec<u32>`) is compiled once, not again into the
// `visit_seq` and `visit_map` of every struct that has such a field.

/// Records what it is asked into `out` and answers with a sample. `minimal`
/// inside recursion: `None`, no elements.
struct Tracer<'a, 'c> {
    run: &'a mut Run<'c>,
    out: &'a mut Format,
    minimal: bool,
    depth: usize,
}

/// How many elements (0 or 1) an option, sequence or map gets.
fn element_count(run: &mut Run<'_>, minimal: bool) -> usize {
    let choice = run.choose(2);
    if minimal { choice } else { 1 - choice }
}

/// `len` slots, not traced yet.
#[inline(never)]
fn unknowns(len: usize) -> Vec<Format> {
    vec![Format::Unknown; len]
}

/// A struct-like container being traced: where its fields are recorded.
struct OpenStruct {
    index: usize,
    /// Whether its body is recorded once traced: the first time it is met.
    record: bool,
    minimal: bool,
    depth: usize,
    slots: Vec<Format>,
}

#[derive(Clone, Copy)]
enum StructKind {
    Newtype,
    Tuple,
    Struct(&'static [&'static str]),
}

/// An enum being traced, and the variant it is given.
struct OpenEnum {
    key: Key,
    index: usize,
    variant: u32,
    name: &'static str,
    /// Whether the variant is traced for the first time.
    new: bool,
    /// Whether the variant is named by its name rather than its index.
    by_name: bool,
    /// The first site of the variant's payload.
    first_site: usize,
    minimal: bool,
    depth: usize,
    body: Option<Body>,
}

impl Tracer<'_, '_> {
    fn deeper(&self) -> Result<usize> {
        if self.depth >= MAX_DEPTH {
            return Err(TraceError("type nested too deeply to trace".into()));
        }
        Ok(self.depth + 1)
    }

    #[inline(never)]
    fn primitive(&mut self, kind: &'static str) -> Result<()> {
        self.deeper()?;
        *self.out = Format::Primitive(kind);
        Ok(())
    }

    /// A primitive of `kind`, answered with the sample of this index (of `samples`).
    #[inline(never)]
    fn sample(&mut self, kind: &'static str, samples: usize) -> Result<usize> {
        self.primitive(kind)?;
        Ok(self.run.choose(samples))
    }

    #[inline(never)]
    fn integer(&mut self, kind: &'static str) -> Result<u8> {
        Ok(INTEGERS[self.sample(kind, INTEGERS.len())?])
    }

    #[inline(never)]
    fn char(&mut self) -> Result<char> {
        Ok(['a', '0'][self.sample("char", 2)?])
    }

    #[inline(never)]
    fn str(&mut self) -> Result<&'static str> {
        Ok(STRINGS[self.sample("str", STRINGS.len())?])
    }

    #[inline(never)]
    fn bytes(&mut self) -> Result<&'static [u8]> {
        Ok(BYTES[self.sample("bytes", BYTES.len())?])
    }

    /// `deserialize_any`: which of its six samples answers.
    #[inline(never)]
    fn any(&mut self) -> Result<usize> {
        self.deeper()?;
        *self.out = Format::Any;
        Ok(self.run.choose(6))
    }

    #[inline(never)]
    fn ignored_any(&mut self) -> Result<()> {
        self.deeper()?;
        *self.out = Format::Any;
        Ok(())
    }

    #[inline(never)]
    fn unit_struct(&mut self, name: &'static str) -> Result<()> {
        self.deeper()?;
        *self.out = Format::UnitStruct(name);
        Ok(())
    }

    /// An option, a sequence or a map: its depth, and whether it gets an element.
    #[inline(never)]
    fn open_collection(&mut self) -> Result<(usize, bool)> {
        let depth = self.deeper()?;
        Ok((depth, element_count(self.run, self.minimal) == 1))
    }

    /// A struct-like container of `len` fields: newtype, tuple or named-field struct.
    #[inline(never)]
    fn open_struct(&mut self, key: Key, len: usize) -> Result<OpenStruct> {
        let depth = self.deeper()?;
        let name = key.1;
        let (index, record, minimal) = match self.run.registry.index.get(&key).copied() {
            None => (self.run.registry.add(key, Container::Struct { name, body: None }), true, false),
            Some(index) if self.run.structs_open.contains(&index) => (index, false, true),
            Some(index) => (index, false, self.minimal),
        };
        *self.out = Format::Named(index);
        self.run.structs_open.push(index);
        Ok(OpenStruct { index, record, minimal, depth, slots: unknowns(len) })
    }

    /// An enum: the variant it is given, a variant not traced yet if any.
    #[inline(never)]
    fn open_enum(&mut self, key: Key, variants: &'static [&'static str]) -> Result<OpenEnum> {
        let depth = self.deeper()?;
        let name = key.1;
        let run = &mut *self.run;
        let index = match run.registry.index.get(&key).copied() {
            Some(index) => index,
            None => run.registry.add(key, Container::Enum { name, variants, traced: BTreeMap::new() }),
        };
        *self.out = Format::Named(index);
        let traced: HashSet<u32> = match run.registry.containers.get(index) {
            Some(Container::Enum { traced, .. }) => traced.keys().copied().collect(),
            _ => return Err(TraceError(format!("`{name}` is both a struct and an enum"))),
        };
        let open = |variant: &u32| run.variants_open.contains(&(index, *variant));
        let all = (0..variants.len()).filter_map(|variant| u32::try_from(variant).ok());
        // A variant not traced yet, else one that was (recursion stops there).
        let choice = all
            .clone()
            .find(|variant| {
                !traced.contains(variant) && !run.failed.contains(&(key, *variant)) && !open(variant)
            })
            .map(|variant| (variant, true))
            .or_else(|| {
                all.clone().find(|variant| traced.contains(variant) && !open(variant)).map(|v| (v, false))
            });
        let Some((variant, new)) = choice else {
            return Err(TraceError(format!("no variant of `{name}` can be traced here")));
        };
        let by_name = run.choose(2) == 1;
        let first_site = run.sites.len();
        run.variants_open.push((index, variant));
        Ok(OpenEnum {
            key,
            index,
            variant,
            name: variants.get(variant as usize).copied().unwrap_or_default(),
            new,
            by_name,
            first_site,
            minimal: !new && self.minimal,
            depth,
            body: None,
        })
    }
}

impl Run<'_> {
    /// The end of a struct-like container: its body is recorded if `ok`.
    #[inline(never)]
    fn close_struct(&mut self, open: OpenStruct, kind: StructKind, ok: bool) {
        self.structs_open.pop();
        if ok
            && open.record
            && let Some(Container::Struct { body, .. }) = self.registry.containers.get_mut(open.index)
        {
            let mut slots = open.slots;
            *body = Some(match kind {
                StructKind::Newtype => Body::Newtype(slots.pop().unwrap_or(Format::Unknown)),
                StructKind::Tuple => Body::Tuple(slots),
                StructKind::Struct(fields) => Body::Struct(fields, slots),
            });
        }
    }

    /// The end of an enum: a new variant is recorded if `ok`, else blamed.
    #[inline(never)]
    fn close_enum(&mut self, open: OpenEnum, ok: bool) {
        self.variants_open.pop();
        let OpenEnum { key, index, variant, new, first_site, body, .. } = open;
        if !new {
            return;
        }
        if ok {
            match (body, self.registry.containers.get_mut(index)) {
                (Some(body), Some(Container::Enum { traced, .. })) => {
                    traced.insert(variant, body);
                }
                _ => self.untraceable.push((key, variant)),
            }
        } else if self.blamed.is_none() {
            self.blamed = Some((key, variant, first_site));
        }
    }
}

impl Format {
    #[inline(never)]
    fn set_option(&mut self, inner: Format) {
        *self = Format::Option(Box::new(inner));
    }

    #[inline(never)]
    fn set_seq(&mut self, element: Format) {
        *self = Format::Seq(Box::new(element));
    }

    #[inline(never)]
    fn set_map(&mut self, key: Format, value: Format) {
        *self = Format::Map(Box::new(key), Box::new(value));
    }

    #[inline(never)]
    fn set_tuple(&mut self, elements: Vec<Format>) {
        *self = Format::Tuple(elements);
    }
}

/// A variant's payload, recorded if `ok`.
#[inline(never)]
fn record_body(out: &mut Option<Body>, body: Body, ok: bool) {
    if ok {
        *out = Some(body);
    }
}

/// Named fields, as a sequence (what derived impls and positional formats use)
/// or, when the type refuses that, as a map of field names.
fn fields_of<'de, V: Visitor<'de>>(
    run: &mut Run<'_>,
    fields: &'static [&'static str],
    slots: &mut [Format],
    minimal: bool,
    depth: usize,
    visitor: V,
) -> Result<V::Value> {
    if run.choose(2) == 0 {
        visitor.visit_seq(Elements::new(run, slots, minimal, depth))
    } else {
        visitor.visit_map(Fields { run, fields, slots, next: 0, minimal, depth })
    }
}

macro_rules! integers {
    ($($method:ident $visit:ident $ty:ident,)*) => {$(
        fn $method<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
            let sample = self.integer(stringify!($ty))?;
            visitor.$visit(sample as $ty)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Tracer<'_, '_> {
    type Error = TraceError;

    integers! {
        deserialize_u8 visit_u8 u8,
        deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32,
        deserialize_u64 visit_u64 u64,
        deserialize_u128 visit_u128 u128,
        deserialize_i8 visit_i8 i8,
        deserialize_i16 visit_i16 i16,
        deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64,
        deserialize_i128 visit_i128 i128,
        deserialize_f32 visit_f32 f32,
        deserialize_f64 visit_f64 f64,
    }

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        match self.any()? {
            0 => visitor.visit_unit(),
            1 => visitor.visit_bool(false),
            2 => visitor.visit_u64(1),
            3 => visitor.visit_str(""),
            4 => visitor.visit_seq(Elements::new(self.run, &mut [], true, self.depth)),
            _ => visitor.visit_map(Entries { run: self.run, slots: None, minimal: true, depth: self.depth }),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        visitor.visit_bool(self.sample("bool", 2)? == 1)
    }

    fn deserialize_char<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        visitor.visit_char(self.char()?)
    }

    fn deserialize_str<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        visitor.visit_str(self.str()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        visitor.visit_bytes(self.bytes()?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        let (depth, some) = self.open_collection()?;
        let mut inner = Format::Unknown;
        let value = if some {
            visitor.visit_some(Tracer { run: &mut *self.run, out: &mut inner, minimal: self.minimal, depth })
        } else {
            visitor.visit_none()
        };
        self.out.set_option(inner);
        value
    }

    fn deserialize_unit<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        self.primitive("unit")?;
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.unit_struct(name)?;
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        let mut open = self.open_struct((type_name::<V>(), name), 1)?;
        let tracer =
            Tracer { run: &mut *self.run, out: &mut open.slots[0], minimal: open.minimal, depth: open.depth };
        let value = visitor.visit_newtype_struct(tracer);
        self.run.close_struct(open, StructKind::Newtype, value.is_ok());
        value
    }

    fn deserialize_seq<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        let (depth, one) = self.open_collection()?;
        let mut element = Format::Unknown;
        let slots: &mut [Format] = if one { std::slice::from_mut(&mut element) } else { &mut [] };
        let value = visitor.visit_seq(Elements::new(self.run, slots, self.minimal, depth));
        self.out.set_seq(element);
        value
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        let depth = self.deeper()?;
        let mut slots = unknowns(len);
        let value = visitor.visit_seq(Elements::new(self.run, &mut slots, self.minimal, depth));
        self.out.set_tuple(slots);
        value
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        let mut open = self.open_struct((type_name::<V>(), name), len)?;
        let value = visitor.visit_seq(Elements::new(self.run, &mut open.slots, open.minimal, open.depth));
        self.run.close_struct(open, StructKind::Tuple, value.is_ok());
        value
    }

    fn deserialize_map<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        let (depth, one) = self.open_collection()?;
        let (mut key, mut value) = (Format::Unknown, Format::Unknown);
        let slots = one.then_some((&mut key, &mut value));
        let result = visitor.visit_map(Entries { run: self.run, slots, minimal: self.minimal, depth });
        self.out.set_map(key, value);
        result
    }

    fn deserialize_struct<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let mut open = self.open_struct((type_name::<V>(), name), fields.len())?;
        let value = fields_of(self.run, fields, &mut open.slots, open.minimal, open.depth, visitor);
        self.run.close_struct(open, StructKind::Struct(fields), value.is_ok());
        value
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let mut open = self.open_enum((type_name::<V>(), name), variants)?;
        let value = visitor.visit_enum(Variant {
            run: &mut *self.run,
            index: open.variant,
            name: open.name,
            by_name: open.by_name,
            body: &mut open.body,
            minimal: open.minimal,
            depth: open.depth,
        });
        self.run.close_enum(open, value.is_ok());
        value
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value> {
        self.ignored_any()?;
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a tuple, a sequence or a struct read as a sequence: one per slot.
struct Elements<'a, 'c> {
    run: &'a mut Run<'c>,
    slots: &'a mut [Format],
    next: usize,
    minimal: bool,
    depth: usize,
}

impl<'a, 'c> Elements<'a, 'c> {
    fn new(run: &'a mut Run<'c>, slots: &'a mut [Format], minimal: bool, depth: usize) -> Self {
        Self { run, slots, next: 0, minimal, depth }
    }
}

impl<'de> SeqAccess<'de> for Elements<'_, '_> {
    type Error = TraceError;

    #[inline(never)]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        let Some(out) = self.slots.get_mut(self.next) else { return Ok(None) };
        self.next += 1;
        seed.deserialize(Tracer { run: &mut *self.run, out, minimal: self.minimal, depth: self.depth })
            .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.slots.len().saturating_sub(self.next))
    }
}

/// The entry of a map: none, or one whose key and value are traced.
struct Entries<'a, 'c> {
    run: &'a mut Run<'c>,
    slots: Option<(&'a mut Format, &'a mut Format)>,
    minimal: bool,
    depth: usize,
}

impl<'de> MapAccess<'de> for Entries<'_, '_> {
    type Error = TraceError;

    #[inline(never)]
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let Some((key, _)) = self.slots.as_mut() else { return Ok(None) };
        let tracer = Tracer { run: &mut *self.run, out: key, minimal: self.minimal, depth: self.depth };
        seed.deserialize(tracer).map(Some)
    }

    #[inline(never)]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let Some((_, value)) = self.slots.take() else {
            return Err(TraceError("a map value asked for before its key".into()));
        };
        seed.deserialize(Tracer { run: &mut *self.run, out: value, minimal: self.minimal, depth: self.depth })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(usize::from(self.slots.is_some()))
    }
}

/// Named fields read as a map: each field's name, then its value.
struct Fields<'a, 'c> {
    run: &'a mut Run<'c>,
    fields: &'static [&'static str],
    slots: &'a mut [Format],
    next: usize,
    minimal: bool,
    depth: usize,
}

impl<'de> MapAccess<'de> for Fields<'_, '_> {
    type Error = TraceError;

    #[inline(never)]
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        match self.fields.get(self.next) {
            Some(&field) => seed
                .deserialize(<&str as IntoDeserializer<'de, TraceError>>::into_deserializer(field))
                .map(Some),
            None => Ok(None),
        }
    }

    #[inline(never)]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let Some(out) = self.slots.get_mut(self.next) else {
            return Err(TraceError("a field value asked for before its name".into()));
        };
        self.next += 1;
        seed.deserialize(Tracer { run: &mut *self.run, out, minimal: self.minimal, depth: self.depth })
    }
}

/// The variant an enum's deserialization gets, and its payload.
struct Variant<'a, 'c> {
    run: &'a mut Run<'c>,
    index: u32,
    name: &'static str,
    /// Whether the variant is named by its name rather than its index.
    by_name: bool,
    body: &'a mut Option<Body>,
    minimal: bool,
    depth: usize,
}

impl<'de> EnumAccess<'de> for Variant<'_, '_> {
    type Error = TraceError;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self)> {
        let value = if self.by_name {
            seed.deserialize(<&str as IntoDeserializer<'de, TraceError>>::into_deserializer(self.name))?
        } else {
            seed.deserialize(<u32 as IntoDeserializer<'de, TraceError>>::into_deserializer(self.index))?
        };
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_, '_> {
    type Error = TraceError;

    fn unit_variant(self) -> Result<()> {
        *self.body = Some(Body::Unit);
        Ok(())
    }

    #[inline(never)]
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        let mut slot = Format::Unknown;
        let tracer = Tracer { run: self.run, out: &mut slot, minimal: self.minimal, depth: self.depth };
        let value = seed.deserialize(tracer);
        record_body(self.body, Body::Newtype(slot), value.is_ok());
        value
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        let mut slots = unknowns(len);
        let value = visitor.visit_seq(Elements::new(self.run, &mut slots, self.minimal, self.depth));
        record_body(self.body, Body::Tuple(slots), value.is_ok());
        value
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let mut slots = unknowns(fields.len());
        let value = fields_of(self.run, fields, &mut slots, self.minimal, self.depth, visitor);
        record_body(self.body, Body::Struct(fields, slots), value.is_ok());
        value
    }
}

// ---------------------------------------------------------------------------
// The description

/// Writes the canonical description: containers numbered in order of first
/// appearance, names quoted and escaped so that no two shapes read the same.
struct Describe<'r> {
    registry: &'r Registry,
    numbers: HashMap<usize, usize>,
    text: String,
    complete: bool,
}

impl Describe<'_> {
    fn name(&mut self, name: &str) {
        let _ = write!(self.text, "{name:?}");
    }

    fn format(&mut self, format: &Format) {
        match format {
            Format::Unknown => {
                self.complete = false;
                self.text.push('?');
            }
            Format::Any => {
                self.complete = false;
                self.text.push_str("any");
            }
            Format::Primitive(kind) => self.text.push_str(kind),
            Format::Option(inner) => self.wrapped("option<", [inner]),
            Format::Seq(inner) => self.wrapped("seq<", [inner]),
            Format::Map(key, value) => self.wrapped("map<", [key, value]),
            Format::Tuple(elements) => {
                self.text.push_str("tuple");
                self.list('(', elements, ')');
            }
            Format::UnitStruct(name) => {
                self.text.push_str("unit ");
                self.name(name);
            }
            Format::Named(index) => self.named(*index),
        }
    }

    fn wrapped<const N: usize>(&mut self, open: &str, inner: [&Format; N]) {
        self.text.push_str(open);
        for (position, format) in inner.into_iter().enumerate() {
            if position > 0 {
                self.text.push(',');
            }
            self.format(format);
        }
        self.text.push('>');
    }

    fn list(&mut self, open: char, formats: &[Format], close: char) {
        self.text.push(open);
        for (position, format) in formats.iter().enumerate() {
            if position > 0 {
                self.text.push(',');
            }
            self.format(format);
        }
        self.text.push(close);
    }

    fn named(&mut self, index: usize) {
        if let Some(number) = self.numbers.get(&index) {
            let _ = write!(self.text, "#{number}");
            return;
        }
        let number = self.numbers.len();
        self.numbers.insert(index, number);
        let _ = write!(self.text, "#{number}=");
        let registry = self.registry;
        match registry.containers.get(index) {
            Some(Container::Struct { name, body }) => {
                self.text.push_str("struct ");
                self.name(name);
                match body {
                    Some(body) => self.body(body),
                    None => {
                        self.complete = false;
                        self.text.push('?');
                    }
                }
            }
            Some(Container::Enum { name, variants, traced }) => {
                self.text.push_str("enum ");
                self.name(name);
                self.text.push('{');
                for (position, variant) in variants.iter().enumerate() {
                    if position > 0 {
                        self.text.push(',');
                    }
                    self.name(variant);
                    match u32::try_from(position).ok().and_then(|position| traced.get(&position)) {
                        Some(body) => self.body(body),
                        None => {
                            // Given up on, or never reached: either way not seen.
                            self.complete = false;
                            self.text.push('?');
                        }
                    }
                }
                self.text.push('}');
            }
            None => {
                self.complete = false;
                self.text.push('?');
            }
        }
    }

    fn body(&mut self, body: &Body) {
        match body {
            Body::Unit => {}
            Body::Newtype(inner) => {
                self.text.push('<');
                self.format(inner);
                self.text.push('>');
            }
            Body::Tuple(elements) => self.list('(', elements, ')'),
            Body::Struct(fields, formats) => {
                self.text.push('{');
                for (position, (field, format)) in fields.iter().zip(formats).enumerate() {
                    if position > 0 {
                        self.text.push(',');
                    }
                    self.name(field);
                    self.text.push(':');
                    self.format(format);
                }
                self.text.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::num::NonZeroU32;
    use std::time::{Duration, SystemTime};

    use serde::Deserialize;

    use super::*;

    mod before {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub(super) struct User {
            pub(super) first_name: String,
            pub(super) last_name: String,
        }
    }

    mod swapped {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub(super) struct User {
            pub(super) last_name: String,
            pub(super) first_name: String,
        }
    }

    mod same_again {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub(super) struct User {
            pub(super) first_name: String,
            pub(super) last_name: String,
        }
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Added {
        first_name: String,
        last_name: String,
        age: u8,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Retyped {
        first_name: String,
        last_name: u64,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Renamed {
        first_name: String,
        family_name: String,
    }

    #[test]
    fn the_same_shape_has_the_same_fingerprint_wherever_it_is_declared() {
        let (a, b) = (shape_of::<before::User>(), shape_of::<same_again::User>());
        assert!(a.is_complete());
        assert_eq!(a, b);
        assert_eq!(a.description(), r#"#0=struct "User"{"first_name":str,"last_name":str}"#);
    }

    #[test]
    fn swapped_added_removed_retyped_and_renamed_fields_change_it() {
        let fingerprints = [
            shape_of::<before::User>().fingerprint(),
            shape_of::<swapped::User>().fingerprint(),
            shape_of::<Added>().fingerprint(),
            shape_of::<Retyped>().fingerprint(),
            shape_of::<Renamed>().fingerprint(),
        ];
        let distinct: HashSet<u64> = fingerprints.iter().copied().collect();
        assert_eq!(distinct.len(), fingerprints.len());
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Shape3 {
        Point,
        Circle(f64),
        Segment(i32, i32),
        Labelled { label: String, at: (u8, u8) },
    }

    #[test]
    fn every_variant_of_an_enum_is_traced() {
        let shape = shape_of::<Vec<Shape3>>();
        assert!(shape.is_complete(), "{shape}");
        assert_eq!(
            shape.description(),
            r#"seq<#0=enum "Shape3"{"Point","Circle"<f64>,"Segment"(i32,i32),"Labelled"{"label":str,"at":tuple(u8,u8)}}>"#
        );
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Tree {
        label: String,
        children: Vec<Tree>,
        parent: Option<Box<Tree>>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Expr {
        Add(Box<Expr>, Box<Expr>),
        Neg(Box<Expr>),
        Literal(i64),
        Let { name: String, value: Box<Expr>, body: Box<Expr> },
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Folder {
        files: BTreeMap<String, File>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct File {
        size: u64,
        inside: Option<Folder>,
    }

    #[test]
    fn recursion_is_named_by_reference() {
        let tree = shape_of::<Tree>();
        assert!(tree.is_complete(), "{tree}");
        assert_eq!(
            tree.description(),
            r#"#0=struct "Tree"{"label":str,"children":seq<#0>,"parent":option<#0>}"#
        );
        let expr = shape_of::<Expr>();
        assert!(expr.is_complete(), "{expr}");
        assert_eq!(
            expr.description(),
            r#"#0=enum "Expr"{"Add"(#0,#0),"Neg"<#0>,"Literal"<i64>,"Let"{"name":str,"value":#0,"body":#0}}"#
        );
        let folder = shape_of::<Folder>();
        assert!(folder.is_complete(), "{folder}");
        assert_eq!(
            folder.description(),
            r#"#0=struct "Folder"{"files":map<str,#1=struct "File"{"size":u64,"inside":option<#0>}>}"#
        );
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Everything {
        id: NonZeroU32,
        tags: HashMap<String, Vec<u16>>,
        ratio: Option<f32>,
        took: Duration,
        at: SystemTime,
        raw: serde_bytes_like::Bytes,
        tuple: (bool, char, i128, u128),
        array: [u8; 3],
        unit: (),
        marker: std::marker::PhantomData<u8>,
        boxed: Box<str>,
        shared: Newtype,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Newtype(u32);

    mod serde_bytes_like {
        /// Bytes through `deserialize_bytes`, as `serde_bytes` does.
        pub(super) struct Bytes;

        impl<'de> serde::Deserialize<'de> for Bytes {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visit;
                impl serde::de::Visitor<'_> for Visit {
                    type Value = Bytes;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("16 bytes")
                    }
                    fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Bytes, E> {
                        if bytes.len() == 16 { Ok(Bytes) } else { Err(E::invalid_length(bytes.len(), &self)) }
                    }
                }
                deserializer.deserialize_bytes(Visit)
            }
        }
    }

    #[test]
    fn primitives_collections_and_std_types() {
        let shape = shape_of::<Everything>();
        assert!(shape.is_complete(), "{shape}");
        assert_eq!(
            shape.description(),
            concat!(
                r#"#0=struct "Everything"{"id":u32,"tags":map<str,seq<u16>>,"ratio":option<f32>,"#,
                r#""took":#1=struct "Duration"{"secs":u64,"nanos":u32},"#,
                r#""at":#2=struct "SystemTime"{"secs_since_epoch":u64,"nanos_since_epoch":u32},"#,
                r#""raw":bytes,"tuple":tuple(bool,char,i128,u128),"array":tuple(u8,u8,u8),"unit":unit,"#,
                r#""marker":unit "PhantomData","boxed":str,"shared":#3=struct "Newtype"<u32>}"#
            )
        );
    }

    /// Accepts only an e-mail address.
    #[derive(Debug)]
    struct Email;

    impl<'de> Deserialize<'de> for Email {
        fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
            let text = String::deserialize(deserializer)?;
            if text.contains('@') { Ok(Email) } else { Err(de::Error::custom("not an e-mail address")) }
        }
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Contact {
        name: String,
        email: Email,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Maybe {
        Nothing,
        Contact(Contact),
        Count(u32),
    }

    /// Panics whatever it is given.
    struct Panics;

    impl<'de> Deserialize<'de> for Panics {
        fn deserialize<D: de::Deserializer<'de>>(_: D) -> std::result::Result<Self, D::Error> {
            panic!("a broken Deserialize")
        }
    }

    #[test]
    fn what_cannot_be_traced_is_partial_and_tied_to_the_type_name() {
        let contact = shape_of::<Contact>();
        assert!(!contact.is_complete());
        assert_eq!(contact.description(), "");
        // A variant that cannot be traced leaves the others traced.
        let maybe = shape_of::<Maybe>();
        assert!(!maybe.is_complete());
        assert_eq!(maybe.description(), r#"#0=enum "Maybe"{"Nothing","Contact"?,"Count"<u32>}"#);
        assert_ne!(maybe.fingerprint(), shape_of::<Option<Maybe>>().fingerprint());
        // `deserialize_any`: the shape depends on the input.
        let any = shape_of::<serde_json::Value>();
        assert!(!any.is_complete());
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let panics = shape_of::<Panics>();
        std::panic::set_hook(hook);
        assert!(!panics.is_complete());
    }

    #[test]
    fn fingerprints_are_remembered() {
        let first = fingerprint_of::<Tree>();
        assert_eq!(first, shape_of::<Tree>().fingerprint());
        assert_eq!(fingerprint_of::<Tree>(), first);
    }
}
