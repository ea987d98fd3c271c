//! jq in separate processes, under a time and a memory limit.
//!
//! jq runs in jaq, a Rust interpreter with no way to stop it from the outside: no fuel, no
//! interrupt, no allocation hook, and recursion on the native stack. `[limit(1e9; repeat(1))]`
//! allocates until the machine runs out of memory and `def f: [f]; f` overflows the stack,
//! which aborts the whole process. Inside the node, either would take the leader down, and the
//! next leader after it. So every jq query runs in a sandbox process: the node's own binary
//! started with a hidden subcommand that calls [`serve`], speaking one JSON line per request and
//! per answer over its standard input and output.
//!
//! The node keeps a small pool of them ([`Sandbox`]). A query waits for a free one, is written
//! to it, and its answer is awaited with the limits enforced from outside: past the time limit,
//! or once the process has grown by more than the memory limit since the query began, it is
//! killed (SIGKILL) and the query fails with the limit it hit. A process that dies on its own
//! (a stack overflow aborts it) fails the query with that reason. A killed or dead process is
//! replaced by a fresh one on demand. Nothing a query does reaches the node beyond a failed task.
//!
//! The pool is bounded: at most `processes` queries run at once, and a query that finds them
//! all busy waits for one up to the time limit, then fails saying so. The callers (workflow
//! decisions) block a thread for this, never an async worker (they run under
//! `tokio::task::block_in_place`).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Limits};

/// How often a running query's process is checked against the limits.
const CHECK_EVERY: Duration = Duration::from_millis(10);

/// The largest answer a query may give, as JSON: larger results fail the task.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

/// The first line a sandbox process writes, once it has started: the node measures its memory
/// only from then on, so loading the program does not count against a query.
const READY: &str = "ready";

/// How long a new sandbox process may take to say it is [`READY`].
const START_TIME: Duration = Duration::from_secs(10);

/// How a sandbox says a result was over [`MAX_OUTPUT_BYTES`].
const TOO_LARGE: &str = "jq: the result is larger than";

/// Stack of the thread a query runs on, inside the sandbox process: deep enough for any
/// reasonable recursion, small enough that overflowing it stays under the memory limit.
const QUERY_STACK: usize = 32 << 20;

/// How to start a sandbox process: a program and its arguments.
#[derive(Debug, Clone)]
pub struct SandboxCommand {
    /// The program (the node's own executable).
    pub program: PathBuf,
    /// Its arguments (the hidden subcommand that calls [`serve`]).
    pub args: Vec<OsString>,
}

/// A pool of sandbox processes that run jq queries. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    pool: Option<Arc<Pool>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.pool {
            Some(pool) => write!(f, "Sandbox({:?}, up to {} processes)", pool.command.program, pool.size),
            None => f.write_str("Sandbox(unavailable)"),
        }
    }
}

struct Pool {
    command: SandboxCommand,
    limits: Limits,
    size: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

#[derive(Default)]
struct PoolState {
    idle: Vec<Process>,
    /// Processes alive or being started, idle or busy.
    live: usize,
}

/// One sandbox process and the lines it answers with.
struct Process {
    child: Child,
    stdin: ChildStdin,
    answers: Receiver<String>,
}

#[derive(Serialize, Deserialize)]
struct Query {
    program: String,
    input: Value,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Answer {
    Ok(Vec<Value>),
    Error(String),
}

impl Sandbox {
    /// A pool of up to `processes` sandboxes started by `command`, each query under `limits`.
    /// Processes start when the first queries need them.
    pub fn new(command: SandboxCommand, processes: usize, limits: Limits) -> Sandbox {
        let pool = Pool {
            command,
            limits,
            size: processes.max(1),
            state: Mutex::new(PoolState::default()),
            freed: Condvar::new(),
        };
        Sandbox { pool: Some(Arc::new(pool)) }
    }

    /// A sandbox that refuses every query, for an embedding with no program to start.
    pub fn unavailable() -> Sandbox {
        Sandbox { pool: None }
    }

