//! The data directory's free space, and what a node does when it runs out.
//!
//! RocksDB stops taking writes once a write or a flush fails for lack of space, and openraft
//! stops for good at the first storage error it is told of. A disk that fills up must not do
//! that to a node: it should refuse writes with a reason an operator can act on, keep serving
//! reads, and take writes again once space is freed, without a restart. Two layers do it:
//!
//! - **Refusing early.** A [`DiskGuard`] reads the free space (`statvfs`) every
//!   [`CHECK_EVERY`]. Below the node's `min_free_disk_bytes` it is *low*: proposals are refused
//!   ([`crate::ProposeError::DiskFull`], a 507 to clients), the node does not stand for election
//!   and hands leadership to a follower if it leads. Reads go on. Snapshots are still built: one
//!   that succeeds lets the log be purged, which may be what frees the space.
//! - **Waiting out a full disk.** A write that fails for lack of space anyway (another process
//!   filled the disk between two checks, or a burst outran them) is retried until it goes
//!   through (`retry_blocking`, `retry`): the log store and the state machine never pass
//!   such a failure to openraft, so Raft does not stop. RocksDB resumes by itself once enough
//!   space is free again (it checks every few seconds and wants a write buffer's worth), and the
//!   waiting write completes. Meanwhile this node's Raft waits on its disk, as if it were slow:
//!   a leader stops sending heartbeats and the others elect a leader among themselves.
//!
//! Only "no space" is waited out. Any other storage error is still a real failure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;

/// How often the free space is read.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long a write that failed for lack of space waits before trying again.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// Gauge: bytes free on the data directory's file system.
pub const FREE_BYTES: &str = "overture_disk_free_bytes";
/// Gauge: 1 while the data directory has less free space than `min_free_disk_bytes`.
pub const LOW: &str = "overture_disk_low";
/// Gauge: the free space below which the node refuses writes (its `min_free_disk_bytes`), so an
/// alert can compare [`FREE_BYTES`] with it.
pub const MIN_FREE_BYTES: &str = "overture_disk_min_free_bytes";
/// Counter: writes retried because the disk was full.
pub const FULL_RETRIES: &str = "overture_disk_full_retries_total";

/// The free space of a data directory, as last read.
#[derive(Debug)]
pub struct DiskGuard {
    dir: PathBuf,
    min_free: u64,
    free: AtomicU64,
    low: AtomicBool,
    /// A write is waiting for space right now.
    full: AtomicBool,
}

impl DiskGuard {
    /// The data directory it watches.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A guard of `dir`, low below `min_free` bytes free; reads the free space once now.
    pub fn new(dir: &Path, min_free: u64) -> Arc<DiskGuard> {
        let guard = Arc::new(DiskGuard {
            dir: dir.to_owned(),
            min_free,
            free: AtomicU64::new(u64::MAX),
            low: AtomicBool::new(false),
            full: AtomicBool::new(false),
        });
        guard.check();
        guard
    }

    /// Reads the free space now and updates the state; true if it is low.
    pub fn check(&self) -> bool {
        let free = match rustix::fs::statvfs(&self.dir) {
            Ok(s) => s.f_bavail.saturating_mul(s.f_frsize),
            // Unreadable: assume nothing changed, so a passing hiccup refuses nothing.
            Err(_) => return self.is_low(),
        };
        self.free.store(free, Ordering::Relaxed);
        let low = free < self.min_free || self.full.load(Ordering::Relaxed);
        let was = self.low.swap(low, Ordering::Relaxed);
        if low != was {
            if low {
                tracing::warn!(dir = %self.dir.display(), free, min_free = self.min_free, "the data directory is nearly full: refusing writes");
            } else {
                tracing::info!(dir = %self.dir.display(), free, "the data directory has space again: taking writes");
            }
        }
        metrics::gauge!(FREE_BYTES).set(free as f64);
        metrics::gauge!(MIN_FREE_BYTES).set(self.min_free as f64);
        metrics::gauge!(LOW).set(if low { 1.0 } else { 0.0 });
        low
    }

