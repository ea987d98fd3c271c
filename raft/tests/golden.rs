//! Golden encodings: the exact bytes of everything Overture stores or sends between nodes.
//!
//! Every stored value is a version byte then bincode ([`overture_raft::codec`]). bincode is not
//! self-describing: an enum variant is written as its position, a struct as its fields in order,
//! with no names and no defaults. Reordering variants, inserting one before the last, removing
//! one, adding a field anywhere or changing a field's type changes what bytes already on disk,
//! in the Raft log, in snapshots and in flight from nodes not yet upgraded mean. Round-trip tests
//! cannot see that (both sides change together); this test compares with bytes checked in.
//!
//! What it covers:
//!
//! - every stored type of the `versioned!` list in `raft/src/keys.rs` (workflow rows, task rows,
//!   events, queue, running, timer, idempotency, task reference and task log rows, JSON documents,
//!   Raft log entries with every `Request`, votes, log ids, memberships);
//! - every message between nodes ([`overture_raft::codec::encode_message`]): `AppendEntries` and
//!   vote requests, the answers to them and to a snapshot, and the snapshot stream's header;
//! - the snapshot file format (`raft/src/snapshot.rs`) with a row of every state-machine family,
//!   through the public API: the checked-in file is installed by this build, read back, and built
//!   again, and the rebuilt file must equal it byte for byte.
//!
//! For each named sample (fixed values: no clocks, no random ids, JSON with non-ASCII text) the
//! test (a) encodes it and compares with the checked-in bytes, and (b) decodes the checked-in
//! bytes and compares with the sample: with `PartialEq` where the type has it, else as
//! `serde_json` values (`WorkflowRow`, `Entry`, `Request`, `AppendEntriesRequest`); stored JSON
//! documents (`JsonBytes`) are compared parsed into their model (`TaskDef`, `WorkflowDef`, ...).
//! A sample whose bytes changed but whose old bytes still decode to an equal value is reported
//! as such (a compatible change, e.g. a new defaulted field inside a JSON payload); one whose old
//! bytes no longer decode, or decode to something else, is reported as INCOMPATIBLE.
//!
//! # Files
//!
//! `raft/tests/golden/<type>.hex` is text: `#` comment lines, then one sample per line,
//! `name hex`, where hex is the whole encoding (version byte first), in the order the samples are
//! built here. One line per sample keeps a diff to the samples that changed. `snapshot.hex` is a
//! snapshot file split into its parts (magic, format version, metadata, one line per row record,
//! end mark); the parts concatenated are the file. Those parts are what `snapshot_parts` (the
//! format as `raft/src/snapshot.rs` documents it) makes of `snapshot_rows`, whose keys come from
//! `raft/src/keys.rs`: key layouts are pinned too. It holds every sample row, so adding a sample
//! adds lines to it as well (and may renumber the later lines of that family): expected. What
//! matters for the snapshot is that this build installs the checked-in file and rebuilds it.
//!
//! JSON objects in the samples list their keys in sorted order, so the bytes are the same with or
//! without serde_json's `preserve_order` feature.
//!
//! # Every variant has a sample
//!
//! Each enum that is stored or sent (`Request`, `Event`, `EntryPayload`, `TaskStatus`,
//! `WorkflowStatus`, `TimerKind`, `AppendEntriesResponse`) has a `*_covered_by` function: an
//! exhaustive `match` with no `_` arm that names the sample holding each variant. A new variant
//! does not compile until it is named there; [`every_variant_has_a_golden_sample`] then checks
//! that each named sample exists and holds that variant.
//!
//! # Blessing
//!
//! `OVERTURE_BLESS=1 cargo test -p overture-raft --test golden` writes the files from the samples
//! instead of comparing, and prints which lines it added, changed or removed. It still checks
//! that every sample round-trips and that this build installs and rebuilds the snapshot file.
//!
//! Bless only
//!
//! - after adding a sample: a variant added at the end of its enum, or a new stored or sent type
//!   (`git diff raft/tests/golden` must show added lines only), or
//! - after bumping a format version (the type's `VERSION` in `keys.rs`, `WIRE_VERSION`, or the
//!   snapshot's `FORMAT_VERSION`) together with a migration that still reads the old format.
//!
//! A changed existing line means data written before would not read, or would read as
//! something else: do not bless it away; undo the change, or version the format and migrate.
//! The one exception is a change the test reports as compatible (the old bytes still decode to
//! the sample); bless that deliberately. Never remove a sample: data of its shape may exist.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::entry::RaftEntry;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderError, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, Membership, RaftSnapshotBuilder};
use overture_core::dsl::{EventHandler, TaskDef, WorkflowDef, WorkflowTask};
use overture_core::event::{TaskScheduled, TaskUpdated, WorkflowEnded, WorkflowReopened, WorkflowStarted};
use overture_core::external::PayloadTarget;
use overture_core::rows::{QueueItem, RunningItem, TimerItem, TimerKind};
use overture_core::schedule::{ScheduleExecution, WorkflowSchedule};
use overture_core::{Event, Object, Plan, TaskState, TaskStatus, WorkflowHeader, WorkflowStatus};
use overture_raft::codec::{self, CodecError, JsonBytes, Versioned};
use overture_raft::keys::{
    self, ExternalRow, IdempotencyRow, PayloadManifest, PayloadPart, QueuePosition, TaskLogRow, TaskRef, WorkflowRow,
};
use overture_raft::membership::{MembershipChange, Refusal};
use overture_raft::replica::Storage;
use overture_raft::snapshot::SnapshotFile;
use overture_raft::types::{
    Entry, Hidden, LogId, Node, NodeId, SnapshotMeta, StoredMembership, TypeConfig, VariableKind, Vote,
};
use overture_raft::{ReplicaOptions, Request, WorkflowBatch};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// The golden files.

/// Set to `1` to write the golden files instead of comparing with them.
const BLESS: &str = "OVERTURE_BLESS";

fn blessing() -> bool {
    std::env::var_os(BLESS).is_some_and(|v| v == "1")
}

fn golden_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(file)
}

const WHAT_TO_DO: &str = "\
The checked-in bytes are what earlier builds wrote: rows in RocksDB, entries in the Raft log, snapshot files,
and messages from nodes not yet upgraded. bincode writes enum variants by position and struct fields in order,
without names or defaults.
- INCOMPATIBLE (old bytes no longer decode, or decode to another value): data written before this change would
  not read. Do NOT bless. Put variants back in their order (new ones go at the end), restore the field types, or
  bump the type's format VERSION (raft/src/keys.rs `versioned!`, codec::WIRE_VERSION, snapshot FORMAT_VERSION)
  with a migration that still reads the old bytes, and only then bless.
- A new sample without a golden line (a new variant or type): run
  `OVERTURE_BLESS=1 cargo test -p overture-raft --test golden` and check `git diff raft/tests/golden` only adds
  lines.
- Changed bytes that still decode to the sample are compatible (old data reads); bless them deliberately.
See the module doc of raft/tests/golden.rs.";

/// How a type is written: a stored value (its version byte) or a message between nodes.
struct Codec<T> {
    encode: fn(&T) -> Vec<u8>,
    decode: fn(&[u8]) -> Result<T, CodecError>,
}

fn stored<T: Versioned>() -> Codec<T> {
    Codec { encode: codec::encode::<T>, decode: codec::decode::<T> }
}

fn message<T: Serialize + DeserializeOwned>() -> Codec<T> {
    Codec { encode: codec::encode_message::<T>, decode: codec::decode_message::<T> }
}

/// How a decoded value is compared with its sample.
type Same<T> = fn(&T, &T) -> bool;

/// Sample equality for types with `PartialEq`.
fn eq<T: PartialEq>(a: &T, b: &T) -> bool {
    a == b
}

/// Sample equality for types without `PartialEq`: their serde data model, as JSON values.
fn json_eq<T: Serialize>(a: &T, b: &T) -> bool {
    matches!((serde_json::to_value(a), serde_json::to_value(b)), (Ok(x), Ok(y)) if x == y)
}

/// Equality of stored JSON documents: parsed into their model, so a new defaulted field is no break.
fn parsed_eq<D: DeserializeOwned + PartialEq>(a: &JsonBytes, b: &JsonBytes) -> bool {
    matches!((a.parse::<D>(), b.parse::<D>()), (Ok(x), Ok(y)) if x == y)
}

fn describe<T: Serialize>(value: &T) -> String {
    let text = serde_json::to_string(value).unwrap_or_else(|e| format!("<not JSON: {e}>"));
    shorten(&text, 400)
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
        None => text.to_owned(),
    }
}

fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| format!("bad hex at {i}: {e}")))
        .collect()
}

/// Where two encodings first differ, with some bytes of each from a little before there.
fn show_difference(old: &[u8], new: &[u8]) -> String {
    let at = old.iter().zip(new).position(|(a, b)| a != b).unwrap_or(old.len().min(new.len()));
    let from = at.saturating_sub(8);
    let window = |bytes: &[u8]| {
        let end = bytes.len().min(from + 40);
        let more = if end < bytes.len() { "…" } else { "" };
        format!("{}{more}", to_hex(&bytes[from.min(end)..end]))
    };
    format!(
        "first difference at byte {at} (lengths {} → {}):\n      checked in, from byte {from}: {}\n      now,        from byte {from}: {}",
        old.len(),
        new.len(),
        window(old),
        window(new)
    )
}

