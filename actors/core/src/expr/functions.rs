//! Jayway JSONPath's functions at the end of a path, as Conductor definitions use them:
//! `${workflow.input.items.length()}`, `${task.output.prices.sum()}`, `$.items.first()`.
//!
//! A function applies to the value the path before it finds; for a path that finds several
//! values (a wildcard, a filter, a deep scan) that is the list of them. Where Jayway throws
//! (an aggregate over no numbers, `first()` of an empty list, a function of the wrong kind of
//! value), Conductor suppresses the exception and the expression is `null`; so it is here.
//!
//! | function | of | gives |
//! |---|---|---|
//! | `length()` | a list or an object | its number of items or keys |
//! | `sum()`, `avg()`, `min()`, `max()`, `stddev()` | the numbers of a list, and numeric arguments | a double (`6.0`); `stddev` is the population deviation |
//! | `first()`, `last()` | a list | its first or last item |
//! | `keys()` | an object | its keys, as a list |
//! | `concat(...)` | the strings of a list, and string or number arguments | one string |
//!
//! Arguments may be literals only (numbers, quoted strings); a path as an argument makes the
//! expression `null`. The work is bounded: applying a function walks the value once, and that
//! walk is charged to the same budget JSONPath searches are (`payload::MAX_SCANNED_BYTES`).

use serde_json::{Number, Value};

use crate::payload::{self, Exceeded};

/// A function of Jayway's that Overture applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Function {
    Length,
    Sum,
    Avg,
    Min,
    Max,
    StdDev,
    First,
    Last,
    Keys,
    Concat,
}

impl Function {
    fn named(name: &str) -> Option<Function> {
        Some(match name {
            "length" => Function::Length,
            "sum" => Function::Sum,
            "avg" => Function::Avg,
            "min" => Function::Min,
            "max" => Function::Max,
            "stddev" => Function::StdDev,
            "first" => Function::First,
            "last" => Function::Last,
            "keys" => Function::Keys,
            "concat" => Function::Concat,
            _ => return None,
        })
    }
}

/// A function call ending a path, with its arguments as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Call<'p> {
    pub(super) function: Function,
    pub(super) args: &'p str,
}

/// Splits `rest` (the part of a path after its root, like `.input.items.length()`) into the
/// path before a trailing function call and the call; `None` if it does not end in a call of a
/// function this module knows.
///
/// The scan is one pass over the bytes: dots inside brackets, parentheses or quotes do not
/// count, so `.items[?(@.a.b > 1)].sum()` splits after the filter.
pub(super) fn split_call(rest: &str) -> Option<(&str, Call<'_>)> {
    if !rest.ends_with(')') {
        return None;
    }
    let dot = super::top_level(rest).filter(|&(_, b)| b == b'.').last()?.0;
    let call = &rest[dot + 1..];
    let open = call.find('(')?;
    let function = Function::named(&call[..open])?;
    let args = &call[open + 1..call.len() - 1];
    // The call's parentheses must close at the very end: `.sum()x)` is no call.
    if matching_paren(call, open) != Some(call.len() - 1) {
        return None;
    }
    Some((&rest[..dot], Call { function, args }))
}

