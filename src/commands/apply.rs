//! `kkrun apply RUN TASK`: a task's change written into the work tree (see
//! [`crate::snapshot::SnapshotStore::apply`]).

use std::path::PathBuf;

use crate::error::Error;
use crate::snapshot::SnapshotStore;

use super::export::{find_run, find_task};

/// What `kkrun apply` does.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Run id, `latest`, or a run directory.
    pub run: String,
    /// Task name.
    pub task: String,
    /// The git repository (or a directory inside it) whose work tree gets
    /// the change.
    pub repo: PathBuf,
}

/// Runs `kkrun apply`: exit 0 with the files written, or exit 2 naming the
/// conflicting paths with nothing changed.
pub fn apply(args: &ApplyOptions) -> Result<i32, Error> {
    let store = SnapshotStore::open(&args.repo)?;
    let (run_dir, run) = find_run("kkrun apply", &args.run, &store)?;
    let task = find_task("kkrun apply", &run, &args.task, &run_dir)?;
    let _lock = super::lock_work_tree(&store, &run.run_id, "apply")?;
    let applied = store.apply(&run.run_id, &task.name)?;
    super::print(&applied.describe(&run.run_id, &task.name))
}
