//! The state machine as openraft drives it: applies entries in groups through the shared
//! state (see `state_machine`), and builds, installs and serves snapshots (see `snapshot`).

use std::io;
use std::sync::Arc;

use futures::{FutureExt, Stream, TryStreamExt};
use openraft::OptionalSend;
use openraft::storage::{EntryResponder, RaftStateMachine};

use crate::io_err;
use crate::snapshot::{SnapshotBuilder, SnapshotFile};
use crate::state_machine::Shared;
use crate::types::{LogId, SnapshotMeta, StoredMembership, TypeConfig};

/// The state machine openraft drives.
pub struct StateMachine {
    pub(crate) shared: Arc<Shared>,
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let inner = self.shared.inner.lock();
        Ok((inner.applied, inner.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        const MAX_GROUP: usize = 512;
        while let Some(first) = entries.try_next().await? {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match entries.try_next().now_or_never() {
                    Some(Ok(Some(next))) => group.push(next),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(None)) | None => break,
                }
            }
            for (responder, response) in self.shared.apply_group(group)? {
                if let Some(responder) = responder {
                    responder.send(response);
                }
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { shared: self.shared.clone() }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotFile) -> Result<(), io::Error> {
        let shared = self.shared.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || crate::snapshot::install(&shared, &meta, snapshot)).await.map_err(io_err)?
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>>, io::Error> {
        crate::snapshot::current(&self.shared)
    }
}
