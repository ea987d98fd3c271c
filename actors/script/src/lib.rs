//! Sandboxed expression engines: JavaScript for INLINE, LAMBDA, SWITCH `javascript` and DO_WHILE
//! `loopCondition`, and jq for JSON_JQ_TRANSFORM.
//!
//! JavaScript runs in QuickJS (rquickjs) with a wall-clock limit, a memory limit and a stack
//! limit: a script that loops forever or allocates without end fails with an error and never
//! takes the node down. Each evaluation gets a fresh context, so nothing one script defines is
//! visible to the next; the runtime is reused per thread and dropped after any error.
//!
//! Values cross the boundary as JSON, the way Conductor's GraalJS bindings see them: `$` is the
//! task input, and the script's completion value (the value of its last statement, as in
//! `if ($.x > 1) { true; } else { false; }`) is the result.
//!
//! jq has no such limits of its own (jaq cannot be interrupted, and recurses on the native
//! stack), so the node runs it in sandbox processes under the same time and memory limits
//! ([`sandbox`]); [`jq`] itself is what such a process runs.

pub mod sandbox;

pub use sandbox::{Sandbox, SandboxCommand};

use std::cell::RefCell;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Limits for one JavaScript evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time a script may run (Conductor's default is 4 s).
    pub time: Duration,
    /// Bytes of heap a script may use.
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { time: Duration::from_secs(4), memory: 64 << 20 }
    }
}

/// Stack the interpreter may use; deep recursion fails instead of overflowing the thread.
const MAX_STACK: usize = 512 << 10;

struct Engine {
    runtime: rquickjs::Runtime,
    deadline: std::rc::Rc<std::cell::Cell<Instant>>,
    memory: usize,
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

fn new_engine(limits: Limits) -> Result<Engine, String> {
    let runtime = rquickjs::Runtime::new().map_err(|e| format!("cannot start the JavaScript engine: {e}"))?;
    runtime.set_memory_limit(limits.memory);
    runtime.set_max_stack_size(MAX_STACK);
    let deadline = std::rc::Rc::new(std::cell::Cell::new(Instant::now() + limits.time));
    let seen = deadline.clone();
    runtime.set_interrupt_handler(Some(Box::new(move || Instant::now() >= seen.get())));
    Ok(Engine { runtime, deadline, memory: limits.memory })
}

/// Why a script gave no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// It failed (a syntax error, an exception, a query error), with its message.
    Failed(String),
    /// It hit a limit: time, memory or stack.
    Limit(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Failed(m) | Error::Limit(m) => f.write_str(m),
        }
    }
}

/// Whether QuickJS's message says the script ran out of memory or stack.
fn is_limit_message(message: &str) -> bool {
    message.contains("out of memory")
        || message.contains("stack overflow")
        || message.contains("Maximum call stack size exceeded")
}

/// Evaluates `script` with `$` bound to `input` and returns its completion value as JSON
/// (`undefined` and functions become `null`). Errors carry the script's message.
pub fn javascript(script: &str, input: &Value, limits: Limits) -> Result<Value, Error> {
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|e| e.memory != limits.memory) {
            *slot = Some(new_engine(limits).map_err(Error::Failed)?);
        }
        let Some(engine) = slot.as_ref() else {
            return Err(Error::Failed("the JavaScript engine is unavailable".to_owned()));
        };
        let started = Instant::now();
        engine.deadline.set(started + limits.time);
        let result = run(engine, script, input);
        match result {
            Ok(value) => Ok(value),
            Err(message) => {
                // Out of memory or interrupted: start the next evaluation on a fresh runtime.
                *slot = None;
                if started.elapsed() >= limits.time {
                    return Err(Error::Limit(format!("script timed out after {} ms", limits.time.as_millis())));
                }
                Err(if is_limit_message(&message) { Error::Limit(message) } else { Error::Failed(message) })
            }
        }
    })
}

