//! Overture's pure domain: Conductor's workflow language and the rules that run it.
//!
//! Everything that decides lives here, and nothing here waits, reads a clock or touches a disk.
//! The crate's manifest enforces it: no tokio, no RocksDB, no openraft, no HTTP.
//!
//! The shape is event sourcing:
//!
//! - [`dsl`] holds definitions as users write them; [`validate`] checks them and [`plan::Plan`]
//!   compiles them for the decider.
//! - [`decide::decide`] takes the current [`state::WorkflowState`], a [`command::Command`] and a
//!   [`command::Ctx`] (the leader's clock and id source) and returns [`event::Event`]s, or a
//!   [`command::Rejection`].
//! - [`evolve::evolve`] applies one event to the state. It is the only way state changes, on the
//!   leader while deciding and on every node when the Raft entry is applied, so all nodes agree.
//! - [`rows`] derives queue entries and timers from state, so storage can never disagree with it.
//! - [`expr`] resolves `${...}` parameters, [`retry`] computes backoff, [`render`] produces the
//!   JSON Conductor clients expect.

pub mod command;
pub mod decide;
pub mod dsl;
pub mod event;
pub mod evolve;
pub mod expr;
pub mod external;
pub mod idempotency;
pub mod ids;
pub mod payload;
pub mod plan;
pub mod queries;
pub mod queue;
pub mod render;
pub mod retry;
pub mod rows;
pub mod schedule;
pub mod search;
pub mod secrets;
pub mod serde_util;
pub mod state;
pub mod system;
pub mod time;
pub mod validate;

pub use command::{Command, Ctx, IdSource, Rejection, StartWorkflow, TaskResultStatus, TaskUpdate};
pub use event::Event;
pub use ids::{TaskType, WorkflowId};
pub use plan::Plan;
pub use state::{Object, TaskState, TaskStatus, WorkflowHeader, WorkflowState, WorkflowStatus};
