//! External payload storage (see `overture_core::external`). Embedded, the default: payloads
//! are written through the Raft log in parts of [`PART_BYTES`] and read from any node's
//! replica. Or an S3-compatible bucket ([`s3`]).
//!
//! The workflow actor moves payloads over their threshold out of the events it proposes
//! ([`offload`]) and loads stored payloads back into the state it decides on ([`load_into`]).

use std::collections::HashMap;
use std::sync::Arc;

use overture_core::Event;
use overture_core::WorkflowState;
use overture_core::external::{self, PayloadTarget, PayloadType};
use overture_raft::types::{Request, Response};
use overture_raft::{ReadView, Replica};

use crate::error::Error;
use crate::names;

pub mod s3;

/// When a payload goes to external payload storage, as conductor-oss's
/// `conductor.app.*PayloadSizeThreshold` (in bytes here): a payload larger than its threshold
/// is stored outside the execution's rows. The maximums of a workflow's input and a task's output
/// are checked where they arrive (the API); the two here bound what expressions may produce.
#[derive(Debug, Clone)]
pub struct PayloadOptions {
    /// `taskInputPayloadSizeThreshold`: 3072 KB.
    pub task_input_threshold: usize,
    /// `taskOutputPayloadSizeThreshold`: 3072 KB.
    pub task_output_threshold: usize,
    /// `workflowInputPayloadSizeThreshold`: 5120 KB.
    pub workflow_input_threshold: usize,
    /// `workflowOutputPayloadSizeThreshold`: 5120 KB.
    pub workflow_output_threshold: usize,
    /// `maxTaskInputPayloadSizeThreshold`: 10240 KB.
    pub max_task_input: usize,
    /// `maxWorkflowOutputPayloadSizeThreshold`: 10240 KB.
    pub max_workflow_output: usize,
    /// Where payloads go.
    pub storage: PayloadStorage,
}

impl Default for PayloadOptions {
    fn default() -> Self {
        PayloadOptions {
            task_input_threshold: 3072 << 10,
            task_output_threshold: 3072 << 10,
            workflow_input_threshold: 5120 << 10,
            workflow_output_threshold: 5120 << 10,
            max_task_input: 10240 << 10,
            max_workflow_output: 10240 << 10,
            storage: PayloadStorage::Embedded,
        }
    }
}

impl PayloadOptions {
    /// The threshold of one payload.
    pub fn threshold(&self, target: overture_core::external::PayloadTarget) -> usize {
        use overture_core::external::PayloadTarget as T;
        match target {
            T::WorkflowInput => self.workflow_input_threshold,
            T::WorkflowOutput => self.workflow_output_threshold,
            T::TaskInput(_) => self.task_input_threshold,
            T::TaskOutput(_) => self.task_output_threshold,
        }
    }

    /// How many bytes resolving a task's input or a workflow's output may produce.
    pub fn max_resolved(&self) -> usize {
        overture_core::payload::MAX_RESOLVED_BYTES.max(self.max_task_input).max(self.max_workflow_output)
    }
}

/// Where payloads are stored.
#[derive(Debug, Clone, Default)]
pub enum PayloadStorage {
    /// In the cluster's own replicated storage.
    #[default]
    Embedded,
    /// In an S3-compatible bucket.
    S3(Arc<S3Store>),
}

/// A bucket and the client that reaches it.
#[derive(Debug)]
pub struct S3Store {
    /// The bucket and its credentials.
    pub config: s3::S3Config,
    client: reqwest::Client,
}

impl PayloadStorage {
    /// Storage in the bucket `config` names.
    pub fn s3(config: s3::S3Config) -> Result<PayloadStorage, String> {
        let client = overture_raft::http::client()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| format!("cannot build the S3 client: {e}"))?;
        Ok(PayloadStorage::S3(Arc::new(S3Store { config, client })))
    }

    /// A presigned URL for a client to `PUT` (`write`) or `GET` the payload at `path`, when the
    /// payloads are in a bucket; `None` when the node serves them itself.
    pub fn client_url(&self, path: &str, write: bool, ttl: std::time::Duration) -> Option<String> {
        match self {
            PayloadStorage::Embedded => None,
            PayloadStorage::S3(s) => {
                Some(s.config.presign(if write { "PUT" } else { "GET" }, path, ttl, std::time::SystemTime::now()))
            }
        }
    }

    /// The name of the kind of storage, for logs and `/api/admin/config`.
    pub fn kind(&self) -> &'static str {
        match self {
            PayloadStorage::Embedded => "embedded",
            PayloadStorage::S3(_) => "s3",
        }
    }
}

/// The size of one part: one Raft entry each, so no entry is larger than this.
pub const PART_BYTES: usize = 1 << 20;

