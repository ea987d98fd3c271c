//! The storage codec: every stored value and log entry is a format-version byte followed by a
//! bincode (serde) encoding. Reading an unknown version is an error, never a guess.
//!
//! bincode is not self-describing, so JSON payloads travel as JSON bytes ([`JsonBytes`], or
//! `overture_core::serde_util::json_bytes` inside core types). Swapping bincode for another format
//! is a change to this file only.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A stored value type and its current format version.
pub trait Versioned: Serialize + DeserializeOwned {
    /// What this is, for error messages.
    const NAME: &'static str;
    /// The format version written now.
    const VERSION: u8;
}

/// A value that could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Empty bytes where a value was expected.
    #[error("{0}: empty value")]
    Empty(&'static str),
    /// A version this build does not know (written by a newer release, or corrupt).
    #[error("{name}: unknown format version {found} (this build reads version {expected})")]
    UnknownVersion {
        /// The stored type's name ([`Versioned::NAME`]).
        name: &'static str,
        /// The version byte the stored value starts with.
        found: u8,
        /// The version this build writes and reads ([`Versioned::VERSION`]).
        expected: u8,
    },
    /// The body did not decode.
    #[error("{name}: {message}")]
    Body {
        /// The stored type's name ([`Versioned::NAME`]).
        name: &'static str,
        /// bincode's error, as text.
        message: String,
    },
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Bytes an encoding starts with room for: most rows fit, and a larger one grows from there in a
/// few steps rather than from one byte in many (growing buffers was 2% of a task's instructions).
const INITIAL_CAPACITY: usize = 256;

/// Encodes a value with its version byte.
pub fn encode<T: Versioned>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(INITIAL_CAPACITY);
    out.push(T::VERSION);
    // Encoding into a Vec cannot fail for our types: they have no maps with non-string keys that
    // bincode rejects, and serde_json encoding of payloads cannot fail for `Value`.
    if let Err(e) = bincode::serde::encode_into_std_write(value, &mut out, config()) {
        unreachable!("encoding {} cannot fail: {e}", T::NAME);
    }
    out
}

/// Decodes a value written by [`encode`].
pub fn decode<T: Versioned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty(T::NAME))?;
    if version != T::VERSION {
        return Err(CodecError::UnknownVersion { name: T::NAME, found: version, expected: T::VERSION });
    }
    let (value, _) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| CodecError::Body { name: T::NAME, message: e.to_string() })?;
    Ok(value)
}

/// Format version of messages between nodes.
pub const WIRE_VERSION: u8 = 1;

/// Encodes a message for another node: the wire version byte, then bincode.
pub fn encode_message<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(INITIAL_CAPACITY);
    out.push(WIRE_VERSION);
    if let Err(e) = bincode::serde::encode_into_std_write(value, &mut out, config()) {
        unreachable!("encoding a Raft message cannot fail: {e}");
    }
    out
}

/// What a message between nodes is called in errors: a peer that refuses one reports this.
const MESSAGE: &str = "node-to-node message";

/// Decodes a message from another node. One of an unknown format version is refused with an
/// error naming both versions, which the sender gets back in the answer.
pub fn decode_message<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty(MESSAGE))?;
    if version != WIRE_VERSION {
        return Err(CodecError::UnknownVersion { name: MESSAGE, found: version, expected: WIRE_VERSION });
    }
    let (value, _) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| CodecError::Body { name: MESSAGE, message: e.to_string() })?;
    Ok(value)
}

/// JSON text carried as bytes inside a bincode record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonBytes(#[serde(with = "overture_core::serde_util::bytes")] pub Vec<u8>);

impl JsonBytes {
    /// Serializes a value to JSON.
    pub fn of<T: Serialize>(value: &T) -> JsonBytes {
        JsonBytes(
            serde_json::to_vec(value).unwrap_or_else(|e| unreachable!("JSON encoding of a model cannot fail: {e}")),
        )
    }
    /// Parses the JSON.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        overture_core::payload::from_slice(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::TaskRef;

    #[test]
    fn values_round_trip_and_unknown_versions_are_refused() {
        let value = TaskRef { workflow_id: "w".into(), seq: 3 };
        let bytes = encode(&value);
        assert_eq!(bytes[0], TaskRef::VERSION);
        assert_eq!(decode::<TaskRef>(&bytes).expect("decodes"), value);

        let mut newer = bytes.clone();
        newer[0] = TaskRef::VERSION + 1;
        let err = decode::<TaskRef>(&newer).expect_err("a newer version is refused");
        assert!(matches!(err, CodecError::UnknownVersion { found, .. } if found == TaskRef::VERSION + 1));
        assert!(matches!(decode::<TaskRef>(&[]), Err(CodecError::Empty(_))));
        assert!(matches!(decode::<TaskRef>(&[TaskRef::VERSION, 0xFF]), Err(CodecError::Body { .. })));
    }

    #[test]
    fn a_message_of_an_unknown_format_is_refused_naming_both_versions() {
        let mut bytes = encode_message(&(1u64, "x".to_owned()));
        assert_eq!(decode_message::<(u64, String)>(&bytes).expect("decodes"), (1, "x".to_owned()));
        bytes[0] = WIRE_VERSION + 1;
        let err = decode_message::<(u64, String)>(&bytes).expect_err("refused").to_string();
        let expected = format!(
            "node-to-node message: unknown format version {} (this build reads version {WIRE_VERSION})",
            WIRE_VERSION + 1
        );
        assert_eq!(err, expected);
    }

    #[test]
    fn json_payloads_survive_bincode() {
        use overture_core::Event;
        let mut output = serde_json::Map::new();
        output.insert("nested".into(), serde_json::json!({"list": [1, 2.5, null, "s"], "flag": true}));
        let event = Event::TaskUpdated(Box::new(overture_core::event::TaskUpdated {
            seq: 1,
            status: overture_core::TaskStatus::Completed,
            output: Some(output),
            reason: None,
            worker_id: Some("w".into()),
            callback_after_seconds: 0,
            time: 5,
        }));
        assert_eq!(decode::<Event>(&encode(&event)).expect("decodes"), event);
    }
}
