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
            trees.entry(store.git_dir().to_owned()).or_insert(store);
        }
    }
    let command = if resumed { "resume" } else { "run" };
    let mut locks = Vec::with_capacity(trees.len());
    for (git_dir, store) in trees {
        let mut notices = Vec::new();
        locks.push(lock::acquire(
            &git_dir,
            store.workdir(),
            run_id,
            command,
            options.wait_lock,
            &mut notices,
        )?);
        // The run's earlier process is gone (its lock was taken over or
        // released), so a ref lock under the run's prefix is one it was
        // killed holding, and would fail the snapshot that writes that ref.
        if resumed {
            for name in store.remove_stale_ref_locks(run_id)? {
                notices.push(format!(
                    "removed the lock of {name}, left by the run's earlier process when it was killed"
                ));
            }
        }
        for notice in notices {
            eprintln!("kkrun: {notice}");
        }
    }
    Ok(locks)
}
