//! Type-erased values: the engine and the stores handle `Arc<dyn Any>` and a
//! table of function pointers per value type and codec, so they are compiled
//! once, not once per `#[cached]` function.

use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::sync::Arc;

use crate::codec::{Codec, DecodeError, EncodeError, encoded_size};
use crate::mode::CacheValue;

/// A loaded value, shared between callers and the in-memory store.
pub(crate) type SharedValue = Arc<dyn Any + Send + Sync>;

/// A cached absence (`None`, `Ok(None)` with `negative_ttl`): stored with an
/// empty payload, read back as the function's own absence.
pub(crate) struct Absent;

/// A shared absence.
pub(crate) fn absent() -> SharedValue {
    Arc::new(Absent)
}

/// Whether a shared value is a cached absence.
pub(crate) fn is_absent(value: &SharedValue) -> bool {
    (**value).is::<Absent>()
}

/// What the engine may do with the values of one type and codec.
pub(crate) struct ValueOps {
    type_id: fn() -> TypeId,
    pub(crate) codec: u8,
    pub(crate) encode: fn(&(dyn Any + Send + Sync), &mut Vec<u8>) -> Result<(), EncodeError>,
    pub(crate) decode: fn(&[u8]) -> Result<SharedValue, DecodeError>,
    /// Size in the default codec, to weigh in-memory entries.
    pub(crate) weigh: fn(&(dyn Any + Send + Sync)) -> usize,
}

impl ValueOps {
    /// Whether `value` is of this type.
    pub(crate) fn holds(&self, value: &SharedValue) -> bool {
        (**value).type_id() == (self.type_id)()
    }
}

/// The [`ValueOps`] of value type `V` in codec `K`.
pub(crate) struct OpsOf<V, K>(PhantomData<(V, K)>);

impl<V: CacheValue, K: Codec> OpsOf<V, K> {
    /// The table.
    pub(crate) const OPS: &'static ValueOps = &ValueOps {
        type_id: TypeId::of::<V>,
        codec: K::ID,
        encode: encode::<V, K>,
        decode: decode::<V, K>,
        weigh: weigh::<V>,
    };
}

fn encode<V: CacheValue, K: Codec>(
    value: &(dyn Any + Send + Sync),
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    match value.downcast_ref::<V>() {
        Some(value) => K::encode(value, out),
        None => Err(EncodeError::new("value of another type")),
    }
}

fn decode<V: CacheValue, K: Codec>(bytes: &[u8]) -> Result<SharedValue, DecodeError> {
    K::decode::<V>(bytes).map(|value| Arc::new(value) as SharedValue)
}

fn weigh<V: CacheValue>(value: &(dyn Any + Send + Sync)) -> usize {
    value.downcast_ref::<V>().and_then(encoded_size).unwrap_or(size_of::<V>())
}
