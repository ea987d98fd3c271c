//! Backups of a running node, and restores that make a new cluster from one.
//!
//! A backup is a RocksDB checkpoint of the node's one database: every Raft group's log, vote and
//! state machine. The checkpoint flushes the memtables first, atomically across column families,
//! so each group's state in it is its whole state as of one applied entry; writes go on into new
//! memtables meanwhile. SST files are hard links when the backup lies on the data directory's file
//! system and copies otherwise. `BACKUP.json` ([`Manifest`]) is written last, and the directory
//! takes its name only then: a backup directory without a manifest does not exist.
//!
//! A restore copies a backup into a new data directory and makes every group a group of one new
//! member: the log is emptied and marked purged up to the group's applied entry, the membership
//! as of that entry names only the new node, and the vote is the entry's term for the new node,
//! not committed, so the node elects itself when it starts. Entries the backup's log held past
//! the applied one are dropped: they were not applied when the backup was taken, so no client had
//! been told they were done. More members join the restored node as they join any cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rocksdb::{DB, Options, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::group_db::{GroupDb, GroupId, family_name, group_count, partitions_of};
use crate::keys::{self, CF_RAFT_LOG, CF_RAFT_META, CF_SM_META, meta};
use crate::types::{LogId, Node, NodeId, StoredMembership, Vote};
use crate::{database, io_err};

/// The manifest's file name.
pub const MANIFEST: &str = "BACKUP.json";
/// The manifest's format.
const FORMAT: u32 = 1;

/// What a backup holds, written last into it as `BACKUP.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The manifest's format.
    pub format: u32,
    /// The release that took it.
    pub version: String,
    /// The node it was taken on.
    pub node_id: NodeId,
    /// The cluster's partitions (fixed when a data directory is created; a restore keeps them).
    pub partitions: u16,
    /// Each group's last applied entry in the backup.
    pub groups: Vec<GroupPoint>,
    /// When the checkpoint was taken, epoch milliseconds.
    pub created_ms: i64,
    /// How long the checkpoint took.
    pub took_ms: u64,
}

/// A group's last applied entry in a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupPoint {
    /// The group (0 is the metadata group).
    pub group: GroupId,
    /// The index of its last applied entry (0 if none).
    pub applied_index: u64,
    /// That entry's term.
    pub applied_term: u64,
}

