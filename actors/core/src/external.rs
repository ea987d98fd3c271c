//! External payload storage: which payloads of an execution live outside its rows.
//!
//! A workflow's input or output, or a task's input or output, larger than its threshold is
//! stored as a blob under a path, and the execution keeps `{}` in its place plus the path, as
//! conductor-oss's `externalInputPayloadStoragePath` and `externalOutputPayloadStoragePath`.
//! `Event::PayloadExternalized` records it; an event that sets the payload again ends it.
//!
//! Stored state (every node's rows) holds the path only. The leader's actor, which decides, loads
//! the content back ([`External::loaded`]), so expressions, JOINs and workers see the payload
//! itself; reads through the API see `{}` and the path, as conductor-oss's clients do.

use serde::{Deserialize, Serialize};

/// Which payload of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PayloadTarget {
    /// The workflow's input.
    WorkflowInput,
    /// The workflow's output.
    WorkflowOutput,
    /// The input of the task with this `seq`.
    TaskInput(u32),
    /// The output of the task with this `seq`.
    TaskOutput(u32),
}

impl PayloadTarget {
    /// Conductor's `PayloadType` name.
    pub fn payload_type(self) -> PayloadType {
        match self {
            PayloadTarget::WorkflowInput => PayloadType::WorkflowInput,
            PayloadTarget::WorkflowOutput => PayloadType::WorkflowOutput,
            PayloadTarget::TaskInput(_) => PayloadType::TaskInput,
            PayloadTarget::TaskOutput(_) => PayloadType::TaskOutput,
        }
    }

    /// The task it belongs to, if any.
    pub fn seq(self) -> Option<u32> {
        match self {
            PayloadTarget::TaskInput(seq) | PayloadTarget::TaskOutput(seq) => Some(seq),
            _ => None,
        }
    }

    /// Stable bytes for storage keys: a kind byte and the task's `seq` (0 for the workflow).
    pub fn key(self) -> [u8; 5] {
        let (kind, seq) = match self {
            PayloadTarget::WorkflowInput => (b'i', 0),
            PayloadTarget::WorkflowOutput => (b'o', 0),
            PayloadTarget::TaskInput(seq) => (b'I', seq),
            PayloadTarget::TaskOutput(seq) => (b'O', seq),
        };
        let s = seq.to_be_bytes();
        [kind, s[0], s[1], s[2], s[3]]
    }

    /// Inverse of [`PayloadTarget::key`].
    pub fn from_key(key: &[u8]) -> Option<PayloadTarget> {
        let [kind, a, b, c, d] = *key else { return None };
        let seq = u32::from_be_bytes([a, b, c, d]);
        match kind {
            b'i' => Some(PayloadTarget::WorkflowInput),
            b'o' => Some(PayloadTarget::WorkflowOutput),
            b'I' => Some(PayloadTarget::TaskInput(seq)),
            b'O' => Some(PayloadTarget::TaskOutput(seq)),
            _ => None,
        }
    }
}

/// Conductor's `ExternalPayloadStorage.PayloadType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadType {
    /// `WORKFLOW_INPUT`.
    WorkflowInput,
    /// `WORKFLOW_OUTPUT`.
    WorkflowOutput,
    /// `TASK_INPUT`.
    TaskInput,
    /// `TASK_OUTPUT`.
    TaskOutput,
}

impl PayloadType {
    /// Every type, in Conductor's order.
    pub const ALL: [PayloadType; 4] =
        [PayloadType::WorkflowInput, PayloadType::WorkflowOutput, PayloadType::TaskInput, PayloadType::TaskOutput];

    /// Conductor's name: `WORKFLOW_INPUT`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadType::WorkflowInput => "WORKFLOW_INPUT",
            PayloadType::WorkflowOutput => "WORKFLOW_OUTPUT",
            PayloadType::TaskInput => "TASK_INPUT",
            PayloadType::TaskOutput => "TASK_OUTPUT",
        }
    }

    /// Parses Conductor's name, ignoring case.
    pub fn parse(name: &str) -> Option<PayloadType> {
        Self::ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(name))
    }

    /// The folder new paths of this type go in, as conductor-oss's storages name them
    /// (`workflow/input`, `task/output`, …).
    pub fn folder(self) -> &'static str {
        match self {
            PayloadType::WorkflowInput => "workflow/input",
            PayloadType::WorkflowOutput => "workflow/output",
            PayloadType::TaskInput => "task/input",
            PayloadType::TaskOutput => "task/output",
        }
    }
}

/// The longest storage path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

/// Why a storage path is not one Overture stores under, if it is not: a path is 1 to
/// [`MAX_PATH_BYTES`] bytes of text without control characters (so no NUL, which ends a path
/// in storage keys), without a leading `/` and without `.` or `..` steps.
pub fn path_problem(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("the payload path is empty".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Some(format!("the payload path is {} bytes; the limit is {MAX_PATH_BYTES}", path.len()));
    }
    if path.chars().any(char::is_control) {
        return Some("the payload path holds a control character".into());
    }
    if path.starts_with('/') || path.split('/').any(|step| step == "." || step == "..") {
        return Some(format!("the payload path {path:?} may not start with / or hold . or .. steps"));
    }
    None
}

/// A payload stored outside the execution's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// Where the blob is: what conductor-oss calls the external payload storage path.
    pub path: String,
    /// The state holds the payload itself too (the deciding actor loaded it); rendered tasks
    /// then carry it inline and no path.
    pub loaded: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_through_their_keys_and_types_parse_any_case() {
        for t in [
            PayloadTarget::WorkflowInput,
            PayloadTarget::WorkflowOutput,
            PayloadTarget::TaskInput(7),
            PayloadTarget::TaskOutput(u32::MAX),
        ] {
            assert_eq!(PayloadTarget::from_key(&t.key()), Some(t));
        }
        assert_eq!(PayloadTarget::from_key(b"x\0\0\0\0"), None);
        assert_eq!(PayloadTarget::from_key(b"i"), None);
        assert_eq!(PayloadType::parse("task_output"), Some(PayloadType::TaskOutput));
        assert_eq!(PayloadType::parse("TASK"), None);
        assert_eq!(PayloadType::TaskInput.folder(), "task/input");
    }

    #[test]
    fn paths_are_checked_by_class() {
        assert_eq!(path_problem("task/output/6f1c.json"), None);
        assert_eq!(path_problem("任务/输出/数据.json"), None);
        for bad in ["", "/abs", "a/../b", "./a", "a\0b", "a\nb"] {
            assert!(path_problem(bad).is_some(), "{bad:?}");
        }
        assert!(path_problem(&"x".repeat(MAX_PATH_BYTES + 1)).is_some());
        assert_eq!(path_problem(&"字".repeat(MAX_PATH_BYTES / 3)), None);
    }
}
