//! What kkrun knows changed in the work tree since the task's last
//! snapshot.
//!
//! kkrun's own file tools (`write_file`, `edit_file`, `apply_patch`) record
//! every path they are about to write or delete here. As long as nothing
//! else could have written (no shell command, no check, no MCP server, no
//! restore), the next snapshot is the previous one plus those paths, and the
//! work tree need not be scanned. Anything that could write elsewhere
//! *forgets* what is known, and the next snapshot scans the whole tree.
//!
//! The log errs on the side of scanning: a path is recorded before the tool
//! touches it (so a tool that fails half-way leaves a superset), a tool still
//! running when the snapshot is taken forces a scan, and a snapshot only
//! becomes the new base when nothing was recorded while it was being taken.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The task's record of writes since its last snapshot, shared by the tools
/// and the snapshot store (cloning shares it).
#[derive(Debug, Clone, Default)]
pub struct ChangeLog {
    inner: Arc<Mutex<LogState>>,
}

#[derive(Debug, Default)]
struct LogState {
    /// The snapshot tree (hex id) the work tree equalled, plus `paths`;
    /// `None` when unknown.
    base: Option<String>,
    /// Absolute paths written or deleted since `base`.
    paths: BTreeSet<PathBuf>,
    /// File tools running now.
    in_flight: usize,
    /// Bumped by everything that records or forgets, so a snapshot taken
    /// meanwhile does not become the base.
    epoch: u64,
    /// Never known again (an MCP server runs beside the task).
    disabled: bool,
}

/// What the log knew when a snapshot began, handed to the snapshot store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The writes since a known snapshot; `None` when unknown (scan).
    pub known: Option<KnownChanges>,
    /// Pass to [`ChangeLog::rebase`] once the snapshot is written.
    pub epoch: u64,
}

/// The writes since a known snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownChanges {
    /// The tree id (hex) of the snapshot the work tree equalled.
    pub base: String,
    /// Absolute paths written or deleted since then, sorted.
    pub paths: Vec<PathBuf>,
}

impl ChangeLog {
    fn state(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding the lock cannot leave the state half
        // updated in a way that matters: at worst it forgets.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Something other than kkrun's file tools may have written (a shell
    /// command, a check, a restore): the next snapshot scans the tree.
    pub fn forget(&self) {
        let mut state = self.state();
        state.base = None;
        state.paths.clear();
        state.epoch += 1;
    }

    /// Forgets for good: for a task with a process beside it (an MCP
    /// server) that may write at any time.
    pub fn disable(&self) {
        self.forget();
        self.state().disabled = true;
    }

    /// What is known to have changed since the last snapshot, and forgets
    /// it, so that a snapshot which is not followed by [`Self::rebase`] (a
    /// restore's safety snapshot, a failed one) leaves the next to scan.
    /// Unknown when a file tool is still running.
    pub fn take(&self) -> Taken {
        let mut state = self.state();
        let known = match (state.base.take(), state.in_flight) {
            (Some(base), 0) => Some(KnownChanges {
                base,
                paths: std::mem::take(&mut state.paths).into_iter().collect(),
            }),
            _ => None,
        };
        state.paths.clear();
        state.epoch += 1;
        Taken {
            known,
            epoch: state.epoch,
        }
    }

    /// The work tree now equals the snapshot tree `base` (hex id), read
    /// after [`Self::take`] returned `epoch`. Ignored if anything was
    /// recorded or forgotten since, or while a file tool runs.
    pub fn rebase(&self, base: String, epoch: u64) {
        let mut state = self.state();
        if state.disabled || state.epoch != epoch || state.in_flight != 0 {
            return;
        }
        state.base = Some(base);
        state.paths.clear();
    }

    /// Starts a file tool's writes: until the returned guard drops, no
    /// snapshot trusts the log.
    pub(crate) fn writer(&self) -> Writer {
        let mut state = self.state();
        state.in_flight += 1;
        state.epoch += 1;
        Writer { log: self.clone() }
    }
}

/// A file tool at work (see [`ChangeLog::writer`]).
pub(crate) struct Writer {
    log: ChangeLog,
}

impl Writer {
    /// Records `path` (absolute), which the tool is about to write or
    /// delete.
    pub(crate) fn record(&self, path: &Path) {
        let mut state = self.log.state();
        state.epoch += 1;
        if state.base.is_some() {
            state.paths.insert(path.to_path_buf());
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let mut state = self.log.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.epoch += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rebase_now(log: &ChangeLog, base: &str) {
        let epoch = log.take().epoch;
        log.rebase(base.into(), epoch);
    }

    #[test]
    fn unknown_until_a_snapshot_rebases() {
        let log = ChangeLog::default();
        assert_eq!(log.take().known, None);
        rebase_now(&log, "aa");
        {
            let writer = log.writer();
            writer.record(Path::new("/w/a"));
        }
        let known = log.take().known.expect("known");
        assert_eq!(known.base, "aa");
        assert_eq!(known.paths, vec![PathBuf::from("/w/a")]);
        // Taken: the next snapshot scans unless this one rebases.
        assert_eq!(log.take().known, None);
    }

    #[test]
    fn forget_running_writers_and_late_records_force_a_scan() {
        let log = ChangeLog::default();
        rebase_now(&log, "aa");
        log.forget();
        assert_eq!(log.take().known, None);

        rebase_now(&log, "bb");
        let writer = log.writer();
        assert_eq!(log.take().known, None, "a tool still running");
        drop(writer);

        // Something recorded between the snapshot's start and its rebase.
        rebase_now(&log, "cc");
        let taken = log.take();
        assert!(taken.known.is_some());
        log.writer().record(Path::new("/w/b"));
        log.rebase("dd".into(), taken.epoch);
        assert_eq!(log.take().known, None);

        log.disable();
        rebase_now(&log, "ee");
        assert_eq!(log.take().known, None);
    }
}
