//! One RocksDB database per node, shared by the Raft groups the node is a member of.
//!
//! Each group keeps its log and its state machine in column families of its own: group 0 in the
//! families named in [`crate::keys`], group `g` in the same names followed by `@g`. The groups
//! then share one write-ahead log, one block cache and one memtable budget, and a group's
//! snapshot, install and digest touch only its own families. A data directory written before
//! there were several groups is group 0's, unchanged.

use std::collections::HashMap;
use std::sync::Arc;

use rocksdb::{ColumnFamily, DB};

/// A Raft group's number on a node: 0 is the first (and, without partitions, the only) group.
pub type GroupId = u16;

/// The Raft groups a node of a cluster with `partitions` partitions runs: the metadata group,
/// and one per partition when there are more than one.
pub fn group_count(partitions: u16) -> GroupId {
    if partitions <= 1 { 1 } else { partitions.saturating_add(1) }
}

/// The partitions of a node that runs `groups` Raft groups ([`group_count`] the other way).
pub fn partitions_of(groups: GroupId) -> u16 {
    if groups <= 1 { 1 } else { groups - 1 }
}

/// The name of the column family `base` of `group`.
pub fn family_name(base: &str, group: GroupId) -> String {
    if group == 0 { base.to_owned() } else { format!("{base}@{group}") }
}

/// One group's view of the node's database: the database itself (through `Deref`), and its
/// column families by their base names.
pub struct GroupDb {
    db: Arc<DB>,
    group: GroupId,
    /// Family names by base name, for groups other than 0 (whose names are the base names).
    names: HashMap<&'static str, String>,
}

impl GroupDb {
    /// `group`'s view of `db`, which has its families (they are created when it opens).
    pub fn new(db: Arc<DB>, group: GroupId) -> GroupDb {
        let names =
            if group == 0 { HashMap::new() } else { crate::keys::all().map(|b| (b, family_name(b, group))).collect() };
        GroupDb { db, group, names }
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The database the groups share.
    pub fn shared(&self) -> &Arc<DB> {
        &self.db
    }

    /// This group's column family `base`. The families are created when the database opens, so
    /// a missing one is a bug in this crate, not bad input.
    pub fn cf(&self, base: &str) -> &ColumnFamily {
        let name = self.names.get(base).map_or(base, String::as_str);
        self.db.cf_handle(name).unwrap_or_else(|| unreachable!("column family {name} is created at open"))
    }
}

impl std::ops::Deref for GroupDb {
    type Target = DB;

    fn deref(&self) -> &DB {
        &self.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_zero_keeps_the_names_of_a_database_with_one_group() {
        assert_eq!(family_name("workflows", 0), "workflows");
        assert_eq!(family_name("workflows", 3), "workflows@3");
    }
}
