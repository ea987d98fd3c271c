//! Serde helpers shared by the DSL and the stored types.
//!
//! Two jobs: tolerate `null` where Conductor (Jackson) tolerates it, and store JSON payloads as JSON
//! bytes inside bincode records. bincode is not self-describing, so a `serde_json::Value` cannot be
//! decoded from it directly; [`json_bytes`] writes the value as a byte string of JSON instead.

use serde::{Deserialize, Deserializer};

/// Deserializes `null` as `T::default()`, the way Jackson fills a primitive field from `null`.
/// An absent field is handled by the field's own `#[serde(default = ...)]`.
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Stores a byte vector as serde bytes (compact in bincode), accepting a sequence of `u8` too.
pub mod bytes {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    /// Writes the bytes.
    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    /// Reads bytes written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_byte_buf(V)
    }
}

/// Stores any serde value as a byte string holding its JSON text.
pub mod json_bytes {
    use serde::de::DeserializeOwned;
    use serde::{Deserializer, Serialize, Serializer};

    /// Writes `value` as the bytes of its JSON text.
    pub fn serialize<S: Serializer, T: Serialize>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes = serde_json::to_vec(value).map_err(serde::ser::Error::custom)?;
        serializer.serialize_bytes(&bytes)
    }

    /// Reads a value written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>, T: DeserializeOwned>(deserializer: D) -> Result<T, D::Error> {
        let bytes = super::bytes::deserialize(deserializer)?;
        crate::payload::from_slice(&bytes).map_err(serde::de::Error::custom)
    }
}

/// `true`, for `#[serde(default = ...)]`.
pub fn default_true() -> bool {
    true
}
