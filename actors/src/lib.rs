//! Overture's leader runtime: workflow actors, worker queues with long polls, durable timers.
//!
//! Everything here runs on the Raft leader only, starts after the readiness barrier (the leader
//! has applied an entry of its own term) and stops the moment leadership ends. None of it is the
//! truth: actors, queues and timer heaps are caches of the replicated state, rebuilt from it on
//! every leadership change. The crate never writes storage directly; it proposes through Raft.
//!
//! Layers, each module using only those below it (no module imports one above):
//!
//! - `engine`: [`Engine`], the facade the API calls; it follows leadership and routes requests.
//! - `leader`: the one owner of the leader's services, built and dropped together.
//! - the services: `executor` (system tasks), `followups` (timers that involve another
//!   workflow), `events` (event handlers), [`scheduler`], [`retention`], [`timers`].
//! - `workflows`: the narrow handle services act through (start, command, update, poll).
//! - [`actor`]: one actor per active workflow serializes its decisions.
//! - `host`: what one term's actors and services share; [`queues`], `limits`, `env` below it.
//! - [`traces`]: the OpenTelemetry spans actors and requests make; it uses only `names`.

pub mod actor;
pub mod brokers;
mod consumers;
pub mod default_queues;
mod engine;
mod env;
pub mod error;
mod events;
mod executor;
mod followups;
mod host;
mod kafka_publish;
mod leader;
mod limits;
pub mod names;
mod options;
mod outcome;
pub mod payloads;
mod permits;
pub mod queues;
pub mod retention;
mod router;
pub mod scheduler;
pub mod search;
mod sigv4;
pub mod status_listener;
pub mod timers;
pub mod traces;
mod workflows;

pub use actor::{DEFAULT_MAX_LIVE as DEFAULT_MAX_LIVE_ACTORS, UpdateOutcome};
pub use engine::{Engine, GroupLeader, PollRecord, SyncRun, TaskMock, WorkflowTestRequest};
pub use error::Error;
pub use options::{EngineOptions, HttpTls};
pub use payloads::PayloadOptions;
pub use search::SearchRequest;

/// A new workflow or task id: a UUID in Conductor's form, version 7 (time-ordered) where
/// Conductor uses version 4 (random). Clients see the same kind of id; the store sees new rows
/// land at the end of each id-keyed family, so it does not rewrite its old data as it grows.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A new id that lands in `group` of a cluster of `partitions` partitions
/// ([`overture_raft::partition_of`]): a workflow's task ids land in its group, so a task is
/// found from its id alone. Without partitions, the first id made.
pub fn new_id_in(group: overture_raft::GroupId, partitions: u16) -> String {
    loop {
        let id = new_id();
        if overture_raft::partition_of(&id, partitions) == group {
            return id;
        }
    }
}

/// An id derived from what an effect is for, so doing the effect twice (after a failover) finds
/// the first one instead of making a second.
pub(crate) fn derived_id(purpose: &str, key: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("overture:{purpose}:{key}").as_bytes()).to_string()
}

/// [`derived_id`], made to land in `group` (a sub-workflow in its parent's partition): the first
/// of the ids derived from `key`, `key#1`, `key#2`, … that does. As deterministic as
/// [`derived_id`], and the same id without partitions.
pub(crate) fn derived_id_in(purpose: &str, key: &str, group: overture_raft::GroupId, partitions: u16) -> String {
    let first = derived_id(purpose, key);
    if overture_raft::partition_of(&first, partitions) == group {
        return first;
    }
    (1u32..)
        .map(|n| derived_id(purpose, &format!("{key}#{n}")))
        .find(|id| overture_raft::partition_of(id, partitions) == group)
        .unwrap_or(first)
}

/// The name a start request starts: its `name`, or that of the definition it carries.
pub(crate) fn start_name(request: &overture_core::dsl::StartWorkflowRequest) -> Option<&str> {
    request.name.as_deref().or_else(|| request.workflow_def.as_ref().map(|d| d.name.as_str()))
}

/// The partition where a start with an idempotency key claims it: the one the (name, key) pair
/// hashes to, so every start that reuses a key meets the others in one group, whichever node
/// and whatever starts it (a client, a START_WORKFLOW task, a schedule). `None` without a key
/// (an empty key is none) or without partitions.
pub(crate) fn key_partition(
    request: &overture_core::dsl::StartWorkflowRequest,
    partitions: u16,
) -> Option<overture_raft::GroupId> {
    let key = request.idempotency_key.as_deref().filter(|k| !k.is_empty())?;
    let name = start_name(request).unwrap_or_default();
    (partitions > 1).then(|| overture_raft::partition_of(&format!("{name}\u{0}{key}"), partitions))
}