/// Writes a checkpoint of `db` (holding `groups` Raft groups, node `node_id`) to `dir`, which
/// must not exist yet. `version` names the release in the manifest.
pub fn create(db: &DB, groups: GroupId, node_id: NodeId, dir: &Path, version: &str) -> io::Result<Manifest> {
    if dir.exists() {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists already", dir.display())));
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = dir.file_name().ok_or_else(|| io_err(format!("{} names no directory", dir.display())))?;
    let partial = parent.join(format!(".{}.partial", name.to_string_lossy()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    std::fs::create_dir_all(&partial)?;
    let started = Instant::now();
    let created_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    rocksdb::checkpoint::Checkpoint::new(db).and_then(|c| c.create_checkpoint(partial.join("db"))).map_err(io_err)?;
    let took_ms = started.elapsed().as_millis() as u64;
    let manifest = Manifest {
        format: FORMAT,
        version: version.to_owned(),
        node_id,
        partitions: partitions_of(groups),
        groups: applied_points(&partial.join("db"), groups)?,
        created_ms,
        took_ms,
    };
    write_synced(&partial.join(MANIFEST), &serde_json::to_vec_pretty(&manifest).map_err(io_err)?)?;
    std::fs::rename(&partial, dir)?;
    std::fs::File::open(parent)?.sync_all()?;
    Ok(manifest)
}

/// The manifest of the backup in `dir`; an error a person can act on if it is not one.
pub fn manifest(dir: &Path) -> io::Result<Manifest> {
    let bytes = std::fs::read(dir.join(MANIFEST))
        .map_err(|e| io_err(format!("{} is not a complete backup (no readable {MANIFEST}: {e})", dir.display())))?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| io_err(format!("{MANIFEST}: {e}")))?;
    if manifest.format != FORMAT {
        return Err(io_err(format!("{MANIFEST} is format {}; this release reads format {FORMAT}", manifest.format)));
    }
    Ok(manifest)
}

/// Makes `data_dir` (absent or empty) a data directory holding the backup in `backup`, whose
/// every group has the one member `node_id` at `address`.
pub fn restore(backup: &Path, data_dir: &Path, node_id: NodeId, address: &str) -> io::Result<Manifest> {
    let manifest = manifest(backup)?;
    if data_dir.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(io_err(format!("{} is not empty: restore into a new data directory", data_dir.display())));
    }
    copy_dir(&backup.join("db"), &data_dir.join("db"))?;
    let groups = group_count(manifest.partitions);
    let db = database::open_database(data_dir, groups).map_err(io_err)?;
    let member = BTreeMap::from([(node_id, Node { addr: address.to_owned() })]);
    let mut wb = WriteBatch::default();
    for group in 0..groups {
        let g = GroupDb::new(db.clone(), group);
        let applied: Option<LogId> = match g.shared().get_cf(g.cf(CF_SM_META), meta::APPLIED).map_err(io_err)? {
            Some(bytes) => Some(decode(&bytes).map_err(io_err)?),
            None => None,
        };
        one_member_group(&mut wb, &g, applied, node_id, &member);
    }
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    db.write_opt(wb, &sync).map_err(io_err)?;
    flush_all(&db, groups)?;
    Ok(manifest)
}

/// Rewrites group `g` as a group of `member` alone, as of its applied entry.
fn one_member_group(
    wb: &mut WriteBatch,
    g: &GroupDb,
    applied: Option<LogId>,
    node_id: NodeId,
    member: &BTreeMap<NodeId, Node>,
) {
    wb.delete_range_cf(g.cf(CF_RAFT_LOG), keys::log_index(0), keys::log_index(u64::MAX));
    wb.delete_cf(g.cf(CF_RAFT_LOG), keys::log_index(u64::MAX));
    for key in [meta::SNAPSHOT, meta::INSTALLING] {
        wb.delete_cf(g.cf(CF_SM_META), key);
    }
    let Some(applied) = applied else {
        // Nothing was ever applied: the group starts as new, initialized when the node starts.
        for key in [meta::VOTE, meta::COMMITTED, meta::PURGED] {
            wb.delete_cf(g.cf(CF_RAFT_META), key);
        }
        wb.delete_cf(g.cf(CF_SM_META), meta::MEMBERSHIP);
        return;
    };
    let membership = openraft::Membership::new(vec![BTreeSet::from([node_id])], member.clone())
        .unwrap_or_else(|e| unreachable!("a voter with its node is a valid membership: {e}"));
    let stored = StoredMembership::new(Some(applied), membership);
    wb.put_cf(g.cf(CF_SM_META), meta::MEMBERSHIP, encode(&stored));
    wb.put_cf(g.cf(CF_RAFT_META), meta::PURGED, encode(&applied));
    wb.put_cf(g.cf(CF_RAFT_META), meta::COMMITTED, encode(&applied));
    wb.put_cf(g.cf(CF_RAFT_META), meta::VOTE, encode(&Vote::new(applied.leader_id.term, node_id)));
}

/// Each group's applied entry in the checkpoint at `db_dir`, read from the checkpoint itself.
fn applied_points(db_dir: &Path, groups: GroupId) -> io::Result<Vec<GroupPoint>> {
    let names: Vec<String> = (0..groups).map(|g| family_name(CF_SM_META, g)).collect();
    let mut all = DB::list_cf(&Options::default(), db_dir).map_err(io_err)?;
    all.retain(|n| n != "default");
    let db = DB::open_cf_for_read_only(&Options::default(), db_dir, &all, false).map_err(io_err)?;
    let mut points = Vec::new();
    for (group, name) in (0..groups).zip(&names) {
        let family = db.cf_handle(name).ok_or_else(|| io_err(format!("the checkpoint has no family {name}")))?;
        let applied: Option<LogId> = match db.get_cf(family, meta::APPLIED).map_err(io_err)? {
            Some(bytes) => Some(decode(&bytes).map_err(io_err)?),
            None => None,
        };
        let (applied_term, applied_index) = applied.map_or((0, 0), |id| (id.leader_id.term, id.index));
        points.push(GroupPoint { group, applied_index, applied_term });
    }
    Ok(points)
}

fn flush_all(db: &Arc<DB>, groups: GroupId) -> io::Result<()> {
    let families: Vec<_> = (0..groups)
        .flat_map(|g| keys::all().map(move |base| family_name(base, g)))
        .filter_map(|name| db.cf_handle(&name))
        .collect();
    db.flush_cfs_opt(&families, &rocksdb::FlushOptions::default()).map_err(io_err)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Copies the files of `from` (a checkpoint: files only) into a new directory `to`.
fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    std::fs::File::open(to)?.sync_all()
}
