//! Read indexes: what a group's leader had committed when asked, and catching up with it, so a
//! read served from this node's replicas afterwards sees every write acknowledged before it,
//! whichever node acknowledged it. Backups and, with partitions, linearizable reads
//! (`?consistent=true`) are served so.

use std::time::Duration;

use overture_raft::codec::{decode_message, encode_message};
use overture_raft::group_db::GroupId;
use overture_raft::network::paths;

use super::{Engine, GroupLeader, Inner};
use crate::error::Error;

/// A read index asked of another node: the group's committed index, once that node has applied
/// it as its leader; or why it could not say.
type ReadIndexAnswer = Result<u64, String>;

/// How soon a group without a leader to ask is asked again.
const ASK_AGAIN_AFTER: Duration = Duration::from_millis(50);

impl Engine {
    /// Waits until this node has applied, in every group, what that group's leader had
    /// committed when the call began; the groups are asked at once. A group without a leader
    /// this node can ask (an election, a leader just gone) is asked again until `within` has
    /// passed; then, or if this node does not catch up by then, it fails retryably.
    pub async fn catch_up_with_leaders(&self, within: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + within;
        let groups = self.inner.groups.all().len() as GroupId;
        let catch_up = (0..groups).map(|group| async move {
            let index = loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match tokio::time::timeout(left, self.read_index(group, left)).await {
                    Ok(Ok(index)) => break index,
                    Ok(Err(Error::Unavailable(why))) if tokio::time::Instant::now() + ASK_AGAIN_AFTER < deadline => {
                        tracing::debug!(group, why, "no read index yet; asking again");
                        tokio::time::sleep(ASK_AGAIN_AFTER).await;
                    }
                    Ok(Err(e)) => return Err(e),
                    Err(_) => {
                        return Err(Error::Unavailable(format!(
                            "group {group}'s leader did not confirm its index within {within:?}; retry"
                        )));
                    }
                }
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if self.wait_applied(group, index, left).await {
                Ok(())
            } else {
                Err(Error::Unavailable(format!(
                    "this node did not apply group {group} up to its leader's index {index} within {within:?}; retry"
                )))
            }
        });
        futures::future::try_join_all(catch_up).await.map(drop)
    }

    /// The index `group`'s leader had committed (and applied) when asked.
    async fn read_index(&self, group: GroupId, within: Duration) -> Result<u64, Error> {
        match self.leader_in(group) {
            GroupLeader::Here => local_read_index(&self.inner, group).await,
            GroupLeader::Elsewhere { node, address, .. } => {
                let answer: ReadIndexAnswer =
                    self.inner.groups.ask(node, &address, paths::READ_INDEX, &group, within).await.map_err(|e| {
                        Error::Unavailable(format!("asking node {node} for group {group}'s read index: {e}"))
                    })?;
                answer.map_err(Error::Unavailable)
            }
            GroupLeader::Unknown => Err(Error::Unavailable(format!(
                "group {group} has no known leader (an election may be running); retry"
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
