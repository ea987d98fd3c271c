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

/// Evaluates `script` with `$` bound to `input` and returns its completion value as JSON
/// (`undefined` and functions become `null`). Errors carry the script's message.
pub fn javascript(script: &str, input: &Value, limits: Limits) -> Result<Value, String> {
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|e| e.memory != limits.memory) {
            *slot = Some(new_engine(limits)?);
        }
        let Some(engine) = slot.as_ref() else { return Err("the JavaScript engine is unavailable".to_owned()) };
        let started = Instant::now();
        engine.deadline.set(started + limits.time);
        let result = run(engine, script, input);
        if result.is_err() {
            // Out of memory or interrupted: start the next evaluation on a fresh runtime.
            *slot = None;
            if started.elapsed() >= limits.time {
                return Err(format!("script timed out after {} ms", limits.time.as_millis()));
            }
        }
        result
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

/// Runs a jq program on `input` and returns every output value.
pub fn jq(program: &str, input: &Value) -> Result<Vec<Value>, String> {
    use jaq_core::load::{Arena, File, Loader};
    use jaq_core::{Compiler, Ctx, Vars, data};

    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(&arena, File { code: program, path: () })
        .map_err(|errors| format!("cannot parse the jq query: {}", describe_load_errors(&errors)))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| format!("cannot compile the jq query: {} undefined name(s)", errors.len()))?;
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

fn describe_load_errors<T: std::fmt::Debug>(errors: &[T]) -> String {
    let first = errors.first().map(|e| format!("{e:?}")).unwrap_or_default();
    let mut short: String = first.chars().take(200).collect();
    if errors.len() > 1 {
        short.push_str(&format!(" (and {} more)", errors.len() - 1));
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn js(script: &str, input: Value) -> Result<Value, String> {
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
        assert!(err.contains("boom"), "{err}");
        assert!(js("(", json!({})).is_err());
        assert_eq!(js("1 + 1", json!({})), Ok(json!(2)));
    }

    #[test]
    fn infinite_loops_and_runaway_memory_fail_the_script_only() {
        let started = Instant::now();
        let err = js("while (true) {}", json!({})).expect_err("the script fails");
        assert!(err.contains("timed out"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
        let err =
            js("let a = []; while (true) { a.push('x'.repeat(1 << 16)); }", json!({})).expect_err("the script fails");
        assert!(!err.is_empty());
        let err = js("function r() { return r(); } r();", json!({})).expect_err("the script fails");
        assert!(!err.is_empty());
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
        assert!(jq(".a |||", &json!({})).is_err());
        assert!(jq("error(\"no\")", &json!({})).is_err());
    }
}
