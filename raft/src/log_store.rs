//! The Raft log in RocksDB.
//!
//! Durability rules:
//! - A vote is written with `sync` before `save_vote` returns.
//! - An append is written at once (so it can be read back) and acknowledged to openraft only after
//!   the write-ahead log is fsynced. Appends are handed to one flusher thread, which fsyncs once for
//!   everything that arrived since its last fsync: concurrent proposals share one disk flush.
//! - A purge follows a snapshot and runs on a thread of its own, so openraft's core does not
//!   wait for it. It flushes the state machine's memtables first: its writes skip RocksDB's WAL
//!   (`crate::write_state`), and with the state on disk at least as new as the snapshot, a
//!   restart after a crash applies the entries since then instead of installing the snapshot
//!   again. Then it writes the purged marker and deletes the entries, so a crash in between
//!   leaves entries that are ignored, never a hole before the marker. Readers stop seeing the
//!   entries as soon as openraft purges.
//!
//! Appended entries also stay in memory until they are applied: openraft reads what it applies
//! and what it replicates back from the log, and handing it the entries as they were appended
//! saves a read and a decode of each. Anything not found there (after a restart, once applied,
//! or once trimmed) is read from the database.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use futures::Stream;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use parking_lot::Mutex;
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use crate::GroupDb;
use crate::codec::{decode, encode};
use crate::disk::DiskGuard;
use crate::keys::{self, CF_RAFT_LOG, CF_RAFT_META, meta};
use crate::types::{Entry, LogId, TypeConfig, Vote};
use crate::{cf, io_err};

/// The thread that fsyncs the write-ahead log for every Raft group of a database: appends that
/// arrive from any group while one fsync runs share the next.
pub struct WalFlusher(Worker<IOFlushed<TypeConfig>>);

impl WalFlusher {
    /// Starts the fsync thread of `db`.
    pub fn start(db: Arc<rocksdb::DB>, disk: Arc<DiskGuard>) -> io::Result<WalFlusher> {
        let db = Arc::new(GroupDb::new(db, 0));
        Worker::spawn("raft-log-fsync", db, disk, flusher_loop).map(WalFlusher)
    }
}

/// The log store; cheap to clone (openraft asks for readers).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<GroupDb>,
    /// Free space: writes wait out a full disk rather than fail (see [`crate::disk`]).
    disk: Arc<DiskGuard>,
    flusher: Arc<WalFlusher>,
    purger: Arc<Worker<LogId>>,
    /// The newest purge asked for: entries up to it are gone for readers at once, though the
    /// purge thread deletes them later.
    purged: Arc<Mutex<Option<LogId>>>,
    /// Appended entries not applied yet, by index.
    unapplied: Arc<Mutex<BTreeMap<u64, Entry>>>,
    /// Bytes appended since the store opened (for the snapshot policy).
    appended: Arc<AtomicU64>,
}

/// Entries kept in memory for apply at most; the oldest beyond are read back from disk instead.
const UNAPPLIED_KEPT: usize = 8192;

/// Entries sent to a follower in one request at most.
const REPLICATION_BATCH: usize = 1024;

/// A thread fed by a channel (the fsync thread, the purge thread). Dropping the last handle
/// closes the channel and joins the thread, so the thread's database handle is released before
/// the owner goes on: a database closed by a detached thread while the process exits aborts
/// inside RocksDB.
struct Worker<T> {
    tx: Option<mpsc::Sender<T>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<T: Send + 'static> Worker<T> {
    fn spawn(
        name: &str,
        db: Arc<GroupDb>,
        disk: Arc<DiskGuard>,
        run: fn(&GroupDb, &DiskGuard, &mpsc::Receiver<T>),
    ) -> io::Result<Worker<T>> {
        let (tx, rx) = mpsc::channel::<T>();
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || run(&db, &disk, &rx))?;
        Ok(Worker { tx: Some(tx), thread: Some(thread) })
    }

    fn send(&self, item: T) -> io::Result<()> {
        let stopped = || io_err("a log store thread has stopped");
        self.tx.as_ref().ok_or_else(stopped)?.send(item).map_err(|_| stopped())
    }
}

impl<T> Drop for Worker<T> {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has already been reported; nothing more to do with it here.
            let _ = thread.join();
        }
    }
}

