//! Type-erased values: the engine and the stores handle `Arc<dyn Any>` and a
//! table of function pointers per value type and codec, so they are compiled
//! once, not once per `#[cached]` function.
//!
//! What is erased is the *stored* type: what is encoded outside the process.
//! A function returning `User` is stored as `User`, held in memory in an
//! `Arc<User>` and cloned out on a hit; one returning `Arc<User>` is stored as
//! `User` too (no serde `rc` feature needed), and memory holds the very
//! `Arc<User>` it returned, so a hit clones the `Arc`, not the user. Both read
//! each other's entries. Generated code picks the storage of the value type
//! ([`Cloned`] or [`Shared`]) with a [`StorageProbe`].

use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{Codec, DecodeError, EncodeError, heap_weight};
use crate::mode::{CacheValue, Mode};

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

/// What a cached value is encoded as outside the process.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in a cache",
    label = "the function returns an `Arc` of this",
    note = "a value shared through `Arc<T>` is stored as `T`, which must be `Serialize + DeserializeOwned + Send + Sync + 'static`: derive `serde::Serialize` and `serde::Deserialize` for it"
)]
pub trait Encodable: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T> Encodable for T where T: Serialize + DeserializeOwned + Send + Sync + 'static {}

/// A value type `V` of a function, held in memory and stored outside it as
/// storage `S` ([`Cloned`] or [`Shared`]) says.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached",
    label = "the function returns this",
    note = "a cached value must be `Serialize + DeserializeOwned + Clone + Send + Sync + 'static` (the `T` of an `Arc<T>` need not be `Clone`): derive `serde::Serialize`, `serde::Deserialize` and `Clone` for it, and own its data (no references, `Rc` or `RefCell`); return `Arc<T>` to share a large value without cloning it"
)]
pub trait Cacheable<S>: Sized {
    /// What is encoded outside the process, and held in an `Arc` in memory.
    type Stored: Encodable;
    /// The shared form of a value the body returned.
    fn share(&self) -> SharedValue;
    /// A caller's copy of a shared value, if it holds a `Stored`.
    fn get(shared: &SharedValue) -> Option<Self>;
    /// A caller's value from a shared one that may be held by no one else
    /// (decoded for this call), if it holds a `Stored`.
    fn take(shared: SharedValue) -> Option<Self>;
}

/// `V` itself: memory holds an `Arc<V>` and a hit clones the `V`.
#[derive(Debug, Clone, Copy)]
pub struct Cloned;

/// `Arc<T>`: stored as `T`; memory holds the same `Arc<T>`, and a hit clones the `Arc`.
#[derive(Debug, Clone, Copy)]
pub struct Shared;

impl<V: CacheValue> Cacheable<Cloned> for V {
    type Stored = V;

    fn share(&self) -> SharedValue {
        Arc::new(self.clone())
    }

    #[inline]
    fn get(shared: &SharedValue) -> Option<V> {
        shared.downcast_ref::<V>().cloned()
    }

    fn take(shared: SharedValue) -> Option<V> {
        let shared = shared.downcast::<V>().ok()?;
        Some(Arc::try_unwrap(shared).unwrap_or_else(|shared| V::clone(&shared)))
    }
}

impl<T: Encodable> Cacheable<Shared> for Arc<T> {
    type Stored = T;

    fn share(&self) -> SharedValue {
        Arc::clone(self) as SharedValue
    }

    #[inline]
    fn get(shared: &SharedValue) -> Option<Arc<T>> {
        Arc::clone(shared).downcast::<T>().ok()
    }

    fn take(shared: SharedValue) -> Option<Arc<T>> {
        shared.downcast::<T>().ok()
    }
}

/// Stands for a value type `V` while its storage is looked up.
pub struct StorageProbe<V>(PhantomData<fn() -> V>);

impl<V> StorageProbe<V> {
    /// The probe of the value type that `mode` caches out of a function returning `R`.
    #[must_use]
    pub fn of<R, M: Mode<R, Value = V>>(_mode: &M) -> Self {
        Self(PhantomData)
    }
}

/// The storage of a value type: [`Shared`] for `Arc<T>`, [`Cloned`] for any
/// other type (picked by method resolution, like the return mode: the impl for
/// `Arc` takes `&&StorageProbe`, the catch-all `&StorageProbe`).
pub trait Stores {
    /// [`Cloned`] or [`Shared`].
    type Storage;
    /// The storage, as a value whose type the call reads.
    fn storage(self) -> Self::Storage;
}

impl<T> Stores for &&StorageProbe<Arc<T>> {
    type Storage = Shared;
    fn storage(self) -> Shared {
        Shared
    }
}

impl<V> Stores for &StorageProbe<V> {
    type Storage = Cloned;
    fn storage(self) -> Cloned {
        Cloned
    }
}

/// What the engine may do with the values of one type and codec.
pub(crate) struct ValueOps {
    type_id: fn() -> TypeId,
    pub(crate) codec: u8,
    pub(crate) encode: fn(&(dyn Any + Send + Sync), &mut Vec<u8>) -> Result<(), EncodeError>,
    pub(crate) decode: fn(&[u8]) -> Result<SharedValue, DecodeError>,
    /// What a value occupies in memory (estimated), to weigh in-memory entries.
    pub(crate) weigh: fn(&(dyn Any + Send + Sync)) -> usize,
}

impl ValueOps {
    /// Whether `value` is of this type.
    pub(crate) fn holds(&self, value: &SharedValue) -> bool {
        (**value).type_id() == (self.type_id)()
    }
}

/// The [`ValueOps`] of stored type `V` in codec `K`.
pub(crate) struct OpsOf<V, K>(PhantomData<(V, K)>);

impl<V: Encodable, K: Codec> OpsOf<V, K> {
    /// The table.
    pub(crate) const OPS: &'static ValueOps = &ValueOps {
        type_id: TypeId::of::<V>,
        codec: K::ID,
        encode: encode::<V, K>,
        decode: decode::<V, K>,
        weigh: weigh::<V>,
    };
}

fn encode<V: Encodable, K: Codec>(
    value: &(dyn Any + Send + Sync),
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    match value.downcast_ref::<V>() {
        Some(value) => K::encode(value, out),
        None => Err(EncodeError::new("value of another type")),
    }
}

fn decode<V: Encodable, K: Codec>(bytes: &[u8]) -> Result<SharedValue, DecodeError> {
    K::decode::<V>(bytes).map(|value| Arc::new(value) as SharedValue)
}

fn weigh<V: Encodable>(value: &(dyn Any + Send + Sync)) -> usize {
    value.downcast_ref::<V>().and_then(|value| heap_weight(value, size_of::<V>())).unwrap_or(size_of::<V>())
}
