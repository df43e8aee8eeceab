//! One run per work tree: the runner's side of [`crate::lock`]. Every
//! work tree the tasks' workspaces are in is locked before anything runs,
//! in a fixed order, so two runs that wait for each other's work trees
//! cannot deadlock.

use std::collections::BTreeMap;

use super::RunOptions;
use crate::error::Error;
use crate::lock::{self, WorkTreeLock};
use crate::snapshot::SnapshotStore;
use crate::task::Task;

/// Locks the work tree of every task for run `run_id`; the locks are held
/// until they are dropped. A workspace that is not in a git work tree is
/// skipped here: its task fails with the reason when it starts.
pub(super) fn lock_work_trees(
    tasks: &[Task],
    run_id: &str,
    resumed: bool,
    options: &RunOptions,
) -> Result<Vec<WorkTreeLock>, Error> {
    let mut trees = BTreeMap::new();
    for task in tasks {
        if let Ok(store) = SnapshotStore::open(&task.workspace) {
            trees
                .entry(store.git_dir().to_owned())
                .or_insert_with(|| store.workdir().to_owned());
        }
    }
    let command = if resumed { "resume" } else { "run" };
    let mut locks = Vec::with_capacity(trees.len());
    for (git_dir, workdir) in trees {
        let mut notices = Vec::new();
        locks.push(lock::acquire(
            &git_dir,
            &workdir,
            run_id,
            command,
            options.wait_lock,
            &mut notices,
        )?);
        for notice in notices {
            eprintln!("kkrun: {notice}");
        }
    }
    Ok(locks)
}

/// Removes the ref locks under `refs/kkrun/<run_id>/` of every task's
/// repository, with a line on stderr for each.
///
/// Called by `kkrun resume`, which holds the run's lock: the run's earlier
/// process is gone, so a ref lock under the run's prefix is one it was
/// killed holding (between git creating `<ref>.lock` and renaming it), and
/// would fail the snapshot that writes that ref again.
pub(super) fn remove_stale_ref_locks(tasks: &[Task], run_id: &str) -> Result<(), Error> {
    let mut seen = Vec::new();
    for task in tasks {
        let Ok(store) = SnapshotStore::open(&task.workspace) else {
            continue;
        };
        if seen.contains(&store.git_dir().to_owned()) {
            continue;
        }
        seen.push(store.git_dir().to_owned());
        for name in store.remove_stale_ref_locks(run_id)? {
            eprintln!(
                "kkrun: removed the lock of {name}, left by the run's earlier process when it was killed"
            );
        }
    }
    Ok(())
}
