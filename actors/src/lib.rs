//! Overture's leader runtime: workflow actors, worker queues with long polls, durable timers.
//!
//! Everything here runs on the Raft leader only, starts after the readiness barrier (the leader
//! has applied an entry of its own term) and stops the moment leadership ends. None of it is the
//! truth: actors, queues and timer heaps are caches of the replicated state, rebuilt from it on
//! every leadership change. The crate never writes storage directly; it proposes through Raft.
//!
//! - [`Engine`] is the handle the API uses.
//! - [`actor`]: one actor per active workflow serializes its decisions.
//! - [`queues`]: in-memory worker queues woken by applied entries.
//! - [`timers`]: the durable-timer heap.

pub mod actor;
mod engine;
mod env;
pub mod error;
mod events;
mod executor;
mod leader;
mod limits;
pub mod names;
pub mod queues;
pub mod retention;
pub mod scheduler;
pub mod search;
pub mod timers;

pub use actor::{DEFAULT_MAX_LIVE as DEFAULT_MAX_LIVE_ACTORS, UpdateOutcome};
pub use engine::{Engine, EngineOptions, PollRecord};
pub use error::Error;
pub use search::SearchRequest;

/// A new workflow or task id: a UUID in Conductor's form, version 7 (time-ordered) where
/// Conductor uses version 4 (random). Clients see the same kind of id; the store sees new rows
/// land at the end of each id-keyed family, so it does not rewrite its old data as it grows.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Wall-clock epoch millis: the leader's clock, recorded in the events it decides.
pub fn now_ms() -> i64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    wall.saturating_add(CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed))
}

/// Shifts this node's wall clock by `offset` milliseconds, as a clock jump would: the fault
/// suite's clock fault (only reachable with fault injection on).
pub fn set_clock_offset_ms(offset: i64) {
    tracing::warn!(offset, "fault injection: the wall clock jumps");
    CLOCK_OFFSET_MS.store(offset, std::sync::atomic::Ordering::Relaxed);
}

static CLOCK_OFFSET_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
