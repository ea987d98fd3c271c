//! Domain keys as types: a workflow's id and a task's type.
//!
//! Both are strings to Conductor clients and on disk. The newtypes are `#[serde(transparent)]`, so
//! their JSON and bincode encodings are the string's own (raft/tests/golden.rs checks the stored
//! bytes); what they add is that a signature says which string it wants, and a workflow id cannot
//! be passed where a task type is expected. Both deref to `str` and borrow as `str`, so maps keyed
//! by them are looked up with a `&str` and a `&WorkflowId` is accepted wherever a `&str` is read.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::plan::TaskKind;

macro_rules! string_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The key as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The key's text, as stored.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                $name(s.clone())
            }
        }

        impl From<$name> for String {
            fn from(key: $name) -> String {
                key.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

string_key! {
    /// Conductor's `workflowId`: an execution's unique id (a UUID the leader makes, or the one a
    /// client asked for).
    WorkflowId
}

string_key! {
    /// Conductor's task `taskType`: a system type (`HTTP`, `SWITCH`, ...) or, for a worker task,
    /// the task's name, which is the queue workers poll. Ask [`TaskType::kind`] what it is rather
    /// than comparing the text.
    TaskType
}

impl TaskType {
    /// What kind of task this type is.
    pub fn kind(&self) -> TaskKind {
        TaskKind::of(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_encode_as_their_text() {
        let id = WorkflowId::from("工作流-1");
        assert_eq!(serde_json::to_string(&id).expect("encodes"), "\"工作流-1\"");
        let back: WorkflowId = serde_json::from_str("\"工作流-1\"").expect("decodes");
        assert_eq!(back, id);
        assert_eq!(id, "工作流-1");
        assert_eq!(id.len(), "工作流-1".len());
    }

    #[test]
    fn a_map_keyed_by_id_is_read_with_a_str() {
        let mut map = std::collections::HashMap::new();
        map.insert(WorkflowId::from("w1"), 1);
        assert_eq!(map.get("w1"), Some(&1));
    }

    #[test]
    fn a_task_type_knows_its_kind() {
        assert_eq!(TaskType::from("HTTP").kind(), TaskKind::Http);
        assert_eq!(TaskType::from("扣款").kind(), TaskKind::UserDefined);
    }
}