impl LogStore {
    /// Opens the log store of a group, whose appends `flusher` makes durable.
    pub fn new(db: Arc<GroupDb>, disk: Arc<DiskGuard>, flusher: Arc<WalFlusher>) -> io::Result<LogStore> {
        Ok(LogStore {
            flusher,
            purger: Arc::new(Worker::spawn("raft-log-purge", db.clone(), disk.clone(), purger_loop)?),
            purged: Arc::default(),
            db,
            disk,
            unapplied: Arc::default(),
            appended: Arc::default(),
        })
    }

    /// Bytes appended to the log since it opened; shared, so it can be read after the store is
    /// handed to openraft.
    pub fn appended_bytes(&self) -> Arc<AtomicU64> {
        self.appended.clone()
    }

    fn get_meta<T: crate::codec::Versioned>(&self, key: &[u8]) -> Result<Option<T>, io::Error> {
        match self.db.get_cf(cf(&self.db, CF_RAFT_META), key).map_err(io_err)? {
            None => Ok(None),
            Some(bytes) => decode(&bytes).map(Some).map_err(io_err),
        }
    }
}

/// Fsyncs the WAL once per group of appends and completes their callbacks. An fsync that fails
/// for lack of space is tried again until it succeeds: openraft would stop for good on the error.
fn flusher_loop(db: &GroupDb, disk: &DiskGuard, rx: &mpsc::Receiver<IOFlushed<TypeConfig>>) {
    let group_size = metrics::histogram!("overture_raft_fsync_group_size");
    let fsync_seconds = metrics::histogram!("overture_raft_fsync_seconds");
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while let Ok(more) = rx.try_recv() {
            group.push(more);
        }
        let started = Instant::now();
        let result = crate::disk::retry_blocking(disk, "an fsync of the Raft log", || db.flush_wal(true));
        fsync_seconds.record(started.elapsed().as_secs_f64());
        group_size.record(group.len() as f64);
        for callback in group {
            callback.io_completed(result.as_ref().map(|_| ()).map_err(|e| io::Error::other(e.to_string())));
        }
    }
}

/// Purges the log up to the newest index asked for: flushes the state (so the state on disk
/// is at least as new as the snapshot that allowed the purge), writes the purged marker,
/// deletes the entries. A failure leaves the entries in place, to go with the next purge.
fn purger_loop(db: &GroupDb, _disk: &DiskGuard, rx: &mpsc::Receiver<LogId>) {
    while let Ok(first) = rx.recv() {
        let mut upto = first;
        while let Ok(more) = rx.try_recv() {
            if more.index > upto.index {
                upto = more;
            }
        }
        let started = Instant::now();
        let result = crate::flush_state(db).map_err(io_err).and_then(|()| {
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            db.put_cf_opt(cf(db, CF_RAFT_META), meta::PURGED, encode(&upto), &opts).map_err(io_err)?;
            db.delete_range_cf(cf(db, CF_RAFT_LOG), keys::log_index(0), keys::log_index(upto.index + 1)).map_err(io_err)
        });
        metrics::histogram!("overture_raft_purge_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => tracing::debug!(index = upto.index, "purged the log"),
            Err(e) => tracing::warn!(error = %e, index = upto.index, "purging the log failed; the entries stay"),
        }
    }
}

