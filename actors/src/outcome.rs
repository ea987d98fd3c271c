//! A system task's result, as the leader's executor reports it.

use overture_core::{Object, TaskResultStatus};

/// A system task's result.
pub(crate) struct Outcome {
    /// The status the task is updated with.
    pub status: TaskResultStatus,
    /// The task's output.
    pub output: Object,
    /// Why it did not complete.
    pub reason: Option<String>,
}

impl Outcome {
    /// A failure that a retry may overcome.
    pub(crate) fn failed(reason: impl Into<String>) -> Outcome {
        Outcome { status: TaskResultStatus::Failed, output: Object::new(), reason: Some(reason.into()) }
    }
}
