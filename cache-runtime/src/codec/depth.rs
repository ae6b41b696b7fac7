//! A nesting depth limit for serde formats that have none of their own.
//!
//! Entries are untrusted bytes, and a recursive type (`enum Tree { Leaf(u32),
//! Node(Vec<Tree>) }`) decodes one stack frame per level: a few hundred
//! kilobytes nested a million deep would overflow the stack and abort the
//! process. [`deserialize`] wraps a format's `Deserializer` so that every
//! sequence, map, struct, tuple, enum variant, `Some` and newtype struct opens
//! a level, and opening level [`MAX_DEPTH`] is a serde error: a miss. Nested
//! values pass through the adapter again: the visitor wraps each access it is
//! handed (`SeqAccess`, `MapAccess`, `EnumAccess`, `VariantAccess`) and each
//! access wraps the seed of every element, key, value and variant.
//!
//! [`limited`] counts the same levels when encoding, so a value too deep to
//! decode is refused before it is written.

use std::fmt;

use serde::de::{self, DeserializeSeed, Error as _, Visitor};
use serde::ser::{self, Error as _, Serialize};

/// The nesting depth at which encoding and decoding fail: a value may nest
/// sequences, maps, structs, tuples, enum variants, `Some` and newtype structs
/// up to 127 deep, as JSON through `serde_json` may nest arrays and objects.
///
/// ```
/// use cache_runtime::{Codec, Postcard};
///
/// /// Two levels a link: the newtype struct and its `Some`; one for the last.
/// #[derive(serde::Serialize)]
/// struct List(Option<Box<List>>);
///
/// let list = |links| (0..links).fold(List(None), |next, _| List(Some(Box::new(next))));
/// assert_eq!(cache_runtime::codec::MAX_DEPTH, 128);
/// assert!(Postcard::encode(&list(63), &mut Vec::new()).is_ok()); // 127 levels
/// assert!(Postcard::encode(&list(64), &mut Vec::new()).is_err()); // 129
/// ```
pub const MAX_DEPTH: usize = 128;

/// `T` decoded from `deserializer`, refusing nesting at [`MAX_DEPTH`].
pub(crate) fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
where
    T: de::Deserialize<'de>,
    D: de::Deserializer<'de>,
{
    T::deserialize(Limited::at(deserializer, Depth(0)))
}

/// `value` as a `Serialize` that fails on nesting at [`MAX_DEPTH`].
pub(crate) fn limited<T: Serialize + ?Sized>(value: &T) -> impl Serialize + '_ {
    Limited::at(value, Depth(0))
}

/// The levels open around a value.
#[derive(Debug, Clone, Copy)]
struct Depth(usize);

impl Depth {
    /// One level deeper, unless that reaches the limit.
    fn enter(self) -> Result<Self, TooDeep> {
        let depth = self.0 + 1;
        if depth < MAX_DEPTH { Ok(Self(depth)) } else { Err(TooDeep) }
    }
}

/// The error message, for the format's own `custom` error.
struct TooDeep;

impl fmt::Display for TooDeep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "value nested {MAX_DEPTH} levels deep, past the limit")
    }
}

/// A serde piece (deserializer, visitor, access, seed, serializer, value) and
/// the depth of the value it handles; it hands the depth on to what it nests.
struct Limited<T> {
    inner: T,
    depth: Depth,
}

impl<T> Limited<T> {
    fn at(inner: T, depth: Depth) -> Self {
        Self { inner, depth }
    }
}

// ---------------------------------------------------------------------------
// Decoding: every method wraps the visitor; the visitor counts the levels.

/// `deserialize_*` methods handing the inner deserializer a wrapped visitor.
macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* Limited::at(visitor, self.depth))
        }
    )*};
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for Limited<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
        deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
        deserialize_string(); deserialize_bytes(); deserialize_byte_buf(); deserialize_option();
        deserialize_unit(); deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str); deserialize_seq();
        deserialize_tuple(len: usize); deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map(); deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier(); deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// `visit_*` methods of a value that nests nothing, forwarded as they are.
macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, value: $ty) -> Result<V::Value, E> {
            self.inner.$method(value)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Limited<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool); visit_i8(i8); visit_i16(i16); visit_i32(i32); visit_i64(i64);
        visit_i128(i128); visit_u8(u8); visit_u16(u16); visit_u32(u32); visit_u64(u64);
        visit_u128(u128); visit_f32(f32); visit_f64(f64); visit_char(char); visit_str(&str);
        visit_borrowed_str(&'de str); visit_string(String); visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]); visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let depth = self.depth.enter().map_err(D::Error::custom)?;
        self.inner.visit_some(Limited::at(deserializer, depth))
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let depth = self.depth.enter().map_err(D::Error::custom)?;
        self.inner.visit_newtype_struct(Limited::at(deserializer, depth))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let depth = self.depth.enter().map_err(A::Error::custom)?;
        self.inner.visit_seq(Limited::at(seq, depth))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let depth = self.depth.enter().map_err(A::Error::custom)?;
        self.inner.visit_map(Limited::at(map, depth))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        let depth = self.depth.enter().map_err(A::Error::custom)?;
        self.inner.visit_enum(Limited::at(data, depth))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Limited<S> {
    type Value = S::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Limited::at(deserializer, self.depth))
    }
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Limited<A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, A::Error> {
        self.inner.next_element_seed(Limited::at(seed, self.depth))
    }

    /// The format's own hint: serde's collections preallocate at most 1 MiB from it.
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Limited<A> {
    type Error = A::Error;

    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, A::Error> {
        self.inner.next_key_seed(Limited::at(seed, self.depth))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.inner.next_value_seed(Limited::at(seed, self.depth))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Limited<A> {
    type Error = A::Error;
    type Variant = Limited<A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self::Variant), A::Error> {
        let (variant, access) = self.inner.variant_seed(Limited::at(seed, self.depth))?;
        Ok((variant, Limited::at(access, self.depth)))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Limited<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.inner.newtype_variant_seed(Limited::at(seed, self.depth))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(len, Limited::at(visitor, self.depth))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner.struct_variant(fields, Limited::at(visitor, self.depth))
    }
}

// ---------------------------------------------------------------------------
// Encoding: the same levels, counted by the serializer, so that whatever
// encodes decodes. A tuple or struct variant opens two (the variant, then its
// fields), as it does when decoded.

impl<T: Serialize + ?Sized> Serialize for Limited<&T> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.inner.serialize(Limited::at(serializer, self.depth))
    }
}

