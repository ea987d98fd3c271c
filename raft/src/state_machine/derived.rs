//! Rows derived from state (queue entries, running rows, timers): where each is stored, and
//! writing the difference between the rows an old and a new state imply.

use rocksdb::WriteBatch;

use overture_core::rows::{QueueItem, RunningItem, TimerItem};

use super::{Changes, RowChange};
use crate::GroupDb;
use crate::cf;
use crate::codec::encode;
use crate::keys;

/// A row derived from state: where it is stored and how its changes are reported.
pub(super) trait DerivedRow: PartialEq + crate::codec::Versioned + Sized {
    const FAMILY: &'static str;
    fn key(&self) -> Vec<u8>;
    fn added(self) -> RowChange;
    fn removed(self) -> RowChange;
}

impl DerivedRow for QueueItem {
    const FAMILY: &'static str = keys::CF_QUEUE;
    fn key(&self) -> Vec<u8> {
        keys::queue(self)
    }
    fn added(self) -> RowChange {
        RowChange::QueueAdded(self)
    }
    fn removed(self) -> RowChange {
        RowChange::QueueRemoved(self)
    }
}

impl DerivedRow for RunningItem {
    const FAMILY: &'static str = keys::CF_RUNNING;
    fn key(&self) -> Vec<u8> {
        keys::running(self)
    }
    fn added(self) -> RowChange {
        RowChange::RunningAdded(self)
    }
    fn removed(self) -> RowChange {
        RowChange::RunningRemoved(self)
    }
}

impl DerivedRow for TimerItem {
    const FAMILY: &'static str = keys::CF_TIMERS;
    fn key(&self) -> Vec<u8> {
        keys::timer(self)
    }
    fn added(self) -> RowChange {
        RowChange::TimerAdded(self)
    }
    fn removed(self) -> RowChange {
        RowChange::TimerRemoved(self)
    }
}

/// Writes the change from the row an old state implied to the row the new state implies, and
/// records it for the listener.
pub(super) fn write_diff<T: DerivedRow>(
    db: &GroupDb,
    wb: &mut WriteBatch,
    changes: &mut Changes,
    old: Option<T>,
    new: Option<T>,
) {
    if old == new {
        return;
    }
    if let Some(old) = old {
        wb.delete_cf(cf(db, T::FAMILY), old.key());
        changes.rows.push(old.removed());
    }
    if let Some(new) = new {
        wb.put_cf(cf(db, T::FAMILY), new.key(), encode(&new));
        changes.rows.push(new.added());
    }
}

/// [`write_diff`] for a set of rows of one kind.
pub(super) fn write_diff_all<T: DerivedRow + Clone>(
    db: &GroupDb,
    wb: &mut WriteBatch,
    changes: &mut Changes,
    old: Vec<T>,
    new: Vec<T>,
) {
    for gone in old.iter().filter(|o| !new.contains(o)) {
        write_diff(db, wb, changes, Some(gone.clone()), None);
    }
    for added in new.into_iter().filter(|n| !old.contains(n)) {
        write_diff(db, wb, changes, None, Some(added));
    }
}
