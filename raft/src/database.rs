//! A node's one RocksDB database, opened once for all its Raft groups: the column families of
//! every group, their options, and what the groups share (the free-space guard, the thread that
//! fsyncs the write-ahead log, injected faults).

use std::sync::Arc;

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, Options};

use crate::errors::OpenError;
use crate::group_db::{GroupDb, GroupId, partitions_of};
use crate::io_err;
use crate::keys;
use crate::options::ReplicaOptions;

/// A node's database, opened once for all its Raft groups, with what they share: the thread
/// that fsyncs the write-ahead log, and the guard of the data directory's free space.
pub struct Database {
    db: Arc<DB>,
    groups: GroupId,
    pub(crate) disk: Arc<crate::disk::DiskGuard>,
    pub(crate) flusher: Arc<crate::log_store::WalFlusher>,
    /// Faults injected into this node: a node cut off from a peer is cut off in every group.
    pub(crate) faults: Arc<crate::faults::Faults>,
}

impl Database {
    /// Opens (creating if needed) the database under `options.data_dir` with the column
    /// families of `groups` Raft groups (0 to `groups` - 1). A directory made for another number
    /// of groups is refused, saying how many it holds.
    pub fn open(options: &ReplicaOptions, groups: GroupId) -> Result<Database, OpenError> {
        let groups = groups.max(1);
        let found = groups_in(&options.data_dir.join("db"));
        if found.is_some_and(|found| found != groups) {
            let found = found.unwrap_or_default();
            return Err(OpenError::Storage(io_err(format!(
                "{} holds {found} Raft groups (partitions = {}), and this node was started with {groups} \
                 (partitions = {}); the number of partitions is fixed when a data directory is created",
                options.data_dir.display(),
                partitions_of(found),
                partitions_of(groups),
            ))));
        }
        let db = open_database(&options.data_dir, groups)?;
        let disk = crate::disk::DiskGuard::new(&options.data_dir, options.min_free_disk_bytes);
        let flusher = Arc::new(crate::log_store::WalFlusher::start(db.clone(), disk.clone())?);
        let faults = crate::faults::Faults::new(options.fault_injection);
        Ok(Database { db, groups, disk, flusher, faults })
    }

    /// How many Raft groups the database holds.
    pub fn groups(&self) -> GroupId {
        self.groups
    }

    /// Group `group`'s view of the database.
    pub fn group(&self, group: GroupId) -> Result<Arc<GroupDb>, OpenError> {
        if group >= self.groups {
            return Err(OpenError::Storage(io_err(format!("the database has no Raft group {group}"))));
        }
        Ok(Arc::new(GroupDb::new(self.db.clone(), group)))
    }
}

/// How many Raft groups the database at `path` has families for; `None` if there is none yet.
fn groups_in(path: &std::path::Path) -> Option<GroupId> {
    let names = DB::list_cf(&Options::default(), path).ok()?;
    let highest = names.iter().filter_map(|n| n.rsplit_once('@')?.1.parse::<GroupId>().ok()).max();
    Some(highest.map_or(1, |g| g.saturating_add(1)))
}

/// Opens (creating if needed) the database under `data_dir` with the column families of
/// `groups` Raft groups (0 to `groups` - 1).
pub(crate) fn open_database(data_dir: &std::path::Path, groups: GroupId) -> Result<Arc<DB>, OpenError> {
    std::fs::create_dir_all(data_dir)?;
    let block_cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    let mut families = Vec::new();
    for group in 0..groups.max(1) {
        for base in keys::all() {
            let options = family_options(base, &block_cache).map_err(io_err)?;
            families.push(ColumnFamilyDescriptor::new(crate::group_db::family_name(base, group), options));
        }
    }
    let db = DB::open_cf_descriptors(&db_options(&block_cache), data_dir.join("db"), families).map_err(io_err)?;
    Ok(Arc::new(db))
}

/// The memtable arena's block: the least memory a family that has a row in its memtable holds
/// against the write budget.
const ARENA_BLOCK_BYTES: usize = 64 << 10;

/// The block cache all column families share. Without one, each family's table factory makes
/// its own 32 MB cache.
const BLOCK_CACHE_BYTES: usize = 32 << 20;

