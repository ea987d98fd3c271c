//! `/api/cluster/*`: the group's status and membership changes (`overture cluster ...`).

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::input::RawBody;

/// `GET /api/cluster/status`: this node's view of the metadata group (on its leader with
/// per-follower lag), the number of partitions, each Raft group's leader (`groups`), and the
/// node-to-node protocol version this node speaks and each member was last seen speaking.
pub async fn status(State(s): State<AppState>) -> Json<Value> {
    let status = s.engine.cluster_status();
    let leader_address =
        status.leader.and_then(|id| status.members.iter().find(|m| m.id == id).map(|m| m.address.clone()));
    let mut v = serde_json::to_value(&status).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("leaderAddress".into(), json!(leader_address));
        obj.insert("ready".into(), json!(s.engine.is_ready()));
        obj.insert("partitions".into(), json!(s.engine.partitions()));
        obj.insert("groups".into(), json!(s.engine.group_status()));
        obj.insert("protocolVersion".into(), json!(s.engine.rpc().protocol().speaks()));
        obj.insert(
            "supportedProtocolVersions".into(),
            json!([overture_raft::protocol::MIN_PROTOCOL_VERSION, overture_raft::protocol::PROTOCOL_VERSION]),
        );
    }
    Json(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Member {
    node_id: Option<u64>,
    address: Option<String>,
}

fn member(body: &RawBody, need_address: bool) -> Result<(u64, Option<String>), ApiError> {
    let m: Member = body.json(None)?;
    let id =
        m.node_id.filter(|id| *id > 0).ok_or_else(|| ApiError::bad_request("nodeId must be a positive integer"))?;
    let address = m.address.filter(|a| !a.trim().is_empty());
    if need_address && address.is_none() {
        return Err(ApiError::bad_request("address (host:port of the node's API) is required"));
    }
    Ok((id, address))
}

/// `POST /api/cluster/learners` `{nodeId, address}`: add a learner and wait until it caught up.
pub async fn add_learner(State(s): State<AppState>, body: RawBody) -> Result<Json<Value>, ApiError> {
    let (id, address) = member(&body, true)?;
    s.engine.add_learner(id, address.unwrap_or_default()).await?;
    Ok(status(State(s)).await)
}

/// `POST /api/cluster/promote` `{nodeId}`: make a learner a voter.
pub async fn promote(State(s): State<AppState>, body: RawBody) -> Result<Json<Value>, ApiError> {
    let (id, _) = member(&body, false)?;
    s.engine.promote(id).await?;
    Ok(status(State(s)).await)
}

/// `DELETE /api/cluster/members/{id}`: remove a member.
pub async fn remove(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id: u64 =
        id.parse().map_err(|_| ApiError::bad_request(format!("node id must be a positive integer, not {id:?}")))?;
    s.engine.remove_member(id).await?;
    Ok(status(State(s)).await)
}

/// `GET /api/cluster/digest`: a digest of this node's state machine and the applied index it was
/// taken at, to compare replicas; with partitions, the metadata group's, and each partition's in
/// `groups`.
pub async fn digest(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let digests = s.engine.digests().await?;
    let (applied, digest) = digests.first().cloned().unwrap_or_default();
    let mut answer = json!({"appliedIndex": applied, "digest": digest});
    if digests.len() > 1 {
        let groups: Vec<Value> = digests
            .iter()
            .enumerate()
            .skip(1)
            .map(|(group, (applied, digest))| json!({"group": group, "appliedIndex": applied, "digest": digest}))
            .collect();
        answer["groups"] = Value::from(groups);
    }
    Ok(Json(answer))
}
