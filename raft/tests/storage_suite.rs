//! openraft's own storage test suite, run against our RocksDB log store and state machine.

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use overture_raft::ReplicaOptions;
use overture_raft::log_store::LogStore;
use overture_raft::replica::Storage;
use overture_raft::state_machine::StateMachine;
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
