//! `${workflow.secrets.NAME}`: secrets put into a task's input only when it is handed over.
//!
//! As in conductor-oss, resolving a task's input leaves these expressions as written
//! ([`crate::expr`]), so the stored execution, every API read of it, the UI and the logs show
//! the expression, never the value. When the task is handed to whoever runs it (a worker's poll,
//! the leader's executor) the input it receives has them replaced: a string that is exactly one
//! such expression becomes the secret's value (`null` if there is none); one inside other text
//! is replaced by the value (by nothing if there is none).

use serde_json::Value;

/// What a secret expression starts with.
pub const PREFIX: &str = "${workflow.secrets.";

/// Whether `text` (a task's JSON, say) may hold a secret expression.
pub fn mentions_secrets(text: &str) -> bool {
    text.contains(PREFIX)
}

/// Replaces every secret expression in the strings of `value`, reading values with `lookup`.
/// Answers how many were replaced.
pub fn substitute(value: &mut Value, lookup: &dyn Fn(&str) -> Option<String>) -> usize {
    match value {
        Value::String(s) if mentions_secrets(s) => {
            let (replaced, count) = substitute_text(s, lookup);
            *value = replaced;
            count
        }
        Value::Array(items) => items.iter_mut().map(|v| substitute(v, lookup)).sum(),
        Value::Object(map) => map.values_mut().map(|v| substitute(v, lookup)).sum(),
        _ => 0,
    }
}

/// One string with its secret expressions replaced, and how many there were.
fn substitute_text(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> (Value, usize) {
    if let Some(name) = s.strip_prefix(PREFIX).and_then(|rest| rest.strip_suffix('}'))
        && !name.contains('}')
    {
        return (lookup(name.trim()).map_or(Value::Null, Value::String), 1);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut count = 0;
    while let Some(start) = rest.find(PREFIX) {
        let after = &rest[start + PREFIX.len()..];
        let Some(end) = after.find('}') else { break };
        out.push_str(&rest[..start]);
        out.push_str(&lookup(after[..end].trim()).unwrap_or_default());
        count += 1;
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    (Value::String(out), count)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vault(name: &str) -> Option<String> {
        (name == "api_key").then(|| "密钥-123".to_owned())
    }

    #[test]
    fn whole_and_embedded_expressions_are_replaced() {
        let mut input = json!({
            "headers": {"Authorization": "Bearer ${workflow.secrets.api_key}", "X-Key": "${workflow.secrets.api_key}"},
            "list": ["${workflow.secrets.missing}", "a ${workflow.secrets.missing} b"],
            "plain": "${workflow.input.x}",
            "n": 1
        });
        assert_eq!(substitute(&mut input, &vault), 4);
        assert_eq!(input["headers"]["Authorization"], "Bearer 密钥-123");
        assert_eq!(input["headers"]["X-Key"], "密钥-123");
        assert_eq!(input["list"], json!([null, "a  b"]));
        assert_eq!(input["plain"], "${workflow.input.x}", "other expressions are not touched");
    }

    #[test]
    fn an_unclosed_expression_stays_as_written() {
        let mut input = json!("x ${workflow.secrets.api_key");
        assert_eq!(substitute(&mut input, &vault), 0);
        assert_eq!(input, "x ${workflow.secrets.api_key");
        assert!(!mentions_secrets("${workflow.input.secrets}"));
    }
}
