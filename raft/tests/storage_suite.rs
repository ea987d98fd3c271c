//! openraft's own storage test suite, run against our RocksDB log store and state machine.

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use overture_raft::ReplicaOptions;
use overture_raft::StateMachine;
use overture_raft::log_store::LogStore;
use overture_raft::replica::Storage;
use overture_raft::types::TypeConfig;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::open(&ReplicaOptions::new(0, dir.path().to_path_buf())).expect("storage opens");
        Ok((dir, storage.log_store, storage.state_machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes() -> Result<(), StorageError<TypeConfig>> {
    Suite::test_all(Builder).await
}

/// What openraft applies comes from memory when it can: it must be the entries as they now are
/// in the log, after a truncation and a rewrite by a new leader too, and each range read once
/// from memory still reads from disk afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_to_apply_are_the_log_as_it_now_is() {
    use futures::StreamExt;
    use openraft::RaftLogReader;
    use openraft::storage::{IOFlushed, RaftLogStorage};
    use openraft::testing::blank_ent;

    let dir = tempfile::tempdir().expect("temp dir");
    let storage = Storage::open(&ReplicaOptions::new(0, dir.path().to_path_buf())).expect("storage opens");
    let mut log = storage.log_store;
    let terms = |entries: Vec<Result<overture_raft::types::Entry, std::io::Error>>| -> Vec<(u64, u64)> {
        entries.into_iter().map(|e| e.expect("entry")).map(|e| (e.log_id.leader_id.term, e.log_id.index)).collect()
    };
    let first: Vec<_> = (1..=6).map(|i| blank_ent::<TypeConfig>(1, 1, i)).collect();
    log.append(first, IOFlushed::noop()).await.expect("appended");
    // A new leader replaces 5 and 6: the log ends at 5 of term 2 for now.
    log.truncate_after(Some(openraft::testing::log_id::<TypeConfig>(1, 1, 4))).await.expect("truncated");
    log.append([blank_ent::<TypeConfig>(2, 2, 5)], IOFlushed::noop()).await.expect("appended");
    let mut reader = log.get_log_reader().await;
    assert_eq!(terms(reader.entries_stream(3..7).await.collect().await), vec![(1, 3), (1, 4), (2, 5)]);

    let second: Vec<_> = (5..=7).map(|i| blank_ent::<TypeConfig>(2, 2, i)).collect();
    log.append(second, IOFlushed::noop()).await.expect("appended");
    // Replication reads them too (from memory, a prefix at most as long as asked).
    let sent = reader.limited_get_log_entries(3, 7).await.expect("read");
    assert_eq!(terms(sent.into_iter().map(Ok).collect()), vec![(1, 3), (1, 4), (2, 5), (2, 6)]);
    let applied = terms(reader.entries_stream(3..7).await.collect().await);
    assert_eq!(applied, vec![(1, 3), (1, 4), (2, 5), (2, 6)]);
    // Read again (from disk now): the same entries.
    assert_eq!(terms(reader.entries_stream(3..7).await.collect().await), applied);
    let sent = reader.limited_get_log_entries(3, 7).await.expect("read");
    assert_eq!(terms(sent.into_iter().map(Ok).collect()), applied);
    assert_eq!(terms(reader.entries_stream(7..8).await.collect().await), vec![(2, 7)]);
    // A purge drops what it covers from memory too.
    log.purge(openraft::testing::log_id::<TypeConfig>(2, 2, 7)).await.expect("purged");
    assert!(reader.try_get_log_entries(1..8).await.expect("read").is_empty());
    assert!(reader.entries_stream(7..8).await.collect::<Vec<_>>().await.is_empty());
}