/// The lines of a golden file, `None` if there is none.
fn read_golden(file: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let path = golden_path(file);
    let text = std::fs::read_to_string(&path).ok()?;
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, hex) =
            line.split_once(' ').unwrap_or_else(|| panic!("{}:{}: expected `name hex`", path.display(), n + 1));
        let bytes = from_hex(hex.trim()).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1));
        lines.push((name.to_owned(), bytes));
    }
    Some(lines)
}

/// Writes a golden file and says on stderr what changed in it.
fn write_golden(file: &str, about: &str, lines: &[(String, Vec<u8>)]) {
    let old: BTreeMap<String, Vec<u8>> = read_golden(file).unwrap_or_default().into_iter().collect();
    let mut text = format!(
        "# {about}\n# One sample per line: `name hex`. Written by raft/tests/golden.rs with {BLESS}=1; read its\n\
         # module doc first: a changed line means data written before would not read.\n"
    );
    for (name, bytes) in lines {
        let _ = writeln!(text, "{name} {}", to_hex(bytes));
    }
    let path = golden_path(file);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create raft/tests/golden");
    }
    std::fs::write(&path, text).expect("write a golden file");
    let new: BTreeMap<&str, &[u8]> = lines.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
    let added: Vec<&str> = new.keys().copied().filter(|n| !old.contains_key(*n)).collect();
    let changed: Vec<&str> =
        new.iter().filter(|(n, b)| old.get(**n).is_some_and(|o| o.as_slice() != **b)).map(|(n, _)| *n).collect();
    let removed: Vec<&str> = old.keys().map(String::as_str).filter(|n| !new.contains_key(n)).collect();
    // Straight to stderr, past the test harness's capture: whoever blesses should see this.
    let mut stderr = std::io::stderr();
    let _ = writeln!(stderr, "blessed {file}: {} lines, added {added:?}", lines.len());
    if !changed.is_empty() || !removed.is_empty() {
        let _ = writeln!(
            stderr,
            "WARNING {file}: changed {changed:?}, removed {removed:?}. Existing data has the old bytes: keep this only \
             with a format VERSION bump and a migration (see the module doc of raft/tests/golden.rs)."
        );
    }
}

/// One golden file being checked (or blessed): samples of one or more types.
struct Golden {
    file: &'static str,
    about: &'static str,
    checked_in: Option<Vec<(String, Vec<u8>)>>,
    now: Vec<(String, Vec<u8>)>,
    problems: Vec<String>,
}

impl Golden {
    fn new(file: &'static str, about: &'static str) -> Golden {
        Golden { file, about, checked_in: read_golden(file), now: Vec::new(), problems: Vec::new() }
    }

    /// Encodes each sample, checks it round-trips, and (unless blessing) compares both ways with
    /// the checked-in bytes.
    fn check<T: Serialize>(&mut self, samples: Vec<(String, T)>, codec: Codec<T>, same: Same<T>) {
        for (name, value) in samples {
            let bytes = (codec.encode)(&value);
            if self.now.iter().any(|(n, _)| *n == name) {
                self.problems.push(format!("`{name}`: two samples have this name"));
            }
            match (codec.decode)(&bytes) {
                Ok(back) if same(&back, &value) => {}
                Ok(back) => self.problems.push(format!(
                    "`{name}`: does not round-trip: decodes to {} (a sample or codec bug)",
                    describe(&back)
                )),
                Err(e) => self.problems.push(format!("`{name}`: its own encoding does not decode: {e}")),
            }
            if !blessing() {
                self.compare(&name, &value, &bytes, &codec, same);
            }
            self.now.push((name, bytes));
        }
    }

    fn compare<T: Serialize>(&mut self, name: &str, value: &T, bytes: &[u8], codec: &Codec<T>, same: Same<T>) {
        let Some(lines) = &self.checked_in else { return };
        let Some((_, golden)) = lines.iter().find(|(n, _)| n == name) else {
            self.problems.push(format!(
                "`{name}`: new sample, no golden line yet: bless to add it (only if its variant or type is new)"
            ));
            return;
        };
        let old = match (codec.decode)(golden) {
            Ok(old) if same(&old, value) => None,
            Ok(old) => Some(format!(
                "INCOMPATIBLE: the checked-in bytes now decode to another value:\n      {}\n      the sample is:\n      {}",
                describe(&old),
                describe(value)
            )),
            Err(e) => Some(format!("INCOMPATIBLE: the checked-in bytes no longer decode: {e}")),
        };
        match (old, golden.as_slice() == bytes) {
            (None, true) => {}
            (None, false) => self.problems.push(format!(
                "`{name}`: the encoding changed, but the checked-in bytes still decode to the sample (compatible: \
                 old data reads); bless if intended. {}",
                show_difference(golden, bytes)
            )),
            (Some(why), true) => self.problems.push(format!("`{name}`: {why}")),
            (Some(why), false) => {
                self.problems.push(format!("`{name}`: {why}\n    encoding: {}", show_difference(golden, bytes)))
            }
        }
    }

    /// Writes the file when blessing; otherwise fails with every problem found.
    fn finish(mut self) {
        if blessing() {
            if self.problems.is_empty() {
                write_golden(self.file, self.about, &self.now);
            }
        } else {
            match &self.checked_in {
                None => self.problems.push(format!("no golden file: bless to create it ({BLESS}=1)")),
                Some(lines) => {
                    for (name, _) in lines.iter().filter(|(n, _)| !self.now.iter().any(|(m, _)| m == n)) {
                        self.problems.push(format!(
                            "`{name}`: golden line without a sample. Samples are never removed: data of that shape \
                             may exist; put the sample back"
                        ));
                    }
                }
            }
        }
        fail_on(&format!("raft/tests/golden/{}", self.file), &self.problems);
    }
}

fn fail_on(what: &str, problems: &[String]) {
    if !problems.is_empty() {
        let list: String = problems.iter().map(|p| format!("\n  - {p}")).collect();
        panic!("{what}: {} golden encoding problem(s):{list}\n\n{WHAT_TO_DO}\n", problems.len());
    }
}

/// A sample's name and value.
fn sample<T>(name: &str, value: T) -> (String, T) {
    (name.to_owned(), value)
}

// ---------------------------------------------------------------------------------------------
// Every variant has a sample: exhaustive matches, no `_` arm.

/// Which sample covers the variant of a value, and the samples every variant is covered by.
struct Covered {
    sample: &'static str,
    all: &'static [&'static str],
}

/// `covered_by!(value, Variant => "sample", ...)`: an exhaustive `match` (no `_` arm, so a new
/// variant does not compile until it is named) and the list of every sample it names.
macro_rules! covered_by {
    ($value:expr, $($variant:pat => $sample:literal),+ $(,)?) => {
        Covered { sample: match $value { $($variant => $sample),+ }, all: &[$($sample),+] }
    };
}

/// The `entry.hex` sample holding each `Request` variant.
fn request_covered_by(request: &Request) -> Covered {
    covered_by!(request, // NEW VARIANT? Add its sample at the end of `entries()`, name it below, then bless (see the module doc)
        Request::Workflow(_) => "normal_workflow",
        Request::PutTaskDefs { .. } => "normal_put_task_defs",
        Request::UpdateTaskDef { .. } => "normal_update_task_def",
        Request::DeleteTaskDef { .. } => "normal_delete_task_def",
        Request::PutWorkflowDefs { .. } => "normal_put_workflow_defs",
        Request::DeleteWorkflowDef { .. } => "normal_delete_workflow_def",
        Request::PutEventHandler { .. } => "normal_put_event_handler",
        Request::DeleteEventHandler { .. } => "normal_delete_event_handler",
        Request::RemoveWorkflow { .. } => "normal_remove_workflow",
        Request::PutSchedule { .. } => "normal_put_schedule",
        Request::DeleteSchedule { .. } => "normal_delete_schedule",
        Request::FireSchedule { .. } => "normal_fire_schedule",
        Request::PurgeWorkflows { .. } => "normal_purge_workflows",
        Request::Workflows(_) => "normal_workflows",
        Request::PutVariable { .. } => "normal_put_variable",
        Request::DeleteVariable { .. } => "normal_delete_variable",
        Request::PutPayloadPart { .. } => "normal_put_payload_part",
        Request::PutQueuePositions { .. } => "normal_put_queue_positions",
    )
}

/// The `entry.hex` sample holding each kind of Raft log entry.
fn payload_covered_by(payload: &EntryPayload<Request, NodeId, Node>) -> Covered {
    covered_by!(payload, // NEW VARIANT (an openraft upgrade)? Add its sample to `entries()`, name it below, then bless (see the module doc)
        EntryPayload::Blank => "blank",
        EntryPayload::Normal(_) => "normal_workflow",
        EntryPayload::Membership(_) => "membership",
    )
}