/// A range of log indexes as `start..end`.
fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    use std::ops::Bound;
    let start = match range.start_bound() {
        Bound::Included(x) => *x,
        Bound::Excluded(x) => x.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(x) => x.saturating_add(1),
        Bound::Excluded(x) => *x,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, _) = bounds(&range);
        let first_kept = self.purged.lock().map_or(0, |id| id.index + 1);
        let from = keys::log_index(start.max(first_kept));
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf(&self.db, CF_RAFT_LOG), IteratorMode::From(&from, Direction::Forward)) {
            let (key, value) = item.map_err(io_err)?;
            let index = keys::parse_log_index(&key).ok_or_else(|| io_err("malformed log key"))?;
            if !range.contains(&index) {
                break;
            }
            out.push(decode::<Entry>(&value).map_err(io_err)?);
        }
        Ok(out)
    }

    /// What replication sends to a follower: from memory while the entries are there (a follower
    /// keeping up asks for what was just appended), else from the database. Either may be a
    /// prefix of the range, as openraft allows.
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, io::Error> {
        let from_memory: Vec<Entry> = {
            let unapplied = self.unapplied.lock();
            unapplied
                .range(start..end)
                .zip(start..)
                .take_while(|((index, _), expected)| *index == expected)
                .take(REPLICATION_BATCH)
                .map(|((_, entry), _)| entry.clone())
                .collect()
        };
        if !from_memory.is_empty() {
            return Ok(from_memory);
        }
        self.try_get_log_entries(start..end.min(start.saturating_add(REPLICATION_BATCH as u64))).await
    }

    /// What openraft applies: the entries as appended, if all are still in memory (taken out,
    /// each is applied once), else read from the database.
    async fn entries_stream<RB>(&mut self, range: RB) -> impl Stream<Item = Result<Entry, io::Error>> + OptionalSend
    where
        RB: RangeBounds<u64> + Clone + Debug + OptionalSend,
    {
        let (start, end) = bounds(&range);
        let taken = {
            let mut unapplied = self.unapplied.lock();
            let mut later = unapplied.split_off(&start);
            let rest = later.split_off(&end);
            // Whatever precedes the range is applied already (or was never needed).
            *unapplied = rest;
            let whole = later.len() as u64 == end.saturating_sub(start)
                && later.first_key_value().is_some_and(|(i, _)| *i == start);
            whole.then_some(later)
        };
        let entries = match taken {
            Some(entries) => Ok(entries.into_values().collect()),
            None => {
                metrics::counter!("overture_raft_apply_reads_total").increment(1);
                self.try_get_log_entries(range).await
            }
        };
        let items: Vec<Result<Entry, io::Error>> = match entries {
            Ok(entries) => entries.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        futures::stream::iter(items)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        self.get_meta(meta::VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last = match self.db.iterator_cf(cf(&self.db, CF_RAFT_LOG), IteratorMode::End).next() {
            None => None,
            Some(item) => {
                let (_, value) = item.map_err(io_err)?;
                Some(decode::<Entry>(&value).map_err(io_err)?.log_id)
            }
        };
        let on_disk: Option<LogId> = self.get_meta(meta::PURGED)?;
        let last_purged_log_id = on_disk.max(*self.purged.lock());
        let last_log_id = last.max(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        let vote = encode(vote);
        let (db, disk) = (self.db.clone(), self.disk.clone());
        tokio::task::spawn_blocking(move || {
            crate::disk::retry_blocking(&disk, "saving the vote", || {
                db.put_cf_opt(cf(&db, CF_RAFT_META), meta::VOTE, &vote, &opts)
            })
        })
        .await
        .map_err(io_err)?
        .map_err(io_err)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        let key_cf = cf(&self.db, CF_RAFT_META);
        crate::disk::retry(&self.disk, "saving the commit index", || match committed {
            Some(id) => self.db.put_cf(key_cf, meta::COMMITTED, encode(&id)),
            None => self.db.delete_cf(key_cf, meta::COMMITTED),
        })
        .await
        .map_err(io_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        self.get_meta(meta::COMMITTED)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let log_cf = cf(&self.db, CF_RAFT_LOG);
        let entries: Vec<Entry> = entries.into_iter().collect();
        let batch_of = |entries: &[Entry]| {
            let mut batch = WriteBatch::default();
            for entry in entries {
                batch.put_cf(log_cf, keys::log_index(entry.log_id.index), encode(entry));
            }
            batch
        };
        // Written now so it is readable at once; durable once the flusher has fsynced the WAL.
        // A full disk is waited out, writing the batch anew each time (a write consumes it).
        let mut size = 0;
        crate::disk::retry(&self.disk, "a Raft log append", || {
            let batch = batch_of(&entries);
            size = batch.size_in_bytes();
            self.db.write(batch)
        })
        .await
        .map_err(io_err)?;
        self.appended.fetch_add(size as u64, Ordering::Relaxed);
        metrics::counter!("overture_raft_entries_appended_total").increment(entries.len() as u64);
        {
            let mut unapplied = self.unapplied.lock();
            for entry in entries {
                unapplied.insert(entry.log_id.index, entry);
            }
            while unapplied.len() > UNAPPLIED_KEPT {
                unapplied.pop_first();
            }
        }
        self.flusher.0.send(callback)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index + 1);
        drop(self.unapplied.lock().split_off(&from));
        crate::disk::retry(&self.disk, "truncating the Raft log", || {
            self.db.delete_range_cf(cf(&self.db, CF_RAFT_LOG), keys::log_index(from), keys::log_index(u64::MAX))
        })
        .await
        .map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        {
            let mut unapplied = self.unapplied.lock();
            *unapplied = unapplied.split_off(&(log_id.index + 1));
        }
        *self.purged.lock() = Some(log_id);
        // Flushing the memtables takes a while; openraft's core does not wait for it.
        self.purger.send(log_id)
    }
}