fn run(engine: &Engine, script: &str, input: &Value) -> Result<Value, String> {
    let context = rquickjs::Context::full(&engine.runtime).map_err(|e| format!("cannot create a context: {e}"))?;
    context.with(|ctx| {
        let caught = |e: rquickjs::Error| -> String {
            if let rquickjs::Error::Exception = e {
                let thrown = ctx.catch();
                if let Some(ex) = thrown.as_exception() {
                    return ex.message().unwrap_or_else(|| "exception".to_owned());
                }
                return match ctx.json_stringify(thrown) {
                    Ok(Some(s)) => s.to_string().unwrap_or_else(|_| "exception".to_owned()),
                    _ => "exception".to_owned(),
                };
            }
            e.to_string()
        };
        let input_json = serde_json::to_string(input).map_err(|e| e.to_string())?;
        let bound = ctx.json_parse(input_json).map_err(caught)?;
        ctx.globals().set("$", bound).map_err(caught)?;
        let value: rquickjs::Value = ctx.eval(script.as_bytes().to_vec()).map_err(caught)?;
        if value.is_undefined() || value.is_function() || value.is_symbol() {
            return Ok(Value::Null);
        }
        match ctx.json_stringify(value).map_err(caught)? {
            None => Ok(Value::Null),
            Some(text) => {
                let text = text.to_string().map_err(caught)?;
                serde_json::from_str(&text).map_err(|e| format!("the script's result is not JSON: {e}"))
            }
        }
    })
}

/// Runs a jq program on `input` and returns every output value, in this process and with no
/// limits: a query can run forever, take all memory or overflow the stack. The node calls it
/// only inside a sandbox process ([`Sandbox::jq`]).
pub fn jq(program: &str, input: &Value) -> Result<Vec<Value>, String> {
    use jaq_core::{Ctx, Vars, data};

    let filter = compile_jq(program)?;
    let text = serde_json::to_string(input).map_err(|e| e.to_string())?;
    let value = jaq_json::read::parse_single(text.as_bytes()).map_err(|e| format!("input is not JSON: {e}"))?;
    let ctx = Ctx::<data::JustLut<jaq_json::Val>>::new(&filter.lut, Vars::new([]));
    let mut out = Vec::new();
    for item in filter.id.run((ctx, value)).map(jaq_core::unwrap_valr) {
        let item = item.map_err(|e| format!("jq: {e}"))?;
        let json = item.to_string();
        out.push(serde_json::from_str(&json).map_err(|e| format!("jq produced a value that is not JSON ({e})"))?);
    }
    Ok(out)
}

/// A jq program parsed and compiled, or what is wrong with it.
fn compile_jq(program: &str) -> Result<jaq_core::Filter<jaq_core::data::JustLut<jaq_json::Val>>, String> {
    use jaq_core::Compiler;
    use jaq_core::load::{Arena, File, Loader};

    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(&arena, File { code: program, path: () })
        .map_err(|errors| format!("cannot parse the jq query: {}", describe_load_errors(&errors)))?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| format!("cannot compile the jq query: {}", describe_compile_errors(&errors)))
}

/// The start of the query text a parse error points at, in a person's words.
fn near(rest: &str) -> String {
    let shown: String = rest.chars().take(30).collect();
    if shown.len() < rest.len() { format!("`{shown}…`") } else { format!("`{shown}`") }
}