/// A family's options: the database's, and for the families keyed by workflow id a memtable
/// insert hint per workflow (the first 36 bytes of a key: a generated id). A workflow writes
/// rows next to its previous ones (its next event, a task row it rewrites, its header); with
/// the hint RocksDB starts looking from where that workflow's last insert landed instead of
/// from the top of the memtable's skip list. Callgrind, 1,000 linear workflows: memtable
/// inserts 287 → 236 M instructions, the run 2.38 → 2.29 G (−3.7%). A workflow's first row
/// costs a little more (a new hint), so 5,000 start-only workflows cost 2.5% more. Hints are
/// only a starting point: ids of other lengths share or split them, and nothing else changes.
fn family_options(name: &str, block_cache: &Cache) -> Result<Options, rocksdb::Error> {
    if !keys::WORKFLOW_KEYED.contains(&name) {
        return Ok(db_options(block_cache));
    }
    let hinted = Options::default()
        .get_options_from_string("memtable_insert_with_hint_prefix_extractor=rocksdb.CappedPrefix.36")?;
    Ok(with_db_options(hinted, block_cache))
}

fn db_options(block_cache: &Cache) -> Options {
    with_db_options(Options::default(), block_cache)
}

fn with_db_options(mut opts: Options, block_cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(block_cache);
    // Most point reads look for keys that are not there (a new workflow's id, an idempotency
    // key); a Bloom filter answers those without reading a block of every file.
    table.set_bloom_filter(10.0, false);
    opts.set_block_based_table_factory(&table);
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.increase_parallelism(2);
    opts.set_max_background_jobs(2);
    // One memtable budget shared by all column families; by default each of the twelve would
    // grow its own 64 MB buffers. 32 MB ran the linear benchmark as fast as 64 MB.
    opts.set_db_write_buffer_size(32 << 20);
    // The budget counts the arena blocks memtables have taken, and each family's active
    // memtable takes at least one. RocksDB's default block is 1 MB (an eighth of the 64 MB
    // memtable, at most 1 MB); with six partitions, 84 families held 84 MB of blocks for a few
    // KB of rows, so every write found the 32 MB budget spent and flushed every family (49,000
    // flushes of a few rows each in a 3,000-workflow run, half the node's CPU). 64 KB blocks
    // hold a family's first rows at a sixteenth of that.
    opts.set_arena_block_size(ARENA_BLOCK_BYTES);
    // LZ4 at every level, the last included. zstd there (level 3) spent 8% of the node's
    // instructions in a 4,000-workflow run, as L0 compacts straight into the last level; with
    // LZ4 the run cost 5.7% fewer instructions and the data directory was 21% larger. Files
    // written by earlier builds stay readable: the zstd codec is still compiled in.
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // State-machine writes skip the WAL (`crate::write_state`): the families a flush takes are
    // all cut at one point, so what a crash leaves on disk is the state as of one applied index.
    opts.set_atomic_flush(true);
    opts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With six partitions a node holds 84 column families. A few KB in each must not spend
    /// the shared memtable budget: a flush of every family after every few writes (1 MB arena
    /// blocks) cost half the node's CPU.
    #[test]
    fn a_few_rows_in_every_family_of_six_partitions_do_not_flush() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let groups = crate::group_db::group_count(6);
        let db = open_database(dir.path(), groups).expect("opens");
        let names: Vec<String> =
            (0..groups).flat_map(|g| keys::all().map(move |base| crate::group_db::family_name(base, g))).collect();
        assert_eq!(names.len(), 7 * keys::all().count());
        for round in 0..2u8 {
            for name in &names {
                let family = db.cf_handle(name).expect("the family exists");
                db.put_cf(&family, [b'k', round], [round; 4096]).expect("written");
            }
        }
        for name in &names {
            let family = db.cf_handle(name).expect("the family exists");
            let entries =
                db.property_int_value_cf(&family, "rocksdb.num-entries-active-mem-table").expect("a property");
            assert_eq!(entries, Some(2), "{name}: its memtable was flushed after {entries:?} rows");
        }
    }
}