/// The index of the `)` that closes the `(` at `open`, outside quotes.
fn matching_paren(text: &str, open: usize) -> Option<usize> {
    let (mut depth, mut quote) = (0usize, None::<u8>);
    for (i, &b) in text.as_bytes().iter().enumerate().skip(open) {
        if let Some(q) = quote {
            if b == q {
                quote = None;
            }
            continue;
        }
        match b {
            b'\'' | b'"' => quote = Some(b),
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// One literal argument.
enum Arg {
    Number(Number),
    Text(String),
}

/// The literal arguments of a call; `None` if one is not a literal (a path, say).
fn literal_args(args: &str) -> Option<Vec<Arg>> {
    let mut out = Vec::new();
    if args.trim().is_empty() {
        return Some(out);
    }
    let (mut start, mut quote) = (0usize, None::<u8>);
    let mut pieces = Vec::new();
    for (i, &b) in args.as_bytes().iter().enumerate() {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"') => quote = Some(b),
            (None, b',') => {
                pieces.push(&args[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&args[start..]);
    for piece in pieces {
        let piece = piece.trim();
        let quoted = piece.len() >= 2
            && (piece.starts_with('\'') && piece.ends_with('\'') || piece.starts_with('"') && piece.ends_with('"'));
        if quoted {
            out.push(Arg::Text(piece[1..piece.len() - 1].to_owned()));
        } else {
            out.push(Arg::Number(serde_json::from_str::<Number>(piece).ok()?));
        }
    }
    Some(out)
}

/// Applies `call` to `model`, charging the walk to `scan`. `Ok(Null)` where Jayway would throw.
pub(super) fn apply(call: Call<'_>, model: &Value, scan: &mut usize) -> Result<Value, Exceeded> {
    let walked = payload::approx_size(model, *scan);
    *scan = scan.checked_sub(walked).ok_or(Exceeded::Work(payload::MAX_SCANNED_BYTES))?;
    let Some(args) = literal_args(call.args) else { return Ok(Value::Null) };
    Ok(match call.function {
        Function::Length => match model {
            Value::Array(items) => Value::from(items.len()),
            Value::Object(map) => Value::from(map.len()),
            _ => Value::Null,
        },
        Function::First => model.as_array().and_then(|a| a.first()).cloned().unwrap_or(Value::Null),
        Function::Last => model.as_array().and_then(|a| a.last()).cloned().unwrap_or(Value::Null),
        Function::Keys => match model {
            Value::Object(map) => Value::Array(map.keys().map(|k| Value::String(k.clone())).collect()),
            _ => Value::Null,
        },
        Function::Concat => concat(model, &args),
        aggregate => aggregate_numbers(aggregate, model, &args),
    })
}

/// `concat`: the strings of a list, then the arguments, as one string.
fn concat(model: &Value, args: &[Arg]) -> Value {
    let mut out = String::new();
    if let Value::Array(items) = model {
        for item in items {
            if let Value::String(s) = item {
                out.push_str(s);
            }
        }
    }
    for arg in args {
        match arg {
            Arg::Text(s) => out.push_str(s),
            Arg::Number(n) => out.push_str(&crate::expr::to_java_string(&Value::Number(n.clone()))),
        }
    }
    Value::String(out)
}

/// `sum`, `avg`, `min`, `max`, `stddev` over the numbers of a list and the numeric arguments,
/// as a double; `null` when there are none (Jayway throws) or an argument is not a number.
fn aggregate_numbers(function: Function, model: &Value, args: &[Arg]) -> Value {
    let mut numbers: Vec<f64> = match model {
        Value::Array(items) => items.iter().filter_map(Value::as_f64).collect(),
        _ => Vec::new(),
    };
    for arg in args {
        match arg {
            Arg::Number(n) => numbers.push(n.as_f64().unwrap_or(f64::NAN)),
            Arg::Text(_) => return Value::Null,
        }
    }
    if numbers.is_empty() {
        return Value::Null;
    }
    let count = numbers.len() as f64;
    let sum: f64 = numbers.iter().sum();
    let result = match function {
        Function::Sum => sum,
        Function::Avg => sum / count,
        Function::Min => numbers.iter().copied().fold(f64::INFINITY, f64::min),
        Function::Max => numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Function::StdDev => {
            let squares: f64 = numbers.iter().map(|n| n * n).sum();
            (squares / count - sum * sum / count / count).max(0.0).sqrt()
        }
        Function::Length | Function::First | Function::Last | Function::Keys | Function::Concat => return Value::Null,
    };
    number(result)
}

/// A double as JSON; a result that is not finite (an overflowing sum) is `null`.
fn number(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(rest: &str, model: Value) -> Value {
        let (_, call) = split_call(rest).unwrap_or_else(|| panic!("{rest} ends in a call"));
        let mut scan = payload::MAX_SCANNED_BYTES;
        apply(call, &model, &mut scan).expect("within the budget")
    }

    #[test]
    fn calls_split_off_the_end_of_a_path() {
        let split = |rest| split_call(rest).map(|(prefix, call)| (prefix, call.function, call.args));
        assert_eq!(split(".input.items.length()"), Some((".input.items", Function::Length, "")));
        assert_eq!(split(".length()"), Some(("", Function::Length, "")));
        assert_eq!(split(".items[?(@.a.b > 1)].sum()"), Some((".items[?(@.a.b > 1)]", Function::Sum, "")));
        assert_eq!(split(".names.concat('a.b', \")\")"), Some((".names", Function::Concat, "'a.b', \")\"")));
        assert_eq!(split(".items[?(@.f(x))]"), None, "a call inside a filter is no trailing call");
        assert_eq!(split(".items.size()"), None, "not a function Overture knows");
        assert_eq!(split(".items.length"), None);
        assert_eq!(split("length()"), None, "a call needs its dot");
    }

    #[test]
    fn functions_follow_jayway() {
        let prices = json!([1, 2.5, "x", 3.5, null]);
        assert_eq!(run(".p.length()", prices.clone()), json!(5));
        assert_eq!(run(".p.length()", json!({"名字": 1, "b": 2})), json!(2));
        assert_eq!(run(".p.length()", json!("字符串")), Value::Null, "Jayway has no length of a string");
        assert_eq!(run(".p.sum()", prices.clone()), json!(7.0));
        assert_eq!(run(".p.avg()", prices.clone()), json!(7.0 / 3.0));
        assert_eq!(run(".p.min()", prices.clone()), json!(1.0));
        assert_eq!(run(".p.max()", prices.clone()), json!(3.5));
        assert_eq!(run(".p.stddev()", json!([2, 4, 4, 4, 5, 5, 7, 9])), json!(2.0));
        assert_eq!(run(".p.sum(10, 0.5)", json!([1])), json!(11.5));
        assert_eq!(run(".p.sum()", json!([])), Value::Null, "an aggregate of nothing");
        assert_eq!(run(".p.sum()", json!({"a": 1})), Value::Null);
        assert_eq!(run(".p.sum($.x)", json!([1])), Value::Null, "a path argument");
        assert_eq!(run(".p.sum('a')", json!([1])), Value::Null);
        assert_eq!(run(".p.sum()", json!([1e308, 1e308])), Value::Null, "an overflowing sum");
        assert_eq!(run(".p.first()", json!(["甲", "乙"])), json!("甲"));
        assert_eq!(run(".p.last()", json!(["甲", "乙"])), json!("乙"));
        assert_eq!(run(".p.first()", json!([])), Value::Null);
        assert_eq!(run(".p.last()", json!({"a": 1})), Value::Null);
        assert_eq!(run(".p.keys()", json!({"a": 1, "键": 2})), json!(["a", "键"]));
        assert_eq!(run(".p.keys()", json!([1])), Value::Null);
        assert_eq!(run(".p.concat('-', 1)", json!(["a", 2, "b"])), json!("ab-1"));
        assert_eq!(run(".p.concat(\"x, y\")", json!("ignored")), json!("x, y"));
    }

    #[test]
    fn applying_a_function_is_charged_to_the_budget() {
        let (_, call) = split_call(".p.length()").expect("a call");
        let big = Value::Array(vec![Value::String("x".repeat(1000)); 100]);
        let mut scan = 50_000;
        assert_eq!(apply(call, &big, &mut scan), Err(Exceeded::Work(payload::MAX_SCANNED_BYTES)));
        let mut scan = 200_000;
        assert_eq!(apply(call, &big, &mut scan), Ok(json!(100)));
        assert!(scan < 200_000 - 100_000, "the walk was charged");
    }
}
