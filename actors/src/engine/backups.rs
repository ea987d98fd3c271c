//! Online backups of this node ([`overture_raft::backup`]): first this node catches up, in every
//! group, with what that group's leader had committed when the backup was asked for
//! (`read_index.rs`), so the backup holds every write acknowledged before it, whichever node
//! acknowledged it; then one checkpoint of the database covers every group.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use overture_raft::backup::Manifest;
use overture_raft::group_db::GroupId;

use super::Engine;
use crate::error::Error;

/// How long a backup waits for this node to catch up with a group's leader.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(30);

impl Engine {
    /// Backs up this node into `<data_dir>/backups/<name>` once it holds every write any leader
    /// had committed when the call began. Answers the backup's directory and manifest.
    pub async fn backup(&self, name: &str) -> Result<(PathBuf, Manifest), Error> {
        let started = Instant::now();
        let groups = self.inner.groups.all().len() as GroupId;
        self.catch_up_with_leaders(CATCH_UP_WITHIN).await?;
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
}