/// The id of a start that `purpose` and `key` cause (a START_WORKFLOW task, a schedule's fire):
/// [`derived_id`], in the partition of the request's idempotency key if it has one, else in
/// `group` if given, else wherever it hashes.
pub(crate) fn derived_start_id(
    purpose: &str,
    key: &str,
    request: &overture_core::dsl::StartWorkflowRequest,
    group: Option<overture_raft::GroupId>,
    partitions: u16,
) -> String {
    match key_partition(request, partitions).or(group) {
        Some(group) => derived_id_in(purpose, key, group, partitions),
        None => derived_id(purpose, key),
    }
}

/// This node's clock in epoch millis: the leader's clock, recorded in the events it decides.
/// It follows the wall clock but never goes back: when the wall clock is stepped back, this
/// clock holds at the latest time it gave until the wall clock passes it again. So a task
/// started while the wall clock was behind is not stamped in the past, and its deadlines do not
/// fall due the moment the wall clock is set right. A step forward moves it forward, deadlines
/// with it, as in Conductor.
pub fn now_ms() -> i64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
        .saturating_add(CLOCK_OFFSET_MS.load(std::sync::atomic::Ordering::Relaxed));
    never_back(&LATEST_MS, &HOLDING, wall)
}

/// The later of `wall` and the latest time `latest` gave, which it then holds. Says once, when
/// it starts and when it stops, that the wall clock is more than a second behind.
fn never_back(latest: &std::sync::atomic::AtomicI64, holding: &std::sync::atomic::AtomicBool, wall: i64) -> i64 {
    use std::sync::atomic::Ordering::Relaxed;
    let before = latest.fetch_max(wall, Relaxed);
    let behind = before - wall;
    if behind > 1_000 {
        if !holding.swap(true, Relaxed) {
            tracing::warn!(behind_ms = behind, "the wall clock went back; this node's clock holds until it catches up");
        }
    } else if behind <= 0 && holding.load(Relaxed) && holding.swap(false, Relaxed) {
        tracing::info!("the wall clock caught up; this node's clock follows it again");
    }
    before.max(wall)
}

static LATEST_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
static HOLDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Shifts this node's wall clock by `offset` milliseconds, as a clock jump would: the fault
/// suite's clock fault (only reachable with fault injection on).
pub fn set_clock_offset_ms(offset: i64) {
    tracing::warn!(offset, "fault injection: the wall clock jumps");
    CLOCK_OFFSET_MS.store(offset, std::sync::atomic::Ordering::Relaxed);
}

static CLOCK_OFFSET_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicI64};

    #[test]
    fn ids_made_for_a_partition_land_in_it() {
        use overture_raft::partition_of;
        for group in 1..=6 {
            assert_eq!(partition_of(&super::new_id_in(group, 6), 6), group);
            let derived = super::derived_id_in("sub-workflow", "task-1", group, 6);
            assert_eq!(partition_of(&derived, 6), group);
            // Derived twice, the same id: an effect repeated after a failover finds the first.
            assert_eq!(derived, super::derived_id_in("sub-workflow", "task-1", group, 6));
        }
        // One partition: the ids of a cluster without partitions.
        assert_eq!(super::derived_id_in("sub-workflow", "t", 0, 1), super::derived_id("sub-workflow", "t"));
    }

    #[test]
    fn the_clock_holds_while_the_wall_clock_is_behind_and_follows_it_after() {
        let (latest, holding) = (AtomicI64::new(0), AtomicBool::new(false));
        let never_back = |wall| super::never_back(&latest, &holding, wall);
        assert_eq!(never_back(100_000), 100_000);
        // Stepped back a minute: the clock holds.
        assert_eq!(never_back(40_000), 100_000);
        assert!(holding.load(std::sync::atomic::Ordering::Relaxed));
        assert_eq!(never_back(45_000), 100_000);
        // Set right again: the clock goes on from where the wall clock is.
        assert_eq!(never_back(100_500), 100_500);
        assert!(!holding.load(std::sync::atomic::Ordering::Relaxed));
        // A step forward is followed.
        assert_eq!(never_back(105_500), 105_500);
    }
}