/// `serialize_*` methods of a value that nests nothing, forwarded as they are.
macro_rules! forward_serialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method(self, $($arg: $ty),*) -> Result<S::Ok, S::Error> {
            self.inner.$method($($arg),*)
        }
    )*};
}

impl<S: ser::Serializer> ser::Serializer for Limited<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Limited<S::SerializeSeq>;
    type SerializeTuple = Limited<S::SerializeTuple>;
    type SerializeTupleStruct = Limited<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Limited<S::SerializeTupleVariant>;
    type SerializeMap = Limited<S::SerializeMap>;
    type SerializeStruct = Limited<S::SerializeStruct>;
    type SerializeStructVariant = Limited<S::SerializeStructVariant>;

    forward_serialize! {
        serialize_bool(v: bool); serialize_i8(v: i8); serialize_i16(v: i16); serialize_i32(v: i32);
        serialize_i64(v: i64); serialize_i128(v: i128); serialize_u8(v: u8); serialize_u16(v: u16);
        serialize_u32(v: u32); serialize_u64(v: u64); serialize_u128(v: u128); serialize_f32(v: f32);
        serialize_f64(v: f64); serialize_char(v: char); serialize_str(v: &str);
        serialize_bytes(v: &[u8]); serialize_none(); serialize_unit();
        serialize_unit_struct(name: &'static str);
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.depth.enter().map_err(S::Error::custom)?;
        self.inner.serialize_unit_variant(name, index, variant)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let depth = self.depth.enter().map_err(S::Error::custom)?;
        self.inner.serialize_some(&Limited::at(value, depth))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let depth = self.depth.enter().map_err(S::Error::custom)?;
        self.inner.serialize_newtype_struct(name, &Limited::at(value, depth))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let depth = self.depth.enter().map_err(S::Error::custom)?;
        self.inner.serialize_newtype_variant(name, index, variant, &Limited::at(value, depth))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let depth = self.depth.enter().map_err(S::Error::custom)?;
        Ok(Limited::at(self.inner.serialize_seq(len)?, depth))
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let depth = self.depth.enter().map_err(S::Error::custom)?;
        Ok(Limited::at(self.inner.serialize_tuple(len)?, depth))
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let depth = self.depth.enter().map_err(S::Error::custom)?;
        Ok(Limited::at(self.inner.serialize_tuple_struct(name, len)?, depth))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let depth = self.depth.enter().and_then(Depth::enter).map_err(S::Error::custom)?;
        Ok(Limited::at(self.inner.serialize_tuple_variant(name, index, variant, len)?, depth))
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let depth = self.depth.enter().map_err(S::Error::custom)?;
        Ok(Limited::at(self.inner.serialize_map(len)?, depth))
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeStruct, S::Error> {
        let depth = self.depth.enter().map_err(S::Error::custom)?;
        Ok(Limited::at(self.inner.serialize_struct(name, len)?, depth))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let depth = self.depth.enter().and_then(Depth::enter).map_err(S::Error::custom)?;
        Ok(Limited::at(self.inner.serialize_struct_variant(name, index, variant, len)?, depth))
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A compound serializer's methods, each element wrapped at the compound's depth.
macro_rules! limited_compound {
    ($($trait:ident { $($method:ident($($key:ident: $key_ty:ty),*);)* })*) => {$(
        impl<S: ser::$trait> ser::$trait for Limited<S> {
            type Ok = S::Ok;
            type Error = S::Error;

            $(fn $method<T: Serialize + ?Sized>(&mut self, $($key: $key_ty,)* value: &T) -> Result<(), S::Error> {
                self.inner.$method($($key,)* &Limited::at(value, self.depth))
            })*

            fn end(self) -> Result<S::Ok, S::Error> {
                self.inner.end()
            }
        }
    )*};
}

limited_compound! {
    SerializeSeq { serialize_element(); }
    SerializeTuple { serialize_element(); }
    SerializeTupleStruct { serialize_field(); }
    SerializeTupleVariant { serialize_field(); }
    SerializeStruct { serialize_field(key: &'static str); }
    SerializeStructVariant { serialize_field(key: &'static str); }
}

impl<S: ser::SerializeMap> ser::SerializeMap for Limited<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        self.inner.serialize_key(&Limited::at(key, self.depth))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.inner.serialize_value(&Limited::at(value, self.depth))
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}
