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

/// The group that holds workflow `id` in a cluster of `partitions` partitions: the metadata
/// group 0 when there is one partition, else group 1 + (FNV-1a of the id's bytes mod P). The
/// hash is part of the stored layout: changing it would lose every workflow of a partitioned
/// cluster. Task ids are made to land in their workflow's group, so the same function finds a
/// task's group from its id.
pub fn partition_of(id: &str, partitions: u16) -> GroupId {
    if partitions <= 1 {
        return 0;
    }
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    1 + (hash % u64::from(partitions)) as GroupId
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
    fn ids_are_dealt_to_partitions_by_a_fixed_hash() {
        assert_eq!(partition_of("anything", 1), 0);
        // Pinned: these are where stored workflows are looked for.
        assert_eq!(partition_of("", 6), 1 + (0xcbf2_9ce4_8422_2325_u64 % 6) as GroupId);
        assert_eq!(partition_of("a", 6), 5);
        assert_eq!(partition_of("订单审批", 6), 1);
        let dealt: Vec<GroupId> = ["a", "b", "订单审批", "0193f3c2-7d4e-7a1b-9c2d-3e4f5a6b7c8d"]
            .iter()
            .map(|id| partition_of(id, 6))
            .collect();
        assert!(dealt.iter().all(|g| (1..=6).contains(g)), "{dealt:?}");
        let mut seen = [0usize; 7];
        for n in 0..6000 {
            seen[usize::from(partition_of(&format!("wf-{n}"), 6))] += 1;
        }
        assert_eq!(seen[0], 0);
        assert!(seen[1..].iter().all(|&c| (800..1200).contains(&c)), "uneven: {seen:?}");
    }

    #[test]
    fn group_zero_keeps_the_names_of_a_database_with_one_group() {
        assert_eq!(family_name("workflows", 0), "workflows");
        assert_eq!(family_name("workflows", 3), "workflows@3");
    }
}
