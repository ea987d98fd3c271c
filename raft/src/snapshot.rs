//! Snapshots of the state machine: a file holding every state-machine row at one applied log id.
//!
//! Format: `OVSNAP` magic, a format version byte, the metadata (length-prefixed, JSON), then
//! records `[family index u8][key len u32][key][value len u32][value]`, then `0xFF`. Rows are
//! read from one RocksDB snapshot, so the file is consistent with the applied id inside it. The
//! file is written to a temporary name, fsynced and renamed; it is read and written as a stream,
//! never held in memory whole.
//!
//! Installing replaces every state-machine family. It marks itself in progress (fsynced) before
//! it starts deleting; if the node dies part way, opening the store finds the mark and installs
//! again from the same file, so a half-installed state is never served.
//!
//! (The design sketch said RocksDB checkpoints. A checkpoint covers the whole database including
//! the Raft log, and installing one means swapping the database under live handles; a row stream
//! is simpler and is what a follower needs to receive anyway.)

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::RaftSnapshotBuilder;
use rocksdb::{IteratorMode, ReadOptions, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::keys::{CF_SM_META, STATE_MACHINE, meta};
use crate::state_machine::Shared;
use crate::types::{LogId, SnapshotMeta, StoredMembership, TypeConfig};
use crate::{cf, io_err};

const MAGIC: &[u8; 6] = b"OVSNAP";
const FORMAT_VERSION: u8 = 1;
const END: u8 = 0xFF;
/// Rows per write batch while installing.
const INSTALL_BATCH_BYTES: usize = 4 << 20;
/// A snapshot being built is synced every this many bytes (see [`Trickle`]).
const SYNC_EVERY_BYTES: usize = 1 << 20;

/// A file written in small synced steps. Written whole and synced once, a snapshot of tens of
/// megabytes reaches the disk as one burst, and the log's fsyncs queue behind it: commits stall
/// for hundreds of milliseconds. Synced every megabyte, a commit waits behind one megabyte at most.
struct Trickle {
    file: File,
    unsynced: usize,
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.unsynced += written;
        if self.unsynced >= SYNC_EVERY_BYTES {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A snapshot file, as openraft passes it around.
#[derive(Debug)]
pub struct SnapshotFile {
    /// Where it is.
    pub path: PathBuf,
}

/// What `sm_meta` records about the current snapshot.
#[derive(Serialize, Deserialize)]
struct CurrentSnapshot {
    meta: SnapshotMeta,
    file: String,
}

/// Builds snapshots on demand.
pub struct SnapshotBuilder {
    pub(crate) shared: Arc<Shared>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotFile;

    /// Builds on a thread of its own at the lowest CPU priority: a snapshot is background work,
    /// and on a busy node it would otherwise take a core from the requests for a second or more.
    /// Built later, it only keeps the log a little longer. A build that meets a full disk removes
    /// its partial file and waits for space (`crate::disk::retry_file_blocking`).
    async fn build_snapshot(&mut self) -> Result<openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>, io::Error> {
        let shared = self.shared.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                // On Linux the nice value is per thread; this one ends with the snapshot.
                if let Err(e) = rustix::process::setpriority_process(None, 19) {
                    tracing::debug!(error = %e, "could not lower the snapshot thread's priority");
                }
                let _ = done.send(crate::disk::retry_file_blocking(&shared.disk, "a snapshot build", || {
                    let built = build(&shared);
                    if built.is_err() {
                        remove_partial(&shared.snapshot_dir);
                    }
                    built
                }));
            })
            .map_err(io_err)?;
        result.await.map_err(io_err)?
    }
}

fn family_index(name: &str) -> u8 {
    STATE_MACHINE.iter().position(|f| *f == name).unwrap_or(0) as u8
}

fn build(shared: &Shared) -> Result<openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>, io::Error> {
    let started = std::time::Instant::now();
    let db = &shared.db;
    let snap = db.snapshot();
    let applied: Option<LogId> = match snap.get_cf(cf(db, CF_SM_META), meta::APPLIED).map_err(io_err)? {
        Some(b) => Some(decode(&b).map_err(io_err)?),
        None => None,
    };
    let membership: StoredMembership = match snap.get_cf(cf(db, CF_SM_META), meta::MEMBERSHIP).map_err(io_err)? {
        Some(b) => decode(&b).map_err(io_err)?,
        None => StoredMembership::default(),
    };
    let meta = SnapshotMeta { last_log_id: applied, last_membership: membership };
    fs::create_dir_all(&shared.snapshot_dir)?;
    let (term, index) = applied.as_ref().map_or((0, 0), |id| (id.leader_id.term, id.index));
    let name = format!("snapshot-{term:020}-{index:020}.snap");
    let tmp = shared.snapshot_dir.join(format!("{name}.tmp"));
    let mut out = BufWriter::new(Trickle { file: File::create(&tmp)?, unsynced: 0 });
    out.write_all(MAGIC)?;
    out.write_all(&[FORMAT_VERSION])?;
    let meta_json = serde_json::to_vec(&meta).map_err(io_err)?;
    out.write_all(&(meta_json.len() as u32).to_be_bytes())?;
    out.write_all(&meta_json)?;
    let mut rows = 0u64;
    for family in STATE_MACHINE.iter().filter(|f| **f != CF_SM_META) {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&snap);
        // A whole-state scan: its blocks would only push the working set out of the cache.
        opts.fill_cache(false);
        for item in db.iterator_cf_opt(cf(db, family), opts, IteratorMode::Start) {
            let (key, value) = item.map_err(io_err)?;
            out.write_all(&[family_index(family)])?;
            out.write_all(&(key.len() as u32).to_be_bytes())?;
            out.write_all(&key)?;
            out.write_all(&(value.len() as u32).to_be_bytes())?;
            out.write_all(&value)?;
            rows += 1;
        }
    }
    out.write_all(&[END])?;
    let file = out.into_inner().map_err(|e| e.into_error())?.file;
    file.sync_all()?;
    let path = shared.snapshot_dir.join(&name);
    fs::rename(&tmp, &path)?;
    sync_dir(&shared.snapshot_dir)?;
    record_current(shared, &meta, &name, false)?;
    remove_other_snapshots(&shared.snapshot_dir, &name);
    metrics::histogram!("overture_snapshot_build_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("overture_snapshots_built_total").increment(1);
    tracing::info!(term, index, rows, file = %path.display(), "built snapshot");
    Ok(openraft::alias::SnapshotOf::<TypeConfig, SnapshotFile> { meta, snapshot: SnapshotFile { path } })
}

fn record_current(shared: &Shared, meta: &SnapshotMeta, file: &str, sync: bool) -> Result<(), io::Error> {
    let current = CurrentSnapshot { meta: meta.clone(), file: file.to_owned() };
    let mut opts = WriteOptions::default();
    opts.set_sync(sync);
    let json = serde_json::to_vec(&current).map_err(io_err)?;
    shared.db.put_cf_opt(cf(&shared.db, CF_SM_META), meta::SNAPSHOT, json, &opts).map_err(io_err)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes what a build that failed half-way wrote.
fn remove_partial(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn remove_other_snapshots(dir: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy() != keep {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The snapshot last built or installed, if its file is still there.
pub(crate) fn current(
    shared: &Shared,
) -> Result<Option<openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>>, io::Error> {
    let Some(bytes) = shared.db.get_cf(cf(&shared.db, CF_SM_META), meta::SNAPSHOT).map_err(io_err)? else {
        return Ok(None);
    };
    let current: CurrentSnapshot = serde_json::from_slice(&bytes).map_err(io_err)?;
    let path = shared.snapshot_dir.join(&current.file);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(openraft::alias::SnapshotOf::<TypeConfig, SnapshotFile> {
        meta: current.meta,
        snapshot: SnapshotFile { path },
    }))
}

/// Installs a snapshot received from elsewhere (or resumes an interrupted install).
pub(crate) fn install(shared: &Shared, meta: &SnapshotMeta, snapshot: SnapshotFile) -> Result<(), io::Error> {
    fs::create_dir_all(&shared.snapshot_dir)?;
    let (term, index) = meta.last_log_id.as_ref().map_or((0, 0), |id| (id.leader_id.term, id.index));
    let name = format!("snapshot-{term:020}-{index:020}.snap");
    let path = shared.snapshot_dir.join(&name);
    if snapshot.path != path {
        let tmp = shared.snapshot_dir.join(format!("{name}.tmp"));
        fs::copy(&snapshot.path, &tmp)?;
        File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, &path)?;
        sync_dir(&shared.snapshot_dir)?;
    }
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    shared.db.put_cf_opt(cf(&shared.db, CF_SM_META), meta::INSTALLING, name.as_bytes(), &opts).map_err(io_err)?;
    load(shared, &path, meta)?;
    remove_other_snapshots(&shared.snapshot_dir, &name);
    Ok(())
}

/// Finishes an install that a crash interrupted. Called when the store opens.
pub(crate) fn resume_interrupted_install(shared: &Shared) -> Result<(), io::Error> {
    let Some(name) = shared.db.get_cf(cf(&shared.db, CF_SM_META), meta::INSTALLING).map_err(io_err)? else {
        return Ok(());
    };
    let path = shared.snapshot_dir.join(String::from_utf8_lossy(&name).as_ref());
    tracing::warn!(file = %path.display(), "resuming an interrupted snapshot install");
    let meta = read_meta(&mut BufReader::new(File::open(&path)?))?;
    load(shared, &path, &meta)
}

fn read_meta(input: &mut impl Read) -> Result<SnapshotMeta, io::Error> {
    let mut magic = [0u8; 6];
    input.read_exact(&mut magic)?;
    let mut version = [0u8; 1];
    input.read_exact(&mut version)?;
    if &magic != MAGIC || version[0] != FORMAT_VERSION {
        return Err(io_err(format!(
            "not an Overture snapshot of format {FORMAT_VERSION} (version byte {})",
            version[0]
        )));
    }
    let len = read_u32(input)? as usize;
    let mut json = vec![0u8; len];
    input.read_exact(&mut json)?;
    serde_json::from_slice(&json).map_err(io_err)
}

fn read_u32(input: &mut impl Read) -> Result<u32, io::Error> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

/// Replaces the state machine with the rows in `path`.
fn load(shared: &Shared, path: &Path, meta: &SnapshotMeta) -> Result<(), io::Error> {
    let db = &shared.db;
    let mut inner = shared.inner.lock();
    let mut input = BufReader::new(File::open(path)?);
    let file_meta = read_meta(&mut input)?;
    if &file_meta != meta {
        return Err(io_err("snapshot metadata does not match its file"));
    }
    // No key of ours starts with 0xFF (ids and names are UTF-8, timer keys start with a small
    // big-endian time), so this range covers every row.
    let end = [0xFFu8; 9];
    for family in STATE_MACHINE.iter().filter(|f| **f != CF_SM_META) {
        db.delete_range_cf(cf(db, family), [0u8; 0].as_slice(), end.as_slice()).map_err(io_err)?;
    }
    let mut wb = WriteBatch::default();
    loop {
        let mut tag = [0u8; 1];
        input.read_exact(&mut tag)?;
        if tag[0] == END {
            break;
        }
        let family = STATE_MACHINE
            .get(tag[0] as usize)
            .ok_or_else(|| io_err(format!("snapshot names unknown column family {}", tag[0])))?;
        let klen = read_u32(&mut input)? as usize;
        let mut key = vec![0u8; klen];
        input.read_exact(&mut key)?;
        let vlen = read_u32(&mut input)? as usize;
        let mut value = vec![0u8; vlen];
        input.read_exact(&mut value)?;
        wb.put_cf(cf(db, family), key, value);
        if wb.size_in_bytes() > INSTALL_BATCH_BYTES {
            db.write(std::mem::take(&mut wb)).map_err(io_err)?;
        }
    }
    let meta_cf = cf(db, CF_SM_META);
    match &meta.last_log_id {
        Some(id) => wb.put_cf(meta_cf, meta::APPLIED, encode(id)),
        None => wb.delete_cf(meta_cf, meta::APPLIED),
    }
    wb.put_cf(meta_cf, meta::MEMBERSHIP, encode(&meta.last_membership));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let current = CurrentSnapshot { meta: meta.clone(), file: name };
    wb.put_cf(meta_cf, meta::SNAPSHOT, serde_json::to_vec(&current).map_err(io_err)?);
    wb.delete_cf(meta_cf, meta::INSTALLING);
    let mut opts = WriteOptions::default();
    opts.set_sync(true);
    db.write_opt(wb, &opts).map_err(io_err)?;
    inner.applied = meta.last_log_id;
    shared.applied_index.store(meta.last_log_id.map_or(0, |id| id.index), std::sync::atomic::Ordering::Release);
    inner.membership = meta.last_membership.clone();
    shared.cache.lock().clear();
    inner.count_deltas = None;
    shared.index_counts.lock().0 = None;
    shared.plans.lock().clear();
    shared.start_plans.lock().invalidate();
    metrics::counter!("overture_snapshots_installed_total").increment(1);
    tracing::info!(?meta.last_log_id, "installed snapshot");
    Ok(())
}
