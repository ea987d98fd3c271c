//! Overture's replicated storage: openraft over one RocksDB database per node.
//!
//! This is the only crate that touches openraft or RocksDB. It knows nothing of HTTP or polling
//! and decides nothing: the state machine runs the core's `evolve` and writes what the new state
//! implies. Its parts:
//!
//! - [`types`]: the Raft type configuration and what an entry carries ([`types::Request`]).
//! - [`codec`]: versioned bincode for every stored value; [`keys`]: column families and keys.
//! - [`log_store`]: the Raft log, fsynced in groups.
//! - [`state_machine`]: apply (version guard, evolve, one write batch), the apply listener;
//!   [`machine`]: the state machine as openraft drives it.
//! - [`snapshot`]: build and install snapshots as streamed row files.
//! - [`read`]: the local read view; [`replica`]: opening it all, proposing, leadership;
//!   [`groups`]: a node's Raft groups (metadata and partitions) and their leaders' balance.
//! - [`network`] and [`rpc`]: Raft RPC between nodes, client and server halves; [`protocol`]:
//!   the version of what nodes say to each other; [`http`]: where every outgoing HTTP client
//!   starts (the TLS crypto provider).

pub mod backup;
pub mod codec;
pub mod database;
mod defs;
pub mod disk;
pub mod errors;
pub mod faults;
pub mod group_db;
pub mod groups;
pub mod http;
pub mod keys;
pub mod log_store;
pub mod machine;
pub mod membership;
pub mod network;
pub mod options;
pub mod proposer;
pub mod protocol;
pub mod read;
pub mod replica;
pub mod rpc;
pub mod search;
pub mod snapshot;
pub mod state_machine;
pub mod types;

pub use errors::ProposeError;
pub use group_db::{GroupDb, GroupId, partition_of};
pub use groups::Groups;
pub use machine::StateMachine;
pub use read::ReadView;
pub use replica::{Leadership, LeadershipWatch, Replica, ReplicaOptions};
pub use state_machine::{ApplyListener, Changes, RowChange};
pub use types::{Request, Response, WorkflowBatch};

/// The Raft handle.
pub type Raft = openraft::Raft<types::TypeConfig, machine::StateMachine>;

/// A group's column family handle ([`GroupDb::cf`]).
pub(crate) fn cf<'a>(db: &'a GroupDb, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf(name)
}

/// Writes what applying entries changed in the state machine, without RocksDB's write-ahead log.
///
/// The Raft log is the state machine's write-ahead log: it is fsynced before an entry commits,
/// so logging the state a second time in RocksDB's WAL only made every fsync carry it too. A
/// crash loses the state applied since the last memtable flush, and the restart rebuilds it:
/// openraft installs the last snapshot if the state on disk is older, then applies the log
/// after it. Flushes take all column families at once (`atomic_flush`), so what a crash leaves
/// is the state as of one applied index, never families from different points.
///
/// A full disk is waited out ([`disk`]): the write is tried again, from a copy of the batch,
/// until space returns.
pub(crate) fn write_state(
    db: &GroupDb,
    disk: &disk::DiskGuard,
    batch: rocksdb::WriteBatch,
) -> Result<(), std::io::Error> {
    let mut opts = rocksdb::WriteOptions::default();
    opts.disable_wal(true);
    let data = batch.data().to_vec();
    let mut first = Some(batch);
    disk::retry_in_place(disk, "a state machine write", || {
        let batch = first.take().unwrap_or_else(|| rocksdb::WriteBatch::from_data(&data));
        db.write_opt(batch, &opts)
    })
    .map_err(io_err)
}

/// Flushes the state machine's memtables to disk, atomically, and waits for it. The Raft log's
/// families are left to RocksDB's WAL: entries flushed here would be deleted by the purge that
/// follows.
pub(crate) fn flush_state(db: &GroupDb) -> Result<(), rocksdb::Error> {
    let families: Vec<&rocksdb::ColumnFamily> = keys::STATE_MACHINE.iter().map(|name| cf(db, name)).collect();
    let mut opts = rocksdb::FlushOptions::default();
    opts.set_wait(true);
    db.flush_cfs_opt(&families, &opts)
}

pub(crate) fn io_err(e: impl ToString) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Entries whose content could not be applied (answered with `Response::Rejected`).
pub const APPLY_REJECTED: &str = "overture_raft_apply_rejected_total";

/// Payloads stored in external payload storage (complete, all parts written).
pub const PAYLOADS_STORED: &str = "overture_external_payloads_stored_total";
/// Bytes of the payloads stored in external payload storage.
pub const PAYLOAD_BYTES_STORED: &str = "overture_external_payload_bytes_stored_total";
/// Payloads deleted from external payload storage (set again, or their execution removed).
pub const PAYLOADS_DELETED: &str = "overture_external_payloads_deleted_total";

/// Makes the storage counters exist from the start (at zero), so a dashboard or alert never
/// sees a missing series before the first snapshot.
pub fn register_metrics() {
    for name in [
        APPLY_REJECTED,
        PAYLOADS_STORED,
        PAYLOAD_BYTES_STORED,
        PAYLOADS_DELETED,
        disk::FULL_RETRIES,
        "overture_snapshots_built_total",
        "overture_snapshots_installed_total",
        "overture_snapshot_received_total",
        "overture_snapshot_received_bytes_total",
        "overture_snapshot_refused_total",
        protocol::REFUSED_COUNTER,
        "overture_raft_entries_appended_total",
        "overture_raft_entries_applied_total",
    ] {
        metrics::counter!(name).increment(0);
    }
}