    /// Runs a jq query on `input` in a sandbox process and returns every output value, or why
    /// it failed (`jq: ...`). Blocks the calling thread until the answer or a limit.
    pub fn jq(&self, program: &str, input: &Value) -> Result<Vec<Value>, Error> {
        let Some(pool) = &self.pool else { return Err(Error::Failed("jq is not available on this node".to_owned())) };
        let started = Instant::now();
        let mut process = pool.take(started).map_err(Error::Failed)?;
        let query = Query { program: program.to_owned(), input: input.clone() };
        let mut line =
            serde_json::to_vec(&query).map_err(|e| Error::Failed(format!("jq: the input cannot be sent: {e}")))?;
        line.push(b'\n');
        let outcome = match process.stdin.write_all(&line).and_then(|()| process.stdin.flush()) {
            Ok(()) => pool.await_answer(&mut process, started),
            Err(e) => Err(Failure::Died(format!("the sandbox process did not take the query ({e})"))),
        };
        match outcome {
            Ok(answer) => {
                pool.give_back(process);
                match answer {
                    Answer::Ok(values) => Ok(values),
                    Answer::Error(message) if message.starts_with(TOO_LARGE) => Err(Error::Limit(message)),
                    Answer::Error(message) => Err(Error::Failed(message)),
                }
            }
            Err(Failure::Time) => {
                pool.kill(process);
                Err(Error::Limit(format!("jq: exceeded {} s", pool.limits.time.as_secs_f64())))
            }
            Err(Failure::Memory) => {
                pool.kill(process);
                Err(Error::Limit(format!("jq: exceeded {} MB of memory", pool.limits.memory >> 20)))
            }
            Err(Failure::Died(why)) => Err(match pool.discard(process) {
                Some(status) => Error::Limit(describe_death(status)),
                None => Error::Failed(why),
            }),
        }
    }
}

/// Why a query did not get an answer.
enum Failure {
    Time,
    Memory,
    Died(String),
}

impl Pool {
    /// A free process: an idle one, a new one if the pool is not full, or the next one freed
    /// before the time limit.
    fn take(&self, started: Instant) -> Result<Process, String> {
        let mut state = self.state.lock().map_err(|_| "jq: the sandbox pool is unusable".to_owned())?;
        loop {
            if let Some(process) = state.idle.pop() {
                return Ok(process);
            }
            if state.live < self.size {
                state.live += 1;
                drop(state);
                return self.spawn().inspect_err(|_| self.forget_one());
            }
            let left = self.limits.time.checked_sub(started.elapsed()).filter(|d| !d.is_zero()).ok_or_else(|| {
                format!(
                    "jq: all {} sandboxes stayed busy for {} s; the query did not run",
                    self.size,
                    self.limits.time.as_secs_f64()
                )
            })?;
            state = self.freed.wait_timeout(state, left).map_err(|_| "jq: the sandbox pool is unusable".to_owned())?.0;
        }
    }

    fn spawn(&self) -> Result<Process, String> {
        let mut child = Command::new(&self.command.program)
            .args(&self.command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("jq: cannot start a sandbox process ({}): {e}", self.command.program.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("jq: the sandbox process has no pipes".to_owned());
        };
        // A thread per process reads its answers, so waiting for one can time out.
        let (send, answers) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("jq-sandbox-reader".to_owned())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if send.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("jq: cannot start a reader thread: {e}"))?;
        match answers.recv_timeout(START_TIME) {
            Ok(line) if line == READY => Ok(Process { child, stdin, answers }),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let why = match other {
                    Ok(line) => format!("said {:?} instead of {READY:?}", line.chars().take(80).collect::<String>()),
                    Err(RecvTimeoutError::Timeout) => format!("did not start within {} s", START_TIME.as_secs()),
                    Err(RecvTimeoutError::Disconnected) => "ended as it started".to_owned(),
                };
                Err(format!("jq: the sandbox process ({}) {why}", self.command.program.display()))
            }
        }
    }