/// The `event.hex` sample holding each `Event` variant.
fn event_covered_by(event: &Event) -> Covered {
    covered_by!(event, // NEW VARIANT? Add its sample at the end of `events()`, name it below, then bless (see the module doc)
        Event::WorkflowStarted(_) => "workflow_started",
        Event::TaskScheduled(_) => "task_scheduled",
        Event::TaskPolled { .. } => "task_polled",
        Event::TaskUpdated(_) => "task_updated",
        Event::TaskLeaseExtended { .. } => "task_lease_extended",
        Event::TaskStatusChanged { .. } => "task_status_changed",
        Event::TaskExecuted { .. } => "task_executed",
        Event::TaskLogged { .. } => "task_logged",
        Event::WorkflowEnded(_) => "workflow_ended",
        Event::VariablesSet { .. } => "variables_set",
        Event::TaskIterated { .. } => "task_iterated",
        Event::ParentNotified => "parent_notified",
        Event::StatusPublished => "status_published",
        Event::FailureWorkflowStarted { .. } => "failure_workflow_started",
        Event::WorkflowPaused { .. } => "workflow_paused",
        Event::WorkflowResumed { .. } => "workflow_resumed",
        Event::TaskCallbackReset { .. } => "task_callback_reset",
        Event::WorkflowReopened(_) => "workflow_reopened",
        Event::IterationsPruned { .. } => "iterations_pruned",
        Event::PayloadExternalized { .. } => "payload_externalized",
    )
}

/// The `task_state.hex` sample holding each `TaskStatus`.
fn task_status_covered_by(status: &TaskStatus) -> Covered {
    covered_by!(status, // NEW VARIANT? Add its sample at the end of `task_states()`, name it below, then bless (see the module doc)
        TaskStatus::InProgress => "in_progress",
        TaskStatus::Canceled => "canceled",
        TaskStatus::Failed => "failed",
        TaskStatus::FailedWithTerminalError => "failed_with_terminal_error",
        TaskStatus::Completed => "completed",
        TaskStatus::CompletedWithErrors => "completed_with_errors",
        TaskStatus::Scheduled => "scheduled",
        TaskStatus::TimedOut => "timed_out",
        TaskStatus::Skipped => "skipped",
    )
}

/// The `workflow_row.hex` sample holding each `WorkflowStatus`.
fn workflow_status_covered_by(status: &WorkflowStatus) -> Covered {
    covered_by!(status, // NEW VARIANT? Add its sample at the end of `workflow_rows()`, name it below, then bless (see the module doc)
        WorkflowStatus::Running => "running",
        WorkflowStatus::Completed => "completed",
        WorkflowStatus::Failed => "failed",
        WorkflowStatus::TimedOut => "timed_out",
        WorkflowStatus::Terminated => "terminated",
        WorkflowStatus::Paused => "paused",
    )
}

/// The `timer_item.hex` sample holding each `TimerKind`.
fn timer_kind_covered_by(kind: &TimerKind) -> Covered {
    covered_by!(kind, // NEW VARIANT? Add its sample at the end of `timer_items()`, name it below, then bless (see the module doc)
        TimerKind::ResponseTimeout => "response_timeout",
        TimerKind::WaitTimeout => "wait_timeout",
        TimerKind::TaskTimeout => "task_timeout",
        TimerKind::PollTimeout => "poll_timeout",
        TimerKind::TotalTimeout => "total_timeout",
        TimerKind::WorkflowTimeout => "workflow_timeout",
        TimerKind::NotifyParent => "notify_parent",
        TimerKind::StartFailureWorkflow => "start_failure_workflow",
        TimerKind::CancelChild => "cancel_child",
        TimerKind::PublishStatus => "publish_status",
    )
}

/// The `message.hex` sample holding each answer to `AppendEntries`.
fn append_response_covered_by(response: &AppendEntriesResponse<TypeConfig>) -> Covered {
    covered_by!(response, // NEW VARIANT (an openraft upgrade)? Add its sample to `append_answers()`, name it below, then bless (see the module doc)
        AppendEntriesResponse::Success => "append_answer_success",
        AppendEntriesResponse::PartialSuccess(_) => "append_answer_partial_success",
        AppendEntriesResponse::Conflict => "append_answer_conflict",
        AppendEntriesResponse::HigherVote(_) => "append_answer_higher_vote",
    )
}

