//! External payload storage, embedded: payloads are written through the Raft log in parts of
//! [`PART_BYTES`] and read from any node's replica (see `overture_core::external`).
//!
//! The workflow actor moves payloads over their threshold out of the events it proposes
//! ([`offload`]) and loads stored payloads back into the state it decides on ([`load_into`]).

use std::collections::HashMap;

use overture_core::Event;
use overture_core::WorkflowState;
use overture_core::external::{self, PayloadTarget, PayloadType};
use overture_raft::types::{Request, Response};
use overture_raft::{ReadView, Replica};

use crate::error::Error;
use crate::names;
use crate::options::PayloadOptions;

/// The size of one part: one Raft entry each, so no entry is larger than this.
pub const PART_BYTES: usize = 1 << 20;

/// A new path for a payload of this type, as conductor-oss's storages make them
/// (`task/output/<uuid>.json`).
pub fn new_path(payload_type: PayloadType) -> String {
    format!("{}/{}.json", payload_type.folder(), uuid::Uuid::new_v4())
}

/// Stores `bytes` at `path`, part by part; done once the last part commits.
pub async fn store(replica: &Replica, path: &str, bytes: &[u8]) -> Result<(), Error> {
    if let Some(problem) = external::path_problem(path) {
        return Err(Error::BadRequest(problem));
    }
    let chunks: Vec<&[u8]> = if bytes.is_empty() { vec![&[][..]] } else { bytes.chunks(PART_BYTES).collect() };
    let parts = chunks.len() as u32;
    for (index, chunk) in chunks.into_iter().enumerate() {
        let request =
            Request::PutPayloadPart { path: path.to_owned(), index: index as u32, parts, bytes: chunk.to_vec() };
        match Box::pin(replica.propose(request)).await {
            Ok(Response::Ok) => {}
            Ok(Response::Conflict(message)) => return Err(Error::Conflict(message)),
            Ok(Response::Rejected(message)) => return Err(Error::BadRequest(message)),
            Ok(other) => return Err(Error::Internal(format!("unexpected reply to a payload part: {other}"))),
            Err(e) => return Err(e.into()),
        }
    }
    tracing::debug!(path, bytes = bytes.len(), parts, "payload stored");
    Ok(())
}

/// The payload stored at `path`, read as a JSON object (what every Conductor payload is).
pub fn read_object(read: &ReadView, path: &str) -> Result<overture_core::state::Object, Error> {
    let bytes = read
        .payload(path)
        .map_err(|e| Error::Internal(format!("reading the payload at {path}: {e}")))?
        .ok_or_else(|| Error::BadRequest(format!("No payload is stored at {path}: upload it first")))?;
    overture_core::payload::from_slice(&bytes)
        .map_err(|e| Error::BadRequest(format!("The payload at {path} is not a JSON object: {e}")))
}

/// Fills in the content of every payload of `state` stored elsewhere that it does not hold yet.
/// A payload that cannot be read is left empty and logged: the decision goes on with `{}`, as
/// it would in conductor-oss with an unreachable storage.
pub fn load_into(read: &ReadView, state: &mut WorkflowState) {
    let missing: Vec<(PayloadTarget, String)> =
        state.externals().iter().filter(|(_, e)| !e.loaded).map(|(t, e)| (*t, e.path.clone())).collect();
    for (target, path) in missing {
        match read_object(read, &path) {
            Ok(content) => {
                if let Some(slot) = state.payload_mut(target) {
                    *slot = content;
                }
                state.set_external(target, path, true);
                metrics::counter!(names::EXTERNAL_PAYLOADS_LOADED).increment(1);
            }
            Err(e) => {
                metrics::counter!(names::EXTERNAL_PAYLOAD_ERRORS).increment(1);
                tracing::error!(workflow_id = %state.header.workflow_id, path, error = %e, "loading a stored payload");
            }
        }
    }
}

/// Moves the payloads over their thresholds out of `events` before they are proposed: each is
/// stored, its place in the event becomes `{}`, and a `PayloadExternalized` event follows the
/// last event that sets it. `stored` names payloads a client stored already (they are referred
/// to, not stored again). The actor's `state`, which holds the content, records where each is.
pub async fn offload(
    replica: &Replica,
    options: &PayloadOptions,
    state: &mut WorkflowState,
    events: &mut Vec<Event>,
    stored: &HashMap<PayloadTarget, String>,
) -> Result<(), Error> {
    // Which event sets each payload last, and whether any setting is over its threshold.
    let mut last: HashMap<PayloadTarget, usize> = HashMap::new();
    let mut over: Vec<(usize, PayloadTarget)> = Vec::new();
    for (i, event) in events.iter().enumerate() {
        for (target, map) in external::payloads_set(event) {
            last.insert(target, i);
            if stored.contains_key(&target) || is_over(map, options.threshold(target)) {
                over.push((i, target));
            }
        }
    }
    if over.is_empty() {
        return Ok(());
    }
    let mut after: HashMap<usize, Vec<(PayloadTarget, String)>> = HashMap::new();
    for (i, target) in over {
        let Some(map) = external::payload_mut(&mut events[i], target) else { continue };
        let content = std::mem::take(map);
        if last.get(&target) != Some(&i) {
            // Set again later in this batch: only the last value is kept, stored or not.
            continue;
        }
        let path = match stored.get(&target) {
            Some(path) => path.clone(),
            None => {
                let bytes = serde_json::to_vec(&content)
                    .map_err(|e| Error::Internal(format!("encoding a payload to store: {e}")))?;
                let path = new_path(target.payload_type());
                store(replica, &path, &bytes).await?;
                metrics::counter!(names::EXTERNAL_PAYLOADS_OFFLOADED, "payloadType" => target.payload_type().as_str())
                    .increment(1);
                tracing::debug!(workflow_id = %state.header.workflow_id, ?target, bytes = bytes.len(), path, "payload offloaded");
                path
            }
        };
        after.entry(i).or_default().push((target, path));
    }
    let old = std::mem::take(events);
    for (i, event) in old.into_iter().enumerate() {
        events.push(event);
        for (target, path) in after.remove(&i).unwrap_or_default() {
            events.push(Event::PayloadExternalized { target, path: path.clone() });
            // As evolve would apply it; the actor's state keeps the content it decided with.
            state.header.revision += 1;
            state.set_external(target, path, true);
        }
    }
    Ok(())
}

/// Whether a payload is larger than `threshold` bytes as JSON. The estimate stops early, so a
/// small payload costs little; near the threshold the exact size decides.
fn is_over(map: &overture_core::state::Object, threshold: usize) -> bool {
    if map.is_empty() {
        return false;
    }
    let mut approx = 2usize;
    for (k, v) in map {
        approx += k.len() + 4 + overture_core::payload::approx_size(v, threshold);
        if approx > threshold * 2 {
            return true;
        }
    }
    if approx < threshold / 2 {
        return false;
    }
    serde_json::to_vec(map).map(|b| b.len() > threshold).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exact_size_decides_near_the_threshold() {
        let mut map = overture_core::state::Object::new();
        map.insert("k".into(), serde_json::Value::String("x".repeat(100)));
        let exact = serde_json::to_vec(&map).expect("encodes").len();
        assert!(is_over(&map, exact - 1));
        assert!(!is_over(&map, exact));
        assert!(!is_over(&overture_core::state::Object::new(), 0));
        map.insert("中文".into(), serde_json::Value::String("字".repeat(10_000)));
        assert!(is_over(&map, 1000));
    }
}