/// A new path for a payload of this type, as conductor-oss's storages make them
/// (`task/output/<uuid>.json`).
pub fn new_path(payload_type: PayloadType) -> String {
    format!("{}/{}.json", payload_type.folder(), uuid::Uuid::new_v4())
}

/// Stores `bytes` at `path`: in the bucket, or through the log part by part (done once the
/// last part commits).
pub async fn store(storage: &PayloadStorage, replica: &Replica, path: &str, bytes: &[u8]) -> Result<(), Error> {
    if let Some(problem) = external::path_problem(path) {
        return Err(Error::BadRequest(problem));
    }
    if let PayloadStorage::S3(s) = storage {
        return s.config.put(&s.client, path, bytes.to_vec()).await;
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

/// The bytes stored at `path`; `None` if nothing is.
pub async fn fetch(storage: &PayloadStorage, read: &ReadView, path: &str) -> Result<Option<Vec<u8>>, Error> {
    match storage {
        PayloadStorage::Embedded => {
            read.payload(path).map_err(|e| Error::Internal(format!("reading the payload at {path}: {e}")))
        }
        PayloadStorage::S3(s) => s.config.get(&s.client, path).await,
    }
}

/// The payload stored at `path`, read as a JSON object (what every Conductor payload is).
pub async fn read_object(
    storage: &PayloadStorage,
    read: &ReadView,
    path: &str,
) -> Result<overture_core::state::Object, Error> {
    let bytes = fetch(storage, read, path)
        .await?
        .ok_or_else(|| Error::BadRequest(format!("No payload is stored at {path}: upload it first")))?;
    overture_core::payload::from_slice(&bytes)
        .map_err(|e| Error::BadRequest(format!("The payload at {path} is not a JSON object: {e}")))
}

/// Takes a start request's `externalInputPayloadStoragePath`: its payload joins the input. The
/// path is answered if the stored payload is the whole input (nothing inline besides).
pub async fn take_stored_input(
    storage: &PayloadStorage,
    read: &ReadView,
    request: &mut overture_core::dsl::StartWorkflowRequest,
) -> Result<Option<String>, Error> {
    let Some(path) = request.external_input_payload_storage_path.take().filter(|p| !p.trim().is_empty()) else {
        return Ok(None);
    };
    let mut stored = read_object(storage, read, &path).await?;
    let inline = request.input.take().unwrap_or_default();
    let whole = inline.is_empty();
    stored.extend(inline);
    request.input = Some(stored);
    Ok(whole.then_some(path))
}

/// Fills in the content of every payload of `state` stored elsewhere that it does not hold yet
/// (the actor does before each decision, and [`unload`]s after). One that is gone or not JSON is
/// left empty and logged: the decision goes on with `{}`, as it
/// would in conductor-oss. One that cannot be read now (the bucket is unreachable) is an error:
/// nothing is decided on a payload that may be there.
pub async fn load_into(storage: &PayloadStorage, read: &ReadView, state: &mut WorkflowState) -> Result<(), Error> {
    let missing: Vec<(PayloadTarget, String)> =
        state.externals().iter().filter(|(_, e)| !e.loaded).map(|(t, e)| (*t, e.path.clone())).collect();
    for (target, path) in missing {
        match read_object(storage, read, &path).await {
            Ok(content) => {
                if let Some(slot) = state.payload_mut(target) {
                    *slot = content;
                }
                state.set_external(target, path, true);
                metrics::counter!(names::EXTERNAL_PAYLOADS_LOADED).increment(1);
            }
            Err(e @ Error::Unavailable(_)) => {
                metrics::counter!(names::EXTERNAL_PAYLOAD_ERRORS).increment(1);
                return Err(e);
            }
            Err(e) => {
                metrics::counter!(names::EXTERNAL_PAYLOAD_ERRORS).increment(1);
                tracing::error!(workflow_id = %state.header.workflow_id, path, error = %e, "loading a stored payload");
                // Decided on as `{}` this time; asked for again by the next decision.
                state.set_external(target, path, true);
            }
        }
    }
    Ok(())
}

/// Drops the content of the stored payloads `state` holds, keeping where they are: the state is
/// as a read of the stored rows gives it again, and [`load_into`] fills them in for the next
/// decision.
pub fn unload(state: &mut WorkflowState) {
    let loaded: Vec<(PayloadTarget, String)> =
        state.externals().iter().filter(|(_, e)| e.loaded).map(|(t, e)| (*t, e.path.clone())).collect();
    for (target, path) in loaded {
        if let Some(slot) = state.payload_mut(target) {
            *slot = overture_core::state::Object::new();
        }
        state.set_external(target, path, false);
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
        for (target, map) in event.payloads_set() {
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
        let Some(map) = events[i].payload_mut(target) else { continue };
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
                store(&options.storage, replica, &path, &bytes).await?;
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
