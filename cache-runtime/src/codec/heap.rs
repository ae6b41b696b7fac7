//! What a value occupies in process memory, estimated from its serde shape:
//! the weight of an in-memory entry.
//!
//! The encoded size undercounts what a value holds in memory (an empty
//! `String` encodes to one byte and occupies 24), so the in-memory bound
//! weighs each value by this estimate instead: every string, byte buffer and
//! sequence counts its header (24 bytes) and its contents, every map 48 bytes
//! and 8 a pair besides, numbers their width, and an enum's discriminant 8
//! bytes. Allocator rounding and a map's spare capacity are not counted, so
//! the estimate stays within a factor of two of the truth for the usual
//! shapes of cached values (rows, lists of rows, maps of ids).
//!
//! ```text
//! Vec<String> of 10,000 empty strings   240,024 bytes (encoded: 10,002)
//! ```

use serde::ser::{self, Serialize};

/// A `String`, `Vec` or byte buffer's header: pointer, length, capacity.
const BUFFER_HEADER: usize = 24;
/// A map's fixed part, and what each pair costs besides its key and value.
const MAP_HEADER: usize = 48;
const MAP_PAIR: usize = 8;
/// An enum's discriminant, with padding.
const DISCRIMINANT: usize = 8;

/// The estimated bytes `value` occupies in memory, at least `floor` (its
/// type's own size); `None` when it cannot be serialized.
pub(crate) fn heap_weight<T: Serialize + ?Sized>(value: &T, floor: usize) -> Option<usize> {
    let mut weigher = Weigher(0);
    value.serialize(&mut weigher).ok()?;
    Some(weigher.0.max(floor))
}

/// Adds up what it is shown.
struct Weigher(usize);

/// Serialization never fails: the error type exists for serde.
#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unweighable value")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Self
    }
}

impl Weigher {
    fn add(&mut self, bytes: usize) -> Result<(), Never> {
        self.0 = self.0.saturating_add(bytes);
        Ok(())
    }
}

impl ser::Serializer for &mut Weigher {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, _: bool) -> Result<(), Never> {
        self.add(1)
    }
    fn serialize_i8(self, _: i8) -> Result<(), Never> {
        self.add(1)
    }
    fn serialize_i16(self, _: i16) -> Result<(), Never> {
        self.add(2)
    }
    fn serialize_i32(self, _: i32) -> Result<(), Never> {
        self.add(4)
    }
    fn serialize_i64(self, _: i64) -> Result<(), Never> {
        self.add(8)
    }
    fn serialize_i128(self, _: i128) -> Result<(), Never> {
        self.add(16)
    }
    fn serialize_u8(self, _: u8) -> Result<(), Never> {
        self.add(1)
    }
    fn serialize_u16(self, _: u16) -> Result<(), Never> {
        self.add(2)
    }
    fn serialize_u32(self, _: u32) -> Result<(), Never> {
        self.add(4)
    }
    fn serialize_u64(self, _: u64) -> Result<(), Never> {
        self.add(8)
    }
    fn serialize_u128(self, _: u128) -> Result<(), Never> {
        self.add(16)
    }
    fn serialize_f32(self, _: f32) -> Result<(), Never> {
        self.add(4)
    }
    fn serialize_f64(self, _: f64) -> Result<(), Never> {
        self.add(8)
    }
    fn serialize_char(self, _: char) -> Result<(), Never> {
        self.add(4)
    }
    fn serialize_str(self, text: &str) -> Result<(), Never> {
        self.add(BUFFER_HEADER.saturating_add(text.len()))
    }
    fn serialize_bytes(self, bytes: &[u8]) -> Result<(), Never> {
        self.add(BUFFER_HEADER.saturating_add(bytes.len()))
    }
    fn serialize_none(self) -> Result<(), Never> {
        self.add(DISCRIMINANT)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Never> {
        self.add(DISCRIMINANT)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.add(DISCRIMINANT)?;
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Never> {
        self.add(BUFFER_HEADER)?;
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        self.add(DISCRIMINANT)?;
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Never> {
        self.add(MAP_HEADER)?;
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        self.add(DISCRIMINANT)?;
        Ok(self)
    }
}

/// Every compound adds up its elements; a map pair costs [`MAP_PAIR`] more.
macro_rules! compound {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for &mut Weigher {
            type Ok = ();
            type Error = Never;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Never> {
                Ok(())
            }
        }
    )*};
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for &mut Weigher {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Never> {
        self.add(MAP_PAIR)?;
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}

/// Structs add up their fields.
macro_rules! named_fields {
    ($($trait:ident),*) => {$(
        impl ser::$trait for &mut Weigher {
            type Ok = ();
            type Error = Never;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, value: &T) -> Result<(), Never> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Never> {
                Ok(())
            }
        }
    )*};
}

named_fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// What these values occupy, counted by hand from their layouts.
    #[test]
    fn estimates_are_within_twice_the_layout() {
        #[derive(serde::Serialize)]
        struct Profile {
            id: u64,
            name: String,
            email: String,
            team: String,
        }
        let row = Profile {
            id: 7,
            name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
            team: "math".into(),
        };
        // 8 + 3 x 24 inline, 12 + 15 + 4 on the heap.
        let row_bytes = 8 + 3 * 24 + 12 + 15 + 4;
        let empty_strings = vec![String::new(); 10_000];
        let numbers: Vec<u64> = (0..1000).collect();
        let map: HashMap<u64, u32> = (0..1000).map(|id| (id, 1)).collect();
        let cases: [(&str, usize, usize); 4] = [
            ("row", heap_weight(&row, 0).unwrap(), row_bytes),
            ("empty strings", heap_weight(&empty_strings, 0).unwrap(), 24 + 10_000 * 24),
            ("numbers", heap_weight(&numbers, 0).unwrap(), 24 + 1000 * 8),
            // hashbrown: 16 bytes a slot (with padding) and one control byte, at 7/8 load.
            ("map", heap_weight(&map, 0).unwrap(), 48 + 1000 * 17 * 8 / 7),
        ];
        for (what, estimate, truth) in cases {
            assert!(estimate * 2 >= truth && estimate <= truth * 2, "{what}: {estimate} for {truth}");
        }
        assert!(heap_weight(&(), 64) == Some(64), "at least the type's own size");
    }
}