/// Checks that every sample a `*_covered_by` function names exists in `samples` and holds the
/// variant it is named for.
fn coverage<T>(
    problems: &mut Vec<String>,
    what: &str,
    file: &str,
    samples: &[(String, T)],
    covered: impl Fn(&T) -> Option<Covered>,
) {
    let Some(all) = samples.iter().find_map(|(_, v)| covered(v)).map(|c| c.all) else {
        problems.push(format!("{file}: no sample holds a {what} at all"));
        return;
    };
    let mut seen = BTreeSet::new();
    for wanted in all {
        if !seen.insert(wanted) {
            problems.push(format!("{what}: two variants are covered by the one sample `{wanted}`"));
        }
        match samples.iter().find(|(n, _)| n == wanted) {
            None => problems.push(format!(
                "{what}: the sample `{wanted}` is named as covering a variant, but {file} has no such sample: add it"
            )),
            Some((_, v)) => match covered(v) {
                Some(c) if c.sample == *wanted => {}
                Some(c) => problems.push(format!(
                    "{what}: the sample `{wanted}` holds the variant `{}` is named for, not its own",
                    c.sample
                )),
                None => problems.push(format!("{what}: the sample `{wanted}` holds no {what}")),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed sample data.

/// The workflow most samples belong to.
const WF: &str = "5f0c2a8e-7d41-4b6a-9e3f-1c2d3e4f5a6b";
/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;

fn object(value: Value) -> Object {
    match value {
        Value::Object(map) => map,
        other => panic!("a sample object is an object, not {other}"),
    }
}

fn model<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a sample model parses")
}

fn input() -> Object {
    object(json!({
        "amount": 1250.5,
        "approver": null,
        "currency": "CNY",
        "items": [1, 2, 3],
        "title": "订单审批",
        "urgent": true
    }))
}

fn output() -> Object {
    object(json!({"approved": true, "comment": "同意，请尽快发货", "score": -3}))
}

fn workflow_def() -> WorkflowDef {
    model(json!({
        "name": "order_approval",
        "description": "订单审批流程",
        "version": 3,
        "tasks": [
            {
                "name": "review",
                "taskReferenceName": "review",
                "type": "SIMPLE",
                "inputParameters": {"amount": "${workflow.input.amount}", "title": "${workflow.input.title}"}
            },
            {"name": "wait_for_manager", "taskReferenceName": "wait_for_manager", "type": "WAIT"}
        ],
        "outputParameters": {"approved": "${review.output.approved}"},
        "failureWorkflow": "order_approval_failed",
        "timeoutPolicy": "TIME_OUT_WF",
        "timeoutSeconds": 3600,
        "variables": {"stage": "审批"},
        "ownerEmail": "ops@example.com",
        "workflowStatusListenerEnabled": true
    }))
}

fn plan() -> Arc<Plan> {
    Arc::new(Plan::new(workflow_def()))
}

/// The `def_blobs` key of [`workflow_def`]: SHA-256 of its JSON, as the state machine hashes it.
fn def_hash() -> [u8; 32] {
    Sha256::digest(plan().def_json()).into()
}

fn task_def() -> TaskDef {
    model(json!({
        "name": "review",
        "description": "订单审批：人工复核",
        "retryCount": 2,
        "timeoutSeconds": 600,
        "inputKeys": ["amount", "title"],
        "outputKeys": ["approved"],
        "timeoutPolicy": "RETRY",
        "retryLogic": "EXPONENTIAL_BACKOFF",
        "retryDelaySeconds": 5,
        "responseTimeoutSeconds": 300,
        "concurrentExecLimit": 4,
        "inputTemplate": {"currency": "CNY"},
        "rateLimitPerFrequency": 10,
        "rateLimitFrequencyInSeconds": 60,
        "ownerEmail": "ops@example.com",
        "createTime": T0
    }))
}

fn event_handler() -> EventHandler {
    model(json!({
        "name": "order_events",
        "event": "conductor:order_approval:review",
        "condition": "$.amount > 1000",
        "evaluatorType": "javascript",
        "active": true,
        "actions": [{
            "action": "start_workflow",
            "start_workflow": {"input": {"title": "订单审批"}, "name": "order_audit"},
            "expandInlineJSON": true
        }]
    }))
}

fn schedule() -> WorkflowSchedule {
    model(json!({
        "name": "nightly_orders",
        "cronExpression": "0 0 2 * * ?",
        "runCatchupScheduleInstances": false,
        "paused": false,
        "startWorkflowRequest": {"input": {"title": "订单审批"}, "name": "order_approval", "version": 3},
        "zoneId": "Asia/Shanghai",
        "description": "每晚审批",
        "createdBy": "alice",
        "createTime": T0,
        "nextRunTime": T0 + 86_400_000,
        "lastRunTime": T0
    }))
}

fn schedule_execution() -> ScheduleExecution {
    model(json!({
        "executionId": "nightly_orders-1700000000000",
        "scheduleName": "nightly_orders",
        "scheduledTime": T0,
        "executionTime": T0 + 15,
        "workflowName": "order_approval",
        "workflowId": "wf-from-schedule",
        "state": "EXECUTED",
        "zoneId": "Asia/Shanghai",
        "startWorkflowRequest": {"input": {"title": "订单审批"}, "name": "order_approval"}
    }))
}

fn header(workflow_id: &str, status: WorkflowStatus) -> WorkflowHeader {
    let ended = status.is_terminal();
    WorkflowHeader {
        workflow_id: workflow_id.into(),
        workflow_name: "order_approval".into(),
        workflow_version: 3,
        status,
        input: input(),
        output: output(),
        variables: object(json!({"stage": "审批"})),
        correlation_id: Some("order-2024-0001".into()),
        priority: 7,
        task_to_domain: BTreeMap::from([("review".into(), "finance".into())]),
        create_time: T0,
        update_time: T0 + 5_000,
        end_time: if ended { T0 + 9_000 } else { 0 },
        reason_for_incompletion: ended.then(|| "审批超时".into()),
        failed_reference_task_names: vec!["review".into()],
        failed_task_names: vec!["review".into()],
        parent_workflow_id: Some("parent-wf".into()),
        parent_workflow_task_id: Some("parent-task".into()),
        last_retried_time: T0 + 1_000,
        created_by: Some("alice".into()),
        idempotency_key: Some("order-2024-0001".into()),
        idempotency_strategy: Some("RETURN_EXISTING".into()),
        revision: 42,
        parent_notified: true,
        failure_workflow_pending: status == WorkflowStatus::Failed,
        status_listener_pending: ended,
    }
}

/// A header with every optional field empty.
fn bare_header(workflow_id: &str) -> WorkflowHeader {
    WorkflowHeader {
        workflow_id: workflow_id.into(),
        workflow_name: "order_approval".into(),
        workflow_version: 1,
        status: WorkflowStatus::Running,
        input: Object::new(),
        output: Object::new(),
        variables: Object::new(),
        correlation_id: None,
        priority: 0,
        task_to_domain: BTreeMap::new(),
        create_time: T0,
        update_time: T0,
        end_time: 0,
        reason_for_incompletion: None,
        failed_reference_task_names: Vec::new(),
        failed_task_names: Vec::new(),
        parent_workflow_id: None,
        parent_workflow_task_id: None,
        last_retried_time: 0,
        created_by: None,
        idempotency_key: None,
        idempotency_strategy: None,
        revision: 0,
        parent_notified: false,
        failure_workflow_pending: false,
        status_listener_pending: false,
    }
}

fn task(seq: u32, status: TaskStatus) -> TaskState {
    let workflow_task: WorkflowTask = model(json!({
        "name": "review_dynamic",
        "taskReferenceName": "review",
        "type": "SIMPLE",
        "inputParameters": {"title": "${workflow.input.title}"},
        "optional": true
    }));
    TaskState {
        task_id: format!("task-{seq:04}"),
        seq,
        reference_task_name: "review".into(),
        task_def_name: "review".into(),
        task_type: "review".into(),
        status,
        input: input(),
        output: output(),
        retry_count: 1,
        poll_count: 2,
        scheduled_time: T0 + 1_000,
        start_time: T0 + 2_000,
        end_time: if status.is_terminal() { T0 + 3_000 } else { 0 },
        update_time: T0 + 3_000,
        start_delay_in_seconds: 5,
        callback_after_seconds: 30,
        response_timeout_seconds: 600,
        retried_task_id: Some("task-0000".into()),
        retried: false,
        executed: status.is_terminal(),
        worker_id: Some("worker-7".into()),
        reason_for_incompletion: Some("审批被拒绝".into()),
        domain: Some("finance".into()),
        queue: Some("finance:review@ns-1-iso-1".into()),
        rate_limit_per_frequency: 10,
        rate_limit_frequency_in_seconds: 60,
        isolation_group_id: Some("iso-1".into()),
        execution_name_space: Some("ns-1".into()),
        iteration: 2,
        workflow_task: Some(Box::new(workflow_task)),
        wait_timeout: T0 + 60_000,
        sub_workflow_id: Some("child-wf".into()),
        first_scheduled_time: T0,
        timeout_seconds: 120,
        poll_timeout_seconds: 60,
        total_timeout_seconds: 3_600,
        jitter_ms: 250,
    }
}

/// A task with every optional field empty.
fn bare_task(seq: u32) -> TaskState {
    TaskState {
        task_id: format!("task-{seq:04}"),
        seq,
        reference_task_name: "wait_for_manager".into(),
        task_def_name: "wait_for_manager".into(),
        task_type: "WAIT".into(),
        status: TaskStatus::Scheduled,
        input: Object::new(),
        output: Object::new(),
        retry_count: 0,
        poll_count: 0,
        scheduled_time: T0,
        start_time: 0,
        end_time: 0,
        update_time: T0,
        start_delay_in_seconds: 0,
        callback_after_seconds: 0,
        response_timeout_seconds: 0,
        retried_task_id: None,
        retried: false,
        executed: false,
        worker_id: None,
        reason_for_incompletion: None,
        domain: None,
        queue: None,
        rate_limit_per_frequency: 0,
        rate_limit_frequency_in_seconds: 0,
        isolation_group_id: None,
        execution_name_space: None,
        iteration: 0,
        workflow_task: None,
        wait_timeout: 0,
        sub_workflow_id: None,
        first_scheduled_time: T0,
        timeout_seconds: 0,
        poll_timeout_seconds: 0,
        total_timeout_seconds: 0,
        jitter_ms: 0,
    }
}

fn log_id(term: u64, node: NodeId, index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(term, node, index)
}

fn membership(configs: Vec<Vec<NodeId>>, learners: &[NodeId]) -> Membership<NodeId, Node> {
    let voters: BTreeSet<NodeId> = configs.iter().flatten().copied().collect();
    let nodes: BTreeMap<NodeId, Node> =
        voters.iter().chain(learners).map(|id| (*id, Node::new(format!("10.0.0.{id}:7070")))).collect();
    Membership::new(configs.into_iter().map(BTreeSet::from_iter).collect(), nodes).expect("a valid membership")
}

// ---------------------------------------------------------------------------------------------
// Samples, per golden file. New samples go at the end of their list.

fn workflow_rows() -> Vec<(String, WorkflowRow)> {
    let row = |id: &str, status| WorkflowRow { header: header(id, status), def_hash: def_hash(), task_count: 10 };
    vec![
        sample("running", row(WF, WorkflowStatus::Running)),
        sample("completed", row("wf-completed", WorkflowStatus::Completed)),
        sample("failed", row("wf-failed", WorkflowStatus::Failed)),
        sample("timed_out", row("wf-timed-out", WorkflowStatus::TimedOut)),
        sample("terminated", row("wf-terminated", WorkflowStatus::Terminated)),
        sample("paused", row("wf-paused", WorkflowStatus::Paused)),
        sample("bare", WorkflowRow { header: bare_header("wf-bare"), def_hash: def_hash(), task_count: 0 }),
    ]
}

/// The tasks of [`WF`], `seq` 1 to 10.
fn task_states() -> Vec<(String, TaskState)> {
    vec![
        sample("in_progress", task(1, TaskStatus::InProgress)),
        sample("canceled", task(2, TaskStatus::Canceled)),
        sample("failed", task(3, TaskStatus::Failed)),
        sample("failed_with_terminal_error", task(4, TaskStatus::FailedWithTerminalError)),
        sample("completed", task(5, TaskStatus::Completed)),
        sample("completed_with_errors", task(6, TaskStatus::CompletedWithErrors)),
        sample("scheduled", task(7, TaskStatus::Scheduled)),
        sample("timed_out", task(8, TaskStatus::TimedOut)),
        sample("skipped", task(9, TaskStatus::Skipped)),
        sample("bare", bare_task(10)),
    ]
}

/// The history of [`WF`], revisions 1 on.
fn events() -> Vec<(String, Event)> {
    vec![
        sample(
            "workflow_started",
            Event::WorkflowStarted(Box::new(WorkflowStarted {
                header: WorkflowHeader { revision: 0, ..header(WF, WorkflowStatus::Running) },
                plan: plan(),
            })),
        ),
        sample(
            "task_scheduled",
            Event::TaskScheduled(Box::new(TaskScheduled { task: task(1, TaskStatus::Scheduled), retry_of: None })),
        ),
        sample("task_polled", Event::TaskPolled { seq: 1, worker_id: Some("worker-7".into()), time: T0 + 2_000 }),
        sample(
            "task_updated",
            Event::TaskUpdated(Box::new(TaskUpdated {
                seq: 1,
                status: TaskStatus::Completed,
                output: Some(output()),
                reason: Some("审批通过".into()),
                worker_id: Some("worker-7".into()),
                callback_after_seconds: 0,
                time: T0 + 3_000,
            })),
        ),
        sample("task_lease_extended", Event::TaskLeaseExtended { seq: 1, time: T0 + 2_500 }),
        sample(
            "task_status_changed",
            Event::TaskStatusChanged {
                seq: 2,
                status: TaskStatus::TimedOut,
                reason: Some("响应超时".into()),
                time: T0 + 4_000,
            },
        ),
        sample("task_executed", Event::TaskExecuted { seq: 1 }),
        sample("task_logged", Event::TaskLogged { seq: 1, log: "审批人已查看 ✓".into(), time: T0 + 2_100 }),
        sample(
            "workflow_ended",
            Event::WorkflowEnded(Box::new(WorkflowEnded {
                status: WorkflowStatus::Failed,
                reason: Some("审批超时".into()),
                output: output(),
                failed_reference_task_names: vec!["review".into()],
                failed_task_names: vec!["review".into()],
                time: T0 + 9_000,
                failure_workflow: true,
                status_listener: true,
            })),
        ),
        sample(
            "variables_set",
            Event::VariablesSet { variables: object(json!({"round": 2, "stage": "复核"})), time: T0 + 5_000 },
        ),
        sample(
            "task_iterated",
            Event::TaskIterated {
                seq: 3,
                iteration: 4,
                output: object(json!({"iteration": 3, "title": "订单审批"})),
                resume_at: T0 + 6_000,
                time: T0 + 5_500,
            },
        ),
        sample("parent_notified", Event::ParentNotified),
        sample("status_published", Event::StatusPublished),
        sample(
            "failure_workflow_started",
            Event::FailureWorkflowStarted { workflow_id: Some("wf-failure-handler".into()), error: None },
        ),
        sample("workflow_paused", Event::WorkflowPaused { time: T0 + 7_000 }),
        sample("workflow_resumed", Event::WorkflowResumed { time: T0 + 8_000 }),
        sample("task_callback_reset", Event::TaskCallbackReset { seq: 7 }),
        sample(
            "workflow_reopened",
            Event::WorkflowReopened(Box::new(WorkflowReopened {
                keep_tasks: 0,
                restart: true,
                plan: Some(plan()),
                input: Some(input()),
                correlation_id: Some("order-2024-0002".into()),
                time: T0 + 10_000,
            })),
        ),
        // Other shapes of the variants above.
        sample(
            "task_scheduled_retry",
            Event::TaskScheduled(Box::new(TaskScheduled { task: bare_task(10), retry_of: Some(3) })),
        ),
        sample(
            "task_updated_keeping_output",
            Event::TaskUpdated(Box::new(TaskUpdated {
                seq: 1,
                status: TaskStatus::InProgress,
                output: None,
                reason: None,
                worker_id: None,
                callback_after_seconds: 30,
                time: T0 + 2_200,
            })),
        ),
        sample(
            "failure_workflow_not_started",
            Event::FailureWorkflowStarted { workflow_id: None, error: Some("找不到失败处理工作流".into()) },
        ),
        sample(
            "workflow_reopened_retry",
            Event::WorkflowReopened(Box::new(WorkflowReopened {
                keep_tasks: 3,
                restart: false,
                plan: None,
                input: None,
                correlation_id: None,
                time: T0 + 11_000,
            })),
        ),
        sample("iterations_pruned", Event::IterationsPruned { seq: 2, through: 498, tasks: vec![3, 4, 300, 70_000] }),
        sample(
            "payload_externalized",
            Event::PayloadExternalized {
                target: PayloadTarget::TaskOutput(70_000),
                path: "task/output/订单-6f1c.json".into(),
            },
        ),
    ]
}

fn queue_items() -> Vec<(String, QueueItem)> {
    vec![
        sample(
            "queued",
            QueueItem {
                queue: "finance:review@ns-1-iso-1".into(),
                task_id: "task-0007".into(),
                workflow_id: WF.into(),
                priority: 7,
                ready_at: T0 + 3_030,
            },
        ),
        sample(
            "system_queue",
            QueueItem {
                queue: "_system:HTTP".into(),
                task_id: "task-0011".into(),
                workflow_id: WF.into(),
                priority: -1,
                ready_at: 0,
            },
        ),
    ]
}

fn running_items() -> Vec<(String, RunningItem)> {
    vec![sample(
        "running",
        RunningItem { task_def_name: "review".into(), task_id: "task-0001".into(), workflow_id: WF.into() },
    )]
}

fn idempotency_rows() -> Vec<(String, IdempotencyRow)> {
    vec![sample("started", IdempotencyRow { workflow_id: WF.into() })]
}

fn timer_items() -> Vec<(String, TimerItem)> {
    let timer = |kind, seq, fire_at| TimerItem { fire_at, workflow_id: WF.into(), kind, seq };
    vec![
        sample("response_timeout", timer(TimerKind::ResponseTimeout, 1, T0 + 603_000)),
        sample("wait_timeout", timer(TimerKind::WaitTimeout, 2, T0 + 60_000)),
        sample("task_timeout", timer(TimerKind::TaskTimeout, 1, T0 + 122_000)),
        sample("poll_timeout", timer(TimerKind::PollTimeout, 7, T0 + 63_030)),
        sample("total_timeout", timer(TimerKind::TotalTimeout, 1, T0 + 3_600_000)),
        sample("workflow_timeout", timer(TimerKind::WorkflowTimeout, 0, T0 + 3_601_000)),
        sample("notify_parent", timer(TimerKind::NotifyParent, 0, T0 + 9_000)),
        sample("start_failure_workflow", timer(TimerKind::StartFailureWorkflow, 0, T0 + 9_000)),
        sample("cancel_child", timer(TimerKind::CancelChild, 2, T0 + 9_000)),
        sample("publish_status", timer(TimerKind::PublishStatus, 0, T0 + 9_000)),
    ]
}

fn task_refs() -> Vec<(String, TaskRef)> {
    vec![
        sample("task", TaskRef { workflow_id: WF.into(), seq: 1 }),
        sample("large_seq", TaskRef { workflow_id: WF.into(), seq: u32::MAX }),
    ]
}

/// The log of task `task-0001`, revisions 1 on.
fn task_log_rows() -> Vec<(String, TaskLogRow)> {
    vec![
        sample("line", TaskLogRow { log: "审批人已查看 ✓".into(), created_time: T0 + 2_100 }),
        sample("empty", TaskLogRow { log: String::new(), created_time: 0 }),
    ]
}

/// Entries of the Raft log: every kind, and a normal entry with every `Request`.
fn entries() -> Vec<(String, Entry)> {
    let normal = |index, request| Entry::new_normal(log_id(3, 1, index), request);
    let batch =
        |revision, events: Vec<Event>| WorkflowBatch { workflow_id: WF.into(), expected_revision: revision, events };
    let polled = Event::TaskPolled { seq: 1, worker_id: Some("worker-7".into()), time: T0 + 2_000 };
    let logged = Event::TaskLogged { seq: 1, log: "审批人已查看".into(), time: T0 + 2_100 };
    let started = events().into_iter().map(|(_, e)| e).next().expect("a start event");
    vec![
        sample("blank", Entry::new_blank(log_id(3, 1, 100))),
        sample("membership", Entry::new_membership(log_id(3, 1, 101), membership(vec![vec![1, 2, 3]], &[4]))),
        sample("normal_workflow", normal(102, Request::Workflow(batch(7, vec![polled.clone(), logged.clone()])))),
        sample(
            "normal_put_task_defs",
            normal(103, Request::PutTaskDefs { defs: vec![JsonBytes::of(&task_def()), JsonBytes(b"{}".to_vec())] }),
        ),
        sample(
            "normal_update_task_def",
            normal(104, Request::UpdateTaskDef { def: JsonBytes::of(&task_def()), time: T0 }),
        ),
        sample("normal_delete_task_def", normal(105, Request::DeleteTaskDef { name: "review".into() })),
        sample(
            "normal_put_workflow_defs",
            normal(
                106,
                Request::PutWorkflowDefs { defs: vec![JsonBytes::of(&workflow_def())], overwrite: true, time: T0 },
            ),
        ),
        sample(
            "normal_delete_workflow_def",
            normal(107, Request::DeleteWorkflowDef { name: "order_approval".into(), version: 3 }),
        ),
        sample(
            "normal_put_event_handler",
            normal(108, Request::PutEventHandler { handler: JsonBytes::of(&event_handler()), create: true }),
        ),
        sample("normal_delete_event_handler", normal(109, Request::DeleteEventHandler { name: "order_events".into() })),
        sample("normal_remove_workflow", normal(110, Request::RemoveWorkflow { workflow_id: WF.into() })),
        sample("normal_put_schedule", normal(111, Request::PutSchedule { schedule: JsonBytes::of(&schedule()) })),
        sample("normal_delete_schedule", normal(112, Request::DeleteSchedule { name: "nightly_orders".into() })),
        sample(
            "normal_fire_schedule",
            normal(
                113,
                Request::FireSchedule {
                    name: "nightly_orders".into(),
                    scheduled_time: T0,
                    next_run_time: Some(T0 + 86_400_000),
                    execution: Some(JsonBytes::of(&schedule_execution())),
                    start: Some(batch(0, vec![started])),
                },
            ),
        ),
        sample(
            "normal_purge_workflows",
            normal(
                114,
                Request::PurgeWorkflows {
                    workflows: vec![("wf-completed".into(), T0 + 9_000), ("wf-订单".into(), 0)]
                },
            ),
        ),
        sample(
            "normal_workflows",
            normal(
                115,
                Request::Workflows(vec![batch(7, vec![polled]), batch(8, vec![logged, Event::ParentNotified])]),
            ),
        ),
        // Other shapes of the variants above.
        sample(
            "membership_joint",
            Entry::new_membership(log_id(4, 2, 116), membership(vec![vec![1, 2, 3], vec![2, 3, 4]], &[5])),
        ),
        sample(
            "normal_fire_schedule_skipped",
            normal(
                117,
                Request::FireSchedule {
                    name: "nightly_orders".into(),
                    scheduled_time: T0,
                    next_run_time: None,
                    execution: None,
                    start: None,
                },
            ),
        ),
        sample("normal_large_log_id", Entry::new_blank(log_id(u64::MAX, u64::MAX, u64::MAX))),
        sample(
            "normal_put_variable",
            normal(
                118,
                Request::PutVariable {
                    kind: VariableKind::Secret,
                    name: "payment_api_key".into(),
                    value: Hidden("密钥-s3cr3t".into()),
                },
            ),
        ),
        sample(
            "normal_delete_variable",
            normal(119, Request::DeleteVariable { kind: VariableKind::Env, name: "region".into() }),
        ),
        sample(
            "normal_put_payload_part",
            normal(
                120,
                Request::PutPayloadPart {
                    path: "task/output/订单-6f1c.json".into(),
                    index: 1,
                    parts: 3,
                    bytes: br#"{"k":"\u0000"}"#.to_vec(),
                },
            ),
        ),
        sample(
            "normal_put_queue_positions",
            normal(
                121,
                Request::PutQueuePositions {
                    queue: "kafka:订单".into(), positions: vec![(0, 0), (2, 7_000_000_000)]
                },
            ),
        ),
    ]
}

fn external_rows() -> Vec<(String, ExternalRow)> {
    vec![sample("path", ExternalRow { path: "workflow/input/订单.json".into() })]
}

fn payload_manifests() -> Vec<(String, PayloadManifest)> {
    vec![sample("three_parts", PayloadManifest { size: 2_097_153, parts: 3 })]
}

fn payload_parts() -> Vec<(String, PayloadPart)> {
    vec![sample("json", PayloadPart(r#"{"名":"值"}"#.as_bytes().to_vec())), sample("empty", PayloadPart(Vec::new()))]
}

fn queue_positions() -> Vec<(String, QueuePosition)> {
    vec![sample("start", QueuePosition { offset: 0 }), sample("large", QueuePosition { offset: 7_000_000_000 })]
}

fn variables() -> Vec<(String, Hidden)> {
    vec![sample("secret", Hidden("密钥-s3cr3t".into())), sample("empty", Hidden(String::new()))]
}

fn votes() -> Vec<(String, Vote)> {
    vec![sample("uncommitted", Vote::new(5, 2)), sample("committed", Vote::new_committed(5, 2))]
}

fn log_ids() -> Vec<(String, LogId)> {
    vec![
        sample("first", log_id(1, 1, 1)),
        sample("multi_byte", log_id(300, 70_000, 5_000_000_000)),
        sample("max", log_id(u64::MAX, u64::MAX, u64::MAX)),
    ]
}

fn memberships() -> Vec<(String, StoredMembership)> {
    vec![
        sample("none", StoredMembership::default()),
        sample("single", StoredMembership::new(Some(log_id(3, 1, 101)), membership(vec![vec![1, 2, 3]], &[4]))),
        sample(
            "joint",
            StoredMembership::new(Some(log_id(4, 2, 116)), membership(vec![vec![1, 2, 3], vec![2, 3, 4]], &[5])),
        ),
    ]
}

type Answer<T> = Result<T, String>;

fn append_requests() -> Vec<(String, AppendEntriesRequest<TypeConfig>)> {
    let entries: Vec<Entry> = entries().into_iter().take(3).map(|(_, e)| e).collect();
    vec![
        sample(
            "append_heartbeat",
            AppendEntriesRequest {
                vote: Vote::new_committed(3, 1),
                prev_log_id: Some(log_id(3, 1, 99)),
                entries: Vec::new(),
                leader_commit: Some(log_id(3, 1, 98)),
            },
        ),
        sample(
            "append_entries",
            AppendEntriesRequest { vote: Vote::new_committed(3, 1), prev_log_id: None, entries, leader_commit: None },
        ),
    ]
}

fn vote_requests() -> Vec<(String, VoteRequest<TypeConfig>)> {
    vec![
        sample(
            "vote_request",
            VoteRequest { vote: Vote::new(6, 2), last_log_id: Some(log_id(5, 1, 120)), leadership_transfer: false },
        ),
        sample(
            "vote_request_transfer",
            VoteRequest { vote: Vote::new(7, 3), last_log_id: None, leadership_transfer: true },
        ),
    ]
}

fn append_answers() -> Vec<(String, Answer<AppendEntriesResponse<TypeConfig>>)> {
    vec![
        sample("append_answer_success", Ok(AppendEntriesResponse::Success)),
        sample("append_answer_partial_success", Ok(AppendEntriesResponse::PartialSuccess(Some(log_id(3, 1, 110))))),
        sample("append_answer_conflict", Ok(AppendEntriesResponse::Conflict)),
        sample("append_answer_higher_vote", Ok(AppendEntriesResponse::HigherVote(Vote::new_committed(4, 2)))),
        sample("append_answer_partial_success_none", Ok(AppendEntriesResponse::PartialSuccess(None))),
        sample("append_answer_refused", Err("undecodable append: 磁盘已满".into())),
    ]
}

fn vote_answers() -> Vec<(String, Answer<VoteResponse<TypeConfig>>)> {
    vec![
        sample(
            "vote_answer_granted",
            Ok(VoteResponse { vote: Vote::new(6, 2), vote_granted: true, last_log_id: Some(log_id(5, 1, 120)) }),
        ),
        sample(
            "vote_answer_denied",
            Ok(VoteResponse { vote: Vote::new_committed(6, 1), vote_granted: false, last_log_id: None }),
        ),
        sample("vote_answer_refused", Err("Raft has stopped".into())),
    ]
}

fn snapshot_answers() -> Vec<(String, Answer<SnapshotResponse<TypeConfig>>)> {
    vec![
        sample("snapshot_answer", Ok(SnapshotResponse { vote: Vote::new_committed(3, 1) })),
        sample("snapshot_answer_refused", Err("Raft has stopped: 磁盘已满".into())),
    ]
}

fn transfer_leader_requests() -> Vec<(String, TransferLeaderRequest<TypeConfig>)> {
    vec![
        sample("transfer_leader", TransferLeaderRequest::new(Vote::new_committed(4, 1), 2, Some(log_id(4, 1, 77)))),
        sample("transfer_leader_empty_log", TransferLeaderRequest::new(Vote::new_committed(1, 3), 1, None)),
    ]
}

fn transfer_leader_answers() -> Vec<(String, Answer<TransferLeaderResponse<TypeConfig>>)> {
    vec![
        sample("transfer_leader_answer", Ok(Ok(()))),
        sample(
            "transfer_leader_answer_vote_changed",
            Ok(Err(TransferLeaderError::VoteChanged { expected: Vote::new_committed(4, 1), actual: Vote::new(5, 2) })),
        ),
        sample(
            "transfer_leader_answer_not_flushed",
            Ok(Err(TransferLeaderError::LogNotFlushed { expected: Some(log_id(4, 1, 77)), actual: None })),
        ),
    ]
}

fn membership_changes() -> Vec<(String, MembershipChange)> {
    vec![
        sample("membership_add_learner", MembershipChange::AddLearner { id: 4, address: "10.0.0.4:8080".into() }),
        sample("membership_promote", MembershipChange::Promote { id: 4 }),
        sample("membership_remove", MembershipChange::Remove { id: 2 }),
    ]
}

fn membership_answers() -> Vec<(String, Answer<Result<(), Refusal>>)> {
    vec![
        sample("membership_answer", Ok(Ok(()))),
        sample("membership_answer_retry", Ok(Err(Refusal { retry: true, message: "领导者已变更".into() }))),
        sample("membership_answer_refused", Ok(Err(Refusal { retry: false, message: "not a learner".into() }))),
    ]
}

fn snapshot_meta() -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(log_id(3, 1, 120)),
        last_membership: StoredMembership::new(Some(log_id(3, 1, 101)), membership(vec![vec![1, 2, 3]], &[4])),
    }
}

fn snapshot_headers() -> Vec<(String, (Vote, SnapshotMeta))> {
    vec![
        sample("snapshot_header", (Vote::new_committed(3, 1), snapshot_meta())),
        sample(
            "snapshot_header_empty",
            (Vote::new(1, 1), SnapshotMeta { last_log_id: None, last_membership: StoredMembership::default() }),
        ),
    ]
}

fn json_documents() -> Vec<(&'static str, JsonBytes, Same<JsonBytes>)> {
    vec![
        ("task_def", JsonBytes::of(&task_def()), parsed_eq::<TaskDef>),
        ("workflow_def", JsonBytes(plan().def_json().to_vec()), parsed_eq::<WorkflowDef>),
        ("event_handler", JsonBytes::of(&event_handler()), parsed_eq::<EventHandler>),
        ("schedule", JsonBytes::of(&schedule()), parsed_eq::<WorkflowSchedule>),
        ("schedule_execution", JsonBytes::of(&schedule_execution()), parsed_eq::<ScheduleExecution>),
        ("empty_object", JsonBytes(b"{}".to_vec()), eq::<JsonBytes>),
    ]
}

// ---------------------------------------------------------------------------------------------
// Stored values and messages.

#[test]
fn workflow_rows_are_golden() {
    let mut g = Golden::new("workflow_row.hex", "WorkflowRow (family `workflows`): one per WorkflowStatus.");
    // WorkflowRow has no PartialEq; its header does.
    fn same(a: &WorkflowRow, b: &WorkflowRow) -> bool {
        a.header == b.header && a.def_hash == b.def_hash && a.task_count == b.task_count
    }
    g.check(workflow_rows(), stored(), same);
    g.finish();
}

#[test]
fn task_states_are_golden() {
    let mut g = Golden::new("task_state.hex", "TaskState (family `wf_tasks`): one per TaskStatus.");
    g.check(task_states(), stored(), eq);
    g.finish();
}

#[test]
fn events_are_golden() {
    let mut g = Golden::new("event.hex", "Event (family `events`, and inside Raft log entries): one per variant.");
    g.check(events(), stored(), eq);
    g.finish();
}

#[test]
fn derived_rows_are_golden() {
    let mut g = Golden::new("queue_item.hex", "QueueItem (family `queue`).");
    g.check(queue_items(), stored(), eq);
    g.finish();
    let mut g = Golden::new("running_item.hex", "RunningItem (family `running`).");
    g.check(running_items(), stored(), eq);
    g.finish();
    let mut g = Golden::new("timer_item.hex", "TimerItem (family `timers`): one per TimerKind.");
    g.check(timer_items(), stored(), eq);
    g.finish();
}

#[test]
fn small_rows_are_golden() {
    let mut g = Golden::new("idempotency_row.hex", "IdempotencyRow (family `idempotency`).");
    g.check(idempotency_rows(), stored(), eq);
    g.finish();
    let mut g = Golden::new("task_ref.hex", "TaskRef (families `tasks` and `task_index`).");
    g.check(task_refs(), stored(), eq);
    g.finish();
    let mut g = Golden::new("task_log_row.hex", "TaskLogRow (family `task_logs`).");
    g.check(task_log_rows(), stored(), eq);
    g.finish();
    let mut g =
        Golden::new("variable.hex", "Hidden (family `defs`): the value of a secret or an environment variable.");
    g.check(variables(), stored(), eq);
    g.finish();
    let mut g = Golden::new("external_row.hex", "ExternalRow (family `wf_externals`).");
    g.check(external_rows(), stored(), eq);
    g.finish();
    let mut g = Golden::new("payload_manifest.hex", "PayloadManifest (family `payloads`).");
    g.check(payload_manifests(), stored(), eq);
    g.finish();
    let mut g = Golden::new("payload_part.hex", "PayloadPart (family `payloads`).");
    g.check(payload_parts(), stored(), eq);
    g.finish();
    let mut g = Golden::new("queue_position.hex", "QueuePosition (family `defs`): a broker queue consumer's offset.");
    g.check(queue_positions(), stored(), eq);
    g.finish();
}

#[test]
fn json_documents_are_golden() {
    let mut g = Golden::new(
        "json_bytes.hex",
        "JsonBytes: definitions (`defs`, `def_blobs`), schedules (`schedules`, `schedule_runs`).",
    );
    for (name, value, same) in json_documents() {
        g.check(vec![sample(name, value)], stored(), same);
    }
    g.finish();
}

#[test]
fn raft_log_entries_are_golden() {
    let mut g =
        Golden::new("entry.hex", "Raft log entries (family `raft_log`): every payload kind, and every Request.");
    // Request has no PartialEq, so neither has Entry.
    g.check(entries(), stored(), json_eq);
    g.finish();
}

#[test]
fn raft_meta_is_golden() {
    let mut g = Golden::new("vote.hex", "Vote (family `raft_meta`, key `vote`).");
    g.check(votes(), stored(), eq);
    g.finish();
    let mut g = Golden::new("log_id.hex", "LogId (families `raft_meta` and `sm_meta`).");
    g.check(log_ids(), stored(), eq);
    g.finish();
    let mut g = Golden::new("stored_membership.hex", "StoredMembership (family `sm_meta`, key `membership`).");
    g.check(memberships(), stored(), eq);
    g.finish();
}

#[test]
fn messages_between_nodes_are_golden() {
    let mut g = Golden::new(
        "message.hex",
        "Messages between nodes (codec::encode_message): Raft RPC bodies, their answers, the snapshot header, \
         leader transfers and membership changes asked of another group's leader.",
    );
    // AppendEntriesRequest has no PartialEq.
    g.check(append_requests(), message(), json_eq);
    g.check(vote_requests(), message(), eq);
    g.check(append_answers(), message(), eq);
    g.check(vote_answers(), message(), eq);
    g.check(snapshot_answers(), message(), eq);
    g.check(snapshot_headers(), message(), eq);
    g.check(transfer_leader_requests(), message(), eq);
    g.check(transfer_leader_answers(), message(), eq);
    g.check(membership_changes(), message(), eq);
    g.check(membership_answers(), message(), json_eq);
    g.finish();
}

#[test]
fn every_variant_has_a_golden_sample() {
    let mut problems = Vec::new();
    let entries = entries();
    coverage(&mut problems, "Request", "entry.hex", &entries, |e| match &e.payload {
        EntryPayload::Normal(request) => Some(request_covered_by(request)),
        _ => None,
    });
    coverage(&mut problems, "EntryPayload", "entry.hex", &entries, |e| Some(payload_covered_by(&e.payload)));
    coverage(&mut problems, "Event", "event.hex", &events(), |e| Some(event_covered_by(e)));
    coverage(&mut problems, "TaskStatus", "task_state.hex", &task_states(), |t| {
        Some(task_status_covered_by(&t.status))
    });
    coverage(&mut problems, "WorkflowStatus", "workflow_row.hex", &workflow_rows(), |r| {
        Some(workflow_status_covered_by(&r.header.status))
    });
    coverage(&mut problems, "TimerKind", "timer_item.hex", &timer_items(), |t| Some(timer_kind_covered_by(&t.kind)));
    coverage(&mut problems, "AppendEntriesResponse", "message.hex", &append_answers(), |a| {
        a.as_ref().ok().map(append_response_covered_by)
    });
    fail_on("variant coverage", &problems);
}

// ---------------------------------------------------------------------------------------------
// The snapshot file.

/// Every state-machine row the golden snapshot holds: `(family, key, value)`, a row in each family
/// but `sm_meta` (whose content travels as the file's metadata), all from the samples above.
fn snapshot_rows() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let mut rows: Vec<(&'static str, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut put = |family, key: Vec<u8>, value: Vec<u8>| rows.push((family, key, value));
    put(keys::CF_DEFS, keys::task_def("review"), codec::encode(&JsonBytes::of(&task_def())));
    put(keys::CF_DEFS, keys::workflow_def("order_approval", 3), codec::encode(&JsonBytes::of(&workflow_def())));
    put(keys::CF_DEFS, keys::event_handler("order_events"), codec::encode(&JsonBytes::of(&event_handler())));
    put(keys::CF_DEF_BLOBS, def_hash().to_vec(), codec::encode(&JsonBytes(plan().def_json().to_vec())));
    for (_, row) in workflow_rows() {
        for key in keys::workflow_index(&row.header) {
            put(keys::CF_WF_INDEX, key, Vec::new());
        }
        put(keys::CF_WORKFLOWS, row.header.workflow_id.as_bytes().to_vec(), codec::encode(&row));
    }
    for (_, task) in task_states() {
        let owner = TaskRef { workflow_id: WF.into(), seq: task.seq };
        put(keys::CF_TASKS, task.task_id.as_bytes().to_vec(), codec::encode(&owner));
        put(keys::CF_TASK_INDEX, keys::task_index(&task.task_type, &task.task_id), codec::encode(&owner));
        put(keys::CF_WF_TASKS, keys::wf_task(WF, task.seq), codec::encode(&task));
    }
    for (revision, (_, event)) in (1..).zip(events()) {
        put(keys::CF_EVENTS, keys::event(WF, revision), codec::encode(&event));
    }
    for (_, item) in queue_items() {
        put(keys::CF_QUEUE, keys::queue(&item), codec::encode(&item));
    }
    for (_, item) in timer_items() {
        put(keys::CF_TIMERS, keys::timer(&item), codec::encode(&item));
    }
    for (revision, (_, row)) in (1..).zip(task_log_rows()) {
        put(keys::CF_TASK_LOGS, keys::task_log("task-0001", revision), codec::encode(&row));
    }
    for (_, item) in running_items() {
        put(keys::CF_RUNNING, keys::running(&item), codec::encode(&item));
    }
    for (_, row) in idempotency_rows() {
        put(keys::CF_IDEMPOTENCY, keys::idempotency("order_approval", "order-2024-0001"), codec::encode(&row));
    }
    put(keys::CF_SCHEDULES, b"nightly_orders".to_vec(), codec::encode(&JsonBytes::of(&schedule())));
    let run = keys::schedule_run("nightly_orders", T0);
    put(keys::CF_SCHEDULE_RUNS, run, codec::encode(&JsonBytes::of(&schedule_execution())));
    for (_, row) in external_rows() {
        put(keys::CF_WF_EXTERNALS, keys::wf_external(WF, PayloadTarget::TaskOutput(2)), codec::encode(&row));
    }
    for (_, row) in payload_manifests() {
        put(keys::CF_PAYLOADS, keys::payload_manifest("task/output/订单.json"), codec::encode(&row));
    }
    for (i, (_, row)) in (0..).zip(queue_positions()) {
        put(keys::CF_DEFS, keys::queue_position("kafka:订单", i), codec::encode(&row));
    }
    for (i, (_, row)) in (0..).zip(payload_parts()) {
        put(keys::CF_PAYLOADS, keys::payload_part("task/output/订单.json", i), codec::encode(&row));
    }
    // The order a snapshot is written in: by family, then by key.
    let position = |family: &str| keys::STATE_MACHINE.iter().position(|f| *f == family);
    rows.sort_by(|a, b| (position(a.0), &a.1).cmp(&(position(b.0), &b.1)));
    rows
}

/// A snapshot file as the format in `raft/src/snapshot.rs` describes it, in named parts:
/// `OVSNAP`, the format version, the metadata (u32 BE length, JSON), one record per row
/// (`[family index u8][key len u32 BE][key][value len u32 BE][value]`), and `0xFF`.
fn snapshot_parts(meta: &SnapshotMeta, rows: &[(&'static str, Vec<u8>, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut parts = vec![sample("magic", b"OVSNAP".to_vec()), sample("format_version", vec![1])];
    let json = serde_json::to_vec(meta).expect("snapshot metadata as JSON");
    parts.push(sample("meta", [&(json.len() as u32).to_be_bytes()[..], &json].concat()));
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (family, key, value) in rows {
        let index = keys::STATE_MACHINE.iter().position(|f| f == family).expect("a state-machine family") as u8;
        let n = counts.entry(family).or_default();
        let record =
            [&[index][..], &(key.len() as u32).to_be_bytes(), key, &(value.len() as u32).to_be_bytes(), value].concat();
        parts.push((format!("{family}.{n}"), record));
        *n += 1;
    }
    parts.push(sample("end", vec![0xFF]));
    parts
}

/// The checked-in snapshot file is what the format describes for the sample rows; this build
/// installs it, reads every sample back from it, and builds the same file again from what it
/// installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_file_is_golden() {
    const FILE: &str = "snapshot.hex";
    let meta = snapshot_meta();
    let expected = snapshot_parts(&meta, &snapshot_rows());
    let mut problems = Vec::new();

    // The format, as described, writes the checked-in parts.
    if blessing() {
        write_golden(
            FILE,
            "A snapshot file (raft/src/snapshot.rs), in parts: concatenated they are the file.",
            &expected,
        );
    }
    let checked_in = read_golden(FILE).unwrap_or_default();
    if checked_in.is_empty() {
        fail_on(&format!("raft/tests/golden/{FILE}"), &[format!("no golden file: bless to create it ({BLESS}=1)")]);
    }
    for (name, bytes) in &expected {
        match checked_in.iter().find(|(n, _)| n == name) {
            None => problems.push(format!("`{name}`: new part, no golden line yet (a new family or sample?)")),
            Some((_, old)) if old != bytes => {
                problems.push(format!("`{name}`: the part changed: {}", show_difference(old, bytes)))
            }
            Some(_) => {}
        }
    }
    for (name, _) in checked_in.iter().filter(|(n, _)| !expected.iter().any(|(m, _)| m == n)) {
        problems.push(format!("`{name}`: golden part no longer written (a sample or family removed?)"));
    }

    // This build installs the checked-in file.
    let file: Vec<u8> = checked_in.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    let input = tempfile::tempdir().expect("a temp dir");
    let path = input.path().join("golden.snap");
    std::fs::write(&path, &file).expect("write the golden snapshot");
    let data = tempfile::tempdir().expect("a temp dir");
    let storage = Storage::open(&ReplicaOptions::new(1, data.path().to_path_buf())).expect("storage opens");
    let mut state_machine = storage.state_machine;
    if let Err(e) = state_machine.install_snapshot(&meta, SnapshotFile { path }).await {
        problems.push(format!("INCOMPATIBLE: this build cannot install the checked-in snapshot file: {e}"));
        fail_on(&format!("raft/tests/golden/{FILE}"), &problems);
    }

    // Every sample reads back from it.
    let read = &storage.read;
    let differs = |problems: &mut Vec<String>, what: &str, same: bool| {
        if !same {
            problems
                .push(format!("INCOMPATIBLE: {what} read back from the installed snapshot differ from the samples"));
        }
    };
    let (applied, membership) = state_machine.applied_state().await.expect("applied state");
    differs(
        &mut problems,
        "the applied log id and membership",
        applied == meta.last_log_id && membership == meta.last_membership,
    );
    for (_, row) in workflow_rows() {
        let state = read.workflow(&row.header.workflow_id).expect("read a workflow").expect("the workflow exists");
        differs(&mut problems, "workflow headers", state.header == row.header && state.plan.def == workflow_def());
        if row.header.workflow_id == WF {
            let tasks: Vec<TaskState> = task_states().into_iter().map(|(_, t)| t).collect();
            differs(&mut problems, "tasks", state.tasks == tasks);
        }
    }
    let history: Vec<(u64, Event)> = (1..).zip(events().into_iter().map(|(_, e)| e)).collect();
    differs(&mut problems, "events", read.events(WF).expect("read events") == history);
    let logs: Vec<TaskLogRow> = task_log_rows().into_iter().map(|(_, r)| r).collect();
    differs(&mut problems, "task logs", read.task_logs("task-0001").expect("read task logs") == logs);
    let mut queue: Vec<QueueItem> = queue_items().into_iter().map(|(_, q)| q).collect();
    queue.sort_by_key(keys::queue);
    differs(&mut problems, "queue entries", read.queue_entries().expect("read the queue") == queue);
    let mut timers: Vec<TimerItem> = timer_items().into_iter().map(|(_, t)| t).collect();
    timers.sort_by_key(keys::timer);
    differs(&mut problems, "timers", read.timers().expect("read timers") == timers);
    let running: Vec<RunningItem> = running_items().into_iter().map(|(_, r)| r).collect();
    differs(&mut problems, "running entries", read.running_entries().expect("read running") == running);
    let owner = read.task_owner("task-0003").expect("read a task owner");
    differs(&mut problems, "task owners", owner == Some(TaskRef { workflow_id: WF.into(), seq: 3 }));
    differs(&mut problems, "task definitions", read.task_def("review").expect("read a task def") == Some(task_def()));
    let def = read.workflow_def("order_approval", Some(3)).expect("read a workflow def");
    differs(&mut problems, "workflow definitions", def == Some(workflow_def()));
    differs(&mut problems, "event handlers", read.event_handlers().expect("read handlers") == vec![event_handler()]);
    differs(&mut problems, "schedules", read.schedule("nightly_orders").expect("read a schedule") == Some(schedule()));
    differs(
        &mut problems,
        "schedule runs",
        read.schedule_runs().expect("read schedule runs") == vec![schedule_execution()],
    );

    // This build writes the same file again from what it installed.
    let mut builder = state_machine.get_snapshot_builder().await;
    let built = builder.build_snapshot().await.expect("a snapshot builds");
    let rebuilt = std::fs::read(&built.snapshot.path).expect("read the built snapshot");
    if rebuilt != file {
        problems.push(format!(
            "INCOMPATIBLE: this build writes the snapshot differently from the checked-in file: {}",
            show_difference(&file, &rebuilt)
        ));
    }
    differs(&mut problems, "the built snapshot's metadata", built.meta == meta);
    fail_on(&format!("raft/tests/golden/{FILE}"), &problems);
}
