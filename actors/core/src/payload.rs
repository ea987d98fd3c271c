//! How large and how deep a JSON payload may grow inside a workflow, and reading stored JSON back
//! whatever depth it reached.
//!
//! Clients' JSON is parsed at the edge with serde_json's limit of 128 levels. Inside a workflow,
//! values are composed: `${...}` expressions place one payload inside another, a script's result
//! sits under `result`, a loop's output holds its iterations'. Unchecked, composition lets a
//! definition multiply a 5 MiB input into gigabytes (one string per array element, each
//! `${workflow.input}`), or nest a payload one level deeper on every loop iteration until
//! cloning, dropping or encoding it overflows the stack. So:
//!
//! - resolving expressions stops at [`MAX_RESOLVED_BYTES`] and [`MAX_DEPTH`] (the task or the
//!   workflow fails with the reason, see `expr`);
//! - stored JSON is read with [`from_slice`], which accepts any depth up to [`MAX_STORED_DEPTH`]
//!   (well above what composition can reach once resolution is bounded), so a payload that was
//!   written can always be read back, on every replica.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// How deep a value resolved from expressions may nest. Twice the depth a client's JSON may
/// have, so a client's payload placed inside a client's template always fits.
pub const MAX_DEPTH: usize = 256;

/// How many bytes (of JSON, approximately) resolving one task's input or a workflow's output
/// may produce.
pub const MAX_RESOLVED_BYTES: usize = 16 << 20;

/// How many bytes of documents resolving one task's input may walk with JSONPath (deep scans,
/// wildcards, filters each walk the document they run on), so a template of thousands of deep
/// scans over a large input cannot keep the leader busy for minutes.
pub const MAX_SCANNED_BYTES: usize = 64 << 20;

/// The deepest stored JSON [`from_slice`] reads. Resolution stops at [`MAX_DEPTH`]; the few
/// levels a script's result or a loop's output add on top stay far below this.
pub const MAX_STORED_DEPTH: usize = 512;

/// Why a payload may not grow as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exceeded {
    /// It would be larger than this many bytes.
    Size(usize),
    /// It would nest deeper than this many levels.
    Depth(usize),
    /// Finding it would walk more than this many bytes of documents.
    Work(usize),
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exceeded::Size(limit) => write!(f, "would be larger than {} MiB", limit >> 20),
            Exceeded::Depth(limit) => write!(f, "would nest deeper than {limit} levels"),
            Exceeded::Work(limit) => write!(f, "would take JSONPath searches through more than {} MiB", limit >> 20),
        }
    }
}

/// The approximate size of `value` as JSON, counted until it passes `cap` (then some number
/// over `cap`). Strings count their bytes, numbers and literals a few bytes each.
pub fn approx_size(value: &Value, cap: usize) -> usize {
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total += match v {
            Value::Null | Value::Bool(_) => 5,
            // As text a number can take 24 bytes (`-1.7976931348623157E308`).
            Value::Number(_) => 24,
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                stack.extend(items.iter());
                2 + items.len()
            }
            Value::Object(map) => {
                stack.extend(map.values());
                2 + map.keys().map(|k| k.len() + 4).sum::<usize>()
            }
        };
        if total > cap {
            return total;
        }
    }
    total
}

/// How deeply `value` nests (a scalar is 0, `[]` is 1), counted until it passes `cap`.
pub fn depth(value: &Value, cap: usize) -> usize {
    let mut deepest = 0usize;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let level = level + 1;
        deepest = deepest.max(level);
        if deepest > cap {
            return deepest;
        }
        stack.extend(children.map(|c| (c, level)));
    }
    deepest
}

/// How deeply JSON text nests, read from its brackets (outside strings), counted until it passes
/// `cap`. Cheap: one pass over the bytes, no allocation.
pub fn text_depth(json: &[u8], cap: usize) -> usize {
    let (mut level, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                level += 1;
                deepest = deepest.max(level);
                if deepest > cap {
                    return deepest;
                }
            }
            b']' | b'}' => level = level.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The deepest JSON serde_json reads with its recursion limit on.
const SERDE_JSON_DEPTH: usize = 127;

/// Parses stored JSON of any depth up to [`MAX_STORED_DEPTH`] (serde_json alone stops at 127).
pub fn from_slice<T: DeserializeOwned>(json: &[u8]) -> Result<T, serde_json::Error> {
    if text_depth(json, SERDE_JSON_DEPTH) <= SERDE_JSON_DEPTH {
        return serde_json::from_slice(json);
    }
    if text_depth(json, MAX_STORED_DEPTH) > MAX_STORED_DEPTH {
        return Err(serde::de::Error::custom(format_args!("the JSON nests deeper than {MAX_STORED_DEPTH} levels")));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    deserializer.disable_recursion_limit();
    let value = T::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Value {
        let mut v = json!("leaf");
        for _ in 0..levels {
            v = json!([v]);
        }
        v
    }

    #[test]
    fn depth_and_size_are_counted_up_to_their_cap() {
        assert_eq!(depth(&json!(1), 10), 0);
        assert_eq!(depth(&json!({"a": [1, {"b": []}]}), 10), 4);
        assert!(depth(&nested(500), 100) > 100);
        assert_eq!(text_depth(br#"{"a": "[[[", "b": [{"c": "\"]"}]}"#, 10), 3);
        assert!(approx_size(&json!({"s": "x".repeat(1000)}), 100) > 100);
        assert!(approx_size(&json!({"s": "订单"}), 1000) >= 6);
    }

    #[test]
    fn stored_json_deeper_than_serde_json_allows_reads_back() {
        let deep = nested(300);
        let text = serde_json::to_vec(&deep).expect("encodes");
        assert!(serde_json::from_slice::<Value>(&text).is_err(), "serde_json alone refuses it");
        assert_eq!(from_slice::<Value>(&text).expect("reads back"), deep);
        for levels in [SERDE_JSON_DEPTH, SERDE_JSON_DEPTH + 1] {
            let edge = nested(levels);
            let text = serde_json::to_vec(&edge).expect("encodes");
            assert_eq!(from_slice::<Value>(&text).expect("reads back"), edge, "{levels} levels");
        }
        let too_deep = "[".repeat(MAX_STORED_DEPTH + 1) + &"]".repeat(MAX_STORED_DEPTH + 1);
        let err = from_slice::<Value>(too_deep.as_bytes()).expect_err("refused");
        assert!(err.to_string().contains("deeper than"), "{err}");
    }
}