/// What is wrong with a jq query that does not parse: where, and what was expected there.
fn describe_load_errors<P>(errors: &[(jaq_core::load::File<&str, P>, jaq_core::load::Error<&str>)]) -> String {
    use jaq_core::load::{Error, lex};
    let Some((_, first)) = errors.first() else { return "no reason given".to_owned() };
    let described = match first {
        Error::Io(list) => list.first().map_or_else(String::new, |(path, why)| format!("cannot load {path}: {why}")),
        Error::Lex(list) => list.first().map_or_else(String::new, |(expect, rest)| {
            let what = match expect {
                lex::Expect::Digit => "a digit",
                lex::Expect::Ident => "an identifier",
                lex::Expect::Delim("(") => "a closing parenthesis",
                lex::Expect::Delim("[") => "a closing bracket",
                lex::Expect::Delim("{") => "a closing brace",
                lex::Expect::Delim("\"") => "a closing quote",
                lex::Expect::Delim(_) => "a closing delimiter",
                lex::Expect::Escape => "a string escape sequence",
                lex::Expect::Unicode => "a 4-digit hexadecimal code point",
                _ => "a token",
            };
            format!("expected {what} near {}", near(rest))
        }),
        Error::Parse(list) => list
            .first()
            .map_or_else(String::new, |(expect, rest)| format!("expected {} near {}", expect.as_str(), near(rest))),
    };
    let mut described =
        if errors.len() > 1 { format!("{described} (and {} more errors)", errors.len() - 1) } else { described };
    // jq's names are ASCII: a key such as `{订单: .x}` must be quoted, as in jq itself.
    if matches!(first, Error::Lex(list) if list.iter().any(|(_, rest)| rest.chars().next().is_some_and(|c| !c.is_ascii())))
    {
        described.push_str("; names in jq are ASCII, so quote other keys, as in {\"订单\": .x}");
    }
    described
}