    fn await_answer(&self, process: &mut Process, started: Instant) -> Result<Answer, Failure> {
        let baseline = resident_bytes(process.child.id()).unwrap_or(0);
        loop {
            match process.answers.recv_timeout(CHECK_EVERY) {
                Ok(line) => {
                    return serde_json::from_str::<Answer>(&line)
                        .map_err(|e| Failure::Died(format!("jq: the sandbox answered something unreadable ({e})")));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Failure::Died("jq: the sandbox process did not answer".to_owned()));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if started.elapsed() >= self.limits.time {
                return Err(Failure::Time);
            }
            if resident_bytes(process.child.id()).is_some_and(|now| now.saturating_sub(baseline) > self.limits.memory) {
                return Err(Failure::Memory);
            }
        }
    }

    fn give_back(&self, process: Process) {
        if let Ok(mut state) = self.state.lock() {
            state.idle.push(process);
        }
        self.freed.notify_one();
    }

    /// Ends a process and reaps it: one that is ending by itself (it closed its output) gets a
    /// moment to do so, then it is killed. Its exit status if it ended by itself with a failure.
    fn discard(&self, mut process: Process) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_millis(500);
        let mut ended = None;
        while Instant::now() < deadline {
            match process.child.try_wait() {
                Ok(Some(status)) => {
                    ended = Some(status);
                    break;
                }
                Ok(None) => std::thread::sleep(CHECK_EVERY),
                Err(_) => break,
            }
        }
        if ended.is_none() {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        self.forget_one();
        ended.filter(|status| !status.success())
    }

    /// Kills a process that is still running a query, and reaps it.
    fn kill(&self, mut process: Process) {
        let _ = process.child.kill();
        let _ = process.child.wait();
        self.forget_one();
    }

    fn forget_one(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.live = state.live.saturating_sub(1);
        }
        self.freed.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Ok(state) = self.state.get_mut() {
            for process in &mut state.idle {
                let _ = process.child.kill();
                let _ = process.child.wait();
            }
        }
    }
}

/// Why a sandbox process ended by itself, in words for a task's reason.
fn describe_death(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        // Rust aborts a process whose thread overflowed its stack.
        Some(6) => "jq: the query recursed too deeply (stack overflow)".to_owned(),
        Some(signal) => format!("jq: the sandbox process was killed by signal {signal}"),
        None => format!("jq: the sandbox process exited ({status})"),
    }
}

/// A process's resident memory, from `/proc/<pid>/statm`.
fn resident_bytes(pid: u32) -> Option<usize> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The sandbox process's side: answers queries from standard input on standard output until
/// the input ends. Each query runs on a fresh thread with a bounded stack; a query that
/// overflows it aborts this process, which the node sees and reports.
pub fn serve() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{READY}")?;
    stdout.flush()?;
    let mut line = String::new();
    loop {
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        let answer = match parse_query(&line) {
            Ok(query) => run_on_own_stack(query),
            Err(e) => Answer::Error(format!("jq: the query could not be read: {e}")),
        };
        let mut text = serde_json::to_vec(&answer).unwrap_or_default();
        if text.len() > MAX_OUTPUT_BYTES {
            text = serde_json::to_vec(&Answer::Error(format!("{TOO_LARGE} {} MiB", MAX_OUTPUT_BYTES >> 20)))
                .unwrap_or_default();
        }
        text.push(b'\n');
        stdout.write_all(&text)?;
        stdout.flush()?;
    }
}

/// Reads a query; its input may nest as deep as stored payloads do (serde_json alone stops at
/// 128 levels).
fn parse_query(line: &str) -> Result<Query, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(line);
    deserializer.disable_recursion_limit();
    let query = Query::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(query)
}

fn run_on_own_stack(query: Query) -> Answer {
    let worker = std::thread::Builder::new()
        .name("jq".to_owned())
        .stack_size(QUERY_STACK)
        .spawn(move || crate::jq(&query.program, &query.input));
    match worker.map(|handle| handle.join()) {
        Ok(Ok(Ok(values))) => Answer::Ok(values),
        Ok(Ok(Err(message))) => Answer::Error(message),
        Ok(Err(_)) => Answer::Error("jq: the query failed inside the interpreter".to_owned()),
        Err(e) => Answer::Error(format!("jq: cannot start the query's thread: {e}")),
    }
}
