//! Online backups of this node ([`overture_raft::backup`]): first this node catches up, in every
//! group, with what that group's leader had committed when the backup was asked for, so the
//! backup holds every write acknowledged before it, whichever node acknowledged it; then one
//! checkpoint of the database covers every group.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use overture_raft::backup::Manifest;
use overture_raft::codec::{decode_message, encode_message};
use overture_raft::group_db::GroupId;
use overture_raft::network::paths;

use super::{Engine, GroupLeader, Inner};
use crate::error::Error;

/// How long a backup waits for this node to catch up with a group's leader.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(30);

/// A read index asked of another node: the group's committed index, once that node has applied
/// it as its leader; or why it could not say.
type ReadIndexAnswer = Result<u64, String>;

impl Engine {
    /// Backs up this node into `<data_dir>/backups/<name>` once it holds every write any leader
    /// had committed when the call began. Answers the backup's directory and manifest.
    pub async fn backup(&self, name: &str) -> Result<(PathBuf, Manifest), Error> {
        let started = Instant::now();
        let groups = self.inner.groups.all().len() as GroupId;
        for group in 0..groups {
            let index = self.read_index(group).await?;
            if !self.wait_applied(group, index, CATCH_UP_WITHIN).await {
                return Err(Error::Unavailable(format!(
                    "this node did not apply group {group} up to its leader's index {index} within {} s; retry",
                    CATCH_UP_WITHIN.as_secs()
                )));
            }
        }
        let caught_up_ms = started.elapsed().as_millis() as u64;
        let replica = self.replica().clone();
        let name = name.to_owned();
        let (dir, manifest) =
            tokio::task::spawn_blocking(move || replica.backup(groups, &name, env!("CARGO_PKG_VERSION")))
                .await
                .map_err(|e| Error::Internal(format!("backup task: {e}")))?
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Error::Conflict(format!("a backup of that name exists: {e}")),
                    _ => Error::Internal(format!("taking a backup: {e}")),
                })?;
        metrics::counter!(crate::names::BACKUPS).increment(1);
        metrics::histogram!(crate::names::BACKUP_SECONDS).record(started.elapsed().as_secs_f64());
        tracing::info!(dir = %dir.display(), caught_up_ms, checkpoint_ms = manifest.took_ms, "took a backup");
        Ok((dir, manifest))
    }

    /// The index `group`'s leader had committed (and applied) when asked.
    async fn read_index(&self, group: GroupId) -> Result<u64, Error> {
        match self.leader_in(group) {
            GroupLeader::Here => local_read_index(&self.inner, group).await,
            GroupLeader::Elsewhere { node, address, .. } => {
                let answer: ReadIndexAnswer =
                    self.inner.groups.ask(node, &address, paths::READ_INDEX, &group, CATCH_UP_WITHIN).await.map_err(
                        |e| Error::Unavailable(format!("asking node {node} for group {group}'s read index: {e}")),
                    )?;
                answer.map_err(Error::Unavailable)
            }
            GroupLeader::Unknown => Err(Error::Unavailable(format!(
                "group {group} has no known leader (an election may be running); a backup needs every group's; retry"
            ))),
        }
    }

    /// Serves another node's [`paths::READ_INDEX`]: the group's read index, if this node leads it.
    pub async fn serve_read_index(&self, message: &[u8]) -> Vec<u8> {
        // The outer result is the exchange's (as every `ask` answer's), the inner the group's.
        let answer: Result<ReadIndexAnswer, String> = match decode_message::<GroupId>(message) {
            Err(e) => Err(format!("a read index request that does not decode: {e}")),
            Ok(group) => Ok(local_read_index(&self.inner, group).await.map_err(|e| e.to_string())),
        };
        encode_message(&answer)
    }
}

/// `group`'s committed index, once this node, its leader, has applied it.
async fn local_read_index(inner: &Inner, group: GroupId) -> Result<u64, Error> {
    let replica = inner.groups.get(group).ok_or_else(|| Error::NotFound(format!("this node has no group {group}")))?;
    replica.ensure_linearizable().await?;
    Ok(replica.read().applied_index())
}