/// Which names a jq query uses without defining them.
fn describe_compile_errors<P>(errors: &jaq_core::compile::Errors<&str, P>) -> String {
    let names: Vec<String> = errors
        .iter()
        .flat_map(|(_, list)| list.iter())
        .take(5)
        .map(|(name, undefined)| match undefined {
            jaq_core::compile::Undefined::Filter(arity) => format!("{name}/{arity}"),
            _ => (*name).to_owned(),
        })
        .collect();
    format!("undefined: {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn js(script: &str, input: Value) -> Result<Value, Error> {
        javascript(script, &input, Limits { time: Duration::from_millis(300), memory: 16 << 20 })
    }

    #[test]
    fn completion_values_and_input_binding() {
        assert_eq!(js("$.a + 1", json!({"a": 1})), Ok(json!(2)));
        assert_eq!(js("if ($.n < 3) { true; } else { false; }", json!({"n": 2})), Ok(json!(true)));
        assert_eq!(
            js("function f() { return {x: $.s.toUpperCase()}; } f();", json!({"s": "hi"})),
            Ok(json!({"x": "HI"}))
        );
        assert_eq!(js("undefined", json!({})), Ok(Value::Null));
        assert_eq!(js("[1, 'a', null]", json!({})), Ok(json!([1, "a", null])));
    }

    #[test]
    fn errors_carry_the_message_and_leave_the_engine_usable() {
        let err = js("throw new Error('boom')", json!({})).expect_err("the script fails");
        assert!(matches!(&err, Error::Failed(m) if m.contains("boom")), "{err}");
        assert!(matches!(js("(", json!({})), Err(Error::Failed(_))));
        assert_eq!(js("1 + 1", json!({})), Ok(json!(2)));
    }

    #[test]
    fn infinite_loops_and_runaway_memory_fail_the_script_only() {
        let started = Instant::now();
        let err = js("while (true) {}", json!({})).expect_err("the script fails");
        assert!(matches!(&err, Error::Limit(m) if m.contains("timed out")), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
        let err =
            js("let a = []; while (true) { a.push('x'.repeat(1 << 16)); }", json!({})).expect_err("the script fails");
        // Out of memory, or out of time first on a busy machine: a limit either way.
        assert!(matches!(&err, Error::Limit(m) if m.contains("out of memory") || m.contains("timed out")), "{err}");
        let err = js("function r() { return r(); } r();", json!({})).expect_err("the script fails");
        assert!(matches!(&err, Error::Limit(_)), "{err}");
        assert_eq!(js("$.ok", json!({"ok": true})), Ok(json!(true)));
    }

    #[test]
    fn scripts_do_not_see_each_other() {
        assert_eq!(js("var leaked = 5; leaked", json!({})), Ok(json!(5)));
        assert_eq!(js("typeof leaked", json!({})), Ok(json!("undefined")));
    }

    #[test]
    fn jq_outputs_all_values_and_keeps_integers() {
        assert_eq!(jq(".a + 1", &json!({"a": 1})), Ok(vec![json!(2)]));
        assert_eq!(jq(".xs[] | {v: .}", &json!({"xs": [1, 2]})), Ok(vec![json!({"v": 1}), json!({"v": 2})]));
        assert_eq!(jq("[.xs[] | select(. > 1)] | length", &json!({"xs": [1, 2, 3]})), Ok(vec![json!(2)]));
        assert_eq!(
            jq(".key1.value1 + .key2.value2", &json!({"key1": {"value1": ["a"]}, "key2": {"value2": ["b"]}})),
            Ok(vec![json!(["a", "b"])])
        );
        let err = jq(".a |||", &json!({})).expect_err("does not parse");
        assert!(err.starts_with("cannot parse the jq query: expected") && err.contains("near"), "{err}");
        let err = jq("{结果: .v}", &json!({})).expect_err("keys need quotes");
        assert!(err.contains("quote other keys"), "{err}");
        assert_eq!(jq("{\"结果\": .v}", &json!({"v": "订单"})), Ok(vec![json!({"结果": "订单"})]));
        let err = jq("nosuchfilter(1)", &json!({})).expect_err("undefined");
        assert_eq!(err, "cannot compile the jq query: undefined: nosuchfilter/1");
        assert!(jq("error(\"no\")", &json!({})).is_err());
    }

    /// Sources built from the pieces scripts are made of, and any text at all: Chinese and emoji,
    /// quotes and escapes, brackets that do not close, very long and empty.
    fn source(pieces: &'static [&'static str]) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::collection::vec(proptest::sample::select(pieces), 0..40).prop_map(|p| p.concat()),
            any::<String>(),
            "\\PC{0,200}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any JavaScript source finishes or fails within its limits, and leaves the engine usable.
        #[test]
        fn any_javascript_source_finishes_or_fails_within_its_limits(
            script in source(&["(", ")", "{", "}", "[", "]", "'", "\"", "`", "${", "\\", "/*", "//", ";", "=>",
                "function f() {", "return", "while (true) {}", "$.a", "$", "订单", "🚀", "é", "1e308", "-0",
                "new Array(1e9)", "'x'.repeat(1e7)", "JSON.parse(", "\n"])
        ) {
            let started = Instant::now();
            let _ = js(&script, json!({"a": "订单"}));
            proptest::prop_assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
            proptest::prop_assert_eq!(js("$.a", json!({"a": "订单"})), Ok(json!("订单")));
        }

        /// Any jq source parses and compiles, or is refused with a message that says where. (It
        /// runs only in sandbox processes; this checks the front of the pipeline here.)
        #[test]
        fn any_jq_source_compiles_or_is_refused_with_a_reason(
            program in source(&[".", "|", "[", "]", "{", "}", "(", ")", ",", ":", "\"", "$x", " as ", "def ", "if ",
                " then ", " else ", " end", "reduce ", "foreach ", "length", "keys", "map(", "select(", "订单", "🚀",
                "1", "-", "*", "+", "//", "?", ";", "@base64", "\\(", "..", "$__loc__", "label $out"])
        ) {
            if let Err(message) = compile_jq(&program).map(|_| ()) {
                proptest::prop_assert!(message.starts_with("cannot parse the jq query") || message.starts_with("cannot compile the jq query"), "{}", message);
            }
        }
    }

    /// Deeply nested JavaScript fails on QuickJS's stack limit instead of overflowing the thread.
    #[test]
    fn deeply_nested_javascript_fails_on_the_stack_limit() {
        for depth in [1_000, 100_000] {
            let script = format!("{}1{}", "(".repeat(depth), ")".repeat(depth));
            let result = js(&script, json!({}));
            assert!(depth < 10_000 || matches!(result, Err(Error::Limit(_))), "{depth}: {result:?}");
        }
        let script = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(js(&script, json!({})).is_err());
    }
}