    /// Whether the node should refuse writes now.
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// Bytes free at the last check.
    pub fn free_bytes(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    /// The refusal a proposal gets while the disk is low, in words for the client.
    pub fn refusal(&self) -> String {
        format!(
            "this node's data directory ({}) has {} MiB free, less than the {} MiB it keeps in reserve; it refuses writes until space is freed (reads still work)",
            self.dir.display(),
            self.free_bytes() >> 20,
            self.min_free >> 20
        )
    }

    fn waiting_for_space(&self, waiting: bool) {
        self.full.store(waiting, Ordering::Relaxed);
        if waiting {
            self.low.store(true, Ordering::Relaxed);
            metrics::gauge!(LOW).set(1.0);
        }
    }
}

/// Whether a RocksDB error means the disk is full.
pub(crate) fn is_no_space(e: &rocksdb::Error) -> bool {
    says_no_space(e.as_ref())
}

/// Whether a file-system error (or a RocksDB error carried in one) means the disk is full.
pub(crate) fn is_no_space_io(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || says_no_space(&e.to_string())
}

fn says_no_space(text: &str) -> bool {
    text.contains("No space left on device") || text.contains("Space limit reached")
}

/// Runs a file write that may meet a full disk (a snapshot's) until it succeeds or fails for
/// another reason. After a failure for lack of space it waits until the free space is back
/// above the reserve before trying again: a snapshot needs room for a copy of the state, so it
/// is not started over and over on a full disk. `write` removes what a failed try left behind.
/// Openraft stops a node on any error a snapshot build returns; this one only takes longer.
pub(crate) fn retry_file_blocking<T>(
    guard: &DiskGuard,
    what: &str,
    mut write: impl FnMut() -> std::io::Result<T>,
) -> std::io::Result<T> {
    let mut waited = false;
    loop {
        match write() {
            Err(e) if is_no_space_io(&e) => {
                metrics::counter!(FULL_RETRIES).increment(1);
                if !waited {
                    tracing::warn!(error = %e, "the disk is full: {what} waits for space");
                    waited = true;
                }
                loop {
                    std::thread::sleep(RETRY_EVERY);
                    guard.check();
                    if guard.free_bytes() >= guard.min_free {
                        break;
                    }
                }
            }
            done => {
                if waited {
                    tracing::info!("the disk has space again: {what} went through");
                }
                return done;
            }
        }
    }
}

/// Runs a blocking write until it succeeds or fails for another reason than a full disk,
/// sleeping the thread between tries. For threads of the log store's own, or under
/// `block_in_place`.
pub(crate) fn retry_blocking<T>(
    guard: &DiskGuard,
    what: &str,
    mut write: impl FnMut() -> Result<T, rocksdb::Error>,
) -> Result<T, rocksdb::Error> {
    let mut waited = false;
    loop {
        if let Some(done) = settle(guard, what, &mut waited, write()) {
            return done;
        }
        std::thread::sleep(RETRY_EVERY);
    }
}

/// [`retry_blocking`] for a write made on an async task: waits with the runtime's timer.
pub(crate) async fn retry<T>(
    guard: &DiskGuard,
    what: &str,
    mut write: impl FnMut() -> Result<T, rocksdb::Error>,
) -> Result<T, rocksdb::Error> {
    let mut waited = false;
    loop {
        if let Some(done) = settle(guard, what, &mut waited, write()) {
            return done;
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// One try's outcome: `None` to wait for space and try again, else what the write returns.
fn settle<T>(
    guard: &DiskGuard,
    what: &str,
    waited: &mut bool,
    tried: Result<T, rocksdb::Error>,
) -> Option<Result<T, rocksdb::Error>> {
    match tried {
        Err(e) if is_no_space(&e) => {
            metrics::counter!(FULL_RETRIES).increment(1);
            if !*waited {
                tracing::warn!(error = %e, "the disk is full: {what} waits for space");
                guard.waiting_for_space(true);
                *waited = true;
            }
            None
        }
        done => {
            if *waited {
                tracing::info!("the disk has space again: {what} went through");
                guard.waiting_for_space(false);
                guard.check();
            }
            Some(done)
        }
    }
}

/// Runs a blocking write from an async task: in place while it succeeds, and if the disk is
/// full, waiting under `block_in_place` (on a multi-threaded runtime) so the worker's other
/// tasks move on meanwhile.
pub(crate) fn retry_in_place<T>(
    guard: &DiskGuard,
    what: &str,
    mut write: impl FnMut() -> Result<T, rocksdb::Error>,
) -> Result<T, rocksdb::Error> {
    match write() {
        Err(e) if is_no_space(&e) => {
            let multi_thread = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            if multi_thread {
                tokio::task::block_in_place(|| retry_blocking(guard, what, write))
            } else {
                retry_blocking(guard, what, write)
            }
        }
        other => other,
    }
}

/// Reads the free space every [`CHECK_EVERY`] until `closed` is set.
pub(crate) async fn monitor(guard: Arc<DiskGuard>, closed: Arc<parking_lot::Mutex<bool>>, on_change: impl Fn(bool)) {
    let mut was_low = guard.is_low();
    on_change(was_low);
    loop {
        tokio::time::sleep(CHECK_EVERY).await;
        if *closed.lock() {
            return;
        }
        let low = guard.check();
        if low != was_low {
            on_change(low);
            was_low = low;
        }
    }
}

/// A node whose disk runs low stops standing for election and, if it leads, hands leadership to
/// the follower furthest along; once it has space again it stands again.
pub(crate) fn on_disk_low(raft: &crate::Raft, node_id: crate::types::NodeId, low: bool) {
    raft.runtime_config().elect(!low);
    if !low {
        return;
    }
    let m = raft.metrics().borrow_watched().clone();
    if m.state != openraft::ServerState::Leader {
        return;
    }
    if let Some(to) = successor(&m, node_id) {
        tracing::warn!(to, "the disk is low: handing leadership over");
        let raft = raft.clone();
        tokio::spawn(async move {
            if let Err(e) = raft.trigger().transfer_leader(to).await {
                tracing::warn!(error = %e, "could not hand leadership over");
            }
        });
    }
}

/// The voter other than `leader` that a leader's metrics show holding the most of its log: the
/// one to hand leadership to.
pub(crate) fn successor(
    m: &openraft::RaftMetrics<crate::types::TypeConfig>,
    leader: crate::types::NodeId,
) -> Option<crate::types::NodeId> {
    let voters: std::collections::BTreeSet<crate::types::NodeId> =
        m.membership_config.membership().voter_ids().collect();
    m.replication
        .iter()
        .flatten()
        .filter(|(id, _)| **id != leader && voters.contains(*id))
        .max_by_key(|(_, matched)| matched.as_ref().map_or(0, |l| l.index))
        .map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_is_low_below_its_reserve_and_names_the_directory() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let roomy = DiskGuard::new(dir.path(), 0);
        assert!(!roomy.is_low());
        assert!(roomy.free_bytes() > 0 && roomy.free_bytes() < u64::MAX);
        let strict = DiskGuard::new(dir.path(), u64::MAX);
        assert!(strict.is_low());
        let refusal = strict.refusal();
        assert!(refusal.contains(&dir.path().display().to_string()), "{refusal}");
        assert!(refusal.contains("refuses writes"), "{refusal}");
    }

    #[test]
    fn a_file_write_that_meets_a_full_disk_waits_and_tries_again() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let guard = DiskGuard::new(dir.path(), 0);
        let mut tries = 0;
        let result = retry_file_blocking(&guard, "a test file", || {
            tries += 1;
            if tries < 3 { Err(std::io::Error::from(std::io::ErrorKind::StorageFull)) } else { Ok(tries) }
        });
        assert_eq!(result.expect("went through"), 3);
        let mut tries = 0;
        let result: std::io::Result<()> = retry_file_blocking(&guard, "a test file", || {
            tries += 1;
            Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
        });
        assert!(result.is_err());
        assert_eq!(tries, 1, "another failure is returned at once");
        let carried = std::io::Error::other("IO error: No space left on device: While appending to file");
        assert!(is_no_space_io(&carried), "a RocksDB error carried in an io::Error counts");
    }

    #[test]
    fn only_a_full_disk_is_retried() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let guard = DiskGuard::new(dir.path(), 0);
        let db = rocksdb::DB::open_default(dir.path().join("db")).expect("opens");
        let mut tries = 0;
        let result: Result<(), rocksdb::Error> = retry_blocking(&guard, "a test write", || {
            tries += 1;
            // Another storage error: not retried.
            db.put(b"k", b"v")?;
            rocksdb::DB::open_for_read_only(&rocksdb::Options::default(), dir.path().join("missing"), true).map(|_| ())
        });
        assert!(result.is_err());
        assert_eq!(tries, 1);
        assert!(!guard.is_low(), "a failure that is not about space changes nothing");
    }
}
