//! Queue names: built and read here, and nowhere else.
//!
//! A worker task waits in the queue of its task type and domain, `<domain>:<type>` or `<type>`
//! (Conductor's names, which clients see in queue sizes and poll data). A system task the
//! leader's executor runs waits in `_system:<type>`, which no worker can poll. Stored rows keep
//! the name as a string; code that makes or inspects one goes through [`QueueName`].

use std::fmt;

/// Prefix of the queues the leader's own executor polls (`_system:HTTP`, ...).
pub const SYSTEM_PREFIX: &str = "_system:";

/// Prefix of the task domain `POST /workflow/test` runs a workflow in (as conductor-oss, a
/// random domain no worker polls). Its HTTP, EVENT and START_WORKFLOW tasks wait in that domain's
/// queues too, for their mocks, instead of being run by the leader.
pub const TEST_DOMAIN_PREFIX: &str = "overture-test-";

/// The name of a task queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    /// The queue workers poll for `task_type` in `domain` (none, or empty: the default domain).
    pub fn worker(task_type: &str, domain: Option<&str>) -> QueueName {
        match domain.filter(|d| !d.is_empty()) {
            Some(domain) => QueueName(format!("{domain}:{task_type}")),
            None => QueueName(task_type.to_owned()),
        }
    }

    /// The internal queue of a system task type the leader executes.
    pub fn system(task_type: &str) -> QueueName {
        QueueName(format!("{SYSTEM_PREFIX}{task_type}"))
    }

    /// Whether `domain` is one `POST /workflow/test` made.
    pub fn is_test_domain(domain: &str) -> bool {
        domain.starts_with(TEST_DOMAIN_PREFIX)
    }

    /// Whether `name` (as stored) is an internal queue of the leader's executor.
    pub fn is_system_name(name: &str) -> bool {
        name.starts_with(SYSTEM_PREFIX)
    }

    /// An internal queue of the leader's executor, which workers cannot poll.
    pub fn is_system(&self) -> bool {
        QueueName::is_system_name(&self.0)
    }

    /// Whether `name` may be a queue of `task_type` in some domain. A domain or a task type that
    /// contains `:` can make this true of another type's queue too (`a:b:c` is domain `a` of type
    /// `b:c`, or domain `a:b` of type `c`); it is used only to wake pollers, where a spurious
    /// wake-up costs one look at the queue.
    pub fn may_be_of(name: &str, task_type: &str) -> bool {
        name.strip_suffix(task_type).is_some_and(|rest| rest.is_empty() || rest.ends_with(':'))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, as stored.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_conductors_and_system_queues_are_apart() {
        assert_eq!(QueueName::worker("charge", None).as_str(), "charge");
        assert_eq!(QueueName::worker("charge", Some("")).as_str(), "charge");
        assert_eq!(QueueName::worker("扣款", Some("blue")).as_str(), "blue:扣款");
        assert!(QueueName::system("HTTP").is_system());
        assert!(!QueueName::worker("HTTP", None).is_system());
        assert!(QueueName::may_be_of("blue:charge", "charge"));
        assert!(QueueName::may_be_of("charge", "charge"));
        assert!(!QueueName::may_be_of("blue:recharge", "charge"));
        assert!(!QueueName::may_be_of("charge2", "charge"));
    }
}
